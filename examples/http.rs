//! An HTTP server as a runnable, shut down gracefully when its context is cancelled (the
//! Go original's `GRPCServer`, for hyper).
//!
//! ```text
//! cargo run --example http                  # a free port on 127.0.0.1, until Ctrl-C
//! cargo run --example http -- --port 8080   # on 127.0.0.1:8080
//! cargo run --example http -- --for 5       # stops by itself after 5 seconds
//! curl http://127.0.0.1:8080/               # hello from root.http
//! curl http://127.0.0.1:8080/slow           # answers after two seconds, even mid-shutdown
//! ```
//!
//! The server binds, signals `Healthy`, and serves each connection in a task of its own,
//! kept in a `JoinSet` the runnable owns and instrumented with the runnable's span, so that
//! the connections' `tracing` events land at its DN and the connections end with it. When
//! the context is cancelled (Ctrl-C here; a failed sibling or parent in a larger tree) it
//! stops accepting, asks every connection to finish the request in flight and close, and
//! returns once they have: the node ends `Canceled`. A request that outlasts the
//! supervisor's shutdown grace period is cut off, as the runnable's future is dropped then,
//! and with it the connections.
//!
//! axum and tonic serve through hyper and shut down the same way; with axum, the whole
//! runnable is
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
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use supervisor::{Context, Signal, Supervisor, runnable};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

const USAGE: &str = "usage: http [--port <port>] [--for <seconds>]

  --port <port>     port on 127.0.0.1 (default: a free port)
  --for <seconds>   stop after this long (default: run until Ctrl-C)";

/// How long `/slow` takes to answer: long enough to cancel the tree while it is in flight.
const SLOW: Duration = Duration::from_secs(2);

/// Serves HTTP/1 on `addr`, telling `bound` the address it got on each start.
#[runnable]
async fn http(
    ctx: Context,
    addr: SocketAddr,
    bound: mpsc::UnboundedSender<SocketAddr>,
) -> supervisor::Result {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    let _ = bound.send(local);
    ctx.signal(Signal::Healthy);

    let dn: Arc<str> = ctx.dn().into();
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = ctx.cancelled() => break,
            // Reap finished connections as they end, so the set holds only live ones.
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                // An accept error (out of file descriptors, say) fails the node, and the
                // supervisor restarts it after its backoff.
                let (stream, peer) = accepted?;
                let dn = dn.clone();
                let service = service_fn(move |request| respond(request, dn.clone()));
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                connections.spawn(
                    async move {
                        if let Err(e) = connection.await {
                            tracing::warn!("connection from {peer}: {e}");
                        }
                    }
                    .instrument(ctx.span().clone()),
                );
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    graceful.shutdown().await;
    // The connections have closed; their tasks end with nothing left to do.
    while connections.join_next().await.is_some() {}
    Ok(())
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
    use tokio::net::TcpStream;

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
        stream.read_to_string(&mut reply).await.expect("read");
        reply
    }

    #[tokio::test]
    async fn serves_and_names_its_node() {
        let (sup, addr) = started().await;
        let stream = TcpStream::connect(addr).await.expect("connected");
        let reply = exchange(
            stream,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("hello from root.http\n"), "{reply}");
        sup.cancel();
        sup.wait().await;
    }

    /// Cancelled mid-request, the server finishes the request, closes, and ends `Canceled`;
    /// the request's own log line landed at the server's DN. Paused time lets the slow
    /// answer come at once, before the grace period, which is longer.
    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_finishes_during_shutdown() {
        let (sup, addr) = started().await;
        let mut log = sup
            .log_tree()
            .read("root.http", ReadOptions::new().stream())
            .expect("readable")
            .stream
            .expect("a stream");
        let stream = TcpStream::connect(addr).await.expect("connected");
        let reply = tokio::spawn(exchange(stream, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
        // The request is being served once its line is in the server's log.
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
        sup.wait().await;
    }
}
