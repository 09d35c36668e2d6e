//! Log entries and their text forms.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::time::Civil;

/// How serious a leveled entry is. Ordered: `Info < Warning < Error < Fatal`.
///
/// `Fatal` only records: the log tree never aborts anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Routine information (`I`).
    Info,
    /// Something unexpected that was handled (`W`).
    Warning,
    /// A failure (`E`).
    Error,
    /// A failure the component cannot continue after (`F`).
    Fatal,
}

impl Severity {
    /// Every severity, least serious first.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Fatal,
    ];

    /// The glog letter: `I`, `W`, `E` or `F`.
    pub const fn letter(self) -> char {
        match self {
            Severity::Info => 'I',
            Severity::Warning => 'W',
            Severity::Error => 'E',
            Severity::Fatal => 'F',
        }
    }

    /// The severity of a glog letter, if it is one.
    pub const fn from_letter(letter: char) -> Option<Severity> {
        match letter {
            'I' => Some(Severity::Info),
            'W' => Some(Severity::Warning),
            'E' => Some(Severity::Error),
            'F' => Some(Severity::Fatal),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        })
    }
}

/// One entry of the log tree: leveled or raw, at a DN, with its place in the journal.
///
/// A cheap handle: clones share the entry. `Display` gives the full text form,
/// [`concise`](LogEntry::concise) the short one for terminals.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use supervisor::logtree::{LogTree, ReadOptions};
///
/// let tree = LogTree::new();
/// tree.raw_for("root.proc")?.write_all(b"starting up\n")?;
/// let reader = tree.read("root.proc", ReadOptions::new().backlog_all())?;
/// assert_eq!(
///     reader.backlog[0].to_string(),
///     "root.proc                        R starting up"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LogEntry(pub(super) Arc<EntryInner>);

pub(super) struct EntryInner {
    pub(super) dn: Arc<str>,
    pub(super) seq: u64,
    pub(super) payload: Payload,
}

#[derive(Clone)]
pub(super) enum Payload {
    Leveled(LeveledEntry),
    Raw(RawEntry),
}

impl LogEntry {
    pub(super) fn new(dn: Arc<str>, seq: u64, payload: Payload) -> Self {
        LogEntry(Arc::new(EntryInner { dn, seq, payload }))
    }

    /// The DN the entry was logged at.
    pub fn dn(&self) -> &str {
        &self.0.dn
    }

    /// The entry's position in the journal: later entries have larger numbers.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// The text: a leveled entry's message (its lines joined by `\n`), or a raw entry's line.
    pub fn message(&self) -> &str {
        match &self.0.payload {
            Payload::Leveled(l) => &l.message,
            Payload::Raw(r) => &r.data,
        }
    }

    /// The leveled entry, if this is one.
    pub fn leveled(&self) -> Option<&LeveledEntry> {
        self.0.payload.leveled()
    }

    /// What the entry costs against the budget: see [`Payload::cost`].
    pub(super) fn cost(&self) -> usize {
        self.0.payload.cost()
    }

    /// The raw entry, if this is one.
    pub fn raw(&self) -> Option<&RawEntry> {
        match &self.0.payload {
            Payload::Raw(r) => Some(r),
            Payload::Leveled(_) => None,
        }
    }

    /// The entry as one JSON object, for tools and the status page. Leveled:
    /// `{"dn":"root.db","seq":41,"severity":"INFO","timestamp":"2026-12-02T05:40:13.100000Z",
    /// "file":"db.rs","line":12,"verbosity":0,"message":"connecting"}` (with
    /// `"original_len"` when the message was cut); raw: `{"dn":…,"seq":…,"raw":"…",
    /// "stream":"stdout"}` (`null` when the writer did not say).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        let mut o = crate::json::Object::new(out);
        o.str("dn", &self.0.dn).num("seq", self.0.seq);
        match &self.0.payload {
            Payload::Leveled(l) => {
                o.str("severity", &l.severity.to_string())
                    .time("timestamp", l.timestamp)
                    .str("file", &l.file)
                    .num("line", l.line)
                    .num("verbosity", l.verbosity)
                    .str("message", &l.message);
                if let Some(len) = l.original_len {
                    o.num("original_len", len);
                }
            }
            Payload::Raw(r) => {
                o.str("raw", &r.data)
                    .opt_str("stream", r.stream.map(RawStream::name));
                if let Some(len) = r.original_len {
                    o.num("original_len", len);
                }
            }
        }
        o.end();
    }
}

