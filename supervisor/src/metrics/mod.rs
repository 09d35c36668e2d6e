//! Observing every state change of the tree.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use std::time::{Instant, SystemTime};

use crate::lock::lock;

use crate::NodeState;

#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(feature = "prometheus")]
pub use self::prometheus::PrometheusMetrics;

/// A sink for the tree's state changes.
///
/// The supervisor calls [`notify_node_state`](Metrics::notify_node_state) for every
/// transition of every node, exactly once and in order, while it holds the tree's lock: one
/// call at a time, synchronously. An implementation must therefore be quick, must not block,
/// and must not call back into the supervisor. Attach several with
/// [`Builder::metrics`](crate::Builder::metrics).
///
/// A node's first notification is `New`, when it is created; a restart notifies `New` again.
/// Nodes forgotten because their parent restarted get no notification of their own; their
/// DN reappears when the parent starts them again.
///
/// # Examples
///
/// ```
/// use supervisor::{Metrics, NodeState};
///
/// #[derive(Debug)]
/// struct Printer;
///
/// impl Metrics for Printer {
///     fn notify_node_state(&self, dn: &str, state: NodeState) {
///         eprintln!("{dn} is now {}", state.name());
///     }
/// }
/// ```
pub trait Metrics: Send + Sync + 'static {
    /// `dn` has entered `state`.
    fn notify_node_state(&self, dn: &str, state: NodeState);
}

impl<M: Metrics + ?Sized> Metrics for Arc<M> {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        (**self).notify_node_state(dn, state);
    }
}

/// The state of one DN as [`InMemoryMetrics`] last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnState {
    /// The current state.
    pub state: NodeState,
    /// When the DN entered it, on the monotonic clock: for measuring how long ago.
    pub transition: Instant,
    /// When the DN entered it, on the wall clock (the Go original's `time.Time`): for showing
    /// to people and for comparing with other logs. It may jump with the system clock.
    pub wall_time: SystemTime,
}

/// [`Metrics`] that keeps the latest state of every DN ever seen, and when it changed.
///
/// A cheap handle: clones share the same map, so keep one and give a clone to the builder.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use supervisor::{Context, InMemoryMetrics, NodeState, Signal, Supervisor};
///
/// let metrics = InMemoryMetrics::default();
/// let sup = Supervisor::builder()
///     .metrics(metrics.clone())
///     .start(|ctx: Context| async move {
///         ctx.signal(Signal::Healthy);
///         ctx.cancelled().await;
///         Ok(())
///     });
/// sup.settled().await;
/// assert_eq!(metrics.dns()["root"].state, NodeState::Healthy);
/// sup.cancel();
/// sup.wait().await;
/// assert_eq!(metrics.dns()["root"].state, NodeState::Canceled);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct InMemoryMetrics {
    dns: Arc<Mutex<HashMap<String, DnState>>>,
}

impl InMemoryMetrics {
    /// A snapshot of every DN's latest state.
    pub fn dns(&self) -> HashMap<String, DnState> {
        lock(&self.dns).clone()
    }
}

impl Metrics for InMemoryMetrics {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        let now = DnState {
            state,
            transition: Instant::now(),
            wall_time: SystemTime::now(),
        };
        let mut dns = lock(&self.dns);
        match dns.get_mut(dn) {
            Some(entry) => *entry = now,
            None => {
                dns.insert(dn.to_owned(), now);
            }
        }
    }
}

impl fmt::Debug for InMemoryMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dns = lock(&self.dns);
        f.debug_struct("InMemoryMetrics")
            .field("dns", &dns.len())
            .finish()
    }
}
