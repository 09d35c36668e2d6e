//! Crash reports (DESIGN §18): what a node was and said when it died.
//!
//! A report is put together under the tree's lock when the failure is decided, from the
//! tree's own bookkeeping and a copy of the newest entries at the node's DN, so that it
//! shows the tree as it was at that instant. Nothing in it is the user's: the error came to
//! the tree as text. Its text and JSON forms are made only when asked for, so that a node
//! failing in a tight loop pays for a report, not for printing one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::json::{self, Object};
use crate::logtree::LogEntry;
use crate::{Intensity, NodeState};

/// How a node died: the kind of its failure. [`CrashReport::reason`] has the whole text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Death {
    /// It returned an error (the reason has the error and its `source()` chain).
    Error,
    /// It returned `Ok` without having signalled `Done`, and was not cancelled.
    ReturnedOk,
    /// It sent a signal its state does not allow.
    IllegalSignal,
    /// It panicked.
    Panic,
    /// It did not return within its shutdown grace period, and its future was dropped.
    Aborted,
    /// It returned only after its shutdown grace period: it blocked its thread.
    Overran,
    /// Dropping its future, or what it returned, panicked.
    DropPanicked,
    /// Its watchdog starved.
    Watchdog,
    /// It was dropped because an ancestor was aborted.
    AbortedWithAncestor,
    /// Its group of children restarted more often than their intensity allows.
    Intensity,
}

impl Death {
    /// A short lowercase name: `error`, `panic`, `aborted`, `watchdog`, `intensity`, …
    pub fn name(self) -> &'static str {
        match self {
            Death::Error => "error",
            Death::ReturnedOk => "returned-ok",
            Death::IllegalSignal => "illegal-signal",
            Death::Panic => "panic",
            Death::Aborted => "aborted",
            Death::Overran => "overran",
            Death::DropPanicked => "drop-panicked",
            Death::Watchdog => "watchdog",
            Death::AbortedWithAncestor => "aborted-with-ancestor",
            Death::Intensity => "intensity",
        }
    }
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A node's DN and its state at the moment of a crash: a sibling or a child of the node
/// that died.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    /// Its DN.
    pub dn: Arc<str>,
    /// Its state then.
    pub state: NodeState,
}

/// The report of one failure of one node: what died, how and why, when, how often it has
/// restarted, what comes next, the states around it, and the last lines it logged.
///
/// Reports are kept, newest last, in a bounded ring ([`Supervisor::crash_reports`], 256 by
/// default: [`Builder::crash_reports_kept`]), logged as one ERROR entry at `supervisor`,
/// carried by [`EventKind::Died`](crate::EventKind::Died), shown on the status page, and told
/// to [`Metrics::notify_crash`](crate::Metrics::notify_crash).
///
/// `Display` gives the text an operator reads, in the manner of `systemctl status`;
/// [`to_json`](CrashReport::to_json) gives the same as one JSON object.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use supervisor::{Context, Death, Restart, Signal, Spec, Supervisor};
///
/// let sup = Supervisor::new(|ctx: Context| async move {
///     // Temporary: not restarted, so that the example settles.
///     let once = Spec::new().restart(Restart::Temporary);
///     let db = |_ctx: Context| async move {
///         tracing::info!("connecting");
///         Err::<(), _>("connection refused".into())
///     };
///     ctx.run_with("db", db, once)?;
///     ctx.signal(Signal::Healthy);
///     ctx.cancelled().await;
///     Ok(())
/// });
/// sup.settled().await;
/// let report = sup.crash_reports().pop().expect("root.db failed");
/// assert_eq!(report.dn(), "root.db");
/// assert_eq!(report.death(), Death::Error);
/// assert_eq!(report.reason(), "returned error: connection refused");
/// assert_eq!(report.last_lines()[0].message(), "connecting");
/// println!("{report}");
/// sup.cancel();
/// sup.wait().await;
/// # }
/// ```
///
/// [`Supervisor::crash_reports`]: crate::Supervisor::crash_reports
/// [`Builder::crash_reports_kept`]: crate::Builder::crash_reports_kept
#[derive(Clone, Debug)]
pub struct CrashReport {
    pub(crate) dn: Arc<str>,
    pub(crate) incarnation: u64,
    pub(crate) state: NodeState,
    pub(crate) death: Death,
    pub(crate) reason: Arc<str>,
    pub(crate) started: SystemTime,
    pub(crate) died: SystemTime,
    pub(crate) lived: Duration,
    pub(crate) restarts: u32,
    pub(crate) window: Option<(usize, Intensity)>,
    pub(crate) next_backoff: Option<Duration>,
    pub(crate) siblings: Vec<PeerState>,
    pub(crate) children: Vec<PeerState>,
    pub(crate) last_lines: Vec<LogEntry>,
}

