//! An axum router served by `supervisor::server`: every connection a task of the server's
//! node, a graceful stop bounded by the node's shutdown deadline, and the tree's own
//! Kubernetes probes mounted in the router.
//!
//! ```text
//! cargo run --example axum                    # a free port on 127.0.0.1, until Ctrl-C
//! cargo run --example axum -- --port 8080     # on 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                 # hello from axum
//! curl http://127.0.0.1:8080/users/7          # user 7
//! curl 'http://127.0.0.1:8080/readyz?verbose' # the tree's readiness, one line per node
//! ```
//!
//! axum's own `axum::serve` would run each connection on a detached `tokio::spawn`; served
//! here its router is a tower service like any other, adapted for hyper with
//! `TowerToHyperService`. `root.cache` becomes Healthy a second after it starts, so
//! `/readyz` fails until then, naming it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use supervisor::http::Probes;
use supervisor::server::{Server, TowerToHyperService};
use supervisor::{Context, Signal, Supervisor};

/// How long `root.cache` takes to warm up.
const WARM_UP: Duration = Duration::from_secs(1);

/// The application's routes, with the probes of the tree `ctx` is in.
fn router(ctx: &Context) -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum\n" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}\n") }),
        )
        .route_service("/readyz", Probes::from_context(ctx))
        .route_service("/livez", Probes::from_context(ctx))
}

async fn cache(ctx: Context) -> supervisor::Result {
    tokio::time::sleep(WARM_UP).await;
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

/// The tree: the server on `listener`, and a cache that gates readiness. The root starts
/// once (it signals Done and returns), so it takes the listener once.
fn tree(listener: std::net::TcpListener) -> Supervisor {
    let listener = Arc::new(Mutex::new(Some(listener)));
    Supervisor::new(move |ctx: Context| {
        let listener = listener.lock().map(|mut l| l.take()).unwrap_or_default();
        async move {
            let listener = listener.ok_or("the root was restarted: its listener is gone")?;
            let app = TowerToHyperService::new(router(&ctx));
            ctx.run("api", Server::on(listener, app).runnable())?;
            ctx.run("cache", cache)?;
            ctx.signal(Signal::Healthy);
            ctx.signal(Signal::Done);
            Ok(())
        }
    })
}

fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(0),
        [flag, port] if flag == "--port" => port
            .parse()
            .map_err(|_| format!("--port {port}: not a port")),
        _ => Err("usage: axum [--port <port>]".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let port = match port() {
        Ok(port) => port,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let listener = match std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        println!("serving on http://{addr}");
    }
    let sup = tree(listener);
    let _ = tokio::signal::ctrl_c().await;
    sup.cancel();
    sup.wait().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connected");
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply).await;
        reply
    }

    #[tokio::test(start_paused = true)]
    async fn the_router_serves_and_its_probes_follow_the_tree() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let sup = tree(listener);
        assert!(get(addr, "/").await.ends_with("\r\n\r\nhello from axum\n"));
        assert!(get(addr, "/users/7").await.ends_with("\r\n\r\nuser 7\n"));
        let unready = get(addr, "/readyz").await;
        assert!(unready.starts_with("HTTP/1.1 500"), "{unready}");
        assert!(unready.contains("[-]root.cache failed"), "{unready}");
        sup.ready().await;
        assert!(get(addr, "/readyz").await.ends_with("\r\n\r\nok"));
        sup.cancel();
        sup.wait().await;
    }
}
