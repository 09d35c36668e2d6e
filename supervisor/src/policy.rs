//! How children are supervised: OTP's child specifications and supervisor flags (DESIGN §14).
//!
//! Everything here is opt-in. Without it every child is [`Restart::Permanent`], every group
//! is [`Strategy::OneForAll`] with no restart limit, and every child gets the builder's
//! shutdown grace period ([`Builder::shutdown_grace`](crate::Builder::shutdown_grace)).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::ConfigError;

/// What a child's *own* end means: whether the supervisor starts it again (OTP's
/// `restart` of a child spec). Default [`Permanent`](Restart::Permanent).
///
/// A kind decides what a node's own end means, not what a relative's failure does to it: a
/// member cancelled because a sibling (or its parent) failed ends `Canceled` and is started
/// again with its group whatever its kind, except a `Temporary` one, which is not.
///
/// # Examples
///
/// ```
/// use supervisor::{Context, Restart, Signal, Spec};
///
/// async fn migrate(ctx: Context) -> supervisor::Result {
///     // ... run the migration once ...
///     Ok(()) // a normal end for a transient child: it is not restarted
/// }
///
/// async fn parent(ctx: Context) -> supervisor::Result {
///     ctx.run_with("migrate", migrate, Spec::new().restart(Restart::Transient))?;
///     ctx.signal(Signal::Healthy);
///     ctx.signal(Signal::Done);
///     Ok(())
/// }
/// # let _ = parent;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always supervised: only a return after [`Signal::Done`](crate::Signal::Done) (or after
    /// its context was cancelled) is a normal end; anything else is a failure that restarts
    /// its group after the backoff.
    #[default]
    Permanent,
    /// Restarted only after a failure: returning `Ok` — with or without `Done` — is a normal
    /// end (`Done`, and its children keep running, as after `Done`). An error, a panic or an
    /// abort is a failure, handled as for a permanent child.
    Transient,
    /// Never restarted. Returning `Ok` is a normal end (`Done`); an error or a panic leaves it
    /// `Dead`, logged. Either way it cancels no sibling and counts toward no intensity, and
    /// when its group restarts for a sibling's failure it is not started again: it comes back
    /// only when its parent restarts and starts it anew.
    Temporary,
}

impl Restart {
    /// The name used in the registry, the status and the macros: `permanent`, `transient`,
    /// `temporary`.
    pub const fn name(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which members of a [`Group`](crate::Group) restart when one fails. Default
/// [`OneForAll`](Strategy::OneForAll).
///
/// In both, the members to restart are cancelled, and each starts again once it (and
/// everything below it) has returned: the failed one after its backoff, the others at once.
/// With [`ordered_shutdown`](crate::Group::ordered_shutdown), they are stopped one at a time
/// and started again together, in add order, once the last has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// OTP's `one_for_all`: every member restarts.
    #[default]
    OneForAll,
    /// OTP's `rest_for_one`: the failed member and the members added after it restart; the
    /// members added before it keep running. For a chain where each member depends on the
    /// ones before it (a connection, then the sessions over it).
    RestForOne,
}

impl Strategy {
    /// The name used in the registry, the status and the macros: `one_for_all`,
    /// `rest_for_one`.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a child is stopped once its context is cancelled (OTP's `shutdown` of a child spec).
/// Default `Timeout` of the builder's [shutdown grace](crate::Builder::shutdown_grace).
///
/// Aborting a node — dropping its future — aborts its whole subtree: what still runs below
/// it is dropped too, whatever its own policy. A node dropped by `Brutal` (its own, or an
/// ancestor's) ends `Canceled`: that is how it is meant to stop. A node aborted when a
/// `Timeout` runs out (its own, or an ancestor's) ends `Dead`.
///
/// `Timeout(Duration::ZERO)` is refused (a [`ConfigError`], through
/// [`RunError::InvalidSpec`](crate::RunError::InvalidSpec) when the child is run): it would
/// mean `Brutal` while reading as a grace period, and one thing has one name here.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::{Shutdown, Spec};
///
/// // A writer that must flush to its database while it drains.
/// let writer = Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(30)));
/// // A cache that loses nothing when dropped.
/// let cache = Spec::new().shutdown(Shutdown::Brutal);
/// # let _ = (writer, cache);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// The future is dropped as soon as the task sees its context cancelled, without being
    /// polled again.
    Brutal,
    /// The future is dropped this long after its context was cancelled, if it has not
    /// returned by then (the node ends `Dead`).
    Timeout(Duration),
    /// Never aborted: the supervisor waits for it to return, however long that takes. For a
    /// node whose children have deadlines of their own.
    Infinity,
}

impl Shutdown {
    /// How long after its cancellation the node is aborted: zero for `Brutal`, `None` for
    /// `Infinity`.
    pub const fn deadline(self) -> Option<Duration> {
        match self {
            Shutdown::Brutal => Some(Duration::ZERO),
            Shutdown::Timeout(d) => Some(d),
            Shutdown::Infinity => None,
        }
    }

