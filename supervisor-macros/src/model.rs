//! The macros' model of what a runnable or a tree declares.

use proc_macro2::Span;

use crate::policy::{ChildPolicy, GroupDecl};

/// A node or sub-logger name as written: its value and where it is.
#[derive(Clone)]
pub(crate) struct Name {
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// What one node starts, in order.
#[derive(Default)]
pub(crate) struct Scope {
    pub(crate) entries: Vec<Entry>,
    /// How each group is supervised, by group number (groups are numbered in start order).
    pub(crate) groups: Vec<GroupDecl>,
}

impl Scope {
    /// Opens a new group; its number.
    pub(crate) fn new_group(&mut self, decl: GroupDecl) -> usize {
        self.groups.push(decl);
        self.groups.len() - 1
    }
}

pub(crate) enum Entry {
    /// A child, in group `group` of its parent.
    Child {
        name: Name,
        group: usize,
        kind: ChildKind,
        policy: ChildPolicy,
    },
    SubLogger(Name),
}

pub(crate) enum ChildKind {
    /// A runnable expression.
    Runnable(Box<syn::Expr>),
    /// A structure node of a tree: starts its scope, then is done.
    Structure(Scope),
    /// A dynamic group (DESIGN §15): its children are started at run time, through the
    /// handle its name is bound to. The entry's policy is its children's; `settings` holds
    /// its `max_children` and intensity.
    Dynamic {
        settings: GroupDecl,
        /// In a tree, the variable the handle is bound to for the entries after it.
        binding: Option<syn::Ident>,
    },
}

/// Which macro a scope comes from: it decides whether a repeated sub-logger is an error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A `#[runnable]` body: asking twice for one sub-logger is fine at run time.
    Body,
    /// A `supervision_tree!`: every name is declared once.
    Tree,
}
