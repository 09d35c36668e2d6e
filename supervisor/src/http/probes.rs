//! The probe endpoints, answered the way Kubernetes' own components answer them
//! (`k8s.io/apiserver/pkg/server/healthz`).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::shared::Shared;
use crate::{Context, NotReady, Supervisor};

/// The probe endpoints of a tree, as a tower [`Service`](tower_service::Service) of
/// HTTP requests: mount it in a server of your own (axum, tonic, hyper), or serve it with
/// [`HealthServer`](super::HealthServer). It answers, for any method:
///
/// - `/readyz`: one check per node whose readiness is the tree's (see
///   [`Health::checks`](crate::Health::checks)), named by its DN, in DN order, passing when
///   the node itself is Healthy or Done (so a failing line names the node at fault); the
///   whole passes exactly when the tree is [ready](crate::Supervisor::ready).
/// - `/livez`, and `/healthz` (its legacy name): one check, `supervisor`, failing only when
///   the tree has given up or the supervisor failed stop — an ordinary failure of a child
///   is the supervisor's to handle, not a reason for the kubelet to restart the process.
/// - `/<endpoint>/<check>`: that check alone.
/// - `/metrics`: the Prometheus text of the registry given to
///   [`metrics`](Probes::metrics), if any.
///
/// With Kubernetes' conventions exactly: `200` and `ok` when passing; with `?verbose`, a
/// `[+]<check> ok` line per check and `<endpoint> check passed`; on failure `500`, always
/// verbose, with `[-]<check> failed: reason withheld` and `<endpoint> check failed`;
/// `?exclude=<check>` (repeatable) passes a check as `[+]<check> excluded: ok`, and names
/// the ones that match nothing in a `warn:` line. A single check's failure says why:
/// `internal server error: <why>`. Anything else is `404 page not found`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use supervisor::http::Probes;
/// use supervisor::{Context, Signal, Supervisor};
/// use tower_service::Service;
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.ready().await;
/// let mut probes = Probes::new(&sup);
/// let request = http::Request::get("/readyz?verbose").body(()).unwrap();
/// let response = probes.call(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # sup.cancel(); sup.wait().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Probes {
    shared: Arc<Shared>,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

impl Probes {
    /// The probes of the tree `sup` runs.
    pub fn new(sup: &Supervisor) -> Probes {
        Probes::of(sup.shared_state().clone())
    }

    /// The probes of the tree `ctx` belongs to, for a server that runs inside the tree it
    /// reports on (its runnable has no [`Supervisor`] handle).
    pub fn from_context(ctx: &Context) -> Probes {
        Probes::of(ctx.incarnation().shared().clone())
    }

    fn of(shared: Arc<Shared>) -> Probes {
        Probes {
            shared,
            #[cfg(feature = "prometheus")]
            registry: None,
        }
    }

    /// Serves `registry` at `/metrics`, in Prometheus' text format (with
    /// [`PrometheusMetrics`](crate::PrometheusMetrics), the tree's states among it).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, registry: prometheus::Registry) -> Probes {
        self.registry = Some(registry);
        self
    }

    /// The answer to a request for `path` with `query` (without its `?`).
    pub(crate) fn answer(&self, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let (endpoint, check) = match path.trim_start_matches('/').split_once('/') {
            Some((endpoint, check)) => (endpoint, Some(check)),
            None => (path.trim_start_matches('/'), None),
        };
        let checks = match endpoint {
            "readyz" => self.readiness(),
            "livez" | "healthz" => vec![self.liveness()],
            #[cfg(feature = "prometheus")]
            "metrics" if check.is_none() => return self.metrics_text(),
            _ => return not_found(),
        };
        match check {
            None => render(endpoint, &checks, &Query::parse(query.unwrap_or(""))),
            Some(name) => match checks.iter().find(|c| c.name == name) {
                Some(Check { failure: None, .. }) => text(StatusCode::OK, "ok".to_owned()),
                Some(Check {
                    failure: Some(why), ..
                }) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: {why}\n"),
                ),
                None => not_found(),
            },
        }
    }

    /// `/readyz`'s checks: the DNs whose readiness is the tree's.
    fn readiness(&self) -> Vec<Check> {
        let health = self.shared.tree().health();
        health
            .checks()
            .map(|node| Check {
                name: node.dn.clone(),
                // A node that does not pass is not ready, and says why.
                failure: (!node.passes).then(|| match &node.not_ready {
                    Some(why) => why.to_string(),
                    None => NotReady::ShuttingDown.to_string(),
                }),
            })
            .collect()
    }

    /// `/livez`'s one check.
    fn liveness(&self) -> Check {
        let failure = if self.shared.failed_stop() {
            Some("the supervisor failed stop: its tree's lock was poisoned".to_owned())
        } else {
            self.shared
                .tree()
                .gave_up()
                .map(|reason| format!("the tree gave up: {reason}"))
        };
        Check {
            name: "supervisor".to_owned(),
            failure,
        }
    }

    #[cfg(feature = "prometheus")]
    fn metrics_text(&self) -> Response<Full<Bytes>> {
        use prometheus::Encoder as _;
        let Some(registry) = &self.registry else {
            return not_found();
        };
        let encoder = prometheus::TextEncoder::new();
        let mut body = Vec::new();
        if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the metrics: {e}\n"),
            );
        }
        let mut response = Response::new(Full::new(Bytes::from(body)));
        if let Ok(value) = HeaderValue::from_str(encoder.format_type()) {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        response
    }
}

