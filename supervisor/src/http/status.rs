//! The status page (DESIGN §18): the live tree, a DN's logs followed live, the crash
//! reports, their JSON, and — only when the program allows it — restart, stop and start.
//!
//! One page, served by the binary, with its script inline: no framework, nothing fetched
//! from elsewhere, usable without a network. It follows the tree through server-sent
//! events, not by polling: an event makes it fetch the tree and the reports again.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /tree.json` | the tree: per DN its state, time in it, restarts, last error, readiness |
//! | `GET /crashes.json` | the kept crash reports, oldest first, each with its `text` |
//! | `GET /logs.json?dn=D` | the newest 200 entries at `D` |
//! | `GET /events` | `text/event-stream`: each lifecycle event, as its JSON |
//! | `GET /logs/stream?dn=D` | `text/event-stream`: each new entry at `D`, as its JSON |
//! | `POST /control?op=restart&dn=D` | restart, stop or start `D` (403 unless allowed) |

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use tokio::sync::mpsc;

use crate::error::ControlError;
use crate::json::{self, Object};
use crate::logtree::{LogReader, LogStream, ReadOptions, Streamed};
use crate::server::{Listen, Settings};
use crate::shared::Shared;
use crate::tree::Control;
use crate::{Context, Events, Observed, Runnable};

/// The page itself.
const PAGE: &str = include_str!("status.html");

/// The entries `/logs.json` gives.
const BACKLOG: usize = 200;

/// How many messages a live stream holds for a slow browser before it is cut off.
const STREAM_BUFFER: usize = 256;

/// A runnable serving the tree's status page over HTTP/1.1 and HTTP/2.
///
/// Restart, stop and start buttons (and `POST /control`) are there only with
/// [`allow_control`](StatusPage::allow_control): without it the page only shows. Put it
/// on an address only operators reach; it has no authentication of its own.
///
/// Live streams end when the server stops, so a graceful stop is not held up by open
/// pages.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// use supervisor::http::StatusPage;
/// use supervisor::{Context, Signal, Supervisor};
///
/// let page = StatusPage::bind("127.0.0.1:8081".parse().unwrap())
///     .allow_control()
///     .runnable();
/// let sup = Supervisor::new(move |ctx: Context| {
///     let page = page.clone();
///     async move {
///         ctx.run("status", page)?;
///         ctx.signal(Signal::Healthy);
///         ctx.cancelled().await;
///         Ok(())
///     }
/// });
/// sup.wait().await;
/// # }
/// ```
#[derive(Debug)]
pub struct StatusPage {
    settings: Settings,
    control: bool,
}

impl StatusPage {
    /// A page served on `addr`, bound on each start.
    pub fn bind(addr: SocketAddr) -> StatusPage {
        StatusPage::with(Listen::Bind(addr))
    }

    /// A page served on `listener`, kept across restarts (see
    /// [`Server::on`](crate::server::Server::on)).
    pub fn on(listener: std::net::TcpListener) -> StatusPage {
        StatusPage::with(Listen::on(listener))
    }

    fn with(listen: Listen) -> StatusPage {
        StatusPage {
            settings: super::server::operator_settings(listen),
            control: false,
        }
    }

    /// Shows restart, stop and start buttons, and accepts `POST /control`.
    pub fn allow_control(mut self) -> StatusPage {
        self.control = true;
        self
    }

