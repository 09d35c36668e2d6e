//! The task that runs one incarnation of a runnable.
//!
//! One hand-written future per incarnation, generic over the runnable, so that a runnable
//! costs one tokio task and nothing more: its future lives inside the task rather than in a
//! box of its own. The task starts the runnable, catches its panics, notices cancellation,
//! aborts the runnable once the grace period is over, and reports how it ended. Everything
//! else of the incarnation lives in its [`Incarnation`], shared with the context.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Span;

use crate::Context;
use crate::activity::TaskWake;
use crate::context::Incarnation;
use crate::deferred::Deferring;
use crate::error::{ReturnedError, drop_guarded, panic_message_dropped};
use crate::logtree::Routing;
use crate::policy::Shutdown;
use crate::runnable::Runnable;
use crate::shared::Shared;
use crate::tree::{Outcome, Start, Watchdog};

pin_project! {
    #[project = StageProj]
    #[project_replace = StageTaken]
    enum Stage<R: Runnable> {
        // Not polled yet: the runnable is called on the first poll, inside the task, so
        // that a panic in the call itself is caught like any other.
        Start { runnable: Arc<R> },
        Running { #[pin] future: R::Future },
        Finished,
    }
}

pin_project! {
    pub(crate) struct RunnableTask<R: Runnable> {
        owner: Owner,
        #[pin]
        stage: Stage<R>,
        // The watch of the incarnation's handed-out token, made once one is: the tree
        // wakes the task itself when it cancels the node, but a token cancelled by whoever
        // holds it must be told to the tree. Boxed, as most runnables never hand one out.
        watch: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        // Armed when the context is cancelled; boxed because most runnables never need it.
        grace: Option<Pin<Box<Sleep>>>,
        // The watchdog's timer, armed once a node with a watchdog is Healthy.
        watchdog: Option<Pin<Box<Sleep>>>,
        // The incarnation as a waker, made once.
        waker: Waker,
    }
}

impl<R: Runnable> RunnableTask<R> {
    pub(crate) fn new(shared: Arc<Shared>, start: Start, runnable: Arc<R>) -> Self {
        let ctx = Context::new(shared, start);
        let waker = Waker::from(ctx.incarnation().clone());
        RunnableTask {
            owner: Owner {
                ctx,
                exiting: false,
                end: Cell::new(End::Running),
            },
            stage: Stage::Start { runnable },
            watch: None,
            grace: None,
            watchdog: None,
            waker,
        }
    }
}

/// The most incarnations one poll of a task runs, one after another. Tokio's budget (128
/// units a poll) always stops a crash loop first on a runtime's worker, with a deferred
/// wake that lets every other ready task run; the cap, above it, only keeps a loop from
/// holding its thread where no budget is kept.
const RESTARTS_PER_POLL: usize = 1024;

impl<R: Runnable> Future for RunnableTask<R> {
    type Output = ();

    /// Runs the incarnation; when it ends and the tree restarts its node at once, the same
    /// task runs the next incarnation, with a fresh context. A restart costs no task and
    /// does not go through the scheduler (which, on a multi-thread runtime, would often
    /// wake another worker to steal it). It is still cooperative: each restart takes a unit
    /// of tokio's task budget, and the task yields when that is spent, so a crash loop
    /// yields to its neighbours as a busy task would. (What a user can tell: a restarted
    /// runnable may run in the tokio task of its previous incarnation, so
    /// `tokio::task::id()` may repeat; nothing of the supervisor's depends on it.)
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        // Entered once for the poll, whichever incarnations run in it: a crash loop then
        // swaps only the route.
        let mut routing = Routing::enter(Some(self.owner.ctx.incarnation()));
        for _ in 0..RESTARTS_PER_POLL {
            let Some(start) = ready!(self.as_mut().poll_incarnation(cx, &routing)) else {
                return Poll::Ready(());
            };
            let shared = self.owner.ctx.incarnation().shared().clone();
            let Ok(runnable) = start.runnable.clone().into_any().downcast::<R>() else {
                // Not this task's runnable: cannot happen for the same node, but a task of
                // its own is always right.
                start.runnable.clone().spawn(&shared, start);
                return Poll::Ready(());
            };
            self.set(RunnableTask::new(shared, start, runnable));
            routing.reroute(self.owner.ctx.incarnation());
            match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(restore) => restore.made_progress(),
                // The budget is spent, and the runtime asked to poll the task again.
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<R: Runnable> RunnableTask<R> {
    /// Polls the current incarnation, with its events routed by `routing`:
    /// `Ready(Some(start))` when it has ended and its node restarts at once, as `start`.
    fn poll_incarnation(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        routing: &Routing,
    ) -> Poll<Option<Start>> {
        let mut this = self.project();
        let incarnation = this.owner.ctx.incarnation();
        let shared = incarnation.shared();
        incarnation
            .task_wake()
            .begin_poll(&shared.activity, cx.waker());
        let span = this.owner.ctx.span_to_enter(routing);
        // Dropped before the routing, when the poll returns or the runnable has ended.
        let deferring = Deferring::begin();
        let mut tracked = TaskContext::from_waker(this.waker);
        let cx = &mut tracked;

        let outcome = 'outcome: {
            if let StageProj::Start { .. } = this.stage.as_mut().project() {
                let StageTaken::Start { runnable } =
                    this.stage.as_mut().project_replace(Stage::Finished)
                else {
                    unreachable!()
                };
                let ctx = this.owner.ctx.clone();
                let _entered = span.map(Span::enter);
                // The runnable is moved in, so that if this is its last handle (its node was
                // forgotten meanwhile), a panic of its drop is caught too.
                match catch_unwind(AssertUnwindSafe(move || runnable(ctx))) {
                    Ok(future) => this.stage.set(Stage::Running { future }),
                    Err(payload) => break 'outcome panicked(shared, payload),
                }
            }
            let StageProj::Running { future } = this.stage.as_mut().project() else {
                unreachable!("a finished runnable task was polled")
            };
            // Dropped without another poll: by the tree (an ancestor was aborted), or by
            // its own policy once it is cancelled.
            if this.owner.exiting && incarnation.stop().is_aborted() {
                break 'outcome Ending::Outcome(Outcome::Killed);
            }
            let shutdown = incarnation.stop().shutdown();
            if shutdown == Shutdown::Brutal && this.owner.ctx.is_cancelled() {
                break 'outcome Ending::Outcome(Outcome::Dropped);
            }
            let polled = {
                let _entered = span.map(Span::enter);
                catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
            };
            match polled {
                Ok(Poll::Ready(result)) => break 'outcome Ending::Returned(result),
                Ok(Poll::Pending) => {}
                Err(payload) => break 'outcome panicked(shared, payload),
            }
            // Only a runnable still pending after its cancellation needs a deadline: most
            // return in the poll that sees it, and cost no timer. (A cancellation the tree
            // made is timed by the tree, so that a return which comes late because the
            // runnable blocked its thread is found out there too.)
            if !this.owner.exiting && seen_cancelled(incarnation, this.watch, cx) {
                // From here an exit is owed: count it until the task ends.
                shared.activity.enter();
                this.owner.exiting = true;
                if incarnation.stop().registers()
                    && shared
                        .tree()
                        .exiting(incarnation.key(), incarnation.clone())
                {
                    break 'outcome Ending::Outcome(Outcome::Killed);
                }
                match shutdown {
                    Shutdown::Brutal => break 'outcome Ending::Outcome(Outcome::Dropped),
                    Shutdown::Timeout(grace) => {
                        *this.grace = Some(Box::pin(tokio::time::sleep(grace)));
                    }
                    Shutdown::Infinity => {}
                }
            }
            if !this.owner.exiting
                && let Some(dog) = incarnation.watchdog()
                && starved(dog, this.watchdog, cx)
            {
                break 'outcome Ending::Outcome(Outcome::Watchdog(dog.period));
            }
            if let Some(grace) = this.grace
                && grace.as_mut().poll(cx).is_ready()
            {
                let Shutdown::Timeout(timeout) = shutdown else {
                    unreachable!("only a timeout arms a deadline")
                };
                break 'outcome Ending::Outcome(Outcome::Aborted(timeout));
            }
            shared.activity.leave();
            return Poll::Pending;
        };

        // The children it started in its last poll are spawned before its exit is told.
        drop(deferring);
        // Drop the runnable's future before anything restarts: its resources go first.
        let dropped = finish_stage(this.stage, span);
        let overran = this.grace.as_ref().and_then(|grace| {
            let now = tokio::time::Instant::now();
            (now > grace.deadline()).then(|| now - grace.deadline())
        });
        let outcome = match (outcome, dropped) {
            // A failure already is one; a return whose drop panicked becomes one.
            (Ending::Outcome(outcome), _) => outcome,
            (Ending::Returned(_), Some(message)) => Outcome::DropPanicked(message),
            (Ending::Returned(result), None) => match overran {
                // Returned, but late: it blocked its thread through the deadline.
                Some(by) => {
                    // What it returned no longer matters, but it is the user's to drop.
                    let _ = result.map_err(drop_guarded);
                    Outcome::Overran(by)
                }
                None => Outcome::Returned(
                    result.map_err(|error| ReturnedError::of(error, this.owner.ctx.is_cancelled())),
                ),
            },
        };
        this.owner.close();
        let restart = shared.exited(incarnation.key(), outcome, incarnation.has_logged());
        this.owner.finish();
        Poll::Ready(restart)
    }
}

/// Whether the incarnation is cancelled, as the task sees it after a poll of the runnable:
/// marked by the tree (which also woke the task), or through its handed-out token, which
/// the task then tells the tree of — the node has cancelled itself.
fn seen_cancelled(
    incarnation: &Arc<Incarnation>,
    watch: &mut Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    cx: &mut TaskContext<'_>,
) -> bool {
    let cancel = incarnation.cancel();
    if cancel.is_marked() {
        return true;
    }
    let Some(token) = cancel.handed_out() else {
        return false;
    };
    let watch = watch.get_or_insert_with(|| Box::pin(token.clone().cancelled_owned()));
    if watch.as_mut().poll(cx).is_pending() {
        return false;
    }
    // Cancelled by the tree (which cancels the token once it has marked the node), or by
    // whoever holds the token.
    if !cancel.is_marked() {
        incarnation.shared().cancelled_itself(incarnation.key());
    }
    true
}

/// Whether the watchdog has starved: it is watching, and its due time has come without a
/// heartbeat. Otherwise the timer is left armed for the due time (a heartbeat moves it: the
/// timer fires at the old one, and is set again), or dropped while it is not watching.
fn starved(dog: &Watchdog, timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut TaskContext<'_>) -> bool {
    let Some(due) = dog.due() else {
        *timer = None;
        return false;
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
    if timer.deadline() != due {
        timer.as_mut().reset(due);
    }
    timer.as_mut().poll(cx).is_ready()
}

/// How the runnable ended, before what it returned is worked out.
enum Ending {
    Returned(crate::Result),
    Outcome(Outcome),
}

fn panicked(shared: &Shared, payload: Box<dyn std::any::Any + Send>) -> Ending {
    let message = if shared.propagate_panics {
        let message = crate::error::panic_message(&*payload);
        shared.stash_panic(payload);
        message
    } else {
        // The payload is the user's: dropping it may panic too, and is guarded.
        panic_message_dropped(payload)
    };
    Ending::Outcome(Outcome::Panicked(message))
}

/// Drops the runnable's future, returning the message of a panic in its destructor: the
/// node then fails with it, unless it had failed already.
fn finish_stage<R: Runnable>(mut stage: Pin<&mut Stage<R>>, span: Option<&Span>) -> Option<String> {
    let _entered = span.map(Span::enter);
    catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Finished)))
        .err()
        .map(panic_message_dropped)
}

