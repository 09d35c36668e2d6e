//! Lifecycle events (DESIGN §18): a live stream of what happens to each node, in order.
//!
//! Events are made under the tree's lock, at the change they tell of, and queued there for
//! each subscriber: so every subscriber sees them in the order the tree made the changes.
//! With no subscriber nothing is made. A subscriber's queue is bounded; what does not fit
//! is counted and told in-band, as the log tree's streams do.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::crash::CrashReport;
use crate::json::Object;
use crate::lock::lock;

/// What happened to a node: one item of [`Supervisor::events`](crate::Supervisor::events).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Event {
    /// The node's DN.
    pub dn: Arc<str>,
    /// The incarnation it happened to: the number of the node's start, unique in the tree's
    /// life (a restart has a new one).
    pub incarnation: u64,
    /// What happened.
    pub kind: EventKind,
    /// When, on the wall clock.
    pub at: SystemTime,
}

/// The kinds of [`Event`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// A new incarnation was started (`New`).
    Started,
    /// It signalled `Healthy`.
    Healthy,
    /// It is `Done`: it signalled so, or a transient or temporary node returned `Ok`.
    Done,
    /// It ended `Canceled`: it returned after its context was cancelled (or its pending
    /// restart was dropped).
    Canceled,
    /// It failed (`Dead`), with the crash report.
    Died(Arc<CrashReport>),
    /// It is to start again after this delay (zero: at once).
    RestartScheduled {
        /// The backoff before the start.
        delay: Duration,
    },
    /// Its group of children restarted more often than their intensity allows: it fails
    /// for them (its `Died` follows). At the root, the tree gives up.
    Escalated,
    /// The supervisor dropped its future: its shutdown grace ran out, it is `Brutal`, or an
    /// ancestor was aborted.
    Aborted,
    /// An operator stopped it and holds it down ([`Supervisor::stop`](crate::Supervisor::stop)).
    Held,
    /// An operator released it ([`Supervisor::start`](crate::Supervisor::start)).
    Released,
}

impl EventKind {
    /// A short lowercase name: `started`, `healthy`, `done`, `canceled`, `died`,
    /// `restart-scheduled`, `escalated`, `aborted`, `held`, `released`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Healthy => "healthy",
            EventKind::Done => "done",
            EventKind::Canceled => "canceled",
            EventKind::Died(_) => "died",
            EventKind::RestartScheduled { .. } => "restart-scheduled",
            EventKind::Escalated => "escalated",
            EventKind::Aborted => "aborted",
            EventKind::Held => "held",
            EventKind::Released => "released",
        }
    }
}

impl Event {
    /// The event as one JSON object: `{"dn":"root.db","incarnation":7,"kind":"died",
    /// "at":"2026-…Z","report":{…}}`, with `"delay_secs"` for a scheduled restart and
    /// `"report"` (the [crash report](CrashReport::to_json)) for a death.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        let mut o = Object::new(&mut out);
        o.str("dn", &self.dn)
            .num("incarnation", self.incarnation)
            .str("kind", self.kind.name())
            .time("at", self.at);
        match &self.kind {
            EventKind::RestartScheduled { delay } => {
                o.secs("delay_secs", *delay);
            }
            EventKind::Died(report) => {
                let mut json = String::with_capacity(512);
                report.write_json(&mut json);
                o.raw("report", &json);
            }
            _ => {}
        }
        o.end();
        out
    }
}

impl fmt::Display for Event {
    /// `root.db #7 restart-scheduled (1.6s)`; a death adds its reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{} {}", self.dn, self.incarnation, self.kind.name())?;
        match &self.kind {
            EventKind::RestartScheduled { delay } => write!(f, " ({delay:?})"),
            EventKind::Died(report) => write!(f, ": {}", report.reason()),
            _ => Ok(()),
        }
    }
}

/// An item of [`Events`].
#[derive(Clone, Debug)]
pub enum Observed {
    /// The next event.
    Event(Event),
    /// This many events were not kept because the buffer was full; they came at this point.
    Missed(u64),
}

/// The live stream of a supervisor's lifecycle events, from when it was asked for: every
/// event once, in the order the tree made them, with a gap told as [`Observed::Missed`]
/// when the reader falls more than its buffer behind. See
/// [`Supervisor::events`](crate::Supervisor::events).
///
/// Dropping it unsubscribes.
pub struct Events {
    sub: Arc<Subscriber>,
}

impl Events {
    /// The next item; `None` once the supervisor is gone (its handle and every context
    /// dropped) and everything was read.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: an item is only taken when this resolves.
    pub async fn next(&mut self) -> Option<Observed> {
        loop {
            let ready = self.sub.ready.notified();
            match self.sub.take() {
                Ok(Some(item)) => return Some(item),
                Err(()) => return None,
                Ok(None) => ready.await,
            }
        }
    }

    /// The next item if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Observed> {
        self.sub.take().ok().flatten()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// How many events a subscriber's queue holds before it counts the rest as missed.
pub(crate) const BUFFER: usize = 4096;

struct Subscriber {
    queue: Mutex<Queue>,
    ready: Notify,
}

struct Queue {
    items: VecDeque<Observed>,
    events: usize,
    closed: bool,
}

impl Subscriber {
    fn offer(&self, event: &Event) {
        let mut q = lock(&self.queue);
        if q.events < BUFFER {
            q.items.push_back(Observed::Event(event.clone()));
            q.events += 1;
        } else if let Some(Observed::Missed(n)) = q.items.back_mut() {
            *n += 1;
        } else {
            q.items.push_back(Observed::Missed(1));
        }
        drop(q);
        self.ready.notify_one();
    }

    fn take(&self) -> Result<Option<Observed>, ()> {
        let mut q = lock(&self.queue);
        match q.items.pop_front() {
            Some(item) => {
                if let Observed::Event(_) = item {
                    q.events -= 1;
                }
                Ok(Some(item))
            }
            None if q.closed => Err(()),
            None => Ok(None),
        }
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_one();
    }
}

/// The subscribers of one tree, kept in it.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Vec<Weak<Subscriber>>,
}

impl Hub {
    pub(crate) fn subscribe(&mut self) -> Events {
        let sub = Arc::new(Subscriber {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                events: 0,
                closed: false,
            }),
            ready: Notify::new(),
        });
        self.subscribers.push(Arc::downgrade(&sub));
        Events { sub }
    }

    /// Whether anyone listens: events are made only then.
    pub(crate) fn is_watched(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// Queues the event for every subscriber still there.
    pub(crate) fn send(&mut self, dn: &Arc<str>, incarnation: u64, kind: EventKind) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = Event {
            dn: dn.clone(),
            incarnation,
            kind,
            at: SystemTime::now(),
        };
        self.subscribers.retain(|sub| match sub.upgrade() {
            Some(sub) => {
                sub.offer(&event);
                true
            }
            None => false,
        });
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for sub in self.subscribers.iter().filter_map(Weak::upgrade) {
            sub.close();
        }
    }
}
