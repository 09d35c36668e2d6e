//! Errors the supervisor hands to callers, and the reasons it records when a node fails.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
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
    /// The context (or [`Dynamic`](crate::Dynamic) handle) belongs to an incarnation of its
    /// node that has ended; the node has been restarted (or forgotten) since. A dynamic
    /// group's handle goes stale when the group's parent restarts. A stale context or handle
    /// cannot touch the tree.
    Stale {
        /// DN of the context's node (the dynamic group's, for a handle).
        dn: String,
    },
    /// The child's [`Spec`](crate::Spec) has a setting that breaks its rule, such as a
    /// shutdown timeout of zero.
    InvalidSpec {
        /// DN of the node that tried to start the child.
        parent: String,
        /// The child's name.
        name: String,
        /// The setting and the rule it breaks.
        error: ConfigError,
    },
    /// The dynamic group already holds its
    /// [`max_children`](crate::DynamicSpec::max_children): children running or waiting out
    /// their backoff.
    Full {
        /// DN of the dynamic group.
        group: String,
        /// Its limit.
        max_children: usize,
    },
    /// The dynamic group is being cancelled (its parent is stopping or restarting, or the
    /// whole tree is shutting down): it starts no more children.
    Closed {
        /// DN of the dynamic group.
        group: String,
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
                "the context or handle of `{dn}` is stale: the incarnation of the node it \
                 belongs to has ended"
            ),
            RunError::Full {
                group,
                max_children,
            } => write!(
                f,
                "dynamic group `{group}` cannot start another child: it holds its \
                 max_children of {max_children} (children running or waiting to restart)"
            ),
            RunError::Closed { group } => write!(
                f,
                "dynamic group `{group}` cannot start another child: it is being cancelled \
                 with its parent"
            ),
            RunError::InvalidSpec {
                parent,
                name,
                error,
            } => write!(f, "`{parent}` cannot start child {}: {error}", Shown(name)),
        }
    }
}

impl StdError for RunError {}

impl RunError {
    /// This error, with the DN of the context or handle it was made for in a
    /// [`Stale`](RunError::Stale) (which the tree cannot know: a stale incarnation's slot
    /// may hold another node by now).
    pub(crate) fn named(self, dn: &str) -> RunError {
        match self {
            RunError::Stale { .. } => RunError::Stale { dn: dn.to_owned() },
            other => other,
        }
    }
}

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
    /// The root's [`Spec`](crate::Spec) ([`Builder::root_spec`](crate::Builder::root_spec))
    /// has a setting that breaks its rule.
    InvalidSpec(ConfigError),
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
            StartError::InvalidSpec(error) => write!(f, "the root's spec is invalid: {error}"),
        }
    }
}

impl StdError for StartError {}

/// Why an operator's control ([`Supervisor::restart`](crate::Supervisor::restart),
/// [`stop`](crate::Supervisor::stop), [`start`](crate::Supervisor::start)) was refused.
/// Nothing changed in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// No node has this DN (it never had one, or it has left the tree).
    UnknownDn(String),
    /// The root is controlled through the supervisor itself:
    /// [`Supervisor::cancel`](crate::Supervisor::cancel) stops the tree.
    Root,
    /// `start` releases a held node, and this one is not held.
    NotHeld(String),
    /// The tree is shutting down: nothing starts again.
    ShuttingDown,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::UnknownDn(dn) => write!(f, "no node has the DN {dn:?}"),
            ControlError::Root => f.write_str(
                "the root cannot be controlled on its own: cancel the supervisor to stop the tree",
            ),
            ControlError::NotHeld(dn) => write!(
                f,
                "{dn} is not held: only a node stopped by an operator can be started"
            ),
            ControlError::ShuttingDown => {
                f.write_str("the tree is shutting down: nothing is started or stopped any more")
            }
        }
    }
}

impl StdError for ControlError {}

