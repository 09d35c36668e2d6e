//! Supervision trees for tokio, in the tradition of Erlang/OTP.
//!
//! A program is a tree of named **runnables**: async functions that the supervisor starts,
//! watches and restarts. Each runnable gets a [`Context`] that names its place in the tree
//! (its DN, like `root.net.dhcp`), tells it when to stop, and lets it start children and
//! report its health with [`Signal`]s. When a runnable fails — returns an error, returns when
//! it should not, panics — the supervisor cancels its subtree and its group siblings, waits
//! for all of them to return, and starts them again after an exponential [`Backoff`].
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use supervisor::{Context, Group, Signal, Supervisor};
//!
//! async fn listener(ctx: Context) -> supervisor::Result {
//!     // ... bind a socket ...
//!     ctx.signal(Signal::Healthy);
//!     ctx.cancelled().await;
//!     Ok(())
//! }
//!
//! async fn net(ctx: Context) -> supervisor::Result {
//!     // Restarted together: if one fails, both are.
//!     ctx.run_group(Group::new().add("dhcp", listener).add("dns", listener))?;
//!     ctx.signal(Signal::Healthy);
//!     ctx.signal(Signal::Done);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let sup = Supervisor::new(|ctx: Context| async move {
//!         ctx.run("net", net)?;
//!         ctx.signal(Signal::Healthy);
//!         ctx.signal(Signal::Done);
//!         Ok(())
//!     });
//!     sup.settled().await;
//!     println!("{:#?}", sup.states());
//!     # sup.cancel();
//!     // Runs until cancelled (e.g. on Ctrl-C).
//!     sup.wait().await;
//! }
//! ```
//!
//! # Semantics in brief
//!
//! - Node states ([`NodeState`]): `New` → `Healthy` → `Done`, or `Dead` (failed), or
//!   `Canceled` (returned after its context was cancelled).
//! - Children start only while their parent is `New`; they are forgotten when it restarts.
//!   A [dynamic group](Context::dynamic) starts them at any time instead — one per
//!   connection, job or device — each restarted alone by its kind, and gone from the tree
//!   once finished; [`Context::spawn`] runs a plain task that belongs to its node.
//! - A failed node's whole subtree and its [`Group`] siblings are cancelled; the largest
//!   subtrees that have fully returned are restarted — failed ones (and ones that cancelled
//!   themselves) after a backoff, ones cancelled by a relative at once. This is event
//!   driven: nothing polls.
//! - [`Supervisor::cancel`] stops everything; runnables that ignore it are aborted after
//!   the shutdown grace period, and one that returns only after it (having blocked its
//!   thread) is recorded `Dead`. [`Supervisor::wait`] outlasts every task it spawned.
//! - No code of yours runs under the supervisor's lock: errors are formatted and dropped,
//!   and forgotten runnables dropped, outside it, each guarded, so that a panic there fails
//!   one node, never the tree.
//! - `tracing` events inside a runnable land in its log at its DN. Under an application
//!   subscriber with [`logtree::LogTreeLayer`] the runnable runs in a span named
//!   `runnable` with a `dn` field; [`Context::span`] gives it for spawned tasks.
//!
//! # Health
//!
//! A node is ready when it and the children that gate its readiness are Healthy or Done;
//! the tree is ready when its root is ([`Supervisor::ready`], [`Supervisor::health`]). A
//! node can keep a watchdog ([`Spec::watchdog`], [`Context::heartbeat`]). The tree speaks
//! systemd's notify protocol with [`Builder::systemd_notify`], and serves Kubernetes'
//! probes with the `http` feature (`supervisor::http`).
//!
//! # Servers
//!
//! With the `server` feature, `supervisor::server::Server` serves a hyper service (an
//! axum router, a tonic service) as a runnable, HTTP/1.1 and HTTP/2, stopped gracefully
//! within the node's shutdown deadline or hard, every connection and stream a task of its
//! node; with `grpc`, `supervisor::grpc::TreeHealth` answers gRPC health checks with the
//! tree's readiness.
//!
//! # Operations
//!
//! Every failure makes a [`CrashReport`], with the last lines the node logged
//! ([`Supervisor::crash_reports`]); [`Supervisor::events`] streams the tree's lifecycle
//! events; [`Supervisor::restart`], [`stop`](Supervisor::stop) and
//! [`start`](Supervisor::start) act on one node by DN. With the `http` feature,
//! `supervisor::http::StatusPage` serves a live status page.
//!
//! # Runtime
//!
//! A supervisor runs on the tokio runtime it is started in, which must have time enabled
//! (as `#[tokio::main]` and `#[tokio::test]` do). Every task it spawns — each runnable,
//! each restart timer — is spawned on that runtime, whichever thread starts it: a
//! [`Context`] may be used from a plain thread or from inside another runtime.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `macros` | on | [`runnable`](macro@runnable) and [`supervision_tree!`], from `supervisor-macros` |
//! | `process` | on | [`run_command`] and [`run_program`]: child processes as runnables (Unix; `rustix` for signals) |
//! | `prometheus` | on | [`PrometheusMetrics`]: node states exported into a `prometheus::Registry` |
//! | `signal` | on | [`shutdown_signal`](fn@shutdown_signal): SIGINT/SIGTERM (Ctrl-C elsewhere) as a graceful shutdown |
//! | `server` | off | `supervisor::server`: a hyper (or tower) service served as a runnable, HTTP/1.1 and HTTP/2, with a graceful or a hard stop, every connection and stream a task of its node (hyper 1, `hyper-util`, `http`, `tower-service`; no web framework) |
//! | `http` | off | `supervisor::http`, with `server`: Kubernetes probes (`/livez`, `/readyz`, `/healthz`) and `/metrics`, as a runnable and as a tower `Service`, and the live status page (`StatusPage`) (adds `http-body-util`, `bytes`) |
//! | `grpc` | off | `supervisor::grpc`, with `server`: the gRPC health service (`grpc.health.v1`) answering with the tree's readiness per DN, for tonic services served by `server` (`tonic` without its transport, `tonic-health`) |
//! | `testing` | off | `supervisor::testing` and `#[supervisor::test]` (with `macros`): the test harness, paused time. It turns on tokio's `test-util`, so enable it under `[dev-dependencies]` only |
//!
//! With no features the crate is the runtime alone: runnables, contexts, restarts, the log
//! tree and the metrics hook. CI builds each feature on its own and with none.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod activity;
mod backoff;
mod cancel;
mod cancellation;
#[cfg(all(feature = "process", unix))]
mod command;
mod context;
mod crash;
mod deferred;
mod dynamic;
mod error;
mod events;
mod group;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod handle;
mod hash;
mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod json;
mod lock;
pub mod logtree;
mod metrics;
mod name;
mod node_task;
mod policy;
pub mod registry;
mod runnable;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
mod shared;
#[cfg(feature = "signal")]
mod shutdown_signal;
mod state;
mod status;
#[cfg(unix)]
mod systemd;
mod task;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod tree;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc = include_str!("../docs/runnable.md")]
pub use supervisor_macros::runnable;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc = include_str!("../docs/supervision_tree.md")]
pub use supervisor_macros::supervision_tree;

