//! What a supervisor's handle, contexts and tasks share.
//!
//! # How a start and an exit flow
//!
//! A context asks the [`Tree`] (under its lock) to add children; the tree records them,
//! marks them running and returns [`Effects`]: the tasks to start. After the lock is
//! released, [`Shared::apply`] spawns them on the supervisor's runtime. A task runs its
//! runnable; when the runnable ends, the task works out what it returned — formatting and
//! dropping the user's error, catching any panic there — and only then reports a plain
//! [`Outcome`] to the tree, which decides the restarts and returns them as effects again.
//!
//! # The tree's lock
//!
//! Invariant: under the tree's lock runs only the supervisor's own bookkeeping, plus
//! - the metrics sinks (`Metrics::notify_node_state`, whose panics are caught and logged
//!   after the lock is released) and their own locks;
//! - setting the flags of the cancellations it makes (the wakes of their waiters come after
//!   the lock is released, from [`Effects::fired`]), and cancelling the supervisor's token,
//!   whose only waiters are the supervisor's own;
//! - the `Abort`s that cancelled tasks register (their incarnations), which set a flag and
//!   wake their task.
//!
//! Nothing a user gave is formatted, inspected (`source()`), or dropped under it, and
//! nothing is logged under it (logging reaches the application's subscriber): errors
//! arrive as text, the runnables of forgotten nodes leave in the effects, and notes are
//! logged by `apply`. Each of those steps outside the lock is guarded: a panic there fails
//! the node it belongs to, or is logged, and never reaches the tree.
//!
//! If the lock is poisoned all the same (a bug of the supervisor's), the tree may be half
//! updated: the supervisor fails stop — it cancels the whole tree and logs why at
//! `supervisor` — rather than carry on restarting from a state it cannot trust.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activity::{Activity, Counted};
use crate::cancel::Cancel;
use crate::error::ControlError;
use crate::error::drop_guarded;
use crate::lock::lock;
use crate::logtree::{LogTree, Logger, Parts, Severity};
use crate::name::in_subtree;
use crate::tree::{
    Control, Effects, Forgotten, Key, Note, Outcome, Start, Timer, Told, Tree, Watch,
};

