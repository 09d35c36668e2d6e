//! Messages kept as the shared strings they are made of, put together only when read.
//!
//! Every restart writes three entries: the failure at the node's DN, and the failure and the
//! restart at `supervisor`. Their texts are the node's DN and its failure reason, both
//! already shared (`Arc<str>`), between fixed words. Keeping those pieces instead of a fresh
//! string saves each entry an allocation, a copy and a free, and the supervisor's log its
//! largest cost in a crash loop; an entry is assembled into an ordinary [`LeveledEntry`] when
//! a reader or a stream takes it, which was a copy of its text before as well.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::SystemTime;

use super::entry::{LeveledEntry, Payload, Severity, base_name, cost_of};
use crate::CrashReport;

/// A message made of two shared strings between fixed pieces:
/// `pieces[0]`, `a`, `pieces[1]`, `b` (if any), `pieces[2]` — or a crash report, whose
/// text is its `Display`.
#[derive(Clone)]
pub(crate) struct Parts(Repr);

#[derive(Clone)]
enum Repr {
    Pieces {
        pieces: &'static [&'static str; 3],
        a: Arc<str>,
        b: Option<Arc<str>>,
    },
    /// A node failing in a loop writes a report per failure: it is put into words only
    /// when read (or when an application's subscriber formats the event).
    /// With its length bound, worked out once: the size cap and the budget both ask.
    Report(Arc<CrashReport>, usize),
}

impl Parts {
    /// `pieces[0] a pieces[1] b pieces[2]`.
    pub(crate) fn new(
        pieces: &'static [&'static str; 3],
        a: Arc<str>,
        b: Option<Arc<str>>,
    ) -> Self {
        Parts(Repr::Pieces { pieces, a, b })
    }

    /// `text` as it is.
    pub(crate) fn shared(text: Arc<str>) -> Self {
        Parts::new(&["", "", ""], text, None)
    }

    /// The text of `report`.
    pub(crate) fn report(report: Arc<CrashReport>) -> Self {
        let bound = report.len_bound();
        Parts(Repr::Report(report, bound))
    }

    fn segments(&self) -> [&str; 5] {
        match &self.0 {
            Repr::Pieces { pieces, a, b } => {
                let [p0, p1, p2] = **pieces;
                [p0, a, p1, b.as_deref().unwrap_or(""), p2]
            }
            Repr::Report(..) => [""; 5],
        }
    }

    /// The text's length in bytes; for a report, a bound on it (see
    /// [`CrashReport::len_bound`]), which is what its entry accounts for.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Repr::Report(_, bound) => *bound,
            Repr::Pieces { .. } => self.segments().iter().map(|s| s.len()).sum(),
        }
    }

    /// Whether the text neither starts nor ends with a newline, as leveled messages are
    /// stored.
    fn is_trimmed(&self) -> bool {
        if let Repr::Report(..) = self.0 {
            // Its first line is its headline, its last a line of its own.
            return true;
        }
        let segments = self.segments();
        let mut filled = segments.iter().filter(|s| !s.is_empty());
        let first = filled.clone().next().is_some_and(|s| s.starts_with('\n'));
        let last = filled.next_back().is_some_and(|s| s.ends_with('\n'));
        !first && !last
    }
}

impl From<String> for Parts {
    fn from(text: String) -> Self {
        Parts::shared(text.into())
    }
}

impl fmt::Display for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Report(report, _) => report.fmt(f),
            Repr::Pieces { .. } => self.segments().iter().try_for_each(|s| f.write_str(s)),
        }
    }
}

/// A leveled entry at verbosity 0 whose message is [`Parts`], stored only when it needs
/// neither trimming nor cutting (see [`Assembled::fits`]).
pub(super) struct Assembled {
    pub(super) severity: Severity,
    pub(super) timestamp: SystemTime,
    /// The base name of the source file (taken once: readers and the budget ask often).
    pub(super) file: &'static str,
    pub(super) line: u32,
    pub(super) parts: Parts,
}

impl Assembled {
    pub(super) fn new(
        severity: Severity,
        timestamp: SystemTime,
        at: &'static Location<'static>,
        parts: Parts,
    ) -> Self {
        Assembled {
            severity,
            timestamp,
            file: file_of(at),
            line: at.line(),
            parts,
        }
    }

    /// Whether `parts` is already a message as stored: no leading or trailing newline, and
    /// at most `max` bytes. Any other is made into text by the ordinary path.
    pub(super) fn fits(parts: &Parts, max: usize) -> bool {
        parts.len() <= max && parts.is_trimmed()
    }

    pub(super) fn cost(&self) -> usize {
        cost_of(self.parts.len() + self.file.len())
    }

