//! Where entries live: per-DN retention, a global budget, and live subscriptions.
//!
//! # Invariants
//!
//! - Every entry has a unique sequence number; numbers grow in the order entries are
//!   appended, and that is the journal order readers see.
//! - Each DN's deque holds its retained entries in sequence order; retention only ever
//!   removes from the front, so an entry of `dn` with number `s` is retained exactly when
//!   `s >= front(dn).seq`. Entries are stored in the deque itself, not shared: a
//!   [`LogEntry`] is made only for a reader or a stream, so writing one costs no allocation
//!   of its own, and retention drops old entries without chasing pointers.
//! - `order` lists `(seq, dn)` of appended entries oldest first, including some already
//!   evicted by per-DN retention ("orphans"); it is compacted when orphans outnumber the
//!   retained entries, so its size stays proportional to what is retained.
//! - Appending and subscribing happen under the journal's lock, so a subscriber sees
//!   exactly the entries numbered from its `start` on, in order, and a backlog read takes
//!   exactly those before it.
//!
//! - Entries waiting in subscribers' queues are counted in `streamed`, in bytes as the
//!   budget counts them: each queue holds at most its own byte bound, and all of them
//!   together at most `global_bytes`. (Offers are made under the journal's lock, so the
//!   total is checked and raised by one writer at a time; readers only lower it.)
//!
//! Lock order: journal, then a subscriber's queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::lock::lock;
use crate::name::in_subtree;
use smallvec::SmallVec;

use tokio::sync::Notify;

use super::entry::LogEntry;
use super::parts::Kept;
use super::reader::{Filter, Streamed};

/// The limits of one log tree.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    pub(super) per_dn: usize,
    pub(super) global_bytes: usize,
}

pub(super) struct Journal {
    next_seq: u64,
    dns: BTreeMap<Arc<str>, DnLog>,
    order: VecDeque<(u64, Arc<str>)>,
    retained: usize,
    bytes: usize,
    subscribers: Vec<Option<Arc<Subscriber>>>,
    free: Vec<usize>,
    limits: Limits,
    /// Bytes waiting in all subscribers' queues.
    streamed: Arc<AtomicUsize>,
}

/// One DN's retained entries, and how many of them are not the supervisor's own pieces
/// ([`Kept::Whole`]): a crash report's copy of the lines its node logged looks for those
/// alone, and a node failing in a loop, which logs nothing but the supervisor's failure
/// lines, must not have every one of them looked at on every failure.
#[derive(Default)]
struct DnLog {
    entries: VecDeque<Stored>,
    whole: usize,
}

impl DnLog {
    fn push_back(&mut self, stored: Stored) {
        self.whole += usize::from(matches!(stored.kept, Kept::Whole(_)));
        self.entries.push_back(stored);
    }

    fn pop_front(&mut self) -> Option<Stored> {
        let stored = self.entries.pop_front()?;
        self.whole -= usize::from(matches!(stored.kept, Kept::Whole(_)));
        Some(stored)
    }

    fn front(&self) -> Option<&Stored> {
        self.entries.front()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn iter(&self) -> std::collections::vec_deque::Iter<'_, Stored> {
        self.entries.iter()
    }
}

/// A retained entry, in its DN's deque.
struct Stored {
    seq: u64,
    kept: Kept,
}

/// What a subscription's stream has not read yet.
pub(super) struct Subscriber {
    pub(super) filter: Filter,
    queue: Mutex<Queue>,
    pub(super) ready: Notify,
    /// The journal's count of bytes waiting in all queues.
    streamed: Arc<AtomicUsize>,
}

struct Queue {
    items: VecDeque<Streamed>,
    /// Entries (not markers) in `items`.
    entries: usize,
    capacity: usize,
    /// What the entries in `items` cost, and at most how much they may.
    bytes: usize,
    capacity_bytes: usize,
    closed: bool,
}

