//! A node's groups of children: where each ends, and for the few that have any, their
//! settings, restart window, and the restart they are gathering.

use std::collections::VecDeque;
use std::time::Duration;

use smallvec::SmallVec;

use crate::policy::{GroupPolicy, Intensity, nanos};

/// What a group has beyond its members: settings other than the defaults, a restart
/// window, the restart it is gathering. Most groups have none and cost nothing: their
/// parent keeps only where each ends.
#[derive(Default)]
pub(super) struct GroupExtra {
    pub(super) policy: GroupPolicy,
    pub(super) window: Window,
    /// Members of a decided restart of an ordered group that have not all returned yet:
    /// the restart starts when this reaches zero.
    pub(super) awaiting: usize,
}

/// A node's groups: where each ends among its children, and the extras of those that
/// have any, by group number.
#[derive(Default)]
pub(super) struct Groups {
    ends: SmallVec<[usize; 1]>,
    extras: Vec<(usize, Box<GroupExtra>)>,
}

impl Groups {
    /// Adds a group ending at `end`, the number of children so far.
    pub(super) fn push(&mut self, end: usize, policy: GroupPolicy) {
        if policy != GroupPolicy::default() {
            let extra = GroupExtra {
                policy,
                ..GroupExtra::default()
            };
            self.extras.push((self.ends.len(), Box::new(extra)));
        }
        self.ends.push(end);
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Where group `g` starts and ends among the children.
    pub(super) fn range(&self, g: usize) -> std::ops::Range<usize> {
        let start = g.checked_sub(1).map_or(0, |g| self.ends[g]);
        start..self.ends[g]
    }

    pub(super) fn extra(&self, g: usize) -> Option<&GroupExtra> {
        self.extras.iter().find(|(i, _)| *i == g).map(|(_, e)| &**e)
    }

    pub(super) fn extra_mut(&mut self, g: usize) -> &mut GroupExtra {
        let at = match self.extras.iter().position(|(i, _)| *i == g) {
            Some(at) => at,
            None => {
                self.extras.push((g, Box::default()));
                self.extras.len() - 1
            }
        };
        &mut self.extras[at].1
    }

    pub(super) fn policy(&self, g: usize) -> GroupPolicy {
        self.extra(g).map(|e| e.policy).unwrap_or_default()
    }
}

/// The restarts of a group within its intensity's period: their times on the tree's clock,
/// oldest first. It keeps at most `max_restarts + 1` of them, all that can matter.
#[derive(Default)]
pub(crate) struct Window {
    times: VecDeque<u64>,
}

impl Window {
    /// Records a restart decided at `now`, and returns how many restarts the window holds,
    /// this one included. A restart exactly `period` before `now` is still inside (as in
    /// OTP, whose window is closed at both ends).
    pub(super) fn record(&mut self, now: u64, intensity: Intensity) -> usize {
        self.forget_before(now, intensity.period());
        self.times.push_back(now);
        let keep = usize::try_from(intensity.max_restarts())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while self.times.len() > keep {
            self.times.pop_front();
        }
        self.times.len()
    }

    /// How many restarts fall within `period` before `now`.
    pub(super) fn count(&self, now: u64, period: Duration) -> usize {
        let threshold = now.saturating_sub(nanos(period));
        self.times.iter().filter(|&&t| t >= threshold).count()
    }

    fn forget_before(&mut self, now: u64, period: Duration) {
        let threshold = now.saturating_sub(nanos(period));
        while self.times.front().is_some_and(|&t| t < threshold) {
            self.times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_closed_at_its_old_edge_and_slides() {
        let intensity = Intensity::new(2, Duration::from_secs(10)).unwrap();
        let mut w = Window::default();
        let s = 1_000_000_000;
        assert_eq!(w.record(5 * s, intensity), 1);
        assert_eq!(w.record(10 * s, intensity), 2);
        // Exactly one period after the first: it still counts.
        assert_eq!(w.record(15 * s, intensity), 3);
        // One nanosecond later than that, the first has left.
        assert_eq!(w.count(15 * s + 1, Duration::from_secs(10)), 2);
        assert_eq!(w.record(20 * s + 1, intensity), 2);
        assert_eq!(w.count(40 * s, Duration::from_secs(10)), 0);
    }
}
