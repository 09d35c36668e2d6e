//! Knowing, exactly, when the supervisor has nothing left to do: the basis of
//! [`Supervisor::settled`](crate::Supervisor::settled).
//!
//! # Invariant
//!
//! `busy` counts the units of work the supervisor knows will happen without an outside
//! event: a supervised task that has been woken or is being polled, a task that is past its
//! cancellation and must still return (or be aborted), a restart waiting for its backoff,
//! and an ordered group's watch or a node's task once woken ([`Counted`]; a node's task
//! keeps the same [`TaskWake`] in its own state). A count is always taken before the one it
//! replaces is released (a wake is counted before the poll that caused it ends; a restart
//! is counted before the exiting task ends), so `busy` touches zero only when the whole
//! tree is idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;
use tokio::sync::Notify;

use crate::lock::lock;

/// The count of outstanding work, kept in shards so that the workers of a multi-thread
/// runtime, which enter and leave work on every wake, poll and exit, do not pass one cache
/// line back and forth: each thread counts in its own shard (threads beyond the shards
/// share them), and only a caller of `settled` sums them.
///
/// A shard is one word: the low 32 bits are its count (two's complement: work entered on
/// one thread and left on another makes shards negative; only their sum means anything),
/// the high 32 bits change on every update. A sum is taken by reading every shard twice
/// over: if no shard changed between its two reads, every shard held its value at once
/// (after the last first read and before the first second read), so the sum is exact at
/// that instant. A sum that sees a change is not taken. Every leave sums after it (while
/// someone waits), so the leave that empties the tree gets a sum of its own unless a new
/// unit enters meanwhile; then that unit's own leave sums again. (An idle instant cut
/// short by an outside event, such as a child started from a plain thread, can so be
/// missed: `settled` then resolves once that work is done too.)
pub(crate) struct Activity {
    shards: Box<[Shard]>,
    /// Callers inside `settled`: only they need telling, and telling costs a sum.
    waiters: AtomicUsize,
    idle: Notify,
}

/// The most shards an `Activity` has: a sum's first reads are kept on the stack.
const MAX_SHARDS: usize = 256;

/// One shard, alone on its cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicU64);

/// Adds one to a shard's count and changes its high half.
const ENTER: u64 = (1 << 32) | 1;
/// Takes one from a shard's count (adding 2^32 - 1 to the low half; a carry out of it only
/// moves the high half further) and changes its high half.
const LEAVE: u64 = (1 << 32) | 0xFFFF_FFFF;

