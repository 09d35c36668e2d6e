//! An HTTP server as a runnable, one supervised child per connection, shut down gracefully
//! when its context is cancelled (the Go original's `GRPCServer`, for hyper).
//!
//! ```text
//! cargo run --example http                  # a free port on 127.0.0.1, until Ctrl-C
//! cargo run --example http -- --port 8080   # on 127.0.0.1:8080
//! cargo run --example http -- --for 5       # stops by itself after 5 seconds
//! curl http://127.0.0.1:8080/               # hello from root.http.conns.c1
//! curl http://127.0.0.1:8080/slow           # answers after two seconds, even mid-shutdown
//! curl http://127.0.0.1:8080/panic          # its handler panics: that connection fails alone
//! ```
//!
//! The server binds, makes the dynamic group `conns` (DESIGN §15), signals `Healthy`, and
//! starts each accepted connection as a child of the group: `root.http.conns.c1`,
//! `root.http.conns.c2`, … Each connection is a node of its own — its requests are logged
//! at its DN, a panic in its handler fails it alone (logged, not restarted: connections are
//! `Temporary`), and once it closes it leaves the tree, so a server that handled a million
//! connections holds only the live ones. When the server's context is cancelled (Ctrl-C
//! here; a failed sibling or parent in a larger tree) it stops accepting and returns, and
//! every connection, cancelled with it, finishes the request in flight and closes, all at
//! once. A request that outlasts the supervisor's shutdown grace period is cut off.
//!
//! axum and tonic serve through hyper and shut down the same way; with axum, a whole
//! server in one runnable (its connections then unsupervised) is
//!
//! ```text
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! ctx.signal(Signal::Healthy);
//! let stop = ctx.clone();
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move { stop.cancelled().await })
//!     .await?;
//! Ok(())
//! ```
//!
//! and with tonic, `Server::builder().add_service(svc).serve_with_incoming_shutdown(…)`
//! with the same future.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use supervisor::{Context, DynamicSpec, Runnable, Signal, Supervisor, runnable};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const USAGE: &str = "usage: http [--port <port>] [--for <seconds>]

  --port <port>     port on 127.0.0.1 (default: a free port)
  --for <seconds>   stop after this long (default: run until Ctrl-C)";

/// How long `/slow` takes to answer: long enough to cancel the tree while it is in flight.
const SLOW: Duration = Duration::from_secs(2);

/// At most this many connections at once; one more is refused (closed at once).
const MAX_CONNECTIONS: usize = 1024;

/// Serves HTTP/1 on `addr`, telling `bound` the address it got on each start.
#[runnable]
async fn http(
    ctx: Context,
    addr: SocketAddr,
    bound: mpsc::UnboundedSender<SocketAddr>,
) -> supervisor::Result {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let conns = ctx.dynamic("conns", DynamicSpec::new().max_children(MAX_CONNECTIONS))?;
    tracing::info!("listening on http://{local}");
    let _ = bound.send(local);
    ctx.signal(Signal::Healthy);
    loop {
        tokio::select! {
            () = ctx.cancelled() => break,
            accepted = listener.accept() => {
                // An accept error (out of file descriptors, say) fails the node, and the
                // supervisor restarts it after its backoff.
                let (stream, peer) = accepted?;
                if let Err(e) = conns.start(connection(stream, peer)) {
                    // Full: the stream is dropped, which closes it.
                    tracing::warn!("refused {peer}: {e}");
                }
            }
        }
    }
    // The connections are cancelled with this node: each finishes its request in flight.
    tracing::info!(
        "shutting down: {} connections finish their requests",
        conns.len()
    );
    Ok(())
}

