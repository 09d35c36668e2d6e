//! The one naming rule shared by runnables, sub-loggers and DN components.

use std::fmt;

/// The rule every node and sub-logger name follows, as written in messages.
pub(crate) const NAME_RULE: &str = "names match `^[a-z0-9_]{1,64}$`";

/// Whether `name` is a valid node or sub-logger name: 1 to 64 bytes of `a-z`, `0-9`, `_`,
/// the whole name (the Go original forgot to anchor its expression).
/// `supervisor-macros` applies the same rule at compile time (its `check::is_valid`).
pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `dn` is `root` or below it, component by component (`root.a` is not below
/// `root.ab`); everything is below the empty DN, the log tree's root.
pub(crate) fn in_subtree(root: &str, dn: &str) -> bool {
    root.is_empty()
        || dn
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Shows user input in a message safely: quoted and escaped, and cut after 64 characters so
/// that a megabyte of garbage does not become a megabyte of log line.
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KEEP: usize = 64;
        match self.0.char_indices().nth(KEEP) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_rule() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("dhcp_4"));
        assert!(is_valid_name(&"x".repeat(64)));
        for bad in ["", "A", "a.b", "a-b", "a b", "é", "a\n", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn subtrees_are_cut_at_dots() {
        assert!(in_subtree("root.a", "root.a"));
        assert!(in_subtree("root.a", "root.a.b"));
        assert!(!in_subtree("root.a", "root.ab"));
        assert!(!in_subtree("root.a.b", "root.a"));
        assert!(in_subtree("", "root"));
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(Shown("a\nb").to_string(), r#""a\nb""#);
        let long = "y".repeat(1000);
        let shown = Shown(&long).to_string();
        assert!(shown.ends_with("… (1000 bytes)"), "{shown}");
        assert!(shown.len() < 100);
    }
}
