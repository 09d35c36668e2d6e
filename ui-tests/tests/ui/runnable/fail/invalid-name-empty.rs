use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("", parent())?;
    Ok(())
}

fn main() {}
