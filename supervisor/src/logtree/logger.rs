//! Writing to the log tree: leveled loggers and raw line writers.

use std::borrow::Cow;
use std::fmt::{self, Display};
use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::entry::{LeveledEntry, Payload, RawEntry, RawStream, Severity, base_name};
use super::lines::LineBuffer;
use super::parts::Parts;
use super::{DnMeta, LogTree};

/// Writes leveled entries at one DN.
///
/// Get one from [`Context::logger`](crate::Context::logger) or
/// [`LogTree::leveled_for`](super::LogTree::leveled_for). Each call records the caller's
/// file and line (through `#[track_caller]`, so wrappers marked `#[track_caller]` pass
/// their own caller's location on). Messages are cut to the tree's size cap, keeping their
/// original length.
///
/// Inside a runnable, `tracing` events reach the same place; a `Logger` is the direct way,
/// for a sub-logger's DN or when no `tracing` span is at hand.
///
/// # Examples
///
/// ```
/// use supervisor::logtree::{LogTree, ReadOptions, Severity};
///
/// let tree = LogTree::new();
/// let log = tree.leveled_for("root.dhcp")?;
/// log.info("lease acquired");
/// log.warning(format_args!("renewal took {} ms", 1200));
/// log.v(2).info("not recorded: verbosity is 0 by default");
///
/// let entries = tree.read("root.dhcp", ReadOptions::new().backlog_all())?.backlog;
/// assert_eq!(entries.len(), 2);
/// assert_eq!(entries[1].leveled().unwrap().severity(), Severity::Warning);
/// # Ok::<(), supervisor::logtree::LogError>(())
/// ```
#[derive(Clone)]
pub struct Logger {
    tree: LogTree,
    dn: Arc<DnMeta>,
}

impl Logger {
    pub(crate) fn new(tree: LogTree, dn: Arc<DnMeta>) -> Self {
        Logger { tree, dn }
    }

    /// The DN this logger writes to.
    pub fn dn(&self) -> &str {
        &self.dn.dn
    }

    /// Logs at INFO.
    #[track_caller]
    pub fn info(&self, message: impl Display) {
        self.log(Severity::Info, 0, Location::caller(), message);
    }

    /// Logs at WARNING.
    #[track_caller]
    pub fn warning(&self, message: impl Display) {
        self.log(Severity::Warning, 0, Location::caller(), message);
    }

    /// Logs at ERROR.
    #[track_caller]
    pub fn error(&self, message: impl Display) {
        self.log(Severity::Error, 0, Location::caller(), message);
    }

    /// Logs at FATAL. Only records: nothing is aborted.
    #[track_caller]
    pub fn fatal(&self, message: impl Display) {
        self.log(Severity::Fatal, 0, Location::caller(), message);
    }

    /// Logs a message made of shared pieces, without formatting it (see
    /// [`LogTree::log_parts`](super::LogTree::log_parts)), at `timestamp` (entries that tell
    /// of one event share its time).
    #[track_caller]
    pub(crate) fn log_parts(&self, severity: Severity, parts: Parts, timestamp: SystemTime) {
        self.tree.log_parts(&self.dn.dn, severity, parts, timestamp);
    }

    /// A verbose logger: it records only if this DN's verbosity
    /// ([`LogTree::set_verbosity`](super::LogTree::set_verbosity), default 0) is at least
    /// `level`.
    pub fn v(&self, level: u32) -> Verbose<'_> {
        Verbose {
            logger: self,
            level,
        }
    }

    fn log(
        &self,
        severity: Severity,
        verbosity: u32,
        at: &'static Location<'static>,
        message: impl Display,
    ) {
        let entry = from_code(severity, verbosity, at, SystemTime::now());
        self.write(entry, message.to_string());
    }

    /// Records an entry from an outside source (a child process's klog line, a forwarded
    /// record) with its own time, severity and location, sanitised: no timestamp → now, no
    /// file → `unknown`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::logtree::{External, LogTree, Severity};
    ///
    /// let tree = LogTree::new();
    /// tree.leveled_for("root.kubelet")?.inject(External {
    ///     severity: Severity::Error,
    ///     timestamp: None,
    ///     file: Some("server.go".into()),
    ///     line: 88,
    ///     message: "sync failed".into(),
    /// });
    /// # Ok::<(), supervisor::logtree::LogError>(())
    /// ```
    pub fn inject(&self, external: External) {
        let file = external
            .file
            .as_deref()
            .map(base_name)
            .filter(|f| !f.is_empty())
            .unwrap_or("unknown");
        self.write(
            LeveledEntry {
                severity: external.severity,
                timestamp: external.timestamp.unwrap_or_else(SystemTime::now),
                file: Cow::Owned(file.to_owned()),
                line: external.line,
                verbosity: 0,
                message: Box::default(),
                original_len: None,
            },
            external.message,
        );
    }

    fn write(&self, entry: LeveledEntry, message: String) {
        self.tree.append_leveled(&self.dn.dn, entry, message);
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").field("dn", &self.dn()).finish()
    }
}

