//! A tonic service and gRPC's health service, served by `supervisor::server`: every
//! connection and HTTP/2 stream a task of the server's node (tonic's own transport would
//! spawn them detached), a graceful stop that drains the calls in flight until the node's
//! shutdown deadline, and `grpc.health.v1` answering with the tree's readiness per DN.
//!
//! ```text
//! cargo run --example grpc                    # a free port on 127.0.0.1, until Ctrl-C
//! cargo run --example grpc -- --port 50051    # on 127.0.0.1:50051
//! # The service is hello.Greeter, whose hello.proto is in examples/greeter.rs;
//! # health.proto is grpc's own (grpc/grpc-proto, grpc/health/v1/health.proto).
//! grpcurl -plaintext -proto hello.proto -d '{"name": "you"}' \
//!     127.0.0.1:50051 hello.Greeter/SayHello                  # {"message": "hello, you"}
//! grpcurl -plaintext -proto health.proto -d '{"service": ""}' \
//!     127.0.0.1:50051 grpc.health.v1.Health/Check             # SERVING once root.db is
//! grpcurl -plaintext -proto health.proto -d '{"service": "root.db"}' \
//!     127.0.0.1:50051 grpc.health.v1.Health/Watch             # each change, as it comes
//! ```
//!
//! `root.db` becomes Healthy a second after it starts, so the health service answers
//! `NOT_SERVING` for the whole tree (`""`) and for `root.db` until then. Kubernetes' gRPC
//! probe (`grpc: { port: 50051 }`) asks for `""`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor::grpc::TreeHealth;
use supervisor::server::{Server, TowerToHyperService};
use supervisor::{Context, Signal, Supervisor};
use tonic::{Request, Response, Status};

mod greeter;

use greeter::{GreeterServer, HelloReply, HelloRequest};

/// How long `root.db` takes to connect.
const CONNECT: Duration = Duration::from_secs(1);

async fn say_hello(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let name = request.into_inner().name;
    // Logged at `root.grpc`: the call's stream is a task of the server's node.
    tracing::info!("SayHello {name:?}");
    Ok(Response::new(HelloReply {
        message: format!("hello, {name}"),
    }))
}

async fn db(ctx: Context) -> supervisor::Result {
    tokio::time::sleep(CONNECT).await;
    ctx.signal(Signal::Healthy);
    ctx.cancelled().await;
    Ok(())
}

/// The tree: the gRPC server on `listener`, and a database that gates readiness. The root
/// starts once (it signals Done and returns), so it takes the listener once.
fn tree(listener: std::net::TcpListener) -> Supervisor {
    let listener = Arc::new(Mutex::new(Some(listener)));
    Supervisor::new(move |ctx: Context| {
        let listener = listener.lock().map(|mut l| l.take()).unwrap_or_default();
        async move {
            let listener = listener.ok_or("the root was restarted: its listener is gone")?;
            let routes = tonic::service::Routes::new(GreeterServer::new(say_hello))
                .add_service(TreeHealth::from_context(&ctx).into_service());
            let grpc = Server::on(listener, TowerToHyperService::new(routes));
            ctx.run("grpc", grpc.runnable())?;
            ctx.run("db", db)?;
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
        _ => Err("usage: grpc [--port <port>]".into()),
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
        println!("serving gRPC on {addr}");
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

    use tonic::transport::Channel;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    async fn status(health: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let answer = health.check(request).await.expect("answered");
        ServingStatus::try_from(answer.into_inner().status).expect("a status")
    }

    #[tokio::test]
    async fn it_greets_and_reports_the_tree_health() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let sup = tree(listener);
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect()
            .await
            .expect("connected");
        let reply = greeter::say_hello(channel.clone(), "you")
            .await
            .expect("a reply");
        assert_eq!(reply.message, "hello, you");
        let mut health = HealthClient::new(channel);
        assert_eq!(
            status(&mut health, "root.grpc").await,
            ServingStatus::Serving
        );
        sup.ready().await;
        assert_eq!(status(&mut health, "").await, ServingStatus::Serving);
        assert_eq!(status(&mut health, "root.db").await, ServingStatus::Serving);
        sup.cancel();
        sup.wait().await;
    }
}