impl CrashReport {
    /// The DN of the node that died.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// The incarnation that died: the number its start was given, unique in the tree's
    /// life, as [`Event::incarnation`](crate::Event::incarnation).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The state it was in when it died (`New` if it never signalled Healthy).
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// How it died.
    pub fn death(&self) -> Death {
        self.death
    }

    /// Why, as the supervisor logs it: `returned error: <error>: <source>: …`, `panicked:
    /// <message>`, `watchdog: no heartbeat for 2s`, `too many restarts: …`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When the incarnation started, on the wall clock.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// When it died, on the wall clock.
    pub fn died(&self) -> SystemTime {
        self.died
    }

    /// How long it ran, on the supervisor's (tokio's) clock: exact under paused time.
    pub fn lived(&self) -> Duration {
        self.lived
    }

    /// How often the node had been started again before this incarnation.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The restarts within its group's intensity period, this failure's included, and that
    /// intensity; `None` when no intensity applies to it (or it is temporary, or its death
    /// came while it was being stopped anyway, and so decides no restart).
    pub fn restarts_in_window(&self) -> Option<(usize, Intensity)> {
        self.window
    }

    /// The backoff its next start waits, when this failure restarts it; `None` when it
    /// restarts nothing by itself (temporary, escalated, the tree or its group stopping).
    pub fn next_backoff(&self) -> Option<Duration> {
        self.next_backoff
    }

    /// The other members of its group, and their states at the moment it died (before its
    /// group's restart cancels them). Empty for a group of one, and for dynamic children,
    /// each of which is its own group.
    pub fn siblings(&self) -> &[PeerState] {
        &self.siblings
    }

    /// Its children and their states at the moment it died.
    pub fn children(&self) -> &[PeerState] {
        &self.children
    }

    /// The newest entries logged at its DN before it died, oldest first: at most 50 by
    /// default ([`Builder::crash_report_lines`](crate::Builder::crash_report_lines)). Copied
    /// out of the log tree when it died, so they stay whatever the log tree drops later.
    /// The supervisor's own failure lines at the DN are not among them: each is the reason
    /// of a report of its own.
    pub fn last_lines(&self) -> &[LogEntry] {
        &self.last_lines
    }

    /// The report as one JSON object:
    ///
    /// ```json
    /// {"dn":"root.db","incarnation":7,"state":"HEALTHY","death":"error",
    ///  "reason":"returned error: connection refused","started":"2026-…Z","died":"2026-…Z",
    ///  "lived_secs":12.5,"restarts":2,"restarts_in_window":2,
    ///  "intensity":{"max_restarts":3,"period_secs":5.0},"next_backoff_secs":1.6,
    ///  "siblings":[{"dn":"root.api","state":"HEALTHY"}],"children":[],
    ///  "last_lines":[{"dn":"root.db","seq":41,"severity":"INFO",…}]}
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    /// At least the length of the report's text (`Display`), worked out without writing it:
    /// what its log entry accounts for against the log tree's budget, and measures against
    /// its size cap. Every number, duration and time is counted at its widest.
    pub(crate) fn len_bound(&self) -> usize {
        // A `u64`, or a duration or a time as they print.
        const NUMBER: usize = 20;
        const DURATION: usize = 40;
        const TIME: usize = 32;
        const STATE: usize = 8;
        const DEATH: usize = 21;
        const LABEL: usize = 18;
        let peers = |peers: &[PeerState]| -> usize {
            LABEL + 6 + peers.iter().map(|p| p.dn.len() + 3 + STATE).sum::<usize>()
        };
        let lines: usize = self
            .last_lines
            .iter()
            .map(|e| match (e.leveled(), e.raw()) {
                (Some(l), _) => {
                    // `\n    ` and the glog prefix before each line of the message.
                    let prefix = 5 + 36 + l.file().len() + NUMBER;
                    l.message().len() + prefix * (1 + l.message().matches('\n').count())
                }
                (None, Some(r)) => 7 + r.data().len(),
                (None, None) => 0,
            })
            .sum();
        (self.dn.len() + 10 + self.reason.len())
            + (LABEL + NUMBER + 10 + STATE + DEATH + DURATION + 10)
            + 2 * (LABEL + TIME + 1)
            + (LABEL + 2 * NUMBER + 2 * DURATION + 40)
            + (LABEL + DURATION + 40)
            + peers(&self.siblings)
            + peers(&self.children)
            + (20 + NUMBER + self.dn.len())
            + lines
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("dn", &self.dn)
            .num("incarnation", self.incarnation)
            .str("state", self.state.name())
            .str("death", self.death.name())
            .str("reason", &self.reason)
            .time("started", self.started)
            .time("died", self.died)
            .secs("lived_secs", self.lived)
            .num("restarts", self.restarts);
        match self.window {
            Some((count, intensity)) => {
                o.num("restarts_in_window", count);
                let mut i = String::new();
                Object::new(&mut i)
                    .num("max_restarts", intensity.max_restarts())
                    .secs("period_secs", intensity.period())
                    .end();
                o.raw("intensity", &i);
            }
            None => {
                o.raw("restarts_in_window", "null").raw("intensity", "null");
            }
        }
        o.opt_secs("next_backoff_secs", self.next_backoff);
        for (key, peers) in [("siblings", &self.siblings), ("children", &self.children)] {
            let out = o.key(key);
            out.push('[');
            for (i, peer) in peers.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                Object::new(out)
                    .str("dn", &peer.dn)
                    .str("state", peer.state.name())
                    .end();
            }
            out.push(']');
        }
        let out = o.key("last_lines");
        out.push('[');
        for (i, entry) in self.last_lines.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            entry.write_json(out);
        }
        out.push(']');
        o.end();
    }
}

