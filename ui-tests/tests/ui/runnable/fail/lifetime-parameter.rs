use supervisor::{Context, runnable};

#[runnable]
async fn parent<'a>(ctx: Context, name: &'a str) -> supervisor::Result {
    let _ = (ctx, name);
    Ok(())
}

fn main() {}
