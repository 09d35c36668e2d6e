//! Crash reports and lifecycle events, as the tree makes them (DESIGN §18): under its lock,
//! at the change they tell of, so that they show the tree as it was then and reach every
//! subscriber in the order of the changes.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::crash::{CrashReport, Death, PeerState};
use crate::error::panic_message_dropped;
use crate::events::{EventKind, Events};
use crate::{Intensity, NodeState};

use super::{Effects, NodeId, Note, Told, Tree};

/// How many crash reports a tree keeps, and how many log lines each copies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CrashSettings {
    pub(crate) keep: usize,
    pub(crate) lines: usize,
}

impl Default for CrashSettings {
    fn default() -> Self {
        CrashSettings {
            keep: 256,
            lines: 50,
        }
    }
}

/// The newest crash reports, oldest first.
#[derive(Default)]
pub(super) struct Crashes {
    pub(super) settings: CrashSettings,
    ring: VecDeque<Arc<CrashReport>>,
}

/// What a failure's report says beyond the node itself.
pub(super) struct Dying {
    pub(super) was: NodeState,
    pub(super) death: Death,
    pub(super) reason: Arc<str>,
    pub(super) window: Option<(usize, Intensity)>,
    pub(super) next_backoff: Option<Duration>,
}

impl Tree {
    /// Writes the report of `id`'s death (it is `Dead` now, since its `since`): keeps it,
    /// tells the metrics sinks and the event subscribers, and hands it out to be logged.
    pub(super) fn report_death(&mut self, id: NodeId, dying: Dying, effects: &mut Effects) {
        let report = Arc::new(self.crash_report(id, dying));
        for m in &self.metrics {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| m.notify_crash(&report))) {
                self.sink_panics.push(Note::SinkPanicked {
                    dn: report.dn.clone(),
                    told: Told::Crash,
                    message: panic_message_dropped(payload),
                });
            }
        }
        self.events.send(
            &report.dn,
            report.incarnation,
            EventKind::Died(report.clone()),
        );
        let crashes = &mut self.crashes;
        if crashes.settings.keep > 0 {
            if crashes.ring.len() == crashes.settings.keep {
                crashes.ring.pop_front();
            }
            crashes.ring.push_back(report.clone());
        }
        effects.notes.push(Note::Failed {
            dn: report.dn.clone(),
            reason: report.reason.clone(),
            report,
        });
    }

    fn crash_report(&self, id: NodeId, dying: Dying) -> CrashReport {
        let node = self.node(id);
        let peers = |ids: &mut dyn Iterator<Item = NodeId>| -> Vec<PeerState> {
            ids.map(|c| {
                let n = self.node(c);
                PeerState {
                    dn: n.dn.clone(),
                    state: n.state,
                }
            })
            .collect()
        };
        let siblings = match node.parent {
            Some(parent) if !node.dynamic => {
                let members = self.groups(parent).range(node.group);
                let children = &self.node(parent).children;
                match children.as_deref() {
                    Some(c) if members.len() > 1 => {
                        peers(&mut c.ids[members].iter().copied().filter(|&m| m != id))
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        let children = match node.children.as_deref() {
            Some(c) if !c.ids.is_empty() => peers(&mut c.ids.iter().copied()),
            _ => Vec::new(),
        };
        // The tree's clock is tokio's (paused in tests); the wall clock is read once, and
        // the times are placed on it by how long ago they were on the tree's.
        let now = self.epoch.now();
        let wall = SystemTime::now();
        let ago = |t: u64| wall - Duration::from_nanos(now.saturating_sub(t));
        let lived = Duration::from_nanos(node.since.saturating_sub(node.started));
        CrashReport {
            dn: node.dn.clone(),
            incarnation: node.incarnation,
            state: dying.was,
            death: dying.death,
            reason: dying.reason,
            started: ago(node.started),
            died: ago(node.since),
            lived,
            restarts: node.restarts,
            window: dying.window,
            next_backoff: dying.next_backoff,
            siblings,
            children,
            last_lines: self
                .log_tree
                .last_lines(&node.dn, self.crashes.settings.lines),
        }
    }

    /// Tells the event subscribers that `kind` happened to the current incarnation of `id`.
    pub(super) fn event(&mut self, id: NodeId, kind: EventKind) {
        if self.events.is_watched() {
            let node = self.node(id);
            let (dn, incarnation) = (node.dn.clone(), node.incarnation);
            self.events.send(&dn, incarnation, kind);
        }
    }

    /// The event of a node entering `state`, if it has one (a start and a death have their
    /// own, with more to say).
    pub(super) fn state_event(&mut self, id: NodeId, state: NodeState) {
        let kind = match state {
            NodeState::Healthy => EventKind::Healthy,
            NodeState::Done => EventKind::Done,
            NodeState::Canceled => EventKind::Canceled,
            NodeState::New | NodeState::Dead => return,
        };
        self.event(id, kind);
    }

    /// A stream of the events from now on.
    pub(crate) fn subscribe_events(&mut self) -> Events {
        self.events.subscribe()
    }

    /// The kept crash reports, oldest first.
    pub(crate) fn crash_reports(&self) -> Vec<Arc<CrashReport>> {
        self.crashes.ring.iter().cloned().collect()
    }

    pub(crate) fn set_crash_settings(&mut self, settings: CrashSettings) {
        self.crashes.settings = settings;
    }
}
