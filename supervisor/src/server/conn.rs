//! One connection of a [`Server`](super::Server), and the executor its HTTP/2 streams run
//! on: each a task of the server's node ([`Context::spawn`]), never a detached spawn.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;

use super::{HttpService, Stop};
use crate::Context;
use crate::error::panic_message_dropped;
use crate::logtree::Logger;

/// hyper's executor for a server's HTTP/2 streams: each runs as a task of the server's
/// node. With a graceful stop a stream has the node's shutdown deadline to finish (its
/// task is aborted then, as every task of the node is); with a hard stop it is dropped as
/// soon as the stop begins.
#[derive(Clone, Debug)]
pub(crate) struct Exec {
    pub(crate) ctx: Context,
    // The node's logger, made once per incarnation rather than once per stream.
    pub(crate) log: Arc<Logger>,
    pub(crate) stop: Stop,
}

impl<F> hyper::rt::Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        let stream = Caught::new(stream, self.log.clone(), Whose::Stream);
        match self.stop {
            Stop::Graceful => drop(self.ctx.spawn(stream)),
            Stop::Hard => {
                let ctx = self.ctx.clone();
                drop(self.ctx.spawn(async move {
                    tokio::select! {
                        biased;
                        () = ctx.cancelled() => {}
                        _ = stream => {}
                    }
                }));
            }
        }
    }
}

pin_project! {
    /// A connection's or a stream's future, whose panic (the service's: hyper polls the
    /// service's futures inside them) ends it alone, told at the node's DN rather than only
    /// to the process's panic hook.
    pub(crate) struct Caught<F> {
        #[pin]
        future: F,
        log: Arc<Logger>,
        whose: Whose,
    }
}

/// Whose future a [`Caught`] is, for its log line.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Whose {
    Connection(SocketAddr),
    Stream,
}

impl std::fmt::Display for Whose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Whose::Connection(peer) => write!(f, "connection from {peer}"),
            Whose::Stream => f.write_str("an HTTP/2 stream"),
        }
    }
}

impl<F> Caught<F> {
    pub(crate) fn new(future: F, log: Arc<Logger>, whose: Whose) -> Self {
        Caught { future, log, whose }
    }
}

impl<F: Future> Future for Caught<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        match catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
            Ok(polled) => polled.map(Some),
            Err(payload) => {
                let message = panic_message_dropped(payload);
                this.log.warning(format_args!(
                    "{}: its service panicked: {message}",
                    this.whose
                ));
                Poll::Ready(None)
            }
        }
    }
}

/// Counts a server's open connections (across its incarnations: a restarted server's
/// draining connections still count toward its limit).
#[derive(Debug, Default)]
pub(crate) struct Open(AtomicUsize);

impl Open {
    /// A slot for one more connection, unless `max` are open.
    pub(crate) fn take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// One open connection's place in [`Open`], given back when its task ends.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Open>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection's task needs besides its stream.
pub(crate) struct Serving<S> {
    pub(crate) ctx: Context,
    pub(crate) builder: Arc<auto::Builder<Exec>>,
    pub(crate) service: S,
    pub(crate) stop: Stop,
    pub(crate) log: Arc<Logger>,
}

/// Serves one connection until it closes. Once the node is cancelled it closes at once
/// (hard), or finishes the requests in flight and then closes (graceful: an idle
/// keep-alive connection closes at once, HTTP/2 sends GOAWAY); the node's shutdown
/// deadline cuts a graceful one short by aborting its task.
pub(crate) async fn serve<S: HttpService>(
    serving: Serving<S>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
) {
    let _slot = slot;
    let Serving {
        ctx,
        builder,
        service,
        stop,
        log,
    } = serving;
    let cut = Cut {
        log: &log,
        peer,
        finished: false,
    };
    let mut connection =
        pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = ctx.cancelled() => match stop {
            Stop::Hard => Ok(()),
            Stop::Graceful => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        },
    };
    cut.done();
    // A client that goes away mid-request, or sends what is not HTTP, is the client's
    // business: told at the node's DN, never a failure of the server.
    if let Err(e) = served {
        log.info(format_args!("connection from {peer}: {e}"));
    }
}

/// Tells the node's log of a connection dropped before it closed: its task was aborted at
/// the shutdown deadline, with a request still in flight.
struct Cut<'a> {
    log: &'a Logger,
    peer: SocketAddr,
    finished: bool,
}

impl Cut<'_> {
    fn done(mut self) {
        self.finished = true;
    }
}

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        // Unwinding: the service panicked, which `Caught` tells.
        if !self.finished && !std::thread::panicking() {
            self.log.warning(format_args!(
                "connection from {}: dropped unfinished, at the shutdown deadline",
                self.peer
            ));
        }
    }
}
