//! Readiness of the tree and of each node (DESIGN §16), as a snapshot for people, probes and
//! systemd.

use std::fmt;
use std::time::Duration;

use crate::NodeState;

/// A snapshot of the tree's readiness, from [`Supervisor::health`](crate::Supervisor::health).
///
/// A node is **ready** when it is Healthy or Done and every child of its current
/// incarnation is ready — except temporary children that have ended and children whose
/// spec [ignores readiness](crate::Spec::ignore_readiness). The tree is ready when its root
/// is, until shutdown begins (a cancel, giving up, or the whole tree having finished):
/// readiness falls then, whatever the nodes' states.
///
/// `Display` prints one node a line, in DN order, with why it is not ready:
///
/// ```text
/// not ready: 2/3 ready; root.db starting
/// root         not ready: waiting for root.db
/// root.db      not ready: starting: has not signalled Healthy
/// root.web     ready
/// ```
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use supervisor::{Context, NotReady, Signal, Supervisor};
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     ctx.run("db", |ctx: Context| async move {
///         // Never signals Healthy: still connecting.
///         ctx.cancelled().await;
///         Ok(())
///     })?;
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.settled().await;
/// let health = sup.health();
/// assert!(!health.is_ready());
/// assert_eq!(health.get("root.db").unwrap().not_ready, Some(NotReady::Starting));
/// assert_eq!(
///     health.get("root").unwrap().not_ready,
///     Some(NotReady::Child { dn: "root.db".into() })
/// );
/// # sup.cancel(); sup.wait().await;
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub(crate) ready: bool,
    pub(crate) nodes: Vec<NodeHealth>,
}

/// One node of a [`Health`] snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeHealth {
    /// The node's DN.
    pub dn: String,
    /// Its state.
    pub state: NodeState,
    /// Whether it and everything below it that gates its readiness is ready, and the tree
    /// is not shutting down.
    pub ready: bool,
    /// Whether the node itself passes: Healthy or Done (the root fails once shutdown
    /// begins). What a Kubernetes readiness check of this DN reports.
    pub passes: bool,
    /// Whether it gates the tree's readiness: it and each of its ancestors gate their
    /// parents' (none ignores readiness, none is a temporary child that has ended).
    pub counted: bool,
    /// Why it is not ready; `None` when it is.
    pub not_ready: Option<NotReady>,
}

/// Why a node is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// Started, and has not signalled `Healthy` yet.
    Starting,
    /// It failed, and waits out its backoff: it restarts after this long.
    Restarting {
        /// The time left of its backoff.
        after: Duration,
    },
    /// It failed, and waits for its group or subtree to stop before it restarts (or it is
    /// not restarted at all).
    Failed {
        /// Why it failed.
        error: Option<String>,
    },
    /// It was cancelled, and is not (yet) started again.
    Stopped,
    /// It is Healthy or Done, but one of its children is not ready: the first in start
    /// order.
    Child {
        /// The child's DN.
        dn: String,
    },
    /// The tree is shutting down (or has finished).
    ShuttingDown,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Starting => f.write_str("starting: has not signalled Healthy"),
            NotReady::Restarting { after } => write!(f, "restarting in {}", Seconds(*after)),
            NotReady::Failed { error: Some(error) } => write!(f, "failed: {error}"),
            NotReady::Failed { error: None } => f.write_str("failed"),
            NotReady::Stopped => f.write_str("stopped"),
            NotReady::Child { dn } => write!(f, "waiting for {dn}"),
            NotReady::ShuttingDown => f.write_str("shutting down"),
        }
    }
}

/// A duration as systemd's status lines show one: seconds with a tenth.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}s", self.0.as_secs_f64())
    }
}

impl Health {
    /// Whether the tree is ready.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Every node, in DN order.
    pub fn nodes(&self) -> &[NodeHealth] {
        &self.nodes
    }

    /// The node at `dn`.
    pub fn get(&self, dn: &str) -> Option<&NodeHealth> {
        self.nodes
            .binary_search_by(|n| n.dn.as_str().cmp(dn))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The nodes whose readiness is the tree's, in DN order: Kubernetes' readiness checks.
    pub fn checks(&self) -> impl Iterator<Item = &NodeHealth> {
        self.nodes.iter().filter(|n| n.counted)
    }

    /// A one-line summary, as systemd's `STATUS=` shows it: how many of the nodes that
    /// gate the tree's readiness pass (are Healthy or Done themselves), and the first in
    /// DN order that does not, with why — e.g. `12/14 ready; root.net.dhcp restarting in
    /// 3.2s`. While shutting down: `stopping`.
    pub fn summary(&self) -> String {
        let mut summary = Summary::default();
        for node in self.checks() {
            let why = node.not_ready.as_ref().filter(|_| !node.passes);
            summary.count(&node.dn, why.cloned());
        }
        summary.stopping = matches!(self.nodes.first(), Some(root) if root.not_ready == Some(NotReady::ShuttingDown));
        summary.to_string()
    }
}

/// The one-line summary of [`Health::summary`], gathered from a snapshot or from the tree.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    checks: usize,
    passing: usize,
    /// The first node in DN order that does not pass, with why, and how many others do not.
    first: Option<(String, NotReady)>,
    others: usize,
    pub(crate) stopping: bool,
}

impl Summary {
    /// Counts a node that gates the tree's readiness: `why` it does not pass, if it does
    /// not. Nodes may come in any order.
    pub(crate) fn count(&mut self, dn: &str, why: Option<NotReady>) {
        self.checks += 1;
        let Some(why) = why else {
            self.passing += 1;
            return;
        };
        match &self.first {
            Some((first, _)) if first.as_str() < dn => self.others += 1,
            Some(_) => {
                self.others += 1;
                self.first = Some((dn.to_owned(), why));
            }
            None => self.first = Some((dn.to_owned(), why)),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stopping {
            return f.write_str("stopping");
        }
        write!(f, "{}/{} ready", self.passing, self.checks)?;
        if let Some((dn, why)) = &self.first {
            match why {
                NotReady::Starting => write!(f, "; {dn} starting")?,
                why => write!(f, "; {dn} {why}")?,
            }
            if self.others > 0 {
                write!(f, " (and {} more)", self.others)?;
            }
        }
        Ok(())
    }
}

/// Width of the DN column.
const DN_WIDTH: usize = 28;

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.ready { "ready" } else { "not ready" };
        writeln!(f, "{state}: {}", self.summary())?;
        for node in &self.nodes {
            write!(f, "{:<DN_WIDTH$} ", node.dn)?;
            match &node.not_ready {
                None => write!(f, "ready")?,
                Some(why) => write!(f, "not ready: {why}")?,
            }
            if !node.counted {
                write!(f, " (does not gate readiness)")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
