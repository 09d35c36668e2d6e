//! Nodes, their children, and the index of children by name.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::time::Instant;

use crate::NodeState;
use crate::backoff::BackoffState;
use crate::cancel::Cancel;
use crate::error::{NameUse, RunError, panic_message_dropped};
use crate::hash::{FastSet, hash_name};
use crate::metrics::Metrics;
use crate::name::is_valid_name;
use crate::policy::{Policy, Stop, nanos};
use crate::runnable::DynRunnable;
use hashbrown::HashTable;
use smallvec::SmallVec;

use super::dynamic::DynamicGroup;
use super::group::Groups;
use super::{Effects, Key, NodeId, Note, Start, Told, Tree};

/// One node. A large tree has one per runnable, so it is kept small: what only parents
/// need is boxed apart ([`Children`]), and the policy is shared by the group.
pub(super) struct Node {
    pub(super) dn: Arc<str>,
    pub(super) runnable: Arc<dyn DynRunnable>,
    /// Its restart kind, shutdown and backoff.
    pub(super) policy: Arc<Policy>,
    /// When the node entered its state: nanoseconds since the tree's `epoch`.
    pub(super) since: u64,
    /// When its current (or last) incarnation started, on the same clock.
    pub(super) started: u64,
    /// Why it last failed.
    pub(super) last_error: Option<Arc<str>>,
    pub(super) incarnation: u64,
    /// The current incarnation's cancellation (the last one's, once it has ended).
    pub(super) cancel: Arc<Cancel>,
    pub(super) children: Option<Box<Children>>,
    pub(super) backoff: BackoffState,
    pub(super) parent: Option<NodeId>,
    /// Index of this node's group among its parent's groups.
    pub(super) group: usize,
    pub(super) running_below: u32,
    /// The nodes at or below it that keep it from being ready: itself unless it is
    /// Healthy or Done, and what its children that gate readiness count (DESIGN §16). The
    /// node is ready when it is 0; kept on every change (see `health`), as `running_below` is.
    pub(super) unready: u32,
    /// How often the node has been started again.
    pub(super) restarts: u32,
    /// The hash of the node's name, for its parent's index, which rehashes without
    /// reading every child's DN.
    pub(super) name_hash: u32,
    pub(super) state: NodeState,
    /// Failed by an illegal signal while still running: ends `Dead` whatever it returns.
    pub(super) failed: bool,
    /// When the tree cancelled this incarnation (its own failure or a group sibling's), on
    /// the tree's clock; 0 if it did not. A node whose parent is live and that was cancelled
    /// otherwise cancelled itself, and is restarted after its backoff, like a failed one
    /// (DESIGN §14). The time tells a runnable that returned late, having blocked its
    /// thread through its grace period.
    pub(super) cancelled_at: u64,
    pub(super) running: bool,
    pub(super) pending: Pending,
    /// A member of an ordered group: it does not inherit its parent's cancellation; the
    /// tree cancels it in turn.
    pub(super) ordered: bool,
    /// A child of a dynamic group: `group` is then its place among its parent's children,
    /// and it leaves the tree once it has finished.
    pub(super) dynamic: bool,
    /// Something may have been logged at its DN or below (set on its ancestors too): when
    /// it leaves the tree, its log is looked for. Most churned children never log.
    pub(super) logged: bool,
    /// Whether it is being aborted with an ancestor (or by its own policy), and how.
    pub(super) kill: Kill,
    /// An operator stopped it: it is not started again, by any rule, until released.
    pub(super) held: bool,
}

/// Where a node is in a restart the tree has decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    /// No restart decided.
    None,
    /// Part of its group's decided restart; waiting for its subtree to return.
    Group,
    /// Part of its group's decided restart, returned; waiting for the other members.
    GroupReady,
    /// Waiting out its backoff.
    Backoff,
    /// An operator restarts it: it starts again as soon as its subtree has returned, at
    /// once and counted in no intensity.
    Operator,
}

