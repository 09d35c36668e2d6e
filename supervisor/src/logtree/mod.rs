//! The log tree: a log per DN, kept in memory with bounded retention, readable as a backlog
//! and a live stream, for one DN or a whole subtree.
//!
//! Every runnable has a log at its DN; `tracing` events inside a runnable land there without
//! setup (see [`LogTreeLayer`] for how this sits beside an application's own subscriber).
//! The supervisor writes its own messages at the DN `supervisor`: the root's start, every
//! failure with its error (aborts after the grace period included), every restart with the
//! backoff chosen, and, at verbosity 1 (`set_verbosity("supervisor", 1)`), every start. Each
//! failure is also written at the failed runnable's DN.
//!
//! Records of the `log` crate take the same path once they are bridged into `tracing` by
//! `tracing-log`'s `LogTracer` (which `tracing_subscriber`'s `init()` installs). The
//! supervisor does not install it itself: the `log` crate has one global logger, and taking
//! it would make an application's own `env_logger::init()` panic.
//!
//! Entries are **leveled** (severity, time, source location, verbosity, message lines) or
//! **raw** (one line of unstructured output, such as a child process's). Memory is bounded:
//! each DN keeps its newest [`per_dn_entries`](LogTreeBuilder::per_dn_entries) (8192 by
//! default), the whole tree at most [`global_bytes`](LogTreeBuilder::global_bytes) (64 MiB by
//! default, oldest evicted first), and a message is cut to
//! [`max_message_bytes`](LogTreeBuilder::max_message_bytes).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), supervisor::logtree::LogError> {
//! use supervisor::logtree::{LogTree, ReadOptions, Streamed};
//!
//! let tree = LogTree::new();
//! let log = tree.leveled_for("root.net")?;
//! log.info("up");
//!
//! let mut reader = tree.read("root", ReadOptions::new().backlog_all().stream().with_children())?;
//! assert_eq!(reader.backlog.len(), 1);
//!
//! tree.leveled_for("root.net.dhcp")?.warning("no lease yet");
//! let stream = reader.stream.as_mut().unwrap();
//! match stream.next().await {
//!     Some(Streamed::Entry(e)) => assert_eq!(e.dn(), "root.net.dhcp"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

mod concise;
mod entry;
mod journal;
pub mod klog;
mod lines;
mod logger;
mod parts;
mod reader;
mod route;
pub(crate) mod time;

use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::lock::lock;

pub use entry::{LeveledEntry, LogEntry, RawEntry, RawStream, Severity};
#[cfg(feature = "process")]
pub(crate) use lines::LineBuffer;
pub use lines::RAW_LINE_MAX;
pub use logger::{External, Logger, RawLogger, Verbose};
pub(crate) use parts::Parts;
pub use reader::{LogReader, LogStream, ReadOptions, Streamed};
pub use route::LogTreeLayer;
pub(crate) use route::{RouteTarget, Routing, runnable_span};

use crate::error::ConfigError;
use crate::hash::FastMap;
use crate::name::{NAME_RULE, Shown, is_valid_name};
use journal::{Journal, Limits};
use parts::{Assembled, Kept};

/// A log per DN, in memory: see the [module documentation](self).
///
/// A cheap handle: clones share the same tree. A supervisor creates one (or uses the one
/// given to [`Builder::log_tree`](crate::Builder::log_tree)); readers get it from
/// [`Supervisor::log_tree`](crate::Supervisor::log_tree) or
/// [`Context::log_tree`](crate::Context::log_tree).
#[derive(Clone)]
pub struct LogTree {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Identifies the tree to the `tracing` layer, which serves every tree of the process.
    pub(crate) id: u64,
    journal: Mutex<Journal>,
    dns: Mutex<DnIndex>,
    max_message: usize,
}

/// The DNs loggers have been made for. Entries nobody refers to any more and that carry
/// only defaults are swept when the map has doubled since the last sweep, so a tree whose
/// runnables come and go under ever new names does not grow without end.
#[derive(Default)]
struct DnIndex {
    map: FastMap<Arc<str>, Arc<DnMeta>>,
    sweep_at: usize,
}

