//! The supervision tree: every node's state, and the rules that move it (DESIGN §3–4, §14).
//!
//! The tree is plain data behind one mutex in [`Shared`](crate::shared::Shared); every method
//! here runs under that lock and never awaits, blocks, or calls user code other than
//! [`Metrics::notify_node_state`] (whose panics are caught), and the registered
//! [`Abort`]s, which only set a flag and wake a task. Nothing a user gave is formatted,
//! inspected or dropped here: a returned error reaches the tree as text, and the runnables of
//! forgotten nodes leave it in the [`Effects`]. Work that must happen outside the lock
//! (spawning tasks, arming backoff timers, logging, dropping user values) is returned as
//! [`Effects`].
//!
//! Here: the [`Tree`] and its event API (what contexts, tasks and timers tell it). The rest
//! is split by what it holds: `node` (nodes, their children, the name index), `group` (a
//! node's groups: their bounds, settings, intensity windows), `restart` (failure, the
//! restart decision, escalation, ordered stopping, aborting subtrees, forgetting children),
//! `effects` (what the tree asks of the world outside its lock, and what the world tells
//! it).
//!
//! # Invariants
//!
//! - A node's `incarnation` is unique across the tree's life; a [`Context`](crate::Context)
//!   carries the incarnation it was made for and is stale once the node's differs (or the
//!   node is gone).
//! - `running` is true exactly while the incarnation's task is alive. `running_below` counts
//!   the running nodes of the subtree, itself included, so "the subtree is ready" (every
//!   node in it has returned) is `running_below == 0`, in O(1).
//! - Cancellations cascade: a node inherits its parent's (the root, the supervisor's), so a
//!   cancelled node has only cancelled descendants — but for the members of an ordered
//!   group, which the tree cancels one at a time once the group's watch sees the parent
//!   cancelled, so below a cancelled node an ordered member may still be waiting its turn.
//!   The tree marks a subtree in one pass ([`Tree::cancel_subtree`]), a child is born
//!   cancelled under a cancelled parent, and the tasks are woken outside the lock (see
//!   [`cancel`](crate::cancel)).
//! - A restart is decided once per failure (or self-cancel), and counted then in its
//!   group's window; the members it restarts are marked `Pending::Group` until they have
//!   returned.
//! - A node to restart is the topmost cancelled node on the path from the root to a node
//!   that just exited: its parent is live by construction, and restarting anything below it
//!   would be undone by its own restart. Restart is decided on events (an exit, a sibling's
//!   cancellation, a backoff timer), never by polling.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::backoff::{Backoff, Rng};
use crate::cancel::Cancel;
use crate::error::{Failure, NameUse, RunError};
use crate::group::Member;
use crate::hash::{FastMap, FastSet};
use crate::logtree::LogTree;
use crate::metrics::Metrics;
use crate::policy::{GroupPolicy, Intensity, Policy, Restart};
use crate::runnable::DynRunnable;
use crate::status::{GroupStatus, NodeStatus, TreeStatus};
use crate::{NodeState, Signal};

mod control;
mod dynamic;
mod effects;
mod group;
mod health;
mod node;
mod report;
mod restart;

pub(crate) use control::Control;
pub(crate) use effects::{
    Abort, Effects, Forgotten, Note, Outcome, Signalled, Start, Started, Starts, Timer, Told, Watch,
};
use group::Window;
pub(crate) use health::Watchdog;
use node::{Epoch, Kill, Node, PAIRWISE_UP_TO, Pending, name_hash, name_taken, stale};
pub(crate) use report::CrashSettings;

/// Index of a node's slot. Slots are reused; incarnations tell their occupants apart.
pub(crate) type NodeId = usize;

/// An incarnation of a node: the identity a context carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u64,
}

pub(crate) struct Tree {
    slots: Vec<Option<Node>>,
    free: Vec<NodeId>,
    next_incarnation: u64,
    rng: Rng,
    /// The policy of a child run without a spec, in a group without a backoff of its own.
    defaults: Arc<Policy>,
    /// Every group's intensity unless it sets its own, and the root's.
    default_intensity: Option<Intensity>,
    /// The root's restarts, counted against `default_intensity`.
    root_window: Window,
    /// Why the tree gave up (its root escalated), if it did.
    gave_up: Option<Arc<str>>,
    /// Restarts waiting out their backoff.
    backoffs: usize,
    /// Cancelled once the tree has finished by itself, which ends the ordered groups'
    /// watches.
    finished: CancellationToken,
    /// Whether an ordered group exists, or a token given to the builder, whose watches wait
    /// for `finished`.
    watching: bool,
    /// Whether a dynamic group exists, whose finished children leave the tree.
    dynamic: bool,
    /// Whether tasks register an [`Abort`] once cancelled: set for good by the first
    /// shutdown policy other than the default, or the first ordered group.
    register_all: bool,
    /// The registered aborts of cancelled nodes still running.
    aborts: FastMap<NodeId, Arc<dyn Abort>>,
    metrics: Vec<Arc<dyn Metrics>>,
    activity: Arc<Activity>,
    /// Read for where the logs of children leaving the tree end (see `Effects::left`).
    log_tree: LogTree,
    /// The supervisor's own token, cancelled with the tree (by `cancel_all`).
    token: CancellationToken,
    /// The supervisor's cancellation: the root's parent, whose cancellation the root
    /// inherits, and which the root's backoff timer waits on. Its handed-out token is the
    /// supervisor's token when a builder's token is its parent (see `watch_builder_token`).
    top: Arc<Cancel>,
    /// When the whole tree was cancelled (through the supervisor's handle, the token given
    /// to the builder, or by giving up), on the tree's clock; 0 if it was not.
    cancelled_at: u64,
    /// Panics of metrics sinks not yet handed out in [`Effects`], to be logged outside the
    /// lock (logging reaches the application's subscriber, which is user code).
    sink_panics: Vec<Note>,
    /// Who waits on health, backoffs' due times and critical watchdogs (see `health`).
    health: health::Watched,
    /// Where DNs are assembled, to allocate each only once.
    scratch: String,
    epoch: Epoch,
    /// The backoffs drawn for failed nodes when they died, for their crash reports, and
    /// taken when they start again.
    delays: FastMap<NodeId, Duration>,
    /// How to end the timer of each restart waiting out its backoff, should an operator
    /// restart the node first.
    skips: FastMap<NodeId, Arc<Cancel>>,
    crashes: report::Crashes,
    events: crate::events::Hub,
}

