use supervisor::{Context, Group, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run_group(Group::new().add("a", parent()).add("b", parent()))?;
    ctx.run_group(Group::new().add("c", parent()).add("b", parent()))?;
    Ok(())
}

fn main() {}
