//! Supervised HTTP servers (feature `server`, DESIGN §17): the Go original's `GRPCServer`,
//! for any hyper service — an axum router, a tonic service, the probes — on hyper 1.
//!
//! A [`Server`] is a runnable of the tree. It serves HTTP/1.1 and HTTP/2 (told apart by
//! the client's first bytes; HTTP/2 without TLS, as gRPC speaks it), signals Healthy once
//! it is accepting, and stops the way the Go original offers:
//!
//! - [`Stop::Graceful`] (the default): once its context is cancelled it stops accepting at
//!   once (the socket is closed, so a new connection is refused), closes idle keep-alive
//!   connections, lets the requests in flight finish (an HTTP/2 connection is sent
//!   `GOAWAY`), and drops what is left at the node's shutdown deadline — its [`Shutdown`]
//!   policy: the builder's grace, or the spec's `Timeout(d)`; `Brutal` drops everything at
//!   once, `Infinity` waits for every request.
//! - [`Stop::Hard`]: every connection is closed and every request in flight dropped at
//!   once.
//!
//! Every connection and every HTTP/2 stream runs as a task of the server's node
//! ([`Context::spawn`]), never a detached `tokio::spawn`: its `tracing` events land at the
//! node's DN, and nothing of the server outlives [`Supervisor::wait`](crate::Supervisor::wait).
//! The server's runnable itself returns as soon as it has stopped accepting; its
//! connections drain after it, so a restart serves again at once while the last
//! incarnation's requests finish. Connection errors (a client gone mid-request, bytes that
//! are not HTTP) are logged at the node's DN and are never a failure of the server; an
//! accept that fails for want of resources (out of file descriptors) is logged and retried
//! after a pause that doubles from 5 ms to 1 s, as Go's `net/http` does.
//!
//! # Examples
//!
//! A hyper service, served at `127.0.0.1:8080` as `root.api`:
//!
//! ```
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//! use supervisor::server::Server;
//! use supervisor::{Context, Signal};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::from("hello\n")))
//! }
//!
//! async fn root(ctx: Context) -> supervisor::Result {
//!     let api = Server::bind("127.0.0.1:8080".parse()?, service_fn(hello));
//!     ctx.run("api", api.runnable())?;
//!     ctx.signal(Signal::Healthy);
//!     ctx.signal(Signal::Done);
//!     Ok(())
//! }
//! # let _ = root;
//! ```
//!
//! A tower service — an axum `Router`, tonic's `Routes` — is served through hyper-util's
//! adapter, re-exported here: `Server::bind(addr, TowerToHyperService::new(router))`.
//!
//! [`Shutdown`]: crate::Shutdown

mod conn;
mod listen;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
/// hyper-util's adapter from a tower `Service` (an axum `Router`, tonic's `Routes`, a
/// [`Probes`](crate::http::Probes)) to the hyper service a [`Server`] serves.
pub use hyper_util::service::TowerToHyperService;

use self::conn::{Caught, Exec, Open, Serving, Whose};
pub(crate) use self::listen::Listen;
use crate::{Context, Runnable, Signal};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The hyper services a [`Server`] serves: a `Service` of `Request<Incoming>` that is
/// `Clone` (one per connection) and `Send`, whose futures are `Send + 'static`, whose
/// errors and response bodies' errors box into `Box<dyn Error + Send + Sync>`. Implemented
/// for every such service (hyper's `service_fn` of an `async fn`, a
/// [`TowerToHyperService`]); it only names the bounds once.
pub trait HttpService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The response's body.
    type Body: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
}

impl<S, B> HttpService for S
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Body = B;
}

/// How a [`Server`] stops once its context is cancelled (the Go original's `graceful`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Stop {
    /// Stop accepting, close idle connections, let the requests in flight finish, and drop
    /// what is left at the node's shutdown deadline. What Go's `Server.Shutdown` and
    /// gRPC's `GracefulStop` do, with the supervisor's deadline.
    #[default]
    Graceful,
    /// Close every connection and drop every request in flight at once: gRPC's `Stop`. For
    /// a service whose streaming handlers would not finish on their own.
    Hard,
}

