use supervisor::{Context, DynamicSpec, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run("jobs", parent())?;
    let _jobs = ctx.dynamic("jobs", DynamicSpec::new())?;
    let _bad = ctx.dynamic("Jobs.x", DynamicSpec::new())?;
    Ok(())
}

fn main() {}
