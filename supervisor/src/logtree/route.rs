//! Routing `tracing` events into the log tree of the runnable they happen in.
//!
//! Routes are told apart by the log tree they point to, not by DN, so several supervisors
//! in one process never mix their logs. There are two ways an event finds its route:
//!
//! - **By span**, when the application's own dispatcher includes [`LogTreeLayer`]: each
//!   runnable incarnation runs in a span (`runnable`, target `supervisor`, field `dn`) that
//!   the layer tags, when it is made, with its route. An event inside it (directly, in
//!   nested async calls, or in a task spawned with the span attached) goes there, and the
//!   application's other layers see the span as context.
//! - **By the current route**, otherwise: the supervisor polls its runnables under a
//!   fallback dispatcher of its own (a registry with the layer) that forwards every event to
//!   the dispatcher that was in effect, and sets the runnable being polled as the current
//!   route. No span is needed for that, so none is made until [`Context::span`] asks for
//!   one, for a spawned task; spans made inside a runnable take its route with them, and the
//!   fallback takes over whenever such a span is entered elsewhere.
//!
//! [`Context::span`]: crate::Context::span

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tracing::dispatcher::{self, DefaultGuard, Dispatch};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Span, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::entry::{LeveledEntry, Severity, base_name};
use super::{DnMeta, LogTree};

/// The target of the supervisor's spans and of its own events.
pub(crate) const TARGET: &str = "supervisor";

/// A `tracing` [`Layer`](https://docs.rs/tracing-subscriber/0.3/tracing_subscriber/layer/trait.Layer.html) that writes events emitted inside runnables to their log tree.
///
/// Nothing needs to be set up for runnables' events to reach the log tree: the supervisor
/// routes them itself when the current subscriber lacks this layer. Add it to your own
/// subscriber to get both at once with full span context — your layers (say, `fmt` to
/// stderr or OpenTelemetry) see runnable events inside their `runnable{dn=…}` spans, and
/// the log tree gets them too.
///
/// # Examples
///
/// ```no_run
/// use supervisor::logtree::LogTreeLayer;
/// use tracing_subscriber::prelude::*;
///
/// tracing_subscriber::registry()
///     .with(LogTreeLayer::new())
///     .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
///     .init();
/// ```
///
/// # Filtering
///
/// A filter on the whole subscriber filters the log tree too: with
/// `tracing_subscriber::fmt().with_env_filter(..)` and `RUST_LOG=warn`, or
/// `registry().with(EnvFilter::new("warn"))`, `tracing` never builds the INFO events of
/// runnables at all, so their logs in the tree are empty but for warnings and errors. To
/// keep the terminal quiet and the log tree complete, put the filter on your own layer
/// alone, with [`Layer::with_filter`](https://docs.rs/tracing-subscriber/0.3/tracing_subscriber/layer/trait.Layer.html#method.with_filter) (a per-layer filter), as the demo does:
///
/// ```no_run
/// use supervisor::logtree::LogTreeLayer;
/// use tracing_subscriber::filter::LevelFilter;
/// use tracing_subscriber::prelude::*;
///
/// tracing_subscriber::registry()
///     .with(LogTreeLayer::new()) // sees everything
///     .with(
///         tracing_subscriber::fmt::layer()
///             .with_writer(std::io::stderr)
///             .with_filter(LevelFilter::WARN), // only this layer is filtered
///     )
///     .init();
/// ```
///
/// How much of DEBUG and TRACE the log tree keeps is its own setting, per DN
/// ([`LogTree::set_verbosity`](super::LogTree::set_verbosity)).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogTreeLayer {
    _private: (),
}

impl LogTreeLayer {
    /// The layer. It holds no state: the log trees are found through the spans.
    pub fn new() -> Self {
        LogTreeLayer::default()
    }
}

/// Where a runnable's events go: a DN of a log tree.
///
/// The runnable's incarnation is one, set as the current route while it is polled (it
/// makes the DN's metadata only when the first event arrives). Spans carry a [`Route`]
/// of their own instead, so that a span kept by an incarnation does not keep it alive.
pub(crate) trait RouteTarget: Send + Sync + 'static {
    /// The log tree the events go to.
    fn tree(&self) -> &LogTree;
    /// The DN's metadata in that tree.
    fn meta(&self) -> &Arc<DnMeta>;
}