/// A hyper service served on a TCP listener, as a runnable: see the
/// [module](crate::server) for what it does.
///
/// [`bind`](Server::bind) binds its address on each start (with `SO_REUSEADDR`, so a
/// restart binds it again while the last incarnation's connections drain);
/// [`on`](Server::on) serves a listener bound beforehand and keeps it across restarts, so
/// that connections made during a restart's backoff wait in its backlog rather than being
/// refused, and port 0 stays the port it was given. A kept listener is closed when the tree
/// shuts down, and when its node leaves the tree.
///
/// # Examples
///
/// A server that drains for up to 30 s, on a listener bound before the tree starts:
///
/// ```
/// # use std::convert::Infallible;
/// # use http_body_util::Full;
/// # use hyper::body::{Bytes, Incoming};
/// # use hyper::{Request, Response};
/// use std::time::Duration;
/// use hyper::service::service_fn;
/// use supervisor::server::{Server, Stop};
/// use supervisor::{Context, Runnable, Shutdown, Signal, Spec};
/// # async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
/// #     Ok(Response::new(Full::from("hello\n")))
/// # }
///
/// # fn main() -> std::io::Result<()> {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let api = Server::on(listener, service_fn(hello)).stop(Stop::Graceful).runnable();
/// let root = root(api);
///
/// fn root(api: impl Runnable + Clone) -> impl Runnable {
///     let spec = Spec::new().shutdown(Shutdown::Timeout(Duration::from_secs(30)));
///     move |ctx: Context| {
///         // The same server on each start of the root: a clone of the runnable.
///         let (api, spec) = (api.clone(), spec.clone());
///         async move {
///             ctx.run_with("api", api, spec)?;
///             ctx.signal(Signal::Healthy);
///             ctx.signal(Signal::Done);
///             Ok(())
///         }
///     }
/// }
/// # let _ = root;
/// # Ok(())
/// # }
/// ```
pub struct Server<S> {
    settings: Settings,
    service: S,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S> Server<S> {
    /// A server of `service` that binds `addr` on each start.
    pub fn bind(addr: SocketAddr, service: S) -> Server<S> {
        Server {
            settings: Settings::new(Listen::Bind(addr)),
            service,
        }
    }

    /// A server of `service` on `listener`, bound already, kept across restarts.
    pub fn on(listener: std::net::TcpListener, service: S) -> Server<S> {
        Server {
            settings: Settings::new(Listen::on(listener)),
            service,
        }
    }

    /// How it stops; [`Stop::Graceful`] unless told.
    pub fn stop(mut self, stop: Stop) -> Server<S> {
        self.settings.stop = stop;
        self
    }

    /// Serves at most `max` connections at once (counting those of a restarted server's
    /// last incarnation that are still draining); one more is closed as it is accepted,
    /// and logged. No limit unless told.
    pub fn max_connections(mut self, max: usize) -> Server<S> {
        self.settings.max_connections = max;
        self
    }

    /// How long an HTTP/1 client may take to send a request's head before its connection
    /// is closed (hyper's default, 30 s, unless told; `None` waits for ever). A client that
    /// trickles its head would otherwise hold a connection for good.
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Server<S> {
        self.settings.header_read_timeout = timeout;
        self
    }
}

impl<S: HttpService + Sync> Server<S> {
    /// The runnable that serves: clone it to run the same server on each start of its
    /// parent (it keeps its listener, and its count of open connections, across them).
    pub fn runnable(self) -> impl Runnable + Clone {
        let server = Arc::new(self);
        move |ctx: Context| {
            let server = server.clone();
            async move { server.settings.serve(ctx, &server.service).await }
        }
    }
}

/// What a server is told besides its service: where it listens and how it serves. Also
/// the probes' server's ([`HealthServer`](crate::http::HealthServer)), whose service is
/// made anew by each start.
#[derive(Debug)]
pub(crate) struct Settings {
    listen: Listen,
    pub(crate) stop: Stop,
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Option<Duration>,
    open: Arc<Open>,
}

/// What hyper's own HTTP/1 server waits for a request's head by default.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The first and the longest pause after an accept that failed for want of resources.
const ACCEPT_PAUSE: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

impl Settings {
    pub(crate) fn new(listen: Listen) -> Settings {
        Settings {
            listen,
            stop: Stop::Graceful,
            max_connections: usize::MAX,
            header_read_timeout: Some(HEADER_READ_TIMEOUT),
            open: Arc::default(),
        }
    }

    /// Serves `service` until `ctx` is cancelled; see the [module](crate::server).
    pub(crate) async fn serve<S: HttpService>(&self, ctx: Context, service: &S) -> crate::Result {
        let listener = self.listen.open(&ctx).await?;
        // Shared by every connection and stream: one count to take for each, not two.
        let log = Arc::new(ctx.logger());
        if let Ok(local) = listener.get().local_addr() {
            log.info(format_args!("serving on http://{local}"));
        }
        let mut builder = auto::Builder::new(Exec {
            ctx: ctx.clone(),
            log: log.clone(),
            stop: self.stop,
        });
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        ctx.signal(Signal::Healthy);
        let mut pause = ACCEPT_PAUSE.0;
        loop {
            let accepted = tokio::select! {
                biased;
                () = ctx.cancelled() => break,
                accepted = listener.get().accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if of_one_connection(&e) => {
                    log.info(format_args!("a connection failed as it was accepted: {e}"));
                    continue;
                }
                Err(e) => {
                    log.warning(format_args!(
                        "cannot accept connections: {e}; trying again in {pause:?}"
                    ));
                    tokio::select! {
                        biased;
                        () = ctx.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(ACCEPT_PAUSE.1);
                    continue;
                }
            };
            pause = ACCEPT_PAUSE.0;
            let Some(slot) = self.open.take(self.max_connections) else {
                log.warning(format_args!(
                    "closed a connection from {peer}: {} are open already",
                    self.max_connections
                ));
                continue;
            };
            // Small writes (a response's head, a gRPC message) go out at once, as Go's
            // servers send them.
            let _ = stream.set_nodelay(true);
            let serving = Serving {
                ctx: ctx.clone(),
                builder: builder.clone(),
                service: service.clone(),
                stop: self.stop,
                log: log.clone(),
            };
            let served = conn::serve(serving, stream, peer, slot);
            drop(ctx.spawn(Caught::new(served, log.clone(), Whose::Connection(peer))));
        }
        // Closed (or kept for the next start) before anything else: from here a new
        // connection is refused, or waits for the next incarnation.
        drop(listener);
        let open = self.open.count();
        match self.stop {
            Stop::Graceful => log.info(format_args!(
                "stopped accepting; {open} connections finish their requests"
            )),
            Stop::Hard => log.info(format_args!(
                "stopped accepting; {open} connections closed at once"
            )),
        }
        Ok(())
    }
}

/// Whether an accept's error is of the connection it was accepting (the client reset it
/// while it waited), not of the listener: the next accept may do better at once.
fn of_one_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}
