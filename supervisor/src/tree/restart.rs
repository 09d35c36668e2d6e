//! Failure, the restart decision, and what follows from it: gathering a group's members,
//! stopping an ordered group in turn, starting them again, escalating, aborting subtrees,
//! and forgetting the children of a restarted node (DESIGN §4, §14).
//!
//! A restart is *decided* when a member fails (or, returning, turns out to have cancelled
//! itself): it counts in its group's intensity window then, and the members to restart are
//! marked [`Pending::Group`] and cancelled. Each member starts again once it and everything
//! below it have returned (DESIGN §4) — the failed ones after their backoff, the others at
//! once. An ordered group instead stops its members one at a time, marks each
//! [`Pending::GroupReady`] once it has returned, and when the last has, starts them all
//! again in add order.

use std::sync::Arc;
use std::time::Duration;

use crate::NodeState;
use crate::cancel::Cancel;
use crate::error::Failure;
use crate::policy::{Intensity, Restart, Shutdown, Strategy, nanos};
use smallvec::SmallVec;

use super::node::{Kill, Pending};
use super::report::Dying;
use super::{Effects, Key, NodeId, Note, Timer, Tree};
use crate::EventKind;

/// A group's members, copied out so that the tree can be changed while going through them.
type Members = SmallVec<[NodeId; 8]>;

impl Tree {
    /// How long after its shutdown deadline `id` returned, if it did return late: from the
    /// earliest time the tree cancelled it, an ancestor whose cancellation reaches it, or
    /// the whole tree, plus its own timeout. (A cancellation the tree did not make — through
    /// a handed-out token — is timed by the task instead, from the first
    /// poll after it that did not return: a runnable that blocks in the very poll that sees
    /// such a cancellation is not found out.) A `Brutal` or `Infinity` node is never late.
    pub(super) fn overrun(&self, id: NodeId, now: u64) -> Option<Duration> {
        let Shutdown::Timeout(timeout) = self.node(id).policy.shutdown else {
            return None;
        };
        let mut cancelled = 0;
        let mut whole_tree = true;
        let mut cur = Some(id);
        while let Some(c) = cur {
            let node = self.node(c);
            cancelled = earliest(cancelled, node.cancelled_at);
            if node.ordered {
                // Above an ordered member, cancellations reach it only in its turn.
                whole_tree = false;
                break;
            }
            cur = node.parent;
        }
        if whole_tree {
            cancelled = earliest(cancelled, self.cancelled_at);
        }
        if cancelled == 0 {
            return None;
        }
        let deadline = cancelled.saturating_add(nanos(timeout));
        (now > deadline).then(|| Duration::from_nanos(now - deadline))
    }

    /// Marks `id` dead and, if this is a new failure, decides what restarts. Returns the
    /// nodes to check for a restart: a member that has already returned (Done) sends no
    /// event of its own, so the caller checks them — after this, as a restart forgets nodes.
    ///
    /// A node that fails after its context was cancelled (aborted after the grace period,
    /// an error other than the cancellation error on its way out, a wrong signal during
    /// shutdown) is recorded dead, but its failure is not a new failure of its group:
    /// whatever cancelled it has dealt with its siblings, and cancelling them again would
    /// restart healthy neighbours once more for each slow one (two slow siblings would
    /// abort each other forever). A temporary node's failure stops its own subtree only.
    pub(super) fn fail(&mut self, id: NodeId, failure: Failure, effects: &mut Effects) -> Vec<Key> {
        let was = self.node(id).state;
        self.set_state(id, NodeState::Dead);
        // When it died is when the restart is decided, and when the tree cancels it and its
        // siblings (0 means "not cancelled" there).
        let died = self.node(id).since;
        let now = died.max(1);
        let node = self.node_mut(id);
        let reason = failure.reason();
        node.last_error = Some(reason.clone());
        let mut dying = Dying {
            was,
            death: failure.death(),
            reason: reason.clone(),
            window: None,
            next_backoff: None,
        };
        // The failure is written at its DN too.
        self.mark_logged(id);
        self.catch_up_tokens(id, effects);
        let node = self.node_mut(id);
        if node.cancel.is_marked() {
            self.report_death(id, dying, effects);
            return Vec::new();
        }
        node.cancelled_at = now;
        self.cancel_subtree(id, effects);
        if self.node(id).policy.restart == Restart::Temporary {
            self.report_death(id, dying, effects);
            return Vec::new();
        }
        // Counted first, so that the report says where the window stands; reported
        // before an escalation fails the parent, whose report comes after this one.
        let counted = self.record_restart(id, died);
        dying.window = counted.map(|(count, intensity, _)| (count, intensity));
        let escalates = counted.is_some_and(|(_, _, over)| over);
        if !escalates && self.cancelled_at == 0 && !self.top.is_marked() {
            let delay = self.next_delay(id);
            self.delays.insert(id, delay);
            dying.next_backoff = Some(delay);
        }
        self.report_death(id, dying, effects);
        if let Some((count, intensity, true)) = counted {
            return self.escalate(id, count, intensity, &reason, effects);
        }
        self.decide(id, died, effects)
    }

