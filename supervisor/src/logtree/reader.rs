//! Reading the log tree: a backlog of retained entries, and a live stream of new ones.

use std::fmt;
use std::sync::{Arc, Weak};

use super::entry::{LogEntry, Severity};
use super::journal::Subscriber;
use super::{Inner, LogError};
use crate::name::in_subtree;

/// What [`LogTree::read`](super::LogTree::read) returns.
///
/// Built with chained calls; by default it reads nothing (no backlog, no stream) at exactly
/// the given DN.
///
/// # Examples
///
/// ```
/// use supervisor::logtree::{ReadOptions, Severity};
///
/// // The 100 newest warnings or worse from a subtree, then everything new as it comes.
/// let options = ReadOptions::new()
///     .backlog(100)
///     .stream()
///     .with_children()
///     .min_severity(Severity::Warning);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub(super) backlog: Option<Option<usize>>,
    pub(super) stream: bool,
    pub(super) with_children: bool,
    pub(super) only_raw: bool,
    pub(super) only_leveled: bool,
    pub(super) min_severity: Option<Severity>,
    pub(super) stream_buffer: usize,
    pub(super) stream_buffer_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            backlog: None,
            stream: false,
            with_children: false,
            only_raw: false,
            only_leveled: false,
            min_severity: None,
            stream_buffer: 1024,
            stream_buffer_bytes: 4 << 20,
        }
    }
}

impl ReadOptions {
    /// Nothing yet: add a backlog and/or a stream.
    pub fn new() -> Self {
        ReadOptions::default()
    }

    /// Every retained matching entry, oldest first.
    pub fn backlog_all(mut self) -> Self {
        self.backlog = Some(None);
        self
    }

    /// The `n` newest retained matching entries, oldest first.
    pub fn backlog(mut self, n: usize) -> Self {
        self.backlog = Some(Some(n));
        self
    }

    /// A live stream of matching entries logged after the backlog, each exactly once.
    pub fn stream(mut self) -> Self {
        self.stream = true;
        self
    }

    /// The DN and every DN below it (`a.b` covers `a.b.c`, not `a.bc`); the empty DN covers
    /// the whole tree.
    pub fn with_children(mut self) -> Self {
        self.with_children = true;
        self
    }

    /// Only raw entries. Conflicts with [`only_leveled`](ReadOptions::only_leveled).
    pub fn only_raw(mut self) -> Self {
        self.only_raw = true;
        self
    }

    /// Only leveled entries. Conflicts with [`only_raw`](ReadOptions::only_raw).
    pub fn only_leveled(mut self) -> Self {
        self.only_leveled = true;
        self
    }

    /// Only leveled entries at least this severe. Raw entries have no severity and still
    /// pass, unless [`only_leveled`](ReadOptions::only_leveled) is set too.
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = Some(severity);
        self
    }

    /// How many entries the stream holds for a slow reader (default 1024; at least 1).
    /// Past that, new entries are counted as [`Streamed::Missed`] instead.
    pub fn stream_buffer(mut self, entries: usize) -> Self {
        self.stream_buffer = entries.max(1);
        self
    }

    /// How many bytes the stream holds for a slow reader, counted as the log tree's budget
    /// counts them (each entry's text plus about 100 bytes). Default 4 MiB. Past that, new
    /// entries are counted as [`Streamed::Missed`] instead, as past
    /// [`stream_buffer`](ReadOptions::stream_buffer).
    ///
    /// Whatever each stream allows, all the streams of one log tree together hold at most its
    /// [`global_bytes`](super::LogTreeBuilder::global_bytes) more, and
    /// [`LogTree::usage`](super::LogTree::usage) reports what they hold: an idle reader can
    /// never pin memory outside the tree's budget. An entry larger than this bound is
    /// still delivered when the stream's buffer is empty, so that no entry is undeliverable.
    pub fn stream_buffer_bytes(mut self, bytes: usize) -> Self {
        self.stream_buffer_bytes = bytes;
        self
    }

    pub(super) fn filter(&self, dn: &str) -> Result<Filter, LogError> {
        if self.only_raw && self.only_leveled {
            return Err(LogError::ConflictingKinds);
        }
        Ok(Filter {
            dn: dn.to_owned(),
            with_children: self.with_children,
            only_raw: self.only_raw,
            only_leveled: self.only_leveled,
            min_severity: self.min_severity,
        })
    }
}

/// Which entries a read selects; the same for its backlog and its stream.
#[derive(Clone, Debug)]
pub(super) struct Filter {
    pub(super) dn: String,
    pub(super) with_children: bool,
    only_raw: bool,
    only_leveled: bool,
    min_severity: Option<Severity>,
}

impl Filter {
    /// Whether an entry at `dn` is selected: a leveled one of `severity`, or (`None`) a raw
    /// one.
    pub(super) fn matches(&self, dn: &str, severity: Option<Severity>) -> bool {
        let dn_ok = if self.with_children {
            in_subtree(&self.dn, dn)
        } else {
            dn == self.dn
        };
        dn_ok
            && match severity {
                Some(s) => !self.only_raw && self.min_severity.is_none_or(|m| s >= m),
                None => !self.only_leveled,
            }
    }
}

/// The result of a read: the backlog, and the live stream if one was asked for.
///
/// Dropping the reader (or its stream) unsubscribes at once.
#[derive(Debug)]
pub struct LogReader {
    /// Retained matching entries, oldest first (journal order).
    pub backlog: Vec<LogEntry>,
    /// Matching entries logged after the backlog, if
    /// [`ReadOptions::stream`](ReadOptions::stream) was set.
    pub stream: Option<LogStream>,
}

impl LogReader {
    /// Ends the reader: its stream, if any, is unsubscribed. The same as dropping it.
    pub fn close(self) {}
}

/// An item of a [`LogStream`].
#[derive(Clone, Debug)]
pub enum Streamed {
    /// The next matching entry.
    Entry(LogEntry),
    /// This many matching entries were not kept because the reader's buffer was full;
    /// they came at this point of the stream.
    Missed(u64),
}

/// Live matching entries, each exactly once, in journal order, with nothing missing
/// between the backlog and the first of them.
///
/// Dropping it unsubscribes at once.
pub struct LogStream {
    pub(super) sub: Arc<Subscriber>,
    pub(super) id: usize,
    pub(super) tree: Weak<Inner>,
}

impl LogStream {
    /// The next item; `None` once the log tree is gone and everything was read.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: an item is only taken when this resolves.
    pub async fn next(&mut self) -> Option<Streamed> {
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
    pub fn try_next(&mut self) -> Option<Streamed> {
        self.sub.take().ok().flatten()
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        if let Some(tree) = self.tree.upgrade() {
            tree.journal().unsubscribe(self.id);
        }
    }
}

impl fmt::Debug for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStream")
            .field("dn", &self.sub.filter.dn)
            .field("with_children", &self.sub.filter.with_children)
            .finish()
    }
}
