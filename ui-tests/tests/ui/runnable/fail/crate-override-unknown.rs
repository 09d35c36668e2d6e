// The override is what the expansions use: a path that does not exist fails.
use supervisor::Context;

#[supervisor::runnable(crate = "not_supervisor")]
async fn leaf(ctx: Context) -> supervisor::Result {
    ctx.cancelled().await;
    Ok(())
}

#[supervisor::runnable(crate = "not a path")]
async fn bad(ctx: Context) -> supervisor::Result {
    ctx.cancelled().await;
    Ok(())
}

fn main() {}
