//! What a runnable gets: its place in the tree, its cancellation, and its way to act on it.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::Wake;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::Signal;
use crate::activity::{Activity, TaskWake};
use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::cancellation::Cancellation;
use crate::dynamic::{Dynamic, DynamicSpec};
use crate::error::RunError;
use crate::group::{Group, Member};
use crate::logtree::{DnMeta, LogTree, Logger, RawLogger, RouteTarget, Routing, runnable_span};
use crate::node_task::NodeTask;
use crate::policy::{GroupPolicy, Shutdown, Spec, Stop};
use crate::runnable::Runnable;
use crate::shared::Shared;
use crate::tree::{Abort, Key, Signalled, Start, Watchdog};

/// A runnable's handle on its node: one per incarnation, passed to the runnable when it
/// starts.
///
/// It tells the runnable its DN and when to stop ([`cancelled`](Context::cancelled)), and
/// lets it start children ([`run`](Context::run), [`run_group`](Context::run_group)) and
/// report progress ([`signal`](Context::signal)). Clones are cheap and refer to the same
/// incarnation; once the node is restarted, a clone kept elsewhere (by a detached task) is
/// *stale*: its `run` returns [`RunError::Stale`], its signals are ignored, and its
/// cancellation has fired, so it can never touch the new incarnation.
///
/// Compared to a bare [`CancellationToken`], a context also names its holder and can grow
/// the tree below it; [`cancellation_token`](Context::cancellation_token) hands out the
/// token for libraries that take one.
///
/// # Examples
///
/// ```
/// use supervisor::{Context, Signal};
///
/// async fn parent(ctx: Context) -> supervisor::Result {
///     // Start children while New, then report health.
///     ctx.run("worker", |ctx: Context| async move {
///         ctx.signal(Signal::Healthy);
///         ctx.cancelled().await;
///         Ok(())
///     })?;
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// }
/// # let _ = parent;
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Incarnation>,
}

/// What one incarnation's context, task and log routing share, in one allocation: a large
/// tree has one per runnable, so everything per-runnable lives here unless it is made only
/// when first needed.
///
/// It is also the task's waker. Like a tokio task's own waker, which keeps its runtime's
/// handle, a waker kept after its task has ended keeps the incarnation, and so the
/// supervisor's shared state, until it is dropped or woken — as a kept [`Context`] does.
pub(crate) struct Incarnation {
    shared: Arc<Shared>,
    key: Key,
    dn: Arc<str>,
    /// Its cancellation, which the tree sets; it also holds the task's wake accounting
    /// (the incarnation is the task's [`Wake`]).
    cancel: Arc<Cancel>,
    /// The log tree's record of the DN, made when the runnable first logs: most runnables
    /// of a large tree never do, and need not cost the log tree anything.
    meta: OnceLock<Arc<DnMeta>>,
    /// What most runnables never need, boxed apart: made at once for a node with a
    /// watchdog, and otherwise when a span is first needed.
    rare: OnceLock<Box<Rare>>,
    /// Its shutdown policy, whether its task registers with the tree once cancelled, and
    /// whether the tree told it to drop the runnable (an ancestor was aborted).
    stop: Stop,
}

/// The parts of an [`Incarnation`] that most runnables never need.
#[derive(Default)]
struct Rare {
    /// Made when first needed: when an application subscriber routes by span, or when
    /// asked for. Without one, the supervisor routes the runnable's events itself.
    span: OnceLock<Span>,
    /// Its watchdog, if its spec sets one.
    watchdog: Option<Arc<Watchdog>>,
}

impl Context {
    /// The context of a task about to be spawned for `start`, whose wake the tree has
    /// already counted.
    pub(crate) fn new(shared: Arc<Shared>, start: Start) -> Self {
        Context {
            inner: Arc::new(Incarnation {
                shared,
                key: start.key,
                dn: start.dn,
                cancel: start.cancel,
                meta: OnceLock::new(),
                rare: match start.watchdog {
                    None => OnceLock::new(),
                    watchdog => OnceLock::from(Box::new(Rare {
                        span: OnceLock::new(),
                        watchdog,
                    })),
                },
                stop: Stop::new(start.stop),
            }),
        }
    }

    pub(crate) fn incarnation(&self) -> &Arc<Incarnation> {
        &self.inner
    }

