//! An operator's controls (DESIGN §18): restart a node now, stop it and hold it down,
//! release it.
//!
//! A restart by an operator cancels the node's subtree and, once it has returned, starts
//! the node again at once: no backoff, and counted in no intensity window — it is no
//! failure. Its siblings are left alone, whatever its group's strategy (OTP's
//! `restart_child`). A held node is never started again by the tree's own rules (its own
//! failure, its group's restart, a backoff timer): its group restarts around it. It is
//! forgotten, hold and all, with its parent's incarnation.

use crate::EventKind;
use crate::error::ControlError;

use super::node::Pending;
use super::{Effects, NodeId, Note, Tree};

/// An operator's control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Restart,
    Stop,
    Start,
}

impl Control {
    fn name(self) -> &'static str {
        match self {
            Control::Restart => "restart",
            Control::Stop => "stop",
            Control::Start => "start",
        }
    }
}

impl Tree {
    /// The node at `dn`, found from the root by its names.
    fn find(&self, dn: &str) -> Option<NodeId> {
        let mut labels = dn.split('.');
        if labels.next() != Some("root") {
            return None;
        }
        let mut id = 0;
        self.slots.first()?.as_ref()?;
        for label in labels {
            let children = self.node(id).children.as_deref()?;
            id = self.child_named(children, label)?;
        }
        Some(id)
    }

    /// Carries out `control` of `dn`, asked for by `by` (said in the log line).
    pub(crate) fn control(
        &mut self,
        dn: &str,
        control: Control,
        by: &str,
    ) -> Result<Effects, ControlError> {
        let Some(id) = self.find(dn) else {
            return Err(ControlError::UnknownDn(dn.to_owned()));
        };
        if id == 0 {
            return Err(ControlError::Root);
        }
        if self.cancelled_at != 0 || self.top.is_marked() {
            return Err(ControlError::ShuttingDown);
        }
        if control == Control::Start && !self.node(id).held {
            return Err(ControlError::NotHeld(dn.to_owned()));
        }
        let mut effects = Effects::default();
        let outcome = match control {
            Control::Restart => self.operator_restart(id, &mut effects),
            Control::Stop => self.operator_stop(id, &mut effects),
            Control::Start => self.operator_start(id, &mut effects),
        };
        if self.watching {
            // A dropped backoff may leave nothing to wait for.
            self.check_finished();
        }
        let dn = self.node(id).dn.clone();
        effects.notes.insert(
            0,
            Note::Controlled {
                text: format!("{by} asked to {} {dn}: {outcome}", control.name()).into(),
                dn,
            },
        );
        Ok(self.finish(effects))
    }

    /// Restarts `id` at once, or once it has returned; says what it did.
    fn operator_restart(&mut self, id: NodeId, effects: &mut Effects) -> &'static str {
        if self.parent_cancel(id).is_marked() {
            return "nothing to do: its parent is stopping, and starts it again if it restarts";
        }
        let node = self.node_mut(id);
        let was_held = std::mem::replace(&mut node.held, false);
        if was_held {
            self.event(id, EventKind::Released);
        }
        let node = self.node(id);
        match node.pending {
            Pending::Group | Pending::GroupReady => {
                return "nothing to do: it is restarting with its group";
            }
            Pending::Operator => return "already restarting",
            Pending::Backoff => {
                self.skip_backoff(id, effects);
                self.start_now(id, effects);
                return "started again at once, without the rest of its backoff";
            }
            Pending::None => {}
        }
        if node.running_below == 0 {
            self.start_now(id, effects);
            return "started again";
        }
        self.node_mut(id).pending = Pending::Operator;
        self.stop_subtree(id, effects);
        "stopping it, to start again at once once it has returned"
    }

    /// Stops `id` and holds it down; says what it did.
    fn operator_stop(&mut self, id: NodeId, effects: &mut Effects) -> &'static str {
        let node = self.node_mut(id);
        if std::mem::replace(&mut node.held, true) {
            return "nothing to do: it is held already";
        }
        self.event(id, EventKind::Held);
        let node = self.node(id);
        match node.pending {
            Pending::Backoff => {
                self.skip_backoff(id, effects);
                return "held: its pending restart is dropped";
            }
            Pending::Operator => {
                // It is stopping already, for a restart that is now not to be.
                self.node_mut(id).pending = Pending::None;
                return "held: it is stopping already";
            }
            Pending::Group | Pending::GroupReady => {
                return "held: its group restarts without it";
            }
            Pending::None => {}
        }
        if node.running_below == 0 {
            return "held: it was not running";
        }
        self.stop_subtree(id, effects);
        "held: stopping it"
    }

    /// Releases `id` (held) and starts it again; says what it did.
    fn operator_start(&mut self, id: NodeId, effects: &mut Effects) -> &'static str {
        self.node_mut(id).held = false;
        self.event(id, EventKind::Released);
        if self.parent_cancel(id).is_marked() {
            return "released: its parent is stopping, and starts it again if it restarts";
        }
        let node = self.node(id);
        match node.pending {
            Pending::Group | Pending::GroupReady => "released: it restarts with its group",
            Pending::Operator | Pending::Backoff => "released",
            Pending::None if node.running_below > 0 => {
                self.node_mut(id).pending = Pending::Operator;
                "released: it starts again once it has stopped"
            }
            Pending::None => {
                self.start_now(id, effects);
                "released and started"
            }
        }
    }

    /// Cancels `id`'s subtree, as the tree's own doing (not a self-cancel).
    fn stop_subtree(&mut self, id: NodeId, effects: &mut Effects) {
        let now = self.epoch.now().max(1);
        let node = self.node_mut(id);
        if !node.cancel.is_marked() {
            node.cancelled_at = now;
            self.cancel_subtree(id, effects);
        }
    }

    /// Drops the backoff `id` waits out, and ends its timer.
    fn skip_backoff(&mut self, id: NodeId, effects: &mut Effects) {
        if let Some(skip) = self.skips.remove(&id)
            && skip.mark()
        {
            effects.fired.push(skip);
        }
        self.backoffs -= 1;
        self.restart_not_due(id);
        self.node_mut(id).pending = Pending::None;
    }

    /// Starts `id`, whose subtree has returned, again at once.
    pub(super) fn start_now(&mut self, id: NodeId, effects: &mut Effects) {
        self.forget_children(id, effects);
        self.restart_one(id, false, effects);
    }

    /// `id`, held, has wholly returned (or its restart came due): it stays down.
    pub(super) fn hold_down(&mut self, id: NodeId, effects: &mut Effects) {
        self.forget_children(id, effects);
        self.node_mut(id).pending = Pending::None;
        effects.notes.push(Note::NotRestarted {
            dn: self.node(id).dn.clone(),
            why: "an operator holds it (until Supervisor::start)",
        });
    }
}
