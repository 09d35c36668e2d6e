//! Expanding: the generated code, which names the runtime only through
//! `::supervisor::__private` and absolute paths.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn};

use crate::check;
use crate::model::{ChildKind, Entry, Origin, Scope};
use crate::parse::{self, Arg, RunnableFn, TreeDef, compact};

/// `#[runnable]`: a misused attribute gives its errors next to the function as written
/// (so that nothing else breaks); bad names give their errors next to the full expansion.
pub(crate) fn runnable(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "`#[runnable]` goes on an `async fn name(ctx: Context, …) -> supervisor::Result`",
            );
            return with_error(item, error);
        }
    };
    let parsed = match parse::runnable(attr, func.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return with_error(quote!(#func), error),
    };
    let expanded = expand_runnable(&parsed, Kind::Runnable);
    match check::names(&parsed.scope, Origin::Body) {
        Ok(()) => expanded,
        Err(error) => with_error(expanded, error),
    }
}

/// `supervision_tree!`: parsed, checked, and expanded as the runnable it declares.
pub(crate) fn tree(input: TokenStream) -> TokenStream {
    let tree: TreeDef = match syn::parse2(input) {
        Ok(tree) => tree,
        Err(error) => return error.into_compile_error(),
    };
    let func = tree_fn(&tree);
    let parsed = match parse::runnable(TokenStream::new(), func) {
        Ok(mut parsed) => {
            parsed.scope = tree.scope;
            parsed
        }
        Err(error) => return error.into_compile_error(),
    };
    let expanded = expand_runnable(&parsed, Kind::Tree);
    match check::names(&parsed.scope, Origin::Tree) {
        Ok(()) => expanded,
        Err(error) => with_error(expanded, error),
    }
}

fn with_error(tokens: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote!(#tokens #error)
}

#[derive(Clone, Copy)]
enum Kind {
    Runnable,
    Tree,
}

/// `fn name(args) -> impl Runnable`, holding the function as written (renamed) and calling
/// it with fresh clones of the arguments at every start.
fn expand_runnable(r: &RunnableFn, kind: Kind) -> TokenStream {
    let func = &r.func;
    let sig = &func.sig;
    let (vis, name) = (&func.vis, &sig.ident);
    let (impl_generics, _, where_clause) = sig.generics.split_for_impl();
    let params = r.args.iter().map(|Arg { ident, ty }| quote!(#ident: #ty));
    let clones = r.args.iter().map(|arg| {
        let ident = &arg.ident;
        quote_spanned!(arg.ty.span()=> ::supervisor::__private::clone_arg(&#ident))
    });
    let turbofish = turbofish(r);
    let mut inner = func.clone();
    inner.sig.ident = format_ident!("__supervisor_body", span = name.span());
    inner.vis = syn::Visibility::Inherited;
    inner.attrs.retain(|a| !a.path().is_ident("doc"));
    let registration = registration(r, kind);
    let closure = quote_spanned! {name.span()=>
        move |ctx: ::supervisor::Context| __supervisor_body #turbofish (ctx, #(#clones),*)
    };
    let attrs = &func.attrs;
    quote! {
        #(#attrs)*
        #[must_use = "a runnable does nothing until it is given to `run`, a `Group` or a `Supervisor`"]
        #vis fn #name #impl_generics (#(#params),*) -> impl ::supervisor::Runnable #where_clause {
            #registration
            #[allow(clippy::needless_pass_by_value, clippy::unused_async)]
            #inner
            #closure
        }
    }
}

/// Explicit generic arguments for the call of the inner function, which cannot always be
/// inferred (a const parameter); impossible (and unneeded) with `impl Trait` arguments.
fn turbofish(r: &RunnableFn) -> TokenStream {
    let generics = &r.func.sig.generics;
    let params: Vec<TokenStream> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => {
                let ident = &t.ident;
                Some(quote!(#ident))
            }
            syn::GenericParam::Const(c) => {
                let ident = &c.ident;
                Some(quote!(#ident))
            }
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    if params.is_empty() || r.args.iter().any(Arg::is_impl_trait) {
        TokenStream::new()
    } else {
        quote!(::<#(#params),*>)
    }
}

/// Submits the static description of the declaration to the registry.
fn registration(r: &RunnableFn, kind: Kind) -> TokenStream {
    let name = r.func.sig.ident.to_string();
    let kind = match kind {
        Kind::Runnable => quote!(Runnable),
        Kind::Tree => quote!(Tree),
    };
    let contents = contents(&r.scope);
    quote! {
        ::supervisor::__private::inventory::submit! {
            ::supervisor::__private::Declaration {
                name: #name,
                kind: ::supervisor::__private::DeclarationKind::#kind,
                module_path: ::core::module_path!(),
                file: ::core::file!(),
                line: ::core::line!(),
                contents: #contents,
            }
        }
    }
}

fn contents(scope: &Scope) -> TokenStream {
    let mut children = Vec::new();
    let mut sub_loggers = Vec::new();
    for entry in &scope.entries {
        match entry {
            Entry::Child { name, group, kind } => {
                let name = &name.value;
                let group = u32::try_from(*group).unwrap_or(u32::MAX);
                let kind = match kind {
                    ChildKind::Runnable(expr) => {
                        let text = compact(expr);
                        let callee = match callee(expr) {
                            Some(c) => quote!(::core::option::Option::Some(#c)),
                            None => quote!(::core::option::Option::None),
                        };
                        quote!(::supervisor::__private::ChildKind::Runnable { expr: #text, callee: #callee })
                    }
                    ChildKind::Structure(sub) => {
                        let sub = contents(sub);
                        quote!(::supervisor::__private::ChildKind::Structure(#sub))
                    }
                };
                children.push(quote!(::supervisor::__private::Child { name: #name, group: #group, kind: #kind }));
            }
            Entry::SubLogger(name) => sub_loggers.push(name.value.clone()),
        }
    }
    quote! {
        ::supervisor::__private::Contents {
            children: &[#(#children),*],
            sub_loggers: &[#(#sub_loggers),*],
        }
    }
}

/// The name of the function a runnable expression calls (`dhcp` in `net::dhcp(cfg)`).
fn callee(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Call(call) => callee(&call.func),
        Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        Expr::Paren(p) => callee(&p.expr),
        Expr::Group(g) => callee(&g.expr),
        _ => None,
    }
}

/// The tree as the `async fn` a `#[runnable]` would be: it starts the declared children in
/// order, reserves the sub-loggers, then signals Healthy and Done.
fn tree_fn(tree: &TreeDef) -> ItemFn {
    let TreeDef {
        attrs,
        vis,
        fn_token,
        ident,
        generics,
        inputs,
        scope,
    } = tree;
    let args: Vec<syn::Ident> = inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(t) => match &*t.pat {
                syn::Pat::Ident(p) => Some(p.ident.clone()),
                _ => None,
            },
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let body = start_scope(scope, &args);
    let where_clause = &generics.where_clause;
    let comma = (!inputs.is_empty()).then(|| quote!(,));
    syn::parse_quote! {
        #(#attrs)*
        #vis async #fn_token #ident #generics (ctx: ::supervisor::Context #comma #inputs)
            -> ::supervisor::Result #where_clause
        {
            #body
        }
    }
}

/// Statements that start `scope`'s children group by group, reserve its sub-loggers, and
/// end the structure node as Done.
fn start_scope(scope: &Scope, args: &[syn::Ident]) -> TokenStream {
    let mut statements = Vec::new();
    for group in 0..scope.groups {
        let members = scope.entries.iter().filter_map(|entry| match entry {
            Entry::Child {
                name,
                group: g,
                kind,
            } if *g == group => {
                let name = &name.value;
                let runnable = match kind {
                    ChildKind::Runnable(expr) => quote!(#expr),
                    ChildKind::Structure(sub) => structure(sub, args),
                };
                Some(quote!(.add(#name, #runnable)))
            }
            _ => None,
        });
        statements.push(quote! {
            ctx.run_group(::supervisor::Group::new() #(#members)*)?;
        });
    }
    for entry in &scope.entries {
        if let Entry::SubLogger(name) = entry {
            let name = &name.value;
            statements.push(quote!(ctx.sub_logger(#name)?;));
        }
    }
    quote! {
        #(#statements)*
        ctx.signal(::supervisor::Signal::Healthy);
        ctx.signal(::supervisor::Signal::Done);
        ::core::result::Result::Ok(())
    }
}

/// A structure node: a runnable that starts `scope`, with its own clones of the tree's
/// arguments at every start.
fn structure(scope: &Scope, args: &[syn::Ident]) -> TokenStream {
    let body = start_scope(scope, args);
    quote! {{
        #(#[allow(unused_variables)] let #args = ::core::clone::Clone::clone(&#args);)*
        move |ctx: ::supervisor::Context| {
            #(#[allow(unused_variables)] let #args = ::core::clone::Clone::clone(&#args);)*
            async move { #body }
        }
    }}
}
