//! The probes' own server, as a runnable of the tree it reports on.

use std::convert::Infallible;
use std::future::ready;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;

use super::Probes;
use crate::server::{Listen, Settings};
use crate::{Context, Runnable};

/// How long a client may take to send a request's head: a probe sends it at once, and a
/// connection that trickles it would otherwise hold a slot for good.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections are served at once; one more is closed as it is accepted. Probes
/// and status pages are few (a kubelet, a Prometheus, an operator's browser or `curl`).
const MAX_CONNECTIONS: usize = 64;

/// The server settings of the operators' endpoints (the probes, the status page): few
/// connections, and a short time to send a request's head.
pub(super) fn operator_settings(listen: Listen) -> Settings {
    let mut settings = Settings::new(listen);
    settings.max_connections = MAX_CONNECTIONS;
    settings.header_read_timeout = Some(HEAD_TIMEOUT);
    settings
}

/// Serves [`Probes`] — `/livez`, `/readyz`, `/healthz` and `/metrics` — as a runnable of
/// the tree it reports on: a [`Server`](crate::server::Server) of the probes (HTTP/1.1 and
/// HTTP/2, at most 64 connections, 10 s for a request's head, a graceful stop). It is
/// supervised like any node — a failure to bind is a failure, restarted after its backoff
/// — and it signals Healthy once it is accepting; nothing of it outlives
/// [`Supervisor::wait`](crate::Supervisor::wait).
///
/// [`bind`](HealthServer::bind) binds its address on every start;
/// [`on`](HealthServer::on) serves a listener bound beforehand and kept across restarts
/// (for port 0, or an address only the process's start may bind).
///
/// # Examples
///
/// ```
/// use supervisor::http::HealthServer;
/// use supervisor::{Context, Signal, Spec};
///
/// async fn root(ctx: Context) -> supervisor::Result {
///     let probes = HealthServer::bind("0.0.0.0:8080".parse()?);
///     ctx.run("probes", probes.runnable())?;
///     // ... the service's own nodes ...
///     ctx.signal(Signal::Healthy);
///     ctx.signal(Signal::Done);
///     Ok(())
/// }
/// # let _ = root;
/// ```
#[derive(Debug)]
pub struct HealthServer {
    settings: Settings,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

impl HealthServer {
    /// A server that binds `addr` on each start.
    pub fn bind(addr: SocketAddr) -> HealthServer {
        HealthServer::with(Listen::Bind(addr))
    }

    /// A server on `listener`, bound already and kept across restarts, so the address
    /// stays the same and nothing else can take it meanwhile (see
    /// [`Server::on`](crate::server::Server::on)).
    pub fn on(listener: std::net::TcpListener) -> HealthServer {
        HealthServer::with(Listen::on(listener))
    }

    fn with(listen: Listen) -> HealthServer {
        HealthServer {
            settings: operator_settings(listen),
            #[cfg(feature = "prometheus")]
            registry: None,
        }
    }

    /// Serves `registry` at `/metrics` too (see [`Probes::metrics`]).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, registry: prometheus::Registry) -> HealthServer {
        self.registry = Some(registry);
        self
    }

    /// The runnable that serves.
    pub fn runnable(self) -> impl Runnable + Clone {
        let server = Arc::new(self);
        move |ctx: Context| {
            let server = server.clone();
            async move {
                // The probes of the tree this start runs in, which only its context knows.
                let probes = Probes::from_context(&ctx);
                #[cfg(feature = "prometheus")]
                let probes = match &server.registry {
                    Some(registry) => probes.metrics(registry.clone()),
                    None => probes,
                };
                let service = service_fn(move |request: Request<Incoming>| {
                    let uri = request.uri();
                    ready(Ok::<_, Infallible>(probes.answer(uri.path(), uri.query())))
                });
                server.settings.serve(ctx, &service).await
            }
        }
    }
}
