//! Failure, the restart decision, and forgetting the children of a restarted node.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::NodeState;
use crate::error::Failure;
use smallvec::SmallVec;

use super::{Effects, Key, NodeId, Note, Timer, Tree};

impl Tree {
    /// How long after its grace period ran out `id` returned, if it did return late: from
    /// the earliest time the tree cancelled it, an ancestor of it, or the whole tree. (A
    /// cancellation the tree did not make — a runnable's own, a builder's token — is timed by
    /// the task instead, from the first poll after it that did not return: a runnable that
    /// blocks in the very poll that sees such a cancellation is not found out.)
    pub(super) fn overrun(&self, id: NodeId, now: u64) -> Option<Duration> {
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
    pub(super) fn fail(&mut self, id: NodeId, failure: Failure, effects: &mut Effects) -> Vec<Key> {
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
        let group: SmallVec<[NodeId; 4]> = children.group(node.group).iter().copied().collect();
        let mut siblings = Vec::with_capacity(group.len());
        for s in group.into_iter().filter(|&s| s != id) {
            let sibling = self.node_mut(s);
            if !sibling.token.is_cancelled() {
                sibling.cancelled_at = now;
                sibling.token.cancel();
            }
            siblings.push(Key {
                id: s,
                incarnation: sibling.incarnation,
            });
        }
        siblings
    }

    /// Restarts what the failure or exit of a node, and the cancellation of `nodes`, may
    /// have made ready. Each restart can forget nodes, so each is looked up again first.
    pub(super) fn restart_all(
        &mut self,
        nodes: impl IntoIterator<Item = Key>,
        effects: &mut Effects,
    ) {
        for key in nodes {
            if self.current(key).is_some() {
                self.restart_from(key.id, effects);
            }
        }
    }

    /// Restarts the subtree that `id`'s exit (or cancellation) may have made ready.
    pub(super) fn restart_from(&mut self, id: NodeId, effects: &mut Effects) {
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

    pub(super) fn next_delay(&mut self, id: NodeId) -> Duration {
        let Some(node) = self.slots[id].as_mut() else {
            unreachable!("node {id} is referenced but its slot is empty")
        };
        node.backoff.next_delay(&mut self.rng)
    }

    pub(super) fn parent_token(&self, id: NodeId) -> &CancellationToken {
        match self.node(id).parent {
            Some(p) => &self.node(p).token,
            None => &self.token,
        }
    }

    pub(super) fn start_again(&mut self, id: NodeId, effects: &mut Effects) {
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
    pub(super) fn forget_children(&mut self, id: NodeId, effects: &mut Effects) {
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

    pub(super) fn drop_restart(&mut self, id: NodeId, effects: &mut Effects) {
        self.node_mut(id).restart_pending = false;
        self.set_state(id, NodeState::Canceled);
        effects.notes.push(Note::RestartDropped {
            dn: self.node(id).dn.clone(),
        });
    }
}
