//! What a supervisor's handle, contexts and tasks share.
//!
//! # Lock order
//!
//! `tree` is the only lock held while other work happens, and nothing is locked under it
//! except the metrics sinks' own locks and tokio-util's token tree (via `cancel` and
//! `child_token`). Tasks are spawned, timers armed and messages logged after it is released,
//! from the [`Effects`] the tree returns.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Span;

use crate::Context;
use crate::activity::Activity;
use crate::task::RunnableTask;
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
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    pub(crate) fn new(
        tree: Tree,
        token: CancellationToken,
        activity: Arc<Activity>,
        grace: Duration,
        propagate_panics: bool,
    ) -> Self {
        Shared {
            tree: Mutex::new(tree),
            token,
            tracker: TaskTracker::new(),
            activity,
            grace,
            propagate_panics,
            panic: Mutex::new(None),
        }
    }

    /// The tree, locked. The tree is left consistent at every step that could panic (only
    /// a metrics sink can), so a poisoned lock is still safe to use.
    pub(crate) fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Carries out what a change to the tree asked for. `span` is the span of the node the
    /// change is about, if it is a node's own doing.
    pub(crate) fn apply(self: &Arc<Self>, effects: Effects, span: Option<&Span>) {
        for note in &effects.notes {
            log(note, span);
        }
        for start in effects.starts {
            self.spawn(start);
        }
        for timer in effects.timers {
            self.arm(timer);
        }
    }

    pub(crate) fn spawn(self: &Arc<Self>, start: Start) {
        let span = tracing::info_span!(parent: None, "runnable", dn = %start.dn);
        let ctx = Context::new(self.clone(), start.key, start.dn, start.token.clone(), span);
        self.tracker.spawn(RunnableTask::new(
            self.clone(),
            ctx,
            start.runnable,
            start.wake,
        ));
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
            shared.apply(effects, None);
            drop(busy);
        });
    }

    /// Records how the task of `key` ended and restarts what that makes restartable.
    pub(crate) fn exited(self: &Arc<Self>, key: Key, outcome: Outcome, span: &Span) {
        let effects = self.tree().exited(key, outcome);
        self.apply(effects, Some(span));
    }

    /// Keeps the first propagated panic for `wait` to resume, and shuts the tree down.
    pub(crate) fn stash_panic(&self, payload: Box<dyn Any + Send>) {
        let mut slot = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(payload);
        drop(slot);
        self.token.cancel();
    }

    pub(crate) fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Logs a note at the `supervisor` target. A failure is one event, parented by the failed
/// node's span when there is one, so that it reads as both the node's own error and a
/// supervisor message; the rest happens outside any runnable's span.
fn log(note: &Note, node_span: Option<&Span>) {
    match note {
        Note::Failed { dn, failure } => {
            let parent = node_span.and_then(Span::id);
            tracing::error!(target: "supervisor", parent: parent, %dn, "{dn} failed: {failure}");
        }
        Note::Restarting { dn, delay } if delay.is_zero() => {
            tracing::info!(target: "supervisor", parent: None, %dn, "restarting {dn}");
        }
        Note::Restarting { dn, delay } => {
            tracing::info!(
                target: "supervisor",
                parent: None,
                %dn,
                ?delay,
                "restarting {dn} after a backoff of {delay:?}"
            );
        }
        Note::RestartDropped { dn } => {
            tracing::info!(
                target: "supervisor",
                parent: None,
                %dn,
                "dropped the pending restart of {dn}: its parent was cancelled"
            );
        }
    }
}