/// What the tree knows of a DN besides its entries.
pub(crate) struct DnMeta {
    pub(crate) dn: Arc<str>,
    pub(crate) verbosity: AtomicU32,
}

impl Inner {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.journal)
    }
}

/// Why a log tree operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogError {
    /// The DN is not names joined by `.`, each matching `^[a-z0-9_]{1,64}$` (the empty DN,
    /// the root of the tree, can be read but not written to).
    InvalidDn {
        /// The DN, as given.
        dn: String,
    },
    /// A read asked for only raw and only leveled entries at once.
    ConflictingKinds,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::InvalidDn { dn } if dn.is_empty() => f.write_str(
                "invalid DN \"\": the empty DN is the root of the log tree; it can be read, \
                 but entries are written at a named DN",
            ),
            LogError::InvalidDn { dn } => write!(
                f,
                "invalid DN {}: a DN is names joined by `.`, and {NAME_RULE}",
                Shown(dn)
            ),
            LogError::ConflictingKinds => f.write_str(
                "invalid read options: `only_raw` and `only_leveled` exclude each other",
            ),
        }
    }
}

impl std::error::Error for LogError {}

fn check_dn(dn: &str, allow_root: bool) -> Result<(), LogError> {
    let ok = if dn.is_empty() {
        allow_root
    } else {
        dn.split('.').all(is_valid_name)
    };
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidDn { dn: dn.to_owned() })
    }
}

impl Default for LogTree {
    fn default() -> Self {
        LogTree::new()
    }
}

impl LogTree {
    /// A log tree with the default limits.
    pub fn new() -> Self {
        LogTree::builder().build_unchecked()
    }

    /// A builder for a log tree with other limits.
    pub fn builder() -> LogTreeBuilder {
        LogTreeBuilder::default()
    }

    /// A logger of leveled entries at `dn`.
    ///
    /// # Errors
    ///
    /// [`LogError::InvalidDn`] if `dn` is not a valid DN (dot-separated names of
    /// `[a-z0-9_]{1,64}`).
    pub fn leveled_for(&self, dn: &str) -> Result<Logger, LogError> {
        Ok(Logger::new(self.clone(), self.meta(dn)?))
    }

    /// A writer of raw lines at `dn`, with its own line buffer.
    ///
    /// # Errors
    ///
    /// [`LogError::InvalidDn`] if `dn` is not a valid DN (dot-separated names of
    /// `[a-z0-9_]{1,64}`).
    pub fn raw_for(&self, dn: &str) -> Result<RawLogger, LogError> {
        Ok(RawLogger::new(self.clone(), self.meta(dn)?))
    }

    /// Sets the verbosity of `dn`: `v(n)` entries, and `tracing` DEBUG (1) and TRACE (2)
    /// events, are recorded there only when `n` is at most this. Default 0.
    ///
    /// # Errors
    ///
    /// [`LogError::InvalidDn`] if `dn` is not a valid DN (dot-separated names of
    /// `[a-z0-9_]{1,64}`).
    pub fn set_verbosity(&self, dn: &str, verbosity: u32) -> Result<(), LogError> {
        self.meta(dn)?.verbosity.store(verbosity, Ordering::Relaxed);
        route::raise_verbosity(verbosity);
        Ok(())
    }

    pub(crate) fn meta(&self, dn: &str) -> Result<Arc<DnMeta>, LogError> {
        check_dn(dn, false)?;
        Ok(self.intern(dn, || dn.into()))
    }

    /// The metadata of a DN the supervisor's tree has already validated.
    pub(crate) fn meta_of_node(&self, dn: &Arc<str>) -> Arc<DnMeta> {
        self.intern(dn, || dn.clone())
    }

