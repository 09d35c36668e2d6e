//! What a change to the tree asks of the world outside its lock, and what the world tells it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::NodeState;
use crate::activity::Busy;
use crate::cancel::Cancel;
use crate::error::ReturnedError;
#[cfg(doc)]
use crate::policy::Stop;
use crate::runnable::DynRunnable;
use smallvec::SmallVec;

use super::Key;

/// A task to spawn for a node incarnation that has just been (re)started. Its first wake is
/// already counted as work, so the supervisor cannot look settled before it runs.
pub(crate) struct Start {
    pub(crate) key: Key,
    pub(crate) dn: Arc<str>,
    pub(crate) cancel: Arc<Cancel>,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    /// Its shutdown policy, and whether the task, once cancelled and still running,
    /// registers an [`Abort`] with the tree so that an ancestor's abort reaches it
    /// ([`Stop::encode`]). Only trees with a shutdown policy other than the default, or an
    /// ordered group, need that: otherwise no node can outlive an ancestor's deadline, and a
    /// cancelled task costs no lock.
    pub(crate) stop: u64,
    /// Its watchdog, if its spec sets one.
    pub(crate) watchdog: Option<Arc<super::Watchdog>>,
}

/// How the tree aborts a task from outside: the incarnation of a cancelled node still
/// running, which the task registered (see [`Start::register`]). Called under the tree's
/// lock: it only sets a flag and wakes the task.
pub(crate) trait Abort: Send + Sync {
    fn abort(&self);
}

/// A task to spawn for an ordered group: it waits for the parent's cancellation and then
/// has the tree stop the members one at a time. It ends when the tree has finished.
pub(crate) struct Watch {
    pub(crate) parent: Key,
    pub(crate) group: usize,
    pub(crate) cancelled: Arc<Cancel>,
    pub(crate) finished: CancellationToken,
}

/// A restart waiting for its backoff delay; dropped if `parent` is cancelled first.
pub(crate) struct Timer {
    pub(crate) key: Key,
    pub(crate) delay: Duration,
    pub(crate) parent: Arc<Cancel>,
    /// Marked when an operator cuts the backoff short: the timer then ends at once.
    pub(crate) skip: Arc<Cancel>,
    pub(crate) busy: Busy,
}

/// Something the supervisor logs about a node.
#[derive(Debug)]
pub(crate) enum Note {
    /// `reason` is the failure as text, made once (it is also the node's last error);
    /// `report` is the failure's crash report.
    Failed {
        dn: Arc<str>,
        reason: Arc<str>,
        report: Arc<crate::CrashReport>,
    },
    Restarting {
        dn: Arc<str>,
        delay: Duration,
    },
    RestartDropped {
        dn: Arc<str>,
    },
    /// A node that ended is not started again: `why` says which rule keeps it down.
    NotRestarted {
        dn: Arc<str>,
        why: &'static str,
    },
    /// An operator's control of `dn`: who asked, and what came of it.
    Controlled {
        dn: Arc<str>,
        text: Arc<str>,
    },
    /// The root escalated: the tree shuts down for good.
    GaveUp {
        reason: Arc<str>,
    },
    /// A metrics sink panicked when told something of `dn`.
    SinkPanicked {
        dn: Arc<str>,
        told: Told,
        message: String,
    },
}

/// What a metrics sink was being told when it panicked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Told {
    State(NodeState),
    Removed,
    Crash,
}

/// The tasks of a new group: as many as its members, most often one or two.
pub(crate) type Starts = SmallVec<[Start; 2]>;

/// What running a group asks for: its members' tasks, and the watch of an ordered group.
pub(crate) struct Started {
    pub(crate) starts: Starts,
    pub(crate) watch: Option<Watch>,
}

/// A forgotten node's runnable, to drop.
pub(crate) struct Forgotten {
    pub(crate) dn: Arc<str>,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    /// It left the tree for good: nothing more is logged at its DN.
    pub(crate) removed: bool,
}

/// What must happen, outside the lock, after a change to the tree. One event usually
/// brings a note or two and a start, or a dynamic child leaving, which stay inline; timers
/// are rarer.
#[derive(Default)]
#[must_use]
pub(crate) struct Effects {
    /// The cancellations the tree has just set, whose waiters are woken outside the lock
    /// (see [`Cancel::fire`]). A failure cancels the one node, most often.
    pub(crate) fired: SmallVec<[Arc<Cancel>; 1]>,
    pub(crate) starts: SmallVec<[Start; 1]>,
    pub(crate) timers: Vec<Timer>,
    pub(crate) notes: SmallVec<[Note; 2]>,
    /// The runnables of forgotten nodes, by DN, to be dropped outside the lock: a runnable's
    /// captured state is user code, and its `Drop` may panic.
    pub(crate) forgotten: SmallVec<[Forgotten; 1]>,
    /// Dynamic children that left the tree, topmost only: their logs, and everything logged
    /// below them, numbered before `left_before` are dropped from the log tree. Later
    /// entries are a newcomer's under a freed name (or a stale logger's), and stay.
    pub(crate) left: Vec<Arc<str>>,
    pub(crate) left_before: u64,
    /// Something changed that whoever waits on the tree's health must hear of.
    pub(crate) health: bool,
}

impl Effects {
    /// Nothing to do: what most exits in a tree's shutdown leave.
    pub(crate) fn is_empty(&self) -> bool {
        self.fired.is_empty()
            && self.starts.is_empty()
            && self.timers.is_empty()
            && self.notes.is_empty()
            && self.forgotten.is_empty()
            && self.left.is_empty()
            && !self.health
    }
}

/// How a node's task ended, with nothing of the user's left in it: see [`ReturnedError`].
pub(crate) enum Outcome {
    Returned(Result<(), ReturnedError>),
    Panicked(String),
    Aborted(Duration),
    /// A `Brutal` node's future, dropped when it saw its context cancelled.
    Dropped,
    /// Dropped because the tree told the task to: an ancestor was aborted.
    Killed,
    Overran(Duration),
    DropPanicked(String),
    /// Its watchdog starved: no heartbeat for this period. Its future was dropped.
    Watchdog(Duration),
}

/// What became of a signal.
pub(crate) enum Signalled {
    Accepted,
    /// Effects to apply: the signal was illegal (the node is now `Dead`). (Boxed: rare, and
    /// large.)
    WithEffects(Box<Effects>),
    /// The context's incarnation has ended; nothing changed.
    Stale,
}