pub(crate) struct Shared {
    tree: Mutex<Tree>,
    /// The supervisor's token: cancelled with the tree.
    pub(crate) token: CancellationToken,
    /// The tree's supervisor level (`Tree::top`), read without the lock: its handed-out
    /// token is the supervisor's when a builder's token is its parent.
    top: Arc<Cancel>,
    /// Every task the supervisor spawns, so that `wait` can outlast them all.
    pub(crate) tracker: TaskTracker,
    /// The runtime the supervisor was started on. Every task is spawned here, whichever
    /// thread asks (a `Context` is `Send`: `run` may be called from a plain thread or from
    /// inside another runtime).
    runtime: Handle,
    /// The tree's lock was found poisoned, and the tree failed stop.
    poisoned: AtomicBool,
    pub(crate) activity: Arc<Activity>,
    pub(crate) propagate_panics: bool,
    pub(crate) log_tree: LogTree,
    /// The supervisor's own log, at DN `supervisor`.
    log: Logger,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Counts the changes to the tree's health told since it was first watched.
    health: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new(
        runtime: Handle,
        tree: Tree,
        token: CancellationToken,
        activity: Arc<Activity>,
        propagate_panics: bool,
        log_tree: LogTree,
    ) -> Self {
        let log = Logger::new(
            log_tree.clone(),
            log_tree.meta_of_node(&Arc::from("supervisor")),
        );
        let top = tree.top().clone();
        Shared {
            tree: Mutex::new(tree),
            token,
            top,
            tracker: TaskTracker::new(),
            runtime,
            poisoned: AtomicBool::new(false),
            activity,
            propagate_panics,
            log_tree,
            log,
            panic: Mutex::new(None),
            health: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The tree, locked. Nothing under the lock panics but a supervisor bug: a poisoned
    /// lock means the tree may be half updated, so the supervisor fails stop (see the
    /// module's documentation) and the tree is used only to wind down.
    pub(crate) fn tree(&self) -> MutexGuard<'_, Tree> {
        match self.tree.lock() {
            Ok(tree) => tree,
            Err(poisoned) => {
                // Released before logging and cancelling, which must not run under it.
                drop(poisoned);
                self.fail_stop();
                self.tree.lock().unwrap_or_else(PoisonError::into_inner)
            }
        }
    }

    /// Runs `act` on the tree under its lock, for a call that takes no [`Effects`] (starting
    /// children moves only its starts, a signal nothing), and once the lock is released
    /// logs what the metrics sinks' panics left to log and tells whoever waits on the
    /// tree's health of a change.
    pub(crate) fn in_tree<T>(&self, act: impl FnOnce(&mut Tree) -> T) -> T {
        let (done, after) = {
            let mut tree = self.tree();
            let done = act(&mut tree);
            (done, tree.take_after_lock())
        };
        if let Some((sink_panics, health)) = after {
            if !sink_panics.is_empty() {
                self.log_notes(&sink_panics);
            }
            if health {
                self.tell_health();
            }
        }
        done
    }

    fn fail_stop(&self) {
        if self.poisoned.swap(true, Ordering::SeqCst) {
            return;
        }
        let why = "the supervision tree's lock is poisoned (a panic inside the supervisor \
                   while it was updating the tree): the tree can no longer be trusted, so \
                   everything is shut down and nothing is restarted";
        tracing::error!(target: "supervisor", parent: None, "{why}");
        self.log.error(why);
        let mut effects = Effects::default();
        {
            let mut tree = self.tree.lock().unwrap_or_else(PoisonError::into_inner);
            // The walk reads only the tree's structure, but that may be what is broken: a
            // second panic leaves what it marked so far, and the supervisor's token.
            let _ = catch_unwind(AssertUnwindSafe(|| tree.cancel_all(&mut effects)));
        }
        self.fire(effects.fired);
        self.token.cancel();
    }

    /// Spawns `task` on the supervisor's runtime, tracked so that `wait` outlasts it.
    pub(crate) fn spawn_task<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn_on(task, &self.runtime);
    }