impl Tree {
    pub(crate) fn new(
        token: CancellationToken,
        defaults: Arc<Policy>,
        default_intensity: Option<Intensity>,
        metrics: Vec<Arc<dyn Metrics>>,
        activity: Arc<Activity>,
        log_tree: LogTree,
    ) -> Self {
        Tree {
            slots: Vec::new(),
            free: Vec::new(),
            next_incarnation: 0,
            rng: Rng::from_entropy(),
            defaults,
            default_intensity,
            root_window: Window::default(),
            gave_up: None,
            backoffs: 0,
            finished: CancellationToken::new(),
            watching: false,
            dynamic: false,
            register_all: false,
            aborts: FastMap::default(),
            metrics,
            activity,
            log_tree,
            token,
            top: Arc::new(Cancel::without_task()),
            cancelled_at: 0,
            sink_panics: Vec::new(),
            health: health::Watched::default(),
            scratch: String::new(),
            epoch: Epoch(Instant::now()),
            delays: FastMap::default(),
            skips: FastMap::default(),
            crashes: report::Crashes::default(),
            events: crate::events::Hub::default(),
        }
    }

    /// Starts the root, supervised as `policy` says (the defaults, unless the builder was
    /// given a root spec).
    pub(crate) fn start_root(
        &mut self,
        runnable: Arc<dyn DynRunnable>,
        policy: Arc<Policy>,
    ) -> Effects {
        self.register_all |= policy.shutdown != self.defaults.shutdown;
        let id = self.insert("root".into(), None, 0, runnable, policy, false);
        let mut effects = Effects::default();
        effects.starts.push(self.launch(id));
        self.finish(effects)
    }

