//! A group's state in its parent: where it ends among the children, its settings, its
//! restart window, and the restart it is gathering.

use std::collections::VecDeque;
use std::time::Duration;

use crate::policy::{GroupPolicy, Intensity};

/// One group of a node's children.
pub(super) struct GroupSlot {
    /// Where the group ends in the parent's `Children::ids`.
    pub(super) end: usize,
    /// Members of a decided restart that have not all returned yet: the restart starts
    /// when this reaches zero.
    pub(super) awaiting: usize,
    /// Settings and window, for a group that has either: most have neither, and cost no
    /// allocation.
    pub(super) extra: Option<Box<GroupExtra>>,
}

pub(super) struct GroupExtra {
    pub(super) policy: GroupPolicy,
    pub(super) window: Window,
}

impl GroupSlot {
    pub(super) fn new(end: usize, policy: GroupPolicy) -> GroupSlot {
        let extra = (policy != GroupPolicy::default()).then(|| {
            Box::new(GroupExtra {
                policy,
                window: Window::default(),
            })
        });
        GroupSlot {
            end,
            awaiting: 0,
            extra,
        }
    }

    pub(super) fn policy(&self) -> GroupPolicy {
        self.extra.as_ref().map(|e| e.policy).unwrap_or_default()
    }

    pub(super) fn window_mut(&mut self) -> &mut Window {
        &mut self
            .extra
            .get_or_insert_with(|| {
                Box::new(GroupExtra {
                    policy: GroupPolicy::default(),
                    window: Window::default(),
                })
            })
            .window
    }

    pub(super) fn window(&self) -> Option<&Window> {
        self.extra.as_ref().map(|e| &e.window)
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

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