/// One check's outcome: `failure` says why it failed.
struct Check {
    name: String,
    failure: Option<String>,
}

/// What a probe's query asks for.
struct Query {
    verbose: bool,
    exclude: Vec<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query {
            verbose: false,
            exclude: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match decode(key).as_str() {
                "verbose" => parsed.verbose = true,
                "exclude" => parsed.exclude.push(decode(value)),
                _ => {}
            }
        }
        parsed
    }
}

/// A query component, percent-decoded (and `+` as a space), as Go's `url.ParseQuery`
/// reads it; a malformed escape is kept as it is.
fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A probe's answer, as `handleRootHealth` writes it.
fn render(endpoint: &str, checks: &[Check], query: &Query) -> Response<Full<Bytes>> {
    let mut unmatched: Vec<&str> = query.exclude.iter().map(String::as_str).collect();
    unmatched.sort_unstable();
    unmatched.dedup();
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        if let Some(at) = unmatched.iter().position(|&e| e == check.name) {
            unmatched.remove(at);
            let _ = writeln!(lines, "[+]{} excluded: ok", check.name);
            continue;
        }
        match &check.failure {
            Some(_) => {
                failed = true;
                let _ = writeln!(lines, "[-]{} failed: reason withheld", check.name);
            }
            None => {
                let _ = writeln!(lines, "[+]{} ok", check.name);
            }
        }
    }
    if !unmatched.is_empty() {
        let quoted: Vec<String> = unmatched.iter().map(|e| format!("{e:?}")).collect();
        let _ = writeln!(
            lines,
            "warn: some health checks cannot be excluded: no matches for {}",
            quoted.join(",")
        );
    }
    if failed {
        let _ = writeln!(lines, "{endpoint} check failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, lines);
    }
    if !query.verbose {
        return text(StatusCode::OK, "ok".to_owned());
    }
    let _ = writeln!(lines, "{endpoint} check passed");
    text(StatusCode::OK, lines)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "404 page not found\n".to_owned())
}

impl<B> tower_service::Service<Request<B>> for Probes {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// Answers at once: a probe reads a snapshot of the tree, never waits for it.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let uri = request.uri();
        ready(Ok(self.answer(uri.path(), uri.query())))
    }
}

#[cfg(test)]
mod tests {
    use super::{Check, Query, decode, render};

    fn body(checks: &[Check], query: &str) -> (u16, String) {
        use http_body_util::BodyExt as _;
        let response = render("readyz", checks, &Query::parse(query));
        let status = response.status().as_u16();
        let Ok(bytes) = futures_lite(response.into_body().collect());
        (
            status,
            String::from_utf8(bytes.to_bytes().to_vec()).unwrap(),
        )
    }

    /// The body is `Full`: its one frame is ready at once.
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => unreachable!("a full body is ready"),
        }
    }

    fn check(name: &str, failure: Option<&str>) -> Check {
        Check {
            name: name.to_owned(),
            failure: failure.map(str::to_owned),
        }
    }

    #[test]
    fn kubernetes_conventions() {
        let passing = [check("root", None), check("root.a", None)];
        assert_eq!(body(&passing, ""), (200, "ok".to_owned()));
        assert_eq!(
            body(&passing, "verbose"),
            (
                200,
                "[+]root ok\n[+]root.a ok\nreadyz check passed\n".to_owned()
            )
        );
        let failing = [check("root", None), check("root.a", Some("starting"))];
        let verbose = "[+]root ok\n[-]root.a failed: reason withheld\nreadyz check failed\n";
        assert_eq!(body(&failing, ""), (500, verbose.to_owned()));
        assert_eq!(
            body(&failing, "exclude=root.a&exclude=nope&verbose=1"),
            (
                200,
                "[+]root ok\n[+]root.a excluded: ok\nwarn: some health checks cannot be \
                 excluded: no matches for \"nope\"\nreadyz check passed\n"
                    .to_owned()
            )
        );
    }

    #[test]
    fn query_components_are_decoded() {
        assert_eq!(decode("root%2Ea"), "root.a");
        assert_eq!(decode("a+b"), "a b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