    /// Decides the restart that a new failure of `id` at `died`, already counted and within
    /// its intensity, asks for: marks and cancels the members to restart.
    fn decide(&mut self, id: NodeId, died: u64, effects: &mut Effects) -> Vec<Key> {
        let now = died.max(1);
        let node = self.node(id);
        let (parent, g) = match node.parent {
            Some(parent) if !node.dynamic => (parent, node.group),
            // The root is a group of one, restarted by the supervisor; so is each child of a
            // dynamic group.
            _ => {
                self.node_mut(id).pending = Pending::Group;
                return Vec::new();
            }
        };
        let groups = self.groups(parent);
        let (range, policy) = (groups.range(g), groups.policy(g));
        let from = match policy.strategy {
            Strategy::OneForAll => range.start,
            Strategy::RestForOne => range
                .clone()
                .find(|&i| self.child_at(parent, i) == id)
                .unwrap_or(range.start),
        };
        // The failed member itself is checked by the caller, so a group of one (`ctx.run`,
        // the most common) allocates nothing here.
        let mut keys = Vec::new();
        let mut added = 0;
        for i in from..range.end {
            let m = self.child_at(parent, i);
            let member = self.node_mut(m);
            // A member waiting out its own backoff restarts on its own timer.
            if member.pending == Pending::None {
                member.pending = Pending::Group;
                added += 1;
            }
            if m == id {
                // Cancelled already, by its failure.
                continue;
            }
            // An ordered group's members are cancelled in turn, by `step`.
            if !policy.ordered_shutdown && !member.cancel.is_marked() {
                member.cancelled_at = now;
                self.cancel_subtree(m, effects);
            }
            keys.push(Key {
                id: m,
                incarnation: self.node(m).incarnation,
            });
        }
        if policy.ordered_shutdown {
            self.groups_mut(parent).extra_mut(g).awaiting += added;
            self.step(parent, g, effects);
        }
        keys
    }

    /// Counts a restart of `id` decided at `now` in its group's window (the root's: the
    /// supervisor's, with the builder's intensity). Over the intensity, the parent fails
    /// instead — or, for the root, the tree gives up — and the nodes that failure asks to
    /// check are returned as the error.
    fn count_restart(
        &mut self,
        id: NodeId,
        now: u64,
        reason: &str,
        effects: &mut Effects,
    ) -> Result<(), Vec<Key>> {
        match self.record_restart(id, now) {
            Some((count, intensity, true)) => {
                Err(self.escalate(id, count, intensity, reason, effects))
            }
            _ => Ok(()),
        }
    }

    /// Records a restart of `id` decided at `now` in its group's window, if an intensity
    /// applies: the restarts the window holds now, the intensity, and whether that is more
    /// than it allows.
    fn record_restart(&mut self, id: NodeId, now: u64) -> Option<(usize, Intensity, bool)> {
        let node = self.node(id);
        let counted = match node.parent {
            None => CountedIn::Root,
            Some(group) if node.dynamic => CountedIn::Dynamic(group),
            Some(parent) => CountedIn::Group(parent, node.group),
        };
        let own = match counted {
            CountedIn::Root => None,
            CountedIn::Dynamic(group) => self.dynamic_group(group).and_then(|d| d.intensity),
            CountedIn::Group(parent, g) => self.groups(parent).policy(g).intensity,
        };
        let intensity = own.or(self.default_intensity)?;
        // Only now, with an intensity to count against: a group's window is made on demand.
        let window = match counted {
            CountedIn::Root => &mut self.root_window,
            CountedIn::Dynamic(group) => match self.dynamic_group(group) {
                Some(group) => &mut group.window,
                None => unreachable!("a dynamic child's parent is a dynamic group"),
            },
            CountedIn::Group(parent, g) => &mut self.groups_mut(parent).extra_mut(g).window,
        };
        let count = window.record(now, intensity);
        Some((count, intensity, count > allowed(intensity)))
    }