    pub(crate) fn check(self) -> Result<Shutdown, ConfigError> {
        match self {
            Shutdown::Timeout(d) if d.is_zero() => Err(ConfigError {
                setting: "shutdown timeout",
                value: format!("{d:?}"),
                rule: "must be more than zero; a child dropped at once is `Shutdown::Brutal`",
            }),
            policy => Ok(policy),
        }
    }
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shutdown::Brutal => f.write_str("brutal"),
            Shutdown::Timeout(d) => write!(f, "timeout {d:?}"),
            Shutdown::Infinity => f.write_str("infinity"),
        }
    }
}

/// How many restarts a group may have within a period before it gives up (OTP's
/// intensity and period): more than `max_restarts` restarts within `period` *escalate* —
/// the group's parent fails (`Dead`) with an error naming the period, the count and the
/// last failure, and the ordinary rules apply to the parent. The root escalating ends the
/// tree: [`Supervisor::wait`](crate::Supervisor::wait) returns
/// [`Ended::GaveUp`](crate::Ended::GaveUp).
///
/// - Each restart the supervisor *decides* for the group counts once, at the moment it is
///   decided: a one-for-all restart of five members is one restart, and the backoff that
///   follows falls inside the window. Temporary children and transient normal ends do not
///   count.
/// - The window slides on tokio's clock (so paused time drives it in tests), and is **not**
///   reset by `Healthy`: a child that fails a second after each healthy start still trips
///   it.
/// - The window is closed at both ends, as OTP's: a restart exactly `period` before the
///   current one still counts.
/// - `max_restarts = 0` escalates on the first failure.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::Intensity;
///
/// // OTP's default: more than 1 restart in 5 seconds gives up.
/// let intensity = Intensity::new(1, Duration::from_secs(5))?;
/// assert_eq!(intensity.max_restarts(), 1);
/// assert!(Intensity::new(3, Duration::ZERO).is_err());
/// # Ok::<(), supervisor::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Intensity {
    max_restarts: u32,
    period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within any `period`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if `period` is zero: no two restarts would ever share a window, so
    /// the limit would never apply (write `max_restarts = 0` to escalate at once).
    pub fn new(max_restarts: u32, period: Duration) -> Result<Intensity, ConfigError> {
        if period.is_zero() {
            return Err(ConfigError {
                setting: "intensity period",
                value: format!("{period:?}"),
                rule: "must be more than zero (max_restarts = 0 gives up on the first failure)",
            });
        }
        Ok(Intensity {
            max_restarts,
            period,
        })
    }

    /// `new` without its check, for a period already known not to be zero (the macros
    /// check it at compile time).
    pub(crate) const fn checked(max_restarts: u32, period: Duration) -> Intensity {
        Intensity {
            max_restarts,
            period,
        }
    }

    /// How many restarts the window allows.
    pub const fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// How long the window is.
    pub const fn period(&self) -> Duration {
        self.period
    }
}

impl fmt::Display for Intensity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {:?}", self.max_restarts, self.period)
    }
}

/// How one child is supervised: its restart kind, shutdown policy and backoff. For
/// [`Context::run_with`](crate::Context::run_with) and
/// [`Group::add_with`](crate::Group::add_with), and the children of a dynamic group
/// ([`DynamicSpec::child`](crate::DynamicSpec::child)); what a spec leaves unset is the
/// group's (backoff, and the restart kind: `Permanent` in a group, `Temporary` in a dynamic
/// group) or the builder's (backoff, shutdown grace).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor::{Backoff, Restart, Shutdown, Spec};
///
/// let spec = Spec::new()
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(10)))
///     .backoff(Backoff::constant(Duration::from_secs(1)));
/// assert_eq!(spec.restart_kind(), Restart::Transient);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "a spec does nothing until it is passed to `run_with` or `add_with`"]
pub struct Spec {
    restart: Option<Restart>,
    shutdown: Option<Shutdown>,
    backoff: Option<Backoff>,
    ignore_readiness: bool,
    watchdog: Option<Duration>,
    critical: bool,
}

