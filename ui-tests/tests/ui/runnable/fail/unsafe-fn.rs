use supervisor::{Context, runnable};

#[runnable]
async unsafe fn parent(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