impl Subscriber {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Queues `entry`, or counts it as missed when the buffer is full (in entries, in its
    /// bytes, or all streams in the tree's budget): the count travels in-band, as one marker
    /// after the entries queued before it. Called under the journal's lock only.
    fn offer(&self, entry: &LogEntry, cost: usize, global_bytes: usize) {
        let mut q = self.queue();
        let fits = q.entries < q.capacity
            && (q.entries == 0 || q.bytes + cost <= q.capacity_bytes)
            && self.streamed.load(Ordering::SeqCst) + cost <= global_bytes;
        if fits {
            q.items.push_back(Streamed::Entry(entry.clone()));
            q.entries += 1;
            q.bytes += cost;
            self.streamed.fetch_add(cost, Ordering::SeqCst);
        } else if let Some(Streamed::Missed(n)) = q.items.back_mut() {
            *n += 1;
        } else {
            q.items.push_back(Streamed::Missed(1));
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The next item, if one is queued; `Err(())` once closed and drained.
    pub(super) fn take(&self) -> Result<Option<Streamed>, ()> {
        let mut q = self.queue();
        match q.items.pop_front() {
            Some(item) => {
                if let Streamed::Entry(entry) = &item {
                    let cost = entry.cost();
                    q.entries -= 1;
                    q.bytes -= cost;
                    self.streamed.fetch_sub(cost, Ordering::SeqCst);
                }
                Ok(Some(item))
            }
            None if q.closed => Err(()),
            None => Ok(None),
        }
    }

    fn close(&self) {
        self.queue().closed = true;
        self.ready.notify_one();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let q = self.queue();
        self.streamed.fetch_sub(q.bytes, Ordering::SeqCst);
    }
}

impl Journal {
    pub(super) fn new(limits: Limits) -> Self {
        Journal {
            next_seq: 0,
            dns: BTreeMap::new(),
            order: VecDeque::new(),
            retained: 0,
            bytes: 0,
            subscribers: Vec::new(),
            free: Vec::new(),
            limits,
            streamed: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(super) fn append(&mut self, dn: &Arc<str>, kept: Kept) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // One entry for every stream that selects it, made only if one does.
        let cost = kept.cost();
        let severity = kept.severity();
        let mut streamed: Option<LogEntry> = None;
        for sub in self.subscribers.iter().flatten() {
            if sub.filter.matches(dn, severity) {
                let entry = streamed
                    .get_or_insert_with(|| LogEntry::new(dn.clone(), seq, kept.to_payload()));
                // What the stream gives back when the entry is read: the same as `cost`
                // but for a crash report's, which the journal counts by a bound.
                sub.offer(entry, entry.cost(), self.limits.global_bytes);
            }
        }
        let deque = match self.dns.get_mut(&**dn) {
            Some(d) => d,
            None => self.dns.entry(dn.clone()).or_default(),
        };
        deque.push_back(Stored { seq, kept });
        self.retained += 1;
        self.bytes += cost;
        if deque.len() > self.limits.per_dn
            && let Some(old) = deque.pop_front()
        {
            self.retained -= 1;
            self.bytes -= old.kept.cost();
        }
        self.order.push_back((seq, dn.clone()));
        while self.bytes > self.limits.global_bytes && self.evict_oldest() {}
        if self.order.len() > 2 * self.retained + 1024 {
            self.compact_order();
        }
    }

    /// Evicts the oldest retained entry of the whole tree; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((seq, dn)) = self.order.pop_front() {
            let Some(deque) = self.dns.get_mut(&*dn) else {
                continue;
            };
            if deque.front().is_some_and(|e| e.seq == seq) {
                if let Some(old) = deque.pop_front() {
                    self.retained -= 1;
                    self.bytes -= old.kept.cost();
                }
                if deque.is_empty() {
                    self.dns.remove(&*dn);
                }
                return true;
            }
        }
        false
    }

    fn compact_order(&mut self) {
        let dns = &self.dns;
        // The oldest retained number of the DNs met last, by the address of their name:
        // appends come from a few DNs at a time, each naming its DN with the same `Arc`, so
        // most elements are answered here rather than by a search of the map. (Nothing is
        // allocated meanwhile, so an address seen here names one DN throughout.)
        let mut recent: [Option<(*const u8, Option<u64>)>; 4] = [None; 4];
        let mut next = 0;
        self.order.retain(|(seq, dn)| {
            let key = Arc::as_ptr(dn).cast::<u8>();
            let front = match recent.iter().flatten().find(|(k, _)| *k == key) {
                Some(&(_, front)) => front,
                None => {
                    let front = dns.get(&**dn).and_then(DnLog::front).map(|e| e.seq);
                    recent[next] = Some((key, front));
                    next = (next + 1) % recent.len();
                    front
                }
            };
            front.is_some_and(|front| front <= *seq)
        });
    }

    /// Registers a live subscription; entries appended from now on reach it.
    pub(super) fn subscribe(
        &mut self,
        filter: Filter,
        capacity: usize,
        capacity_bytes: usize,
    ) -> (usize, Arc<Subscriber>) {
        let sub = Arc::new(Subscriber {
            filter,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                entries: 0,
                capacity,
                bytes: 0,
                capacity_bytes,
                closed: false,
            }),
            ready: Notify::new(),
            streamed: self.streamed.clone(),
        });
        let id = match self.free.pop() {
            Some(id) => {
                self.subscribers[id] = Some(sub.clone());
                id
            }
            None => {
                self.subscribers.push(Some(sub.clone()));
                self.subscribers.len() - 1
            }
        };
        (id, sub)
    }

