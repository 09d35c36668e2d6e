//! Remote-controlled runnables: the test decides, step by step, what each one does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use supervisor::{
    Context, Dynamic, DynamicSpec, Metrics, NodeState, RunError, Runnable, Signal, Supervisor,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What a remote-controlled runnable does next.
#[derive(Debug)]
pub enum Cmd {
    /// Return this error.
    Fail(&'static str),
    /// Panic with this message.
    Panic(&'static str),
    /// Return `Ok(())`.
    Return,
    /// Send this signal and carry on.
    Signal(Signal),
}

#[derive(Default)]
struct Inner {
    starts: AtomicUsize,
    tx: Mutex<Option<mpsc::UnboundedSender<Cmd>>>,
    times: Mutex<Vec<Instant>>,
    ctx: Mutex<Option<Context>>,
}

/// A handle on a runnable that the test steers. Every start registers itself; commands go
/// to the newest incarnation.
#[derive(Clone, Default)]
pub struct Remote {
    inner: Arc<Inner>,
    healthy_at_start: bool,
    ignores_cancel: bool,
    children: Vec<(&'static str, Remote)>,
}

impl Remote {
    /// A remote whose runnable signals Healthy as soon as it starts.
    pub fn healthy() -> Self {
        Remote {
            healthy_at_start: true,
            ..Remote::default()
        }
    }

    /// A remote whose runnable signals nothing by itself.
    pub fn silent() -> Self {
        Remote::default()
    }

    /// Starts `child` as a child named `name` on every start, before anything else.
    pub fn with_child(mut self, name: &'static str, child: &Remote) -> Self {
        self.children.push((name, child.clone()));
        self
    }

    /// Makes the runnable ignore its cancellation: it only returns when told to.
    pub fn ignoring_cancel(mut self) -> Self {
        self.ignores_cancel = true;
        self
    }

    pub fn runnable(&self) -> impl Runnable {
        let remote = self.clone();
        move |ctx: Context| {
            let remote = remote.clone();
            async move {
                let (tx, mut rx) = mpsc::unbounded_channel();
                remote.inner.starts.fetch_add(1, Ordering::SeqCst);
                remote.inner.times.lock().unwrap().push(Instant::now());
                *remote.inner.tx.lock().unwrap() = Some(tx);
                *remote.inner.ctx.lock().unwrap() = Some(ctx.clone());
                for (name, child) in &remote.children {
                    ctx.run(name, child.runnable())?;
                }
                if remote.healthy_at_start {
                    ctx.signal(Signal::Healthy);
                }
                let ignores_cancel = remote.ignores_cancel;
                loop {
                    tokio::select! {
                        () = ctx.cancelled(), if !ignores_cancel => return Ok(()),
                        cmd = rx.recv() => match cmd {
                            Some(Cmd::Fail(msg)) => return Err(msg.into()),
                            Some(Cmd::Panic(msg)) => panic!("{msg}"),
                            Some(Cmd::Return) | None => return Ok(()),
                            Some(Cmd::Signal(s)) => ctx.signal(s),
                        },
                    }
                }
            }
        }
    }

    /// Has the newest incarnation end normally: `Done`, then `Ok`.
    pub fn finish(&self) {
        self.send(Cmd::Signal(Signal::Done));
        self.send(Cmd::Return);
    }

    /// Sends a command to the newest incarnation.
    pub fn send(&self, cmd: Cmd) {
        let tx = self.inner.tx.lock().unwrap();
        tx.as_ref()
            .expect("the runnable has not started yet")
            .send(cmd)
            .expect("the runnable is not running");
    }

    pub fn starts(&self) -> usize {
        self.inner.starts.load(Ordering::SeqCst)
    }

    /// When each incarnation started.
    pub fn start_times(&self) -> Vec<Instant> {
        self.inner.times.lock().unwrap().clone()
    }

    /// The context of the newest incarnation.
    pub fn context(&self) -> Context {
        self.inner.ctx.lock().unwrap().clone().expect("not started")
    }
}

/// A runnable that starts `depth` levels of descendants below itself (each named `r`),
/// counting starts of every level in `starts`, then stays Healthy until cancelled.
pub fn spawns_more(depth: usize, starts: Arc<AtomicUsize>) -> impl Runnable {
    move |ctx: Context| {
        let starts = starts.clone();
        async move {
            starts.fetch_add(1, Ordering::SeqCst);
            if depth > 0 {
                ctx.run("r", spawns_more(depth - 1, starts.clone()))?;
            }
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    }
}

/// A runnable that signals Healthy and waits to be cancelled.
pub async fn serve(ctx: Context) -> supervisor::Result {
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

/// The state of `dn`, which must exist.
pub fn state(sup: &Supervisor, dn: &str) -> NodeState {
    match sup.states().get(dn) {
        Some(&s) => s,
        None => panic!("no node {dn} in {:?}", sup.states()),
    }
}

/// Cancels the supervisor and waits for it, checking that no runnable is left.
pub async fn shut_down(sup: Supervisor) {
    sup.cancel();
    let probe = sup.clone();
    sup.wait().await;
    assert!(
        probe.live_runnables().is_empty(),
        "still live after wait: {:?}",
        probe.live_runnables()
    );
}

/// The usual shape of a parent: start children, then signal Healthy and Done.
pub fn tree(
    setup: impl Fn(&Context) -> Result<(), RunError> + Send + Sync + 'static,
) -> impl Runnable {
    let setup = Arc::new(setup);
    move |ctx: Context| {
        let setup = setup.clone();
        async move {
            setup(&ctx)?;
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        }
    }
}

/// The messages retained at exactly `dn`, oldest first.
pub fn texts(tree: &supervisor::logtree::LogTree, dn: &str) -> Vec<String> {
    tree.read(dn, supervisor::logtree::ReadOptions::new().backlog_all())
        .unwrap()
        .backlog
        .iter()
        .map(|e| e.message().to_owned())
        .collect()
}

/// When something was dropped: hand out [`guard`](DropTime::guard)s to move into a runnable
/// or a task; the last one dropped sets the time.
#[derive(Clone, Default)]
pub struct DropTime(Arc<Mutex<Option<Instant>>>);

/// Sets its [`DropTime`] when dropped.
pub struct DropGuard(DropTime);

impl DropTime {
    pub fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }

    /// When it was dropped; panics (naming `what`) if it was not.
    pub fn at(&self, what: &str) -> Instant {
        match *self.0.lock().unwrap() {
            Some(at) => at,
            None => panic!("{what} was not dropped"),
        }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        *(self.0).0.lock().unwrap() = Some(Instant::now());
    }
}

/// A supervisor of `root` with a [`Recorder`] as its metrics sink.
pub fn recorded(root: impl Runnable) -> (Supervisor, Recorder) {
    let recorder = Recorder::default();
    let sup = Supervisor::builder().metrics(recorder.clone()).start(root);
    (sup, recorder)
}

/// A metrics sink that keeps every transition and lets a test wait for one.
#[derive(Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(String, NodeState)>>>,
    removed: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

impl Metrics for Recorder {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        self.log.lock().unwrap().push((dn.to_owned(), state));
        self.changed.notify_waiters();
    }

    fn notify_node_removed(&self, dn: &str) {
        self.removed.lock().unwrap().push(dn.to_owned());
    }
}

impl Recorder {
    /// The DNs that left the tree, in order.
    pub fn removed(&self) -> Vec<String> {
        self.removed.lock().unwrap().clone()
    }

    /// Every state `dn` has entered, in order.
    pub fn history(&self, dn: &str) -> Vec<NodeState> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(d, _)| d == dn)
            .map(|&(_, s)| s)
            .collect()
    }

    /// The DNs that entered `state` for the `nth` time (1-based), in the order they did.
    pub fn order(&self, state: NodeState, nth: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        let mut order = Vec::new();
        for (dn, _) in log.iter().filter(|(_, s)| *s == state) {
            let count = seen.entry(dn).or_default();
            *count += 1;
            if *count == nth {
                order.push(dn.clone());
            }
        }
        order
    }

    /// Waits until `dn` has entered `state` for the `nth` time (1-based).
    pub async fn wait_for_nth(&self, dn: &str, state: NodeState, nth: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.history(dn).iter().filter(|&&s| s == state).count() >= nth {
                return;
            }
            changed.await;
        }
    }