impl fmt::Display for CrashReport {
    /// ```text
    /// root.db failed: returned error: connection refused
    ///      Incarnation: 7, died HEALTHY (error) after 12.5s
    ///          Started: 2026-12-02T05:40:01.123456Z
    ///             Died: 2026-12-02T05:40:13.623456Z
    ///         Restarts: 2; 2 within 5s (intensity: 3 in 5s)
    ///             Next: restart after a backoff of 1.6s
    ///         Siblings: root.api HEALTHY, root.cache NEW
    ///         Children: none
    ///   Last 1 line at root.db:
    ///     I1202 05:40:13.100000 db.rs:12] connecting
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} failed: {}", self.dn, self.reason)?;
        writeln!(
            f,
            "     Incarnation: {}, died {} ({}) after {:?}",
            self.incarnation,
            self.state.name(),
            self.death,
            self.lived
        )?;
        let mut at = String::with_capacity(32);
        json::rfc3339(&mut at, self.started);
        writeln!(f, "         Started: {at}")?;
        at.clear();
        json::rfc3339(&mut at, self.died);
        writeln!(f, "            Died: {at}")?;
        write!(f, "        Restarts: {}", self.restarts)?;
        match self.window {
            Some((count, intensity)) => writeln!(
                f,
                "; {count} within {:?} (intensity: {intensity})",
                intensity.period()
            )?,
            None => writeln!(f)?,
        }
        match self.next_backoff {
            Some(delay) if delay.is_zero() => writeln!(f, "            Next: restart at once")?,
            Some(delay) => writeln!(f, "            Next: restart after a backoff of {delay:?}")?,
            None => writeln!(f, "            Next: no restart of its own")?,
        }
        for (label, peers) in [
            ("        Siblings", &self.siblings),
            ("        Children", &self.children),
        ] {
            write!(f, "{label}: ")?;
            if peers.is_empty() {
                f.write_str("none")?;
            }
            for (i, peer) in peers.iter().enumerate() {
                let comma = if i > 0 { ", " } else { "" };
                write!(f, "{comma}{} {}", peer.dn, peer.state.name())?;
            }
            writeln!(f)?;
        }
        let n = self.last_lines.len();
        let lines = if n == 1 { "line" } else { "lines" };
        write!(f, "  Last {n} {lines} at {}:", self.dn)?;
        for entry in &self.last_lines {
            match (entry.leveled(), entry.raw()) {
                (Some(l), _) => {
                    let prefix = l.prefix();
                    for line in l.messages() {
                        write!(f, "\n    {prefix}{line}")?;
                    }
                }
                (None, Some(r)) => write!(f, "\n    R {}", r.data())?,
                (None, None) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logtree::{LogTree, ReadOptions};
    use std::io::Write as _;

    /// The bound the log tree accounts a report's entry by holds for the widest values.
    #[test]
    fn the_length_bound_holds_for_the_widest_values() {
        let log = LogTree::new();
        log.leveled_for("root.a").unwrap().info("one\ntwo\n\nthree");
        log.raw_for("root.a")
            .unwrap()
            .write_all(b"raw line\n")
            .unwrap();
        let lines = log
            .read("root.a", ReadOptions::new().backlog_all())
            .unwrap()
            .backlog;
        let peer = |dn: &str| PeerState {
            dn: dn.into(),
            state: NodeState::Canceled,
        };
        let report = CrashReport {
            dn: "root.a".into(),
            incarnation: u64::MAX,
            state: NodeState::Canceled,
            death: Death::AbortedWithAncestor,
            reason: "aborted with root".into(),
            started: SystemTime::UNIX_EPOCH,
            died: SystemTime::now(),
            lived: Duration::MAX,
            restarts: u32::MAX,
            window: Some((usize::MAX, Intensity::new(u32::MAX, Duration::MAX).unwrap())),
            next_backoff: Some(Duration::MAX),
            siblings: vec![peer("root.b"), peer("root.c")],
            children: vec![peer("root.a.x")],
            last_lines: lines,
        };
        let text = report.to_string();
        assert!(
            text.len() <= report.len_bound(),
            "{} > {}",
            text.len(),
            report.len_bound()
        );
        assert!(text.ends_with("R raw line"), "{text}");
    }
}
