//! Knowing, exactly, when the supervisor has nothing left to do: the basis of
//! [`Supervisor::settled`](crate::Supervisor::settled).
//!
//! # Invariant
//!
//! `busy` counts the units of work the supervisor knows will happen without an outside
//! event: a supervised task that has been woken or is being polled, a task that is past its
//! cancellation and must still return (or be aborted), a restart waiting for its backoff,
//! and an ordered group's watch or a node's task once woken ([`Counted`]). A count is always taken before the one it replaces is released (a wake is
//! counted before the poll that caused it ends; a restart is counted before the exiting
//! task ends), so `busy` touches zero only when the whole tree is idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;
use tokio::sync::Notify;

use crate::lock::lock;

#[derive(Debug, Default)]
pub(crate) struct Activity {
    busy: AtomicUsize,
    /// Callers inside `settled`: only they need telling, and telling costs a lock.
    waiters: AtomicUsize,
    idle: Notify,
}

impl Activity {
    pub(crate) fn enter(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiters.load(Ordering::SeqCst) > 0
        {
            self.idle.notify_waiters();
        }
    }

    /// Units of work outstanding now.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Takes a unit of work that lasts as long as the returned guard.
    pub(crate) fn hold(self: &Arc<Self>) -> Busy {
        self.enter();
        Busy(self.clone())
    }

    pub(crate) async fn settled(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register, then count as a waiter (above), then look: a drop to zero after the
            // look sees the waiter and notifies the registered future.
            notified.as_mut().enable();
            if self.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a caller of `settled` for as long as it waits (also if its future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A unit of work held in [`Activity`] until dropped.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// The wake accounting of one supervised task: it counts a wake as work before passing
/// it on to the runtime's waker. It lives in the task's incarnation (one allocation with
/// its context), which is the [`Wake`](std::task::Wake) the task hands to the futures it
/// polls; the activity is the supervisor's, passed in.
#[derive(Debug)]
pub(crate) struct TaskWake {
    /// Woken since the last poll began, or finished (then wakes count nothing).
    scheduled: AtomicBool,
    runtime: std::sync::Mutex<Option<Waker>>,
}

impl TaskWake {
    /// The accounting of a task that is about to be spawned: the spawn itself counts as a
    /// wake, which the caller has already entered in the activity (under the tree's lock,
    /// so that it is counted before the spawner releases its own work).
    pub(crate) fn scheduled() -> Self {
        TaskWake {
            scheduled: AtomicBool::new(true),
            runtime: std::sync::Mutex::new(None),
        }
    }

    /// Called at the start of each poll: the poll holds one unit of work, either the wake
    /// that caused it or a fresh one.
    pub(crate) fn begin_poll(&self, activity: &Activity, runtime: &Waker) {
        if !self.scheduled.swap(false, Ordering::SeqCst) {
            activity.enter();
        }
        let mut slot = lock(&self.runtime);
        if !slot.as_ref().is_some_and(|w| w.will_wake(runtime)) {
            *slot = Some(runtime.clone());
        }
    }

    /// Called when the task has finished: releases the poll's unit and any wake that
    /// arrived during it, and makes later wakes (from stale wakers) count nothing.
    pub(crate) fn finish(&self, activity: &Activity) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            activity.leave();
        }
        activity.leave();
    }

    /// Called when the task is dropped without finishing (its runtime is shutting down):
    /// releases a pending wake, outside any poll.
    pub(crate) fn abandon(&self, activity: &Activity) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            activity.leave();
        }
    }

    /// A wake from one of the futures the task polls. Only the first wake since the last
    /// poll began is passed on: the runtime has been (or, for a task not yet polled, is
    /// about to be) asked for that poll already, and a task waiting on its context and on
    /// the runnable's futures is often woken twice by one cancellation.
    pub(crate) fn wake(&self, activity: &Activity) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        activity.enter();
        let slot = lock(&self.runtime);
        if let Some(waker) = slot.as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// The wake accounting of a task that is not a runnable's — an ordered group's watch, a
/// node's task (`Context::spawn`): what it does once woken is work, counted from the wake,
/// so that `settled` cannot resolve between a cancellation and the task acting on it.
struct Counter {
    wake: TaskWake,
    activity: Arc<Activity>,
}

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake.wake(&self.activity);
    }
}

/// Releases the task's count if it is dropped unfinished (its runtime shutting down).
struct Finish {
    counter: Arc<Counter>,
    finished: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.finished {
            self.counter.wake.abandon(&self.counter.activity);
        }
    }
}

pin_project! {
    /// `future`, with its wakes counted as the supervisor's work (see [`TaskWake`]).
    pub(crate) struct Counted<F> {
        #[pin]
        future: F,
        waker: Waker,
        finish: Finish,
    }
}

impl<F: Future> Counted<F> {
    /// Counts the spawn as the first wake: call it before spawning, under whatever work
    /// leads to the spawn.
    pub(crate) fn new(activity: &Arc<Activity>, future: F) -> Self {
        activity.enter();
        let counter = Arc::new(Counter {
            wake: TaskWake::scheduled(),
            activity: activity.clone(),
        });
        Counted {
            future,
            waker: Waker::from(counter.clone()),
            finish: Finish {
                counter,
                finished: false,
            },
        }
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let counter = &this.finish.counter;
        counter.wake.begin_poll(&counter.activity, cx.waker());
        let mut counted = Context::from_waker(this.waker);
        match this.future.poll(&mut counted) {
            Poll::Ready(output) => {
                counter.wake.finish(&counter.activity);
                this.finish.finished = true;
                Poll::Ready(output)
            }
            Poll::Pending => {
                counter.activity.leave();
                Poll::Pending
            }
        }
    }
}