/// An entry logged from code at `at`, its message still to be set.
pub(super) fn from_code(
    severity: Severity,
    verbosity: u32,
    at: &'static Location<'static>,
    timestamp: SystemTime,
) -> LeveledEntry {
    LeveledEntry {
        severity,
        timestamp,
        file: Cow::Borrowed(base_name(at.file())),
        line: at.line(),
        verbosity,
        message: Box::default(),
        original_len: None,
    }
}

/// A leveled entry from an outside source, for [`Logger::inject`].
#[derive(Clone, Debug)]
pub struct External {
    /// Its severity.
    pub severity: Severity,
    /// When it happened; `None` means now.
    pub timestamp: Option<SystemTime>,
    /// The source file, if known (its base name is kept).
    pub file: Option<String>,
    /// The source line, 0 if not known.
    pub line: u32,
    /// The message.
    pub message: String,
}

/// A logger at a verbosity level, from [`Logger::v`].
#[derive(Debug)]
pub struct Verbose<'a> {
    logger: &'a Logger,
    level: u32,
}

impl Verbose<'_> {
    /// Whether entries at this level are recorded for this DN now.
    pub fn enabled(&self) -> bool {
        self.logger.dn.verbosity.load(Ordering::Relaxed) >= self.level
    }

    /// Logs at INFO, tagged with this verbosity, if [`enabled`](Verbose::enabled).
    #[track_caller]
    pub fn info(&self, message: impl Display) {
        if self.enabled() {
            self.logger
                .log(Severity::Info, self.level, Location::caller(), message);
        }
    }
}

/// Writes raw lines at one DN: an [`io::Write`] that splits what it is given on `\n`.
///
/// Each line becomes one raw entry (`\r` kept, empty lines kept, non-UTF-8 bytes replaced
/// by U+FFFD). A line longer than 1024 bytes is cut at a character boundary and remembers
/// its original length. An unterminated last line is written when the writer is closed or
/// dropped; [`flush`](io::Write::flush) does not cut a line in two. Each writer has its own
/// line buffer, so give a process's stdout and stderr one each.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use supervisor::logtree::{LogTree, ReadOptions};
///
/// let tree = LogTree::new();
/// let mut out = tree.raw_for("root.proc")?;
/// out.write_all(b"processing foo\nprocessing bar\nbaz")?;
/// out.close(); // writes `baz`
/// let entries = tree.read("root.proc", ReadOptions::new().backlog_all())?.backlog;
/// assert_eq!(entries.len(), 3);
/// assert_eq!(entries[2].raw().unwrap().data(), "baz");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RawLogger {
    tree: LogTree,
    dn: Arc<DnMeta>,
    line: LineBuffer,
    stream: Option<RawStream>,
}

impl RawLogger {
    pub(crate) fn new(tree: LogTree, dn: Arc<DnMeta>) -> Self {
        RawLogger {
            tree,
            dn,
            line: LineBuffer::default(),
            stream: None,
        }
    }

    /// Marks every line this writer writes as coming from `stream`
    /// ([`RawEntry::stream`](super::RawEntry::stream)), for output whose origin matters.
    ///
    /// ```
    /// use std::io::Write;
    /// use supervisor::logtree::{LogTree, RawStream, ReadOptions};
    ///
    /// let tree = LogTree::new();
    /// let mut err = tree.raw_for("root.proc")?.with_stream(RawStream::Stderr);
    /// err.write_all(b"oops\n")?;
    /// let entries = tree.read("root.proc", ReadOptions::new().backlog_all())?.backlog;
    /// assert_eq!(entries[0].raw().unwrap().stream(), Some(RawStream::Stderr));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_stream(mut self, stream: RawStream) -> Self {
        self.stream = Some(stream);
        self
    }

    /// The DN this writer writes to.
    pub fn dn(&self) -> &str {
        &self.dn.dn
    }

    /// Writes an unterminated last line, if any, and ends the writer.
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.line.finish(|text, original| {
            emit(&self.tree, &self.dn, self.stream, text, original);
        });
    }
}

fn emit(
    tree: &LogTree,
    dn: &DnMeta,
    stream: Option<RawStream>,
    text: String,
    original_len: Option<usize>,
) {
    tree.append(
        &dn.dn,
        Payload::Raw(RawEntry {
            data: text.into_boxed_str(),
            original_len,
            stream,
        }),
    );
}

impl io::Write for RawLogger {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.push(buf, |text, original| {
            emit(&self.tree, &self.dn, self.stream, text, original);
        });
        Ok(buf.len())
    }

    /// Does nothing: a partial line waits for its `\n`, or for the writer to be closed.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RawLogger {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for RawLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawLogger")
            .field("dn", &self.dn())
            .field("buffered", &self.line.pending())
            .finish()
    }
}
