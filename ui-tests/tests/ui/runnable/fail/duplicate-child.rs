use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("worker", parent())?;
    ctx.run("worker", parent())?;
    Ok(())
}

fn main() {}
