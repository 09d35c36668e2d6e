//! Parsing: the syntax of one `#[runnable]` function or one `supervision_tree!`, into the
//! model. Problems local to a token are reported here, at that token; problems between
//! names are left to `check`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, Expr, FnArg, Ident, ItemFn, Lit, Pat, Token, Type, Visibility};

use crate::model::{ChildKind, Entry, Name, Scope};
use crate::policy::{self, ChildPolicy, GroupDecl, Place};

/// Every error found, reported together.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Option<syn::Error>,
    checked: bool,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Every error pushed, as one; a collector must end here, or its errors would be lost.
    pub(crate) fn finish(mut self) -> syn::Result<()> {
        self.checked = true;
        self.errors.take().map_or(Ok(()), Err)
    }
}

impl Drop for Errors {
    /// serde's `Ctxt` check: dropping a collector unchecked is a bug of this crate, and would
    /// silently accept bad input. A panic in a proc macro is a compile error that says so.
    fn drop(&mut self) {
        if !self.checked && !std::thread::panicking() {
            panic!(
                "supervisor-macros: errors were collected but never checked (a bug of the macro)"
            );
        }
    }
}

/// A `#[runnable]` function that has the right shape.
pub(crate) struct RunnableFn {
    /// The function as written.
    pub(crate) func: ItemFn,
    /// The parameters after the context, with the names the generated function gives them.
    pub(crate) args: Vec<Arg>,
    /// The children and sub-loggers its body names with literals.
    pub(crate) scope: Scope,
}

pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Box<Type>,
}

impl Arg {
    /// Whether the type is `impl Trait`, which rules out naming the generics explicitly.
    pub(crate) fn is_impl_trait(&self) -> bool {
        matches!(*self.ty, Type::ImplTrait(_))
    }
}

/// Checks the attribute's use and the function's signature, and collects the names its
/// body uses.
pub(crate) fn runnable(attr: TokenStream, func: ItemFn) -> syn::Result<RunnableFn> {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[runnable]` takes no arguments but `crate = \"path\"`: write `#[runnable]`",
        ));
    }
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "`#[runnable]` needs an `async fn`: write `async fn`",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a runnable cannot be `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a runnable cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a runnable cannot have an `extern` ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a runnable cannot be variadic",
        ));
    }
    for lifetime in sig.generics.lifetimes() {
        errors.push(syn::Error::new_spanned(
            lifetime,
            "a runnable cannot have lifetime parameters: its arguments are cloned for every \
             start and must be `'static`",
        ));
    }
    let mut inputs = sig.inputs.iter();
    let ctx = match inputs.next() {
        None => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a runnable's first parameter is its context: add `ctx: supervisor::Context`",
            ));
            None
        }
        Some(FnArg::Receiver(receiver)) => {
            errors.push(syn::Error::new_spanned(
                receiver,
                "a runnable cannot take `self`: make it a free function, and pass what it \
                 needs as arguments",
            ));
            None
        }
        Some(FnArg::Typed(param)) => {
            if !is_context(&param.ty) {
                errors.push(syn::Error::new_spanned(
                    &param.ty,
                    format!(
                        "a runnable's first parameter must be its `supervisor::Context`, found `{}`",
                        compact(&param.ty)
                    ),
                ));
            }
            match &*param.pat {
                Pat::Ident(p) => Some(p.ident.clone()),
                _ => None,
            }
        }
    };
    let mut args = Vec::new();
    for (i, input) in inputs.enumerate() {
        match input {
            FnArg::Typed(param) => {
                let ident = match &*param.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    _ => Ident::new(&format!("__arg{i}"), param.pat.span()),
                };
                if let Type::Reference(r) = &*param.ty {
                    errors.push(syn::Error::new_spanned(
                        r,
                        "a runnable argument cannot be a reference: it is cloned for every start \
                         and must be `'static` (pass an owned value or an `Arc`)",
                    ));
                }
                args.push(Arg {
                    ident,
                    ty: param.ty.clone(),
                });
            }
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "a runnable cannot take `self`",
            )),
        }
    }
    match &sig.output {
        syn::ReturnType::Default => errors.push(syn::Error::new(
            sig.paren_token.span.close(),
            "a runnable returns `supervisor::Result`: add `-> supervisor::Result`",
        )),
        syn::ReturnType::Type(_, ty) if !is_result(ty) => errors.push(syn::Error::new_spanned(
            ty,
            format!(
                "a runnable returns `supervisor::Result`, found `{}`",
                compact(ty)
            ),
        )),
        syn::ReturnType::Type(..) => {}
    }
    errors.finish()?;
    let mut scanner = Scanner {
        ctx: ctx.as_ref(),
        scope: Scope::default(),
    };
    scanner.visit_block(&func.block);
    Ok(RunnableFn {
        func,
        args,
        scope: scanner.scope,
    })
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn is_context(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Context" && s.arguments.is_none())
}

