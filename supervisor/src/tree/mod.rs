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
//! Here: the [`Tree`] and its event API (what contexts, tasks and timers tell it). The rest
//! is split by what it holds: `node` (nodes, their children, the name index), `restart`
//! (failure, the restart decision, forgetting children), `effects` (what the tree asks of
//! the world outside its lock, and what the world tells it).
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
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::backoff::{Backoff, Rng};
use crate::error::{Failure, NameUse, RunError};
use crate::hash::FastSet;
use crate::metrics::Metrics;
use crate::runnable::DynRunnable;
use crate::status::{NodeStatus, TreeStatus};
use crate::{NodeState, Signal};

mod effects;
mod node;
mod restart;

pub(crate) use effects::{Effects, Note, Outcome, Signalled, Start, Starts, Timer};
use node::{Epoch, Node, PAIRWISE_UP_TO, name_hash, name_taken};

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
        // A return past the grace period of a cancellation the tree made is an overrun,
        // whatever was returned (DESIGN §5).
        let outcome = match (outcome, now) {
            (Outcome::Returned(returned), Some(now)) => match self.overrun(key.id, now) {
                Some(by) => Outcome::Overran(by),
                None => Outcome::Returned(returned),
            },
            (outcome, _) => outcome,
        };
        // The three return rules of DESIGN §3, in order.
        let ending = match outcome {
            _ if node.failed => Ok(NodeState::Dead),
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
    use crate::runnable::DynRunnable;
    use crate::{Context, NodeState};

    async fn idle(_ctx: Context) -> crate::Result {
        Ok(())
    }

    fn runnable() -> Arc<dyn DynRunnable> {
        Arc::new(idle)
    }

    fn tree() -> (Tree, CancellationToken) {
        let token = CancellationToken::new();
        let tree = Tree::new(
            token.clone(),
            Backoff::default(),
            Vec::new(),
            Arc::new(Activity::default()),
            Duration::from_secs(1),
        );
        (tree, token)
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

    /// The root, and a group `a`, `b` below it.
    fn with_pair() -> (Tree, Start, Start, Start) {
        let (mut tree, _) = tree();
        let root = only_start(tree.start_root(runnable()));
        let members = [("a", runnable()), ("b", runnable())];
        let mut starts = tree
            .run_group(root.key, &members, None)
            .unwrap()
            .into_iter();
        let (a, b) = (starts.next().unwrap(), starts.next().unwrap());
        (tree, root, a, b)
    }

    #[test]
    fn a_failure_cancels_the_group_and_each_member_restarts_once_it_returned() {
        let (mut tree, _root, a, b) = with_pair();
        let effects = tree.exited(a.key, failed("returned error: boom"));
        assert!(
            matches!(
                &effects.notes[..],
                [Note::Failed { dn, reason }, Note::Restarting { .. }]
                    if &**dn == "root.a" && &**reason == "returned error: boom"
            ),
            "{:?}",
            effects.notes
        );
        // The failed member waits for its backoff; its sibling is cancelled.
        assert_eq!(effects.timers.len(), 1);
        assert_eq!(effects.timers[0].key, a.key);
        assert!(effects.starts.is_empty());
        assert!(b.token.is_cancelled());
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
        assert_eq!(
            tree.reserve_sub_logger(a.key, "y"),
            Err(RunError::Stale {
                dn: "root.a".into()
            })
        );
        let restarted = only_start(tree.backoff_elapsed(a.key));
        assert!(tree.reserve_sub_logger(restarted.key, "y").is_ok());
    }

    #[test]
    fn a_node_that_cancelled_itself_waits_out_its_backoff() {
        let (mut tree, _root, a, _b) = with_pair();
        a.token.cancel();
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
        assert!(a.token.is_cancelled() && b.token.is_cancelled());
        drop(tree.exited(a.key, Outcome::Returned(Ok(()))));
        let effects = tree.exited(b.key, Outcome::Returned(Ok(())));
        let mut forgotten: Vec<&str> = effects.forgotten.iter().map(|(dn, _)| &**dn).collect();
        forgotten.sort_unstable();
        assert_eq!(forgotten, ["root.a", "root.b"], "{:?}", effects.notes);
        assert!(!tree.states().contains_key("root.a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_return_past_the_grace_of_a_tree_cancel_is_an_overrun() {
        let (mut tree, token) = tree();
        let root = only_start(tree.start_root(runnable()));
        tree.cancelling();
        token.cancel();
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
}