    /// The restarts of `id`'s group went over its intensity: its parent fails instead —
    /// or, for the root, the tree gives up. Returns the nodes that failure asks to check.
    fn escalate(
        &mut self,
        id: NodeId,
        count: usize,
        intensity: Intensity,
        reason: &str,
        effects: &mut Effects,
    ) -> Vec<Key> {
        let node = self.node(id);
        let counted = match node.parent {
            None => CountedIn::Root,
            Some(group) if node.dynamic => CountedIn::Dynamic(group),
            Some(parent) => CountedIn::Group(parent, node.group),
        };
        let failure = Failure::Escalated {
            count,
            intensity,
            last: [&*self.node(id).dn, ": ", reason].concat().into(),
        };
        let parent = match counted {
            CountedIn::Root => None,
            // A dynamic group belongs to its parent's incarnation: its parent fails.
            CountedIn::Dynamic(group) => self.node(group).parent,
            CountedIn::Group(parent, _) => Some(parent),
        };
        match parent {
            Some(p) => {
                self.event(p, EventKind::Escalated);
                let parent = self.node_mut(p);
                if parent.running {
                    // Whatever it returns now, it has failed.
                    parent.failed = true;
                }
                self.fail(p, failure, effects)
            }
            None => {
                self.event(id, EventKind::Escalated);
                self.give_up(format!("root: {failure}").into(), effects);
                Vec::new()
            }
        }
    }

    /// The root escalated: nothing restarts any more, and everything shuts down.
    fn give_up(&mut self, reason: Arc<str>, effects: &mut Effects) {
        effects.notes.push(Note::GaveUp {
            reason: reason.clone(),
        });
        self.gave_up = Some(reason);
        self.cancel_all(effects);
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

    /// Moves on the restart that `id`'s exit (or cancellation) may have made ready: that
    /// of the topmost cancelled node above it whose subtree has now wholly returned.
    pub(super) fn restart_from(&mut self, id: NodeId, effects: &mut Effects) {
        // The whole tree is being cancelled.
        if self.cancelled_at != 0 || self.top.is_marked() {
            return;
        }
        let mut top = None;
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = self.node(c);
            if !n.cancel.is_marked() {
                break;
            }
            top = Some(c);
            cur = n.parent;
        }
        let Some(top) = top else { return };
        let node = self.node(top);
        if node.running_below > 0 {
            return;
        }
        match node.pending {
            Pending::Backoff | Pending::GroupReady => {}
            Pending::Group => self.member_ready(top, effects),
            Pending::Operator => self.start_now(top, effects),
            Pending::None if node.held => self.hold_down(top, effects),
            Pending::None => self.restart_alone(top, effects),
        }
    }

    /// A member of a decided restart has wholly returned.
    fn member_ready(&mut self, id: NodeId, effects: &mut Effects) {
        self.forget_children(id, effects);
        self.node_mut(id).pending = Pending::GroupReady;
        let Some(parent) = self.node(id).parent else {
            self.launch_member(id, effects);
            return;
        };
        let g = self.node(id).group;
        if self.node(id).dynamic || !self.groups(parent).policy(g).ordered_shutdown {
            // Each member restarts as soon as its own subtree has returned (DESIGN §4).
            self.launch_member(id, effects);
            return;
        }
        let gathering = self.groups_mut(parent).extra_mut(g);
        gathering.awaiting -= 1;
        if gathering.awaiting == 0 {
            let (members, _) = self.group_of(parent, g);
            for m in members {
                if self.node(m).pending == Pending::GroupReady {
                    self.launch_member(m, effects);
                }
            }
        } else {
            self.step(parent, g, effects);
        }
    }

    /// Starts a gathered member again: one that failed (or cancelled itself) after its
    /// backoff, one its group cancelled at once, a temporary one not at all.
    fn launch_member(&mut self, id: NodeId, effects: &mut Effects) {
        let node = self.node_mut(id);
        node.pending = Pending::None;
        if node.held {
            self.hold_down(id, effects);
            return;
        }
        let node = self.node_mut(id);
        if node.policy.restart == Restart::Temporary {
            effects.notes.push(Note::NotRestarted {
                dn: node.dn.clone(),
                why: "it is temporary",
            });
            if node.dynamic {
                self.leave(id, effects);
            }
            return;
        }
        let after_backoff = node.state == NodeState::Dead || node.cancelled_at == 0;
        self.restart_one(id, after_backoff, effects);
    }

