//! Writing JSON by hand: the crash reports, events and log entries the supervisor shows are
//! flat records of strings, numbers and short lists, which a few helpers write exactly
//! (RFC 8259 string escaping) without a serialisation framework.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::logtree::time::Civil;

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control characters escaped.
pub(crate) fn string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, c) in text.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if u32::from(c) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&text[plain..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(escaped);
        }
        plain = i + c.len_utf8();
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// A JSON object written field by field: `{"a":1,"b":"x"}`.
pub(crate) struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    /// Starts a field: its key, and the separator before it.
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        string(out, value);
        self
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.str(key, value),
            None => self.raw(key, "null"),
        }
    }

    pub(crate) fn num(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let out = self.key(key);
        let _ = write!(out, "{value}");
        self
    }

    /// A duration, in seconds (a JSON number with a fraction).
    pub(crate) fn secs(&mut self, key: &str, value: Duration) -> &mut Self {
        self.num(key, value.as_secs_f64())
    }

    pub(crate) fn opt_secs(&mut self, key: &str, value: Option<Duration>) -> &mut Self {
        match value {
            Some(value) => self.secs(key, value),
            None => self.raw(key, "null"),
        }
    }

    /// A time, as an RFC 3339 string in UTC.
    pub(crate) fn time(&mut self, key: &str, value: SystemTime) -> &mut Self {
        let out = self.key(key);
        out.push('"');
        rfc3339(out, value);
        out.push('"');
        self
    }

    /// A value already written as JSON.
    pub(crate) fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    pub(crate) fn end(&mut self) {
        self.out.push('}');
    }
}

/// Appends `t` as RFC 3339 in UTC, to the microsecond: `2026-12-02T05:40:13.456789Z`.
pub(crate) fn rfc3339(out: &mut String, t: SystemTime) {
    let c = Civil::from_system(t);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1000
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_what_rfc_8259_requires() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn objects_separate_their_fields() {
        let mut out = String::new();
        Object::new(&mut out)
            .str("dn", "root.a")
            .num("n", 3)
            .opt_str("none", None)
            .raw("ok", "true")
            .time("at", SystemTime::UNIX_EPOCH)
            .end();
        assert_eq!(
            out,
            r#"{"dn":"root.a","n":3,"none":null,"ok":true,"at":"1970-01-01T00:00:00.000000Z"}"#
        );
    }
}
