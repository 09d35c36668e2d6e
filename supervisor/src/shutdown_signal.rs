//! Turning the operating system's request to stop into a graceful shutdown (DESIGN §5).

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;

/// Which request to stop arrived: see [`shutdown_signal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownSignal {
    /// `SIGINT`: Ctrl-C in a terminal (on Windows, Ctrl-C or Ctrl-Break).
    Interrupt,
    /// `SIGTERM`: what systemd, Kubernetes, Docker and `kill` send to stop a service.
    Terminate,
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownSignal::Interrupt => "SIGINT",
            ShutdownSignal::Terminate => "SIGTERM",
        })
    }
}

type Waiting = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves when the program is asked to stop: `SIGINT` or `SIGTERM` on Unix, Ctrl-C
/// elsewhere. Pass it to [`Supervisor::cancel`](crate::Supervisor::cancel) and the program
/// stops gracefully under systemd, Kubernetes and a terminal alike.
///
/// The handlers are installed when this is called, not when the future is first polled, so
/// that a signal arriving in between is not lost; they stay installed for the life of the
/// program (as tokio's are): a second `SIGTERM` no longer kills the process at once, so a
/// program that wants "press Ctrl-C twice to quit now" calls it again after the first.
///
/// Needs a runtime with I/O enabled (`#[tokio::main]` has it). If a handler cannot be
/// installed — no I/O driver, or the system refuses — the error is logged at ERROR (target
/// `supervisor`) and that signal is not waited for: it keeps its default action, which ends
/// the process at once, ungracefully but surely. (Resolving instead would stop a healthy
/// program that was never asked to stop.)
///
/// The future's output says what arrived, for the log. `DESIGN.md` sketches this as
/// `async fn shutdown_signal()`; installing at the call and the output are the refinement
/// (it is awaited the same way).
///
/// # Examples
///
/// ```no_run
/// use supervisor::{Context, Supervisor, shutdown_signal};
///
/// #[tokio::main]
/// async fn main() {
///     let sup = Supervisor::new(|ctx: Context| async move {
///         ctx.cancelled().await;
///         Ok(())
///     });
///     let why = shutdown_signal().await;
///     tracing::info!("{why}: shutting down");
///     sup.cancel();
///     sup.wait().await;
/// }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ShutdownSignal> + Send + 'static {
    let interrupt = install("SIGINT", interrupt);
    let terminate = install("SIGTERM", terminate);
    async move {
        tokio::select! {
            () = interrupt => ShutdownSignal::Interrupt,
            () = terminate => ShutdownSignal::Terminate,
        }
    }
}

/// Installs a handler now, or logs why it cannot be and waits forever.
fn install(name: &str, handler: fn() -> std::io::Result<Waiting>) -> Waiting {
    let installed = match catch_unwind(AssertUnwindSafe(handler)) {
        Ok(installed) => installed,
        Err(payload) => Err(std::io::Error::other(crate::error::panic_message_dropped(
            payload,
        ))),
    };
    installed.unwrap_or_else(|e| {
        tracing::error!(
            target: "supervisor",
            parent: None,
            "cannot wait for {name}: {e}; it keeps its default action"
        );
        Box::pin(std::future::pending())
    })
}

#[cfg(unix)]
fn interrupt() -> std::io::Result<Waiting> {
    unix(tokio::signal::unix::SignalKind::interrupt())
}

#[cfg(unix)]
fn terminate() -> std::io::Result<Waiting> {
    unix(tokio::signal::unix::SignalKind::terminate())
}

#[cfg(unix)]
fn unix(kind: tokio::signal::unix::SignalKind) -> std::io::Result<Waiting> {
    let mut signal = tokio::signal::unix::signal(kind)?;
    Ok(Box::pin(async move {
        signal.recv().await;
    }))
}

#[cfg(not(unix))]
fn interrupt() -> std::io::Result<Waiting> {
    Ok(Box::pin(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(target: "supervisor", parent: None, "cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    }))
}

#[cfg(not(unix))]
fn terminate() -> std::io::Result<Waiting> {
    Ok(Box::pin(std::future::pending()))
}