    /// A node whose subtree has returned with no restart decided for it: it cancelled
    /// itself, or it is temporary, or it failed on its way out after cancelling itself.
    fn restart_alone(&mut self, id: NodeId, effects: &mut Effects) {
        self.forget_children(id, effects);
        let node = self.node(id);
        let why = match node.policy.restart {
            Restart::Temporary => Some("it is temporary"),
            Restart::Transient if node.state != NodeState::Dead => {
                Some("it is transient and ended normally")
            }
            _ => None,
        };
        if let Some(why) = why {
            effects.notes.push(Note::NotRestarted {
                dn: node.dn.clone(),
                why,
            });
            if node.parent.is_none() && node.state != NodeState::Done {
                // A root that will not run again, and did not finish: the tree gave up.
                let mut reason = format!("root: {} and not restarted ({why})", node.state.name());
                if let Some(error) = node.last_error.as_deref() {
                    reason.push_str(": ");
                    reason.push_str(error);
                }
                self.give_up(reason.into(), effects);
            } else if node.dynamic {
                self.leave(id, effects);
            }
            return;
        }
        // Restarted like a failed node (DESIGN §14): decided now, and counted.
        let reason = node
            .last_error
            .clone()
            .filter(|_| node.state == NodeState::Dead)
            .unwrap_or_else(|| Arc::from("cancelled itself"));
        let now = self.epoch.now();
        match self.count_restart(id, now, &reason, effects) {
            Ok(()) => self.restart_one(id, true, effects),
            Err(escalated) => {
                // The parent failed instead: from `id`, its subtree may now be ready.
                let key = Key {
                    id,
                    incarnation: self.node(id).incarnation,
                };
                self.restart_all(std::iter::once(key).chain(escalated), effects);
            }
        }
    }

    /// Starts `id` again, at once or after its backoff.
    pub(super) fn restart_one(&mut self, id: NodeId, after_backoff: bool, effects: &mut Effects) {
        if after_backoff {
            let delay = match self.delays.remove(&id) {
                Some(delay) => delay,
                None => self.next_delay(id),
            };
            self.event(id, EventKind::RestartScheduled { delay });
            if !delay.is_zero() {
                self.backoffs += 1;
                self.restart_due(id, delay);
                let node = self.node_mut(id);
                node.pending = Pending::Backoff;
                let dn = node.dn.clone();
                let key = Key {
                    id,
                    incarnation: node.incarnation,
                };
                let parent = self.parent_cancel(id).clone();
                let skip = Arc::new(Cancel::without_task());
                self.skips.insert(id, skip.clone());
                effects.notes.push(Note::Restarting { dn, delay });
                effects.timers.push(Timer {
                    key,
                    delay,
                    parent,
                    skip,
                    busy: self.activity.hold(),
                });
                return;
            }
        }
        if !after_backoff {
            self.event(
                id,
                EventKind::RestartScheduled {
                    delay: Duration::ZERO,
                },
            );
        }
        effects.notes.push(Note::Restarting {
            dn: self.node(id).dn.clone(),
            delay: Duration::ZERO,
        });
        self.start_again(id, effects);
    }

    /// Stops the next member of the ordered group `g` of `parent`: once no member is being
    /// waited for, the last one in add order that is to stop — every member when the parent
    /// is cancelled, else those of the decided restart. A member with nothing running is
    /// passed at once. (O(members) a step: groups are small.)
    pub(super) fn step(&mut self, parent: NodeId, g: usize, effects: &mut Effects) {
        let parent_cancelled = self.node(parent).cancel.is_marked();
        let (members, _) = self.group_of(parent, g);
        let stopping = members.iter().any(|&m| {
            let n = self.node(m);
            n.cancel.is_marked() && n.running_below > 0
        });
        if stopping {
            return;
        }
        let now = self.epoch.now().max(1);
        for &m in members.iter().rev() {
            let n = self.node_mut(m);
            if n.cancel.is_marked() || !(parent_cancelled || n.pending == Pending::Group) {
                continue;
            }
            n.cancelled_at = now;
            self.cancel_subtree(m, effects);
            if self.node(m).running_below > 0 {
                return;
            }
            if !parent_cancelled {
                // Gathered at once; that moves the group on (the next step, or the start).
                self.member_ready(m, effects);
                return;
            }
        }
    }

