//! Where a [`Server`](super::Server) listens: an address bound on each start, or a
//! listener bound beforehand and kept across restarts.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::TcpListener;

use crate::Context;
use crate::lock::lock;

#[derive(Debug)]
pub(crate) enum Listen {
    Bind(SocketAddr),
    // Held by the running incarnation, and put back when it stops unless the tree is
    // shutting down: while it is here the socket keeps listening, so that connections made
    // during a restart's backoff wait in its backlog for the next incarnation.
    On(Mutex<Option<std::net::TcpListener>>),
}

impl Listen {
    pub(crate) fn on(listener: std::net::TcpListener) -> Listen {
        Listen::On(Mutex::new(Some(listener)))
    }

    /// The listener this start serves, or why there is none (the text of the node's
    /// failure).
    pub(crate) async fn open<'a>(&'a self, ctx: &'a Context) -> Result<Listener<'a>, String> {
        match self {
            Listen::Bind(addr) => match TcpListener::bind(addr).await {
                Ok(listener) => Ok(Listener {
                    listener,
                    _kept: None,
                }),
                Err(e) => Err(format!("cannot listen on {addr}: {e}")),
            },
            Listen::On(slot) => {
                let Some(kept) = lock(slot).take() else {
                    return Err("the listener it was given was closed: the tree stopped".into());
                };
                match serve_clone(&kept) {
                    Ok(listener) => Ok(Listener {
                        listener,
                        _kept: Some(Kept {
                            listener: Some(kept),
                            slot,
                            ctx,
                        }),
                    }),
                    Err(e) => {
                        *lock(slot) = Some(kept);
                        Err(format!("cannot serve the listener it was given: {e}"))
                    }
                }
            }
        }
    }
}

fn serve_clone(kept: &std::net::TcpListener) -> io::Result<TcpListener> {
    let clone = kept.try_clone()?;
    clone.set_nonblocking(true)?;
    TcpListener::from_std(clone)
}

/// The listener of one incarnation. Dropping it closes a bound socket, which refuses new
/// connections at once. A kept one goes back to its slot instead — unless the tree is
/// shutting down: then it is closed too, as nothing would serve what it accepts.
pub(crate) struct Listener<'a> {
    listener: TcpListener,
    _kept: Option<Kept<'a>>,
}

impl Listener<'_> {
    pub(crate) fn get(&self) -> &TcpListener {
        &self.listener
    }
}

struct Kept<'a> {
    listener: Option<std::net::TcpListener>,
    slot: &'a Mutex<Option<std::net::TcpListener>>,
    ctx: &'a Context,
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        if !self.ctx.incarnation().shared().shutting_down() {
            *lock(self.slot) = self.listener.take();
        }
    }
}