impl Payload {
    /// The bytes an entry accounts for against the global budget: its text plus a fixed
    /// overhead for the bookkeeping around it.
    pub(super) fn cost(&self) -> usize {
        cost_of(match self {
            Payload::Leveled(l) => l.message.len() + l.file.len(),
            Payload::Raw(r) => r.data.len(),
        })
    }

    pub(super) fn leveled(&self) -> Option<&LeveledEntry> {
        match self {
            Payload::Leveled(l) => Some(l),
            Payload::Raw(_) => None,
        }
    }
}

impl fmt::Display for LogEntry {
    /// Leveled: one line per message line, `format!("{:<32} {}{}", dn, prefix, line)`;
    /// raw: `format!("{:<32} R {}", dn, data)`. A truncated message ends in `...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dn = &self.0.dn;
        match &self.0.payload {
            Payload::Leveled(l) => {
                let prefix = l.prefix();
                let last = l.messages().count().saturating_sub(1);
                for (i, line) in l.messages().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{dn:<32} {prefix}{line}")?;
                    if i == last && l.original_len.is_some() {
                        f.write_str("...")?;
                    }
                }
                Ok(())
            }
            Payload::Raw(r) => write!(f, "{dn:<32} R {r}"),
        }
    }
}

impl fmt::Debug for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogEntry")
            .field("dn", &self.0.dn)
            .field("seq", &self.0.seq)
            .field(
                "payload",
                match &self.0.payload {
                    Payload::Leveled(l) => l as &dyn fmt::Debug,
                    Payload::Raw(r) => r as &dyn fmt::Debug,
                },
            )
            .finish()
    }
}

/// A structured entry: severity, time, source location, verbosity, message.
#[derive(Clone, Debug)]
pub struct LeveledEntry {
    pub(super) severity: Severity,
    pub(super) timestamp: SystemTime,
    /// Borrowed when it comes from code (`#[track_caller]`, `tracing` metadata): most
    /// entries then cost no allocation for it.
    pub(super) file: Cow<'static, str>,
    pub(super) line: u32,
    pub(super) verbosity: u32,
    /// Leading and trailing newlines removed; lines split on `\n` when read.
    pub(super) message: Box<str>,
    /// The message's length before it was cut to the size cap, if it was.
    pub(super) original_len: Option<usize>,
}

impl LeveledEntry {
    /// How serious it is.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// When it was logged.
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The base name of the source file it was logged from (`unknown` if not known).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The source line it was logged from (0 if not known).
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The verbosity it was logged at: 0 for plain `info`, `n` for `v(n).info`.
    pub fn verbosity(&self) -> u32 {
        self.verbosity
    }

    /// The message's lines: `"\n\nx\n\ny\n\n"` gives `["x", "", "y"]`.
    pub fn messages(&self) -> std::str::Split<'_, char> {
        self.message.split('\n')
    }

    /// The whole message, lines joined by `\n`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message's length in bytes before it was cut to the size cap, if it was cut.
    pub fn original_len(&self) -> Option<usize> {
        self.original_len
    }

    /// The glog prefix without a thread id: `I1102 17:20:06.921395 foo.rs:42] `, time in
    /// UTC, microseconds truncated.
    pub fn prefix(&self) -> String {
        let t = Civil::from_system(self.timestamp);
        format!(
            "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {}:{}] ",
            self.severity.letter(),
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.nanos / 1000,
            self.file,
            self.line
        )
    }
}

