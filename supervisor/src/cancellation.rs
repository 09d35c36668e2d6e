//! The future of [`Context::cancelled`](crate::Context::cancelled).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::cancel::Marked;
use crate::context::Incarnation;

pin_project! {
    /// Resolves once its context is cancelled: the future of
    /// [`Context::cancelled`](crate::Context::cancelled).
    ///
    /// Polled by the runnable's own task (the usual case: awaited in the runnable, or in a
    /// `select!` or `join!` there), it registers nothing: the supervisor wakes that task
    /// when it cancels the node, and the task polls the runnable again. Polled from another
    /// task (a clone of the context moved into a spawned task, a future given to another
    /// executor), it waits among the context's other waiters, which are woken too.
    ///
    /// Cancel safe: dropping it loses nothing, and a new one resolves at once if the
    /// context is already cancelled.
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancellation<'a> {
        incarnation: &'a Arc<Incarnation>,
        // Made the first time it is polled from another task.
        #[pin]
        waiter: Option<Marked<'a>>,
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
        let cancel = this.incarnation.cancel();
        // Also true at once for a cancelled handed-out token, which the tree learns of
        // only from the node's task.
        if cancel.is_cancelled() {
            return Poll::Ready(());
        }
        if this.waiter.is_none() {
            // The runnable's task is woken by the incarnation, its waker: its data is the
            // incarnation's allocation, which nothing else hands out as a waker.
            if std::ptr::eq(cx.waker().data(), Arc::as_ptr(this.incarnation).cast()) {
                return Poll::Pending;
            }
            this.waiter.set(Some(cancel.marked()));
        }
        match this.waiter.as_pin_mut() {
            Some(waiter) => waiter.poll(cx),
            None => unreachable!("the waiter was just set"),
        }
    }
}
