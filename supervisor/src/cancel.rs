//! A node incarnation's cancellation, which the tree keeps.
//!
//! # Why not a token per node
//!
//! A tree of tokio-util `CancellationToken`s would cancel a subtree by itself, but every
//! token is a node of its own tree, with its own lock: making one locks its parent, asking
//! it locks it, dropping it locks it, and cancelling the root walks every token below
//! under each one's lock in turn, waking each waiter while holding it — so a task woken by
//! that walk on another worker finds its token still locked when it asks whether it is
//! cancelled. The supervisor already keeps the tree, under its own lock: it marks the
//! subtree it cancels there, in one pass, and wakes the tasks once the lock is released.
//!
//! A [`Cancel`] is a flag the tree sets (under its lock), the wake accounting of the
//! incarnation's task (which the tree wakes through it, as the incarnation is that task's
//! waker), and, made only for the few incarnations that need them, the waiters polled from
//! other tasks and the `CancellationToken` handed out by
//! [`Context::cancellation_token`](crate::Context::cancellation_token).
//!
//! # Ordering
//!
//! The flag is set under the tree's lock, before the tree's lock is released; the wakes
//! follow ([`Cancel::fire`]). A waiter registers before it reads the flag, and the firing
//! side sets the flag before it looks for waiters, each with a sequentially consistent
//! fence in between, so one of the two always sees the other.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::sync::futures::{Notified, OwnedNotified};
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, TaskWake};

/// One incarnation's cancellation: see the module's documentation.
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    /// The task's wake accounting. The incarnation, the task's waker, wakes through it.
    pub(crate) wake: TaskWake,
    /// Made on first use.
    outside: OnceLock<Box<Outside>>,
}

/// What only some incarnations need.
#[derive(Default)]
struct Outside {
    /// Futures waiting for the cancellation from another task than the node's (shared, so
    /// that a node's spawned task, which owns its context, can own its wait too).
    waiters: Arc<Notify>,
    /// The token handed out for the incarnation.
    token: OnceLock<CancellationToken>,
}

impl Cancel {
    /// The cancellation of an incarnation about to be started: cancelled already if what
    /// it would inherit from is. Its task's first wake is counted already (see
    /// [`TaskWake::scheduled`]).
    pub(crate) fn new(cancelled: bool) -> Self {
        Cancel {
            cancelled: AtomicBool::new(cancelled),
            wake: TaskWake::scheduled(),
            outside: OnceLock::new(),
        }
    }

    /// The cancellation of something that has no task: the supervisor's own level above
    /// the root.
    pub(crate) fn without_task() -> Self {
        let cancel = Cancel::new(false);
        // No task will ever poll it: its wakes must count nothing.
        cancel.wake.close();
        cancel
    }

    /// Whether the tree has cancelled it (its own view: a cancellation of the handed-out
    /// token counts once the node's task has told the tree).
    pub(crate) fn is_marked(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Whether the incarnation must stop: the tree cancelled it, or its handed-out token
    /// was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.is_marked() || self.token_cancelled()
    }

    /// Whether the handed-out token, if any, was cancelled.
    pub(crate) fn token_cancelled(&self) -> bool {
        self.handed_out()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// The handed-out token, if one was.
    pub(crate) fn handed_out(&self) -> Option<&CancellationToken> {
        self.outside.get().and_then(|outside| outside.token.get())
    }

    /// Sets the flag, under the tree's lock: whether it was not set yet, so that the
    /// caller fires it once the lock is released.
    pub(crate) fn mark(&self) -> bool {
        !self.cancelled.swap(true, Ordering::SeqCst)
    }

    /// Wakes what waits for a cancellation [`mark`](Cancel::mark) has set, outside the
    /// tree's lock: the incarnation's task, the futures polled from other tasks, and the
    /// handed-out token's own waiters (whoever they are).
    pub(crate) fn fire(&self, activity: &Activity) {
        self.wake.wake(activity);
        fence(Ordering::SeqCst);
        if let Some(outside) = self.outside.get() {
            outside.waiters.notify_waiters();
            if let Some(token) = outside.token.get() {
                token.cancel();
            }
        }
    }

    fn outside(&self) -> &Outside {
        self.outside.get_or_init(Box::default)
    }

    /// Takes `token` as its handed-out token, whose cancellation the tree then reads as
    /// this one's: for the supervisor's level, the supervisor's token when it is the child
    /// of one given to the builder. Called before any token was handed out.
    pub(crate) fn adopt(&self, token: CancellationToken) {
        let _ = self.outside().token.set(token);
    }

    /// The token of the incarnation, made on first use: cancelled when the incarnation is,
    /// and the incarnation's task watches it (so cancelling it cancels the node). Making it
    /// wakes the task, which then starts watching it.
    pub(crate) fn token(&self, activity: &Activity) -> CancellationToken {
        let outside = self.outside();
        let mut made = false;
        let token = outside
            .token
            .get_or_init(|| {
                made = true;
                CancellationToken::new()
            })
            .clone();
        if made {
            fence(Ordering::SeqCst);
            if self.is_marked() {
                token.cancel();
            }
            self.wake.wake(activity);
            // The node's spawned tasks watch the token too from now on (so that cancelling
            // it reaches them after the runnable has returned): wake them to start.
            outside.waiters.notify_waiters();
        }
        token
    }

    /// Resolves once the tree has cancelled it: for a task other than the node's own (a
    /// backoff timer, an ordered group's watch).
    pub(crate) fn marked(&self) -> Marked<'_> {
        Marked {
            cancel: self,
            waiter: None,
        }
    }
}

