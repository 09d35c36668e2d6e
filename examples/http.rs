//! An HTTP server as a runnable: `supervisor::server` serving a hyper service, HTTP/1.1 and
//! HTTP/2, stopped gracefully (or hard) when its context is cancelled — the Go original's
//! `GRPCServer`, for HTTP.
//!
//! ```text
//! cargo run --example http                  # a free port on 127.0.0.1, until Ctrl-C
//! cargo run --example http -- --port 8080   # on 127.0.0.1:8080
//! cargo run --example http -- --for 5       # stops by itself after 5 seconds
//! cargo run --example http -- --hard        # a hard stop: requests in flight are dropped
//! curl http://127.0.0.1:8080/               # hello
//! curl --http2-prior-knowledge http://127.0.0.1:8080/   # the same, over HTTP/2
//! curl http://127.0.0.1:8080/slow           # answers after two seconds, even mid-shutdown
//! curl http://127.0.0.1:8080/panic          # its handler panics: that connection fails alone
//! ```
//!
//! The server (`root.http`) binds, signals `Healthy`, and serves each connection as a task
//! of its node: a request's `tracing` events land in the log at `root.http`, a panic in a
//! handler ends that connection alone (logged there), and nothing outlives the
//! supervisor's `wait()`. When the tree is cancelled (Ctrl-C here; a failed sibling or
//! parent in a larger tree) the server stops accepting at once — a new connection is
//! refused — closes idle connections, and lets the requests in flight finish; what is
//! still running at the node's shutdown deadline (the supervisor's grace period, 5 s) is
//! dropped. With `--hard` every connection closes at once.
//!
//! The same `Server` serves an axum router (the `axum` example) and a tonic service (the
//! `grpc` example).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use supervisor::server::{Server, Stop};
use supervisor::{Context, Signal, Supervisor};

const USAGE: &str = "usage: http [--port <port>] [--for <seconds>] [--hard]

  --port <port>     port on 127.0.0.1 (default: a free port)
  --for <seconds>   stop after this long (default: run until Ctrl-C)
  --hard            stop hard: drop the requests in flight (default: let them finish)";

/// How long `/slow` takes to answer: long enough to cancel the tree while it is in flight.
const SLOW: Duration = Duration::from_secs(2);

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    // Logged at `root.http`: the connection is a task of the server's node.
    tracing::info!("{} {path} {:?}", request.method(), request.version());
    let body = match path {
        "/" => "hello\n",
        "/slow" => {
            tokio::time::sleep(SLOW).await;
            "slow, but done\n"
        }
        "/panic" => panic!("a handler bug, on {path}"),
        _ => {
            let mut response = Response::new(Full::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    Ok(Response::new(Full::from(body)))
}

/// The tree: a root that runs the server on `listener` (bound before the tree starts, so
/// that the address is known and stays the same across restarts).
fn tree(listener: std::net::TcpListener, stop: Stop) -> Supervisor {
    let http = Server::on(listener, service_fn(respond))
        .stop(stop)
        .runnable();
    Supervisor::new(move |ctx: Context| {
        let http = http.clone();
        async move {
            ctx.run("http", http)?;
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        }
    })
}

struct Args {
    port: u16,
    stop_after: Option<Duration>,
    stop: Stop,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        port: 0,
        stop_after: None,
        stop: Stop::Graceful,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                parsed.port = v
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
                parsed.stop_after = Some(Duration::from_secs_f64(secs));
            }
            "--hard" => parsed.stop = Stop::Hard,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let listener = match std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
    {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("serving on http://{addr}");
    }
    let sup = tree(listener, args.stop);
    let stop_after = async {
        match args.stop_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stop_after => {}
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

    fn started(stop: Stop) -> (Supervisor, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        (tree(listener, stop), addr)
    }

    /// Sends `request` and reads the reply until the server closes the connection.
    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connected");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply).await;
        reply
    }

    /// Sends `GET /slow` and returns once it is being served (its line is in the server's
    /// log): the client's task, which reads the reply.
    async fn slow_in_flight(sup: &Supervisor, addr: SocketAddr) -> tokio::task::JoinHandle<String> {
        let mut log = sup
            .log_tree()
            .read("root.http", ReadOptions::new().stream())
            .expect("readable")
            .stream
            .expect("a stream");
        let reply = tokio::spawn(exchange(addr, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
        while let Some(item) = log.next().await {
            if matches!(item, Streamed::Entry(ref e) if e.message() == "GET /slow HTTP/1.1") {
                break;
            }
        }
        reply
    }

    fn messages(sup: &Supervisor, dn: &str) -> Vec<String> {
        let read = sup.log_tree().read(dn, ReadOptions::new().backlog_all());
        let backlog = read.expect("readable").backlog;
        backlog.iter().map(|e| e.message().to_owned()).collect()
    }

    #[tokio::test]
    async fn it_serves_and_logs_each_request_at_its_node() {
        let (sup, addr) = started(Stop::Graceful);
        let reply = exchange(
            addr,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nhello\n"), "{reply}");
        sup.settled().await;
        assert!(
            messages(&sup, "root.http").contains(&"GET / HTTP/1.1".to_owned()),
            "{:?}",
            messages(&sup, "root.http")
        );
        sup.cancel();
        sup.wait().await;
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_connection_alone() {
        let (sup, addr) = started(Stop::Graceful);
        let reply = exchange(addr, "GET /panic HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(reply.is_empty(), "the connection is dropped: {reply}");
        let reply = exchange(
            addr,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(reply.ends_with("hello\n"), "{reply}");
        sup.settled().await;
        assert_eq!(sup.states().get("root.http"), Some(&NodeState::Healthy));
        let said = messages(&sup, "root.http");
        assert!(
            said.iter()
                .any(|m| m.ends_with(": its service panicked: a handler bug, on /panic")),
            "{said:?}"
        );
        sup.cancel();
        sup.wait().await;
    }

    /// Cancelled mid-request, the server stops accepting and the request finishes. Paused
    /// time lets the slow answer come at once, before the grace period, which is longer.
    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_finishes_during_shutdown() {
        let (sup, addr) = started(Stop::Graceful);
        let reply = slow_in_flight(&sup, addr).await;
        sup.cancel();
        let reply = reply.await.expect("the client ran");
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("slow, but done\n"), "{reply}");
        sup.settled().await;
        assert_eq!(sup.states().get("root.http"), Some(&NodeState::Canceled));
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "refused once stopped"
        );
        sup.wait().await;
    }

    /// With `--hard`, the same request is dropped at once.
    #[tokio::test(start_paused = true)]
    async fn a_hard_stop_drops_the_request_in_flight() {
        let (sup, addr) = started(Stop::Hard);
        let reply = slow_in_flight(&sup, addr).await;
        let cancelled = tokio::time::Instant::now();
        sup.cancel();
        assert_eq!(reply.await.expect("the client ran"), "");
        sup.wait().await;
        assert_eq!(cancelled.elapsed(), Duration::ZERO);
    }
}
