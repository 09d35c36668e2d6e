//! Kubernetes probes and Prometheus metrics over HTTP (feature `http`, DESIGN §16).
//!
//! [`HealthServer`] is a runnable: put it in the tree it reports on, so that it is
//! supervised too. [`Probes`] is the same endpoints as a tower `Service`, to mount in a
//! server of your own. A pod spec that probes a tree serving at port 8080:
//!
//! ```yaml
//! containers:
//!   - name: agent
//!     livenessProbe:
//!       httpGet: { path: /livez, port: 8080 }
//!       periodSeconds: 10
//!     readinessProbe:
//!       httpGet: { path: /readyz, port: 8080 }
//!       periodSeconds: 5
//!     startupProbe:
//!       httpGet: { path: /readyz, port: 8080 }
//!       failureThreshold: 30
//!       periodSeconds: 2
//! ```
//!
//! `curl localhost:8080/readyz?verbose` shows which node keeps the pod unready.

mod probes;
mod server;
mod status;

pub use probes::Probes;
pub use server::HealthServer;
pub use status::StatusPage;
