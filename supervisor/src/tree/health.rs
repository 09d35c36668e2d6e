//! Readiness up the tree and the watchdogs of critical nodes (DESIGN §16), kept under the
//! tree's lock.
//!
//! Readiness is kept as counts, as `running_below` is: each node's `unready` counts the
//! nodes at or below it that keep it from being ready — itself unless it is Healthy or
//! Done, and what each child that gates readiness counts. Every change of a state, of a
//! temporary child's running, and every child added or forgotten moves the counts of the
//! ancestors that see it, in O(depth), and a node is ready exactly when its count is 0. So
//! the tree's readiness is one read of the root's, and whoever waits for it is told when it
//! may have changed without a walk of the tree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::NodeState;
use crate::health::{Health, NodeHealth, NotReady, Summary};
use crate::policy::{Restart, nanos};

use super::node::{Node, Pending};
use super::{Key, NodeId, Tree};

impl Node {
    /// Whether the node itself is ready: Healthy or Done.
    pub(super) fn passes(&self) -> bool {
        passing(self.state)
    }

    /// Whether its readiness is part of its parent's: unless its spec ignores readiness,
    /// or it is a temporary child that has ended, which nothing will start again.
    pub(super) fn gates(&self) -> bool {
        self.gates_as(self.state, self.running)
    }

    /// Whether it would gate its parent in `state`, `running` or not.
    fn gates_as(&self, state: NodeState, running: bool) -> bool {
        self.policy.gates_readiness
            && !(self.policy.restart == Restart::Temporary
                && !running
                && matches!(
                    state,
                    NodeState::Done | NodeState::Dead | NodeState::Canceled
                ))
    }

    /// Whether having left state `was` for its own leaves every readiness count as it is:
    /// it passes as it did, and it is not temporary (the only kind whose gating changes
    /// with its state). Most state changes: a crash loop's New to Dead and back.
    pub(super) fn readiness_stays(&self, was: NodeState) -> bool {
        self.passes() == passing(was) && self.policy.restart != Restart::Temporary
    }

    /// What it adds to its parent's count.
    pub(super) fn counted(&self) -> i64 {
        if self.gates() {
            i64::from(self.unready)
        } else {
            0
        }
    }
}

/// Whether a node in `state` is ready itself.
fn passing(state: NodeState) -> bool {
    matches!(state, NodeState::Healthy | NodeState::Done)
}

/// What the tree keeps for health beyond the counts.
#[derive(Default)]
pub(super) struct Watched {
    /// Someone waits for changes ([`Tree::watch_health`]): each change is then noted in
    /// `changed`, for the handle to tell once the lock is released.
    pub(super) on: bool,
    pub(super) changed: bool,
    /// When the restart of each node waiting out its backoff is due, on the tree's clock.
    pub(super) due: crate::hash::FastMap<NodeId, u64>,
    /// The watchdogs of critical nodes, by node: their current incarnation's, and whether
    /// the last one expired and the node has not been Healthy since.
    pub(super) critical: crate::hash::FastMap<NodeId, Critical>,
}

pub(super) struct Critical {
    dog: Arc<Watchdog>,
    tripped: bool,
}

/// One incarnation's watchdog (`Spec::watchdog`): when it was last fed, shared by its
/// context (which feeds it), its task (which fails the node once it starves) and, for a
/// critical node, the tree (which stops systemd's pings meanwhile).
#[derive(Debug)]
pub(crate) struct Watchdog {
    pub(crate) period: Duration,
    /// The tree's epoch: times are kept as nanoseconds since it.
    epoch: Instant,
    /// When it was last fed, plus one; 0 while it is not watching (before Healthy, after
    /// Done).
    fed: AtomicU64,
}

impl Watchdog {
    fn new(period: Duration, epoch: Instant) -> Watchdog {
        Watchdog {
            period,
            epoch,
            fed: AtomicU64::new(0),
        }
    }

    /// A heartbeat: fed now, if it is watching.
    pub(crate) fn feed(&self) {
        let now = nanos(self.epoch.elapsed()) + 1;
        // Only while watching: a heartbeat before Healthy must not start the watch.
        let _ = self
            .fed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |fed| {
                (fed != 0).then_some(now.max(fed))
            });
    }

    /// Starts watching: the runnable signalled Healthy.
    pub(crate) fn start(&self) {
        self.fed
            .store(nanos(self.epoch.elapsed()) + 1, Ordering::Release);
    }

    /// Stops watching: the runnable signalled Done.
    pub(crate) fn stop(&self) {
        self.fed.store(0, Ordering::Release);
    }

    /// When it starves unless fed again; `None` while it is not watching.
    pub(crate) fn due(&self) -> Option<Instant> {
        match self.fed.load(Ordering::Acquire) {
            0 => None,
            fed => Some(self.epoch + Duration::from_nanos(fed - 1) + self.period),
        }
    }
}