    /// The entry as readers see it.
    pub(super) fn to_payload(&self) -> Payload {
        Payload::Leveled(LeveledEntry {
            severity: self.severity,
            timestamp: self.timestamp,
            file: Cow::Borrowed(self.file),
            line: self.line,
            verbosity: 0,
            message: self.parts.to_string().into_boxed_str(),
            original_len: None,
        })
    }
}

/// The base name of `at`'s source file. The last one found on this thread is remembered by
/// the path's address: the notes come from one file, three to a restart, and each would
/// otherwise search its path again.
fn file_of(at: &'static Location<'static>) -> &'static str {
    thread_local! {
        static LAST: Cell<Option<(&'static str, &'static str)>> = const { Cell::new(None) };
    }
    let path = at.file();
    LAST.try_with(|last| match last.get() {
        Some((seen, file)) if std::ptr::eq(seen, path) => file,
        _ => {
            let file = base_name(path);
            last.set(Some((path, file)));
            file
        }
    })
    .unwrap_or_else(|_| base_name(path))
}

/// What the journal keeps of an entry.
pub(super) enum Kept {
    Whole(Payload),
    Assembled(Assembled),
}

impl Kept {
    /// What the entry costs against the budget: the same as the [`Payload`] readers get.
    pub(super) fn cost(&self) -> usize {
        match self {
            Kept::Whole(p) => p.cost(),
            Kept::Assembled(a) => a.cost(),
        }
    }

    /// A leveled entry's severity; `None` for a raw one.
    pub(super) fn severity(&self) -> Option<Severity> {
        match self {
            Kept::Whole(p) => p.leveled().map(LeveledEntry::severity),
            Kept::Assembled(a) => Some(a.severity),
        }
    }

    /// The entry as readers see it.
    pub(super) fn to_payload(&self) -> Payload {
        match self {
            Kept::Whole(p) => p.clone(),
            Kept::Assembled(a) => a.to_payload(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn() -> Arc<str> {
        "root.crash".into()
    }

    #[test]
    fn parts_read_as_their_pieces_in_order() {
        let failed = Parts::new(
            &["", " failed: ", ""],
            dn(),
            Some("returned error: x".into()),
        );
        assert_eq!(failed.to_string(), "root.crash failed: returned error: x");
        assert_eq!(failed.len(), failed.to_string().len());
        let restarting = Parts::new(&["restarting ", "", ""], dn(), None);
        assert_eq!(restarting.to_string(), "restarting root.crash");
        assert_eq!(Parts::from(String::from("as is")).to_string(), "as is");
    }

    #[test]
    fn only_a_trimmed_message_within_the_cap_fits() {
        let reason = |r: &str| Parts::shared(r.into());
        assert!(Assembled::fits(&reason("boom"), 4));
        assert!(!Assembled::fits(&reason("boom"), 3));
        assert!(!Assembled::fits(&reason("boom\n"), 64));
        assert!(!Assembled::fits(&reason("\nboom"), 64));
        assert!(Assembled::fits(&reason("two\nlines"), 64));
        // A newline at an edge of a part inside the text is no edge of the text.
        let inner = Parts::new(&["", ": ", ""], "a\n".into(), Some("\nb".into()));
        assert!(Assembled::fits(&inner, 64));
        let leading = Parts::new(&["", "", "!"], "\nx".into(), None);
        assert!(!Assembled::fits(&leading, 64));
        assert!(Assembled::fits(
            &Parts::new(&["", "", ""], "".into(), None),
            64
        ));
    }

    #[test]
    fn an_assembled_entry_costs_what_its_payload_does() {
        let parts = Parts::new(
            &["", " failed: ", ""],
            dn(),
            Some("returned error: x".into()),
        );
        let assembled = Assembled::new(
            Severity::Error,
            SystemTime::UNIX_EPOCH,
            Location::caller(),
            parts,
        );
        let kept = Kept::Assembled(assembled);
        let payload = kept.to_payload();
        assert_eq!(kept.cost(), payload.cost());
        assert_eq!(kept.severity(), Some(Severity::Error));
        let leveled = payload.leveled().expect("leveled");
        assert_eq!(leveled.message(), "root.crash failed: returned error: x");
        assert_eq!(leveled.file(), "parts.rs");
        assert_eq!(leveled.verbosity(), 0);
    }

    #[test]
    fn the_file_is_the_base_name_of_the_location() {
        #[track_caller]
        fn here() -> &'static Location<'static> {
            Location::caller()
        }
        assert_eq!(file_of(here()), "parts.rs");
        // Remembered: the same again, from another line.
        assert_eq!(file_of(Location::caller()), "parts.rs");
    }

    #[test]
    fn keeping_pieces_costs_no_memory_per_entry() {
        assert!(size_of::<Kept>() <= size_of::<Payload>());
    }
}