    fn intern(&self, dn: &str, owned: impl FnOnce() -> Arc<str>) -> Arc<DnMeta> {
        let mut dns = lock(&self.inner.dns);
        if let Some(meta) = dns.map.get(dn) {
            return meta.clone();
        }
        if dns.map.len() >= dns.sweep_at {
            dns.map.retain(|_, m| {
                Arc::strong_count(m) > 1 || m.verbosity.load(Ordering::Relaxed) != 0
            });
            dns.sweep_at = (dns.map.len() * 2).max(1024);
        }
        let dn = owned();
        let meta = Arc::new(DnMeta {
            dn: dn.clone(),
            verbosity: AtomicU32::new(0),
        });
        dns.map.insert(dn, meta.clone());
        meta
    }

    fn append(&self, dn: &Arc<str>, payload: entry::Payload) {
        self.inner.journal().append(dn, Kept::Whole(payload));
    }

    /// Logs a message made of shared pieces at `dn` (valid, as the caller knows), at
    /// verbosity 0 and at `timestamp`: no DN metadata is needed for that, and the pieces are
    /// kept as they are unless the message must be trimmed or cut (see [`Parts`]).
    #[track_caller]
    pub(crate) fn log_parts(
        &self,
        dn: &Arc<str>,
        severity: Severity,
        parts: Parts,
        timestamp: SystemTime,
    ) {
        let at = Location::caller();
        if Assembled::fits(&parts, self.inner.max_message) {
            let assembled = Assembled::new(severity, timestamp, at, parts);
            self.inner.journal().append(dn, Kept::Assembled(assembled));
        } else {
            let entry = logger::from_code(severity, 0, at, timestamp);
            self.append_leveled(dn, entry, parts.to_string());
        }
    }

    /// Appends a leveled entry with `message` as stored: leading and trailing newlines
    /// removed, cut to the size cap (remembering the original length).
    fn append_leveled(&self, dn: &Arc<str>, mut entry: LeveledEntry, mut message: String) {
        let trimmed = entry::trim_newlines(&message);
        if trimmed.len() != message.len() {
            message = trimmed.to_owned();
        }
        entry.original_len = entry::truncate(&mut message, self.inner.max_message);
        entry.message = message.into_boxed_str();
        self.append(dn, entry::Payload::Leveled(entry));
    }

    /// Reads `dn` (and, with [`ReadOptions::with_children`], everything below it): the
    /// backlog of retained entries and, if asked for, a live stream of what follows.
    ///
    /// The backlog and the stream select the same entries, and together hold each matching
    /// entry exactly once, in journal order. The backlog is copied one DN at a time (at
    /// most [`per_dn_entries`](LogTreeBuilder::per_dn_entries) entries under the journal's
    /// lock), so a large read holds writers up only briefly.
    ///
    /// # Errors
    ///
    /// [`LogError::InvalidDn`] if `dn` is neither a valid DN nor empty (the whole tree, with
    /// children), and [`LogError::ConflictingKinds`] if the options ask for only raw and
    /// only leveled entries at once.
    pub fn read(&self, dn: &str, options: ReadOptions) -> Result<LogReader, LogError> {
        check_dn(dn, true)?;
        let filter = options.filter(dn)?;
        let (start, dns, stream) = {
            let mut journal = self.inner.journal();
            let stream = options.stream.then(|| {
                let (id, sub) = journal.subscribe(
                    filter.clone(),
                    options.stream_buffer,
                    options.stream_buffer_bytes,
                );
                LogStream {
                    sub,
                    id,
                    tree: Arc::downgrade(&self.inner),
                }
            });
            let dns = match options.backlog {
                Some(_) => journal.dns_in(&filter),
                None => Vec::new(),
            };
            (journal.next_seq(), dns, stream)
        };
        let newest = options.backlog.flatten();
        let mut backlog: Vec<LogEntry> = Vec::new();
        for dn in &dns {
            let part = self.inner.journal().copy(dn, &filter, start, newest);
            backlog.extend(part);
        }
        if dns.len() > 1 {
            backlog.sort_unstable_by_key(LogEntry::seq);
        }
        if let Some(n) = newest {
            let excess = backlog.len().saturating_sub(n);
            backlog.drain(..excess);
        }
        Ok(LogReader { backlog, stream })
    }

    /// How many DNs the metadata index holds (swept or not).
    #[cfg(test)]
    pub(crate) fn indexed_dns(&self) -> usize {
        lock(&self.inner.dns).map.len()
    }

