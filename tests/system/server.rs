//! The supervised server (DESIGN §17) over real loopback connections, HTTP/1.1 and HTTP/2:
//! graceful and hard stops, the shutdown deadline, refusal once the stop begins, restarts,
//! and that nothing of it outlives `wait()`. The slow handler waits on a gate the test
//! opens, never on the clock; the one test about the deadline runs in paused time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use supervisor::server::{Server, Stop};
use supervisor::{Backoff, Group, NodeState, Shutdown, Spec, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::support::{Cmd, Recorder, Remote, texts, tree};

/// A service whose `/slow` answers once the test opens its gate; `/` answers at once
/// with the DN-free `hello`.
#[derive(Clone)]
struct App {
    started: mpsc::UnboundedSender<()>,
    gate: watch::Receiver<bool>,
    // Requests to `/slow` whose handler was dropped before it answered.
    dropped: Arc<AtomicUsize>,
}

/// The test's side of an [`App`].
struct Control {
    started: mpsc::UnboundedReceiver<()>,
    gate: watch::Sender<bool>,
    dropped: Arc<AtomicUsize>,
}

impl Control {
    /// Waits until a handler of `/slow` has begun.
    async fn started(&mut self) {
        self.started.recv().await.unwrap();
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn app() -> (App, Control) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let dropped = Arc::new(AtomicUsize::new(0));
    let app = App {
        started: started_tx,
        gate: gate_rx,
        dropped: dropped.clone(),
    };
    (
        app,
        Control {
            started,
            gate,
            dropped,
        },
    )
}

/// Counts a handler dropped before it finished.
struct Unfinished(Option<Arc<AtomicUsize>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(dropped) = self.0.take() {
            dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type Answering =
    std::pin::Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for App {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, request: Request<Incoming>) -> Answering {
        let app = self.clone();
        Box::pin(async move {
            if request.uri().path() == "/slow" {
                let mut unfinished = Unfinished(Some(app.dropped.clone()));
                let _ = app.started.send(());
                let mut gate = app.gate.clone();
                let _ = gate.wait_for(|&open| open).await;
                unfinished.0 = None;
                return Ok(Response::new(Full::from("slow, but done\n")));
            }
            if request.uri().path() == "/panic" {
                panic!("a handler bug");
            }
            Ok(Response::new(Full::from("hello\n")))
        })
    }
}

/// A tree whose `root.api` serves `app` on a kept loopback listener, with `stop`.
async fn served(stop: Stop, spec: Spec) -> (Supervisor, Recorder, Control, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (app, control) = app();
    let api = Server::on(listener, app).stop(stop).runnable();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            ctx.run_with("api", api.clone(), spec.clone())
        }));
    recorder.wait_for("root.api", NodeState::Healthy).await;
    (sup, recorder, control, addr)
}

/// Writes an HTTP/1.1 request for `path` on a new connection, and returns it unread.
async fn request(addr: SocketAddr, path: &str, close: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let connection = if close { "close" } else { "keep-alive" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads the connection to its end: what the server sent before it closed.
async fn read_to_end(mut stream: TcpStream) -> String {
    let mut raw = Vec::new();
    // A reset is an end too: the server dropped the connection.
    let _ = stream.read_to_end(&mut raw).await;
    String::from_utf8(raw).unwrap()
}

/// Reads one response (its body as long as its `content-length`) from a kept-alive
/// connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed before a whole response: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= len {
                return text.into_owned();
            }
        }
    }
}

/// Whether `GET /` on a new connection is answered `hello`.
async fn says_hello(addr: SocketAddr) -> bool {
    read_to_end(request(addr, "/", true).await)
        .await
        .ends_with("hello\n")
}

async fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect(addr).await {
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_request_in_flight_and_refuses_new_connections() {
    let (sup, recorder, mut control, addr) = served(Stop::Graceful, Spec::new()).await;
    let slow = request(addr, "/slow", true).await;
    control.started().await;
    sup.cancel();
    // The server returns as soon as it has stopped accepting: its socket is closed.
    recorder.wait_for("root.api", NodeState::Canceled).await;
    assert!(
        refused(addr).await,
        "a connection made after the stop began"
    );
    let waiting = tokio::spawn({
        let sup = sup.clone();
        async move { sup.wait().await }
    });
    control.open();
    let answer = read_to_end(slow).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nslow, but done\n"), "{answer}");
    waiting.await.unwrap();
    assert_eq!(control.dropped(), 0);
    let log = texts(&sup.log_tree(), "root.api");
    assert!(
        log.iter()
            .any(|l| l == "stopped accepting; 1 connections finish their requests"),
        "{log:?}"
    );
}

// Paused time, to tell "at once" from "at the shutdown deadline".
#[tokio::test(start_paused = true)]
async fn a_hard_stop_drops_the_request_in_flight_at_once() {
    let (sup, _recorder, mut control, addr) = served(Stop::Hard, Spec::new()).await;
    let slow = request(addr, "/slow", true).await;
    control.started().await;
    let cancelled = tokio::time::Instant::now();
    sup.cancel();
    // The gate is never opened: the request ends only because it is dropped.
    assert_eq!(read_to_end(slow).await, "");
    sup.wait().await;
    assert_eq!(cancelled.elapsed(), Duration::ZERO);
    assert_eq!(control.dropped(), 1);
    assert!(refused(addr).await);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_drops_what_is_left_at_the_shutdown_deadline() {
    let spec = Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(2)));
    let (sup, recorder, mut control, addr) = served(Stop::Graceful, spec).await;
    let slow = request(addr, "/slow", true).await;
    control.started().await;
    let cancelled = tokio::time::Instant::now();
    sup.cancel();
    sup.clone().wait().await;
    assert_eq!(cancelled.elapsed(), Duration::from_secs(2));
    assert_eq!(read_to_end(slow).await, "");
    assert_eq!(control.dropped(), 1);
    // The server itself stopped cleanly, at once; its connection was cut at the deadline.
    assert_eq!(
        recorder.history("root.api").last(),
        Some(&NodeState::Canceled)
    );
    let log = texts(&sup.log_tree(), "root.api");
    assert!(
        log.iter()
            .any(|l| l.ends_with(": dropped unfinished, at the shutdown deadline")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_graceful_stop_closes_idle_keep_alive_connections_at_once() {
    let (sup, _recorder, mut control, addr) = served(Stop::Graceful, Spec::new()).await;
    let mut idle = request(addr, "/", false).await;
    assert!(read_response(&mut idle).await.ends_with("hello\n"));
    let slow = request(addr, "/slow", true).await;
    control.started().await;
    sup.cancel();
    // Closed while the other connection's request is still in flight.
    assert_eq!(read_to_end(idle).await, "");
    control.open();
    assert!(read_to_end(slow).await.ends_with("slow, but done\n"));
    sup.wait().await;
}

/// An HTTP/2 connection (prior knowledge, as gRPC speaks it) with its driver on a task.
async fn h2(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driver)
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://test{path}"))
        .body(Empty::new())
        .unwrap()
}

async fn body(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn http2_streams_in_flight_finish_in_a_graceful_stop() {
    let (sup, recorder, mut control, addr) = served(Stop::Graceful, Spec::new()).await;
    let (mut sender, driver) = h2(addr).await;
    let hello = sender.send_request(get("/")).await.unwrap();
    assert_eq!(hello.version(), http::Version::HTTP_2);
    assert_eq!(body(hello).await, "hello\n");
    let first = tokio::spawn(sender.send_request(get("/slow")));
    let second = tokio::spawn(sender.send_request(get("/slow")));
    control.started().await;
    control.started().await;
    sup.cancel();
    recorder.wait_for("root.api", NodeState::Canceled).await;
    assert!(refused(addr).await);
    control.open();
    assert_eq!(
        body(first.await.unwrap().unwrap()).await,
        "slow, but done\n"
    );
    assert_eq!(
        body(second.await.unwrap().unwrap()).await,
        "slow, but done\n"
    );
    sup.wait().await;
    driver.await.unwrap();
    assert_eq!(control.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn http2_streams_are_dropped_at_once_by_a_hard_stop() {
    let (sup, _recorder, mut control, addr) = served(Stop::Hard, Spec::new()).await;
    let (mut sender, driver) = h2(addr).await;
    let first = tokio::spawn(sender.send_request(get("/slow")));
    let second = tokio::spawn(sender.send_request(get("/slow")));
    control.started().await;
    control.started().await;
    let cancelled = tokio::time::Instant::now();
    sup.cancel();
    assert!(first.await.unwrap().is_err());
    assert!(second.await.unwrap().is_err());
    sup.wait().await;
    assert_eq!(cancelled.elapsed(), Duration::ZERO);
    driver.await.unwrap();
    assert_eq!(control.dropped(), 2);
}

#[tokio::test]
async fn no_task_of_the_server_outlives_wait() {
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let (sup, _recorder, mut control, addr) = served(Stop::Graceful, Spec::new()).await;
    // An idle HTTP/1 connection, one in flight, and an HTTP/2 one with a stream in flight.
    let mut idle = request(addr, "/", false).await;
    read_response(&mut idle).await;
    let slow = request(addr, "/slow", true).await;
    let (mut sender, driver) = h2(addr).await;
    let stream = tokio::spawn(sender.send_request(get("/slow")));
    control.started().await;
    control.started().await;
    let during = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    // The tree's root and server, two connections and an HTTP/2 one with its stream
    // (and the test's own: the client's driver and its request).
    assert!(
        during >= before + 7,
        "{before} before, {during} while serving"
    );
    sup.cancel();
    control.open();
    sup.wait().await;
    drop((idle, slow, sender));
    let _ = stream.await;
    driver.await.unwrap();
    let after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(after, before, "tasks left after wait()");
}

#[tokio::test]
async fn the_server_restarts_and_serves_again_on_its_address() {
    // Bound on each start: a port taken and freed again, for an address known beforehand.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (app, _control) = app();
    let api = Server::bind(addr, app).runnable();
    let peer = Remote::healthy();
    let p = peer.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_millis(1)))
        // Restarted together: a failure of the peer restarts the server.
        .start(tree(move |ctx| {
            ctx.run_group(
                Group::new()
                    .add("api", api.clone())
                    .add("peer", p.runnable()),
            )
        }));
    recorder.wait_for("root.api", NodeState::Healthy).await;
    assert!(says_hello(addr).await);
    peer.send(Cmd::Fail("a sibling failed"));
    recorder
        .wait_for_nth("root.api", NodeState::Healthy, 2)
        .await;
    assert!(says_hello(addr).await);
    sup.cancel();
    sup.wait().await;
    assert!(refused(addr).await);
}

#[tokio::test]
async fn a_service_that_panics_fails_its_connection_or_stream_alone() {
    let (sup, _recorder, _control, addr) = served(Stop::Graceful, Spec::new()).await;
    assert_eq!(read_to_end(request(addr, "/panic", true).await).await, "");
    assert!(says_hello(addr).await);
    // On HTTP/2 the stream is reset; its connection's other streams carry on.
    let (mut sender, driver) = h2(addr).await;
    assert!(sender.send_request(get("/panic")).await.is_err());
    let hello = sender.send_request(get("/")).await.unwrap();
    assert_eq!(body(hello).await, "hello\n");
    sup.settled().await;
    assert_eq!(sup.states()["root.api"], NodeState::Healthy);
    let log = texts(&sup.log_tree(), "root.api");
    let panicked = |l: &&String| l.ends_with(": its service panicked: a handler bug");
    assert!(
        log.iter()
            .filter(panicked)
            .any(|l| l.starts_with("connection from 127.0.0.1:")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(panicked)
            .any(|l| l.starts_with("an HTTP/2 stream")),
        "{log:?}"
    );
    drop(sender);
    sup.cancel();
    sup.wait().await;
    driver.await.unwrap();
}

#[tokio::test]
async fn a_connection_error_is_logged_at_the_node_and_is_not_a_failure() {
    let (sup, recorder, _control, addr) = served(Stop::Graceful, Spec::new()).await;
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let answer = read_to_end(garbage).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    // A client gone before it sent a whole request.
    let mut gone = TcpStream::connect(addr).await.unwrap();
    gone.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
    drop(gone);
    assert!(says_hello(addr).await);
    sup.settled().await;
    assert_eq!(
        recorder.history("root.api"),
        [NodeState::New, NodeState::Healthy]
    );
    let log = texts(&sup.log_tree(), "root.api");
    let errors = log
        .iter()
        .filter(|l| l.starts_with("connection from 127.0.0.1:"))
        .count();
    assert_eq!(errors, 2, "{log:?}");
    sup.cancel();
    sup.wait().await;
}

#[tokio::test]
async fn a_failed_bind_is_a_failure_restarted_after_its_backoff() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (app, _control) = app();
    let api = Server::bind(addr, app).runnable();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .start(tree(move |ctx| ctx.run("api", api.clone())));
    recorder.wait_for("root.api", NodeState::Dead).await;
    let error = sup
        .status()
        .get("root.api")
        .unwrap()
        .last_error
        .clone()
        .unwrap();
    assert!(
        error.starts_with(&format!("returned error: cannot listen on {addr}: ")),
        "{error}"
    );
    drop(taken);
    recorder.wait_for("root.api", NodeState::Healthy).await;
    assert!(says_hello(addr).await);
    sup.cancel();
    sup.wait().await;
}

#[tokio::test]
async fn a_connection_over_the_limit_is_closed_as_it_is_accepted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (app, mut control) = app();
    let api = Server::on(listener, app).max_connections(1).runnable();
    let (sup, recorder) = crate::support::recorded(tree(move |ctx| ctx.run("api", api.clone())));
    recorder.wait_for("root.api", NodeState::Healthy).await;
    let slow = request(addr, "/slow", true).await;
    control.started().await;
    assert_eq!(read_to_end(request(addr, "/", true).await).await, "");
    control.open();
    assert!(read_to_end(slow).await.ends_with("slow, but done\n"));
    sup.settled().await;
    // Its slot is free again.
    assert!(says_hello(addr).await);
    let log = texts(&sup.log_tree(), "root.api");
    assert!(
        log.iter().any(|l| l.ends_with(": 1 are open already")),
        "{log:?}"
    );
    sup.cancel();
    sup.wait().await;
}
