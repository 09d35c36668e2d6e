use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) {
    let _ = ctx;
}

fn main() {}
