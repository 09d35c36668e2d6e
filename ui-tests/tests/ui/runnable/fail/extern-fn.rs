use supervisor::{Context, runnable};

#[runnable]
async extern "C" fn foreign(ctx: Context) -> supervisor::Result {
    let _ = ctx;
    Ok(())
}

fn main() {}
