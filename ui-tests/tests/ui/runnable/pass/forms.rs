//! Every supported form of `#[runnable]`.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{Context, Group, Signal, runnable};

/// Documented, public, no arguments.
#[runnable]
pub async fn plain(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[runnable]
async fn with_args(ctx: Context, period: Duration, shared: Arc<Vec<u8>>, (a, b): (u8, u8)) -> supervisor::Result {
    let _ = (period, shared, a, b);
    ctx.run("child", plain())?;
    ctx.run_group(Group::new().add("x", plain()).add("y", plain()).backoff(supervisor::Backoff::none()))?;
    let name = String::from("dynamic");
    ctx.run(&name, plain())?; // not a literal: checked at run time
    let _log = ctx.sub_logger("events")?;
    let _again = ctx.must_sub_logger("events"); // the same sub-logger twice is fine
    ctx.signal(Signal::Healthy);
    ctx.signal(Signal::Done);
    Ok(())
}

#[runnable]
async fn generic<T: Clone + Send + Sync + 'static, const N: usize>(ctx: Context, value: T) -> supervisor::Result {
    let _ = (value, N);
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

#[runnable]
async fn impl_arg(ctx: Context, label: impl AsRef<str> + Clone + Send + Sync + 'static) -> supervisor::Result {
    ctx.logger().info(label.as_ref());
    Ok(())
}

#[runnable]
async fn nested_children_are_their_own(ctx: Context) -> supervisor::Result {
    // The closure's `ctx` is the child's: its names are not this node's.
    ctx.run("a", |ctx: Context| async move {
        ctx.run("a", plain())?;
        ctx.signal(Signal::Healthy);
        ctx.cancelled().await;
        Ok(())
    })?;
    Ok(())
}

#[runnable]
async fn qualified(ctx: supervisor::Context) -> supervisor::Result<()> {
    ctx.signal(Signal::Healthy);
    Ok(())
}

fn main() {
    let _ = (
        plain(),
        with_args(Duration::ZERO, Arc::new(Vec::new()), (1, 2)),
        generic::<u8, 4>(1),
        impl_arg("x"),
        nested_children_are_their_own(),
        qualified(),
    );
}
