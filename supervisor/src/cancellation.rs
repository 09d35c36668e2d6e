//! The future of [`Context::cancelled`](crate::Context::cancelled).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::cancel::Marked;
use crate::context::Incarnation;

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
    // Made the first time it is polled from another task; boxed, so that the runnable
    // awaiting it in its own task (whose future it makes part of) carries 16 bytes.
    waiter: Option<Pin<Box<Marked<'a>>>>,
}

impl<'a> Cancellation<'a> {
    pub(crate) fn new(incarnation: &'a Arc<Incarnation>) -> Self {
        Cancellation {
            incarnation,
            waiter: None,
        }
    }
}

impl fmt::Debug for Cancellation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellation")
            .field("dn", &self.incarnation.dn())
            .field("cancelled", &self.incarnation.cancel().is_cancelled())
            .finish()
    }
}

impl Future for Cancellation<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        let cancel = this.incarnation.cancel();
        // Also true at once for a cancelled handed-out token (or builder's token), which the
        // tree learns of only from the node's task (or the token's watch).
        if this.incarnation.is_cancelled() {
            return Poll::Ready(());
        }
        if this.waiter.is_none()
            // The runnable's task is woken by the incarnation, its waker: its data is the
            // incarnation's allocation, which nothing else hands out as a waker.
            && std::ptr::eq(cx.waker().data(), Arc::as_ptr(this.incarnation).cast())
        {
            return Poll::Pending;
        }
        this.waiter
            .get_or_insert_with(|| Box::pin(cancel.marked()))
            .as_mut()
            .poll(cx)
    }
}

#[cfg(test)]
mod tests {
    /// Most runnables await `ctx.cancelled()`, so it is part of most runnables' futures,
    /// and of their tasks' allocations: a waiter for another task is boxed apart.
    #[test]
    fn the_future_a_runnable_awaits_is_two_words() {
        let size = std::mem::size_of::<super::Cancellation<'static>>();
        assert!(size <= 16, "{size} bytes");
    }
}