thread_local! {
    /// The shard this thread counts in.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Default for Activity {
    fn default() -> Self {
        // A shard for each thread that can run tasks at once, and some to spare for the
        // threads outside the runtime (a test's, `spawn_blocking`'s) that start work too.
        let threads = std::thread::available_parallelism().map_or(8, usize::from);
        let shards = (2 * threads).next_power_of_two().clamp(8, MAX_SHARDS);
        Activity {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            waiters: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("busy", &self.busy())
            .field("waiters", &self.waiters.load(Ordering::SeqCst))
            .finish()
    }
}

impl Activity {
    fn shard(&self) -> &AtomicU64 {
        let i = SHARD.with(|i| *i) & (self.shards.len() - 1);
        &self.shards[i].0
    }

    pub(crate) fn enter(&self) {
        self.shard().fetch_add(ENTER, Ordering::SeqCst);
    }

    pub(crate) fn leave(&self) {
        self.shard().fetch_add(LEAVE, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 && self.sum() == Some(0) {
            self.idle.notify_waiters();
        }
    }

    /// The outstanding work at one instant, or `None` if it moved while being summed.
    fn sum(&self) -> Option<i64> {
        let mut first = [0u64; MAX_SHARDS];
        let first = &mut first[..self.shards.len()];
        for (seen, shard) in first.iter_mut().zip(self.shards.iter()) {
            *seen = shard.0.load(Ordering::SeqCst);
        }
        let mut sum = 0i64;
        for (seen, shard) in first.iter().zip(self.shards.iter()) {
            if shard.0.load(Ordering::SeqCst) != *seen {
                return None;
            }
            // The low half, as the signed count it is.
            sum += i64::from(*seen as u32 as i32);
        }
        Some(sum)
    }

    /// Units of work outstanding now (a sum taken once the work holds still for it).
    pub(crate) fn busy(&self) -> usize {
        loop {
            if let Some(sum) = self.sum() {
                return usize::try_from(sum).unwrap_or(0);
            }
            std::hint::spin_loop();
        }
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
            // Register, then count as a waiter (above), then look: a leave that makes the
            // work zero after the look sees the waiter and notifies the registered future.
            notified.as_mut().enable();
            if self.sum() == Some(0) {
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

    /// Called when the runnable has ended, before its exit is told: makes later wakes
    /// count nothing, and returns whether one arrived during the poll, for
    /// [`finish`](TaskWake::finish) to release.
    ///
    /// The exit cancels the ended incarnation (a failure does), and firing that
    /// cancellation wakes the task through this accounting. Passed on, that wake would have
    /// the runtime poll the task again for nothing — by then the task is often running the
    /// node's next incarnation, restarted in it at once.
    ///
    /// It also lets go of the runtime's waker, which nothing uses from here on: held, it
    /// would keep the ended task's memory allocated for as long as the tree keeps the
    /// incarnation's cancellation — for a node that ended `Done` and is not restarted,
    /// until it leaves the tree.
    pub(crate) fn close(&self) -> bool {
        let woken = self.scheduled.swap(true, Ordering::SeqCst);
        self.let_go_of_runtime();
        woken
    }

    /// Drops the runtime's waker, outside the lock that keeps it.
    fn let_go_of_runtime(&self) {
        let runtime = lock(&self.runtime).take();
        drop(runtime);
    }

    /// Called once the task's exit is told: releases the poll's unit and the wake that
    /// [`close`](TaskWake::close) found.
    pub(crate) fn finish(activity: &Activity, woken: bool) {
        if woken {
            activity.leave();
        }
        activity.leave();
    }

    /// One poll of a task that counts its own wakes: `poll` runs with `own`, the task's
    /// waker that reaches this accounting, and the poll's unit of work is released when it
    /// returns — with the wakes counted meanwhile, once it has finished.
    pub(crate) fn poll_counted<T>(
        &self,
        activity: &Activity,
        runtime: &Waker,
        own: &Waker,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.begin_poll(activity, runtime);
        let polled = poll(&mut Context::from_waker(own));
        if polled.is_ready() {
            let woken = self.close();
            TaskWake::finish(activity, woken);
        } else {
            activity.leave();
        }
        polled
    }

    /// Called when the task is dropped without finishing (its runtime is shutting down):
    /// releases a pending wake, outside any poll, and lets go of the runtime's waker as
    /// [`close`](TaskWake::close) does.
    pub(crate) fn abandon(&self, activity: &Activity) {
        if self.scheduled.swap(true, Ordering::SeqCst) {
            activity.leave();
        }
        self.let_go_of_runtime();
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

/// The wake accounting of a task that is not a runnable's — an ordered group's watch, the
/// systemd notifier: what it does once woken is work, counted from the wake, so that
/// `settled` cannot resolve between a cancellation and the task acting on it. (A node's
/// task keeps the same accounting in its own state, `node_task::TaskState`.)
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
        let polled = counter
            .wake
            .poll_counted(&counter.activity, cx.waker(), this.waker, |cx| {
                this.future.poll(cx)
            });
        this.finish.finished = polled.is_ready();
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::Activity;

    fn polled(settled: std::pin::Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        settled.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Once closed, the accounting holds no waker of the runtime's: the ended task's memory
    /// is not kept alive by the tree, which keeps the cancellation the accounting is in.
    #[test]
    fn a_closed_task_lets_go_of_its_runtime_waker() {
        struct Runtime;
        impl std::task::Wake for Runtime {
            fn wake(self: Arc<Self>) {}
        }
        let runtime = Arc::new(Runtime);
        let waker = Waker::from(runtime.clone());
        let activity = Activity::default();
        // The spawn's wake, which the spawner enters.
        activity.enter();
        let wake = super::TaskWake::scheduled();
        wake.begin_poll(&activity, &waker);
        drop(waker);
        assert_eq!(Arc::strong_count(&runtime), 2, "held while the task runs");
        let woken = wake.close();
        assert!(!woken);
        assert_eq!(Arc::strong_count(&runtime), 1, "let go once closed");
        // A wake after the close counts nothing and reaches nothing.
        wake.wake(&activity);
        super::TaskWake::finish(&activity, woken);
        assert_eq!(activity.busy(), 0);
    }

    /// Work entered on one thread and left on another leaves one shard above zero and one
    /// below: the sum, not any shard, says the tree is idle.
    #[test]
    fn work_moved_between_threads_sums_to_idle() {
        let activity = Arc::new(Activity::default());
        let held = activity.hold();
        let mut settled = pin!(activity.settled());
        assert_eq!(polled(settled.as_mut()), Poll::Pending);
        std::thread::spawn(move || drop(held)).join().unwrap();
        assert_eq!(activity.busy(), 0);
        assert_eq!(polled(settled.as_mut()), Poll::Ready(()));
    }

    /// Units handed from thread to thread, each taken before the one it replaces is let
    /// go, never let `settled` resolve while one is held, and it resolves once the last
    /// is gone.
    #[test]
    fn handed_on_work_is_never_idle_until_it_ends() {
        let activity = Arc::new(Activity::default());
        let mut unit = activity.hold();
        let mut settled = pin!(activity.settled());
        for _ in 0..1_000 {
            let handed = activity.clone();
            unit = std::thread::spawn(move || {
                // The next unit first, then the one it replaces.
                let next = handed.hold();
                drop(unit);
                next
            })
            .join()
            .unwrap();
            assert_eq!(polled(settled.as_mut()), Poll::Pending);
            assert_eq!(activity.busy(), 1);
        }
        drop(unit);
        assert_eq!(polled(settled.as_mut()), Poll::Ready(()));
    }

    /// Many threads entering and leaving at once: whatever the interleaving, the count is
    /// exact when they are done.
    #[test]
    fn concurrent_work_counts_exactly() {
        let activity = Arc::new(Activity::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let activity = activity.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..10_000 {
                        held.push(activity.hold());
                        if i % 3 == 0 {
                            held.clear();
                        }
                    }
                    held.clear();
                    held.extend((0..5).map(|_| activity.hold()));
                    held
                })
            })
            .collect();
        let held: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(activity.busy(), 8 * 5);
        drop(held);
        assert_eq!(activity.busy(), 0);
    }
}
