//! What a supervisor's handle, contexts and tasks share.
//!
//! # Lock order
//!
//! `tree` is the only lock held while other work happens, and nothing is locked under it
//! except the metrics sinks' own locks and tokio-util's token tree (via `cancel` and
//! `child_token`). Tasks are spawned, timers armed and messages logged after it is released,
//! from the [`Effects`] the tree returns.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::lock::lock;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activity::Activity;
use crate::logtree::{LogTree, Logger, Severity};
use crate::tree::{Effects, Key, Note, Outcome, Start, Timer, Tree};

pub(crate) struct Shared {
    tree: Mutex<Tree>,
    /// The supervisor's token: cancelling it shuts the whole tree down.
    pub(crate) token: CancellationToken,
    /// Every task the supervisor spawns, so that `wait` can outlast them all.
    pub(crate) tracker: TaskTracker,
    pub(crate) activity: Arc<Activity>,
    pub(crate) grace: Duration,
    pub(crate) propagate_panics: bool,
    pub(crate) log_tree: LogTree,
    /// The supervisor's own log, at DN `supervisor`.
    log: Logger,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    pub(crate) fn new(
        tree: Tree,
        token: CancellationToken,
        activity: Arc<Activity>,
        grace: Duration,
        propagate_panics: bool,
        log_tree: LogTree,
    ) -> Self {
        let log = Logger::new(
            log_tree.clone(),
            log_tree.meta_of_node(&Arc::from("supervisor")),
        );
        Shared {
            tree: Mutex::new(tree),
            token,
            tracker: TaskTracker::new(),
            activity,
            grace,
            propagate_panics,
            log_tree,
            log,
            panic: Mutex::new(None),
        }
    }

    /// The tree, locked. The tree is left consistent at every step that could panic (only
    /// a metrics sink can), so a poisoned lock is still safe to use.
    pub(crate) fn tree(&self) -> MutexGuard<'_, Tree> {
        lock(&self.tree)
    }

    /// Carries out what a change to the tree asked for.
    pub(crate) fn apply(self: &Arc<Self>, effects: Effects) {
        if !effects.notes.is_empty() {
            let now = SystemTime::now();
            for note in &effects.notes {
                self.log(note, now);
            }
        }
        for start in effects.starts {
            self.spawn(start);
        }
        for timer in effects.timers {
            self.arm(timer);
        }
    }

    /// Starts the task of a (re)started node. The root's starts are logged at INFO (a
    /// supervisor starting, or its whole tree restarting); every other node's at verbosity 1,
    /// so that large trees cost nothing to start unless asked to say so.
    pub(crate) fn spawn(self: &Arc<Self>, start: Start) {
        if &*start.dn == "root" {
            self.log.info("starting root");
        } else {
            let verbose = self.log.v(1);
            if verbose.enabled() {
                verbose.info(format_args!("starting {}", start.dn));
            }
        }
        start.runnable.clone().spawn(self, start);
    }

    fn arm(self: &Arc<Self>, timer: Timer) {
        let shared = self.clone();
        let Timer {
            key,
            delay,
            parent,
            busy,
        } = timer;
        self.tracker.spawn(async move {
            let effects = tokio::select! {
                biased;
                () = parent.cancelled() => shared.tree().backoff_cancelled(key),
                () = tokio::time::sleep(delay) => shared.tree().backoff_elapsed(key),
            };
            shared.apply(effects);
            drop(busy);
        });
    }

    /// Records how the task of `key` ended and restarts what that makes restartable.
    pub(crate) fn exited(self: &Arc<Self>, key: Key, outcome: Outcome) {
        let effects = self.tree().exited(key, outcome);
        self.apply(effects);
    }

    /// Keeps the first propagated panic for `wait` to resume, and shuts the tree down.
    pub(crate) fn stash_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = lock(&self.panic);
        slot.get_or_insert(payload);
        drop(slot);
        self.token.cancel();
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
    fn log(&self, note: &Note, now: SystemTime) {
        let (dn, text) = match note {
            Note::Failed { dn, reason, .. } => {
                self.log_tree
                    .log_text(dn, Severity::Error, reason.to_string(), now);
                (dn, [&**dn, " failed: ", reason].concat())
            }
            Note::Restarting { dn, delay } if delay.is_zero() => {
                (dn, ["restarting ", &**dn].concat())
            }
            Note::Restarting { dn, delay } => {
                (dn, format!("restarting {dn} after a backoff of {delay:?}"))
            }
            Note::RestartDropped { dn } => (
                dn,
                format!("dropped the pending restart of {dn}: its parent was cancelled"),
            ),
        };
        if let Note::Failed { .. } = note {
            tracing::error!(target: "supervisor", parent: None, %dn, "{text}");
            self.log.log_text(Severity::Error, text, now);
        } else {
            tracing::info!(target: "supervisor", parent: None, %dn, "{text}");
            self.log.log_text(Severity::Info, text, now);
        }
    }
}