fn is_result(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Result")
}

/// Tokens as a person would write them: `dhcp(config.clone())`, not
/// `dhcp (config . clone ())`.
pub(crate) fn compact(tokens: &impl ToTokens) -> String {
    let spaced: Vec<char> = tokens.to_token_stream().to_string().chars().collect();
    let in_set = |c: Option<&char>, set: &str| c.is_some_and(|c| set.contains(*c));
    let mut out = String::with_capacity(spaced.len());
    for (i, &c) in spaced.iter().enumerate() {
        let glued = c == ' '
            && (in_set(i.checked_sub(1).and_then(|p| spaced.get(p)), "(.[:&!<")
                || in_set(spaced.get(i + 1), "().[],:?!<>"));
        if !glued {
            out.push(c);
        }
    }
    out
}

/// Finds the children and sub-loggers a runnable's body names with string literals, on
/// its context parameter. It does not look into closures and nested items: their code may
/// run with another context (a child's `|ctx| …`).
struct Scanner<'a> {
    ctx: Option<&'a Ident>,
    scope: Scope,
}

impl Scanner<'_> {
    fn on_ctx(&self, receiver: &Expr) -> bool {
        let Some(ctx) = self.ctx else { return false };
        match receiver {
            Expr::Path(p) => p.qself.is_none() && p.path.is_ident(ctx),
            Expr::Reference(r) => self.on_ctx(&r.expr),
            Expr::Paren(p) => self.on_ctx(&p.expr),
            _ => false,
        }
    }

    fn add_child(&mut self, name: Name, group: usize, runnable: &Expr, policy: ChildPolicy) {
        self.scope.entries.push(Entry::Child {
            name,
            group,
            kind: ChildKind::Runnable(Box::new(runnable.clone())),
            policy,
        });
    }
}

fn literal(expr: &Expr) -> Option<Name> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(Name {
            value: s.value(),
            span: s.span(),
        }),
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

/// A member of a literal `Group::new()…` chain: its name if a literal, its runnable, and
/// what a literal spec says of it.
type ChainMember<'a> = (Option<Name>, &'a Expr, ChildPolicy);

