use supervisor::{Context, runnable};

#[runnable]
fn parent(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