/// A route on its own: what spans carry.
struct Route {
    tree: LogTree,
    meta: Arc<DnMeta>,
}

impl Route {
    fn of(target: &dyn RouteTarget) -> Arc<Route> {
        Arc::new(Route {
            tree: target.tree().clone(),
            meta: target.meta().clone(),
        })
    }
}

impl RouteTarget for Route {
    fn tree(&self) -> &LogTree {
        &self.tree
    }

    fn meta(&self) -> &Arc<DnMeta> {
        &self.meta
    }
}

thread_local! {
    /// The route of the span being created on this thread, for `on_new_span` to take.
    static PENDING: RefCell<Option<Arc<Route>>> = const { RefCell::new(None) };
    /// The route of the runnable being polled on this thread under the fallback
    /// dispatcher, where runnables have no span unless one is asked for.
    static CURRENT: RefCell<Option<Arc<dyn RouteTarget>>> = const { RefCell::new(None) };
    /// The dispatchers the fallback forwards to, innermost last.
    static OUTER: RefCell<Vec<Dispatch>> = const { RefCell::new(Vec::new()) };
    /// Fallback installations made on entering a runnable span, by span.
    static REENTERED: RefCell<Vec<(Id, DefaultGuard)>> = const { RefCell::new(Vec::new()) };
}

/// Creates the span of a runnable. Call it while routing is in effect ([`Routing::enter`]),
/// so that the span belongs to a dispatcher with the layer.
pub(crate) fn runnable_span(target: &dyn RouteTarget) -> Span {
    let route = Route::of(target);
    let dn = route.meta.dn.clone();
    PENDING.with(|p| *p.borrow_mut() = Some(route));
    // ERROR level, so that no level filter of the application disables routing.
    let span = tracing::span!(
        target: TARGET,
        parent: None,
        Level::ERROR,
        "runnable",
        dn = %dn
    );
    PENDING.with(|p| p.borrow_mut().take());
    span
}

impl<S> Layer<S> for LogTreeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let meta = attrs.metadata();
        let Some(span) = ctx.span(id) else { return };
        if meta.target() == TARGET && meta.name() == "runnable" {
            if let Some(route) = PENDING.with(|p| p.borrow_mut().take()) {
                span.extensions_mut().insert(route);
            }
            return;
        }
        // A span made inside a runnable without a span of its own takes the runnable's
        // route, so that its events still land there when it is entered elsewhere.
        let inherited = span
            .scope()
            .skip(1)
            .any(|s| s.extensions().get::<Arc<Route>>().is_some());
        if !inherited && let Some(route) = CURRENT.with(|c| c.borrow().as_deref().map(Route::of)) {
            span.extensions_mut().insert(route);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let extensions = span.extensions();
                if let Some(route) = extensions.get::<Arc<Route>>() {
                    record(&**route, event);
                    return;
                }
            }
        }
        // No span says where: the runnable being polled, if the fallback polls one. An
        // explicit `parent: None` opts out, as the supervisor's own events do.
        if event.is_contextual() {
            CURRENT.with(|c| {
                if let Some(route) = c.borrow().as_deref() {
                    record(route, event);
                }
            });
        }
    }
}

/// The highest verbosity any DN has been given: DEBUG and TRACE callsites above it are of
/// no interest to the fallback. It only rises, so that a callsite's interest, cached by
/// `tracing`, is rebuilt only when it must be.
static RAISED: AtomicU32 = AtomicU32::new(0);

/// Notes that a DN was given `verbosity`: the callsites it now records are asked again,
/// and `tracing`'s highest level is worked out anew from the fallback's hint.
pub(crate) fn raise_verbosity(verbosity: u32) {
    if RAISED.fetch_max(verbosity, Ordering::AcqRel) < verbosity {
        // With the fallback as the thread's dispatcher: while it is the only dispatcher
        // ever made, `tracing` asks only the thread's for the callsites' interest.
        dispatcher::with_default(fallback(), tracing::callsite::rebuild_interest_cache);
    }
}

/// The verbosity a DN needs to record an event of `metadata`'s level: 1 for DEBUG, 2 for
/// TRACE, 0 for the rest.
fn verbosity(metadata: &tracing::Metadata<'_>) -> u32 {
    match *metadata.level() {
        Level::DEBUG => 1,
        Level::TRACE => 2,
        _ => 0,
    }
}

