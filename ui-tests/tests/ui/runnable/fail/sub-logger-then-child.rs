use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    let _log = ctx.sub_logger("db")?;
    ctx.run("db", parent())?;
    Ok(())
}

fn main() {}
