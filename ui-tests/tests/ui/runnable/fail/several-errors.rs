use supervisor::{Context, runnable};

// Every bad name is reported by one build.
#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("Bad", parent())?;
    ctx.run("also bad", parent())?;
    ctx.run("fine", parent())?;
    ctx.run("fine", parent())?;
    Ok(())
}

fn main() {}
