//! The future of [`Context::cancelled`](crate::Context::cancelled).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio_util::sync::WaitForCancellationFuture;

use crate::context::Incarnation;

pin_project! {
    /// Resolves once its context is cancelled: the future of
    /// [`Context::cancelled`](crate::Context::cancelled).
    ///
    /// Polled by the runnable's own task (the usual case: awaited in the runnable, or in a
    /// `select!` or `join!` there), it waits on nothing of its own: that task already
    /// watches the context's cancellation, and polls the runnable again when it fires. So
    /// a runnable parked in `ctx.cancelled().await` costs its token one waiter, not two.
    /// Polled from another task (a clone of the context moved into a spawned task, a
    /// future given to another executor), it waits on the token as
    /// [`CancellationToken::cancelled`](tokio_util::sync::CancellationToken::cancelled)
    /// does.
    ///
    /// Cancel safe, like the token's own future.
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancellation<'a> {
        incarnation: &'a Arc<Incarnation>,
        // Made the first time it is polled from another task.
        #[pin]
        waiter: Option<WaitForCancellationFuture<'a>>,
    }
}

impl<'a> Cancellation<'a> {
    pub(crate) fn new(incarnation: &'a Arc<Incarnation>) -> Self {
        Cancellation {
            incarnation,
            waiter: None,
        }
    }
}

impl Future for Cancellation<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(waiter) = this.waiter.as_mut().as_pin_mut() {
            return waiter.poll(cx);
        }
        let token = this.incarnation.token();
        if token.is_cancelled() {
            return Poll::Ready(());
        }
        // The runnable's task is woken by the incarnation, its waker: its data is the
        // incarnation's allocation, which nothing else hands out as a waker.
        if std::ptr::eq(cx.waker().data(), Arc::as_ptr(this.incarnation).cast()) {
            return Poll::Pending;
        }
        this.waiter.set(Some(token.cancelled()));
        match this.waiter.as_pin_mut() {
            Some(waiter) => waiter.poll(cx),
            None => unreachable!("the waiter was just set"),
        }
    }
}
