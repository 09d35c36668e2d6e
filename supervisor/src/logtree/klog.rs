//! Parsing klog lines, the glog dialect Kubernetes components write.
//!
//! A klog line is `^([IEWF])(\d{4})\s+(\d{2}:\d{2}:\d{2}(\.\d+)?)\s+(\d+)\s+([^:]+):(\d+)]\s+(.+)$`:
//! severity, month and day, time of day (UTC) with 1 to 9 fraction digits, a thread id
//! (ignored), file, line, message. It carries no year: the year is the current one, unless
//! that puts the line more than an hour in the future; then a line from the last day of the
//! previous year read in the first day of this one belongs to the previous year, and
//! anything else is rejected.

use std::time::{Duration, SystemTime};

use super::entry::Severity;
use super::logger::External;
use super::time::Civil;

/// Parses one klog line read at `now`; `None` if it is not a valid klog line.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use supervisor::logtree::{Severity, klog};
///
/// // 2021-03-12 15:46:26 UTC
/// let now = UNIX_EPOCH + Duration::from_secs(1_615_563_986);
/// let line = "E0312 14:20:04.240540    204 shared_informer.go:247] Caches are synced";
/// let entry = klog::parse(line, now).unwrap();
/// assert_eq!(entry.severity, Severity::Error);
/// assert_eq!(entry.file.as_deref(), Some("shared_informer.go"));
/// assert_eq!(entry.line, 247);
/// assert_eq!(entry.message, "Caches are synced");
/// assert!(klog::parse("Application starting up...", now).is_none());
/// ```
pub fn parse(line: &str, now: SystemTime) -> Option<External> {
    let mut p = Parser(line.as_bytes(), 0);
    let severity = Severity::from_letter(char::from(p.byte()?))?;
    let month = p.digits(2, 2)?;
    let day = p.digits(2, 2)?;
    p.spaces()?;
    let hour = p.digits(2, 2)?;
    p.expect(b':')?;
    let minute = p.digits(2, 2)?;
    p.expect(b':')?;
    let second = p.digits(2, 2)?;
    let nanos = if p.peek() == Some(b'.') {
        p.1 += 1;
        let start = p.1;
        let fraction = p.digits(1, 9)?;
        let width = p.1 - start;
        fraction * 10u32.pow(9 - width as u32)
    } else {
        0
    };
    p.spaces()?;
    p.digits(1, 9)?; // thread id
    p.spaces()?;
    let file_start = p.1;
    while p.peek().is_some_and(|b| b != b':') {
        p.1 += 1;
    }
    let file = &line[file_start..p.1];
    if file.is_empty() {
        return None;
    }
    p.expect(b':')?;
    let line_no = p.digits(1, 9)?;
    p.expect(b']')?;
    p.spaces()?;
    let message = &line[p.1..];
    if message.is_empty() {
        return None;
    }

    let at = |year| {
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        }
        .to_system()
    };
    let this_year = Civil::from_system(now).year;
    let mut timestamp = at(this_year)?;
    if timestamp > now + Duration::from_secs(3600) {
        let previous = at(this_year - 1)?;
        let new_years_eve = month == 12 && day == 31;
        let just_after = now
            .duration_since(previous)
            .is_ok_and(|d| d <= Duration::from_secs(86_400));
        if !(new_years_eve && just_after) {
            return None;
        }
        timestamp = previous;
    }
    Some(External {
        severity,
        timestamp: Some(timestamp),
        file: Some(file.to_owned()),
        line: line_no,
        message: message.to_owned(),
    })
}

struct Parser<'a>(&'a [u8], usize);

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.0.get(self.1).copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.1 += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.byte()? == want).then_some(())
    }

    /// One or more whitespace characters.
    fn spaces(&mut self) -> Option<()> {
        let start = self.1;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.1 += 1;
        }
        (self.1 > start).then_some(())
    }

    /// Between `min` and `max` decimal digits, as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.1;
        let mut value: u32 = 0;
        while self.1 - start < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    value = value * 10 + u32::from(b - b'0');
                    self.1 += 1;
                }
                _ => break,
            }
        }
        // A longer run than `max` fails at the separator the caller expects next.
        (self.1 - start >= min).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, ns: u32) -> SystemTime {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            nanos: ns,
        }
        .to_system()
        .unwrap()
    }

    #[test]
    fn the_vectors_of_logtree_md() {
        let now = at(2021, 3, 12, 15, 46, 26, 123_456_789);
        let e = parse(
            "E0312 14:20:04.240540    204 shared_informer.go:247] Caches are synced for attach detach",
            now,
        )
        .unwrap();
        assert_eq!(e.severity, Severity::Error);
        assert_eq!(e.timestamp, Some(at(2021, 3, 12, 14, 20, 4, 240_540_000)));
        assert_eq!(
            (e.file.as_deref(), e.line),
            (Some("shared_informer.go"), 247)
        );
        assert_eq!(e.message, "Caches are synced for attach detach");

        assert!(parse("Application starting up...", now).is_none());
        assert!(parse("", now).is_none());
        assert!(parse("I1224 14:20:04.240540    204 x.go:1] in the future", now).is_none());
        assert!(parse("D0312 14:20:04.240540    204 x.go:1] debug", now).is_none());
        assert!(parse("E0312 25:20:04.240540    204 x.go:1] hour 25", now).is_none());
        let plain = parse(
            "E0312 14:20:04 204 shared_informer.go:247] no fraction",
            now,
        )
        .unwrap();
        assert_eq!(plain.timestamp, Some(at(2021, 3, 12, 14, 20, 4, 0)));

        let new_year = at(2000, 1, 1, 0, 0, 1, 0);
        let e = parse(
            "I1231 23:59:43.123456    123 fry.go:123] Here's to another lousy millennium!",
            new_year,
        )
        .unwrap();
        assert_eq!(e.timestamp, Some(at(1999, 12, 31, 23, 59, 43, 123_456_000)));
    }

    #[test]
    fn fractions_of_one_to_nine_digits() {
        let now = at(2021, 3, 12, 15, 0, 0, 0);
        for (frac, nanos) in [
            ("1", 100_000_000),
            ("123456789", 123_456_789),
            ("000001", 1_000),
        ] {
            let line = format!("I0312 14:20:04.{frac} 1 a.go:1] x");
            assert_eq!(
                parse(&line, now).unwrap().timestamp,
                Some(at(2021, 3, 12, 14, 20, 4, nanos))
            );
        }
        assert!(parse("I0312 14:20:04.1234567890 1 a.go:1] ten digits", now).is_none());
        assert!(parse("I0312 14:20:04. 1 a.go:1] no digits", now).is_none());
    }

    #[test]
    fn an_hour_ahead_is_accepted_and_more_is_not() {
        let now = at(2021, 3, 12, 14, 0, 0, 0);
        assert!(parse("I0312 14:59:00 1 a.go:1] soon", now).is_some());
        assert!(parse("I0312 15:00:01 1 a.go:1] too soon", now).is_none());
        assert!(parse("I0230 10:00:00 1 a.go:1] no such day", now).is_none());
        let _ = UNIX_EPOCH;
    }
}