    /// Spawns `task` on the supervisor's runtime, tracked, with its wakes counted as the
    /// supervisor's work (see [`Counted`]).
    pub(crate) fn spawn_counted<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_tracked(Counted::new(&self.activity, task))
    }

    /// Spawns `task` on the supervisor's runtime, for [`wait`](crate::Supervisor::wait)
    /// to outlast; `task` counts its own wakes ([`Counted`], or a node's task).
    pub(crate) fn spawn_tracked<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn_on(task, &self.runtime)
    }

    /// Carries out what a change to the tree asked for.
    pub(crate) fn apply(self: &Arc<Self>, effects: Effects) {
        if effects.is_empty() {
            return;
        }
        let Effects {
            fired,
            starts,
            timers,
            notes,
            forgotten,
            left,
            left_before,
            health,
        } = effects;
        self.fire(fired);
        if health {
            self.tell_health();
        }
        if !notes.is_empty() {
            self.log_notes_left(&notes, &left);
        }
        // Before anything starts: a newcomer may take a freed name at once.
        for dn in &left {
            self.log_tree.forget_below(dn, left_before);
        }
        for start in starts {
            self.spawn(start);
        }
        for timer in timers {
            self.arm(timer);
        }
        for forgotten in forgotten {
            self.drop_forgotten(forgotten);
        }
    }

    /// Wakes what waits on the cancellations the tree has just set.
    fn fire(&self, fired: impl IntoIterator<Item = Arc<Cancel>>) {
        for cancel in fired {
            cancel.fire(&self.activity);
        }
    }

    /// Logs `notes`, with one timestamp.
    pub(crate) fn log_notes(&self, notes: &[Note]) {
        self.log_notes_left(notes, &[]);
    }

    /// Logs `notes`, but nothing at the DNs below `left`, whose logs are dropped.
    fn log_notes_left(&self, notes: &[Note], left: &[Arc<str>]) {
        let now = SystemTime::now();
        for note in notes {
            self.log(note, now, left);
        }
    }

    /// Drops the runnable of a forgotten node. Its captured state is the user's, and its
    /// `Drop` may panic: that is logged at the node's DN and at `supervisor`, and nothing
    /// else of the tree is touched (the node is gone; its parent is starting anew).
    /// (A node that left the tree for good has it logged at `supervisor` only: its own log
    /// has gone with it.)
    fn drop_forgotten(&self, forgotten: Forgotten) {
        let Forgotten {
            dn,
            runnable,
            removed,
        } = forgotten;
        if let Some(message) = drop_guarded(runnable) {
            let text = Parts::from(format!(
                "the runnable of forgotten node {dn} panicked when dropped: {message}"
            ));
            let now = SystemTime::now();
            if !removed {
                self.log_tree
                    .log_parts(&dn, Severity::Error, text.clone(), now);
            }
            tracing::error!(target: "supervisor", parent: None, %dn, "{text}");
            self.log.log_parts(Severity::Error, text, now);
        }
    }

    /// Whether the tree's runtime is a multi-thread one, whose other workers may run a task
    /// spawned now at once (see [`deferred`](crate::deferred)).
    pub(crate) fn on_many_workers(&self) -> bool {
        !matches!(
            self.runtime.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        )
    }

    /// Starts the task of a (re)started node. The root's starts are logged at INFO (a
    /// supervisor starting, or its whole tree restarting); every other node's at verbosity 1,
    /// so that large trees cost nothing to start unless asked to say so.
    ///
    /// Asked for while a runnable is being polled on this thread, the task is spawned when
    /// that poll ends (see [`deferred`](crate::deferred)).
    pub(crate) fn spawn(self: &Arc<Self>, start: Start) {
        if let Some(start) = crate::deferred::hold(self, start) {
            self.spawn_now(start);
        }
    }

    /// Spawns the task of `start` now, whoever asks (the starts held back in a poll come
    /// here when it ends).
    pub(crate) fn spawn_now(self: &Arc<Self>, start: Start) {
        self.log_start(&start);
        start.runnable.clone().spawn(self, start);
    }

    fn log_start(&self, start: &Start) {
        if &*start.dn == "root" {
            self.log.info("starting root");
        } else {
            let verbose = self.log.v(1);
            if verbose.enabled() {
                verbose.info(format_args!("starting {}", start.dn));
            }
        }
    }

    fn arm(self: &Arc<Self>, timer: Timer) {
        let shared = self.clone();
        let Timer {
            key,
            delay,
            parent,
            skip,
            busy,
        } = timer;
        self.spawn_task(async move {
            let effects = tokio::select! {
                biased;
                () = parent.marked() => shared.tree().backoff_cancelled(key),
                // The restart was made without it.
                () = skip.marked() => Effects::default(),
                () = tokio::time::sleep(delay) => shared.tree().backoff_elapsed(key),
            };
            shared.apply(effects);
            drop(busy);
        });
    }

    /// Watches the parent of an ordered group: once it is cancelled, the tree stops the
    /// members in turn. The watch ends then, or when the tree has finished by itself.
    pub(crate) fn watch(self: &Arc<Self>, watch: Watch) {
        let shared = self.clone();
        let Watch {
            parent,
            group,
            cancelled,
            finished,
        } = watch;
        // Counted: between the parent's cancellation and the watch's step the tree has work
        // to do, which `settled` must see.
        self.spawn_counted(async move {
            tokio::select! {
                () = cancelled.marked() => {
                    let effects = shared.tree().parent_cancelled(parent, group);
                    shared.apply(effects);
                }
                () = finished.cancelled() => {}
            }
        });
    }

    /// Watches the token given to the builder: once it is cancelled, so is the tree. The
    /// watch ends then, or when the tree has finished by itself, so that `wait` outlasts it.
    /// (The supervisor's token is a child of it, and tells `Supervisor::is_cancelled` at
    /// once; the nodes' cancellations are the tree's, which only this tells.)
    pub(crate) fn watch_token(self: &Arc<Self>, parent: CancellationToken) {
        let finished = self.tree().watch_builder_token();
        let shared = self.clone();
        // Counted: between the token's cancellation and the tree's the supervisor has work
        // to do, which `settled` must see.
        self.spawn_counted(async move {
            tokio::select! {
                () = parent.cancelled() => shared.cancel(),
                () = finished.cancelled() => {}
            }
        });
    }

    /// Whether the token given to the builder, if any, was cancelled: a context reads it
    /// at once, before the token's watch has cancelled the tree.
    pub(crate) fn external_cancelled(&self) -> bool {
        self.top.token_cancelled()
    }

    /// Records how the task of `key` ended and restarts what that makes restartable;
    /// `logged` if the incarnation made a logger at its DN.
    ///
    /// A restart of `key` itself is not spawned but returned: the exiting task runs the
    /// next incarnation (see [`RunnableTask`](crate::task::RunnableTask)), which spares a
    /// restart a task's allocation, a trip through the scheduler and, on a multi-thread
    /// runtime, the wake of another worker to steal it.
    pub(crate) fn exited(
        self: &Arc<Self>,
        key: Key,
        outcome: Outcome,
        logged: bool,
    ) -> Option<Start> {
        let mut effects = {
            let mut tree = self.tree();
            if logged {
                tree.logged(key);
            }
            tree.exited(key, outcome)
        };
        let own = effects
            .starts
            .iter()
            .position(|start| start.key.id == key.id);
        let own = own.map(|at| effects.starts.remove(at));
        self.apply(effects);
        if let Some(start) = &own {
            self.log_start(start);
        }
        own
    }

    /// Keeps the first propagated panic for `wait` to resume, and shuts the tree down.
    pub(crate) fn stash_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = lock(&self.panic);
        slot.get_or_insert(payload);
        drop(slot);
        self.cancel();
    }

    /// Cancels the whole tree, timed (see `Tree::cancel_all`): every node is marked under
    /// the lock, in one pass, and their tasks are woken once it is released, while the
    /// first of them may already be telling the tree of their exits.
    pub(crate) fn cancel(&self) {
        let fired = self.in_tree(|tree| {
            let mut effects = Effects::default();
            tree.cancel_all(&mut effects);
            effects.fired
        });
        self.fire(fired);
    }

    /// Whether the supervisor failed stop (its tree's lock was poisoned).
    #[cfg(feature = "http")]
    pub(crate) fn failed_stop(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Whether the tree is shutting down: nothing will restart.
    #[cfg(feature = "server")]
    pub(crate) fn shutting_down(&self) -> bool {
        self.tree().shutting_down()
    }

    /// Logs a warning of the supervisor's own at `supervisor`, and as a `tracing` event for
    /// the application's subscriber.
    pub(crate) fn warn(&self, text: &str) {
        tracing::warn!(target: "supervisor", parent: None, "{text}");
        self.log.warning(text);
    }

    /// A token cancelled once the tree has finished by itself, for a task of the
    /// supervisor's that must end with it.
    pub(crate) fn watch_finished(&self) -> CancellationToken {
        self.tree().watch_finished()
    }

    /// Tells whoever waits on the tree's health that it may have changed. Outside the
    /// tree's lock: the waiters' wakers may be anyone's.
    fn tell_health(&self) {
        self.health
            .send_modify(|changes| *changes = changes.wrapping_add(1));
    }

    /// A receiver told of every change to the tree's health from now on (the tree notes
    /// them from the first such call).
    pub(crate) fn watch_health(&self) -> tokio::sync::watch::Receiver<u64> {
        let changes = self.health.subscribe();
        self.tree().watch_health();
        changes
    }

    /// The task of `key` found its handed-out token cancelled: see
    /// `Tree::cancelled_itself`.
    pub(crate) fn cancelled_itself(self: &Arc<Self>, key: Key) {
        let effects = self.tree().cancelled_itself(key);
        self.apply(effects);
    }

    /// An operator's `control` of `dn`, asked for by `by` (see `Tree::control`).
    pub(crate) fn control(
        self: &Arc<Self>,
        dn: &str,
        control: Control,
        by: &str,
    ) -> Result<(), ControlError> {
        let effects = self.tree().control(dn, control, by)?;
        self.apply(effects);
        Ok(())
    }

    pub(crate) fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        lock(&self.panic).take()
    }
}

