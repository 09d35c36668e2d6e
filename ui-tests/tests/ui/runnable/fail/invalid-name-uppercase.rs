use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("Worker", parent())?;
    Ok(())
}

fn main() {}
