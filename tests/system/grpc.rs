//! gRPC through the supervised server (DESIGN §17): a tonic service and the health service
//! (`grpc.health.v1`) answering with the tree's readiness, called by tonic's own clients
//! over real loopback connections; a graceful stop drains a call in flight.

use std::net::SocketAddr;
use std::sync::Arc;

use supervisor::grpc::TreeHealth;
use supervisor::server::{Server, TowerToHyperService};
use supervisor::{NodeState, Signal, Supervisor};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{Cmd, Recorder, Remote, tree};

#[path = "../../examples/greeter.rs"]
mod greeter;

use greeter::{GreeterServer, HelloReply, HelloRequest, say_hello};

/// The greeter's handler: a name `slow` is answered once the gate opens.
#[derive(Clone)]
struct Hello {
    started: mpsc::UnboundedSender<()>,
    gate: watch::Receiver<bool>,
}

impl Hello {
    async fn answer(self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        if name == "slow" {
            let _ = self.started.send(());
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|&open| open).await;
        }
        Ok(Response::new(HelloReply {
            message: format!("hello, {name}"),
        }))
    }
}

struct Served {
    sup: Supervisor,
    recorder: Recorder,
    db: Remote,
    addr: SocketAddr,
    started: mpsc::UnboundedReceiver<()>,
    gate: watch::Sender<bool>,
}

/// `root.grpc` serving the greeter and the health service, beside `root.db`, which is
/// Healthy when told.
async fn served() -> Served {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Arc::new(std::sync::Mutex::new(Some(listener)));
    let (started_tx, started) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let hello = Hello {
        started: started_tx,
        gate: gate_rx,
    };
    let db = Remote::silent();
    let d = db.clone();
    let recorder = Recorder::default();
    let sup = Supervisor::builder()
        .metrics(recorder.clone())
        .start(tree(move |ctx| {
            let hello = hello.clone();
            let greeter = GreeterServer::new(move |request| hello.clone().answer(request));
            let routes = tonic::service::Routes::new(greeter)
                .add_service(TreeHealth::from_context(ctx).into_service());
            let listener = listener
                .lock()
                .unwrap()
                .take()
                .expect("one start of the root");
            let grpc = Server::on(listener, TowerToHyperService::new(routes));
            ctx.run("grpc", grpc.runnable())?;
            ctx.run("db", d.runnable())
        }));
    recorder.wait_for("root.grpc", NodeState::Healthy).await;
    Served {
        sup,
        recorder,
        db,
        addr,
        started,
        gate,
    }
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    match client.check(request).await {
        Ok(answer) => Ok(ServingStatus::try_from(answer.into_inner().status).unwrap()),
        Err(status) => Err(status.code()),
    }
}

#[tokio::test]
async fn a_unary_call_and_the_health_service_through_tonic_clients() {
    let served = served().await;
    let channel = channel(served.addr).await;
    let reply = say_hello(channel.clone(), "tonic").await.unwrap();
    assert_eq!(reply.message, "hello, tonic");

    let mut health = HealthClient::new(channel);
    // `root.db` has not signalled Healthy: the tree is not ready.
    assert_eq!(check(&mut health, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut health, "root").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut health, "root.db").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut health, "root.grpc").await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(
        check(&mut health, "root.nothing").await,
        Err(Code::NotFound)
    );

    served.db.send(Cmd::Signal(Signal::Healthy));
    served.sup.ready().await;
    assert_eq!(check(&mut health, "").await, Ok(ServingStatus::Serving));
    assert_eq!(
        check(&mut health, "root.db").await,
        Ok(ServingStatus::Serving)
    );
    served.sup.cancel();
    served.sup.wait().await;
}

#[tokio::test]
async fn watch_sends_each_change_of_readiness_and_ends_with_the_tree() {
    let served = served().await;
    let mut health = HealthClient::new(channel(served.addr).await);
    let request = HealthCheckRequest { service: "".into() };
    let mut watch = health.watch(request).await.unwrap().into_inner();
    let mut next = async || {
        let answer = watch.message().await.unwrap()?;
        ServingStatus::try_from(answer.status).ok()
    };
    assert_eq!(next().await, Some(ServingStatus::NotServing));
    served.db.send(Cmd::Signal(Signal::Healthy));
    assert_eq!(next().await, Some(ServingStatus::Serving));
    served.sup.cancel();
    assert_eq!(next().await, Some(ServingStatus::NotServing));
    // Ended, so that it does not hold the graceful stop.
    assert_eq!(next().await, None);
    served.sup.wait().await;

    // An unknown service is SERVICE_UNKNOWN, and the call stays open.
    let served = self::served().await;
    let mut health = HealthClient::new(channel(served.addr).await);
    let request = HealthCheckRequest {
        service: "root.nothing".into(),
    };
    let mut watch = health.watch(request).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::ServiceUnknown as i32);
    served.sup.cancel();
    served.sup.wait().await;
}

#[tokio::test]
async fn a_graceful_stop_drains_a_call_in_flight() {
    let mut served = served().await;
    let channel = channel(served.addr).await;
    let call = tokio::spawn(say_hello(channel, "slow"));
    served.started.recv().await.unwrap();
    served.sup.cancel();
    served
        .recorder
        .wait_for("root.grpc", NodeState::Canceled)
        .await;
    // Stopped accepting: a new connection is refused.
    assert!(tokio::net::TcpStream::connect(served.addr).await.is_err());
    served.gate.send_replace(true);
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply.message, "hello, slow");
    served.sup.wait().await;
}