    /// The number the next entry will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.journal().next_seq()
    }

    /// The newest `n` entries at `dn` (not below it), oldest first, leaving out the
    /// supervisor's own failure lines there (see [`Journal::last_own`]): a crash report's
    /// last lines.
    pub(crate) fn last_lines(&self, dn: &str, n: usize) -> Vec<LogEntry> {
        if n == 0 {
            return Vec::new();
        }
        self.inner.journal().last_own(dn, n)
    }

    /// Drops the log of `dn` and of everything below it, numbered before `before` (see
    /// [`Journal::forget_below`]).
    pub(crate) fn forget_below(&self, dn: &str, before: u64) {
        self.inner.journal().forget_below(dn, before);
    }

    /// What the tree holds now: retained entries, the bytes they account for, the number
    /// of DNs with entries, and the live streams.
    pub fn usage(&self) -> Usage {
        let (entries, bytes, dns, subscribers, stream_bytes) = self.inner.journal().usage();
        Usage {
            entries,
            bytes,
            dns,
            subscribers,
            stream_bytes,
        }
    }
}

impl fmt::Debug for LogTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogTree")
            .field("id", &self.inner.id)
            .field("usage", &self.usage())
            .finish()
    }
}

/// How much a log tree holds: see [`LogTree::usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Retained entries.
    pub entries: usize,
    /// Bytes they account for against the global budget.
    pub bytes: usize,
    /// DNs that have entries.
    pub dns: usize,
    /// Live streams.
    pub subscribers: usize,
    /// Bytes held in the streams' buffers for readers that have not taken them yet, counted
    /// as `bytes` is. Bounded by the tree's `global_bytes` (see
    /// [`ReadOptions::stream_buffer_bytes`]).
    pub stream_bytes: usize,
}

/// Limits for a [`LogTree`]; from [`LogTree::builder`].
///
/// # Examples
///
/// ```
/// use supervisor::logtree::LogTree;
///
/// let tree = LogTree::builder()
///     .per_dn_entries(1000)
///     .global_bytes(8 << 20)
///     .max_message_bytes(4096)
///     .build()?;
/// # let _ = tree;
/// # Ok::<(), supervisor::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct LogTreeBuilder {
    per_dn: usize,
    global_bytes: usize,
    max_message: usize,
}

impl Default for LogTreeBuilder {
    fn default() -> Self {
        LogTreeBuilder {
            per_dn: 8192,
            global_bytes: 64 << 20,
            max_message: 64 << 10,
        }
    }
}

impl LogTreeBuilder {
    /// How many entries each DN keeps (its oldest go first). Default 8192; at least 1.
    pub fn per_dn_entries(mut self, entries: usize) -> Self {
        self.per_dn = entries;
        self
    }

    /// How many bytes the whole tree may account for (the oldest entries of the whole tree
    /// go first). Default 64 MiB. Each entry counts its text plus about 100 bytes.
    pub fn global_bytes(mut self, bytes: usize) -> Self {
        self.global_bytes = bytes;
        self
    }

    /// The longest leveled message kept, in bytes; longer ones are cut at a character
    /// boundary and remember their length. Default 64 KiB; at least 1.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// The log tree, or the first limit that is out of range.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting and its rule if `per_dn_entries` or
    /// `max_message_bytes` is 0.
    pub fn build(self) -> Result<LogTree, ConfigError> {
        if self.per_dn == 0 {
            return Err(ConfigError {
                setting: "log tree per_dn_entries",
                value: "0".into(),
                rule: "each DN must keep at least 1 entry",
            });
        }
        if self.max_message == 0 {
            return Err(ConfigError {
                setting: "log tree max_message_bytes",
                value: "0".into(),
                rule: "messages must be allowed at least 1 byte",
            });
        }
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> LogTree {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        LogTree {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                journal: Mutex::new(Journal::new(Limits {
                    per_dn: self.per_dn,
                    global_bytes: self.global_bytes,
                })),
                dns: Mutex::new(DnIndex::default()),
                max_message: self.max_message,
            }),
        }
    }
}