/// The members of a `Group::new().add(..).add_with(..)…` chain, in order, and what the
/// chain says of the group; `None` if the expression is not such a chain (a variable, a
/// function call).
fn group_chain(expr: &Expr) -> Option<(Vec<ChainMember<'_>>, GroupDecl)> {
    match expr {
        Expr::MethodCall(call) => {
            let (mut members, mut group) = group_chain(&call.receiver)?;
            match (call.method.to_string().as_str(), call.args.len()) {
                ("add", 2) => members.push((
                    literal(&call.args[0]),
                    &call.args[1],
                    ChildPolicy::default(),
                )),
                ("add_with", 3) => members.push((
                    literal(&call.args[0]),
                    &call.args[1],
                    policy::spec_chain(&call.args[2]),
                )),
                _ => policy::group_method(&mut group, call),
            }
            Some((members, group))
        }
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) => {
                let mut segments = p.path.segments.iter().rev();
                let is_new = segments.next().is_some_and(|s| s.ident == "new")
                    && segments.next().is_some_and(|s| s.ident == "Group");
                is_new.then(|| (Vec::new(), GroupDecl::default()))
            }
            _ => None,
        },
        Expr::Group(g) => group_chain(&g.expr),
        Expr::Paren(p) => group_chain(&p.expr),
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Scanner<'_> {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if self.on_ctx(&call.receiver) {
            let method = call.method.to_string();
            match (method.as_str(), call.args.len()) {
                ("run", 2) | ("run_with", 3) => {
                    if let Some(name) = literal(&call.args[0]) {
                        let policy = call.args.get(2).map(policy::spec_chain).unwrap_or_default();
                        let group = self.scope.new_group(GroupDecl::default());
                        self.add_child(name, group, &call.args[1], policy);
                    }
                }
                ("run_group", 1) => {
                    if let Some((members, decl)) = group_chain(&call.args[0]) {
                        let group = self.scope.new_group(decl);
                        for (name, runnable, policy) in members {
                            if let Some(name) = name {
                                self.add_child(name, group, runnable, policy);
                            }
                        }
                    }
                }
                ("dynamic", 2) => {
                    if let Some(name) = literal(&call.args[0]) {
                        let (policy, settings) = policy::dynamic_chain(&call.args[1]);
                        let group = self.scope.new_group(GroupDecl::default());
                        self.scope.entries.push(Entry::Child {
                            name,
                            group,
                            kind: ChildKind::Dynamic {
                                settings,
                                binding: None,
                            },
                            policy,
                        });
                    }
                }
                ("sub_logger" | "must_sub_logger", 1) => {
                    if let Some(name) = literal(&call.args[0]) {
                        self.scope.entries.push(Entry::SubLogger(name));
                    }
                }
                _ => {}
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The input of `supervision_tree!`.
///
/// ```text
/// tree     := attr* vis 'fn' IDENT generics? '(' args ')' '{' entries '}'
/// entries  := (entry ','?)*
/// entry    := setting* name ':' EXPR            a leaf: a runnable, started as a group of one
///           | setting* name '{' entries '}'     a structure node: starts its entries, then is done
///           | setting* 'group' '{' members '}'  members restarted together
///           | setting* 'dynamic' IDENT          a dynamic group, its handle bound to IDENT
///           | 'sub_loggers' '[' name,* ']'      sub-loggers of the enclosing node
/// members  := (setting* (name ':' EXPR | name '{' entries '}')) separated by ','
/// name     := IDENT | STRING                    a string for names that are not identifiers
/// setting  := '#[' … ']'                        see `policy`
/// ```
pub(crate) struct TreeDef {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) fn_token: Token![fn],
    pub(crate) ident: Ident,
    pub(crate) generics: syn::Generics,
    pub(crate) inputs: Punctuated<FnArg, Token![,]>,
    pub(crate) scope: Scope,
    /// Where the `supervisor` crate is: `#![crate = "path"]` first in the tree, or
    /// `::supervisor`.
    pub(crate) krate: syn::Path,
}

/// The path the expansions name the runtime by, when nothing else is said.
fn default_crate() -> syn::Path {
    syn::parse_quote!(::supervisor)
}

/// `crate = "path"`, as tokio-macros takes it: for a program that renames the `supervisor`
/// dependency, or a crate that re-exports it.
struct CrateOverride(syn::Path);

impl Parse for CrateOverride {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.parse::<Token![crate]>()?;
        input.parse::<Token![=]>()?;
        let path: syn::LitStr = input.parse()?;
        parse_crate_path(&path).map(CrateOverride)
    }
}

pub(crate) fn parse_crate_path(path: &syn::LitStr) -> syn::Result<syn::Path> {
    path.parse().map_err(|_| {
        syn::Error::new(
            path.span(),
            format!(
                "`crate` takes the path of the `supervisor` crate, e.g. `crate = \"::supervisor\"`; \
                 `{}` is not a path",
                path.value()
            ),
        )
    })
}