pin_project! {
    /// A wait for the tree's cancellation that owns its registration: for a node's spawned
    /// task ([`NodeTask`](crate::node_task::NodeTask)), which holds its context. Registered
    /// on its first poll; after that a poll is a read of the flag — no lock — as the task
    /// is woken through the waker it registered with (a spawned task's is its own for
    /// life).
    pub(crate) struct MarkedOwned {
        #[pin]
        waiter: Option<OwnedNotified>,
    }
}

impl MarkedOwned {
    pub(crate) fn new() -> Self {
        MarkedOwned { waiter: None }
    }

    /// Forgets the registration, so that the next poll registers again.
    pub(crate) fn reset(self: Pin<&mut Self>) {
        self.project().waiter.set(None);
    }

    /// Whether `cancel` is marked; registers to be woken when it is, the first time.
    pub(crate) fn poll_marked(self: Pin<&mut Self>, cancel: &Cancel, cx: &mut Context<'_>) -> bool {
        let mut waiter = self.project().waiter;
        if cancel.is_marked() {
            return true;
        }
        if waiter.is_none() {
            waiter.set(Some(cancel.outside().waiters.clone().notified_owned()));
            if let Some(mut registered) = waiter.as_mut().as_pin_mut() {
                registered.as_mut().enable();
                // With this poll's waker: a fire from here on wakes the task.
                let _ = registered.poll(cx);
            }
            fence(Ordering::SeqCst);
            return cancel.is_marked();
        }
        false
    }
}

pin_project! {
    /// The future of [`Cancel::marked`].
    pub(crate) struct Marked<'a> {
        cancel: &'a Cancel,
        #[pin]
        waiter: Option<Notified<'a>>,
    }
}

impl Future for Marked<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if this.cancel.is_marked() {
                return Poll::Ready(());
            }
            match this.waiter.as_mut().as_pin_mut() {
                // Registered, and checked after: a fire from here on wakes it.
                Some(waiter) => {
                    if waiter.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Fired, or told that a token was made: look at the flag again, and
                    // register again if it is not set.
                    this.waiter.set(None);
                }
                None => {
                    this.waiter
                        .set(Some(this.cancel.outside().waiters.notified()));
                    if let Some(waiter) = this.waiter.as_mut().as_pin_mut() {
                        waiter.enable();
                    }
                    fence(Ordering::SeqCst);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A waiter in another task resolves once the tree has marked and fired, whether it
    /// registered before the mark or only after it.
    #[tokio::test]
    async fn a_waiter_resolves_once_marked_and_fired() {
        let activity = Activity::default();
        let cancel = Arc::new(Cancel::new(false));
        let early = {
            let cancel = cancel.clone();
            tokio::spawn(async move { cancel.marked().await })
        };
        tokio::task::yield_now().await;
        assert!(!early.is_finished());
        assert!(cancel.mark(), "marked once");
        assert!(!cancel.mark(), "and not twice");
        cancel.fire(&activity);
        early.await.unwrap();
        // Registering after the mark resolves at once.
        cancel.marked().await;
        assert!(cancel.is_cancelled());
    }

    /// The handed-out token follows the cancellation, whether it was made before it (the
    /// fire cancels it) or after it (it is born cancelled); and the node is cancelled
    /// through the token, as the context sees it, before the tree knows.
    #[test]
    fn the_handed_out_token_follows_the_cancellation() {
        let activity = Activity::default();
        let before = Cancel::new(false);
        let token = before.token(&activity);
        assert!(!token.is_cancelled() && !before.is_cancelled());
        before.mark();
        before.fire(&activity);
        assert!(token.is_cancelled());

        let after = Cancel::new(false);
        after.mark();
        assert!(after.token(&activity).is_cancelled());

        let held = Cancel::new(false);
        held.token(&activity).cancel();
        assert!(held.is_cancelled() && !held.is_marked());
    }

    /// The supervisor's level has no task: firing it wakes nothing and counts no work.
    #[test]
    fn a_cancellation_without_a_task_counts_no_wake() {
        let activity = Activity::default();
        let top = Cancel::without_task();
        top.mark();
        top.fire(&activity);
        assert_eq!(activity.busy(), 0);
    }
}
