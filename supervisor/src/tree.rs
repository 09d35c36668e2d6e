//! The supervision tree: every node's state, and the rules that move it (DESIGN §3–4).
//!
//! The tree is plain data behind one mutex in [`Shared`](crate::shared::Shared); every method
//! here runs under that lock and never awaits, blocks, or calls user code other than
//! [`Metrics::notify_node_state`] (whose panics are caught). Nothing a user gave is formatted,
//! inspected or dropped here: a returned error reaches the tree as text, and the runnables of
//! forgotten nodes leave it in the [`Effects`]. Work that must happen outside the lock
//! (spawning tasks, arming backoff timers, logging, dropping user values) is returned as
//! [`Effects`].
//!
//! # Invariants
//!
//! - A node's `incarnation` is unique across the tree's life; a [`Context`](crate::Context)
//!   carries the incarnation it was made for and is stale once the node's differs (or the
//!   node is gone).
//! - `running` is true exactly while the incarnation's task is alive. `running_below` counts
//!   the running nodes of the subtree, itself included, so "the subtree is ready" (every
//!   node in it has returned) is `running_below == 0`, in O(1).
//! - Tokens cascade: a node's token is a child of its parent's (the root's, of the
//!   supervisor's), so a cancelled node has only cancelled descendants.
//! - A node to restart is the topmost cancelled node on the path from the root to a node
//!   that just exited: its parent is live by construction, and restarting anything below it
//!   would be undone by its own restart. Restart is decided on events (an exit, a sibling's
//!   cancellation, a backoff timer), never by polling.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Busy};
use crate::backoff::{Backoff, BackoffState, Rng};
use crate::error::{Failure, NameUse, ReturnedError, RunError, panic_message_dropped};
use crate::hash::{FastSet, hash_name};
use crate::metrics::Metrics;
use crate::name::is_valid_name;
use crate::runnable::DynRunnable;
use crate::status::{NodeStatus, TreeStatus};
use crate::{NodeState, Signal};
use hashbrown::HashTable;
use smallvec::SmallVec;

/// Index of a node's slot. Slots are reused; incarnations tell their occupants apart.
pub(crate) type NodeId = usize;

/// An incarnation of a node: the identity a context carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u64,
}

/// One node. A large tree has one per runnable, so it is kept small: what only parents
/// need is boxed apart ([`Children`]), and the backoff policy is shared by the group.
struct Node {
    dn: Arc<str>,
    runnable: Arc<dyn DynRunnable>,
    /// When the node entered its state: nanoseconds since the tree's `epoch`.
    since: u64,
    /// Why it last failed.
    last_error: Option<Arc<str>>,
    incarnation: u64,
    token: CancellationToken,
    children: Option<Box<Children>>,
    backoff: BackoffState,
    parent: Option<NodeId>,
    /// Index of this node's group among its parent's groups.
    group: usize,
    running_below: usize,
    /// How often the node has been started again.
    restarts: u32,
    /// The hash of the node's name, for its parent's index, which rehashes without
    /// reading every child's DN.
    name_hash: u32,
    state: NodeState,
    /// Failed by an illegal signal while still running: ends `Dead` whatever it returns.
    failed: bool,
    /// When the tree cancelled this incarnation (its own failure or a group sibling's), on
    /// the tree's clock; 0 if it did not. A node whose parent is live and that was cancelled
    /// otherwise cancelled itself, and is restarted after its backoff, like a failed one
    /// (DESIGN §14). The time tells a runnable that returned late, having blocked its
    /// thread through its grace period.
    cancelled_at: u64,
    running: bool,
    restart_pending: bool,
}

/// What a node that has started children or made sub-loggers holds of them: every name
/// taken below this incarnation.
#[derive(Default)]
struct Children {
    /// Every child, group by group, in start order.
    ids: SmallVec<[NodeId; 2]>,
    /// Where each group ends in `ids`.
    group_ends: SmallVec<[usize; 1]>,
    /// The children by name, once there are more than [`INDEXED_FROM`]: their slots, hashed
    /// by the name hash their nodes keep (so each name is stored once, in the child's DN).
    /// Fewer are found by going through `ids`, which costs less than keeping a table.
    by_name: HashTable<NodeId>,
    /// Names taken by sub-loggers.
    sub_loggers: FastSet<Box<str>>,
}

