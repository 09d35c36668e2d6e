//! Checking: the names a runnable or tree declares, across the whole declaration. Every
//! problem is reported, each at its literal; a clash also points at the first use.

use std::collections::HashMap;

use proc_macro2::Span;

use crate::model::{ChildKind, Entry, Name, Origin, Scope};
use crate::parse::Errors;

const RULE: &str = "names match `^[a-z0-9_]{1,64}$`";

/// The checks of DESIGN §2 and §11 over `scope` and the structure nodes below it.
pub(crate) fn names(scope: &Scope, origin: Origin) -> syn::Result<()> {
    let mut errors = Errors::default();
    check_scope(scope, origin, &mut errors);
    errors.finish()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Child,
    SubLogger,
}

impl Use {
    fn noun(self) -> &'static str {
        match self {
            Use::Child => "child",
            Use::SubLogger => "sub-logger",
        }
    }
}

/// The naming rule, at compile time. The same rule as `supervisor`'s `name::is_valid_name`
/// (a proc-macro crate cannot share code with the crate that depends on it): the ui-tests
/// and the runtime's name tests pin both to the same cases.
pub(crate) fn is_valid(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_scope(scope: &Scope, origin: Origin, errors: &mut Errors) {
    let mut seen: HashMap<&str, (Span, Use)> = HashMap::new();
    for entry in &scope.entries {
        let (name, use_): (&Name, Use) = match entry {
            Entry::Child { name, .. } => (name, Use::Child),
            Entry::SubLogger(name) => (name, Use::SubLogger),
        };
        if !is_valid(&name.value) {
            errors.push(syn::Error::new(
                name.span,
                format!(
                    "{} name `{}` is invalid: {RULE}",
                    use_.noun(),
                    name.value.escape_debug()
                ),
            ));
        } else if let Some(&(first, first_use)) = seen.get(name.value.as_str()) {
            let repeat_ok = origin == Origin::Body && use_ == Use::SubLogger && first_use == use_;
            if !repeat_ok {
                let message = if use_ == first_use {
                    format!(
                        "duplicate {} name `{}`: names are unique among a node's children and \
                         sub-loggers",
                        use_.noun(),
                        name.value
                    )
                } else {
                    format!(
                        "{} name `{}` is already used by a {}: a child and a sub-logger cannot \
                         share a name, as they would log into the same DN",
                        use_.noun(),
                        name.value,
                        first_use.noun()
                    )
                };
                errors.push(syn::Error::new(name.span, message));
                errors.push(syn::Error::new(
                    first,
                    format!("`{}` is first used here", name.value),
                ));
            }
        } else {
            seen.insert(&name.value, (name.span, use_));
        }
        if let Entry::Child {
            kind: ChildKind::Structure(sub),
            ..
        } = entry
        {
            check_scope(sub, origin, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChildKind, Entry, Name, Origin, Scope};
    use crate::policy::{ChildPolicy, GroupDecl};

    fn name(value: &str) -> Name {
        Name {
            value: value.to_owned(),
            span: Span::call_site(),
        }
    }

    fn child(value: &str, group: usize) -> Entry {
        Entry::Child {
            name: name(value),
            group,
            kind: ChildKind::Runnable(Box::new(syn::parse_quote!(leaf()))),
            policy: ChildPolicy::default(),
        }
    }

    fn messages(scope: &Scope, origin: Origin) -> Vec<String> {
        match names(scope, origin) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_rule_is_anchored() {
        assert!(is_valid("a") && is_valid("dhcp_4") && is_valid(&"x".repeat(64)));
        for bad in ["", "A", "a.b", "a-b", "é", &"x".repeat(65)] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let scope = Scope {
            entries: vec![
                child("Bad", 0),
                child("ok", 1),
                child("ok", 2),
                Entry::SubLogger(name("ok")),
            ],
            groups: vec![GroupDecl::default(); 3],
        };
        let got = messages(&scope, Origin::Tree);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].starts_with("child name `Bad` is invalid"));
        assert!(got[1].starts_with("duplicate child name `ok`"));
        assert!(got[3].starts_with("sub-logger name `ok` is already used by a child"));
    }

    #[test]
    fn a_body_may_ask_for_a_sub_logger_twice_and_a_tree_may_not() {
        let scope = Scope {
            entries: vec![Entry::SubLogger(name("log")), Entry::SubLogger(name("log"))],
            groups: Vec::new(),
        };
        assert!(messages(&scope, Origin::Body).is_empty());
        assert_eq!(messages(&scope, Origin::Tree).len(), 2);
    }
}
