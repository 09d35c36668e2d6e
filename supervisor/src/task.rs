//! The task that runs one incarnation of a runnable.
//!
//! One hand-written future per incarnation, so that a runnable costs one tokio task and one
//! boxed future: it starts the runnable, catches its panics, notices cancellation, aborts
//! the runnable once the grace period is over, and reports how it ended.
//!
//! The future is kept small on purpose: tokio allocates a task in steps of a cache line
//! pair (128 bytes), and with the tracker's wrapper this one fits in 256 bytes. Everything
//! else of the incarnation lives in its [`Incarnation`], shared with the context.

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
use crate::context::Incarnation;
use crate::error::panic_message;
use crate::logtree::Routing;
use crate::runnable::{BoxFuture, DynRunnable};
use crate::shared::Shared;
use crate::tree::{Outcome, Start};

enum Stage {
    /// Not polled yet: the runnable is called on the first poll, inside the task, so that
    /// a panic in the call itself is caught like any other.
    Start(Arc<dyn DynRunnable>),
    Running(BoxFuture),
    Finished,
}

pin_project! {
    pub(crate) struct RunnableTask {
        owner: Owner,
        stage: Stage,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
        // Armed when the context is cancelled; boxed because most runnables never need it.
        grace: Option<Pin<Box<Sleep>>>,
        // The incarnation as a waker, made once.
        waker: Waker,
    }
}

impl RunnableTask {
    pub(crate) fn new(shared: Arc<Shared>, start: Start) -> Self {
        let cancelled = start.token.clone().cancelled_owned();
        let ctx = Context::new(shared, &start);
        let waker = Waker::from(ctx.incarnation().clone());
        RunnableTask {
            owner: Owner {
                ctx,
                exiting: false,
                finished: false,
            },
            stage: Stage::Start(start.runnable),
            cancelled,
            grace: None,
            waker,
        }
    }
}

impl Future for RunnableTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.project();
        let incarnation = this.owner.ctx.incarnation();
        let shared = incarnation.shared();
        incarnation
            .task_wake()
            .begin_poll(&shared.activity, cx.waker());
        let routing = Routing::enter(Some(incarnation));
        // Under an application subscriber the runnable runs in its span; otherwise only if
        // one was made (routing is by the current route then).
        let span = if routing.by_span() {
            Some(this.owner.ctx.span())
        } else {
            this.owner.ctx.span_if_made()
        };
        let mut tracked = TaskContext::from_waker(this.waker);
        let cx = &mut tracked;

        let outcome = 'outcome: {
            if let Stage::Start(..) = this.stage {
                let Stage::Start(runnable) = std::mem::replace(this.stage, Stage::Finished) else {
                    unreachable!()
                };
                let ctx = this.owner.ctx.clone();
                let _entered = span.map(Span::enter);
                match catch_unwind(AssertUnwindSafe(|| runnable.start(ctx))) {
                    Ok(future) => *this.stage = Stage::Running(future),
                    Err(payload) => break 'outcome panicked(shared, payload),
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
                Err(payload) => break 'outcome panicked(shared, payload),
            }
            if this.grace.is_none() && this.cancelled.poll(cx).is_ready() {
                // From here an exit is owed: count it until the task ends.
                shared.activity.enter();
                this.owner.exiting = true;
                *this.grace = Some(Box::pin(tokio::time::sleep(shared.grace)));
            }
            if let Some(grace) = this.grace {
                if grace.as_mut().poll(cx).is_ready() {
                    break 'outcome Outcome::Aborted(shared.grace);
                }
            }
            shared.activity.leave();
            return Poll::Pending;
        };

        // Drop the runnable's future before anything restarts: its resources go first.
        finish_stage(this.stage, span);
        shared.exited(incarnation.key(), outcome);
        this.owner.finish();
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

/// The task's hold on its incarnation. It releases the task's share of the supervisor's
/// activity when the task ends, however it ends (a runtime shutting down drops tasks
/// without finishing them).
struct Owner {
    ctx: Context,
    /// Cancelled: an exit is owed, and counted.
    exiting: bool,
    finished: bool,
}

impl Owner {
    fn finish(&mut self) {
        self.finished = true;
        let incarnation: &Incarnation = self.ctx.incarnation();
        let activity = incarnation.activity();
        incarnation.task_wake().finish(activity);
        if self.exiting {
            activity.leave();
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.finished {
            let incarnation: &Incarnation = self.ctx.incarnation();
            let activity = incarnation.activity();
            incarnation.task_wake().abandon(activity);
            if self.exiting {
                activity.leave();
            }
        }
    }
}
#[cfg(test)]
mod tests {
    /// Tokio lays a task out as 104 bytes of its own plus the future, rounded up to 128:
    /// past 152 bytes of future, every runnable would cost another 128 bytes.
    #[test]
    fn the_task_fits_in_two_cache_line_pairs() {
        type Spawned = tokio_util::task::task_tracker::TrackedFuture<super::RunnableTask>;
        assert!(
            std::mem::size_of::<Spawned>() <= 152,
            "the spawned future is {} bytes",
            std::mem::size_of::<Spawned>()
        );
    }
}