    /// The span its task polls in, once `routing` is entered for the incarnation: under an
    /// application subscriber (routing by span) the runnable and its node's tasks run in
    /// it; otherwise only if one was made (routing is by the current route then).
    #[inline]
    pub(crate) fn span_to_enter(&self, routing: &Routing) -> Option<&Span> {
        if routing.by_span() {
            Some(self.span())
        } else {
            self.inner.rare.get().and_then(|rare| rare.span.get())
        }
    }

    /// The `tracing` span of this incarnation (`runnable`, with a `dn` field): attach it to
    /// tasks the runnable spawns (`.instrument(ctx.span().clone())`) and their events land at
    /// this DN too. The runnable itself runs in it whenever an application subscriber is
    /// watching (one with [`LogTreeLayer`](crate::logtree::LogTreeLayer)); otherwise it is
    /// made on first use, as routing needs no span then.
    pub fn span(&self) -> &Span {
        let rare = self.inner.rare.get_or_init(Box::default);
        rare.span.get_or_init(|| {
            let _routing = Routing::enter_without_route();
            runnable_span(&*self.inner)
        })
    }

    fn meta(&self) -> &Arc<DnMeta> {
        self.inner.meta()
    }

    /// This node's distinguished name, e.g. `root.net.dhcp`.
    pub fn dn(&self) -> &str {
        &self.inner.dn
    }

