use supervisor::{Context, runnable};

#[runnable]
const async fn constant(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