/// One connection, as a runnable: started once (a connection is `Temporary`), it takes the
/// stream on its first start.
fn connection(stream: TcpStream, peer: SocketAddr) -> impl Runnable {
    let stream = Arc::new(Mutex::new(Some(stream)));
    move |ctx: Context| {
        let stream = stream.lock().map(|mut s| s.take()).unwrap_or_default();
        async move {
            let Some(stream) = stream else {
                return Err("the connection was served already".into());
            };
            ctx.signal(Signal::Healthy);
            let dn: Arc<str> = ctx.dn().into();
            let service = service_fn(move |request| respond(request, dn.clone()));
            let served = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(served);
            let done = tokio::select! {
                done = served.as_mut() => done,
                () = ctx.cancelled() => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            // A client that goes away mid-request is the client's business, not a failure.
            if let Err(e) = done {
                tracing::info!("connection from {peer}: {e}");
            }
            Ok(())
        }
    }
}

async fn respond(
    request: Request<Incoming>,
    dn: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    tracing::info!("{} {path}", request.method());
    let body = match path {
        "/" => format!("hello from {dn}\n"),
        "/slow" => {
            tokio::time::sleep(SLOW).await;
            "slow, but done\n".to_owned()
        }
        "/panic" => panic!("a handler bug, on {path}"),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from("not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// The tree: a root that runs the server and waits.
fn tree(addr: SocketAddr, bound: mpsc::UnboundedSender<SocketAddr>) -> Supervisor {
    Supervisor::new(move |ctx: Context| {
        let bound = bound.clone();
        async move {
            ctx.run("http", http(addr, bound))?;
            ctx.signal(Signal::Healthy);
            ctx.cancelled().await;
            Ok(())
        }
    })
}

fn parse_args() -> Result<(u16, Option<Duration>), String> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut stop_after) = (0, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port {v}: not a port\n\n{USAGE}"))?;
            }
            "--for" => {
                let v = value("--for")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--for {v}: not a number of seconds\n\n{USAGE}"))?;
                stop_after = Some(Duration::from_secs_f64(secs));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    Ok((port, stop_after))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (port, stop_after) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let (bound, mut bound_rx) = mpsc::unbounded_channel();
    let sup = tree(SocketAddr::from(([127, 0, 0, 1], port)), bound);
    let stop_after = async {
        match stop_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop_after);
    loop {
        tokio::select! {
            Some(addr) = bound_rx.recv() => println!("serving on http://{addr}"),
            _ = tokio::signal::ctrl_c() => break,
            () = &mut stop_after => break,
        }
    }
    sup.cancel();
    sup.wait().await;
    println!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    use supervisor::NodeState;
    use supervisor::logtree::{ReadOptions, Streamed};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn started() -> (Supervisor, SocketAddr) {
        let (bound, mut bound_rx) = mpsc::unbounded_channel();
        let sup = tree(SocketAddr::from(([127, 0, 0, 1], 0)), bound);
        let addr = bound_rx.recv().await.expect("the server binds");
        (sup, addr)
    }

    /// Sends `request` and reads the reply until the server closes the connection.
    async fn exchange(mut stream: TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply).await;
        reply
    }

    /// Sends one keep-alive request on `stream` and reads its reply (the body's length is
    /// known, so the reply ends at the body).
    async fn ask(stream: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut reply = Vec::new();
        let mut buf = [0; 1024];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before the reply: {:?}",
                String::from_utf8_lossy(&reply)
            );
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.parse::<usize>().ok())
                    .expect("a length");
                if body.len() >= length {
                    return text.into_owned();
                }
            }
        }
    }

    #[tokio::test]
    async fn each_connection_is_a_child_of_its_own() {
        let (sup, addr) = started().await;
        let mut first = TcpStream::connect(addr).await.expect("connected");
        let reply = ask(&mut first, "/").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(
            reply.ends_with("hello from root.http.conns.c1\n"),
            "{reply}"
        );
        let second = TcpStream::connect(addr).await.expect("connected");
        let reply = exchange(
            second,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            reply.ends_with("hello from root.http.conns.c2\n"),
            "{reply}"
        );
        sup.settled().await;
        // The closed one has left the tree; the open one is there, with its log.
        let states = sup.states();
        assert_eq!(states.get("root.http.conns.c1"), Some(&NodeState::Healthy));
        assert!(!states.contains_key("root.http.conns.c2"), "{states:?}");
        let logged = sup
            .log_tree()
            .read("root.http.conns.c1", ReadOptions::new().backlog_all())
            .expect("readable")
            .backlog;
        assert_eq!(
            logged.last().map(|e| e.message().to_owned()),
            Some("GET /".into())
        );
        sup.cancel();
        sup.wait().await;
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_connection_alone() {
        let (sup, addr) = started().await;
        let mut calm = TcpStream::connect(addr).await.expect("connected");
        assert!(ask(&mut calm, "/").await.ends_with("root.http.conns.c1\n"));
        let bad = TcpStream::connect(addr).await.expect("connected");
        let reply = exchange(bad, "GET /panic HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(reply.is_empty(), "the connection is dropped: {reply}");
        sup.settled().await;
        let said = sup
            .log_tree()
            .read("supervisor", ReadOptions::new().backlog_all())
            .expect("readable")
            .backlog;
        assert!(
            said.iter()
                .any(|e| e.message()
                    == "root.http.conns.c2 failed: panicked: a handler bug, on /panic"),
            "{said:?}"
        );
        // Its neighbour and the server carry on.
        assert!(ask(&mut calm, "/").await.ends_with("root.http.conns.c1\n"));
        let states = sup.states();
        assert_eq!(states.get("root.http"), Some(&NodeState::Healthy));
        assert_eq!(states.get("root.http.conns.c1"), Some(&NodeState::Healthy));
        assert!(!states.contains_key("root.http.conns.c2"), "{states:?}");
        sup.cancel();
        sup.wait().await;
    }

    /// Cancelled mid-request, the connection finishes the request, closes, and leaves the
    /// tree; the server ends `Canceled`. Paused time lets the slow answer come at once,
    /// before the grace period, which is longer.
    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_finishes_during_shutdown() {
        let (sup, addr) = started().await;
        let mut log = sup
            .log_tree()
            .read("root.http", ReadOptions::new().stream().with_children())
            .expect("readable")
            .stream
            .expect("a stream");
        let stream = TcpStream::connect(addr).await.expect("connected");
        let reply = tokio::spawn(exchange(stream, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
        // The request is being served once its line is in the connection's log.
        while let Some(item) = log.next().await {
            if matches!(item, Streamed::Entry(ref e) if e.message() == "GET /slow") {
                break;
            }
        }
        sup.cancel();
        let reply = reply.await.expect("the client ran");
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("slow, but done\n"), "{reply}");
        sup.settled().await;
        let ended = sup.states();
        assert_eq!(
            ended.get("root.http"),
            Some(&NodeState::Canceled),
            "{ended:?}"
        );
        assert!(
            !ended.keys().any(|dn| dn.starts_with("root.http.conns.")),
            "{ended:?}"
        );
        sup.wait().await;
    }
}
