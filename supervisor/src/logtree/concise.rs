//! The concise text form, for terminals: short DN column, severity letter, wrapped text.

use super::entry::{LogEntry, Payload};

impl LogEntry {
    /// The entry for a terminal `width` columns wide (0: no wrapping).
    ///
    /// A right-aligned column of the shortened DN (20 wide for `width` ≥ 80 or 0, 16 for
    /// ≥ 60, none below), the severity letter (`R` for raw), then the message word-wrapped
    /// to the width; wrapped and further message lines start with `| ` under the letter.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor::logtree::{LogTree, ReadOptions};
    ///
    /// let tree = LogTree::new();
    /// tree.leveled_for("root.net.dhcp")?.info("lease renewed for 10.0.0.2");
    /// let entry = &tree.read("root.net.dhcp", ReadOptions::new().backlog_all())?.backlog[0];
    /// assert_eq!(entry.concise(40), "I lease renewed for 10.0.0.2");
    /// assert_eq!(
    ///     entry.concise(80),
    ///     "            net dhcp I lease renewed for 10.0.0.2"
    /// );
    /// assert_eq!(
    ///     entry.concise(60),
    ///     "        net dhcp I lease renewed for 10.0.0.2"
    /// );
    /// # Ok::<(), supervisor::logtree::LogError>(())
    /// ```
    pub fn concise(&self, width: usize) -> String {
        let dn_width = match width {
            0 | 80.. => 20,
            60.. => 16,
            _ => 0,
        };
        let column = if dn_width > 0 {
            format!("{:>dn_width$} ", shorten_dn(self.dn(), dn_width))
        } else {
            String::new()
        };
        let letter = match &self.0.payload {
            Payload::Leveled(l) => l.severity().letter(),
            Payload::Raw(_) => 'R',
        };
        let first = format!("{column}{letter} ");
        let rest = format!("{}| ", " ".repeat(column.chars().count()));
        let text_width = width.saturating_sub(first.chars().count()).max(1);
        let mut lines = Vec::new();
        let mut collect = |text: &str| {
            if width == 0 {
                lines.push(text.to_owned());
            } else {
                lines.extend(word_wrap(text, text_width));
            }
        };
        match &self.0.payload {
            Payload::Leveled(l) => l.messages().for_each(&mut collect),
            Payload::Raw(r) => collect(&r.to_string()),
        }
        if lines.is_empty() {
            return first.trim_end().to_owned();
        }
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(if i == 0 { &first } else { &rest });
            out.push_str(line);
        }
        out
    }
}

/// Shortens a DN to at most `width` characters for the concise column: drops a leading
/// `root` component, joins the rest with spaces, and keeps the tail behind `...` when it is
/// still too long. Never panics, whatever the width.
pub(super) fn shorten_dn(dn: &str, width: usize) -> String {
    let mut parts: Vec<&str> = dn.split('.').collect();
    if parts.len() > 1 && parts[0] == "root" {
        parts.remove(0);
    }
    let joined = parts.join(" ");
    let len = joined.chars().count();
    if len <= width {
        return joined;
    }
    if width <= 3 {
        return joined.chars().skip(len - width).collect();
    }
    let tail: String = joined.chars().skip(len - (width - 3)).collect();
    format!("...{tail}")
}

/// Splits `text` into lines of at most `width` characters at spaces; a word longer than
/// the width gets a line of its own. Runs of whitespace collapse to one space.
fn word_wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let word_len = word.chars().count();
        if line_len > 0 && line_len + 1 + word_len > width {
            lines.push(std::mem::take(&mut line));
            line_len = 0;
        }
        if line_len > 0 {
            line.push(' ');
            line_len += 1;
        }
        line.push_str(word);
        line_len += word_len;
    }
    if line_len > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_dns_at_any_width() {
        assert_eq!(shorten_dn("root.net.dhcp", 20), "net dhcp");
        assert_eq!(shorten_dn("root", 20), "root");
        assert_eq!(shorten_dn("supervisor", 20), "supervisor");
        assert_eq!(
            shorten_dn("root.network.dhcp_client.lease", 16),
            "..._client lease"
        );
        assert_eq!(shorten_dn("root.network.dhcp_client.lease", 16).len(), 16);
        for width in 0..5 {
            assert!(shorten_dn("root.abcdef", width).chars().count() <= width);
        }
    }

    #[test]
    fn wraps_words_and_keeps_long_words_whole() {
        assert_eq!(word_wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(
            word_wrap("averyveryverylongword x", 5),
            ["averyveryverylongword", "x"]
        );
        assert_eq!(word_wrap("", 5), [""]);
    }
}