/// One line of unstructured output, such as a child process's stdout.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub(super) data: Box<str>,
    pub(super) original_len: Option<usize>,
    pub(super) stream: Option<RawStream>,
}

/// Which output stream of a process a raw line came from: see [`RawEntry::stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl RawStream {
    /// `"stdout"` or `"stderr"`.
    pub const fn name(self) -> &'static str {
        match self {
            RawStream::Stdout => "stdout",
            RawStream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for RawStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl RawEntry {
    /// The stream the line came from, when its writer said
    /// ([`RawLogger::with_stream`](super::RawLogger::with_stream)): `run_command` marks
    /// every line of a child process. The line's text is exactly what was written either way.
    pub fn stream(&self) -> Option<RawStream> {
        self.stream
    }

    /// The line, without its `\n` (a `\r` is kept), cut to 1024 bytes.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The line's length in bytes before it was cut, if it was cut.
    pub fn original_len(&self) -> Option<usize> {
        self.original_len
    }
}

impl fmt::Display for RawEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.data)?;
        if self.original_len.is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary; returns the original length
/// if it was cut.
pub(super) fn truncate(s: &mut String, max: usize) -> Option<usize> {
    if s.len() <= max {
        return None;
    }
    let original = s.len();
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    Some(original)
}

/// What an entry whose texts take `text_bytes` costs against the budget: a fixed overhead
/// for the bookkeeping around them, plus the texts.
pub(super) fn cost_of(text_bytes: usize) -> usize {
    const OVERHEAD: usize = 96;
    OVERHEAD + text_bytes
}

/// Removes leading and trailing newlines, as leveled messages are stored.
pub(super) fn trim_newlines(s: &str) -> &str {
    s.trim_matches('\n')
}

/// The base name of a source path (`src/foo/bar.rs` → `bar.rs`).
pub(super) fn base_name(path: &str) -> &str {
    match path.bytes().rposition(|b| b == b'/' || b == b'\\') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn leveled(message: &str) -> LeveledEntry {
        LeveledEntry {
            severity: Severity::Info,
            // 2021-11-02 17:20:06.921395999 UTC
            timestamp: UNIX_EPOCH + Duration::new(1_635_873_606, 921_395_999),
            file: "foo.rs".into(),
            line: 42,
            verbosity: 0,
            message: trim_newlines(message).into(),
            original_len: None,
        }
    }

    #[test]
    fn glog_prefix_truncates_microseconds() {
        assert_eq!(leveled("x").prefix(), "I1102 17:20:06.921395 foo.rs:42] ");
    }

    #[test]
    fn messages_are_trimmed_then_split() {
        let l = leveled("\n\nx\n\ny\n\n");
        assert_eq!(l.messages().collect::<Vec<_>>(), ["x", "", "y"]);
    }

    #[test]
    fn display_pads_the_dn_and_repeats_the_prefix_per_line() {
        let e = LogEntry::new("root.foo".into(), 0, Payload::Leveled(leveled("a\nb")));
        assert_eq!(
            e.to_string(),
            "root.foo                         I1102 17:20:06.921395 foo.rs:42] a\n\
             root.foo                         I1102 17:20:06.921395 foo.rs:42] b"
        );
        let raw = LogEntry::new(
            "root.p".into(),
            1,
            Payload::Raw(RawEntry {
                data: "out".into(),
                original_len: Some(2000),
                stream: None,
            }),
        );
        assert_eq!(raw.to_string(), format!("{:<32} R out...", "root.p"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "aé".repeat(10);
        assert_eq!(truncate(&mut s, 4), Some(30));
        assert_eq!(s, "aéa");
        let mut s = "aé".repeat(10);
        assert_eq!(truncate(&mut s, 2), Some(30));
        assert_eq!(s, "a", "never splits a character");
        assert_eq!(base_name("a/b/c.rs"), "c.rs");
        assert_eq!(base_name("c.rs"), "c.rs");
        assert_eq!(base_name(r"a\b.rs"), "b.rs");
    }
}