/// Writes `event` at the route's DN with LOGTREE.md's mapping: ERROR→E, WARN→W, INFO→I,
/// DEBUG→I at verbosity 1, TRACE→I at verbosity 2 (only if the DN's verbosity allows).
fn record(route: &dyn RouteTarget, event: &Event<'_>) {
    let metadata = event.metadata();
    let verbosity = verbosity(metadata);
    let severity = match *metadata.level() {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warning,
        _ => Severity::Info,
    };
    let meta = route.meta();
    if verbosity > meta.verbosity.load(Ordering::Relaxed) {
        return;
    }
    let mut text = Message::default();
    event.record(&mut text);
    let message = text.text();
    let file = match text.log_file.take() {
        Some(file) => Cow::Owned(base_name(&file).to_owned()),
        None => Cow::Borrowed(base_name(metadata.file().unwrap_or("unknown"))),
    };
    let line = text.log_line.or(metadata.line()).unwrap_or(0);
    let entry = LeveledEntry {
        severity,
        timestamp: SystemTime::now(),
        file,
        line,
        verbosity,
        message: Box::default(),
        original_len: None,
    };
    route.tree().append_leveled(&meta.dn, entry, message);
}

/// An event's text: its `message`, then its other fields as ` key=value`. Records of the
/// `log` crate, bridged by `tracing-log`, carry their location in `log.*` fields: those
/// give the entry's location instead of being appended.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
    log_file: Option<String>,
    log_line: Option<u32>,
}

