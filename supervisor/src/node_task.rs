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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::task::AbortHandle;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Span;

use crate::Context;
use crate::cancel::MarkedOwned;
use crate::logtree::Routing;

pin_project! {
    pub(crate) struct NodeTask<F> {
        ctx: Context,
        #[pin]
        future: F,
        #[pin]
        marked: MarkedOwned,
        // The watch of the token the runnable asked for, once it has.
        token: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        // Armed once the context is cancelled.
        grace: Option<Pin<Box<Sleep>>>,
        // The task's own handle, set right after it is spawned: the deadline aborts the
        // task through it, so that its `JoinHandle` says it was cancelled.
        abort: Arc<OnceLock<AbortHandle>>,
    }
}

impl<F: Future> NodeTask<F> {
    pub(crate) fn new(ctx: Context, future: F, abort: Arc<OnceLock<AbortHandle>>) -> Self {
        NodeTask {
            ctx,
            future,
            marked: MarkedOwned::new(),
            token: None,
            grace: None,
            abort,
        }
    }
}

impl<F: Future> Future for NodeTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let incarnation = this.ctx.incarnation();
        let routing = Routing::enter(Some(incarnation));
        let span = this.ctx.span_to_enter(&routing);
        let polled = {
            let _entered = span.map(Span::enter);
            this.future.poll(cx)
        };
        if polled.is_ready() {
            return polled;
        }
        if this.grace.is_none() {
            let cancel = incarnation.cancel();
            let mut marked = this.marked;
            if this.token.is_none()
                && let Some(token) = cancel.handed_out()
            {
                *this.token = Some(Box::pin(token.clone().cancelled_owned()));
                // Making the token woke the incarnation's waiters, this one among them: its
                // registration is spent.
                marked.as_mut().reset();
            }
            let by_token = this
                .token
                .as_mut()
                .is_some_and(|token| token.as_mut().poll(cx).is_ready());
            if marked.poll_marked(cancel, cx) || by_token {
                let grace = this.ctx.shutdown_grace();
                *this.grace = Some(Box::pin(tokio::time::sleep(grace)));
            }
        }
        if let Some(grace) = this.grace
            && grace.as_mut().poll(cx).is_ready()
        {
            match this.abort.get() {
                // Cancelled at its next yield, which is this one: its handle says so.
                Some(abort) => abort.abort(),
                // Not handed its handle yet (the spawner is between the spawn and setting
                // it): look again at once.
                None => cx.waker().wake_by_ref(),
            }
        }
        Poll::Pending
    }
}
