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
