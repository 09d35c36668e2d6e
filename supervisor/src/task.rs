//! The task that runs one incarnation of a runnable.
//!
//! One hand-written future per incarnation, so that a runnable costs one tokio task and one
//! boxed future: it starts the runnable, catches its panics, notices cancellation, aborts
//! the runnable once the grace period is over, and reports how it ended.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Span;

use crate::Context;
use crate::activity::{Busy, TaskWake};
use crate::error::panic_message;
use crate::logtree::Routing;
use crate::runnable::{BoxFuture, DynRunnable};
use crate::shared::Shared;
use crate::tree::{Key, Outcome, Start};

enum Stage {
    /// Not polled yet: the runnable is called on the first poll, inside the task, so that
    /// a panic in the call itself is caught like any other.
    Start(Arc<dyn DynRunnable>),
    Running(BoxFuture),
    Finished,
}

pin_project! {
    pub(crate) struct RunnableTask {
        shared: Arc<Shared>,
        key: Key,
        ctx: Context,
        stage: Stage,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
        // Armed when the context is cancelled; boxed because most runnables never need it.
        grace: Option<Pin<Box<Sleep>>>,
        // Held from cancellation until the task ends: an exit is owed.
        exiting: Option<Busy>,
        waker: Waker,
        wake: WakeGuard,
    }
}

impl RunnableTask {
    pub(crate) fn new(shared: Arc<Shared>, start: Start) -> Self {
        let wake = start.wake.clone();
        let meta = shared.log_tree.meta_of_node(&start.dn);
        let ctx = Context::new(shared.clone(), start.key, meta, start.token.clone());
        RunnableTask {
            key: start.key,
            ctx,
            cancelled: start.token.cancelled_owned(),
            stage: Stage::Start(start.runnable),
            shared,
            grace: None,
            exiting: None,
            waker: Waker::from(wake.clone()),
            wake: WakeGuard {
                wake,
                finished: false,
            },
        }
    }
}

impl Future for RunnableTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.project();
        this.wake.wake.begin_poll(cx.waker());
        let routing = Routing::enter(Some(this.ctx.route()));
        // Under an application subscriber the runnable runs in its span; otherwise only if
        // one was made (routing is by the current route then).
        let span = if routing.by_span() {
            Some(this.ctx.span())
        } else {
            this.ctx.span_if_made()
        };
        let mut tracked = TaskContext::from_waker(this.waker);
        let cx = &mut tracked;

        let outcome = 'outcome: {
            if let Stage::Start(..) = this.stage {
                let Stage::Start(runnable) = std::mem::replace(this.stage, Stage::Finished) else {
                    unreachable!()
                };
                let ctx = this.ctx.clone();
                let _entered = span.map(Span::enter);
                match catch_unwind(AssertUnwindSafe(|| runnable.start(ctx))) {
                    Ok(future) => *this.stage = Stage::Running(future),
                    Err(payload) => break 'outcome panicked(this.shared, payload),
                }
            }
            let Stage::Running(future) = this.stage else {
                unreachable!("a finished runnable task was polled")
            };
            let polled = {
                let _entered = span.map(Span::enter);
                catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
            };
            match polled {
                Ok(Poll::Ready(result)) => break 'outcome Outcome::Returned(result),
                Ok(Poll::Pending) => {}
                Err(payload) => break 'outcome panicked(this.shared, payload),
            }
            if this.grace.is_none() && this.cancelled.poll(cx).is_ready() {
                *this.exiting = Some(this.shared.activity.hold());
                *this.grace = Some(Box::pin(tokio::time::sleep(this.shared.grace)));
            }
            if let Some(grace) = this.grace {
                if grace.as_mut().poll(cx).is_ready() {
                    break 'outcome Outcome::Aborted(this.shared.grace);
                }
            }
            this.wake.wake.end_poll();
            return Poll::Pending;
        };

        // Drop the runnable's future before anything restarts: its resources go first.
        finish_stage(this.stage, span);
        this.shared.exited(*this.key, outcome);
        this.exiting.take();
        this.wake.finish();
        Poll::Ready(())
    }
}

fn panicked(shared: &Shared, payload: Box<dyn std::any::Any + Send>) -> Outcome {
    let message = panic_message(&*payload);
    if shared.propagate_panics {
        shared.stash_panic(payload);
    }
    Outcome::Panicked(message)
}

/// Drops the runnable's future; a panic in its destructor is logged, not propagated, as
/// the runnable has ended either way.
fn finish_stage(stage: &mut Stage, span: Option<&Span>) {
    let _entered = span.map(Span::enter);
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Finished)) {
        tracing::error!("panicked while being dropped: {}", panic_message(&*payload));
    }
}

/// Releases the task's share of the supervisor's activity when it ends, however it ends
/// (a runtime shutting down drops tasks without finishing them).
struct WakeGuard {
    wake: Arc<TaskWake>,
    finished: bool,
}

impl WakeGuard {
    fn finish(&mut self) {
        self.finished = true;
        self.wake.finish();
    }
}

impl Drop for WakeGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.wake.abandon();
        }
    }
}