#[cfg(all(feature = "macros", feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "macros", feature = "testing"))))]
#[doc = include_str!("../docs/test.md")]
pub use supervisor_macros::test;

pub use backoff::Backoff;
pub use cancellation::Cancellation;
#[cfg(all(feature = "process", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "process", unix))))]
pub use command::{CommandOptions, ProcessSignal, run_command, run_program};
pub use context::Context;
pub use crash::{CrashReport, Death, PeerState};
pub use dynamic::{Dynamic, DynamicSpec};
pub use error::{Cancelled, ConfigError, ControlError, NameUse, RunError, StartError};
pub use events::{Event, EventKind, Events, Observed};
pub use group::Group;
pub use handle::{Builder, Ended, Supervisor};
pub use health::{Health, NodeHealth, NotReady};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use metrics::PrometheusMetrics;
pub use metrics::{DnState, InMemoryMetrics, Metrics};
pub use policy::{Intensity, Restart, Shutdown, Spec, Strategy};
pub use runnable::Runnable;
#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use shutdown_signal::{ShutdownSignal, shutdown_signal};
pub use state::{NodeState, Signal};
pub use status::{DynamicStatus, GroupStatus, NodeStatus, TreeStatus};
pub use tokio_util::sync::CancellationToken;

/// The error a runnable returns: any error, boxed.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A runnable's result: `Ok(())` or an [`Error`].
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// Compiles the README's examples as doctests, so that they cannot rot. Its server example
/// needs the `server` feature, which the workspace's tests enable.
#[doc = include_str!("../../README.md")]
#[cfg(all(doctest, feature = "server"))]
pub struct ReadmeDoctests;
