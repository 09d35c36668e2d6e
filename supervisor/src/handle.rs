//! Starting a tree, and the handle that watches and stops it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::backoff::Backoff;
use crate::error::ControlError;
use crate::error::StartError;
use crate::logtree::LogTree;
use crate::metrics::Metrics;
use crate::policy::{Intensity, Policy, Restart, Spec};
use crate::runnable::Runnable;
use crate::shared::Shared;
use crate::tree::{Control, CrashSettings, Tree};
use crate::{CrashReport, Events, Health, NodeState, TreeStatus};

/// A running supervision tree.
///
/// The handle to a tree whose root runnable is named `root`. It is cheap to clone; clones
/// control the same tree. Dropping it detaches the tree, as dropping a
/// [`JoinHandle`](tokio::task::JoinHandle) detaches a task: the tree runs on until it is
/// cancelled (through a clone, or the token given to
/// [`Builder::cancel_token`]) or finishes by itself.
///
/// Compared to a [`TaskTracker`](tokio_util::task::TaskTracker) holding the same tasks, a
/// supervisor knows what each task is (its DN and state), restarts the ones that fail, and
/// cancels and restarts related tasks together.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use supervisor::{Context, Ended, NodeState, Signal, Supervisor};
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     ctx.run("child", |ctx: Context| async move {
///         ctx.signal(Signal::Healthy);
///         ctx.cancelled().await;
///         Ok(())
///     })?;
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.settled().await;
/// assert_eq!(sup.states()["root.child"], NodeState::Healthy);
///
/// sup.cancel();
/// assert_eq!(sup.wait().await, Ended::Cancelled);
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

/// How a supervised tree ended: see [`Supervisor::wait`].
///
/// Not `Copy` since it gained [`GaveUp`](Ended::GaveUp)'s reason. A program run under
/// systemd or Kubernetes should exit non-zero when its tree gave up, so that the process
/// is restarted from scratch (see [`Ended::is_failure`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ended {
    /// The supervisor was cancelled (or a propagated panic shut it down).
    Cancelled,
    /// Every runnable finished by itself: all nodes ended `Done`, nothing is left to restart.
    Finished,
    /// The tree gave up: its root escalated — restarted more often than the builder's
    /// [`intensity`](Builder::intensity) allows, or failed while
    /// [`Temporary`](crate::Restart::Temporary) — and everything was shut down. The reason
    /// names the period, the count and the last failure.
    GaveUp {
        /// Why, as logged at `supervisor`.
        reason: String,
    },
}

impl Ended {
    /// Whether the tree ended because it gave up, which a program should report with a
    /// non-zero exit status.
    pub fn is_failure(&self) -> bool {
        matches!(self, Ended::GaveUp { .. })
    }
}

impl Supervisor {
    /// Starts a supervisor with the default settings and `root` as its root runnable.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime, with a message saying so. Use
    /// [`Builder::try_start`] to get that as an error instead.
    #[track_caller]
    pub fn new<R: Runnable>(root: R) -> Supervisor {
        Supervisor::builder().start(root)
    }

    /// A builder for a supervisor with non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Cancels every runnable and restarts nothing from now on. Returns at once; await
    /// [`wait`](Supervisor::wait) to know when everything has returned.
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// Whether the supervisor has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// Resolves when every runnable has returned and nothing is scheduled to restart: after
    /// [`cancel`](Supervisor::cancel), or by itself once the whole tree is `Done`. Runnables
    /// that ignore cancellation are aborted after the shutdown grace period, so after a
    /// cancel this takes at most that long (plus the runnables' own drop time). Nothing the
    /// supervisor spawned is left when it resolves.
    ///
    /// # Panics
    ///
    /// With [`Builder::propagate_panics`], resumes the first panic of a runnable once the
    /// tree has shut down.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe; the supervisor is not affected by dropping this future.
    pub async fn wait(self) -> Ended {
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        if let Some(payload) = self.shared.take_panic() {
            std::panic::resume_unwind(payload);
        }
        if let Some(reason) = self.shared.tree().gave_up() {
            return Ended::GaveUp {
                reason: reason.to_string(),
            };
        }
        if self.shared.token.is_cancelled() {
            Ended::Cancelled
        } else {
            Ended::Finished
        }
    }

    /// Resolves when the tree has nothing left to do without an outside event: every
    /// runnable is waiting (for I/O, a timer of its own, a message, cancellation), no
    /// cancelled runnable still has to return, and no restart is pending.
    ///
    /// It is exact, not a sleep: it counts the supervisor's wakes and work as they happen.
    /// A restart waiting for its backoff counts as work, so under tokio's paused time
    /// (`start_paused`) `settled` returns after failed nodes are back up; with real time it
    /// waits out the backoff, and a node that fails on every start never lets the tree
    /// settle. A runnable that ignores its cancellation counts until it is aborted after
    /// the grace period. Tasks a runnable spawns itself with `tokio::spawn` are not seen.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe.
    pub async fn settled(&self) {
        self.shared.activity.settled().await;
    }

    /// Resolves when the tree is ready (DESIGN §16, see [`Health`]): the root and every
    /// node that gates readiness below it are Healthy or Done, and shutdown has not begun.
    /// At once if it is ready now. It is told of each change as it happens, and never
    /// polls; it does not resolve while the tree is not ready, nor ever once shutdown has
    /// begun, so pair it with [`wait`](Supervisor::wait) or a timeout where the tree may
    /// never get there.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use supervisor::{Context, Signal, Supervisor};
    ///
    /// let sup = Supervisor::new(|ctx: Context| async move {
    ///     ctx.run("listener", |ctx: Context| async move {
    ///         // ... bind the socket ...
    ///         ctx.signal(Signal::Healthy);
    ///         ctx.cancelled().await;
    ///         Ok(())
    ///     })?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// });
    /// sup.ready().await;
    /// assert!(sup.health().is_ready());
    /// # sup.cancel(); sup.wait().await;
    /// # }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe.
    pub async fn ready(&self) {
        let mut changes = self.shared.watch_health();
        while !self.shared.tree().is_ready() {
            // The sender lives as long as the tree's shared state, which this handle holds.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A snapshot of readiness: the tree's, and each node's with why it is not ready.
    /// `Display` prints it a node a line.
    pub fn health(&self) -> Health {
        self.shared.tree().health()
    }

    /// The log tree the supervisor and its runnables log into.
    pub fn log_tree(&self) -> LogTree {
        self.shared.log_tree.clone()
    }

    /// A snapshot of every node's state, by DN, in DN order.
    pub fn states(&self) -> BTreeMap<String, NodeState> {
        self.shared.tree().states()
    }

    /// A snapshot of every node for people: state, time in state, restarts, last error.
    /// `Display` prints it as an indented tree.
    pub fn status(&self) -> TreeStatus {
        self.shared.tree().status()
    }

    /// Restarts the node at `dn` now, as an operator would (OTP's `restart_child`): its
    /// subtree is cancelled and, once it has returned, the node starts again at once — no
    /// backoff, and counted in no intensity window, as this is no failure. Its group
    /// siblings are left alone whatever the group's strategy. A node waiting out its
    /// backoff starts at once; one that has ended (Done, or a temporary one that failed)
    /// runs again; a held one is released. Returns once the restart is under way; logged at
    /// `supervisor` as asked by `Supervisor::restart`.
    ///
    /// Races are settled by the tree's order: a node whose parent is being stopped, or
    /// whose group is restarting, restarts with them and this does nothing more.
    ///
    /// # Errors
    ///
    /// [`ControlError::UnknownDn`], [`ControlError::Root`] (cancel the supervisor instead),
    /// and [`ControlError::ShuttingDown`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), supervisor::ControlError> {
    /// use supervisor::{Context, Signal, Supervisor};
    ///
    /// async fn worker(ctx: Context) -> supervisor::Result {
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// }
    ///
    /// let sup = Supervisor::new(|ctx: Context| async move {
    ///     ctx.run("worker", worker)?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// });
    /// sup.settled().await;
    /// sup.restart("root.worker")?;
    /// sup.settled().await;
    /// assert_eq!(sup.status().get("root.worker").unwrap().restarts, 1);
    ///
    /// sup.stop("root.worker")?; // held down until started again
    /// sup.settled().await;
    /// assert_eq!(sup.states()["root.worker"], supervisor::NodeState::Canceled);
    /// sup.start("root.worker")?;
    /// sup.settled().await;
    /// assert_eq!(sup.states()["root.worker"], supervisor::NodeState::Healthy);
    /// # sup.cancel(); sup.wait().await; Ok(()) }
    /// ```
    pub fn restart(&self, dn: &str) -> Result<(), ControlError> {
        self.shared
            .control(dn, Control::Restart, "Supervisor::restart")
    }

    /// Stops the node at `dn` and holds it down: its subtree is cancelled, as by its
    /// shutdown policy, and the node is not started again — not by its own failure, its
    /// group's restart, or a backoff — until [`start`](Supervisor::start) releases it. Its
    /// group restarts around it; it is forgotten, hold and all, when its parent restarts.
    /// It ends `Canceled` (or however it returns) and is not ready meanwhile. Stopping a
    /// held node does nothing more.
    ///
    /// # Errors
    ///
    /// [`ControlError::UnknownDn`], [`ControlError::Root`], [`ControlError::ShuttingDown`].
    pub fn stop(&self, dn: &str) -> Result<(), ControlError> {
        self.shared.control(dn, Control::Stop, "Supervisor::stop")
    }

    /// Releases the node at `dn`, held by [`stop`](Supervisor::stop), and starts it again
    /// at once (once it has stopped, if it is still stopping).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotHeld`] when it is not held, and those of
    /// [`stop`](Supervisor::stop).
    pub fn start(&self, dn: &str) -> Result<(), ControlError> {
        self.shared.control(dn, Control::Start, "Supervisor::start")
    }

    /// The kept [crash reports](CrashReport), oldest first, newest last: the last 256 by
    /// default ([`Builder::crash_reports_kept`]).
    pub fn crash_reports(&self) -> Vec<Arc<CrashReport>> {
        self.shared.tree().crash_reports()
    }

    /// A live stream of the tree's lifecycle [events](crate::Event) from now on, in the order they
    /// happened: starts, `Healthy`, `Done`, ends by cancellation, deaths (with their crash
    /// reports), scheduled restarts, escalations, aborts, and operators' holds and
    /// releases. It buffers 4,096 events; a reader further behind is told how many it
    /// missed ([`Observed::Missed`](crate::Observed::Missed)) where they were.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use supervisor::{Context, EventKind, Observed, Signal, Supervisor};
    ///
    /// let sup = Supervisor::new(|ctx: Context| async move {
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// });
    /// let mut events = sup.events();
    /// sup.settled().await;
    /// sup.cancel();
    /// let mut seen = Vec::new();
    /// while let Some(Observed::Event(event)) = events.next().await {
    ///     seen.push(format!("{} {}", event.dn, event.kind.name()));
    ///     if let EventKind::Canceled = event.kind {
    ///         break;
    ///     }
    /// }
    /// // The root's start came before the call to `events`.
    /// assert_eq!(seen, ["root healthy", "root canceled"]);
    /// sup.wait().await;
    /// # }
    /// ```
    pub fn events(&self) -> Events {
        self.shared.tree().subscribe_events()
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    #[cfg(any(feature = "http", feature = "grpc"))]
    pub(crate) fn shared_state(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The DNs whose runnable is running now (has been started and has not returned), in
    /// DN order. This includes a node that has signalled `Done` but not yet returned, and
    /// one that failed by an illegal signal but still runs.
    pub fn live_runnables(&self) -> Vec<String> {
        self.shared.tree().live()
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("cancelled", &self.is_cancelled())
            .field("live_runnables", &self.shared.tree().live().len())
            .field("pending_work", &self.shared.activity.busy())
            .finish()
    }
}

/// Settings for a [`Supervisor`]; from [`Supervisor::builder`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use supervisor::{Backoff, CancellationToken, Context, InMemoryMetrics, Supervisor};
///
/// let shutdown = CancellationToken::new();
/// let metrics = InMemoryMetrics::default();
/// let sup = Supervisor::builder()
///     .backoff(Backoff::default().max(Duration::from_secs(10)))
///     .shutdown_grace(Duration::from_secs(2))
///     .metrics(metrics.clone())
///     .cancel_token(shutdown.clone())
///     .start(|ctx: Context| async move {
///         ctx.cancelled().await;
///         Ok(())
///     });
/// shutdown.cancel();
/// sup.wait().await;
/// # }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder {
    propagate_panics: bool,
    metrics: Vec<Arc<dyn Metrics>>,
    backoff: Backoff,
    shutdown_grace: Duration,
    intensity: Option<Intensity>,
    root_spec: Option<Spec>,
    cancel_token: Option<CancellationToken>,
    log_tree: Option<LogTree>,
    crash: CrashSettings,
    #[cfg(unix)]
    systemd: Option<crate::systemd::NotifyEnv>,
    #[cfg(not(unix))]
    systemd: Option<()>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            propagate_panics: false,
            metrics: Vec::new(),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(5),
            intensity: None,
            root_spec: None,
            cancel_token: None,
            log_tree: None,
            crash: CrashSettings::default(),
            systemd: None,
        }
    }
}

impl Builder {
    /// Lets panics of runnables reach the caller of [`Supervisor::wait`] instead of only
    /// failing the node: the first panic shuts the tree down and `wait` resumes it. For tests
    /// and debugging.
    pub fn propagate_panics(mut self) -> Self {
        self.propagate_panics = true;
        self
    }

    /// How many [crash reports](CrashReport) the supervisor keeps for
    /// [`Supervisor::crash_reports`] (256 by default; the oldest goes first). 0 keeps
    /// none; the reports are still logged, sent as events and told to the metrics sinks.
    pub fn crash_reports_kept(mut self, reports: usize) -> Self {
        self.crash.keep = reports;
        self
    }

    /// How many of the newest log lines at a failed node's DN its crash report copies (50
    /// by default; 0 copies none).
    pub fn crash_report_lines(mut self, lines: usize) -> Self {
        self.crash.lines = lines;
        self
    }

    /// Adds a sink told of every state change. Can be called several times; every sink sees
    /// every change.
    pub fn metrics(mut self, metrics: impl Metrics) -> Self {
        self.metrics.push(Arc::new(metrics));
        self
    }

    /// The restart backoff of every node whose group does not set its own
    /// ([`Group::backoff`](crate::Group::backoff)); the root always uses this one.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a runnable may take to return after its context is cancelled before it is
    /// aborted (its future dropped) and recorded `Dead`. Default 5 s, like OTP's
    /// `shutdown` of a worker.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The restart intensity of every group that does not set its own
    /// ([`Group::intensity`](crate::Group::intensity)), and of the root: more than
    /// `max_restarts` restarts of the root within `period` and the tree gives up
    /// ([`Ended::GaveUp`]). Default: no limit, the seed's behaviour.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use supervisor::{Backoff, Context, Ended, Intensity, Supervisor};
    ///
    /// let sup = Supervisor::builder()
    ///     .intensity(Intensity::new(2, Duration::from_secs(60)).unwrap())
    ///     .backoff(Backoff::constant(Duration::from_secs(1)))
    ///     .start(|_ctx: Context| async move { Err("cannot start".into()) });
    /// let ended = sup.wait().await;
    /// assert!(ended.is_failure(), "{ended:?}");
    /// # }
    /// ```
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = Some(intensity);
        self
    }

    /// How the root is supervised: its restart kind, shutdown policy and backoff. A
    /// [`Temporary`](crate::Restart::Temporary) root that fails gives up the tree; a
    /// transient one that returns `Ok` finishes it.
    pub fn root_spec(mut self, spec: Spec) -> Self {
        self.root_spec = Some(spec);
        self
    }

    /// Ties the supervisor to `token`: cancelling it cancels the supervisor (cancelling the
    /// supervisor does not cancel `token`). Every context, and
    /// [`Supervisor::is_cancelled`], sees the cancellation at once; the runnables are woken
    /// by a watch of the token, a task of the supervisor's that ends with the tree.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel_token = Some(token);
        self
    }

    /// Logs into `log_tree` instead of a new log tree of default limits. Several
    /// supervisors may share one; their DNs then overlap (all have `root`).
    pub fn log_tree(mut self, log_tree: LogTree) -> Self {
        self.log_tree = Some(log_tree);
        self
    }

    /// Speaks systemd's notify protocol (sd_notify(3)) for the tree, so that the program
    /// works as a `Type=notify` service with `WatchdogSec=` (DESIGN §16):
    ///
    /// - `READY=1` once, when the tree is first [ready](Supervisor::ready);
    /// - `STATUS=` with a one-line [summary](crate::Health::summary) whenever it changes
    ///   (`12/14 ready; root.net.dhcp restarting in 3.2s`);
    /// - `WATCHDOG=1` every `WATCHDOG_USEC/2`, from a task on the supervisor's runtime (so
    ///   a blocked runtime sends none), and none while the watchdog of a
    ///   [critical](crate::Spec::critical) node has expired — they resume once it is Healthy
    ///   again; none at all when `WATCHDOG_PID` names another process;
    /// - `STOPPING=1` when the tree begins to stop (cancelled, given up, or finished).
    ///
    /// Each is one datagram to `$NOTIFY_SOCKET`: an absolute path, or `@name` for an
    /// abstract socket. The environment is read when the supervisor starts; without
    /// `$NOTIFY_SOCKET` nothing is sent at all, so the same program runs unchanged outside
    /// systemd. A variable that cannot be used, or a datagram that cannot be sent, is
    /// logged at `supervisor` and the tree runs on. The variables stay in the environment
    /// (removing them is `unsafe` since Rust 2024), and [`run_command`](crate::run_command)
    /// starts its processes without them. Not on Windows, where it does nothing.
    ///
    /// See the README's "Under systemd" for a unit file and `systemd-run` to try it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use supervisor::{Context, Supervisor};
    ///
    /// let sup = Supervisor::builder()
    ///     .systemd_notify()
    ///     .start(|ctx: Context| async move {
    ///         ctx.cancelled().await;
    ///         Ok(())
    ///     });
    /// # sup.cancel(); sup.wait().await;
    /// # }
    /// ```
    pub fn systemd_notify(mut self) -> Self {
        #[cfg(unix)]
        {
            self.systemd = Some(crate::systemd::NotifyEnv::default());
        }
        #[cfg(not(unix))]
        {
            self.systemd = Some(());
        }
        self
    }

    /// [`systemd_notify`](Builder::systemd_notify) with the variables given, for tests that
    /// cannot set the process's environment.
    #[cfg(all(test, unix))]
    pub(crate) fn systemd_env(mut self, env: crate::systemd::NotifyEnv) -> Self {
        self.systemd = Some(env);
        self
    }

    /// Starts the supervisor with `root` as its root runnable, at DN `root`.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime, with a message saying so; see
    /// [`try_start`](Builder::try_start).
    #[track_caller]
    pub fn start<R: Runnable>(self, root: R) -> Supervisor {
        match self.try_start(root) {
            Ok(sup) => sup,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the supervisor, or says why it cannot.
    ///
    /// # Errors
    ///
    /// [`StartError::NoRuntime`] when called outside a tokio runtime,
    /// [`StartError::NoTimeDriver`] when the runtime has no time driver, and
    /// [`StartError::InvalidSpec`] when the [root spec](Builder::root_spec) breaks a rule.
    pub fn try_start<R: Runnable>(self, root: R) -> Result<Supervisor, StartError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(StartError::NoRuntime);
        };
        if !time_is_enabled() {
            return Err(StartError::NoTimeDriver);
        }
        let token = match &self.cancel_token {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let defaults = Policy::new(self.backoff, self.shutdown_grace);
        let root_policy = match &self.root_spec {
            None => defaults.clone(),
            Some(spec) => {
                spec.check().map_err(StartError::InvalidSpec)?;
                Arc::new(spec.resolve(&defaults.backoff, Restart::Permanent, &defaults))
            }
        };
        let activity = Arc::new(Activity::default());
        let log_tree = self.log_tree.unwrap_or_default();
        let mut tree = Tree::new(
            token.clone(),
            defaults,
            self.intensity,
            self.metrics,
            activity.clone(),
            log_tree.clone(),
        );
        tree.set_crash_settings(self.crash);
        let shared = Arc::new(Shared::new(
            runtime,
            tree,
            token,
            activity,
            self.propagate_panics,
            log_tree,
        ));
        let effects = shared.tree().start_root(Arc::new(root), root_policy);
        // Before the root's task is spawned, so that the tree is not finished meanwhile.
        if let Some(parent) = self.cancel_token {
            shared.watch_token(parent);
        }
        shared.apply(effects);
        #[cfg(unix)]
        if let Some(env) = self.systemd {
            let env = match env.socket {
                // Given by a test; otherwise read now.
                Some(_) => env,
                None => crate::systemd::NotifyEnv::from_process(),
            };
            crate::systemd::start(&shared, env);
        }
        Ok(Supervisor { shared })
    }
}

/// Whether the current runtime has a time driver. Tokio offers no query for it, and creating
/// a timer without one panics; so create one and see. (Without a driver the panic hook
/// prints tokio's message once; the global hook is left alone, as other threads use it.)
fn time_is_enabled() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("propagate_panics", &self.propagate_panics)
            .field("metrics", &self.metrics.len())
            .field("backoff", &self.backoff)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("intensity", &self.intensity)
            .field("root_spec", &self.root_spec)
            .field("cancel_token", &self.cancel_token)
            .field("log_tree", &self.log_tree)
            .field("crash_reports_kept", &self.crash.keep)
            .field("crash_report_lines", &self.crash.lines)
            .field("systemd_notify", &self.systemd.is_some())
            .finish()
    }
}
