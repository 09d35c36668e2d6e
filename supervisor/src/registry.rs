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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::NodeState;
use crate::policy::{Intensity, Restart, Shutdown, Strategy};

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
    /// How each group is supervised, by group number. A group the declaration says
    /// nothing about is `one_for_all` with the builder's intensity.
    pub groups: &'static [DeclaredGroup],
}

/// How a declared group is supervised, as the declaration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredGroup {
    /// Which members restart when one fails.
    pub strategy: Strategy,
    /// Whether its members stop one at a time.
    pub ordered_shutdown: bool,
    /// Its own intensity; `None`: the builder's.
    pub intensity: Option<Intensity>,
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
    /// Its restart kind.
    pub restart: Restart,
    /// Its shutdown policy; `None`: the builder's grace.
    pub shutdown: Option<Shutdown>,
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
    /// A dynamic group: its children are started at run time. The [`Child`]'s `restart`
    /// and `shutdown` are its children's.
    Dynamic {
        /// Its limit of children, if declared.
        max_children: Option<usize>,
        /// Its intensity, if declared; `None`: the builder's.
        intensity: Option<Intensity>,
    },
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
    /// The DNs this declaration declares when it runs at `dn` (`root` for a supervisor's
    /// root), expanding children that call other declarations, in declaration order.
    pub fn declared_dns(&'static self, dn: &str) -> Vec<String> {
        fn walk(c: &Contents, at: &str, seen: &mut BTreeSet<&'static str>, out: &mut Vec<String>) {
            for child in c.children {
                let dn = format!("{at}.{}", child.name);
                out.push(dn.clone());
                expand(child, seen, |sub, seen| walk(sub, &dn, seen, out));
            }
        }
        let mut out = vec![dn.to_owned()];
        walk(
            &self.contents,
            dn,
            &mut BTreeSet::from([self.name]),
            &mut out,
        );
        out
    }

    /// The declared tree below this declaration, expanding children that call other
    /// declarations; `Display` prints it indented.
    pub fn topology(&'static self) -> Topology {
        Topology {
            root: self,
            live: None,
        }
    }
}

/// An indented print of a declared tree: see [`Declaration::topology`].
#[derive(Debug)]
pub struct Topology {
    root: &'static Declaration,
    live: Option<(String, BTreeMap<String, NodeState>)>,
}

impl Topology {
    /// Shows each declared node's live state from `states` (as
    /// [`Supervisor::states`](crate::Supervisor::states) gives them), taking the
    /// declaration to run at `dn` (`root` when it is the supervisor's root). Declared nodes
    /// that are not running are marked so.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use supervisor::{Context, Signal, Supervisor, registry, runnable, supervision_tree};
    ///
    /// #[runnable]
    /// async fn leaf(ctx: Context) -> supervisor::Result {
    ///     ctx.signal(Signal::Healthy);
    ///     ctx.cancelled().await;
    ///     Ok(())
    /// }
    ///
    /// supervision_tree! {
    ///     fn app() { web: leaf(), db: leaf() }
    /// }
    ///
    /// let sup = Supervisor::new(app());
    /// sup.settled().await;
    /// let status = registry::find("app").unwrap().topology().with_states("root", sup.states());
    /// assert!(status.to_string().contains("HEALTHY"));
    /// # sup.cancel(); sup.wait().await;
    /// # }
    /// ```
    pub fn with_states(mut self, dn: &str, states: BTreeMap<String, NodeState>) -> Self {
        self.live = Some((dn.to_owned(), states));
        self
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.root;
        let kind = match d.kind {
            DeclarationKind::Runnable => "runnable",
            DeclarationKind::Tree => "tree",
        };
        write!(f, "{} ({kind}, {}:{})", d.name, d.file, d.line)?;
        let live = self.live.as_ref().map(|(dn, states)| Live { dn, states });
        if let Some(live) = &live {
            write!(f, "  {}", live.state(live.dn))?;
        }
        writeln!(f)?;
        let mut seen = BTreeSet::from([d.name]);
        let dn = live.as_ref().map(|l| l.dn.to_owned());
        contents(f, &d.contents, "", dn.as_deref(), live.as_ref(), &mut seen)
    }
}

/// Live states to show beside the declared nodes.
struct Live<'a> {
    dn: &'a str,
    states: &'a BTreeMap<String, NodeState>,
}