/// A configuration value that breaks its rule, e.g. a backoff multiplier below 1.
#[derive(Clone, Debug, PartialEq, Eq)]
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
///
/// Nothing here holds user code: a returned error is turned into text (and dropped) by the
/// task, outside the tree's lock, before the tree hears of it (see [`ReturnedError`]).
#[derive(Debug)]
pub(crate) enum Failure {
    /// The runnable returned an error: the reason as text, made by [`ReturnedError::of`].
    Error(Arc<str>),
    /// The runnable returned `Ok` without having signalled `Done`, and was not cancelled.
    ReturnedOk(NodeState),
    /// The runnable sent a signal its state does not allow.
    IllegalSignal(Signal, NodeState),
    /// The runnable panicked (when starting or while running).
    Panicked(String),
    /// The runnable did not return within the shutdown grace period after its context was
    /// cancelled, and its future was dropped.
    Aborted(Duration),
    /// The runnable returned, but only this long after its shutdown grace period ran out:
    /// it blocked its thread, so its future could not be dropped in time.
    Overran(Duration),
    /// Dropping the runnable's future (or what it returned) panicked, with this message.
    DropPanicked(String),
    /// Its watchdog starved: no heartbeat within its period, and its future was dropped.
    Watchdog(Duration),
    /// Dropped because its ancestor at this DN was aborted when its shutdown timeout ran out.
    AbortedWith(Arc<str>),
    /// The node's group of children (or, for the root, the root itself) restarted more often
    /// than its intensity allows.
    Escalated {
        /// How many restarts fell within the period, the last one included.
        count: usize,
        intensity: crate::Intensity,
        /// The failure that asked for the last restart, with its DN.
        last: Arc<str>,
    },
}

impl Failure {
    /// The kind of death this failure is, for its crash report.
    pub(crate) fn death(&self) -> crate::Death {
        use crate::Death;
        match self {
            Failure::Error(_) => Death::Error,
            Failure::ReturnedOk(_) => Death::ReturnedOk,
            Failure::IllegalSignal(..) => Death::IllegalSignal,
            Failure::Panicked(_) => Death::Panic,
            Failure::Aborted(_) => Death::Aborted,
            Failure::Overran(_) => Death::Overran,
            Failure::DropPanicked(_) => Death::DropPanicked,
            Failure::Watchdog(_) => Death::Watchdog,
            Failure::AbortedWith(_) => Death::AbortedWithAncestor,
            Failure::Escalated { .. } => Death::Intensity,
        }
    }

    /// The failure as text, made once per failure: it is the node's last error and the
    /// message of both log entries.
    pub(crate) fn reason(&self) -> Arc<str> {
        use fmt::Write as _;
        if let Failure::Error(reason) = self {
            return reason.clone();
        }
        // Most reasons fit: one allocation for the text instead of one per doubling.
        let mut text = String::with_capacity(96);
        let _ = write!(text, "{self}");
        text.into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(reason) => f.write_str(reason),
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
            Failure::Overran(by) => write!(
                f,
                "overran its shutdown grace period by {by:?}: it blocked its thread, so it could \
                 not be aborted in time"
            ),
            Failure::DropPanicked(msg) => write!(f, "panicked while being dropped: {msg}"),
            Failure::Watchdog(period) => write!(f, "watchdog: no heartbeat for {period:?}"),
            Failure::AbortedWith(dn) => write!(
                f,
                "aborted with its subtree: `{dn}` was aborted when its shutdown timeout ran out"
            ),
            Failure::Escalated {
                count,
                intensity,
                last,
            } => write!(
                f,
                "too many restarts: {count} within {:?}, more than its intensity allows ({} \
                 in {:?}); last failure: {last}",
                intensity.period(),
                intensity.max_restarts(),
                intensity.period(),
            ),
        }
    }
}

/// What a runnable's returned error comes to, worked out by its task outside the tree's lock:
/// the error's `Display`, `source()` and `Drop` are user code, and may panic.
#[derive(Debug)]
pub(crate) struct ReturnedError {
    /// The error is, or was caused by, [`Cancelled`] (and nothing panicked).
    pub(crate) cancellation: bool,
    /// `returned error: <error>: <source>: …`, or what panicked instead. Made only when the
    /// error may be a failure: a cancellation error returned after cancellation is none.
    pub(crate) reason: Option<Arc<str>>,
}