    /// Drops what still runs below `id`, which was just aborted (`kind` says how): each
    /// running node is marked, cancelled if it was not (an ordered member waiting its turn),
    /// and told through its registered [`Abort`](super::Abort), if it has one; one that has
    /// not registered yet is told when it does.
    pub(super) fn kill_below(&mut self, id: NodeId, kind: Kill, effects: &mut Effects) {
        let now = self.epoch.now().max(1);
        let mut stack: Members = self.children_of(id);
        while let Some(c) = stack.pop() {
            let node = self.node_mut(c);
            if node.running_below == 0 {
                continue;
            }
            if node.kill == Kill::None {
                node.kill = kind;
            }
            if !node.cancel.is_marked() {
                node.cancelled_at = now;
                self.cancel_subtree(c, effects);
            }
            let node = self.node(c);
            if node.running
                && let Some(abort) = self.aborts.get(&c)
            {
                abort.abort();
            }
            stack.extend(self.children_of(c));
        }
    }

    /// The DN of the node whose abort reached `id`: the topmost of the marked ancestors.
    pub(super) fn kill_origin(&self, id: NodeId) -> Arc<str> {
        let mut origin = id;
        while let Some(p) = self.node(origin).parent {
            if self.node(p).kill == Kill::None {
                break;
            }
            origin = p;
        }
        self.node(origin).dn.clone()
    }

    pub(super) fn next_delay(&mut self, id: NodeId) -> Duration {
        let Some(node) = self.slots[id].as_mut() else {
            unreachable!("node {id} is referenced but its slot is empty")
        };
        node.backoff.next_delay(&node.policy.backoff, &mut self.rng)
    }

    /// The cancellation `id` inherits: its parent's, or the supervisor's for the root.
    pub(super) fn parent_cancel(&self, id: NodeId) -> &Arc<Cancel> {
        match self.node(id).parent {
            Some(p) => &self.node(p).cancel,
            None => &self.top,
        }
    }

    /// The cancellation of a new incarnation of a node below `parent`: born cancelled if
    /// the parent's (the supervisor's, for the root) is, unless it is an ordered member,
    /// which the tree cancels in its turn.
    pub(super) fn cancel_below(&self, parent: Option<NodeId>, ordered: bool) -> Arc<Cancel> {
        let inherited = match parent {
            _ if ordered => false,
            Some(p) => self.node(p).cancel.is_marked(),
            None => self.top.is_marked(),
        };
        Arc::new(Cancel::new(inherited))
    }

    /// Cancels `id` and what inherits its cancellation below it: every descendant but the
    /// ordered members and theirs, which the tree cancels in turn. They are marked now, and
    /// woken by `apply` once the lock is released. A node marked already is passed with
    /// its subtree: what inherits from it was marked with it, or born so.
    pub(super) fn cancel_subtree(&mut self, id: NodeId, effects: &mut Effects) {
        let mut stack: Members = SmallVec::new();
        stack.push(id);
        while let Some(c) = stack.pop() {
            let node = self.node(c);
            // (Ordered members are passed when reached, so that each node is read once.)
            if (c != id && node.ordered) || !node.cancel.mark() {
                continue;
            }
            effects.fired.push(node.cancel.clone());
            if let Some(children) = &node.children {
                stack.extend(children.ids.iter().copied());
            }
        }
    }

    /// Cancels everything: the supervisor's level and the root's subtree (see
    /// [`cancelling`](Tree::cancelling), which it notes first).
    pub(crate) fn cancel_all(&mut self, effects: &mut Effects) {
        self.cancelling();
        if self.top.mark() {
            effects.fired.push(self.top.clone());
        }
        if self.slots.first().is_some_and(Option::is_some) {
            self.cancel_subtree(0, effects);
        }
        self.token.cancel();
    }

    pub(super) fn start_again(&mut self, id: NodeId, effects: &mut Effects) {
        let node = self.node(id);
        let cancel = self.cancel_below(node.parent, node.ordered);
        let node = self.node_mut(id);
        node.cancel = cancel;
        // Normally already forgotten (which counted its readiness again); nothing of the
        // last incarnation may reach the next.
        let had_children = node.children.take().is_some();
        node.failed = false;
        node.cancelled_at = 0;
        node.pending = Pending::None;
        node.kill = Kill::None;
        node.restarts += 1;
        if !self.delays.is_empty() {
            self.delays.remove(&id);
        }
        self.restart_not_due(id);
        self.set_state(id, NodeState::New);
        if had_children {
            self.recount(id);
        }
        effects.starts.push(self.launch(id));
    }

