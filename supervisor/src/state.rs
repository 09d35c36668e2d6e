//! The life of a node: the states it passes through and the signals that move it.

use std::fmt;

/// The state of one node of the tree: the incarnation of a runnable at one DN.
///
/// ```text
///            Healthy            Done + return Ok
///   New ─────────────▶ Healthy ─────────────────▶ Done
///    │                   │
///    │ error, panic, bad return, illegal signal, aborted
///    ├───────────────────┴──────────────────────▶ Dead
///    │ returned after its context was cancelled
///    └──────────────────────────────────────────▶ Canceled
/// ```
///
/// `Dead`, `Done` and `Canceled` are where a runnable ends; the supervisor turns a node
/// back into `New` when it restarts it. `Display` gives the names used in metrics labels
/// (`NODE_STATE_NEW`, …); [`NodeState::name`] gives the short form used in messages.
///
/// # Examples
///
/// ```
/// use supervisor::NodeState;
///
/// assert_eq!(NodeState::Healthy.to_string(), "NODE_STATE_HEALTHY");
/// assert_eq!(NodeState::Healthy.name(), "HEALTHY");
/// assert_eq!(NodeState::ALL.len(), 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// Started, and has signalled nothing yet.
    New,
    /// Signalled [`Signal::Healthy`]: set up, children started, now serving.
    Healthy,
    /// Failed: returned an error, returned when it should not have, panicked, signalled
    /// illegally, or was aborted after ignoring cancellation.
    ///
    /// A failure cancels the node's subtree and its group siblings, which all restart. A
    /// node that fails only on its way out, after its context was cancelled (aborted after
    /// the grace period, or returning an error other than the cancellation error), is
    /// `Dead` too but cancels nothing more: whatever cancelled it has dealt with its group.
    Dead,
    /// Signalled [`Signal::Done`]: it has nothing left to do and is not restarted on its own.
    Done,
    /// Returned after its context was cancelled.
    Canceled,
}

impl NodeState {
    /// Every state, in declaration order.
    pub const ALL: [NodeState; 5] = [
        NodeState::New,
        NodeState::Healthy,
        NodeState::Dead,
        NodeState::Done,
        NodeState::Canceled,
    ];

    /// The label form, as in Prometheus series: `NODE_STATE_NEW`, `NODE_STATE_HEALTHY`, ….
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeState::New => "NODE_STATE_NEW",
            NodeState::Healthy => "NODE_STATE_HEALTHY",
            NodeState::Dead => "NODE_STATE_DEAD",
            NodeState::Done => "NODE_STATE_DONE",
            NodeState::Canceled => "NODE_STATE_CANCELED",
        }
    }

    /// The short form used in messages: `NEW`, `HEALTHY`, `DEAD`, `DONE`, `CANCELED`.
    pub const fn name(self) -> &'static str {
        match self {
            NodeState::New => "NEW",
            NodeState::Healthy => "HEALTHY",
            NodeState::Dead => "DEAD",
            NodeState::Done => "DONE",
            NodeState::Canceled => "CANCELED",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runnable tells the supervisor about itself, with [`Context::signal`].
///
/// A signal out of order (`Healthy` twice, `Done` before `Healthy`, `Done` twice) is a
/// programming error: the node fails (`Dead`) with an error naming the signal and the state.
///
/// [`Context::signal`]: crate::Context::signal
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Set-up is finished and children are started; the runnable is now serving.
    /// Allowed only from `New`. Resets the node's backoff.
    Healthy,
    /// Nothing is left to do: the runnable will return `Ok(())` and is not restarted unless a
    /// failure restarts its parent or group. Allowed only from `Healthy`, once. Its children
    /// keep running.
    Done,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Healthy => "Healthy",
            Signal::Done => "Done",
        })
    }
}
