//! The program's declared topology: what every `#[runnable]` and `supervision_tree!`
//! declares, available before anything runs.
//!
//! Each macro use registers a static [`Declaration`] (through `inventory`): its name,
//! where it is, and the children, groups and sub-loggers it names with string literals.
//! Names that are not literals are not known until run time and are not listed.
//!
//! # Examples
//!
//! ```
//! use supervisor::{Context, Signal, registry, runnable};
//!
//! #[runnable]
//! async fn leaf(ctx: Context) -> supervisor::Result {
//!     ctx.signal(Signal::Healthy);
//!     ctx.cancelled().await;
//!     Ok(())
//! }
//!
//! #[runnable]
//! async fn parent(ctx: Context) -> supervisor::Result {
//!     ctx.run("first", leaf())?;
//!     ctx.run("second", leaf())?;
//!     ctx.signal(Signal::Healthy);
//!     ctx.signal(Signal::Done);
//!     Ok(())
//! }
//!
//! let declared = registry::find("parent").unwrap();
//! assert_eq!(declared.contents.children.len(), 2);
//! let printed = declared.topology().to_string();
//! assert!(printed.contains("first"), "{printed}");
//! ```

use std::collections::BTreeSet;
use std::fmt;

/// One `#[runnable]` or `supervision_tree!`, as declared in the source.
#[derive(Debug)]
pub struct Declaration {
    /// The function's name.
    pub name: &'static str,
    /// Which macro declared it.
    pub kind: DeclarationKind,
    /// The module it is in.
    pub module_path: &'static str,
    /// The source file it is in.
    pub file: &'static str,
    /// The line it starts on.
    pub line: u32,
    /// What it starts.
    pub contents: Contents,
}

/// Which macro made a [`Declaration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclarationKind {
    /// `#[runnable]`: the children are the literal names its body starts.
    Runnable,
    /// `supervision_tree!`: the whole declared tree.
    Tree,
}

/// What one node starts: children (in start order, each in a group) and sub-loggers.
#[derive(Debug)]
pub struct Contents {
    /// Children, in the order they are started.
    pub children: &'static [Child],
    /// Sub-loggers' names.
    pub sub_loggers: &'static [&'static str],
}

/// A declared child.
#[derive(Debug)]
pub struct Child {
    /// Its name, the last component of its DN.
    pub name: &'static str,
    /// Which of its parent's groups it is in (0-based, in start order). Children that
    /// share a group are restarted together.
    pub group: u32,
    /// What it is.
    pub kind: ChildKind,
}

/// What a declared child is.
#[derive(Debug)]
pub enum ChildKind {
    /// A runnable expression.
    Runnable {
        /// The expression, as written.
        expr: &'static str,
        /// The function the expression calls, if it is a call or a path; used to expand
        /// the child with that function's own declaration.
        callee: Option<&'static str>,
    },
    /// A structure node of a `supervision_tree!`: it starts these, then is done.
    Structure(Contents),
}

inventory::collect!(Declaration);

/// Every declaration in the program, by name.
pub fn declarations() -> Vec<&'static Declaration> {
    let mut all: Vec<&'static Declaration> = inventory::iter::<Declaration>.into_iter().collect();
    all.sort_by(|a, b| (a.name, a.module_path).cmp(&(b.name, b.module_path)));
    all
}

/// The declaration named `name`, if there is one (the first by module path if several
/// modules use the name).
pub fn find(name: &str) -> Option<&'static Declaration> {
    declarations().into_iter().find(|d| d.name == name)
}

impl Declaration {
    /// The declared tree below this declaration, expanding children that call other
    /// declarations; `Display` prints it indented.
    pub fn topology(&'static self) -> Topology {
        Topology { root: self }
    }
}

/// An indented print of a declared tree: see [`Declaration::topology`].
#[derive(Debug)]
pub struct Topology {
    root: &'static Declaration,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.root;
        let kind = match d.kind {
            DeclarationKind::Runnable => "runnable",
            DeclarationKind::Tree => "tree",
        };
        writeln!(f, "{} ({kind}, {}:{})", d.name, d.file, d.line)?;
        let mut seen = BTreeSet::from([d.name]);
        contents(f, &d.contents, "", &mut seen)
    }
}

fn contents(
    f: &mut fmt::Formatter<'_>,
    c: &Contents,
    indent: &str,
    seen: &mut BTreeSet<&'static str>,
) -> fmt::Result {
    let grouped = |g: u32| c.children.iter().filter(|ch| ch.group == g).count() > 1;
    let total = c.children.len() + c.sub_loggers.len();
    for (i, child) in c.children.iter().enumerate() {
        let last = i + 1 == total;
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let group = if grouped(child.group) {
            format!(" [group {}]", child.group)
        } else {
            String::new()
        };
        let inner = format!("{indent}{next}");
        match &child.kind {
            ChildKind::Structure(sub) => {
                writeln!(f, "{indent}{branch}{}{group}", child.name)?;
                contents(f, sub, &inner, seen)?;
            }
            ChildKind::Runnable { expr, callee } => {
                writeln!(f, "{indent}{branch}{:<16} {expr}{group}", child.name)?;
                let declared = callee.and_then(find);
                if let Some(d) = declared {
                    // A runnable that (indirectly) starts itself is printed once.
                    if seen.insert(d.name) {
                        contents(f, &d.contents, &inner, seen)?;
                        seen.remove(d.name);
                    }
                }
            }
        }
    }
    for (i, name) in c.sub_loggers.iter().enumerate() {
        let last = c.children.len() + i + 1 == total;
        let branch = if last { "└── " } else { "├── " };
        writeln!(f, "{indent}{branch}{name} (sub-logger)")?;
    }
    Ok(())
}