    /// The runnable that serves the page.
    pub fn runnable(self) -> impl Runnable + Clone {
        let page = Arc::new(self);
        move |ctx: Context| {
            let page = page.clone();
            async move {
                let pages = Pages {
                    shared: ctx.incarnation().shared().clone(),
                    ctx: ctx.clone(),
                    control: page.control,
                };
                let pages = Arc::new(pages);
                let service = service_fn(move |request: Request<Incoming>| {
                    let pages = pages.clone();
                    async move { Ok::<_, Infallible>(pages.answer(&request)) }
                });
                page.settings.serve(ctx, &service).await
            }
        }
    }
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// What one incarnation of the page answers from.
struct Pages {
    shared: Arc<Shared>,
    ctx: Context,
    control: bool,
}

impl Pages {
    fn answer(&self, request: &Request<Incoming>) -> Reply {
        let query = request.uri().query().unwrap_or("");
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/") => {
                let page = PAGE.replace("{{CONTROL}}", if self.control { "true" } else { "false" });
                reply(StatusCode::OK, "text/html; charset=utf-8", page)
            }
            (&Method::GET, "/tree.json") => json_reply(self.tree_json()),
            (&Method::GET, "/crashes.json") => json_reply(self.crashes_json()),
            (&Method::GET, "/logs.json") => match param(query, "dn") {
                Some(dn) => self.logs_json(&dn),
                None => bad_request("`dn` is missing: /logs.json?dn=<DN>"),
            },
            (&Method::GET, "/events") => self.events(),
            (&Method::GET, "/logs/stream") => match param(query, "dn") {
                Some(dn) => self.log_stream(&dn),
                None => bad_request("`dn` is missing: /logs/stream?dn=<DN>"),
            },
            (&Method::POST, "/control") => self.control(query),
            (
                _,
                "/" | "/tree.json" | "/crashes.json" | "/logs.json" | "/events" | "/logs/stream",
            ) => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "method not allowed\n",
            ),
            (_, "/control") => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "POST /control?op=restart|stop|start&dn=<DN>\n",
            ),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }

    fn tree_json(&self) -> String {
        let (status, health) = {
            let tree = self.shared.tree();
            (tree.status(), tree.health())
        };
        let mut out = String::with_capacity(128 + 160 * status.nodes().len());
        let mut o = Object::new(&mut out);
        o.raw("ready", bool(health.is_ready()))
            .raw("control", bool(self.control));
        let nodes = o.key("nodes");
        nodes.push('[');
        for (i, node) in status.nodes().iter().enumerate() {
            if i > 0 {
                nodes.push(',');
            }
            let ready = health.get(&node.dn).is_some_and(|h| h.ready);
            Object::new(nodes)
                .str("dn", &node.dn)
                .str("state", node.state.name())
                .secs("in_state_secs", node.in_state)
                .num("restarts", node.restarts)
                .opt_str("last_error", node.last_error.as_deref())
                .raw("running", bool(node.running))
                .raw("ready", bool(ready))
                .end();
        }
        nodes.push(']');
        o.end();
        out
    }

    fn crashes_json(&self) -> String {
        let reports = self.shared.tree().crash_reports();
        let mut out = String::from("[");
        for (i, report) in reports.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // The report's own object, with its text added as the last field.
            let mut object = report.to_json();
            object.pop();
            out.push_str(&object);
            out.push_str(",\"text\":");
            json::string(&mut out, &report.to_string());
            out.push('}');
        }
        out.push(']');
        out
    }

    fn logs_json(&self, dn: &str) -> Reply {
        let read = self
            .shared
            .log_tree
            .read(dn, ReadOptions::new().backlog(BACKLOG));
        match read {
            Ok(reader) => {
                let mut out = String::from("[");
                for (i, entry) in reader.backlog.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    entry.write_json(&mut out);
                }
                out.push(']');
                json_reply(out)
            }
            Err(error) => bad_request(&error.to_string()),
        }
    }

    /// The lifecycle events as they come, until the browser goes or the page stops.
    fn events(&self) -> Reply {
        sse(&self.ctx, self.shared.tree().subscribe_events())
    }

    /// The new entries at `dn` as they are logged.
    fn log_stream(&self, dn: &str) -> Reply {
        let read = self
            .shared
            .log_tree
            .read(dn, ReadOptions::new().stream().stream_buffer(STREAM_BUFFER));
        match read {
            Ok(LogReader {
                stream: Some(stream),
                ..
            }) => sse(&self.ctx, stream),
            Ok(_) => bad_request("no stream"),
            Err(error) => bad_request(&error.to_string()),
        }
    }

    fn control(&self, query: &str) -> Reply {
        if !self.control {
            return reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "control is not allowed: the program did not call StatusPage::allow_control\n",
            );
        }
        let control = match param(query, "op").as_deref() {
            Some("restart") => Control::Restart,
            Some("stop") => Control::Stop,
            Some("start") => Control::Start,
            _ => return bad_request("`op` must be restart, stop or start"),
        };
        let Some(dn) = param(query, "dn") else {
            return bad_request("`dn` is missing: /control?op=<op>&dn=<DN>");
        };
        match self.shared.control(&dn, control, "the status page") {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ok\n"),
            Err(error) => {
                let status = match error {
                    ControlError::UnknownDn(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                };
                reply(status, "text/plain", format!("{error}\n"))
            }
        }
    }
}

fn bool(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// What a live stream sends: each item as a server-sent event's text, a gap told as a
/// `missed` event; `None` once it has ended.
trait Live: Send + 'static {
    fn message(&mut self) -> impl Future<Output = Option<String>> + Send + '_;
}

impl Live for Events {
    async fn message(&mut self) -> Option<String> {
        Some(match self.next().await? {
            Observed::Event(event) => format!("data: {}\n\n", event.to_json()),
            Observed::Missed(n) => format!("event: missed\ndata: {n}\n\n"),
        })
    }
}

impl Live for LogStream {
    async fn message(&mut self) -> Option<String> {
        Some(match self.next().await? {
            Streamed::Entry(entry) => format!("data: {}\n\n", entry.to_json()),
            Streamed::Missed(n) => format!("event: missed\ndata: {n}\n\n"),
        })
    }
}

/// A `text/event-stream` response of `live`, fed by a task of the page's node: it ends
/// when the browser goes (the channel closes) or the node is cancelled, and so does the
/// response.
fn sse(ctx: &Context, mut live: impl Live) -> Reply {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    // A first comment, so that the browser knows at once that the stream is open.
    let _ = tx.try_send(Bytes::from_static(b": live\n\n"));
    let cancelled = ctx.clone();
    drop(ctx.spawn(async move {
        loop {
            let message = tokio::select! {
                () = cancelled.cancelled() => return,
                message = live.message() => message,
            };
            let Some(message) = message else { return };
            if tx.send(Bytes::from(message)).await.is_err() {
                return;
            }
        }
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Sse(rx).boxed())
        .unwrap_or_else(|_| Response::new(empty()))
}

/// The body of a live stream: what its feeder sends, until it stops.
struct Sse(mpsc::Receiver<Bytes>);

impl Body for Sse {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|b| Ok(Frame::data(b))))
    }
}

fn empty() -> BoxBody<Bytes, Infallible> {
    Full::new(Bytes::new()).boxed()
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(body.into()).boxed())
        .unwrap_or_else(|_| Response::new(empty()))
}

fn json_reply(json: String) -> Reply {
    reply(StatusCode::OK, "application/json", json)
}

fn bad_request(why: &str) -> Reply {
    reply(StatusCode::BAD_REQUEST, "text/plain", format!("{why}\n"))
}

/// The value of `key` in a query string, percent-decoded.
fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{decode, param};

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            param("op=restart&dn=root.a%2Eb", "dn").as_deref(),
            Some("root.a.b")
        );
        assert_eq!(param("dn=a+b", "dn").as_deref(), Some("a b"));
        assert_eq!(param("dn=", "op"), None);
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz%41"), "%zzA");
        assert_eq!(decode("%é"), "%é");
    }
}
