use supervisor::{Context, runnable};

#[runnable]
async fn variadic(ctx: Context, rest: ...) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