impl Children {
    fn group(&self, group: usize) -> &[NodeId] {
        let start = group.checked_sub(1).map_or(0, |g| self.group_ends[g]);
        &self.ids[start..self.group_ends[group]]
    }
}

/// How many children a node may have before they are indexed by name.
const INDEXED_FROM: usize = 8;

/// Groups larger than this are checked for repeated names with a set rather than by
/// comparing every pair.
const PAIRWISE_UP_TO: usize = 16;

/// A child's name: the last label of its DN.
fn name_of(dn: &str) -> &str {
    dn.rsplit_once('.').map_or(dn, |(_, name)| name)
}

/// A name's hash as its node keeps it: half of [`hash_name`]'s, which mixes every bit.
fn name_hash(name: &str) -> u32 {
    hash_name(name) as u32
}

/// A kept name hash as the children's index uses it: the table picks a bucket by the low
/// bits and a tag by the top ones, so both halves carry it.
fn index_hash(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

/// The tree's clock. Nodes keep when they entered their state as nanoseconds since the
/// tree was made: half the size of an `Instant`, and good for 584 years.
#[derive(Clone, Copy)]
struct Epoch(Instant);

impl Epoch {
    fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

fn name_taken(parent: &Node, name: &str, by: NameUse, wanted: NameUse) -> RunError {
    RunError::NameTaken {
        parent: parent.dn.to_string(),
        name: name.to_owned(),
        by,
        wanted,
    }
}

/// A task to spawn for a node incarnation that has just been (re)started. Its first wake is
/// already counted as work, so the supervisor cannot look settled before it runs.
pub(crate) struct Start {
    pub(crate) key: Key,
    pub(crate) dn: Arc<str>,
    pub(crate) token: CancellationToken,
    pub(crate) runnable: Arc<dyn DynRunnable>,
}

/// A restart waiting for its backoff delay; dropped if `parent` is cancelled first.
pub(crate) struct Timer {
    pub(crate) key: Key,
    pub(crate) delay: Duration,
    pub(crate) parent: CancellationToken,
    pub(crate) busy: Busy,
}

/// Something the supervisor logs about a node.
#[derive(Debug)]
pub(crate) enum Note {
    /// `reason` is the failure as text, made once (it is also the node's last error).
    Failed {
        dn: Arc<str>,
        reason: Arc<str>,
    },
    Restarting {
        dn: Arc<str>,
        delay: Duration,
    },
    RestartDropped {
        dn: Arc<str>,
    },
    /// A metrics sink panicked when told of a state change.
    SinkPanicked {
        dn: Arc<str>,
        state: NodeState,
        message: String,
    },
}

/// The tasks of a new group: as many as its members, most often one or two.
pub(crate) type Starts = SmallVec<[Start; 2]>;

/// What must happen, outside the lock, after a change to the tree. One event usually
/// brings a note or two and a start, which stay inline; timers are rarer.
#[derive(Default)]
#[must_use]
pub(crate) struct Effects {
    pub(crate) starts: SmallVec<[Start; 1]>,
    pub(crate) timers: Vec<Timer>,
    pub(crate) notes: SmallVec<[Note; 2]>,
    /// The runnables of forgotten nodes, by DN, to be dropped outside the lock: a runnable's
    /// captured state is user code, and its `Drop` may panic.
    pub(crate) forgotten: Vec<(Arc<str>, Arc<dyn DynRunnable>)>,
}

/// How a node's task ended, with nothing of the user's left in it: see [`ReturnedError`].
pub(crate) enum Outcome {
    Returned(Result<(), ReturnedError>),
    Panicked(String),
    Aborted(Duration),
    Overran(Duration),
    DropPanicked(String),
}

/// What became of a signal.
pub(crate) enum Signalled {
    Accepted,
    /// Effects to apply: the signal was illegal (the node is now `Dead`), or a metrics sink
    /// panicked when told of it. (Boxed: rare, and large.)
    WithEffects(Box<Effects>),
    /// The context's incarnation has ended; nothing changed.
    Stale,
}

pub(crate) struct Tree {
    slots: Vec<Option<Node>>,
    free: Vec<NodeId>,
    next_incarnation: u64,
    rng: Rng,
    default_backoff: Arc<Backoff>,
    metrics: Vec<Arc<dyn Metrics>>,
    activity: Arc<Activity>,
    /// The supervisor's own token: the root's parent.
    token: CancellationToken,
    /// When the whole tree was cancelled through the supervisor's handle, on the tree's
    /// clock; 0 if it was not (or only through a token given to the builder, whose
    /// cancellation nobody times).
    cancelled_at: u64,
    /// The shutdown grace period, in nanoseconds.
    grace: u64,
    /// Panics of metrics sinks not yet handed out in [`Effects`], to be logged outside the
    /// lock (logging reaches the application's subscriber, which is user code).
    sink_panics: Vec<Note>,
    /// Where DNs are assembled, to allocate each only once.
    scratch: String,
    epoch: Epoch,
}

impl Tree {
    pub(crate) fn new(
        token: CancellationToken,
        default_backoff: Backoff,
        metrics: Vec<Arc<dyn Metrics>>,
        activity: Arc<Activity>,
        grace: Duration,
    ) -> Self {
        Tree {
            slots: Vec::new(),
            free: Vec::new(),
            next_incarnation: 0,
            rng: Rng::from_entropy(),
            default_backoff: Arc::new(default_backoff),
            metrics,
            activity,
            token,
            cancelled_at: 0,
            grace: u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX),
            sink_panics: Vec::new(),
            scratch: String::new(),
            epoch: Epoch(Instant::now()),
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        match &self.slots[id] {
            Some(node) => node,
            None => unreachable!("node {id} is referenced but its slot is empty"),
        }
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        match &mut self.slots[id] {
            Some(node) => node,
            None => unreachable!("node {id} is referenced but its slot is empty"),
        }
    }

    /// What uses `name` below `parent`, if anything.
    fn name_use(&self, parent: &Node, name: &str) -> Option<NameUse> {
        let children = parent.children.as_deref()?;
        if children.sub_loggers.contains(name) {
            return Some(NameUse::SubLogger);
        }
        self.child_named(children, name).map(|_| NameUse::Child)
    }

    fn child_named(&self, children: &Children, name: &str) -> Option<NodeId> {
        let hash = name_hash(name);
        let named = |&id: &NodeId| {
            let child = self.node(id);
            child.name_hash == hash && name_of(&child.dn) == name
        };
        if children.ids.len() <= INDEXED_FROM {
            children.ids.iter().copied().find(named)
        } else {
            children.by_name.find(index_hash(hash), named).copied()
        }
    }

    /// Adds `id` (whose node keeps its name hash) to `children`, indexing them all by name
    /// when there come to be more than [`INDEXED_FROM`].
    fn add_child(&self, children: &mut Children, id: NodeId) {
        children.ids.push(id);
        let rehash = |&id: &NodeId| index_hash(self.node(id).name_hash);
        let new = match children.ids.len() {
            n if n <= INDEXED_FROM => return,
            n if n == INDEXED_FROM + 1 => &children.ids[..],
            n => &children.ids[n - 1..],
        };
        for &child in new {
            let hash = index_hash(self.node(child).name_hash);
            children.by_name.insert_unique(hash, child, rehash);
        }
    }

    /// Whether `name` may be used below `parent` for `wanted`: it follows the rule, and no
    /// child or sub-logger has it — except that a sub-logger may be asked for again.
    fn check_name(&self, parent: &Node, name: &str, wanted: NameUse) -> Result<(), RunError> {
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
    fn current(&self, key: Key) -> Option<&Node> {
        self.slots
            .get(key.id)?
            .as_ref()
            .filter(|n| n.incarnation == key.incarnation)
    }

    /// The node of `key` if that incarnation may still act on the tree: it is the current
    /// one and its restart has not been decided. A node waiting out its backoff has had its
    /// names forgotten already, and what its old context reserved would outlive it into the
    /// next incarnation.
    fn acting(&self, key: Key) -> Option<&Node> {
        self.current(key).filter(|n| !n.restart_pending)
    }

    fn set_state(&mut self, id: NodeId, state: NodeState) {
        let now = self.epoch.now();
        self.set_state_at(id, state, now);
    }

    /// [`set_state`](Tree::set_state) with the time already read.
    fn set_state_at(&mut self, id: NodeId, state: NodeState, now: u64) {
        let node = self.node_mut(id);
        if node.state == state {
            return;
        }
        node.state = state;
        node.since = now;
        self.notify(id, state);
    }

    /// Tells every metrics sink. A sink is user code: if it panics, the panic is kept to be
    /// logged after the lock is released, and the tree carries on, consistent, rather than
    /// unwinding out from under the lock.
    fn notify(&mut self, id: NodeId, state: NodeState) {
        let Some(node) = self.slots[id].as_ref() else {
            unreachable!("node {id} is referenced but its slot is empty")
        };
        for m in &self.metrics {
            let told = catch_unwind(AssertUnwindSafe(|| m.notify_node_state(&node.dn, state)));
            if let Err(payload) = told {
                self.sink_panics.push(Note::SinkPanicked {
                    dn: node.dn.clone(),
                    state,
                    message: panic_message_dropped(payload),
                });
            }
        }
    }

    /// Hands out, with `effects`, what must be logged of the sinks' panics.
    fn finish(&mut self, mut effects: Effects) -> Effects {
        if !self.sink_panics.is_empty() {
            effects.notes.extend(self.sink_panics.drain(..));
        }
        effects
    }

    fn insert(
        &mut self,
        dn: Arc<str>,
        parent: Option<NodeId>,
        group: usize,
        token: CancellationToken,
        runnable: Arc<dyn DynRunnable>,
        backoff: Arc<Backoff>,
    ) -> NodeId {
        let node = Node {
            dn,
            runnable,
            since: self.epoch.now(),
            last_error: None,
            incarnation: 0,
            token,
            children: None,
            backoff: BackoffState::new(backoff),
            parent,
            group,
            running_below: 0,
            restarts: 0,
            name_hash: 0,
            state: NodeState::New,
            failed: false,
            cancelled_at: 0,
            running: false,
            restart_pending: false,
        };
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
        self.notify(id, NodeState::New);
        id
    }

    /// Marks whether `id`'s task is alive, keeping `running_below` of it and its ancestors.
    fn set_running(&mut self, id: NodeId, running: bool) {
        self.node_mut(id).running = running;
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
    fn launch(&mut self, id: NodeId) -> Start {
        self.next_incarnation += 1;
        let incarnation = self.next_incarnation;
        self.set_running(id, true);
        self.activity.enter();
        let node = self.node_mut(id);
        node.incarnation = incarnation;
        Start {
            key: Key { id, incarnation },
            dn: node.dn.clone(),
            token: node.token.clone(),
            runnable: node.runnable.clone(),
        }
    }

    pub(crate) fn start_root(&mut self, runnable: Arc<dyn DynRunnable>) -> Effects {
        let token = self.token.child_token();
        let backoff = self.default_backoff.clone();
        let id = self.insert("root".into(), None, 0, token, runnable, backoff);
        let mut effects = Effects::default();
        effects.starts.push(self.launch(id));
        self.finish(effects)
    }

    /// Starts `members` as one group of children of `key`, all or none. The starts are the
    /// only effect, but for the sinks' panics, which the caller takes with
    /// [`take_sink_panics`](Tree::take_sink_panics): the hot path moves no `Effects`.
    pub(crate) fn run_group<S: AsRef<str>>(
        &mut self,
        key: Key,
        members: &[(S, Arc<dyn DynRunnable>)],
        backoff: Option<&Backoff>,
    ) -> Result<Starts, RunError> {
        let Some(parent) = self.acting(key) else {
            return Err(self.stale(key));
        };
        let mut seen = (members.len() > PAIRWISE_UP_TO).then(FastSet::<&str>::default);
        for (i, (name, _)) in members.iter().enumerate() {
            let name = name.as_ref();
            self.check_name(parent, name, NameUse::Child)?;
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(name),
                None => members[..i].iter().any(|(n, _)| n.as_ref() == name),
            };
            if repeated {
                return Err(name_taken(parent, name, NameUse::Child, NameUse::Child));
            }
        }
        let Some((first, _)) = members.first() else {
            return Ok(Starts::new());
        };
        if parent.state != NodeState::New || !parent.running {
            return Err(RunError::NotNew {
                parent: parent.dn.to_string(),
                name: first.as_ref().to_owned(),
                state: parent.state,
            });
        }
        let parent_dn = parent.dn.clone();
        let parent_token = parent.token.clone();
        let backoff = match backoff {
            Some(backoff) => Arc::new(backoff.clone()),
            None => self.default_backoff.clone(),
        };
        // Out of the parent while children are added, as indexing them reads their nodes.
        let mut children = self.node_mut(key.id).children.take().unwrap_or_default();
        let group_index = children.group_ends.len();
        let mut starts = Starts::with_capacity(members.len());
        for (name, runnable) in members {
            let name = name.as_ref();
            let mut dn = std::mem::take(&mut self.scratch);
            dn.clear();
            dn.push_str(&parent_dn);
            dn.push('.');
            dn.push_str(name);
            let id = self.insert(
                Arc::from(dn.as_str()),
                Some(key.id),
                group_index,
                parent_token.child_token(),
                runnable.clone(),
                backoff.clone(),
            );
            self.scratch = dn;
            self.node_mut(id).name_hash = name_hash(name);
            self.add_child(&mut children, id);
            starts.push(self.launch(id));
        }
        children.group_ends.push(children.ids.len());
        self.node_mut(key.id).children = Some(children);
        Ok(starts)
    }

    /// What the metrics sinks' panics left to log, for a caller that took no `Effects`.
    pub(crate) fn take_sink_panics(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.sink_panics)
    }

    /// Reserves `name` below `key` for a sub-logger, returning the sub-logger's DN. Asking
    /// again for the same sub-logger is fine; a child's name is not.
    pub(crate) fn reserve_sub_logger(
        &mut self,
        key: Key,
        name: &str,
    ) -> Result<Arc<str>, RunError> {
        let Some(node) = self.acting(key) else {
            return Err(self.stale(key));
        };
        self.check_name(node, name, NameUse::SubLogger)?;
        let dn = format!("{}.{name}", node.dn).into();
        self.node_mut(key.id)
            .children
            .get_or_insert_default()
            .sub_loggers
            .insert(name.into());
        Ok(dn)
    }

    fn stale(&self, key: Key) -> RunError {
        let dn = self
            .slots
            .get(key.id)
            .and_then(Option::as_ref)
            .map_or_else(|| "(forgotten node)".to_owned(), |n| n.dn.to_string());
        RunError::Stale { dn }
    }

    /// A signal of the incarnation `key`. Accepting one only changes a state, so it brings
    /// no effects but the metrics sinks' panics, if any.
    pub(crate) fn signal(&mut self, key: Key, signal: Signal) -> Signalled {
        let Some(node) = self.current(key).filter(|n| n.running) else {
            return Signalled::Stale;
        };
        if node.failed {
            return Signalled::Accepted;
        }
        match (node.state, signal) {
            (NodeState::New, Signal::Healthy) => {
                self.node_mut(key.id).backoff.reset();
                self.set_state(key.id, NodeState::Healthy);
                self.accepted()
            }
            (NodeState::Healthy, Signal::Done) => {
                self.node_mut(key.id).backoff.reset();
                self.set_state(key.id, NodeState::Done);
                self.accepted()
            }
            (state, signal) => {
                let mut effects = Effects::default();
                self.node_mut(key.id).failed = true;
                let siblings =
                    self.fail(key.id, Failure::IllegalSignal(signal, state), &mut effects);
                self.restart_all(siblings, &mut effects);
                Signalled::WithEffects(Box::new(self.finish(effects)))
            }
        }
    }

    fn accepted(&mut self) -> Signalled {
        if self.sink_panics.is_empty() {
            Signalled::Accepted
        } else {
            Signalled::WithEffects(Box::new(self.finish(Effects::default())))
        }
    }

    /// Notes that the whole tree is being cancelled now (the caller then cancels the token),
    /// so that a runnable blocking its thread through the grace period is found out when it
    /// returns (DESIGN §5).
    pub(crate) fn cancelling(&mut self) {
        if self.cancelled_at == 0 {
            self.cancelled_at = self.epoch.now().max(1);
        }
    }

    /// How long after its grace period ran out `id` returned, if it did return late: from
    /// the earliest time the tree cancelled it, an ancestor of it, or the whole tree. (A
    /// cancellation the tree did not make — a runnable's own, a builder's token — is timed by
    /// the task instead, from the first poll after it that did not return: a runnable that
    /// blocks in the very poll that sees such a cancellation is not found out.)
    fn overrun(&self, id: NodeId, now: u64) -> Option<Duration> {
        let mut cancelled = self.cancelled_at;
        let mut cur = Some(id);
        while let Some(c) = cur {
            let node = self.node(c);
            if node.cancelled_at != 0 && (cancelled == 0 || node.cancelled_at < cancelled) {
                cancelled = node.cancelled_at;
            }
            cur = node.parent;
        }
        if cancelled == 0 {
            return None;
        }
        let deadline = cancelled.saturating_add(self.grace);
        (now > deadline).then(|| Duration::from_nanos(now - deadline))
    }

    /// Records that the task of `key` has ended, and restarts what that makes restartable.
    pub(crate) fn exited(&mut self, key: Key, outcome: Outcome) -> Effects {
        let mut effects = Effects::default();
        let Some(node) = self.current(key) else {
            return effects;
        };
        debug_assert!(node.running, "{} exited twice", node.dn);
        let cancelled = node.token.is_cancelled();
        // Read once, for the overrun and the new state, and only on the way out: other
        // exits read it when their state is set.
        let now = cancelled.then(|| self.epoch.now());
        let overran = match (&outcome, now) {
            (Outcome::Returned(_), Some(now)) if !node.failed => self.overrun(key.id, now),
            _ => None,
        };
        // The three return rules of DESIGN §3, in order; a return past the grace period
        // is a failure whatever was returned (DESIGN §5).
        let ending = match outcome {
            _ if node.failed => Ok(NodeState::Dead),
            Outcome::Returned(_) if overran.is_some() => {
                Err(Failure::Overran(overran.unwrap_or_default()))
            }
            Outcome::Returned(Ok(())) if node.state == NodeState::Done => Ok(NodeState::Done),
            Outcome::Returned(Ok(())) if cancelled => Ok(NodeState::Canceled),
            Outcome::Returned(Err(e)) if cancelled && e.cancellation => Ok(NodeState::Canceled),
            Outcome::Returned(Ok(())) => Err(Failure::ReturnedOk(node.state)),
            Outcome::Returned(Err(e)) => Err(Failure::Error(
                // Made whenever the context was live, or the error was not a cancellation.
                e.reason
                    .unwrap_or_else(|| Arc::from("returned the cancellation error")),
            )),
            Outcome::Panicked(msg) => Err(Failure::Panicked(msg)),
            Outcome::Aborted(grace) => Err(Failure::Aborted(grace)),
            Outcome::Overran(by) => Err(Failure::Overran(by)),
            Outcome::DropPanicked(msg) => Err(Failure::DropPanicked(msg)),
        };
        self.set_running(key.id, false);
        let siblings = match ending {
            Ok(state) => {
                match now {
                    Some(now) => self.set_state_at(key.id, state, now),
                    None => self.set_state(key.id, state),
                }
                Vec::new()
            }
            Err(failure) => self.fail(key.id, failure, &mut effects),
        };
        self.restart_all(std::iter::once(key).chain(siblings), &mut effects);
        self.finish(effects)
    }

    /// Marks `id` dead and cancels it and its group siblings. Returns the siblings: one that
    /// has already returned (Done) sends no event of its own, so the caller checks whether
    /// they can restart — after this, as a restart forgets nodes.
    ///
    /// A node that fails after its context was cancelled (aborted after the grace period,
    /// an error other than the cancellation error on its way out, a wrong signal during
    /// shutdown) is recorded dead, but its failure is not a new failure of its group:
    /// whatever cancelled it has dealt with its siblings, and cancelling them again would
    /// restart healthy neighbours once more for each slow one (two slow siblings would
    /// abort each other forever).
    fn fail(&mut self, id: NodeId, failure: Failure, effects: &mut Effects) -> Vec<Key> {
        self.set_state(id, NodeState::Dead);
        // When it died is when the tree cancels it and its siblings.
        let now = self.node(id).since.max(1);
        let node = self.node_mut(id);
        let reason = failure.reason();
        node.last_error = Some(reason.clone());
        effects.notes.push(Note::Failed {
            dn: node.dn.clone(),
            reason,
        });
        if node.token.is_cancelled() {
            return Vec::new();
        }
        node.cancelled_at = now;
        node.token.cancel();
        let node = self.node(id);
        let Some(parent) = node.parent else {
            return Vec::new();
        };
        let Some(children) = self.node(parent).children.as_deref() else {
            unreachable!("{} is missing from its parent's children", node.dn)
        };
        let siblings: Vec<Key> = children
            .group(node.group)
            .iter()
            .filter(|&&s| s != id)
            .copied()
            .collect::<SmallVec<[NodeId; 4]>>()
            .into_iter()
            .map(|s| {
                let sibling = self.node_mut(s);
                if !sibling.token.is_cancelled() {
                    sibling.cancelled_at = now;
                    sibling.token.cancel();
                }
                Key {
                    id: s,
                    incarnation: sibling.incarnation,
                }
            })
            .collect();
        siblings
    }

    /// Restarts what the failure or exit of a node, and the cancellation of `nodes`, may
    /// have made ready. Each restart can forget nodes, so each is looked up again first.
    fn restart_all(&mut self, nodes: impl IntoIterator<Item = Key>, effects: &mut Effects) {
        for key in nodes {
            if self.current(key).is_some() {
                self.restart_from(key.id, effects);
            }
        }
    }

    /// Restarts the subtree that `id`'s exit (or cancellation) may have made ready.
    fn restart_from(&mut self, id: NodeId, effects: &mut Effects) {
        if self.token.is_cancelled() {
            return;
        }
        let mut top = None;
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = self.node(c);
            if !n.token.is_cancelled() {
                break;
            }
            top = Some(c);
            cur = n.parent;
        }
        let Some(top) = top else { return };
        let node = self.node(top);
        if node.running_below > 0 || node.restart_pending {
            return;
        }
        self.forget_children(top, effects);
        let node = self.node(top);
        // A node that cancelled itself waits out its backoff too, or it would restart in a
        // hot loop (DESIGN §14).
        if node.state == NodeState::Dead || node.cancelled_at == 0 {
            let delay = self.next_delay(top);
            if !delay.is_zero() {
                let node = self.node_mut(top);
                node.restart_pending = true;
                let dn = node.dn.clone();
                let key = Key {
                    id: top,
                    incarnation: node.incarnation,
                };
                let parent = self.parent_token(top).clone();
                effects.notes.push(Note::Restarting { dn, delay });
                effects.timers.push(Timer {
                    key,
                    delay,
                    parent,
                    busy: self.activity.hold(),
                });
                return;
            }
        }
        effects.notes.push(Note::Restarting {
            dn: self.node(top).dn.clone(),
            delay: Duration::ZERO,
        });
        self.start_again(top, effects);
    }

    fn next_delay(&mut self, id: NodeId) -> Duration {
        let Some(node) = self.slots[id].as_mut() else {
            unreachable!("node {id} is referenced but its slot is empty")
        };
        node.backoff.next_delay(&mut self.rng)
    }

    fn parent_token(&self, id: NodeId) -> &CancellationToken {
        match self.node(id).parent {
            Some(p) => &self.node(p).token,
            None => &self.token,
        }
    }

    fn start_again(&mut self, id: NodeId, effects: &mut Effects) {
        let token = self.parent_token(id).child_token();
        let node = self.node_mut(id);
        node.token = token;
        // Normally already forgotten; nothing of the last incarnation may reach the next.
        node.children = None;
        node.failed = false;
        node.cancelled_at = 0;
        node.restart_pending = false;
        node.restarts += 1;
        self.set_state(id, NodeState::New);
        effects.starts.push(self.launch(id));
    }

    /// Forgets every node below `id`. Restarts pending among them are dropped (`Canceled`).
    fn forget_children(&mut self, id: NodeId, effects: &mut Effects) {
        let Some(children) = self.node_mut(id).children.take() else {
            return;
        };
        let mut stack = children.ids;
        while let Some(c) = stack.pop() {
            if self.node(c).restart_pending {
                self.drop_restart(c, effects);
            }
            if let Some(node) = self.slots[c].take() {
                debug_assert!(!node.running, "forgot running node {}", node.dn);
                if let Some(children) = node.children {
                    stack.extend(children.ids);
                }
                effects.forgotten.push((node.dn, node.runnable));
                self.free.push(c);
            }
        }
    }

    fn drop_restart(&mut self, id: NodeId, effects: &mut Effects) {
        self.node_mut(id).restart_pending = false;
        self.set_state(id, NodeState::Canceled);
        effects.notes.push(Note::RestartDropped {
            dn: self.node(id).dn.clone(),
        });
    }

    /// A backoff timer has fired: start the node again if its parent is still live.
    pub(crate) fn backoff_elapsed(&mut self, key: Key) -> Effects {
        let mut effects = Effects::default();
        if self.current(key).is_some_and(|n| n.restart_pending) {
            if self.parent_token(key.id).is_cancelled() {
                self.drop_restart(key.id, &mut effects);
            } else {
                self.start_again(key.id, &mut effects);
            }
        }
        self.finish(effects)
    }

    /// The parent of a node waiting for its backoff was cancelled: drop the restart.
    pub(crate) fn backoff_cancelled(&mut self, key: Key) -> Effects {
        let mut effects = Effects::default();
        if self.current(key).is_some_and(|n| n.restart_pending) {
            self.drop_restart(key.id, &mut effects);
        }
        self.finish(effects)
    }

    pub(crate) fn states(&self) -> BTreeMap<String, NodeState> {
        self.slots
            .iter()
            .flatten()
            .map(|n| (n.dn.to_string(), n.state))
            .collect()
    }

    pub(crate) fn status(&self) -> TreeStatus {
        let now = self.epoch.now();
        let mut nodes: Vec<NodeStatus> = self
            .slots
            .iter()
            .flatten()
            .map(|n| NodeStatus {
                dn: n.dn.to_string(),
                state: n.state,
                in_state: Duration::from_nanos(now.saturating_sub(n.since)),
                restarts: n.restarts,
                last_error: n.last_error.as_deref().map(str::to_owned),
                running: n.running,
            })
            .collect();
        nodes.sort_unstable_by(|a, b| a.dn.cmp(&b.dn));
        TreeStatus { nodes }
    }

    pub(crate) fn live(&self) -> Vec<String> {
        let mut live: Vec<String> = self
            .slots
            .iter()
            .flatten()
            .filter(|n| n.running)
            .map(|n| n.dn.to_string())
            .collect();
        live.sort_unstable();
        live
    }
}
