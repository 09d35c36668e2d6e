use supervisor::{Context, Group, runnable};

#[runnable]
async fn parent(ctx: Context) -> supervisor::Result {
    ctx.run_group(Group::new().add("a", parent()).add("a", parent()))?;
    Ok(())
}

fn main() {}