/// Splits `#[runnable(crate = "path")]` into the path and what else the attribute says
/// (which [`runnable`] refuses).
pub(crate) fn crate_override(attr: TokenStream) -> syn::Result<(syn::Path, TokenStream)> {
    if attr.is_empty() {
        return Ok((default_crate(), attr));
    }
    let starts_with_crate = matches!(
        attr.clone().into_iter().next(),
        Some(proc_macro2::TokenTree::Ident(ident)) if ident == "crate"
    );
    if starts_with_crate {
        let CrateOverride(path) = syn::parse2(attr)?;
        Ok((path, TokenStream::new()))
    } else {
        Ok((default_crate(), attr))
    }
}

/// The crate a tree names, read as far as the input allows (for the stub beside errors).
pub(crate) fn tree_crate(input: TokenStream) -> syn::Path {
    let parser = |input: ParseStream<'_>| {
        let krate = tree_crate_attribute(input)?;
        input.parse::<TokenStream>()?;
        Ok(krate)
    };
    syn::parse::Parser::parse2(parser, input).unwrap_or_else(|_| default_crate())
}

/// `#![crate = "path"]` at the start of a tree, or the default.
fn tree_crate_attribute(input: ParseStream<'_>) -> syn::Result<syn::Path> {
    if !(input.peek(Token![#]) && input.peek2(Token![!])) {
        return Ok(default_crate());
    }
    input.parse::<Token![#]>()?;
    input.parse::<Token![!]>()?;
    let content;
    syn::bracketed!(content in input);
    let CrateOverride(path) = content.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "the only inner attribute of a tree is `#![crate = \"path\"]`",
        )
    })?;
    if !content.is_empty() {
        return Err(content.error("unexpected tokens after the crate path"));
    }
    Ok(path)
}

/// The head of a `supervision_tree!` (`fn name(args)`) with the rest skipped: when the tree
/// does not parse, a stub of that signature is emitted beside the error, so that uses of it
/// do not each fail again.
pub(crate) struct TreeHead {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) generics: syn::Generics,
    pub(crate) inputs: syn::punctuated::Punctuated<FnArg, Token![,]>,
}

impl Parse for TreeHead {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        tree_crate_attribute(input)?;
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![fn]>()?;
        let ident: Ident = input.parse()?;
        let mut generics: syn::Generics = input.parse()?;
        let args;
        syn::parenthesized!(args in input);
        let inputs = args.parse_terminated(FnArg::parse, Token![,])?;
        generics.where_clause = input.parse()?;
        input.parse::<TokenStream>()?;
        Ok(TreeHead {
            attrs,
            vis,
            ident,
            generics,
            inputs,
        })
    }
}

impl Parse for TreeDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = tree_crate_attribute(input)?;
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let fn_token: Token![fn] = input.parse()?;
        let ident: Ident = input.parse()?;
        let mut generics: syn::Generics = input.parse()?;
        let args;
        syn::parenthesized!(args in input);
        let inputs = args.parse_terminated(FnArg::parse, Token![,])?;
        if let Some(receiver) = inputs.iter().find(|i| matches!(i, FnArg::Receiver(_))) {
            return Err(syn::Error::new_spanned(
                receiver,
                "a tree cannot take `self`: it declares a free function; pass what it needs \
                 as arguments",
            ));
        }
        generics.where_clause = input.parse()?;
        let body;
        syn::braced!(body in input);
        let mut scope = Scope::default();
        parse_entries(&body, &mut scope)?;
        Ok(TreeDef {
            attrs,
            vis,
            fn_token,
            ident,
            generics,
            inputs,
            scope,
            krate,
        })
    }
}

fn parse_name(input: ParseStream<'_>) -> syn::Result<Name> {
    if input.peek(syn::LitStr) {
        let s: syn::LitStr = input.parse()?;
        return Ok(Name {
            value: s.value(),
            span: s.span(),
        });
    }
    let ident = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a node name: an identifier or a string literal",
        )
    })?;
    Ok(ident_name(&ident))
}

/// The node name an identifier writes (`r#type` is `type`).
fn ident_name(ident: &Ident) -> Name {
    let value = ident.to_string();
    Name {
        value: value.strip_prefix("r#").unwrap_or(&value).to_owned(),
        span: ident.span(),
    }
}

