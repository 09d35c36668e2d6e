//! The macros of the [`supervisor`](https://docs.rs/supervisor) crate.
//!
//! This crate is an implementation detail: depend on `supervisor`, which re-exports
//! `#[runnable]` and `supervision_tree!` and documents them. The expansion reaches the
//! runtime only through `::supervisor::__private`.
//!
//! Each macro is parse → check → expand over a small model of its input (`model`):
//! parsing validates the syntax of one item, checking validates names across the whole
//! declaration (every problem at once), expanding writes the code. `policy` holds the
//! supervision settings a tree declares (DESIGN §14), read and checked at their tokens.

#![forbid(unsafe_code)]

mod check;
mod expand;
mod model;
mod parse;
mod policy;
mod test_attr;

use proc_macro::TokenStream;

// Documented where `supervisor` re-exports it: docs here would be appended to those.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn runnable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::runnable(args.into(), item.into()).into()
}

// Documented where `supervisor` re-exports it: docs here would be appended to those.
#[allow(missing_docs)]
#[proc_macro]
pub fn supervision_tree(input: TokenStream) -> TokenStream {
    expand::tree(input.into()).into()
}

// Documented where `supervisor` re-exports it: docs here would be appended to those.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}
