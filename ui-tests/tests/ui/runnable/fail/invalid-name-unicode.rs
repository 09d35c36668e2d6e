use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("überwacher", parent())?;
    Ok(())
}

fn main() {}