impl Tree {
    /// Moves `id`'s count and its ancestors' for what changed of the node: it was in state
    /// `was`, running or not as `was_running` says, and is as it is now. (The common state
    /// change, which moves no count, is passed by [`Node::readiness_stays`] before this is
    /// called; kept out of line, so that its callers on the restart path stay small.)
    #[inline(never)]
    pub(super) fn readiness_moved(&mut self, id: NodeId, was: NodeState, was_running: bool) {
        let node = self.node_mut(id);
        let before = if node.gates_as(was, was_running) {
            i64::from(node.unready)
        } else {
            0
        };
        match (passing(was), node.passes()) {
            (true, false) => node.unready += 1,
            (false, true) => node.unready -= 1,
            _ => {}
        }
        let (delta, parent) = (node.counted() - before, node.parent);
        self.propagate_unready(parent, delta);
    }

    /// Adds `delta` to the count of `from` and of each ancestor it reaches: up to the root,
    /// or to the first that does not gate its parent. (Whether a node gates does not depend
    /// on its count, so it passes on all of `delta` or none. A node being forgotten with
    /// its parent may have none left in the tree: the walk ends there.)
    pub(super) fn propagate_unready(&mut self, from: Option<NodeId>, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut cur = from;
        while let Some(node) = cur.and_then(|c| self.slots[c].as_mut()) {
            let unready = i64::from(node.unready) + delta;
            debug_assert!(unready >= 0, "{}: readiness count below zero", node.dn);
            node.unready = u32::try_from(unready).unwrap_or(0);
            if !node.gates() {
                return;
            }
            cur = node.parent;
        }
    }

    /// Counts `id` again from its own state and its children's counts: after its children
    /// were forgotten, or it starts anew.
    pub(super) fn recount(&mut self, id: NodeId) {
        let node = self.node(id);
        let mut unready = i64::from(!node.passes());
        if let Some(children) = &node.children {
            unready += children
                .ids
                .iter()
                .map(|&c| self.node(c).counted())
                .sum::<i64>();
        }
        let node = self.node_mut(id);
        let before = node.counted();
        node.unready = u32::try_from(unready).unwrap_or(0);
        let (delta, parent) = (node.counted() - before, node.parent);
        self.propagate_unready(parent, delta);
    }

    /// Notes a change someone waiting on health must hear of.
    pub(super) fn health_changed(&mut self) {
        if self.health.on {
            self.health.changed = true;
        }
    }

    /// From now on, every change is noted for the handle to tell (see
    /// [`take_health_changed`](Tree::take_health_changed)).
    pub(crate) fn watch_health(&mut self) {
        self.health.on = true;
    }

    /// Whether something changed since the last call, while watched.
    pub(crate) fn take_health_changed(&mut self) -> bool {
        std::mem::take(&mut self.health.changed)
    }

    /// Whether the tree is shutting down: cancelled (by its handle, its builder's token,
    /// or giving up), or finished — nothing runs and nothing will restart.
    pub(crate) fn shutting_down(&self) -> bool {
        self.cancelled_at != 0
            || self.top.is_marked()
            || self.top.token_cancelled()
            || self
                .slots
                .first()
                .and_then(Option::as_ref)
                .is_none_or(|root| root.running_below == 0 && self.backoffs == 0)
    }

    /// Whether the tree is ready: its root is, and it is not shutting down.
    pub(crate) fn is_ready(&self) -> bool {
        !self.shutting_down()
            && self
                .slots
                .first()
                .and_then(Option::as_ref)
                .is_some_and(|root| root.unready == 0)
    }

    /// A node restarts after a backoff of `delay`: when it is due, for the health snapshot.
    pub(super) fn restart_due(&mut self, id: NodeId, delay: Duration) {
        let due = self.epoch.now().saturating_add(nanos(delay));
        self.health.due.insert(id, due);
    }

    /// The node's backoff is over (or dropped).
    pub(super) fn restart_not_due(&mut self, id: NodeId) {
        if !self.health.due.is_empty() {
            self.health.due.remove(&id);
        }
    }

    /// The watchdog of a new incarnation of `id`, if its spec sets one; a critical node's
    /// is kept by the tree too.
    pub(super) fn watchdog_of(&mut self, id: NodeId) -> Option<Arc<Watchdog>> {
        let node = self.node(id);
        let period = node.policy.watchdog?;
        let dog = Arc::new(Watchdog::new(period, self.epoch.0));
        if node.policy.critical {
            let tripped = self.health.critical.get(&id).is_some_and(|c| c.tripped);
            let dog = dog.clone();
            self.health.critical.insert(id, Critical { dog, tripped });
        }
        Some(dog)
    }