impl Pending {
    /// The restart is decided and the incarnation is over: its names are forgotten, and its
    /// context may no longer act.
    pub(super) fn decided(self) -> bool {
        matches!(self, Pending::GroupReady | Pending::Backoff)
    }
}

/// Why a node is being dropped from outside its own policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kill {
    None,
    /// A `Brutal` node (itself, or an ancestor) was dropped: the subtree ends `Canceled`.
    Brutal,
    /// A node's shutdown timeout ran out (itself, or an ancestor's): the subtree ends `Dead`.
    Timeout,
}

/// What a node that has started children or made sub-loggers holds of them: every name
/// taken below this incarnation.
#[derive(Default)]
pub(super) struct Children {
    /// Every child, group by group, in start order.
    pub(super) ids: SmallVec<[NodeId; 2]>,
    /// Each group: where it ends in `ids`, and its settings and restart state if any.
    pub(super) groups: Groups,
    /// The children by name, once there are more than [`INDEXED_FROM`]: their slots, hashed
    /// by the name hash their nodes keep (so each name is stored once, in the child's DN).
    /// Fewer are found by going through `ids`, which costs less than keeping a table.
    pub(super) by_name: HashTable<NodeId>,
    /// Names taken by sub-loggers.
    pub(super) sub_loggers: FastSet<Box<str>>,
    /// For a dynamic group's node: the group's settings and restart window. Its children
    /// are then all dynamic, and it has no groups.
    pub(super) dynamic: Option<Box<DynamicGroup>>,
}

impl Children {
    pub(super) fn group(&self, group: usize) -> &[NodeId] {
        &self.ids[self.groups.range(group)]
    }
}

/// How many children a node may have before they are indexed by name.
pub(super) const INDEXED_FROM: usize = 8;

/// Groups larger than this are checked for repeated names with a set rather than by
/// comparing every pair.
pub(super) const PAIRWISE_UP_TO: usize = 16;

/// A child's name: the last label of its DN.
pub(super) fn name_of(dn: &str) -> &str {
    dn.rsplit_once('.').map_or(dn, |(_, name)| name)
}

/// A name's hash as its node keeps it: half of [`hash_name`]'s, which mixes every bit.
pub(super) fn name_hash(name: &str) -> u32 {
    hash_name(name) as u32
}

