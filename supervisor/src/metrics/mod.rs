//! Observing every state change of the tree.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use std::time::{Instant, SystemTime};

use crate::lock::lock;

use crate::{CrashReport, NodeState};

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
/// DN reappears when the parent starts them again. A DN that leaves the tree for good — a
/// finished child of a dynamic group, with everything below it, or a dynamic child
/// forgotten with its group's parent — is told to
/// [`notify_node_removed`](Metrics::notify_node_removed), after its last state, so that a
/// sink can drop what it keeps of it: a server's million connections must not grow it.
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

    /// `dn` has left the tree for good (DESIGN §15): nothing more will be told of it, unless
    /// a new node comes to have the same DN, which starts again with `New`. By default,
    /// nothing is done.
    fn notify_node_removed(&self, dn: &str) {
        let _ = dn;
    }

    /// A node has died, and this is its [crash report](CrashReport): told once per failure,
    /// right after the node's `Dead` state, under the same rules as the states (quick, no
    /// blocking, no calls back). Keep the `Arc` to look at it later. By default, nothing is
    /// done; [`PrometheusMetrics`] counts crashes per DN.
    fn notify_crash(&self, report: &Arc<CrashReport>) {
        let _ = report;
    }
}

impl<M: Metrics + ?Sized> Metrics for Arc<M> {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        (**self).notify_node_state(dn, state);
    }

    fn notify_node_removed(&self, dn: &str) {
        (**self).notify_node_removed(dn);
    }

    fn notify_crash(&self, report: &Arc<CrashReport>) {
        (**self).notify_crash(report);
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

/// [`Metrics`] that keeps the latest state of every DN in the tree, and when it changed. A
/// DN that leaves the tree ([`Metrics::notify_node_removed`]) is dropped.
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

    fn notify_node_removed(&self, dn: &str) {
        lock(&self.dns).remove(dn);
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
