use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> u32 {
    let _ = ctx;
    0
}

fn main() {}