/// A kept name hash as the children's index uses it: the table picks a bucket by the low
/// bits and a tag by the top ones, so both halves carry it.
pub(super) fn index_hash(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

/// The tree's clock. Nodes keep when they entered their state as nanoseconds since the
/// tree was made: half the size of an `Instant`, and good for 584 years.
#[derive(Clone, Copy)]
pub(super) struct Epoch(pub(super) Instant);

impl Epoch {
    pub(super) fn now(self) -> u64 {
        nanos(self.0.elapsed())
    }
}

pub(super) fn name_taken(parent: &Node, name: &str, by: NameUse, wanted: NameUse) -> RunError {
    RunError::NameTaken {
        parent: parent.dn.to_string(),
        name: name.to_owned(),
        by,
        wanted,
    }
}

impl Tree {
    pub(super) fn node(&self, id: NodeId) -> &Node {
        match &self.slots[id] {
            Some(node) => node,
            None => unreachable!("node {id} is referenced but its slot is empty"),
        }
    }

    pub(super) fn node_mut(&mut self, id: NodeId) -> &mut Node {
        match &mut self.slots[id] {
            Some(node) => node,
            None => unreachable!("node {id} is referenced but its slot is empty"),
        }
    }

    /// What uses `name` below `parent`, if anything.
    pub(super) fn name_use(&self, parent: &Node, name: &str) -> Option<NameUse> {
        let children = parent.children.as_deref()?;
        if children.sub_loggers.contains(name) {
            return Some(NameUse::SubLogger);
        }
        self.child_named(children, name).map(|_| NameUse::Child)
    }

    pub(super) fn child_named(&self, children: &Children, name: &str) -> Option<NodeId> {
        let hash = name_hash(name);
        let named = |&id: &NodeId| {
            let child = self.node(id);
            child.name_hash == hash && name_of(&child.dn) == name
        };
        if children.by_name.is_empty() {
            children.ids.iter().copied().find(named)
        } else {
            children.by_name.find(index_hash(hash), named).copied()
        }
    }

    /// Adds `id` (whose node keeps its name hash) to `children`, indexing them all by name
    /// when there come to be more than [`INDEXED_FROM`]. Once made, the index is kept up
    /// to date whatever the number of children (a dynamic group's shrink and grow).
    pub(super) fn add_child(&self, children: &mut Children, id: NodeId) {
        children.ids.push(id);
        let rehash = |&id: &NodeId| index_hash(self.node(id).name_hash);
        let n = children.ids.len();
        let new = if !children.by_name.is_empty() {
            &children.ids[n - 1..]
        } else if n > INDEXED_FROM {
            &children.ids[..]
        } else {
            return;
        };
        for &child in new {
            let hash = index_hash(self.node(child).name_hash);
            children.by_name.insert_unique(hash, child, rehash);
        }
    }

    /// Whether `name` may be used below `parent` for `wanted`: it follows the rule, and no
    /// child or sub-logger has it — except that a sub-logger may be asked for again.
    pub(super) fn check_name(
        &self,
        parent: &Node,
        name: &str,
        wanted: NameUse,
    ) -> Result<(), RunError> {
        if !is_valid_name(name) {
            return Err(RunError::InvalidName {
                parent: parent.dn.to_string(),
                name: name.to_owned(),
                wanted,
            });
        }
        match (self.name_use(parent, name), wanted) {
            (None, _) | (Some(NameUse::SubLogger), NameUse::SubLogger) => Ok(()),
            (Some(by), _) => Err(name_taken(parent, name, by, wanted)),
        }
    }

    /// The node of `key`, if that incarnation is still the current one.
    pub(super) fn current(&self, key: Key) -> Option<&Node> {
        self.slots
            .get(key.id)?
            .as_ref()
            .filter(|n| n.incarnation == key.incarnation)
    }

    /// The node of `key` if that incarnation may still act on the tree: it is the current
    /// one and its restart has not been decided. A node waiting out its backoff has had its
    /// names forgotten already, and what its old context reserved would outlive it into the
    /// next incarnation.
    pub(super) fn acting(&self, key: Key) -> Option<&Node> {
        self.current(key).filter(|n| !n.pending.decided())
    }

    /// Notes that something was logged at `id`'s DN, on it and its ancestors.
    pub(super) fn mark_logged(&mut self, id: NodeId) {
        let mut cur = Some(id);
        while let Some(c) = cur {
            let node = self.node_mut(c);
            if node.logged {
                return;
            }
            node.logged = true;
            cur = node.parent;
        }
    }

    pub(super) fn set_state(&mut self, id: NodeId, state: NodeState) {
        let now = self.epoch.now();
        self.set_state_at(id, state, now);
    }

    /// [`set_state`](Tree::set_state) with the time already read.
    pub(super) fn set_state_at(&mut self, id: NodeId, state: NodeState, now: u64) {
        let node = self.node_mut(id);
        let was = node.state;
        if was == state {
            return;
        }
        node.state = state;
        node.since = now;
        if !node.readiness_stays(was) {
            let running = node.running;
            self.readiness_moved(id, was, running);
        }
        self.notify(id, state);
        self.state_event(id, state);
    }

    /// Tells every metrics sink. A sink is user code: if it panics, the panic is kept to be
    /// logged after the lock is released, and the tree carries on, consistent, rather than
    /// unwinding out from under the lock.
    pub(super) fn notify(&mut self, id: NodeId, state: NodeState) {
        self.health_changed();
        let Some(node) = self.slots[id].as_ref() else {
            unreachable!("node {id} is referenced but its slot is empty")
        };
        for m in &self.metrics {
            let told = catch_unwind(AssertUnwindSafe(|| m.notify_node_state(&node.dn, state)));
            if let Err(payload) = told {
                self.sink_panics.push(Note::SinkPanicked {
                    dn: node.dn.clone(),
                    told: Told::State(state),
                    message: panic_message_dropped(payload),
                });
            }
        }
    }

    /// Hands out, with `effects`, what must be logged of the sinks' panics.
    pub(super) fn finish(&mut self, mut effects: Effects) -> Effects {
        if !self.sink_panics.is_empty() {
            effects.notes.extend(self.sink_panics.drain(..));
        }
        effects.health = self.take_health_changed();
        effects
    }

    /// Adds a node below `parent`, in its group `group`, with a cancellation of its own if
    /// it is an ordered member, and else one that inherits its parent's (the supervisor's,
    /// for the root).
    /// The caller, which has the name at hand, sets its hash (`name_hash`) before indexing it.
    pub(super) fn insert(
        &mut self,
        dn: Arc<str>,
        parent: Option<NodeId>,
        group: usize,
        runnable: Arc<dyn DynRunnable>,
        policy: Arc<Policy>,
        ordered: bool,
    ) -> NodeId {
        let cancel = self.cancel_below(parent, ordered);
        let node = Node {
            dn,
            runnable,
            backoff: BackoffState::new(&policy.backoff),
            policy,
            since: self.epoch.now(),
            started: 0,
            last_error: None,
            incarnation: 0,
            cancel,
            children: None,
            parent,
            group,
            running_below: 0,
            // New: not ready, and nothing below it yet.
            unready: 1,
            restarts: 0,
            name_hash: 0,
            state: NodeState::New,
            failed: false,
            cancelled_at: 0,
            running: false,
            pending: Pending::None,
            ordered,
            dynamic: false,
            logged: false,
            kill: Kill::None,
            held: false,
        };
        let gates = node.gates();
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(node);
                id
            }
            None => {
                self.slots.push(Some(node));
                self.slots.len() - 1
            }
        };
        if gates {
            self.propagate_unready(parent, 1);
        }
        self.notify(id, NodeState::New);
        id
    }

    /// Marks whether `id`'s task is alive, keeping `running_below` of it and its ancestors.
    pub(super) fn set_running(&mut self, id: NodeId, running: bool) {
        let node = self.node_mut(id);
        let was_running = std::mem::replace(&mut node.running, running);
        // Whether an ended temporary child gates readiness depends on it.
        if node.policy.restart == crate::Restart::Temporary {
            let state = node.state;
            self.readiness_moved(id, state, was_running);
        }
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = self.node_mut(c);
            if running {
                n.running_below += 1;
            } else {
                n.running_below -= 1;
            }
            cur = n.parent;
        }
    }

    /// Gives `id` a new incarnation, marks it running and describes the task to spawn.
    pub(super) fn launch(&mut self, id: NodeId) -> Start {
        self.next_incarnation += 1;
        let incarnation = self.next_incarnation;
        self.set_running(id, true);
        self.activity.enter();
        let register = self.register_all;
        let watchdog = self.watchdog_of(id);
        let node = self.node_mut(id);
        node.incarnation = incarnation;
        // It is New since it was made or started again: that is when this one starts.
        node.started = node.since;
        self.event(id, crate::EventKind::Started);
        let node = self.node(id);
        Start {
            key: Key { id, incarnation },
            dn: node.dn.clone(),
            cancel: node.cancel.clone(),
            runnable: node.runnable.clone(),
            stop: Stop::encode(node.policy.shutdown, register),
            watchdog,
        }
    }
}

/// The error of a stale key. Its DN is the caller's to fill in ([`RunError::named`]): the
/// slot may hold another node by now.
pub(super) fn stale() -> RunError {
    RunError::Stale { dn: String::new() }
}