impl Shared {
    /// Logs a note in the log tree — at `supervisor`, and a failure also at the failed
    /// node's own DN — and as a `tracing` event at target `supervisor` outside any runnable
    /// span, for the application's own subscriber. (Writing to the tree directly keeps the
    /// event from being routed there a second time.)
    fn log(&self, note: &Note, now: SystemTime, left: &[Arc<str>]) {
        // The notes of a restart keep the DN and the reason they share with the tree, not
        // texts of their own (see `Parts`); the others are rare.
        let (dn, text): (_, Parts) = match note {
            Note::Failed { dn, reason, report } => {
                if !left.iter().any(|top| in_subtree(top, dn)) {
                    let reason = Parts::shared(reason.clone());
                    self.log_tree.log_parts(dn, Severity::Error, reason, now);
                }
                // The report's first line is `<dn> failed: <reason>`.
                (dn, Parts::report(report.clone()))
            }
            Note::Restarting { dn, delay } if delay.is_zero() => {
                (dn, Parts::new(&["restarting ", "", ""], dn.clone(), None))
            }
            Note::Restarting { dn, delay } => (
                dn,
                format!("restarting {dn} after a backoff of {delay:?}").into(),
            ),
            Note::RestartDropped { dn } => (
                dn,
                format!("dropped the pending restart of {dn}: its parent was cancelled").into(),
            ),
            Note::NotRestarted { dn, why } => (dn, format!("not restarting {dn}: {why}").into()),
            Note::Controlled { dn, text } => (dn, Parts::shared(text.clone())),
            Note::GaveUp { reason } => {
                let text = format!("the tree gave up, shutting down: {reason}");
                tracing::error!(target: "supervisor", parent: None, "{text}");
                self.log.log_parts(Severity::Error, text.into(), now);
                return;
            }
            Note::SinkPanicked { dn, told, message } => (
                dn,
                match told {
                    Told::State(state) => format!(
                        "a metrics sink panicked when told {dn} is {}: {message}",
                        state.name()
                    ),
                    Told::Removed => {
                        format!("a metrics sink panicked when told {dn} left the tree: {message}")
                    }
                    Told::Crash => {
                        format!("a metrics sink panicked when told of a crash of {dn}: {message}")
                    }
                }
                .into(),
            ),
        };
        if let Note::Failed { .. } | Note::SinkPanicked { .. } = note {
            tracing::error!(target: "supervisor", parent: None, %dn, "{text}");
            self.log.log_parts(Severity::Error, text, now);
        } else {
            tracing::info!(target: "supervisor", parent: None, %dn, "{text}");
            self.log.log_parts(Severity::Info, text, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::logtree::ReadOptions;
    use crate::{Context, Ended, Signal, Supervisor};

    #[tokio::test(start_paused = true)]
    async fn a_poisoned_tree_lock_fails_stop() {
        let sup = Supervisor::new(|ctx: Context| async move {
            ctx.run("child", |ctx: Context| async move {
                ctx.signal(Signal::Healthy);
                ctx.cancelled().await;
                Ok(())
            })?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        });
        sup.settled().await;
        let shared = sup.shared().clone();
        // What a panic inside the supervisor's bookkeeping would leave behind.
        let poisoner = std::thread::spawn(move || {
            let _tree = shared.tree.lock();
            std::panic::resume_unwind(Box::new("a bug under the tree's lock"));
        });
        assert!(poisoner.join().is_err());
        assert!(!sup.is_cancelled());

        let _ = sup.states();
        assert!(sup.is_cancelled(), "the tree shuts down");
        let log = sup.log_tree();
        assert_eq!(sup.clone().wait().await, Ended::Cancelled);
        assert!(sup.live_runnables().is_empty());
        let logged = log
            .read("supervisor", ReadOptions::new().backlog_all())
            .unwrap()
            .backlog;
        let said: Vec<_> = logged
            .iter()
            .filter(|e| e.message().contains("lock is poisoned"))
            .collect();
        assert_eq!(said.len(), 1, "said once: {logged:?}");
    }
}
