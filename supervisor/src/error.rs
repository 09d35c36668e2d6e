//! Errors the supervisor hands to callers, and the reasons it records when a node fails.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::name::{NAME_RULE, Shown};
use crate::{NodeState, Signal};

/// Why [`Context::run`] or [`Context::run_group`] refused to start a child.
///
/// Every variant names the parent's DN and the offending name, and its `Display` states the
/// rule that was broken. Nothing of a refused group is started: a group starts whole or not
/// at all.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use supervisor::{Context, RunError, Signal, Supervisor};
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     let err = ctx.run("Bad.Name", |ctx: Context| async move { ctx.cancelled().await; Ok(()) });
///     assert!(matches!(err, Err(RunError::InvalidName { .. })));
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.settled().await;
/// sup.cancel();
/// sup.wait().await;
/// # }
/// ```
///
/// [`Context::run`]: crate::Context::run
/// [`Context::run_group`]: crate::Context::run_group
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The name does not match `^[a-z0-9_]{1,64}$`.
    InvalidName {
        /// DN of the node that tried to start the child or make the sub-logger.
        parent: String,
        /// The rejected name, as given.
        name: String,
        /// What the name was for.
        wanted: NameUse,
    },
    /// The name is already used by a child or sub-logger of this node incarnation, or twice
    /// within the same group.
    NameTaken {
        /// DN of the node that tried to start the child or make the sub-logger.
        parent: String,
        /// The name that is taken.
        name: String,
        /// What already uses it.
        by: NameUse,
        /// What the name was wanted for.
        wanted: NameUse,
    },
    /// Children can only be started while their parent is `New`, before it signals `Healthy`.
    NotNew {
        /// DN of the node that tried to start the child.
        parent: String,
        /// The child's name.
        name: String,
        /// The parent's state at the time.
        state: NodeState,
    },
    /// The context belongs to an incarnation of its node that has ended; the node has been
    /// restarted (or forgotten) since. A stale context cannot touch the tree.
    Stale {
        /// DN of the context's node.
        dn: String,
    },
}

/// What holds a name below a node: see [`RunError::NameTaken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameUse {
    /// A child runnable.
    Child,
    /// A sub-logger.
    SubLogger,
}

impl NameUse {
    fn verb(self) -> &'static str {
        match self {
            NameUse::Child => "start child",
            NameUse::SubLogger => "make sub-logger",
        }
    }
}

impl fmt::Display for NameUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameUse::Child => "a child",
            NameUse::SubLogger => "a sub-logger",
        })
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::InvalidName {
                parent,
                name,
                wanted,
            } => write!(
                f,
                "`{parent}` cannot {} {}: the name is invalid ({NAME_RULE})",
                wanted.verb(),
                Shown(name)
            ),
            RunError::NameTaken {
                parent,
                name,
                by,
                wanted,
            } => write!(
                f,
                "`{parent}` cannot {} {}: the name is already used by {by} of `{parent}` \
                 (names are unique among a node's children and sub-loggers)",
                wanted.verb(),
                Shown(name)
            ),
            RunError::NotNew {
                parent,
                name,
                state,
            } => write!(
                f,
                "`{parent}` cannot start child {}: children can only be started while the \
                 node is NEW, and it is {}",
                Shown(name),
                state.name()
            ),
            RunError::Stale { dn } => write!(
                f,
                "the context of `{dn}` is stale: that incarnation of the node has ended"
            ),
        }
    }
}

impl StdError for RunError {}

/// The cancellation error: what a runnable may return when it stops because its context was
/// cancelled.
///
/// A runnable whose context was cancelled and that returns `Ok(())` or an error whose
/// [source chain](std::error::Error::source) contains `Cancelled` ends `Canceled`; any other
/// error ends it `Dead`, as it would without cancellation.
///
/// # Examples
///
/// ```
/// use supervisor::{Cancelled, Context};
///
/// async fn serve(ctx: Context) -> supervisor::Result {
///     ctx.cancelled().await;
///     Err(Cancelled.into())
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("context cancelled")
    }
}

impl StdError for Cancelled {}

