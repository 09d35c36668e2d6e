//! A plain task that belongs to a node ([`Context::spawn`](crate::Context::spawn), DESIGN
//! §15): its `tracing` events land at the node's DN, its wakes count toward `settled()`, it
//! is aborted once the node's context has been cancelled for the node's shutdown grace, and
//! `wait()` outlasts it.
//!
//! It waits for the cancellation among the incarnation's waiters, not on a
//! `CancellationToken`: a token would be made for every node that spawns, and every
//! `is_cancelled` of its context would then take the token's lock — a server's connections
//! and HTTP/2 streams, each a task, would pass that lock between the workers on every
//! poll. A token the runnable asked for itself is watched too: cancelling it reaches the
//! node's tasks also after the runnable has returned.
//!
//! What a task shares — its context, its wake accounting, its abort handle — is one
//! allocation of its own, which is also its waker and its route: a server spawns a task
//! per HTTP/2 stream, and on a multi-thread runtime every count taken of something all
//! its tasks share (the incarnation, the activity) passes a cache line between the workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use pin_project_lite::pin_project;
use tokio::task::AbortHandle;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Span;

use crate::Context;
use crate::activity::{Activity, TaskWake};
use crate::cancel::MarkedOwned;
use crate::logtree::{DnMeta, LogTree, RouteTarget, Routing};

/// What a node's task shares with its waker and its route.
pub(crate) struct TaskState {
    ctx: Context,
    wake: TaskWake,
    // The task's own handle, set right after it is spawned: the deadline aborts the task
    // through it, so that its `JoinHandle` says it was cancelled.
    abort: OnceLock<AbortHandle>,
}

impl TaskState {
    fn activity(&self) -> &Activity {
        &self.ctx.incarnation().shared().activity
    }

    /// Hands the task its own handle, once spawned.
    pub(crate) fn set_abort(&self, abort: AbortHandle) {
        let _ = self.abort.set(abort);
    }
}

/// A wake counts as the supervisor's work (see [`TaskWake`]) before it reaches the runtime.
impl Wake for TaskState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake.wake(self.activity());
    }
}

/// The task's events land at its node's DN.
impl RouteTarget for TaskState {
    fn tree(&self) -> &LogTree {
        self.ctx.incarnation().tree()
    }

    fn meta(&self) -> &Arc<DnMeta> {
        self.ctx.incarnation().meta()
    }
}

pin_project! {
    pub(crate) struct NodeTask<F> {
        state: Arc<TaskState>,
        // The state as a waker, made once.
        waker: Waker,
        #[pin]
        future: F,
        #[pin]
        marked: MarkedOwned,
        // The watch of the token the runnable asked for, once it has.
        token: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        // Armed once the context is cancelled.
        grace: Option<Pin<Box<Sleep>>>,
        finished: bool,
    }

    impl<F> PinnedDrop for NodeTask<F> {
        // Dropped unfinished (aborted, or its runtime shutting down): a wake still counted
        // is released.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.finished {
                this.state.wake.abandon(this.state.activity());
            }
        }
    }
}

impl<F: Future> NodeTask<F> {
    /// The task of `future` in `ctx`'s node, and its state, to hand it its abort handle
    /// once spawned. The spawn counts as its first wake: call it before spawning, under
    /// whatever work leads to the spawn.
    pub(crate) fn new(ctx: Context, future: F) -> (Self, Arc<TaskState>) {
        ctx.incarnation().shared().activity.enter();
        let state = Arc::new(TaskState {
            ctx,
            wake: TaskWake::scheduled(),
            abort: OnceLock::new(),
        });
        let task = NodeTask {
            waker: Waker::from(state.clone()),
            state: state.clone(),
            future,
            marked: MarkedOwned::new(),
            token: None,
            grace: None,
            finished: false,
        };
        (task, state)
    }
}

impl<F: Future> Future for NodeTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let state = &**this.state;
        let polled = state
            .wake
            .poll_counted(state.activity(), cx.waker(), this.waker, |cx| {
                let polled = {
                    let routing = Routing::enter(Some(this.state));
                    let span = state.ctx.span_to_enter(&routing);
                    let _entered = span.map(Span::enter);
                    this.future.as_mut().poll(cx)
                };
                if polled.is_pending() {
                    watch_deadline(state, this.marked, this.token, this.grace, cx);
                }
                polled
            });
        *this.finished = polled.is_ready();
        polled
    }
}

/// Once the node's context is cancelled, arms the node's shutdown grace; once that has
/// passed, aborts the task.
fn watch_deadline(
    state: &TaskState,
    mut marked: Pin<&mut MarkedOwned>,
    token: &mut Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    grace: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut TaskContext<'_>,
) {
    if grace.is_none() {
        let cancel = state.ctx.incarnation().cancel();
        if token.is_none()
            && let Some(handed_out) = cancel.handed_out()
        {
            *token = Some(Box::pin(handed_out.clone().cancelled_owned()));
            // Making the token woke the incarnation's waiters, this one among them: its
            // registration is spent.
            marked.as_mut().reset();
        }
        let by_token = token
            .as_mut()
            .is_some_and(|token| token.as_mut().poll(cx).is_ready());
        if marked.poll_marked(cancel, cx) || by_token {
            *grace = Some(Box::pin(tokio::time::sleep(state.ctx.shutdown_grace())));
        }
    }
    if let Some(grace) = grace
        && grace.as_mut().poll(cx).is_ready()
    {
        match state.abort.get() {
            // Cancelled at its next yield, which is this one: its handle says so.
            Some(abort) => abort.abort(),
            // Not handed its handle yet (the spawner is between the spawn and setting it):
            // look again at once.
            None => cx.waker().wake_by_ref(),
        }
    }
}