    /// Waits until `dn` has entered `state` at least once.
    pub async fn wait_for(&self, dn: &str, state: NodeState) {
        self.wait_for_nth(dn, state, 1).await;
    }
}

/// One captured `tracing` event.
#[derive(Clone, Debug)]
pub struct Record {
    pub target: String,
    pub level: Level,
    pub message: String,
    /// The `dn` of the innermost enclosing `runnable` span, if any.
    pub dn: Option<String>,
    /// The event's own `dn` field, if any.
    pub dn_field: Option<String>,
    /// The names of the spans the event happened in, innermost first.
    pub spans: Vec<String>,
}

/// Events captured on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Record>>>);

impl Captured {
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }

    /// The first event seen whose message is `message`.
    pub fn find(&self, message: &str) -> Option<Record> {
        self.records().into_iter().find(|r| r.message == message)
    }

    /// Whether an event at `target` with a message containing `needle` was seen.
    pub fn saw(&self, target: &str, level: Level, needle: &str) -> bool {
        self.records()
            .iter()
            .any(|r| r.target == target && r.level == level && r.message.contains(needle))
    }
}

struct SpanDn(String);

#[derive(Default)]
struct Fields {
    message: String,
    dn: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "dn" => self.dn = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "dn" => self.dn = Some(value.to_owned()),
            _ => {}
        }
    }
}