impl Live<'_> {
    fn state(&self, dn: &str) -> &'static str {
        self.states.get(dn).map_or("not running", |s| s.name())
    }
}

/// Calls `visit` with what `child` starts below itself — a structure node's contents, or
/// those of the declaration its expression calls — unless that declaration is already being
/// expanded above (a runnable that, indirectly, starts itself is expanded once).
fn expand<R>(
    child: &Child,
    seen: &mut BTreeSet<&'static str>,
    visit: impl FnOnce(&Contents, &mut BTreeSet<&'static str>) -> R,
) -> Option<R> {
    match &child.kind {
        ChildKind::Structure(sub) => Some(visit(sub, seen)),
        ChildKind::Dynamic { .. } => None,
        ChildKind::Runnable { callee, .. } => {
            let declared = callee.and_then(find)?;
            if !seen.insert(declared.name) {
                return None;
            }
            let result = visit(&declared.contents, seen);
            seen.remove(declared.name);
            Some(result)
        }
    }
}

/// What the declaration says of how `child` is supervised: `[group N: …]` for a member of a
/// group of several, then its kind and shutdown when not the defaults, e.g.
/// `[group 0: rest_for_one, ordered, intensity 3 in 5s] [transient, shutdown brutal]`.
fn policy(c: &Contents, child: &Child, grouped: bool) -> String {
    use fmt::Write as _;
    let mut text = String::new();
    let declared = c.groups.get(child.group as usize);
    let mut group: Vec<String> = Vec::new();
    if let Some(g) = declared {
        if g.strategy != Strategy::OneForAll {
            group.push(g.strategy.to_string());
        }
        if g.ordered_shutdown {
            group.push("ordered".into());
        }
        if let Some(i) = g.intensity {
            group.push(format!("intensity {i}"));
        }
    }
    match (grouped, group.is_empty()) {
        (true, true) => {
            let _ = write!(text, " [group {}]", child.group);
        }
        (true, false) => {
            let _ = write!(text, " [group {}: {}]", child.group, group.join(", "));
        }
        (false, false) => {
            let _ = write!(text, " [{}]", group.join(", "));
        }
        (false, true) => {}
    }
    let mut own: Vec<String> = Vec::new();
    if child.restart != Restart::Permanent {
        own.push(child.restart.to_string());
    }
    if let Some(shutdown) = child.shutdown {
        own.push(format!("shutdown {shutdown}"));
    }
    if !own.is_empty() {
        let _ = write!(text, " [{}]", own.join(", "));
    }
    text
}

fn contents(
    f: &mut fmt::Formatter<'_>,
    c: &Contents,
    indent: &str,
    parent_dn: Option<&str>,
    live: Option<&Live<'_>>,
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
        let group = policy(c, child, grouped(child.group));
        let inner = format!("{indent}{next}");
        let dn = parent_dn.map(|p| format!("{p}.{}", child.name));
        let state = match (live, &dn) {
            (Some(live), Some(dn)) => format!("  {}", live.state(dn)),
            _ => String::new(),
        };
        match &child.kind {
            ChildKind::Structure(_) => {
                writeln!(f, "{indent}{branch}{}{group}{state}", child.name)?;
            }
            ChildKind::Runnable { expr, .. } => {
                writeln!(f, "{indent}{branch}{:<16} {expr}{group}{state}", child.name)?;
            }
            ChildKind::Dynamic {
                max_children,
                intensity,
            } => {
                let mut what = String::from("(dynamic");
                if let Some(max) = max_children {
                    what.push_str(&format!(", at most {max}"));
                }
                if let Some(i) = intensity {
                    what.push_str(&format!(", intensity {i}"));
                }
                what.push(')');
                writeln!(f, "{indent}{branch}{:<16} {what}{group}{state}", child.name)?;
            }
        }
        expand(child, seen, |sub, seen| {
            contents(f, sub, &inner, dn.as_deref(), live, seen)
        })
        .transpose()?;
    }
    for (i, name) in c.sub_loggers.iter().enumerate() {
        let last = c.children.len() + i + 1 == total;
        let branch = if last { "└── " } else { "├── " };
        writeln!(f, "{indent}{branch}{name} (sub-logger)")?;
    }
    Ok(())
}