/// Whether `err` is, or was caused by, [`Cancelled`].
pub(crate) fn is_cancellation(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<Cancelled>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Why a supervisor could not start: see [`Builder::try_start`](crate::Builder::try_start).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// There is no tokio runtime on this thread.
    NoRuntime,
    /// The runtime has no time driver, which backoff and the shutdown grace period need.
    NoTimeDriver,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NoRuntime => f.write_str(
                "a supervisor must be started from inside a tokio runtime (with time enabled), \
                 e.g. in `#[tokio::main]` or `#[tokio::test]`; none is running on this thread",
            ),
            StartError::NoTimeDriver => f.write_str(
                "a supervisor needs a tokio runtime with time enabled (for backoff and the \
                 shutdown grace period): call `enable_time()` (or `enable_all()`) on the \
                 runtime builder",
            ),
        }
    }
}

impl StdError for StartError {}

/// A configuration value that breaks its rule, e.g. a backoff multiplier below 1.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub(crate) setting: &'static str,
    pub(crate) value: String,
    pub(crate) rule: &'static str,
}

impl ConfigError {
    /// The setting that was given a bad value, e.g. `"backoff multiplier"`.
    pub fn setting(&self) -> &str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {}: {}",
            self.setting,
            Shown(&self.value),
            self.rule
        )
    }
}

impl StdError for ConfigError {}

/// Why a node ended `Dead`. Logged at the node's DN and at `supervisor`.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The runnable returned this error.
    Error(crate::Error),
    /// The runnable returned `Ok` without having signalled `Done`, and was not cancelled.
    ReturnedOk(NodeState),
    /// The runnable sent a signal its state does not allow.
    IllegalSignal(Signal, NodeState),
    /// The runnable panicked (when starting or while running).
    Panicked(String),
    /// The runnable did not return within the shutdown grace period after its context was
    /// cancelled, and its future was dropped.
    Aborted(Duration),
}

impl Failure {
    /// The failure as text, made once per failure: it is the node's last error and the
    /// message of both log entries.
    pub(crate) fn reason(&self) -> Arc<str> {
        use fmt::Write as _;
        // Most reasons fit: one allocation for the text instead of one per doubling.
        let mut text = String::with_capacity(96);
        let _ = write!(text, "{self}");
        text.into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => {
                write!(f, "returned error: {e}")?;
                let mut source = e.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            Failure::ReturnedOk(state) => write!(
                f,
                "returned Ok while {} (only a runnable that signalled Done, or whose context \
                 was cancelled, may return Ok)",
                state.name()
            ),
            Failure::IllegalSignal(signal, state) => {
                let rule = match signal {
                    Signal::Healthy => "Healthy is allowed only from NEW",
                    Signal::Done => "Done is allowed only from HEALTHY",
                };
                write!(
                    f,
                    "signalled {signal} while {}: illegal ({rule})",
                    state.name()
                )
            }
            Failure::Panicked(msg) => write!(f, "panicked: {msg}"),
            Failure::Aborted(grace) => write!(
                f,
                "aborted: did not return within the shutdown grace period ({grace:?}) after its \
                 context was cancelled"
            ),
        }
    }
}

/// The message of a panic payload, as `std` prints it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(Cancelled);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("while serving")
        }
    }
    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn cancellation_is_found_in_the_source_chain() {
        assert!(is_cancellation(&Cancelled));
        assert!(is_cancellation(&Wrapped(Cancelled)));
        assert!(!is_cancellation(&std::io::Error::other("x")));
    }

    #[test]
    fn messages_name_the_input_and_the_rule() {
        let e = RunError::InvalidName {
            parent: "root.net".into(),
            name: "Has.Dot".into(),
            wanted: NameUse::Child,
        };
        assert_eq!(
            e.to_string(),
            "`root.net` cannot start child \"Has.Dot\": the name is invalid \
             (names match `^[a-z0-9_]{1,64}$`)"
        );
        let f = Failure::IllegalSignal(Signal::Done, NodeState::New);
        assert_eq!(
            f.to_string(),
            "signalled Done while NEW: illegal (Done is allowed only from HEALTHY)"
        );
    }
}
