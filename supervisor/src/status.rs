//! A snapshot of the tree for people: what runs, since when, how often it failed, and why.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::NodeState;
use crate::policy::{Intensity, Restart, Strategy};

/// A snapshot of every node, from [`Supervisor::status`](crate::Supervisor::status).
///
/// `Display` prints it as an indented tree, one node a line, in the spirit of
/// `systemctl status`: name, state, time in that state, restarts, a kind other than
/// permanent, the groups it started that have settings of their own (strategy, ordered
/// shutdown, intensity with the restarts in its current window), and the last error,
/// shortened.
///
/// ```text
/// root                    DONE       12.3s
/// ├── echo                HEALTHY    12.3s
/// └── workers             DONE       12.3s
///     ├── flaky           HEALTHY     0.4s  3 restarts  last error: returned error: lost…
///     └── ticker          HEALTHY    12.3s
/// ```
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use supervisor::{Context, NodeState, Signal, Supervisor};
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.settled().await;
/// let status = sup.status();
/// assert_eq!(status.get("root").unwrap().state, NodeState::Healthy);
/// assert!(status.to_string().starts_with("root"));
/// # sup.cancel(); sup.wait().await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TreeStatus {
    pub(crate) nodes: Vec<NodeStatus>,
    /// The root's restarts in the builder's intensity window, if there is one.
    pub(crate) root_window: Option<usize>,
}

/// One node of a [`TreeStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's DN.
    pub dn: String,
    /// Its state.
    pub state: NodeState,
    /// How long it has been in that state.
    pub in_state: Duration,
    /// How often it has been started again (since its parent last started it).
    pub restarts: u32,
    /// Why it last failed, if it ever did.
    pub last_error: Option<String>,
    /// Whether its runnable is running now.
    pub running: bool,
    /// Its restart kind.
    pub kind: Restart,
    /// The groups of children it started, in start order.
    pub groups: Vec<GroupStatus>,
    /// For a dynamic group's node, the group's settings and how full it is.
    pub dynamic: Option<DynamicStatus>,
}

/// A dynamic group, in its node's [`NodeStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynamicStatus {
    /// The children it holds: running, or waiting out their backoff.
    pub children: usize,
    /// Its limit, if it has one.
    pub max_children: Option<usize>,
    /// Its children's restart kind.
    pub kind: Restart,
    /// Its intensity (its own, or the builder's), if any.
    pub intensity: Option<Intensity>,
    /// The restarts of its children within the current window of its intensity: `None`
    /// without an intensity.
    pub restarts_in_window: Option<usize>,
}

/// One group of children, in its parent's [`NodeStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The members' names, in add order.
    pub members: Vec<String>,
    /// Which members restart when one fails.
    pub strategy: Strategy,
    /// Whether the members stop one at a time.
    pub ordered_shutdown: bool,
    /// The group's intensity (its own, or the builder's), if any.
    pub intensity: Option<Intensity>,
    /// The restarts decided for the group within the current window of its intensity:
    /// `None` without an intensity.
    pub restarts_in_window: Option<usize>,
}

impl TreeStatus {
    /// Every node, in DN order.
    pub fn nodes(&self) -> &[NodeStatus] {
        &self.nodes
    }

    /// How many times the root was restarted within the current window of the builder's
    /// [`intensity`](crate::Builder::intensity): `None` without one.
    pub fn root_restarts_in_window(&self) -> Option<usize> {
        self.root_window
    }

    /// The node at `dn`.
    pub fn get(&self, dn: &str) -> Option<&NodeStatus> {
        self.nodes
            .binary_search_by(|n| n.dn.as_str().cmp(dn))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// Width of the name column, tree lines included.
const NAME_WIDTH: usize = 28;
/// Longest last error shown, in characters.
const ERROR_WIDTH: usize = 60;

impl fmt::Display for TreeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut children: BTreeMap<&str, Vec<&NodeStatus>> = BTreeMap::new();
        let mut roots = Vec::new();
        for node in &self.nodes {
            match node.dn.rsplit_once('.') {
                Some((parent, _)) if self.get(parent).is_some() => {
                    children.entry(parent).or_default().push(node);
                }
                _ => roots.push(node),
            }
        }
        for root in roots {
            line(f, root, &root.dn, "")?;
            tree(f, root, &children, "")?;
        }
        Ok(())
    }
}

fn tree(
    f: &mut fmt::Formatter<'_>,
    node: &NodeStatus,
    children: &BTreeMap<&str, Vec<&NodeStatus>>,
    indent: &str,
) -> fmt::Result {
    let Some(kids) = children.get(node.dn.as_str()) else {
        return Ok(());
    };
    for (i, child) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let name = child.dn.rsplit('.').next().unwrap_or(&child.dn);
        line(f, child, name, &format!("{indent}{branch}"))?;
        tree(f, child, children, &format!("{indent}{next}"))?;
    }
    Ok(())
}

