//! The probes' own HTTP/1.1 server, as a runnable of the tree it reports on.

use std::convert::Infallible;
use std::future::ready;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Probes;
use crate::{Context, Runnable, Signal};

/// How long a client may take to send a request's head: a probe sends it at once, and a
/// connection that trickles it would otherwise hold a slot for good.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections are served at once; one more is closed when accepted. Probes are
/// few (a kubelet, a Prometheus, an operator's `curl`).
const MAX_CONNECTIONS: usize = 64;

/// Serves [`Probes`] — `/livez`, `/readyz`, `/healthz` and `/metrics` — over HTTP/1.1, as
/// a runnable of the tree it reports on: it is supervised like any node (a failure to bind
/// is a failure, restarted after its backoff), and it signals Healthy once it is accepting.
/// Each connection is a task of its node ([`Context::spawn`]), dropped when the node is
/// cancelled, so nothing of it outlives [`Supervisor::wait`](crate::Supervisor::wait).
/// Connection errors are logged at the node's DN and are never a failure of the server.
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
    listen: Listen,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

#[derive(Debug)]
enum Listen {
    Bind(SocketAddr),
    On(std::net::TcpListener),
}

impl HealthServer {
    /// A server that binds `addr` on each start.
    pub fn bind(addr: SocketAddr) -> HealthServer {
        HealthServer::with(Listen::Bind(addr))
    }

    /// A server on `listener`, bound already: every start serves a clone of it, so the
    /// address stays the same across restarts and nothing else can take it meanwhile.
    pub fn on(listener: std::net::TcpListener) -> HealthServer {
        HealthServer::with(Listen::On(listener))
    }

    fn with(listen: Listen) -> HealthServer {
        HealthServer {
            listen,
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
    pub fn runnable(self) -> impl Runnable {
        let server = Arc::new(self);
        move |ctx: Context| {
            let server = server.clone();
            async move { server.serve(ctx).await }
        }
    }

    async fn listener(&self) -> std::io::Result<TcpListener> {
        match &self.listen {
            Listen::Bind(addr) => TcpListener::bind(addr).await,
            Listen::On(listener) => {
                let listener = listener.try_clone()?;
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            }
        }
    }

    async fn serve(&self, ctx: Context) -> crate::Result {
        let listener = self.listener().await.map_err(|e| match &self.listen {
            Listen::Bind(addr) => format!("cannot listen on {addr}: {e}"),
            Listen::On(_) => format!("cannot serve the listener it was given: {e}"),
        })?;
        let probes = Probes::from_context(&ctx);
        #[cfg(feature = "prometheus")]
        let probes = match &self.registry {
            Some(registry) => probes.metrics(registry.clone()),
            None => probes,
        };
        let log = ctx.logger();
        if let Ok(local) = listener.local_addr() {
            log.info(format_args!("serving probes on http://{local}"));
        }
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        ctx.signal(Signal::Healthy);
        loop {
            let accepted = tokio::select! {
                () = ctx.cancelled() => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                // A connection that failed as it was accepted (reset, out of files): the
                // next one may do better.
                Err(e) => {
                    log.warning(format_args!("cannot accept a connection: {e}"));
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                log.warning(format_args!(
                    "closed a connection from {peer}: {MAX_CONNECTIONS} are open already"
                ));
                continue;
            };
            let (stop, probes, log) = (ctx.clone(), probes.clone(), log.clone());
            drop(ctx.spawn(async move {
                let _slot = slot;
                tokio::select! {
                    () = stop.cancelled() => {}
                    served = connection(stream, probes) => if let Err(e) = served {
                        log.info(format_args!("connection from {peer}: {e}"));
                    },
                }
            }));
        }
    }
}

async fn connection(stream: TcpStream, probes: Probes) -> hyper::Result<()> {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let uri = request.uri();
        ready(Ok::<_, Infallible>(probes.answer(uri.path(), uri.query())))
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
}
