//! gRPC's health service answering with the tree's readiness (feature `grpc`, DESIGN §17).
//!
//! [`TreeHealth`] implements `grpc.health.v1.Health` (tonic-health's generated service,
//! so no `protoc` is needed) over [`Supervisor::health`](crate::Supervisor::health), read
//! live on every call:
//!
//! - the service `""` is the whole tree: `SERVING` exactly when the tree is
//!   [ready](crate::Supervisor::ready), `NOT_SERVING` otherwise;
//! - a service named by a DN (`root.db`) is that node's readiness (it and what gates it
//!   below); it is `NOT_SERVING` once shutdown begins, like the whole;
//! - any other name is unknown: `Check` fails with `NOT_FOUND`, and `Watch` answers
//!   `SERVICE_UNKNOWN` and keeps the call open, as the protocol says.
//!
//! `Watch` sends the status at once, then each change, told by the tree (nothing polls);
//! it ends once the tree is shutting down, after its last `NOT_SERVING`, so that an open
//! watch does not hold a graceful stop until its deadline.
//!
//! Kubernetes' gRPC probe (`grpc: { port: 50051 }`) checks the service `""`.
//!
//! A tonic service and the health service, both served by a
//! [`Server`](crate::server::Server) (tonic's own transport would spawn every connection
//! and stream detached, out of the supervisor's reach):
//!
//! ```
//! use supervisor::grpc::TreeHealth;
//! use supervisor::server::{Server, TowerToHyperService};
//! use supervisor::{Context, Signal};
//!
//! async fn root(ctx: Context) -> supervisor::Result {
//!     // Beside services of your own: tonic's `Routes::new(health).add_service(greeter)`
//!     // (its feature `router`), served the same way.
//!     let health = TreeHealth::from_context(&ctx).into_service();
//!     let grpc = Server::bind("127.0.0.1:50051".parse()?, TowerToHyperService::new(health));
//!     ctx.run("grpc", grpc.runnable())?;
//!     ctx.signal(Signal::Healthy);
//!     ctx.signal(Signal::Done);
//!     Ok(())
//! }
//! # let _ = root;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::watch;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::shared::Shared;
use crate::{Context, Supervisor};

/// `grpc.health.v1.Health` over a tree's readiness: see the [module](self).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use supervisor::grpc::TreeHealth;
/// use supervisor::{Context, Signal, Supervisor};
/// use tonic_health::pb::HealthCheckRequest;
/// use tonic_health::pb::health_check_response::ServingStatus;
/// use tonic_health::pb::health_server::Health;
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.ready().await;
/// let health = TreeHealth::new(&sup);
/// let request = tonic::Request::new(HealthCheckRequest { service: "root".into() });
/// let answer = health.check(request).await.unwrap().into_inner();
/// assert_eq!(answer.status, ServingStatus::Serving as i32);
/// # sup.cancel(); sup.wait().await;
/// # }
/// ```
#[derive(Clone)]
pub struct TreeHealth {
    shared: Arc<Shared>,
}

impl fmt::Debug for TreeHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeHealth").finish_non_exhaustive()
    }
}

impl TreeHealth {
    /// The health of the tree `sup` runs.
    pub fn new(sup: &Supervisor) -> TreeHealth {
        TreeHealth {
            shared: sup.shared_state().clone(),
        }
    }

    /// The health of the tree `ctx` belongs to, for a server inside the tree it reports on.
    pub fn from_context(ctx: &Context) -> TreeHealth {
        TreeHealth {
            shared: ctx.incarnation().shared().clone(),
        }
    }

    /// As tonic's generated server: a tower service to add to tonic's `Routes`.
    pub fn into_service(self) -> HealthServer<TreeHealth> {
        HealthServer::new(self)
    }

    /// The status of `service`, `None` if it names nothing; and whether the tree is
    /// shutting down.
    fn status(&self, service: &str) -> (Option<ServingStatus>, bool) {
        let (health, shutting_down) = {
            let tree = self.shared.tree();
            (tree.health(), tree.shutting_down())
        };
        let ready = if service.is_empty() {
            Some(health.is_ready())
        } else {
            health.get(service).map(|node| node.ready)
        };
        let status = ready.map(|ready| match ready {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        });
        (status, shutting_down)
    }
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for TreeHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        match self.status(&request.get_ref().service) {
            (Some(status), _) => Ok(Response::new(answer(status))),
            (None, _) => Err(Status::not_found("service not registered")),
        }
    }

    type WatchStream = Watch;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<Watch>, Status> {
        let changes = self.shared.watch_health();
        Ok(Response::new(Watch {
            health: self.clone(),
            service: request.into_inner().service,
            sent: None,
            state: WatchState::Now(changes),
        }))
    }
}

/// The stream of a `Watch` call: the status now, then each change of it, until the tree
/// shuts down.
pub struct Watch {
    health: TreeHealth,
    service: String,
    sent: Option<ServingStatus>,
    state: WatchState,
}

type Changed = Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>;

enum WatchState {
    // The status is to be read (and sent if it changed) before waiting again.
    Now(watch::Receiver<u64>),
    Waiting(Changed),
    Ended,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("service", &self.service)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Stream for Watch {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, WatchState::Ended) {
                WatchState::Ended => return Poll::Ready(None),
                WatchState::Waiting(mut changed) => match changed.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = WatchState::Waiting(changed);
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(changes)) => this.state = WatchState::Now(changes),
                    Poll::Ready(None) => return Poll::Ready(None),
                },
                WatchState::Now(mut changes) => {
                    changes.mark_unchanged();
                    let (status, shutting_down) = this.health.status(&this.service);
                    let status = status.unwrap_or(ServingStatus::ServiceUnknown);
                    if !shutting_down {
                        this.state = WatchState::Waiting(Box::pin(async move {
                            changes.changed().await.ok().map(|()| changes)
                        }));
                    }
                    if this.sent != Some(status) {
                        this.sent = Some(status);
                        return Poll::Ready(Some(Ok(answer(status))));
                    }
                }
            }
        }
    }
}