    /// Starts `members` as one group of children of `key`, all or none. The starts (and an
    /// ordered group's watch) are the only effects, but for the sinks' panics, which the
    /// caller takes with [`take_after_lock`](Tree::take_after_lock): the hot path moves
    /// no `Effects`.
    pub(crate) fn run_group<S: AsRef<str>>(
        &mut self,
        key: Key,
        members: &[Member<S>],
        backoff: Option<&Backoff>,
        policy: GroupPolicy,
    ) -> Result<Started, RunError> {
        let Some(parent) = self.acting(key) else {
            return Err(stale());
        };
        let mut seen = (members.len() > PAIRWISE_UP_TO).then(FastSet::<&str>::default);
        for (i, member) in members.iter().enumerate() {
            let name = member.name.as_ref();
            self.check_name(parent, name, NameUse::Child)?;
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(name),
                None => members[..i].iter().any(|m| m.name.as_ref() == name),
            };
            if repeated {
                return Err(name_taken(parent, name, NameUse::Child, NameUse::Child));
            }
            if let Some(spec) = &member.spec
                && let Err(error) = spec.check()
            {
                return Err(RunError::InvalidSpec {
                    parent: parent.dn.to_string(),
                    name: name.to_owned(),
                    error,
                });
            }
        }
        let Some(first) = members.first() else {
            return Ok(Started {
                starts: Starts::new(),
                watch: None,
            });
        };
        if parent.state != NodeState::New || !parent.running {
            return Err(RunError::NotNew {
                parent: parent.dn.to_string(),
                name: first.name.as_ref().to_owned(),
                state: parent.state,
            });
        }
        let parent_dn = parent.dn.clone();
        let parent_cancel = parent.cancel.clone();
        let shared = match backoff {
            Some(backoff) => Arc::new(Policy {
                backoff: backoff.clone(),
                ..Policy::clone(&self.defaults)
            }),
            None => self.defaults.clone(),
        };
        let ordered = policy.ordered_shutdown;
        // Out of the parent while children are added, as indexing them reads their nodes.
        let mut children = self.node_mut(key.id).children.take().unwrap_or_default();
        let group_index = children.groups.len();
        let mut starts = Starts::with_capacity(members.len());
        for member in members {
            let name = member.name.as_ref();
            let policy = match &member.spec {
                None => shared.clone(),
                Some(spec) => {
                    Arc::new(spec.resolve(&shared.backoff, Restart::Permanent, &self.defaults))
                }
            };
            self.register_all |= ordered || policy.shutdown != self.defaults.shutdown;
            let mut dn = std::mem::take(&mut self.scratch);
            dn.clear();
            dn.push_str(&parent_dn);
            dn.push('.');
            dn.push_str(name);
            let id = self.insert(
                Arc::from(dn.as_str()),
                Some(key.id),
                group_index,
                member.runnable.clone(),
                policy,
                ordered,
            );
            self.scratch = dn;
            self.node_mut(id).name_hash = name_hash(name);
            self.add_child(&mut children, id);
            starts.push(self.launch(id));
        }
        children.groups.push(children.ids.len(), policy);
        self.node_mut(key.id).children = Some(children);
        let watch = ordered.then(|| {
            self.watching = true;
            Watch {
                parent: key,
                group: group_index,
                cancelled: parent_cancel,
                finished: self.finished.clone(),
            }
        });
        Ok(Started { starts, watch })
    }

    /// What a caller that took no `Effects` has left to do once the lock is released: the
    /// metrics sinks' panics to log, and whether to tell of a change of health. `None`,
    /// most often, when there is nothing.
    pub(crate) fn take_after_lock(&mut self) -> Option<(Vec<Note>, bool)> {
        if self.sink_panics.is_empty() && !self.health.changed {
            return None;
        }
        Some((
            std::mem::take(&mut self.sink_panics),
            self.take_health_changed(),
        ))
    }

    /// Reserves `name` below `key` for a sub-logger, returning the sub-logger's DN. Asking
    /// again for the same sub-logger is fine; a child's name is not.
    pub(crate) fn reserve_sub_logger(
        &mut self,
        key: Key,
        name: &str,
    ) -> Result<Arc<str>, RunError> {
        let Some(node) = self.acting(key) else {
            return Err(stale());
        };
        self.check_name(node, name, NameUse::SubLogger)?;
        let dn = format!("{}.{name}", node.dn).into();
        self.node_mut(key.id)
            .children
            .get_or_insert_default()
            .sub_loggers
            .insert(name.into());
        self.mark_logged(key.id);
        Ok(dn)
    }

    /// A signal of the incarnation `key`. Accepting one only changes a state, so it brings
    /// no effects: what the metrics sinks' panics and a change of health leave to do, the
    /// caller takes after it ([`Shared::in_tree`](crate::shared::Shared::in_tree)).
    pub(crate) fn signal(&mut self, key: Key, signal: Signal) -> Signalled {
        let Some(node) = self.current(key).filter(|n| n.running) else {
            return Signalled::Stale;
        };
        if node.failed {
            return Signalled::Accepted;
        }
        match (node.state, signal) {
            (NodeState::New, Signal::Healthy) => {
                let node = self.node_mut(key.id);
                node.backoff.reset(&node.policy.backoff);
                self.set_state(key.id, NodeState::Healthy);
                self.healthy_again(key);
                Signalled::Accepted
            }
            (NodeState::Healthy, Signal::Done) => {
                let node = self.node_mut(key.id);
                node.backoff.reset(&node.policy.backoff);
                self.set_state(key.id, NodeState::Done);
                Signalled::Accepted
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

    /// Notes that the whole tree is being cancelled now (`cancel_all` then marks it), so
    /// that a runnable blocking its thread through the grace period is found out when it
    /// returns (DESIGN §5).
    fn cancelling(&mut self) {
        if self.cancelled_at == 0 {
            self.cancelled_at = self.epoch.now().max(1);
            self.health_changed();
        }
    }

    /// A cancelled task still running registers how to abort it (see [`Start::register`]).
    /// Whether it is to be aborted at once: an ancestor was aborted before it registered.
    pub(crate) fn exiting(&mut self, key: Key, abort: Arc<dyn Abort>) -> bool {
        let Some(node) = self.current(key).filter(|n| n.running) else {
            return false;
        };
        if node.kill != Kill::None {
            return true;
        }
        self.aborts.insert(key.id, abort);
        false
    }

    /// Notes that the incarnation `key` made a logger at its DN (which its log must be
    /// looked for when the node leaves the tree).
    pub(crate) fn logged(&mut self, key: Key) {
        if self.current(key).is_some() {
            self.mark_logged(key.id);
        }
    }

    /// Records that the task of `key` has ended, and restarts what that makes restartable.
    pub(crate) fn exited(&mut self, key: Key, outcome: Outcome) -> Effects {
        let mut effects = Effects::default();
        if self.current(key).is_none() {
            return effects;
        }
        self.catch_up_tokens(key.id, &mut effects);
        let node = self.node(key.id);
        debug_assert!(node.running, "{} exited twice", node.dn);
        let cancelled = node.cancel.is_marked();
        // Read once, for the overrun and the new state, and only on the way out: other
        // exits read it when their state is set.
        let now = cancelled.then(|| self.epoch.now());
        // A return past the shutdown deadline of a cancellation the tree made is an
        // overrun, whatever was returned (DESIGN §5).
        let outcome = match (outcome, now) {
            (Outcome::Returned(returned), Some(now)) => match self.overrun(key.id, now) {
                Some(by) => Outcome::Overran(by),
                None => Outcome::Returned(returned),
            },
            (outcome, _) => outcome,
        };
        if let Outcome::Aborted(_) | Outcome::Killed | Outcome::Dropped = outcome {
            self.event(key.id, crate::EventKind::Aborted);
        }
        let node = self.node(key.id);
        // How what it leaves running below it is dropped.
        let kill = match outcome {
            Outcome::Dropped => Kill::Brutal,
            Outcome::Aborted(_) => Kill::Timeout,
            Outcome::Killed => node.kill,
            _ => Kill::None,
        };
        let starved = matches!(outcome, Outcome::Watchdog(_));
        // The three return rules of DESIGN §3, in order, with the kinds of §14.
        let ending = match outcome {
            _ if node.failed => Ok(NodeState::Dead),
            Outcome::Killed if node.kill == Kill::Brutal => Ok(NodeState::Canceled),
            Outcome::Killed => Err(Failure::AbortedWith(self.kill_origin(key.id))),
            Outcome::Dropped => Ok(NodeState::Canceled),
            Outcome::Returned(Ok(())) if node.state == NodeState::Done => Ok(NodeState::Done),
            Outcome::Returned(Ok(())) if cancelled => Ok(NodeState::Canceled),
            Outcome::Returned(Err(e)) if cancelled && e.cancellation => Ok(NodeState::Canceled),
            // A normal end for a transient or temporary node, as after Done.
            Outcome::Returned(Ok(())) if node.policy.restart != Restart::Permanent => {
                Ok(NodeState::Done)
            }
            Outcome::Returned(Ok(())) => Err(Failure::ReturnedOk(node.state)),
            Outcome::Returned(Err(e)) => Err(Failure::Error(
                // Made whenever the context was live, or the error was not a cancellation.
                e.reason
                    .unwrap_or_else(|| Arc::from("returned the cancellation error")),
            )),
            Outcome::Panicked(msg) => Err(Failure::Panicked(msg)),
            Outcome::Aborted(grace) => Err(Failure::Aborted(grace)),
            Outcome::Overran(by) => Err(Failure::Overran(by)),
            Outcome::Watchdog(period) => Err(Failure::Watchdog(period)),
            Outcome::DropPanicked(msg) => Err(Failure::DropPanicked(msg)),
        };
        if !self.aborts.is_empty() {
            self.aborts.remove(&key.id);
        }
        if starved {
            self.watchdog_tripped(key.id);
        }
        self.set_running(key.id, false);
        // Ordered members whose subtree this exit has emptied: their group moves on.
        let emptied = if self.watching {
            self.emptied_ordered(key.id)
        } else {
            SmallVec::new()
        };
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
        if kill != Kill::None {
            self.node_mut(key.id).kill = kill;
            if self.node(key.id).running_below > 0 {
                self.kill_below(key.id, kill, &mut effects);
            }
        }
        self.restart_all(std::iter::once(key).chain(siblings), &mut effects);
        for member in emptied {
            self.step_if_parent_cancelled(member, &mut effects);
        }
        self.leave_finished(key, &mut effects);
        if self.watching {
            self.check_finished();
        }
        self.finish(effects)
    }

    /// The ordered members among `id` and its ancestors whose subtrees have no running node
    /// left.
    fn emptied_ordered(&self, id: NodeId) -> SmallVec<[Key; 2]> {
        let mut emptied = SmallVec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let node = self.node(c);
            if node.running_below > 0 {
                break;
            }
            if node.ordered {
                emptied.push(Key {
                    id: c,
                    incarnation: node.incarnation,
                });
            }
            cur = node.parent;
        }
        emptied
    }

    /// An ordered member has stopped while its parent is being cancelled: stop the next.
    /// (Under a live parent, the member's part in its group's restart moves the group on.)
    fn step_if_parent_cancelled(&mut self, member: Key, effects: &mut Effects) {
        let Some(node) = self.current(member) else {
            return;
        };
        let (group, parent) = (node.group, node.parent);
        if let Some(parent) = parent
            && self.node(parent).cancel.is_marked()
        {
            self.step(parent, group, effects);
        }
    }

    /// The parent of an ordered group was cancelled (its watch saw it): stop the members
    /// in turn.
    pub(crate) fn parent_cancelled(&mut self, parent: Key, group: usize) -> Effects {
        let mut effects = Effects::default();
        if self.current(parent).is_some() {
            self.step(parent.id, group, &mut effects);
        }
        self.finish(effects)
    }

    /// The supervisor's level (see `top`).
    pub(crate) fn top(&self) -> &Arc<Cancel> {
        &self.top
    }

    /// A token cancelled once the tree has finished by itself (see `finished`), for a task
    /// that must end with the tree.
    pub(crate) fn watch_finished(&mut self) -> CancellationToken {
        self.watching = true;
        self.check_finished();
        self.finished.clone()
    }

    /// The supervisor's token is the child of one given to the builder, which its holder
    /// may cancel at any time: the supervisor's level takes it as its handed-out token (see
    /// [`catch_up_tokens`](Tree::catch_up_tokens)), and the token's watch waits for
    /// `finished`, which this returns. Asked once the root has started: an empty tree
    /// counts as finished.
    pub(crate) fn watch_builder_token(&mut self) -> CancellationToken {
        self.top.adopt(self.token.clone());
        self.watch_finished()
    }

    /// Catches the tree up with the handed-out tokens on the way from `id` to the top: the
    /// lowest one cancelled whose cancellation the tree has not been told of yet (the
    /// node's task, or the builder token's watch, tells it a moment later) is made now, so
    /// that what `id` does next is read as a token tree would have had it — an exit as a
    /// cancelled one, a failure as not a new one. Only a node that handed out a token costs
    /// more than a load.
    fn catch_up_tokens(&mut self, id: NodeId, effects: &mut Effects) {
        let mut cur = Some(id);
        while let Some(c) = cur {
            let cancel = &self.node(c).cancel;
            if cancel.is_marked() {
                return;
            }
            if cancel.token_cancelled() {
                self.cancel_subtree(c, effects);
                return;
            }
            cur = self.node(c).parent;
        }
        if !self.top.is_marked() && self.top.token_cancelled() {
            self.cancel_all(effects);
        }
    }

    /// The task of `key` found the incarnation's handed-out token cancelled (by the
    /// runnable, or whoever it gave the token to): the node and its subtree are cancelled,
    /// as if the token were theirs (DESIGN §14: the node cancelled itself).
    pub(crate) fn cancelled_itself(&mut self, key: Key) -> Effects {
        let mut effects = Effects::default();
        if self.current(key).is_some() {
            self.catch_up_tokens(key.id, &mut effects);
        }
        self.finish(effects)
    }

    /// Ends the watches once nothing runs and nothing is waiting to restart: the tree has
    /// finished by itself.
    fn check_finished(&mut self) {
        let root_idle = self
            .slots
            .first()
            .and_then(Option::as_ref)
            .is_none_or(|root| root.running_below == 0);
        if root_idle && self.backoffs == 0 {
            self.finished.cancel();
        }
    }

    /// A backoff timer has fired: start the node again if its parent is still live.
    pub(crate) fn backoff_elapsed(&mut self, key: Key) -> Effects {
        let mut effects = Effects::default();
        if self
            .current(key)
            .is_some_and(|n| n.pending == Pending::Backoff)
        {
            if self.parent_cancel(key.id).is_marked() {
                self.drop_restart(key.id, &mut effects);
                self.leave_finished(key, &mut effects);
            } else {
                self.backoffs -= 1;
                self.skips.remove(&key.id);
                self.start_again(key.id, &mut effects);
            }
        }
        if self.watching {
            self.check_finished();
        }
        self.finish(effects)
    }

    /// The parent of a node waiting for its backoff was cancelled: drop the restart.
    pub(crate) fn backoff_cancelled(&mut self, key: Key) -> Effects {
        let mut effects = Effects::default();
        if self
            .current(key)
            .is_some_and(|n| n.pending == Pending::Backoff)
        {
            self.drop_restart(key.id, &mut effects);
            self.leave_finished(key, &mut effects);
        }
        if self.watching {
            self.check_finished();
        }
        self.finish(effects)
    }

    /// Why the tree gave up, if its root escalated.
    pub(crate) fn gave_up(&self) -> Option<Arc<str>> {
        self.gave_up.clone()
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
            .enumerate()
            .filter_map(|(id, n)| Some((id, n.as_ref()?)))
            .map(|(id, n)| NodeStatus {
                dn: n.dn.to_string(),
                state: n.state,
                in_state: Duration::from_nanos(now.saturating_sub(n.since)),
                restarts: n.restarts,
                last_error: n.last_error.as_deref().map(str::to_owned),
                running: n.running,
                kind: n.policy.restart,
                groups: self.groups_status(n, now),
                dynamic: self.dynamic_status(id, now),
            })
            .collect();
        nodes.sort_unstable_by(|a, b| a.dn.cmp(&b.dn));
        let root_window = self
            .default_intensity
            .map(|i| self.root_window.count(now, i.period()));
        TreeStatus { nodes, root_window }
    }

    fn groups_status(&self, node: &Node, now: u64) -> Vec<GroupStatus> {
        let Some(children) = node.children.as_deref() else {
            return Vec::new();
        };
        (0..children.groups.len())
            .map(|g| {
                let policy = children.groups.policy(g);
                let intensity = policy.intensity.or(self.default_intensity);
                GroupStatus {
                    members: children
                        .group(g)
                        .iter()
                        .map(|&m| node::name_of(&self.node(m).dn).to_owned())
                        .collect(),
                    strategy: policy.strategy,
                    ordered_shutdown: policy.ordered_shutdown,
                    intensity,
                    restarts_in_window: intensity.map(|i| {
                        children
                            .groups
                            .extra(g)
                            .map_or(0, |e| e.window.count(now, i.period()))
                    }),
                }
            })
            .collect()
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

/// The tree alone: events in, effects out, no runtime, no tasks.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{Effects, Note, Outcome, Start, Tree};
    use crate::activity::Activity;
    use crate::backoff::Backoff;
    use crate::error::{ReturnedError, RunError};
    use crate::group::Member;
    use crate::policy::{GroupPolicy, Intensity, Policy, Restart, Spec, Strategy};
    use crate::runnable::DynRunnable;
    use crate::{Context, NodeState};

    async fn idle(_ctx: Context) -> crate::Result {
        Ok(())
    }

    fn runnable() -> Arc<dyn DynRunnable> {
        Arc::new(idle)
    }

    fn tree_with(intensity: Option<Intensity>) -> (Tree, CancellationToken) {
        let token = CancellationToken::new();
        let tree = Tree::new(
            token.clone(),
            Policy::new(Backoff::default(), Duration::from_secs(1)),
            intensity,
            Vec::new(),
            Arc::new(Activity::default()),
            crate::logtree::LogTree::new(),
        );
        (tree, token)
    }

    fn tree() -> (Tree, CancellationToken) {
        tree_with(None)
    }

    fn root_of(tree: &mut Tree) -> Start {
        let policy = tree.defaults.clone();
        only_start(tree.start_root(runnable(), policy))
    }

    fn only_start(effects: Effects) -> Start {
        let mut starts = effects.starts.into_iter();
        let start = starts.next().expect("a start");
        assert!(starts.next().is_none());
        start
    }

    fn failed(reason: &str) -> Outcome {
        Outcome::Returned(Err(ReturnedError {
            cancellation: false,
            reason: Some(reason.into()),
        }))
    }

    /// Runs a group of `members` (name and kind) below `parent`.
    fn group(
        tree: &mut Tree,
        parent: &Start,
        members: &[(&'static str, Restart)],
        policy: GroupPolicy,
    ) -> Vec<Start> {
        let members: Vec<Member<&str>> = members
            .iter()
            .map(|&(name, restart)| Member {
                name,
                runnable: runnable(),
                spec: Some(Spec::new().restart(restart)),
            })
            .collect();
        let started = tree.run_group(parent.key, &members, None, policy).unwrap();
        started.starts.into_iter().collect()
    }

    /// [`group`], as an array of its `N` starts.
    fn members<const N: usize>(
        tree: &mut Tree,
        parent: &Start,
        members: &[(&'static str, Restart); N],
        policy: GroupPolicy,
    ) -> [Start; N] {
        match <[Start; N]>::try_from(group(tree, parent, members, policy)) {
            Ok(starts) => starts,
            Err(_) => unreachable!("a group starts all its members"),
        }
    }

    /// A group of three permanent members `a`, `b`, `c` below the root.
    fn three(policy: GroupPolicy) -> (Tree, [Start; 3]) {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let p = Restart::Permanent;
        let started = members(&mut tree, &root, &[("a", p), ("b", p), ("c", p)], policy);
        (tree, started)
    }

    /// The root, and a group `a`, `b` below it.
    fn with_pair() -> (Tree, Start, Start, Start) {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let members = [("a", Restart::Permanent), ("b", Restart::Permanent)];
        let mut starts = group(&mut tree, &root, &members, GroupPolicy::default()).into_iter();
        let (a, b) = (starts.next().unwrap(), starts.next().unwrap());
        (tree, root, a, b)
    }

    fn dns(effects: &Effects) -> Vec<&str> {
        effects.starts.iter().map(|s| &*s.dn).collect()
    }

    #[test]
    fn a_failure_cancels_the_group_and_each_member_restarts_once_it_returned() {
        let (mut tree, _root, a, b) = with_pair();
        let effects = tree.exited(a.key, failed("returned error: boom"));
        assert!(
            matches!(
                &effects.notes[..],
                [Note::Failed { dn, reason, .. }, Note::Restarting { .. }]
                    if &**dn == "root.a" && &**reason == "returned error: boom"
            ),
            "{:?}",
            effects.notes
        );
        // The failed member waits for its backoff; its sibling is cancelled.
        assert_eq!(effects.timers.len(), 1);
        assert_eq!(effects.timers[0].key, a.key);
        assert!(effects.starts.is_empty());
        assert!(b.cancel.is_marked());
        // The cancelled sibling starts again at once when it returns.
        let effects = tree.exited(b.key, Outcome::Returned(Ok(())));
        assert!(effects.timers.is_empty());
        assert_eq!(&*only_start(effects).dn, "root.b");
        assert_eq!(tree.states()["root.a"], NodeState::Dead);
        assert_eq!(tree.states()["root.b"], NodeState::New);
    }

    #[test]
    fn a_context_is_stale_once_its_restart_is_decided() {
        let (mut tree, _root, a, b) = with_pair();
        drop(tree.exited(a.key, failed("x")));
        drop(tree.exited(b.key, Outcome::Returned(Ok(()))));
        assert!(matches!(
            tree.reserve_sub_logger(a.key, "y"),
            Err(RunError::Stale { .. })
        ));
        let restarted = only_start(tree.backoff_elapsed(a.key));
        assert!(tree.reserve_sub_logger(restarted.key, "y").is_ok());
    }

    #[test]
    fn a_node_that_cancelled_itself_waits_out_its_backoff() {
        let (mut tree, _root, a, _b) = with_pair();
        a.cancel.token(&Activity::default()).cancel();
        let effects = tree.exited(a.key, Outcome::Returned(Ok(())));
        assert_eq!(tree.states()["root.a"], NodeState::Canceled);
        assert!(effects.starts.is_empty());
        assert_eq!(
            effects.timers.len(),
            1,
            "restarted after a backoff, not at once"
        );
    }

    #[test]
    fn forgotten_runnables_leave_in_the_effects() {
        let (mut tree, root, a, b) = with_pair();
        // The root fails, which cancels its children; once they have returned it is
        // restarted and they are forgotten, their runnables handed out to be dropped.
        drop(tree.exited(root.key, failed("root failed")));
        assert!(a.cancel.is_marked() && b.cancel.is_marked());
        drop(tree.exited(a.key, Outcome::Returned(Ok(()))));
        let effects = tree.exited(b.key, Outcome::Returned(Ok(())));
        let mut forgotten: Vec<&str> = effects.forgotten.iter().map(|f| &*f.dn).collect();
        forgotten.sort_unstable();
        assert_eq!(forgotten, ["root.a", "root.b"], "{:?}", effects.notes);
        assert!(!tree.states().contains_key("root.a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_return_past_the_grace_of_a_tree_cancel_is_an_overrun() {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        cancel_all(&mut tree);
        tokio::time::advance(Duration::from_millis(1500)).await;
        let effects = tree.exited(root.key, Outcome::Returned(Ok(())));
        assert!(
            matches!(
                &effects.notes[..],
                [Note::Failed { reason, .. }]
                    if reason.starts_with("overran its shutdown grace period by")
            ),
            "{:?}",
            effects.notes
        );
        assert_eq!(tree.states()["root"], NodeState::Dead);
    }

    /// Cancelling the tree marks, in one pass, every node that inherits its cancellation,
    /// and hands them out to be woken; an ordered member waits for its turn.
    #[test]
    fn cancelling_the_tree_marks_what_inherits_and_not_ordered_members() {
        let (mut tree, token) = tree();
        let root = root_of(&mut tree);
        let p = Restart::Permanent;
        let [a] = members(&mut tree, &root, &[("a", p)], GroupPolicy::default());
        let [b] = members(
            &mut tree,
            &root,
            &[("b", p)],
            policy(Strategy::OneForAll, true),
        );
        let mut effects = Effects::default();
        tree.cancel_all(&mut effects);
        assert!(token.is_cancelled());
        assert!(root.cancel.is_marked() && a.cancel.is_marked());
        assert!(
            !b.cancel.is_marked(),
            "an ordered member is cancelled in turn"
        );
        // The supervisor's level, the root and `a`, each once.
        assert_eq!(effects.fired.len(), 3);
        let mut again = Effects::default();
        tree.cancel_all(&mut again);
        assert!(again.fired.is_empty(), "nothing is marked twice");
        // An exit now restarts nothing.
        let effects = tree.exited(a.key, ok());
        assert!(effects.starts.is_empty() && effects.timers.is_empty());
        assert_eq!(tree.states()["root.a"], NodeState::Canceled);
    }

    fn cancel_all(tree: &mut Tree) {
        let mut effects = Effects::default();
        tree.cancel_all(&mut effects);
    }

    fn ok() -> Outcome {
        Outcome::Returned(Ok(()))
    }

    fn policy(strategy: Strategy, ordered_shutdown: bool) -> GroupPolicy {
        GroupPolicy {
            strategy,
            ordered_shutdown,
            intensity: None,
        }
    }

    #[test]
    fn rest_for_one_restarts_the_failed_member_and_those_after_it() {
        let (mut tree, [a, b, c]) = three(policy(Strategy::RestForOne, false));
        let effects = tree.exited(b.key, failed("b failed"));
        assert_eq!(effects.timers.len(), 1, "the failed one after its backoff");
        assert_eq!(effects.timers[0].key, b.key);
        assert!(!a.cancel.is_marked(), "earlier members keep running");
        assert!(c.cancel.is_marked());
        let effects = tree.exited(c.key, ok());
        assert_eq!(dns(&effects), ["root.c"], "the later one at once");
    }

    #[test]
    fn a_temporary_member_is_not_started_again_with_its_group() {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let [a, t] = members(
            &mut tree,
            &root,
            &[("a", Restart::Permanent), ("t", Restart::Temporary)],
            GroupPolicy::default(),
        );
        drop(tree.exited(a.key, failed("a failed")));
        assert!(t.cancel.is_marked());
        let effects = tree.exited(t.key, ok());
        assert!(effects.starts.is_empty());
        assert!(
            effects
                .notes
                .iter()
                .any(|n| matches!(n, Note::NotRestarted { dn, .. } if &**dn == "root.t")),
            "{:?}",
            effects.notes
        );
        assert_eq!(tree.states()["root.t"], NodeState::Canceled);
    }

    #[test]
    fn kinds_decide_what_a_node_own_end_means() {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let [keep, tr, te] = members(
            &mut tree,
            &root,
            &[
                ("keep", Restart::Permanent),
                ("tr", Restart::Transient),
                ("te", Restart::Temporary),
            ],
            GroupPolicy::default(),
        );
        // A transient node returning Ok ends normally: Done, nothing cancelled.
        let effects = tree.exited(tr.key, ok());
        assert!(effects.notes.is_empty() && effects.starts.is_empty());
        assert_eq!(tree.states()["root.tr"], NodeState::Done);
        // A temporary node's failure is its own: Dead, logged, no sibling cancelled.
        let effects = tree.exited(te.key, failed("te failed"));
        assert!(matches!(&effects.notes[0], Note::Failed { dn, .. } if &**dn == "root.te"));
        assert!(effects.starts.is_empty() && effects.timers.is_empty());
        assert_eq!(tree.states()["root.te"], NodeState::Dead);
        assert!(!keep.cancel.is_marked());
    }

    #[test]
    fn over_its_intensity_a_group_fails_its_parent() {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let zero = Intensity::new(0, Duration::from_secs(5)).unwrap();
        let members: [Member<&str>; 1] = [Member {
            name: "a",
            runnable: runnable(),
            spec: None,
        }];
        let policy = GroupPolicy {
            intensity: Some(zero),
            ..GroupPolicy::default()
        };
        let started = tree.run_group(root.key, &members, None, policy).unwrap();
        let a = started.starts.into_iter().next().unwrap();
        let effects = tree.exited(a.key, failed("returned error: boom"));
        let reasons: Vec<_> = effects
            .notes
            .iter()
            .filter_map(|n| match n {
                Note::Failed { dn, reason, .. } => Some((&**dn, &**reason)),
                _ => None,
            })
            .collect();
        assert_eq!(reasons[0], ("root.a", "returned error: boom"));
        assert_eq!(reasons[1].0, "root");
        assert_eq!(
            reasons[1].1,
            "too many restarts: 1 within 5s, more than its intensity allows (0 in 5s); last \
             failure: root.a: returned error: boom"
        );
        assert!(root.cancel.is_marked());
    }

    #[test]
    fn the_root_over_the_builder_intensity_gives_the_tree_up() {
        let (mut tree, token) = tree_with(Some(Intensity::new(0, Duration::from_secs(1)).unwrap()));
        let root = root_of(&mut tree);
        let effects = tree.exited(root.key, failed("returned error: no"));
        assert!(effects.starts.is_empty() && effects.timers.is_empty());
        assert!(token.is_cancelled());
        let reason = tree.gave_up().expect("gave up");
        assert!(
            reason.ends_with("last failure: root: returned error: no"),
            "{reason}"
        );
    }

    #[test]
    fn an_ordered_group_stops_its_members_one_at_a_time_in_reverse() {
        let (mut tree, [a, b, c]) = three(policy(Strategy::OneForAll, true));
        assert!(
            !a.cancel.is_marked(),
            "its own cancellation, not inherited from the root"
        );
        drop(tree.exited(a.key, failed("a failed")));
        assert!(
            c.cancel.is_marked() && !b.cancel.is_marked(),
            "the last first"
        );
        let effects = tree.exited(c.key, ok());
        assert!(effects.starts.is_empty());
        assert!(b.cancel.is_marked(), "then the one before it");
        let effects = tree.exited(b.key, ok());
        assert_eq!(
            dns(&effects),
            ["root.b", "root.c"],
            "then all start, in add order"
        );
        assert_eq!(effects.timers.len(), 1);
    }

    #[test]
    fn an_ordered_group_stops_in_turn_when_its_parent_is_cancelled() {
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let p = Restart::Permanent;
        let [a, b] = members(
            &mut tree,
            &root,
            &[("a", p), ("b", p)],
            policy(Strategy::OneForAll, true),
        );
        cancel_all(&mut tree);
        assert!(!a.cancel.is_marked() && !b.cancel.is_marked());
        drop(tree.parent_cancelled(root.key, 0));
        assert!(b.cancel.is_marked() && !a.cancel.is_marked());
        drop(tree.exited(b.key, ok()));
        assert!(a.cancel.is_marked());
    }

    #[test]
    fn a_self_cancel_over_the_intensity_restarts_the_parent_once_it_is_ready() {
        use crate::Signal;
        let (mut tree, _) = tree();
        let root = root_of(&mut tree);
        let mid = group(
            &mut tree,
            &root,
            &[("mid", Restart::Permanent)],
            GroupPolicy::default(),
        )
        .pop()
        .unwrap();
        let limited = GroupPolicy {
            intensity: Some(Intensity::new(0, Duration::from_secs(60)).unwrap()),
            ..GroupPolicy::default()
        };
        let a = group(&mut tree, &mid, &[("a", Restart::Permanent)], limited)
            .pop()
            .unwrap();
        drop(tree.signal(mid.key, Signal::Healthy));
        drop(tree.signal(mid.key, Signal::Done));
        drop(tree.exited(mid.key, ok()));
        a.cancel.token(&Activity::default()).cancel();
        let effects = tree.exited(a.key, ok());
        assert_eq!(tree.states()["root.mid"], NodeState::Dead);
        assert!(
            !tree.states().contains_key("root.mid.a"),
            "forgotten with its parent"
        );
        assert_eq!(effects.timers.len(), 1, "{:?}", effects.notes);
        assert_eq!(effects.timers[0].key, mid.key);
    }
}