    /// Forgets every node below `id`, which is starting again. Restarts pending among them
    /// are dropped (`Canceled`). Its static children come back with it; its dynamic ones,
    /// and whatever is below them, leave the tree.
    pub(super) fn forget_children(&mut self, id: NodeId, effects: &mut Effects) {
        let Some(children) = self.node_mut(id).children.take() else {
            return;
        };
        self.forget_all(children.ids.iter().map(|&c| (c, false)).collect(), effects);
        self.recount(id);
    }

    /// Forgets `id` and everything below it.
    pub(super) fn forget(&mut self, id: NodeId, effects: &mut Effects) {
        self.forget_all(smallvec::smallvec![(id, false)], effects);
    }

    /// Forgets the nodes of `stack` and their subtrees, each paired with whether the node
    /// above it leaves the tree for good (and so everything below it does).
    fn forget_all(&mut self, mut stack: SmallVec<[(NodeId, bool); 4]>, effects: &mut Effects) {
        while let Some((c, above_removed)) = stack.pop() {
            if self.node(c).pending == Pending::Backoff {
                self.drop_restart(c, effects);
            }
            if !self.delays.is_empty() {
                self.delays.remove(&c);
            }
            if let Some(node) = self.slots[c].take() {
                debug_assert!(!node.running, "forgot running node {}", node.dn);
                let removed = above_removed || node.dynamic;
                if removed {
                    // The topmost leaving node's log, and everything below it, goes.
                    self.removed(&node.dn, !above_removed && node.logged, effects);
                }
                if let Some(children) = node.children {
                    stack.extend(children.ids.iter().map(|&c| (c, removed)));
                }
                effects.forgotten.push(super::Forgotten {
                    dn: node.dn,
                    runnable: node.runnable,
                    removed,
                });
                self.health_forget(c);
                self.free.push(c);
            }
        }
    }

    pub(super) fn drop_restart(&mut self, id: NodeId, effects: &mut Effects) {
        self.skips.remove(&id);
        self.backoffs -= 1;
        self.restart_not_due(id);
        self.node_mut(id).pending = Pending::None;
        self.set_state(id, NodeState::Canceled);
        effects.notes.push(Note::RestartDropped {
            dn: self.node(id).dn.clone(),
        });
    }

    /// The members of group `g` of `parent`, and its settings.
    fn group_of(&self, parent: NodeId, g: usize) -> (Members, crate::policy::GroupPolicy) {
        let Some(children) = self.node(parent).children.as_deref() else {
            unreachable!("{} has a group but no children", self.node(parent).dn)
        };
        (
            children.group(g).iter().copied().collect(),
            children.groups.policy(g),
        )
    }

    /// The `i`-th child of `parent`, in start order.
    fn child_at(&self, parent: NodeId, i: usize) -> NodeId {
        match self.node(parent).children.as_deref() {
            Some(children) => children.ids[i],
            None => unreachable!("{} has a group but no children", self.node(parent).dn),
        }
    }

    fn children_of(&self, id: NodeId) -> Members {
        self.node(id)
            .children
            .as_deref()
            .map(|c| c.ids.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(super) fn groups(&self, parent: NodeId) -> &super::group::Groups {
        match self.node(parent).children.as_deref() {
            Some(children) => &children.groups,
            None => unreachable!("{} has a group but no children", self.node(parent).dn),
        }
    }

    pub(super) fn groups_mut(&mut self, parent: NodeId) -> &mut super::group::Groups {
        match self.node_mut(parent).children.as_deref_mut() {
            Some(children) => &mut children.groups,
            None => unreachable!("a node has a group but no children"),
        }
    }
}

/// Where a node's restarts are counted, and so whose intensity they are held to.
#[derive(Clone, Copy)]
enum CountedIn {
    /// The root's: the supervisor's, with the builder's intensity.
    Root,
    /// A dynamic group's (the node's parent).
    Dynamic(NodeId),
    /// Group `g` of the parent.
    Group(NodeId, usize),
}

/// The earlier of two times on the tree's clock, 0 meaning "never".
fn earliest(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, t) | (t, 0) => t,
        (a, b) => a.min(b),
    }
}

/// How many restarts `intensity` allows, as a count.
fn allowed(intensity: Intensity) -> usize {
    usize::try_from(intensity.max_restarts()).unwrap_or(usize::MAX)
}
