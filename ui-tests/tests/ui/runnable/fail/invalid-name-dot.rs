use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("net.dhcp", parent())?;
    Ok(())
}

fn main() {}