impl ReturnedError {
    /// Inspects and drops `error`, catching any panic of its `Display`, `source()` or `Drop`.
    /// A panic makes the error a failure whatever it was, with a reason that says so.
    /// `cancelled` is whether the node's context was cancelled: a context stays cancelled,
    /// so a reason skipped here is never needed later.
    pub(crate) fn of(error: crate::Error, cancelled: bool) -> ReturnedError {
        let inspected = catch_unwind(AssertUnwindSafe(|| {
            let cancellation = is_cancellation(&*error);
            let reason = (!cancelled || !cancellation).then(|| error_text(&*error));
            (cancellation, reason)
        }));
        let (mut cancellation, mut reason) = match inspected {
            Ok(inspected) => inspected,
            Err(payload) => (
                false,
                Some(Arc::from(format!(
                    "returned an error that panicked when formatted or inspected: {}",
                    panic_message_dropped(payload)
                ))),
            ),
        };
        if let Some(dropped) = drop_guarded(error) {
            let before = reason
                .as_deref()
                .unwrap_or("returned the cancellation error");
            reason = Some(format!("{before}; then dropping the error panicked: {dropped}").into());
            cancellation = false;
        }
        ReturnedError {
            cancellation,
            reason,
        }
    }
}

/// `returned error: <error>: <source>: …`.
///
/// Written into a buffer this thread keeps, so that a failure costs at most one allocation,
/// the shared text itself, not a growing `String` copied into it; and a text equal to the
/// last one made on this thread is that one again, so that a node failing the same way in a
/// loop fills its log with one shared text, not thousands of copies of it. (Should a
/// `Display` have another error's text made while it writes, that one finds the buffer
/// taken and uses one of its own.)
fn error_text(error: &(dyn StdError + 'static)) -> Arc<str> {
    thread_local! {
        static TEXTS: RefCell<Texts> = const {
            RefCell::new(Texts { buffer: String::new(), last: None })
        };
    }
    let shared = TEXTS.try_with(|texts| {
        let mut texts = texts.try_borrow_mut().ok()?;
        let Texts { buffer, last } = &mut *texts;
        write_error(buffer, error);
        let shared = match last {
            Some(last) if **last == **buffer => last.clone(),
            _ => {
                let shared: Arc<str> = Arc::from(buffer.as_str());
                *last = (shared.len() <= Texts::KEPT).then(|| shared.clone());
                shared
            }
        };
        if buffer.capacity() > Texts::KEPT {
            *buffer = String::new();
        }
        Some(shared)
    });
    // Taken, or this thread is exiting.
    shared.ok().flatten().unwrap_or_else(|| {
        let mut text = String::new();
        write_error(&mut text, error);
        text.into()
    })
}

/// What [`error_text`] keeps on each thread.
struct Texts {
    buffer: String,
    last: Option<Arc<str>>,
}

impl Texts {
    /// What a thread keeps between failures, of the buffer and of the last text: one huge
    /// error does not stay resident.
    const KEPT: usize = 4096;
}

fn write_error(text: &mut String, error: &(dyn StdError + 'static)) {
    use fmt::Write as _;
    text.clear();
    let _ = write!(text, "returned error: {error}");
    let mut source = error.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
}

/// Drops `value`, which is the user's, catching a panic of its `Drop`: that panic's message.
pub(crate) fn drop_guarded<T>(value: T) -> Option<String> {
    catch_unwind(AssertUnwindSafe(move || drop(value)))
        .err()
        .map(panic_message_dropped)
}

/// The message of a caught panic, whose payload is then dropped: a payload is user data, and
/// its own `Drop` may panic too, which is caught and told apart.
pub(crate) fn panic_message_dropped(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = panic_message(&*payload);
    match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        Ok(()) => message,
        Err(again) => {
            // Forget the second payload: dropping it could panic once more.
            std::mem::forget(again);
            format!("{message} (and its panic payload panicked when dropped)")
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

    fn text_of(message: &str) -> Arc<str> {
        let error: crate::Error = message.into();
        ReturnedError::of(error, false)
            .reason
            .expect("a failure has a reason")
    }

    #[test]
    fn a_failure_like_the_last_shares_its_text() {
        let first = text_of("disk on fire");
        let again = text_of("disk on fire");
        assert_eq!(&*again, "returned error: disk on fire");
        assert!(Arc::ptr_eq(&first, &again), "a crash loop keeps one text");
        let other = text_of("disk full");
        assert_eq!(&*other, "returned error: disk full");
        assert!(!Arc::ptr_eq(&first, &other));
        // A huge text is not kept on the thread.
        let huge = "x".repeat(2 * Texts::KEPT);
        assert!(!Arc::ptr_eq(&text_of(&huge), &text_of(&huge)));
        assert_eq!(text_of(&huge).len(), "returned error: ".len() + huge.len());
    }

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