    /// Resolves when the runnable must stop: its node, an ancestor, a group sibling or the
    /// whole supervisor is being cancelled. The runnable should then return promptly;
    /// after the shutdown grace period it is aborted.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropping the future loses nothing, and a new one resolves at once if the
    /// context is already cancelled.
    ///
    /// DESIGN writes it `async fn cancelled(&self)`; it returns the named future
    /// [`Cancellation`] instead, which a runnable's own task waits on for free, and which
    /// can be kept in a struct.
    pub fn cancelled(&self) -> Cancellation<'_> {
        Cancellation::new(&self.inner)
    }

    /// How this node is stopped once cancelled: its [`Shutdown`] policy (its spec's, or a
    /// timeout of the builder's shutdown grace).
    pub fn shutdown(&self) -> Shutdown {
        self.inner.stop.shutdown()
    }

    /// How long the runnable may take to return once cancelled before it is aborted: zero
    /// for `Brutal`, `Duration::MAX` for `Infinity`.
    #[cfg_attr(not(all(feature = "process", unix)), allow(dead_code))]
    pub(crate) fn shutdown_grace(&self) -> Duration {
        self.shutdown().deadline().unwrap_or(Duration::MAX)
    }

    /// Whether the runnable must stop; see [`cancelled`](Context::cancelled).
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// This incarnation's cancellation as a [`CancellationToken`], for libraries that take
    /// one (graceful server shutdown, `tokio_util` helpers): cancelled when the context is.
    ///
    /// Cancelling it stops this node and its subtree, as if the node cancelled itself: it
    /// ends `Canceled` when it returns, and is restarted after its backoff, like a failed
    /// node (DESIGN §14), so that a runnable that cancels itself on every start does not
    /// restart in a hot loop. The context sees it at once ([`is_cancelled`] is true); its
    /// children are cancelled as soon as the node's task next runs — at the end of the
    /// poll that cancelled it, when the runnable cancelled it itself.
    ///
    /// The supervisor keeps a node's cancellation in its tree, not in tokens: the token is
    /// made on the first call (later calls return clones of it), and costs nothing to a
    /// node that never asks for one. It is the node's task that tells the tree of the
    /// token's cancellation, so once the runnable has returned, cancelling the token of
    /// its context reaches only what waits on the token itself (its node's
    /// [`spawn`](Context::spawn)ed tasks), not the children it left running.
    ///
    /// [`is_cancelled`]: Context::is_cancelled
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancel.token(&self.inner.shared.activity)
    }

    /// Starts `runnable` as a child named `name`: a group of one. See
    /// [`run_group`](Context::run_group) for the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::{Context, Signal};
    ///
    /// async fn parent(ctx: Context) -> supervisor::Result {
    ///     ctx.run("child", |ctx: Context| async move {
    ///         ctx.signal(Signal::Healthy);
    ///         ctx.cancelled().await;
    ///         Ok(())
    ///     })?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.signal(Signal::Done);
    ///     Ok(())
    /// }
    /// # let _ = parent;
    /// ```
    ///
    /// # Errors
    ///
    /// [`RunError::InvalidName`] or [`RunError::NameTaken`] for a name that breaks the rules
    /// above, [`RunError::NotNew`] once this node has signalled `Healthy` (or has returned),
    /// and [`RunError::Stale`] from a context whose incarnation has ended or whose restart
    /// has been decided.
    pub fn run<R: Runnable>(&self, name: &str, runnable: R) -> Result<(), RunError> {
        let member = [Member {
            name,
            runnable: Arc::new(runnable),
            spec: None,
        }];
        self.start(&member, None, GroupPolicy::default())
    }

    /// Starts `runnable` as a child named `name`, supervised as `spec` says: its restart
    /// kind, shutdown policy and backoff (DESIGN §14). A group of one, so its kind is all
    /// that decides what its own end means.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use supervisor::{Context, Restart, Shutdown, Signal, Spec};
    ///
    /// async fn flush(ctx: Context) -> supervisor::Result {
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     // ... write out what is buffered ...
    ///     Ok(())
    /// }
    ///
    /// async fn parent(ctx: Context) -> supervisor::Result {
    ///     let spec = Spec::new()
    ///         .restart(Restart::Transient)
    ///         .shutdown(Shutdown::Timeout(Duration::from_secs(30)));
    ///     ctx.run_with("flush", flush, spec)?;
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.signal(Signal::Done);
    ///     Ok(())
    /// }
    /// # let _ = parent;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Context::run), and [`RunError::InvalidSpec`] for a spec whose setting
    /// breaks its rule (a shutdown timeout of zero).
    pub fn run_with<R: Runnable>(
        &self,
        name: &str,
        runnable: R,
        spec: Spec,
    ) -> Result<(), RunError> {
        let member = [Member {
            name,
            runnable: Arc::new(runnable),
            spec: Some(spec),
        }];
        self.start(&member, None, GroupPolicy::default())
    }

    /// Starts every member of `group` as a child of this node, at `<dn>.<name>`.
    ///
    /// Names must match `^[a-z0-9_]{1,64}$` and be unique among all children and
    /// sub-loggers of this incarnation, across all its groups. Children can only be started
    /// while this node is `New`, before it signals `Healthy`. On any error nothing of the
    /// group is started. Children are forgotten when this node restarts; the new
    /// incarnation starts its own.
    ///
    /// The children are in the tree, `New`, when this returns. Called from inside a
    /// runnable, the tasks of all but the first few children it starts in one poll are
    /// spawned when that poll returns, together: on a multi-thread runtime a parent
    /// starting many children then does not hand the tree back and forth with each child
    /// it has just started. So a runnable waits for a child it started by awaiting, never
    /// by blocking its thread (`block_in_place` included): the child may run only once it
    /// yields. Called from elsewhere (a plain thread, a node's task), the tasks are spawned
    /// at once.
    ///
    /// # Errors
    ///
    /// [`RunError::InvalidName`] or [`RunError::NameTaken`] for a name that breaks the rules
    /// above, [`RunError::InvalidSpec`] for a member's spec that breaks its rule,
    /// [`RunError::NotNew`] once this node has signalled `Healthy` (or has returned), and
    /// [`RunError::Stale`] from a context whose incarnation has ended or whose restart has
    /// been decided.
    pub fn run_group(&self, group: Group) -> Result<(), RunError> {
        self.start(&group.members, group.backoff.as_ref(), group.policy)
    }

    fn start<S: AsRef<str>>(
        &self,
        members: &[Member<S>],
        backoff: Option<&Backoff>,
        policy: GroupPolicy,
    ) -> Result<(), RunError> {
        let shared = &self.inner.shared;
        let started = shared
            .in_tree(|tree| tree.run_group(self.inner.key, members, backoff, policy))
            .map_err(|e| e.named(self.dn()))?;
        for start in started.starts {
            shared.spawn(start);
        }
        if let Some(watch) = started.watch {
            shared.watch(watch);
        }
        Ok(())
    }

    /// Makes the dynamic group `name` below this node, and returns its handle: children
    /// started through it at any time, from any task, while this incarnation lives — one per
    /// connection, job or device (DESIGN §15).
    ///
    /// The group is a node at `<dn>.<name>`, `Healthy` from the start, and its children are
    /// nodes below it (`<dn>.<name>.c17`). Like a child, the group is made while this node is
    /// `New`, and its name shares the namespace of this node's children and sub-loggers.
    /// See [`Dynamic`] for what its children get, and [`DynamicSpec`] for its settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::{Context, DynamicSpec, Signal};
    ///
    /// async fn server(ctx: Context) -> supervisor::Result {
    ///     let conns = ctx.dynamic("conns", DynamicSpec::new())?;
    ///     ctx.signal(Signal::Healthy);
    ///     // In the accept loop, for each connection:
    ///     conns.start(|ctx: Context| async move {
    ///         tracing::info!("serving"); // logged at root.conns.c1
    ///         Ok(())
    ///     })?;
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// }
    /// # let _ = server;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Context::run), and [`RunError::InvalidSpec`] for a spec whose setting
    /// breaks its rule (`max_children(0)`, a shutdown timeout of zero).
    pub fn dynamic(&self, name: &str, spec: DynamicSpec) -> Result<Dynamic, RunError> {
        let shared = &self.inner.shared;
        let start = shared
            .in_tree(|tree| tree.run_dynamic(self.inner.key, name, &spec))
            .map_err(|e| e.named(self.dn()))?;
        let handle = Dynamic::new(shared.clone(), start.key, start.dn.clone());
        shared.spawn(start);
        Ok(handle)
    }

    /// Spawns `future` as a task that belongs to this node (DESIGN §15), on the supervisor's
    /// runtime:
    ///
    /// - its `tracing` events land at this node's DN, as the runnable's own do (a bare
    ///   `tokio::spawn` loses them);
    /// - its wakes count toward [`Supervisor::settled`](crate::Supervisor::settled);
    /// - once this incarnation's context is cancelled (a failure, a restart, the shutdown),
    ///   it has the node's shutdown grace to finish, and is then aborted: its `JoinHandle`
    ///   returns a cancelled `JoinError`. Like a child, it keeps running after the node has
    ///   signalled `Done` and returned, until the context is cancelled;
    /// - [`Supervisor::wait`](crate::Supervisor::wait) outlasts it.
    ///
    /// A node's restart does not wait for its tasks (only for its children): give them the
    /// context, or a clone of its token, to stop with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::{Context, Signal};
    ///
    /// async fn server(ctx: Context) -> supervisor::Result {
    ///     let worker = ctx.clone();
    ///     let flusher = ctx.spawn(async move {
    ///         tracing::info!("flushing"); // logged at the server's DN
    ///         worker.cancelled().await;
    ///     });
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     let _ = flusher.await;
    ///     Ok(())
    /// }
    /// # let _ = server;
    /// ```
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, state) = NodeTask::new(self.clone(), future);
        let handle = self.inner.shared.spawn_tracked(task);
        state.set_abort(handle.abort_handle());
        handle
    }

    /// Tells the supervisor how this runnable is doing; see [`Signal`].
    ///
    /// An illegal signal (`Healthy` twice, `Done` before `Healthy`, `Done` twice) fails the
    /// node: it becomes `Dead` at once, its context and its group siblings' are cancelled
    /// (unless it was already being cancelled: see [`NodeState::Dead`](crate::NodeState::Dead)),
    /// and it stays `Dead` whatever it then returns. Signals from a stale context are
    /// ignored (and logged at `supervisor`).
    pub fn signal(&self, signal: Signal) {
        let signalled = self
            .inner
            .shared
            .in_tree(|tree| tree.signal(self.inner.key, signal));
        if let Some(dog) = self.inner.watchdog()
            && !matches!(signalled, Signalled::Stale)
        {
            match signal {
                Signal::Healthy => dog.start(),
                Signal::Done => dog.stop(),
            }
            // The task arms (or drops) its timer when it next runs; the signal may come
            // from another task.
            self.inner.wake_by_ref();
        }
        match signalled {
            Signalled::Accepted => {}
            Signalled::WithEffects(effects) => self.inner.shared.apply(*effects),
            Signalled::Stale => tracing::warn!(
                target: "supervisor",
                parent: None,
                dn = %self.dn(),
                "ignored signal {signal} from a stale context of {}",
                self.dn()
            ),
        }
    }

    /// Feeds this node's watchdog ([`Spec::watchdog`]): the runnable is alive and doing its
    /// work. Once Healthy, a node with a watchdog must call this at least once per period,
    /// or it fails. Cheap (a clock read and a store); does nothing for a node without a
    /// watchdog, before Healthy, after Done, and from a stale context — a kept clone of an
    /// ended incarnation cannot feed the next one's watchdog.
    pub fn heartbeat(&self) {
        if let Some(dog) = self.inner.watchdog() {
            dog.feed();
        }
    }

    /// The logger of this node's DN. `tracing` events inside the runnable land there too.
    pub fn logger(&self) -> Logger {
        let shared = &self.inner.shared;
        Logger::new(shared.log_tree.clone(), self.meta().clone())
    }

    /// A logger at `<dn>.<name>`, for a part of the runnable that deserves its own log.
    ///
    /// The name follows the rules of child names and shares their namespace: a name used
    /// by a sub-logger can never be a child of this node incarnation, nor the reverse, so
    /// no runnable and sub-logger ever log into the same DN. Asking twice for the same
    /// sub-logger is fine. Sub-loggers can be made at any time, also after `Healthy`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::{Context, Signal};
    ///
    /// async fn dhcp(ctx: Context) -> supervisor::Result {
    ///     let leases = ctx.sub_logger("lease")?; // logs at `<dn>.lease`
    ///     ctx.signal(Signal::Healthy);
    ///     leases.info("10.0.0.2 leased for 1 h");
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// }
    /// # let _ = dhcp;
    /// ```
    ///
    /// # Errors
    ///
    /// [`RunError::InvalidName`] for a name that is not `^[a-z0-9_]{1,64}$`,
    /// [`RunError::NameTaken`] for a child's name, and [`RunError::Stale`] from a context
    /// whose incarnation has ended or whose restart has been decided.
    pub fn sub_logger(&self, name: &str) -> Result<Logger, RunError> {
        let shared = &self.inner.shared;
        let dn = shared
            .tree()
            .reserve_sub_logger(self.inner.key, name)
            .map_err(|e| e.named(self.dn()))?;
        Ok(Logger::new(
            shared.log_tree.clone(),
            shared.log_tree.meta_of_node(&dn),
        ))
    }

    /// [`sub_logger`](Context::sub_logger), for names known to be valid (a literal): an
    /// invalid or taken name panics, which fails this runnable with the reason.
    ///
    /// # Panics
    ///
    /// If `name` is invalid, or is a child's name.
    #[track_caller]
    pub fn must_sub_logger(&self, name: &str) -> Logger {
        match self.sub_logger(name) {
            Ok(logger) => logger,
            Err(e) => panic!("{e}"),
        }
    }

    /// A writer of raw lines at this node's DN (for unstructured output such as a child
    /// process's). Each call gives a writer with its own line buffer.
    pub fn raw_logger(&self) -> RawLogger {
        let shared = &self.inner.shared;
        RawLogger::new(shared.log_tree.clone(), self.meta().clone())
    }

    /// The supervisor's log tree, for reading.
    pub fn log_tree(&self) -> LogTree {
        self.inner.shared.log_tree.clone()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("dn", &self.dn())
            .field("incarnation", &self.inner.key.incarnation)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Incarnation {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    pub(crate) fn dn(&self) -> &str {
        &self.dn
    }

    pub(crate) fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Whether the runnable must stop: its cancellation (see [`Cancel::is_cancelled`]), or
    /// the token given to the builder, whose watch tells the tree only once it has run.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.shared.external_cancelled()
    }

    pub(crate) fn activity(&self) -> &Activity {
        &self.shared.activity
    }

    pub(crate) fn task_wake(&self) -> &TaskWake {
        &self.cancel.wake
    }

    pub(crate) fn stop(&self) -> &Stop {
        &self.stop
    }

    pub(crate) fn watchdog(&self) -> Option<&Arc<Watchdog>> {
        self.rare.get()?.watchdog.as_ref()
    }

    /// Whether a logger was made at its DN: by the runnable, its tasks, or the routing of
    /// their `tracing` events. (One made later, from a context kept past the incarnation's
    /// end, is not known to the tree: what it logs stays once the node has left.)
    pub(crate) fn has_logged(&self) -> bool {
        self.meta.get().is_some()
    }
}

impl Abort for Incarnation {
    fn abort(&self) {
        self.stop.abort();
        self.cancel.wake.wake(&self.shared.activity);
    }
}

impl RouteTarget for Incarnation {
    fn tree(&self) -> &LogTree {
        &self.shared.log_tree
    }

    fn meta(&self) -> &Arc<DnMeta> {
        self.meta
            .get_or_init(|| self.shared.log_tree.meta_of_node(&self.dn))
    }
}

impl Wake for Incarnation {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.cancel.wake.wake(&self.shared.activity);
    }
}