impl Message {
    fn text(&mut self) -> String {
        let mut text = std::mem::take(&mut self.message);
        if text.is_empty() {
            return self.fields.trim_start().to_owned();
        }
        text.push_str(&self.fields);
        text
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "log.file" => self.log_file = Some(value.to_owned()),
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "log.line" {
            self.log_line = u32::try_from(value).ok();
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

/// Marks the fallback dispatcher, so that it can be recognised.
struct Fallback;

impl<S> Layer<S> for Fallback
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// The supervisor's own events never sit in a runnable span, so the fallback only
    /// forwards them: when the dispatcher it forwards to would ignore them, they are not
    /// even built.
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Whether the forwarded-to dispatcher wants these, and whether the DN's verbosity
        // lets DEBUG and TRACE through, change with the thread, the poll and the DN's
        // setting: ask every time rather than once per callsite.
        let needed = verbosity(metadata);
        if needed > RAISED.load(Ordering::Acquire) && metadata.target() != TARGET {
            // No DN records it: unless another dispatcher wants it, it is not even built.
            tracing::subscriber::Interest::never()
        } else if needed > 0 || (metadata.is_event() && metadata.target() == TARGET) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    /// The most verbose level any DN records. `tracing` compares an event's level with the
    /// highest hint of all dispatchers before it looks at the callsite at all: without a
    /// hint, each of hyper's and h2's DEBUG and TRACE callsites (dozens a request) would
    /// have its cached interest loaded only to be turned away — a twentieth of an HTTP/2
    /// server's instructions. What the application's own dispatcher wants forwarded is
    /// in its own hint, which `tracing` takes as well.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match RAISED.load(Ordering::Acquire) {
            0 => LevelFilter::INFO,
            1 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: LayerContext<'_, S>) -> bool {
        let outer_wants =
            || OUTER.with(|outer| outer.borrow().last().is_some_and(|o| o.enabled(metadata)));
        if metadata.target() == TARGET {
            return !metadata.is_event() || outer_wants();
        }
        // A library's DEBUG and TRACE events and spans (hyper's and h2's, dozens a
        // request) are turned away here, before they are built, unless the DN being polled
        // records them or the application's own dispatcher wants them: built and
        // dispatched only to be dropped by `record`, they cost an HTTP/2 server a third of
        // its requests per second. (An event in a span routed to another DN than the one
        // polled is judged by the one polled; an INFO event in a DEBUG span turned away
        // here is routed by the poll, as if the span were not there.)
        let needed = verbosity(metadata);
        needed == 0
            || CURRENT.with(|c| {
                c.borrow()
                    .as_deref()
                    .is_none_or(|route| route.meta().verbosity.load(Ordering::Relaxed) >= needed)
            })
            || outer_wants()
    }

    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        OUTER.with(|outer| {
            if let Some(outer) = outer.borrow().last()
                && outer.enabled(event.metadata())
            {
                outer.event(event);
            }
        });
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let ours = ctx
            .span(id)
            .is_some_and(|span| span.extensions().get::<Arc<Route>>().is_some());
        if ours && !dispatcher::get_default(is_fallback) {
            let outer = dispatcher::get_default(Dispatch::clone);
            OUTER.with(|o| o.borrow_mut().push(outer));
            let guard = dispatcher::set_default(fallback());
            REENTERED.with(|r| r.borrow_mut().push((id.clone(), guard)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        let guard = REENTERED.with(|r| {
            let mut r = r.borrow_mut();
            match r.last() {
                Some((top, _)) if top == id => r.pop(),
                _ => None,
            }
        });
        if let Some((_, guard)) = guard {
            drop(guard);
            OUTER.with(|o| o.borrow_mut().pop());
        }
    }
}

fn is_fallback(dispatch: &Dispatch) -> bool {
    dispatch.is::<Fallback>()
}

fn fallback() -> &'static Dispatch {
    static FALLBACK: OnceLock<Dispatch> = OnceLock::new();
    FALLBACK.get_or_init(|| {
        Dispatch::new(
            tracing_subscriber::registry()
                .with(LogTreeLayer::new())
                .with(Fallback),
        )
    })
}

/// Routing in effect for the duration of a poll: see the module documentation.
pub(crate) struct Routing {
    _guard: Option<DefaultGuard>,
    previous: Option<Option<Arc<dyn RouteTarget>>>,
}

impl Routing {
    /// Makes sure the events of the runnable with `route` reach its log tree until the guard
    /// drops: through the application's dispatcher if it has the layer (then the runnable
    /// needs its span), or through the fallback with the route as the current one.
    pub(crate) fn enter<R: RouteTarget>(route: Option<&Arc<R>>) -> Routing {
        let outer = dispatcher::get_default(|d| (!d.is::<LogTreeLayer>()).then(|| d.clone()));
        let Some(outer) = outer else {
            return Routing {
                _guard: None,
                previous: None,
            };
        };
        OUTER.with(|o| o.borrow_mut().push(outer));
        let previous = route.map(|r| {
            let r: Arc<dyn RouteTarget> = r.clone();
            CURRENT.with(|c| c.replace(Some(r)))
        });
        Routing {
            _guard: Some(dispatcher::set_default(fallback())),
            previous,
        }
    }

    /// Routes to `route` from now on, in place of the route entered with: for the next
    /// incarnation run in the same poll.
    pub(crate) fn reroute<R: RouteTarget>(&mut self, route: &Arc<R>) {
        if self._guard.is_some() {
            let route: Arc<dyn RouteTarget> = route.clone();
            let previous = CURRENT.with(|c| c.replace(Some(route)));
            // What was current before the first route stays what the drop restores.
            if self.previous.is_none() {
                self.previous = Some(previous);
            }
        }
    }

    /// [`enter`](Routing::enter) outside any runnable: for making a runnable's span.
    pub(crate) fn enter_without_route() -> Routing {
        Routing::enter::<Route>(None)
    }

    /// Whether events are routed by spans here, so that the runnable must have its span.
    pub(crate) fn by_span(&self) -> bool {
        self._guard.is_none()
    }
}

impl Drop for Routing {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
        if let Some(guard) = self._guard.take() {
            drop(guard);
            OUTER.with(|o| o.borrow_mut().pop());
        }
    }
}

impl fmt::Debug for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routing")
            .field("fallback", &self._guard.is_some())
            .field("current", &self.previous.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use tracing::Subscriber;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{Fallback, LogTreeLayer, raise_verbosity};

    /// `tracing` stops an event above every dispatcher's hint before it looks at its
    /// callsite: the fallback's hint (through the layers it is built of) is the most verbose
    /// level a DN records, and rises with a DN's verbosity.
    #[test]
    fn the_fallback_hints_the_most_verbose_level_a_dn_records() {
        let fallback = tracing_subscriber::registry()
            .with(LogTreeLayer::new())
            .with(Fallback);
        // Another test may have raised a DN's verbosity already.
        let hint = Subscriber::max_level_hint(&fallback);
        assert!(
            matches!(hint, Some(level) if level >= LevelFilter::INFO),
            "{hint:?}"
        );
        raise_verbosity(2);
        assert_eq!(
            Subscriber::max_level_hint(&fallback),
            Some(LevelFilter::TRACE)
        );
    }
}
