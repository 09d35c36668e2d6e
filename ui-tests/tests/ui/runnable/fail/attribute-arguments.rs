use supervisor::{Context, runnable};

#[runnable(restart = "always")]
async fn parent(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