    /// `key` signalled Healthy: a critical node Healthy again lets systemd's pings resume.
    pub(super) fn healthy_again(&mut self, key: Key) {
        if let Some(critical) = self.health.critical.get_mut(&key.id) {
            critical.tripped = false;
        }
    }

    /// `id` starved its watchdog: if it is critical, systemd's pings stop until it is
    /// Healthy again.
    pub(super) fn watchdog_tripped(&mut self, id: NodeId) {
        if let Some(critical) = self.health.critical.get_mut(&id) {
            critical.tripped = true;
        }
    }

    /// `id` left the tree.
    pub(super) fn health_forget(&mut self, id: NodeId) {
        self.restart_not_due(id);
        if !self.health.critical.is_empty() {
            self.health.critical.remove(&id);
        }
        self.health_changed();
    }

    /// The first critical node whose watchdog has expired — it starved it and has not been
    /// Healthy since, or it is watched and has not been fed for its period (it may be
    /// blocking its thread) — as its DN and why.
    pub(crate) fn expired_critical(&self) -> Option<(Arc<str>, Duration)> {
        let now = Instant::now();
        self.health
            .critical
            .iter()
            .filter_map(|(&id, c)| {
                let node = self.slots[id].as_ref()?;
                let starved = c.tripped || c.dog.due().is_some_and(|due| due <= now);
                starved.then_some((&node.dn, c.dog.period))
            })
            .min()
            .map(|(dn, period)| (dn.clone(), period))
    }

    /// Visits every node from the root, depth first, with whether it gates the tree's
    /// readiness (it and every ancestor gate their parents').
    fn walk(&self, mut visit: impl FnMut(NodeId, &Node, bool)) {
        let mut stack: Vec<(NodeId, bool)> = Vec::new();
        if self.slots.first().is_some_and(Option::is_some) {
            stack.push((0, true));
        }
        while let Some((id, counted)) = stack.pop() {
            let node = self.node(id);
            visit(id, node, counted);
            if let Some(children) = &node.children {
                for &c in children.ids.iter().rev() {
                    stack.push((c, counted && self.node(c).gates()));
                }
            }
        }
    }

    /// The one-line summary of [`Health::summary`], without a snapshot of every node:
    /// what systemd's `STATUS=` says on each change.
    pub(crate) fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        summary.stopping = self.shutting_down();
        if summary.stopping {
            return summary;
        }
        let now = self.epoch.now();
        self.walk(|id, node, counted| {
            if counted {
                let why = (!node.passes()).then(|| self.why_not_ready(id, now));
                summary.count(&node.dn, why);
            }
        });
        summary
    }

    /// Every node's readiness, and the tree's.
    pub(crate) fn health(&self) -> Health {
        let shutting_down = self.shutting_down();
        let now = self.epoch.now();
        let mut nodes: Vec<NodeHealth> = Vec::with_capacity(self.slots.len());
        self.walk(|id, node, counted| {
            let not_ready = if node.unready > 0 {
                Some(self.why_not_ready(id, now))
            } else {
                shutting_down.then_some(NotReady::ShuttingDown)
            };
            nodes.push(NodeHealth {
                dn: node.dn.to_string(),
                state: node.state,
                ready: not_ready.is_none(),
                // The root stands for the tree, whose readiness falls with shutdown.
                passes: node.passes() && !(shutting_down && id == 0),
                counted,
                not_ready,
            });
        });
        nodes.sort_unstable_by(|a, b| a.dn.cmp(&b.dn));
        Health {
            ready: self.is_ready(),
            nodes,
        }
    }

    /// Why a node whose count is not 0 is not ready: its own state, or the first child
    /// (in start order) that keeps it from being ready.
    fn why_not_ready(&self, id: NodeId, now: u64) -> NotReady {
        let node = self.node(id);
        match node.state {
            NodeState::Healthy | NodeState::Done => {
                let child = node.children.as_ref().and_then(|children| {
                    children
                        .ids
                        .iter()
                        .map(|&c| self.node(c))
                        .find(|c| c.gates() && c.unready > 0)
                });
                match child {
                    Some(child) => NotReady::Child {
                        dn: child.dn.to_string(),
                    },
                    // Counts that name no child are a bug of the supervisor's: caught by
                    // the tests, and shown, not panicked on, under the lock.
                    None => {
                        debug_assert!(false, "{}: counted unready, no child is", node.dn);
                        NotReady::ShuttingDown
                    }
                }
            }
            NodeState::New => NotReady::Starting,
            NodeState::Dead | NodeState::Canceled if node.pending == Pending::Backoff => {
                let due = self.health.due.get(&id).copied();
                NotReady::Restarting {
                    after: Duration::from_nanos(due.unwrap_or(now).saturating_sub(now)),
                }
            }
            NodeState::Dead => NotReady::Failed {
                error: node.last_error.as_deref().map(str::to_owned),
            },
            NodeState::Canceled => NotReady::Stopped,
        }
    }
}