    pub(super) fn unsubscribe(&mut self, id: usize) {
        if let Some(slot) = self.subscribers.get_mut(id)
            && slot.take().is_some()
        {
            self.free.push(id);
        }
    }

    /// The sequence number the next entry will get: entries before it are backlog.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Drops the entries of `dn`, and of every DN below it, numbered before `before`: the
    /// log of a node that has left the tree. What a stream has taken already stays there.
    pub(super) fn forget_below(&mut self, dn: &str, before: u64) {
        let mut below: SmallVec<[Arc<str>; 1]> = self
            .dns
            .range::<str, _>((std::ops::Bound::Included(dn), std::ops::Bound::Unbounded))
            .take_while(|(d, _)| in_subtree(dn, d))
            .map(|(d, _)| d.clone())
            .collect();
        for d in below.drain(..) {
            let Some(deque) = self.dns.get_mut(&*d) else {
                continue;
            };
            while deque.front().is_some_and(|e| e.seq < before) {
                if let Some(old) = deque.pop_front() {
                    self.retained -= 1;
                    self.bytes -= old.kept.cost();
                }
            }
            if deque.is_empty() {
                self.dns.remove(&*d);
            }
        }
        // The forgotten entries' places in `order` are orphans now, compacted as any.
        if self.order.len() > 2 * self.retained + 1024 {
            self.compact_order();
        }
    }

    /// The DNs holding entries that `filter` may select.
    pub(super) fn dns_in(&self, filter: &Filter) -> Vec<Arc<str>> {
        let root = filter.dn.as_str();
        if filter.with_children {
            self.dns
                .range::<str, _>((std::ops::Bound::Included(root), std::ops::Bound::Unbounded))
                .take_while(|(dn, _)| in_subtree(root, dn))
                .map(|(dn, _)| dn.clone())
                .collect()
        } else {
            self.dns
                .get_key_value(root)
                .map(|(dn, _)| dn.clone())
                .into_iter()
                .collect()
        }
    }

    /// The retained entries of `dn` numbered before `before` that `filter` selects, in
    /// order; only the `newest` of them if given.
    pub(super) fn copy(
        &self,
        dn: &str,
        filter: &Filter,
        before: u64,
        newest: Option<usize>,
    ) -> Vec<LogEntry> {
        let Some((dn, deque)) = self.dns.get_key_value(dn) else {
            return Vec::new();
        };
        let selected = deque
            .iter()
            .rev()
            .filter(|e| e.seq < before && filter.matches(dn, e.kept.severity()))
            .map(|e| LogEntry::new(dn.clone(), e.seq, e.kept.to_payload()));
        let mut out: Vec<LogEntry> = match newest {
            Some(n) => selected.take(n).collect(),
            None => selected.collect(),
        };
        out.reverse();
        out
    }

    /// The newest `n` retained entries of `dn`, oldest first, but for those the supervisor
    /// wrote there as shared pieces ([`Kept::Assembled`]: its failure lines, whose reasons
    /// are reports of their own). A node failing in a loop so copies only what its own
    /// code logged, as much as it logged, rather than its earlier failures' lines again.
    pub(super) fn last_own(&self, dn: &str, n: usize) -> Vec<LogEntry> {
        let Some((dn, deque)) = self.dns.get_key_value(dn) else {
            return Vec::new();
        };
        let mut out: Vec<LogEntry> = deque
            .iter()
            .rev()
            .filter(|e| matches!(e.kept, Kept::Whole(_)))
            .take(n.min(deque.whole))
            .map(|e| LogEntry::new(dn.clone(), e.seq, e.kept.to_payload()))
            .collect();
        out.reverse();
        out
    }

    pub(super) fn usage(&self) -> (usize, usize, usize, usize, usize) {
        let subscribers = self.subscribers.len() - self.free.len();
        let streamed = self.streamed.load(Ordering::SeqCst);
        (
            self.retained,
            self.bytes,
            self.dns.len(),
            subscribers,
            streamed,
        )
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        for sub in self.subscribers.iter().flatten() {
            sub.close();
        }
    }
}
