//! What the supervisor runs: any `Fn(Context) -> impl Future<Output = Result>`.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use crate::Context;
use crate::shared::Shared;
use crate::task::RunnableTask;
use crate::tree::Start;

/// An async job supervised for its whole life.
///
/// A runnable is called once per (re)start with a fresh [`Context`], so it is `Fn`, not
/// `FnOnce`: state that must survive a restart lives outside it (cloned in, or behind an
/// `Arc`). Every `Fn(Context) -> F + Send + Sync + 'static` where
/// `F: Future<Output = supervisor::Result> + Send + 'static` is a runnable: closures,
/// `async fn` items, and functions returning `impl Runnable`.
///
/// `Fn` is a supertrait rather than only a blanket impl so that the compiler can infer an
/// inline closure's argument and its async block's output from the `Runnable` bound alone:
/// `ctx.run("a", |ctx| async move { …; Ok(()) })` needs no annotations.
///
/// Compared to a bare `tokio::spawn`ed future, a runnable is named, restarted on failure, told
/// when to stop through its context, and can own children whose lives end with its own.
///
/// Each run gets a fresh context, but not always a fresh tokio task: a node restarted at
/// once (no backoff) runs its next incarnation in the task of the last one, which spares
/// the restart a spawn (so `tokio::task::id()` may repeat across restarts; task-locals set
/// with `scope` inside the run are the run's own either way). Such a crash loop still
/// takes a unit of tokio's task budget per restart and yields like any busy task.
///
/// # Examples
///
/// ```
/// use supervisor::{Context, Runnable, Signal};
///
/// // An `async fn` is a runnable.
/// async fn ticker(ctx: Context) -> supervisor::Result {
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// }
///
/// // So is a closure that captures its configuration; it clones it per start.
/// fn greeter(greeting: String) -> impl Runnable {
///     move |ctx: Context| {
///         let greeting = greeting.clone();
///         async move {
///             ctx.signal(Signal::Healthy);
///             tracing::info!("{greeting}");
///             ctx.cancelled().await;
///             Ok(())
///         }
///     }
/// }
/// # let _ = (ticker, greeter("hi".into()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runnable",
    label = "not a runnable",
    note = "a runnable is an `Fn(supervisor::Context) -> F + Send + Sync + 'static` whose \
            future `F` is `Future<Output = supervisor::Result> + Send + 'static`, \
            e.g. an `async fn name(ctx: Context) -> supervisor::Result`"
)]
pub trait Runnable: Fn(Context) -> <Self as Runnable>::Future + Send + Sync + 'static {
    /// The future of one run.
    type Future: Future<Output = crate::Result> + Send + 'static;
}

impl<F, Fut> Runnable for F
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = crate::Result> + Send + 'static,
{
    type Future = Fut;
}

/// A runnable with its type erased, as the tree stores it.
pub(crate) trait DynRunnable: Send + Sync + 'static {
    /// Spawns the task of the incarnation `start` (whose runnable this is). The task is
    /// made here, where the runnable's type is known, so that its future lives in the task
    /// unboxed.
    fn spawn(self: Arc<Self>, shared: &Arc<Shared>, start: Start);

    /// The runnable as its own type again, for the task of its last incarnation to run
    /// the next one (`RunnableTask` knows the type it expects).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<R: Runnable> DynRunnable for R {
    fn spawn(self: Arc<Self>, shared: &Arc<Shared>, start: Start) {
        shared.spawn_task(RunnableTask::new(shared.clone(), start, self));
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
