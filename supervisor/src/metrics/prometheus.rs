//! Exporting node states to Prometheus.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::lock::lock;

use ::prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::{CrashReport, Metrics, NodeState};

/// [`Metrics`] that export every node's state into a [`prometheus::Registry`](https://docs.rs/prometheus/0.14/prometheus/struct.Registry.html).
///
/// Three series families, named `<namespace>_supervisor_…` (just `supervisor_…` without a
/// namespace):
///
/// - `supervisor_dn_state_total{dn, state}`, a gauge: 1 for the DN's current state, 0 for
///   the other four;
/// - `supervisor_dn_state_transition_count{dn, old_state, new_state}`, a counter of
///   transitions (a DN's first transition counts from `NODE_STATE_DEAD`);
/// - `supervisor_crashes_total{dn}`, a counter of the DN's [crash
///   reports](crate::CrashReport): its failures, each kind of death alike.
///
/// States are labelled `NODE_STATE_NEW`, `NODE_STATE_HEALTHY`, … With the namespace
/// `monogon`, the names are exactly those of the Go original. A DN that leaves the tree
/// (a finished dynamic child: [`Metrics::notify_node_removed`]) takes its series with it,
/// so churn does not grow the registry.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), prometheus::Error> {
/// use supervisor::{Context, PrometheusMetrics, Signal, Supervisor};
///
/// let registry = prometheus::Registry::new();
/// let sup = Supervisor::builder()
///     .metrics(PrometheusMetrics::new(&registry)?)
///     .start(|ctx: Context| async move {
///         ctx.signal(Signal::Healthy);
///         ctx.cancelled().await;
///         Ok(())
///     });
/// sup.settled().await;
/// let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
/// assert!(text.contains(r#"supervisor_dn_state_total{dn="root",state="NODE_STATE_HEALTHY"} 1"#));
/// # sup.cancel(); sup.wait().await; Ok(()) }
/// ```
pub struct PrometheusMetrics {
    states: IntGaugeVec,
    transitions: IntCounterVec,
    crashes: IntCounterVec,
    last: Mutex<HashMap<String, Seen>>,
}

/// What the series of one DN hold: its state, and which transitions it has counted (bit
/// `old * 5 + new`, by declaration order, which is [`NodeState::ALL`]'s), so that a DN
/// leaving the tree takes exactly its own series with it.
struct Seen {
    state: NodeState,
    transitions: u32,
}

fn transition_bit(old: NodeState, new: NodeState) -> u32 {
    1 << (old as usize * NodeState::ALL.len() + new as usize)
}

impl PrometheusMetrics {
    /// Registers the series in `registry`, without a namespace.
    ///
    /// # Errors
    ///
    /// If `registry` already holds series of these names (from an earlier call).
    pub fn new(registry: &Registry) -> Result<Self, ::prometheus::Error> {
        Self::register(registry, None)
    }

    /// Registers the series in `registry` as `<namespace>_supervisor_…`.
    ///
    /// # Errors
    ///
    /// If `registry` already holds series of these names, or `namespace` is not a valid
    /// Prometheus name.
    pub fn with_namespace(
        registry: &Registry,
        namespace: &str,
    ) -> Result<Self, ::prometheus::Error> {
        Self::register(registry, Some(namespace))
    }

    fn register(registry: &Registry, namespace: Option<&str>) -> Result<Self, ::prometheus::Error> {
        let opts = |name: &str, help: &str| {
            let opts = Opts::new(name, help).subsystem("supervisor");
            match namespace {
                Some(ns) => opts.namespace(ns),
                None => opts,
            }
        };
        let states = IntGaugeVec::new(
            opts(
                "dn_state_total",
                "The state of a supervised DN: 1 for its current state, 0 for the others.",
            ),
            &["dn", "state"],
        )?;
        let transitions = IntCounterVec::new(
            opts(
                "dn_state_transition_count",
                "Transitions of supervised DNs between states.",
            ),
            &["dn", "old_state", "new_state"],
        )?;
        let crashes = IntCounterVec::new(
            opts(
                "crashes_total",
                "Failures of supervised DNs (crash reports).",
            ),
            &["dn"],
        )?;
        registry.register(Box::new(states.clone()))?;
        if let Err(e) = registry.register(Box::new(transitions.clone())) {
            // Leave the registry as it was.
            let _ = registry.unregister(Box::new(states));
            return Err(e);
        }
        if let Err(e) = registry.register(Box::new(crashes.clone())) {
            let _ = registry.unregister(Box::new(states));
            let _ = registry.unregister(Box::new(transitions));
            return Err(e);
        }
        Ok(PrometheusMetrics {
            states,
            transitions,
            crashes,
            last: Mutex::new(HashMap::new()),
        })
    }
}

impl Metrics for PrometheusMetrics {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        let mut last = lock(&self.last);
        let old = match last.get_mut(dn) {
            Some(seen) => {
                let old = std::mem::replace(&mut seen.state, state);
                seen.transitions |= transition_bit(old, state);
                old
            }
            None => {
                let seen = Seen {
                    state,
                    transitions: transition_bit(NodeState::Dead, state),
                };
                last.insert(dn.to_owned(), seen);
                NodeState::Dead
            }
        };
        drop(last);
        for s in NodeState::ALL {
            self.states
                .with_label_values(&[dn, s.as_str()])
                .set(i64::from(s == state));
        }
        self.transitions
            .with_label_values(&[dn, old.as_str(), state.as_str()])
            .inc();
    }

    fn notify_crash(&self, report: &Arc<CrashReport>) {
        self.crashes.with_label_values(&[report.dn()]).inc();
    }

    /// Drops the DN's series: its five state gauges, the transitions it counted, and its
    /// crashes.
    fn notify_node_removed(&self, dn: &str) {
        let Some(seen) = lock(&self.last).remove(dn) else {
            return;
        };
        let _ = self.crashes.remove_label_values(&[dn]);
        for s in NodeState::ALL {
            let _ = self.states.remove_label_values(&[dn, s.as_str()]);
        }
        for old in NodeState::ALL {
            for new in NodeState::ALL {
                if seen.transitions & transition_bit(old, new) != 0 {
                    let _ = self
                        .transitions
                        .remove_label_values(&[dn, old.as_str(), new.as_str()]);
                }
            }
        }
    }
}

impl fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = lock(&self.last);
        f.debug_struct("PrometheusMetrics")
            .field("dns", &last.len())
            .finish()
    }
}