/// The task's hold on its incarnation. It releases the task's share of the supervisor's
/// activity when the task ends, however it ends (a runtime shutting down drops tasks
/// without finishing them).
struct Owner {
    ctx: Context,
    /// Cancelled: an exit is owed, and counted.
    exiting: bool,
    /// Where the ending is: `Running`, then `Closed` once the runnable has ended (holding
    /// whether a wake was pending then), `Finished` once its exit is told. A cell, as it
    /// is closed while the task still reads the incarnation through it.
    end: Cell<End>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Running,
    Closed { woken: bool },
    Finished,
}

impl Owner {
    /// The runnable has ended: wakes of its incarnation count nothing from here.
    fn close(&self) {
        let woken = self.ctx.incarnation().task_wake().close();
        self.end.set(End::Closed { woken });
    }

    fn finish(&mut self) {
        let End::Closed { woken } = self.end.get() else {
            unreachable!("an incarnation finished without being closed")
        };
        self.end.set(End::Finished);
        let activity = self.ctx.incarnation().activity();
        TaskWake::finish(activity, woken);
        if self.exiting {
            activity.leave();
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let activity = self.ctx.incarnation().activity();
        match self.end.get() {
            End::Finished => return,
            End::Running => self.ctx.incarnation().task_wake().abandon(activity),
            // Dropped between the end and its exit: only by a panic of the supervisor's
            // own; the wake found is still released.
            End::Closed { woken } => {
                if woken {
                    activity.leave();
                }
            }
        }
        if self.exiting {
            activity.leave();
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    async fn idle(_ctx: Context) -> crate::Result {
        Ok(())
    }

    /// Tokio lays a task out as 104 bytes of its own plus the future, in steps of 128: what
    /// the supervisor adds beside the runnable's own future is kept to 64 bytes (the
    /// handed-out token's watch is boxed, the grace timer too), so that a small runnable's
    /// whole task fits in 256.
    #[test]
    fn the_task_adds_little_beside_the_runnable() {
        type Spawned<R> = tokio_util::task::task_tracker::TrackedFuture<RunnableTask<R>>;
        fn overhead<R: Runnable>(_: &R) -> usize {
            std::mem::size_of::<Spawned<R>>() - std::mem::size_of::<Stage<R>>()
        }
        assert!(overhead(&idle) <= 64, "{} bytes", overhead(&idle));
    }

    /// A large tree has one incarnation per runnable, in an `Arc`, and one cancellation:
    /// 88 bytes plus the `Arc`'s 16 is what glibc's allocator serves from a 112-byte chunk,
    /// and 56 plus 16 from an 80-byte one.
    #[test]
    fn the_incarnation_and_its_cancellation_stay_within_their_allocation_classes() {
        let size = std::mem::size_of::<crate::context::Incarnation>();
        assert!(size <= 88, "incarnation: {size} bytes");
        let size = std::mem::size_of::<crate::cancel::Cancel>();
        assert!(size <= 56, "cancellation: {size} bytes");
    }
}