impl Spec {
    /// A child of its group's kind (permanent, in a dynamic group temporary), with the
    /// group's backoff and the builder's shutdown grace.
    pub fn new() -> Spec {
        Spec::default()
    }

    /// Its restart kind.
    pub fn restart(mut self, restart: Restart) -> Spec {
        self.restart = Some(restart);
        self
    }

    /// Its shutdown policy. `Shutdown::Timeout(Duration::ZERO)` is refused when the child is
    /// run (see [`Shutdown`]).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Spec {
        self.shutdown = Some(shutdown);
        self
    }

    /// Its restart backoff, instead of its group's.
    pub fn backoff(mut self, backoff: Backoff) -> Spec {
        self.backoff = Some(backoff);
        self
    }

    /// The child does not gate its parent's readiness (DESIGN §16): whatever its state, its
    /// parent (and so the tree) can be ready without it. For a child whose absence the
    /// service can work around — a cache warmer, a metrics pusher, the connections of a
    /// dynamic group — so that `/readyz` and systemd's `READY=1` wait only for what serves.
    /// Its own readiness is still shown by
    /// [`Supervisor::health`](crate::Supervisor::health).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::{DynamicSpec, Spec};
    ///
    /// // A listener's connections come and go: none of them makes the service unready.
    /// let conns = DynamicSpec::new().child(Spec::new().ignore_readiness());
    /// # let _ = conns;
    /// ```
    pub fn ignore_readiness(mut self) -> Spec {
        self.ignore_readiness = true;
        self
    }

    /// A watchdog of `period`: once the runnable has signalled
    /// [`Healthy`](crate::Signal::Healthy) it must call
    /// [`heartbeat`](crate::Context::heartbeat) at least once every `period`, or it fails
    /// (`Dead`, "watchdog: no heartbeat for …"; its future is dropped) and the ordinary
    /// restart rules follow. The watch ends when the node signals `Done` or is cancelled
    /// (its shutdown policy times it from there). A zero period is refused when the child
    /// is run ([`RunError::InvalidSpec`](crate::RunError::InvalidSpec)).
    ///
    /// The watch runs in the node's own task, so it costs no task of its own and a
    /// heartbeat costs one clock read and one store. A runnable that blocks its thread
    /// cannot be failed while it does (its future cannot be dropped while it is polled),
    /// but a [`critical`](Spec::critical) one still stops systemd's watchdog pings.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use supervisor::{Context, Signal, Spec, Supervisor};
    ///
    /// async fn poller(ctx: Context) -> supervisor::Result {
    ///     ctx.signal(Signal::Healthy);
    ///     let mut tick = tokio::time::interval(Duration::from_secs(1));
    ///     loop {
    ///         tokio::select! {
    ///             _ = tick.tick() => ctx.heartbeat(), // ... and poll the device
    ///             () = ctx.cancelled() => return Ok(()),
    ///         }
    ///     }
    /// }
    ///
    /// let sup = Supervisor::new(|ctx: Context| async move {
    ///     ctx.run_with("poller", poller, Spec::new().watchdog(Duration::from_secs(5)))?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// });
    /// # sup.settled().await; sup.cancel(); sup.wait().await;
    /// # }
    /// ```
    pub fn watchdog(mut self, period: Duration) -> Spec {
        self.watchdog = Some(period);
        self
    }

    /// Marks the child critical for systemd's watchdog
    /// ([`Builder::systemd_notify`](crate::Builder::systemd_notify)): while its
    /// [`watchdog`](Spec::watchdog) has expired — it missed a heartbeat, and has not
    /// signalled `Healthy` again since — the supervisor sends no `WATCHDOG=1`, so that
    /// systemd restarts the whole service if the node does not come back in time. The
    /// expiry is read from the heartbeats themselves, so a critical runnable that blocks
    /// its thread stops the pings too. A critical child needs a watchdog: one without is
    /// refused when the child is run ([`RunError::InvalidSpec`](crate::RunError::InvalidSpec)).
    pub fn critical(mut self) -> Spec {
        self.critical = true;
        self
    }

    /// The restart kind it sets; `Permanent` if it sets none (but a dynamic group's
    /// children are `Temporary` unless their spec says otherwise: see
    /// [`DynamicSpec`](crate::DynamicSpec)).
    pub fn restart_kind(&self) -> Restart {
        self.restart.unwrap_or(Restart::Permanent)
    }

    /// The shutdown policy it sets, if any.
    pub fn shutdown_policy(&self) -> Option<Shutdown> {
        self.shutdown
    }

    /// The backoff it sets, if any.
    pub fn backoff_policy(&self) -> Option<&Backoff> {
        self.backoff.as_ref()
    }

    /// Whether it gates its parent's readiness (see [`ignore_readiness`](Spec::ignore_readiness)).
    pub fn gates_readiness(&self) -> bool {
        !self.ignore_readiness
    }

    /// The watchdog period it sets, if any.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Whether it is [`critical`](Spec::critical).
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// Whether every setting keeps its rule.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if let Some(s) = self.shutdown {
            s.check()?;
        }
        match self.watchdog {
            Some(period) if period.is_zero() => Err(ConfigError {
                setting: "watchdog period",
                value: format!("{period:?}"),
                rule: "must be more than zero",
            }),
            None if self.critical => Err(ConfigError {
                setting: "watchdog of a critical child",
                value: "none".to_owned(),
                rule: "a critical child needs one (`Spec::watchdog`): its expiry is what stops \
                       systemd's watchdog pings",
            }),
            _ => Ok(()),
        }
    }

    /// The policy of a node run with this (checked) spec, given its group's backoff and
    /// kind and the tree's defaults.
    pub(crate) fn resolve(&self, backoff: &Backoff, kind: Restart, defaults: &Policy) -> Policy {
        Policy {
            restart: self.restart.unwrap_or(kind),
            shutdown: self.shutdown.unwrap_or(defaults.shutdown),
            backoff: self.backoff.clone().unwrap_or_else(|| backoff.clone()),
            gates_readiness: !self.ignore_readiness,
            watchdog: self.watchdog,
            critical: self.critical,
        }
    }
}