struct CaptureLayer(Captured);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(dn), Some(span)) = (fields.dn, ctx.span(id)) {
            span.extensions_mut().insert(SpanDn(dn));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let dn = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<SpanDn>().map(|d| d.0.clone()))
        });
        let spans = ctx
            .event_scope(event)
            .map(|scope| scope.into_iter().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.0.lock().unwrap().push(Record {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            message: fields.message,
            dn,
            dn_field: fields.dn,
            spans,
        });
    }
}

/// Captures every `tracing` event of this thread until the guard is dropped. Tests using it
/// run on tokio's default current-thread runtime, so every task polls on this thread. The
/// subscriber includes the log tree's layer, as an application with its own subscriber
/// would, so runnable spans are visible to it.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(supervisor::logtree::LogTreeLayer::new())
        .with(CaptureLayer(captured.clone()));
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Like [`capture`], with the application's capture layer filtered to `level` and above.
/// With `global`, the filter is a layer of the whole subscriber (`registry().with(filter)`),
/// which starves the log tree too; otherwise it is the capture layer's own
/// (`layer.with_filter(filter)`), the pattern `LogTreeLayer`'s documentation shows.
pub fn capture_filtered(
    level: tracing_subscriber::filter::LevelFilter,
    global: bool,
) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let guard = if global {
        tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(level)
                .with(supervisor::logtree::LogTreeLayer::new())
                .with(CaptureLayer(captured.clone())),
        )
    } else {
        tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(supervisor::logtree::LogTreeLayer::new())
                .with(CaptureLayer(captured.clone()).with_filter(level)),
        )
    };
    (captured, guard)
}

/// Like [`capture`], with an application subscriber that does not include the log tree's
/// layer: the supervisor then routes runnable events itself and forwards them here.
pub fn capture_without_layer() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(CaptureLayer(captured.clone()));
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A parent that makes the dynamic group `conns` on every start, hands its handle to the
/// test, and fails when told to.
pub struct Host {
    handles: mpsc::UnboundedReceiver<Dynamic>,
    pub fail: Arc<Notify>,
}

impl Host {
    pub async fn next(&mut self) -> Dynamic {
        self.handles.recv().await.expect("the parent started")
    }
}

pub fn host(spec: DynamicSpec) -> (impl Runnable, Host) {
    let (tx, handles) = mpsc::unbounded_channel();
    let fail = Arc::new(Notify::new());
    let f = fail.clone();
    let runnable = move |ctx: Context| {
        let (tx, fail, spec) = (tx.clone(), f.clone(), spec.clone());
        async move {
            let group = ctx.dynamic("conns", spec)?;
            let _ = tx.send(group);
            ctx.signal(Signal::Healthy);
            tokio::select! {
                () = ctx.cancelled() => Ok(()),
                () = fail.notified() => Err("the parent failed".into()),
            }
        }
    };
    (runnable, Host { handles, fail })
}

/// A supervisor whose root is a [`host`] of `spec`, its host, and the first group's handle.
pub async fn hosted(spec: DynamicSpec) -> (Supervisor, Host, Dynamic) {
    let (root, mut host) = host(spec);
    let sup = Supervisor::new(root);
    let group = host.next().await;
    (sup, host, group)
}

/// The readiness of every node, worked out from scratch from a status snapshot by the rule
/// of DESIGN §16 (for trees whose specs do not ignore readiness), against what
/// `Supervisor::health` says: the supervisor keeps it as counts moved on every change, and
/// this is their oracle. Call it once the tree has settled, so that both snapshots agree.
pub fn readiness_agrees(sup: &Supervisor) -> Result<(), String> {
    use std::collections::BTreeMap;
    use supervisor::Restart;
    let status = sup.status();
    let health = sup.health();
    let nodes: BTreeMap<&str, &supervisor::NodeStatus> =
        status.nodes().iter().map(|n| (n.dn.as_str(), n)).collect();
    fn ready(dn: &str, nodes: &BTreeMap<&str, &supervisor::NodeStatus>) -> bool {
        let node = nodes[dn];
        let passes = matches!(node.state, NodeState::Healthy | NodeState::Done);
        let prefix = format!("{dn}.");
        passes
            && nodes
                .iter()
                .filter(|(c, _)| c.strip_prefix(&prefix).is_some_and(|n| !n.contains('.')))
                .all(|(c, child)| {
                    let ended = !child.running
                        && matches!(
                            child.state,
                            NodeState::Done | NodeState::Dead | NodeState::Canceled
                        );
                    (child.kind == Restart::Temporary && ended) || ready(c, nodes)
                })
    }
    let cancelled = sup.is_cancelled() || sup.live_runnables().is_empty();
    for node in health.nodes() {
        let expected = !cancelled && ready(&node.dn, &nodes);
        if node.ready != expected {
            return Err(format!(
                "{} is ready: {}, but by the rule: {expected}\n{health}\n{status}",
                node.dn, node.ready
            ));
        }
    }
    let root = !cancelled && nodes.contains_key("root") && ready("root", &nodes);
    if health.is_ready() != root {
        return Err(format!(
            "the tree is ready: {}, but by the rule: {root}\n{health}",
            health.is_ready()
        ));
    }
    Ok(())
}
