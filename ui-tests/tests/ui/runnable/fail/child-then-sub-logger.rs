use supervisor::{Context, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("db", parent())?;
    let _log = ctx.must_sub_logger("db");
    Ok(())
}

fn main() {}