fn parse_entries(input: ParseStream<'_>, scope: &mut Scope) -> syn::Result<()> {
    while !input.is_empty() {
        let attrs = input.call(Attribute::parse_outer)?;
        let keyword = input.fork().call(Ident::parse_any).ok();
        let is = |k: &str| keyword.as_ref().is_some_and(|i| i == k);
        if is("group") && input.peek2(syn::token::Brace) {
            let (_, decl) = policy::read(&attrs, Place::Group)?;
            input.call(Ident::parse_any)?;
            let members;
            syn::braced!(members in input);
            let group = scope.new_group(decl);
            while !members.is_empty() {
                let attrs = members.call(Attribute::parse_outer)?;
                let (policy, _) = policy::read(&attrs, Place::Member)?;
                let name = parse_name(&members)?;
                let kind = parse_child(&members, &name)?;
                scope.entries.push(Entry::Child {
                    name,
                    group,
                    kind,
                    policy,
                });
                if !members.is_empty() {
                    members.parse::<Token![,]>()?;
                }
            }
        } else if is("dynamic") && (input.peek2(Ident) || input.peek2(syn::LitStr)) {
            let (policy, settings) = policy::read(&attrs, Place::Dynamic)?;
            input.call(Ident::parse_any)?;
            if input.peek(syn::LitStr) {
                return Err(input.error(
                    "a dynamic group's name is the variable its handle is bound to, for the \
                     entries after it: write it as an identifier",
                ));
            }
            let binding: Ident = input.parse()?;
            let name = ident_name(&binding);
            let group = scope.new_group(GroupDecl::default());
            scope.entries.push(Entry::Child {
                name,
                group,
                kind: ChildKind::Dynamic {
                    settings,
                    binding: Some(binding),
                },
                policy,
            });
        } else if is("sub_loggers") && input.peek2(syn::token::Bracket) {
            if let Some(attr) = attrs.iter().find(|a| !a.path().is_ident("doc")) {
                return Err(syn::Error::new_spanned(
                    attr,
                    "sub-loggers have no supervision settings",
                ));
            }
            input.call(Ident::parse_any)?;
            let names;
            syn::bracketed!(names in input);
            while !names.is_empty() {
                scope.entries.push(Entry::SubLogger(parse_name(&names)?));
                if !names.is_empty() {
                    names.parse::<Token![,]>()?;
                }
            }
        } else {
            let (policy, decl) = policy::read(&attrs, Place::Single)?;
            let name = parse_name(input)?;
            let kind = parse_child(input, &name)?;
            let group = scope.new_group(decl);
            scope.entries.push(Entry::Child {
                name,
                group,
                kind,
                policy,
            });
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(())
}

fn parse_child(input: ParseStream<'_>, name: &Name) -> syn::Result<ChildKind> {
    if input.peek(Token![:]) && !input.peek(Token![::]) {
        input.parse::<Token![:]>()?;
        return Ok(ChildKind::Runnable(Box::new(input.parse()?)));
    }
    if input.peek(syn::token::Brace) {
        let body;
        syn::braced!(body in input);
        let mut scope = Scope::default();
        parse_entries(&body, &mut scope)?;
        return Ok(ChildKind::Structure(scope));
    }
    Err(syn::Error::new(
        if input.is_empty() {
            name.span
        } else {
            input.span()
        },
        format!(
            "expected `: runnable` or `{{ children }}` after the node name `{}`",
            name.value
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::Errors;

    #[test]
    #[should_panic(expected = "errors were collected but never checked")]
    fn a_collector_dropped_unchecked_is_a_bug() {
        let mut errors = Errors::default();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "lost"));
        drop(errors);
    }

    #[test]
    fn a_checked_collector_gives_every_error() {
        let mut errors = Errors::default();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "one"));
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "two"));
        let all = errors.finish().unwrap_err();
        assert_eq!(all.into_iter().count(), 2);
    }
    use super::*;

    #[test]
    fn compact_reads_like_source() {
        let expr: Expr = syn::parse_quote!(net::dhcp(config.clone(), &ports[0], vec![1, 2])?);
        assert_eq!(
            compact(&expr),
            "net::dhcp(config.clone(), &ports[0], vec![1, 2])?"
        );
    }

    #[test]
    fn literal_names_on_the_context_are_found_and_closures_are_skipped() {
        let func: ItemFn = syn::parse_quote! {
            async fn parent(ctx: Context) -> supervisor::Result {
                ctx.run("a", leaf())?;
                ctx.run_group(Group::new().add("b", leaf()).backoff(b).add("c", leaf()))?;
                other.run("not_ours", leaf());
                ctx.run(&dynamic, leaf())?;
                let _ = ctx.sub_logger("log");
                ctx.run("d", |ctx: Context| async move { ctx.run("inner", leaf()) })?;
                Ok(())
            }
        };
        let parsed = runnable(TokenStream::new(), func).unwrap_or_else(|e| panic!("{e}"));
        let found: Vec<(String, Option<usize>)> = parsed
            .scope
            .entries
            .iter()
            .map(|e| match e {
                Entry::Child { name, group, .. } => (name.value.clone(), Some(*group)),
                Entry::SubLogger(name) => (name.value.clone(), None),
            })
            .collect();
        let expected = [
            ("a", Some(0)),
            ("b", Some(1)),
            ("c", Some(1)),
            ("log", None),
            ("d", Some(2)),
        ];
        let expected: Vec<(String, Option<usize>)> = expected
            .iter()
            .map(|(n, g)| ((*n).to_owned(), *g))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_tree_grammar_parses_every_form() {
        let tree: TreeDef = syn::parse_quote! {
            pub fn t(x: u8) {
                leaf: a(x),
                node { inner: b() },
                group { g1: c(), g2 { deep: d() } },
                sub_loggers [s1, "s2"],
                "9p": e(),
            }
        };
        assert_eq!(tree.scope.groups.len(), 4);
        assert_eq!(tree.scope.entries.len(), 7);
    }

    #[test]
    fn settings_are_read_where_they_belong() {
        use crate::policy::{Kind, ShutdownDecl};
        let tree: TreeDef = syn::parse_quote! {
            fn t() {
                #[restart = transient]
                #[shutdown = 1.5s]
                #[intensity(3, 5m)]
                leaf: a(),
                #[strategy = rest_for_one]
                #[ordered_shutdown]
                group {
                    #[shutdown = brutal] g1: c(),
                    #[restart = temporary] g2: d(),
                },
            }
        };
        let groups = &tree.scope.groups;
        assert_eq!(groups[0].intensity, Some((3, 300_000_000_000)));
        assert!(groups[1].rest_for_one && groups[1].ordered_shutdown);
        let policies: Vec<_> = tree
            .scope
            .entries
            .iter()
            .map(|e| match e {
                Entry::Child { policy, .. } => *policy,
                Entry::SubLogger(_) => unreachable!(),
            })
            .collect();
        assert!(policies[0].restart == Some(Kind::Transient));
        assert!(matches!(
            policies[0].shutdown,
            Some(ShutdownDecl::Timeout(1_500_000_000))
        ));
        assert!(matches!(policies[1].shutdown, Some(ShutdownDecl::Brutal)));
        assert!(policies[2].restart == Some(Kind::Temporary));
    }

    #[test]
    fn a_spec_chain_in_a_body_is_read() {
        let func: syn::ItemFn = syn::parse_quote! {
            async fn parent(ctx: Context) -> supervisor::Result {
                ctx.run_with("once", job(), Spec::new().restart(Restart::Temporary))?;
                ctx.run_group(
                    Group::new()
                        .add("a", job())
                        .add_with("b", job(), Spec::new().shutdown(Shutdown::Brutal))
                        .strategy(Strategy::RestForOne),
                )?;
                Ok(())
            }
        };
        let parsed = runnable(TokenStream::new(), func).unwrap();
        assert_eq!(parsed.scope.entries.len(), 3);
        assert!(parsed.scope.groups[1].rest_for_one);
        let Entry::Child { policy, .. } = &parsed.scope.entries[0] else {
            unreachable!()
        };
        assert!(policy.restart == Some(crate::policy::Kind::Temporary));
    }
}