/// A node's resolved settings, shared by every node made from the same spec (a group's
/// plain members share one).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) backoff: Backoff,
    /// Whether the node gates its parent's readiness.
    pub(crate) gates_readiness: bool,
    pub(crate) watchdog: Option<Duration>,
    pub(crate) critical: bool,
}

impl Policy {
    pub(crate) fn new(backoff: Backoff, grace: Duration) -> Arc<Policy> {
        Arc::new(Policy {
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(grace),
            backoff,
            gates_readiness: true,
            watchdog: None,
            critical: false,
        })
    }
}

/// A group's settings beyond its backoff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupPolicy {
    pub(crate) strategy: Strategy,
    pub(crate) ordered_shutdown: bool,
    /// `None`: the builder's.
    pub(crate) intensity: Option<Intensity>,
}

/// What a task needs to know of how its node stops — its shutdown policy, whether it
/// registers an abort with the tree, whether the tree told it to abort — in one word of its
/// incarnation, which a large tree has one of per runnable.
pub(crate) struct Stop(AtomicU64);

const ABORTED: u64 = 1 << 63;
const REGISTERS: u64 = 1 << 62;
const BRUTAL: u64 = REGISTERS - 1;
const INFINITY: u64 = REGISTERS - 2;

impl Stop {
    /// The word of a node with `shutdown`, whose task registers if `registers`. A timeout
    /// past 146 years is kept as 146 years.
    pub(crate) fn encode(shutdown: Shutdown, registers: bool) -> u64 {
        let policy = match shutdown {
            Shutdown::Brutal => BRUTAL,
            Shutdown::Infinity => INFINITY,
            Shutdown::Timeout(d) => nanos(d).min(INFINITY - 1),
        };
        if registers {
            policy | REGISTERS
        } else {
            policy
        }
    }

    pub(crate) fn new(word: u64) -> Stop {
        Stop(AtomicU64::new(word))
    }

    fn word(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn shutdown(&self) -> Shutdown {
        match self.word() & (REGISTERS - 1) {
            BRUTAL => Shutdown::Brutal,
            INFINITY => Shutdown::Infinity,
            nanos => Shutdown::Timeout(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn registers(&self) -> bool {
        self.word() & REGISTERS != 0
    }

    pub(crate) fn abort(&self) {
        self.0.fetch_or(ABORTED, Ordering::AcqRel);
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.word() & ABORTED != 0
    }
}

/// `d` in nanoseconds, saturating (a `Duration` holds more than a `u64` of them): how the
/// tree keeps times and periods.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
