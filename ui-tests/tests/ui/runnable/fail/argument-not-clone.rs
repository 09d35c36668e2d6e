use supervisor::{Context, runnable};

struct Config;

#[runnable]
async fn parent(ctx: Context, config: Config) -> supervisor::Result {
    let _ = (ctx, config);
    Ok(())
}

fn main() {}