fn line(f: &mut fmt::Formatter<'_>, node: &NodeStatus, name: &str, prefix: &str) -> fmt::Result {
    let label = format!("{prefix}{name}");
    let pad = NAME_WIDTH.saturating_sub(label.chars().count());
    write!(
        f,
        "{label}{:pad$} {:<9}{:>8}",
        "",
        node.state.name(),
        human(node.in_state)
    )?;
    match node.restarts {
        0 => {}
        1 => write!(f, "  1 restart")?,
        n => write!(f, "  {n} restarts")?,
    }
    if node.kind != Restart::Permanent {
        write!(f, "  {}", node.kind)?;
    }
    for group in &node.groups {
        let described = group.strategy != Strategy::OneForAll
            || group.ordered_shutdown
            || group.intensity.is_some();
        if !described {
            continue;
        }
        write!(f, "  [{}: {}", group.members.join(" "), group.strategy)?;
        if group.ordered_shutdown {
            f.write_str(", ordered")?;
        }
        if let (Some(intensity), Some(n)) = (group.intensity, group.restarts_in_window) {
            write!(f, ", {n} of {intensity} restarts")?;
        }
        f.write_str("]")?;
    }
    if let Some(group) = &node.dynamic {
        write!(f, "  [dynamic: {} children", group.children)?;
        if let Some(max) = group.max_children {
            write!(f, " of {max}")?;
        }
        write!(f, ", {}", group.kind)?;
        if let (Some(intensity), Some(n)) = (group.intensity, group.restarts_in_window) {
            write!(f, ", {n} of {intensity} restarts")?;
        }
        f.write_str("]")?;
    }
    if let Some(error) = &node.last_error {
        write!(f, "  last error: {}", shorten(error))?;
    }
    writeln!(f)
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

fn shorten(error: &str) -> String {
    let one_line = error.lines().next().unwrap_or_default();
    match one_line.char_indices().nth(ERROR_WIDTH) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None if one_line.len() < error.len() => format!("{one_line}…"),
        None => one_line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dn: &str, state: NodeState, secs: u64) -> NodeStatus {
        NodeStatus {
            dn: dn.into(),
            state,
            in_state: Duration::from_secs(secs),
            restarts: 0,
            last_error: None,
            running: true,
            kind: Restart::Permanent,
            groups: Vec::new(),
            dynamic: None,
        }
    }

    #[test]
    fn renders_an_indented_tree() {
        let mut flaky = node("root.w.flaky", NodeState::Healthy, 0);
        flaky.restarts = 3;
        flaky.last_error = Some(format!("returned error: {}", "x".repeat(100)));
        let status = TreeStatus {
            nodes: vec![
                node("root", NodeState::Done, 75),
                node("root.echo", NodeState::Healthy, 3700),
                node("root.w", NodeState::Done, 90_000),
                flaky,
                node("root.w.ticker", NodeState::Healthy, 5),
            ],
            root_window: None,
        };
        let text = status.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "root                         DONE        1m15s");
        assert_eq!(lines[1], "├── echo                     HEALTHY     1h01m");
        assert_eq!(lines[2], "└── w                        DONE        1d01h");
        assert!(lines[3].starts_with("    ├── flaky                HEALTHY      0.0s  3 restarts  last error: returned error: xxx"));
        assert!(lines[3].ends_with('…'));
        assert_eq!(lines[4], "    └── ticker               HEALTHY      5.0s");
    }

    #[test]
    fn shows_kinds_and_groups_with_settings_of_their_own() {
        let mut root = node("root", NodeState::Healthy, 1);
        root.groups = vec![
            GroupStatus {
                members: vec!["a".into()],
                strategy: Strategy::OneForAll,
                ordered_shutdown: false,
                intensity: None,
                restarts_in_window: None,
            },
            GroupStatus {
                members: vec!["conn".into(), "session".into()],
                strategy: Strategy::RestForOne,
                ordered_shutdown: true,
                intensity: Some(Intensity::new(3, Duration::from_secs(5)).unwrap()),
                restarts_in_window: Some(1),
            },
        ];
        let mut session = node("root.session", NodeState::Done, 1);
        session.kind = Restart::Transient;
        let status = TreeStatus {
            nodes: vec![root, node("root.conn", NodeState::Healthy, 1), session],
            root_window: None,
        };
        let text = status.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("[conn session: rest_for_one, ordered, 1 of 3 in 5s restarts]"),
            "{text}"
        );
        assert!(lines[2].ends_with("DONE         1.0s  transient"), "{text}");
    }
}
