//! Expanding: the generated code, which names the runtime only through
//! `::supervisor::__private` (or the path given as `crate = "…"`) and absolute paths.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn};

use crate::check;
use crate::model::{ChildKind, Entry, Origin, Scope};
use crate::parse::{self, Arg, RunnableFn, TreeDef, compact};
use crate::policy;

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
    let (krate, attr) = match parse::crate_override(attr) {
        Ok(split) => split,
        Err(error) => return with_error(quote!(#func), error),
    };
    let parsed = match parse::runnable(attr, func.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return with_error(quote!(#func), error),
    };
    let expanded = expand_runnable(&parsed, Kind::Runnable, &krate);
    match check::names(&parsed.scope, Origin::Body) {
        Ok(()) => expanded,
        Err(error) => with_error(expanded, error),
    }
}

/// `supervision_tree!`: parsed, checked, and expanded as the runnable it declares.
pub(crate) fn tree(input: TokenStream) -> TokenStream {
    let tree: TreeDef = match syn::parse2(input.clone()) {
        Ok(tree) => tree,
        Err(error) => {
            let krate = parse::tree_crate(input.clone());
            return with_error(stub(input, &krate), error);
        }
    };
    let func = tree_fn(&tree);
    let parsed = match parse::runnable(TokenStream::new(), func) {
        Ok(mut parsed) => {
            parsed.scope = tree.scope;
            parsed
        }
        Err(error) => return with_error(stub(input, &tree.krate), error),
    };
    let expanded = expand_runnable(&parsed, Kind::Tree, &tree.krate);
    match check::names(&parsed.scope, Origin::Tree) {
        Ok(()) => expanded,
        Err(error) => with_error(expanded, error),
    }
}

/// A function of the tree's signature that returns a runnable doing nothing, to stand beside
/// the tree's errors; nothing if not even the signature parses.
fn stub(input: TokenStream, krate: &syn::Path) -> TokenStream {
    let Ok(parse::TreeHead {
        attrs,
        vis,
        ident,
        generics,
        inputs,
    }) = syn::parse2(input)
    else {
        return TokenStream::new();
    };
    if inputs.iter().any(|i| matches!(i, syn::FnArg::Receiver(_))) {
        return TokenStream::new();
    }
    let docs = attrs.iter().filter(|a| a.path().is_ident("doc"));
    let where_clause = &generics.where_clause;
    quote! {
        #(#docs)*
        #[allow(unused_variables, clippy::all)]
        #vis fn #ident #generics (#inputs) -> impl #krate::Runnable #where_clause {
            |_: #krate::Context| async { ::core::result::Result::Ok(()) }
        }
    }
}

/// `path`'s tokens, all at `span`.
fn respanned(path: &syn::Path, span: proc_macro2::Span) -> TokenStream {
    quote::ToTokens::to_token_stream(path)
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
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
fn expand_runnable(r: &RunnableFn, kind: Kind, krate: &syn::Path) -> TokenStream {
    let func = &r.func;
    let sig = &func.sig;
    let (vis, name) = (&func.vis, &sig.ident);
    let (impl_generics, _, where_clause) = sig.generics.split_for_impl();
    let params = r.args.iter().map(|Arg { ident, ty }| quote!(#ident: #ty));
    let clones = r.args.iter().map(|arg| {
        let ident = &arg.ident;
        // The whole call at the argument's type, so that a type that cannot be cloned is
        // reported there.
        let krate = respanned(krate, arg.ty.span());
        quote_spanned!(arg.ty.span()=> #krate::__private::clone_arg(&#ident))
    });
    let turbofish = turbofish(r);
    let (attrs, body_attrs) = split_attributes(&func.attrs, name);
    let mut inner = func.clone();
    inner.sig.ident = format_ident!("__supervisor_body", span = name.span());
    inner.vis = syn::Visibility::Inherited;
    inner.attrs = body_attrs;
    let registration = registration(r, kind, krate);
    let closure = quote_spanned! {name.span()=>
        move |ctx: #krate::Context| __supervisor_body #turbofish (ctx, #(#clones),*)
    };
    let must_use = (!attrs.iter().any(|a| a.path().is_ident("must_use"))).then(|| {
        quote!(#[must_use = "a runnable does nothing until it is given to `run`, a `Group` or a `Supervisor`"])
    });
    quote! {
        #(#attrs)*
        #must_use
        #vis fn #name #impl_generics (#(#params),*) -> impl #krate::Runnable #where_clause {
            #registration
            #[allow(clippy::needless_pass_by_value, clippy::unused_async)]
            #inner
            #closure
        }
    }
}

/// Splits the attributes of a `#[runnable] fn` between the constructor the user calls and
/// the body the supervisor runs. The constructor gets what describes the API — `doc`,
/// `must_use`, `deprecated`, `cfg` — and the body everything else (`tracing::instrument`,
/// `cfg_attr`, another crate's attributes), as that is the `async fn` the user wrote. Lint
/// levels (`allow`, `warn`, `deny`, `forbid`, `expect`) go on both.
///
/// The body is renamed, so an `instrument` without a `name` is given the function's, and
/// its span is named as `#[tracing::instrument]` on the plain `async fn` would name it.
fn split_attributes(
    attrs: &[syn::Attribute],
    name: &syn::Ident,
) -> (Vec<syn::Attribute>, Vec<syn::Attribute>) {
    const CONSTRUCTOR: [&str; 4] = ["doc", "must_use", "deprecated", "cfg"];
    const LINTS: [&str; 5] = ["allow", "warn", "deny", "forbid", "expect"];
    let mut constructor = Vec::new();
    let mut body = Vec::new();
    for attr in attrs {
        let path = attr.path();
        if CONSTRUCTOR.iter().any(|c| path.is_ident(c)) {
            constructor.push(attr.clone());
        } else if LINTS.iter().any(|l| path.is_ident(l)) {
            constructor.push(attr.clone());
            body.push(attr.clone());
        } else if path
            .segments
            .last()
            .is_some_and(|s| s.ident == "instrument")
        {
            body.push(named_instrument(attr, name));
        } else {
            body.push(attr.clone());
        }
    }
    (constructor, body)
}

/// `attr` (an `instrument` attribute) with `name = "<name>"` unless it names its span.
fn named_instrument(attr: &syn::Attribute, name: &syn::Ident) -> syn::Attribute {
    let span_name = name.to_string();
    let path = attr.path();
    match &attr.meta {
        syn::Meta::Path(_) => syn::parse_quote!(#[#path(name = #span_name)]),
        syn::Meta::List(list) => {
            let mut tokens = list.tokens.clone().into_iter().peekable();
            let mut names_itself = false;
            while let Some(token) = tokens.next() {
                if let proc_macro2::TokenTree::Ident(ident) = &token {
                    let assigns = matches!(
                        tokens.peek(),
                        Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '='
                    );
                    names_itself |= ident == "name" && assigns;
                }
            }
            if names_itself {
                attr.clone()
            } else {
                let args = &list.tokens;
                syn::parse_quote!(#[#path(name = #span_name, #args)])
            }
        }
        syn::Meta::NameValue(_) => attr.clone(),
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
fn registration(r: &RunnableFn, kind: Kind, krate: &syn::Path) -> TokenStream {
    let name = r.func.sig.ident.to_string();
    let kind = match kind {
        Kind::Runnable => quote!(Runnable),
        Kind::Tree => quote!(Tree),
    };
    let contents = contents(&r.scope, krate);
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::Declaration {
                name: #name,
                kind: #krate::__private::DeclarationKind::#kind,
                module_path: ::core::module_path!(),
                file: ::core::file!(),
                line: ::core::line!(),
                contents: #contents,
            }
        }
    }
}

fn contents(scope: &Scope, krate: &syn::Path) -> TokenStream {
    let mut children = Vec::new();
    let mut sub_loggers = Vec::new();
    for entry in &scope.entries {
        match entry {
            Entry::Child {
                name,
                group,
                kind,
                policy: child_policy,
            } => {
                let name = &name.value;
                let group = u32::try_from(*group).unwrap_or(u32::MAX);
                let dynamic = matches!(kind, ChildKind::Dynamic { .. });
                let kind = match kind {
                    ChildKind::Runnable(expr) => {
                        let text = compact(expr);
                        let callee = match callee(expr) {
                            Some(c) => quote!(::core::option::Option::Some(#c)),
                            None => quote!(::core::option::Option::None),
                        };
                        quote!(#krate::__private::ChildKind::Runnable { expr: #text, callee: #callee })
                    }
                    ChildKind::Structure(sub) => {
                        let sub = contents(sub, krate);
                        quote!(#krate::__private::ChildKind::Structure(#sub))
                    }
                    ChildKind::Dynamic { settings, .. } => {
                        policy::registry_dynamic(*settings, krate)
                    }
                };
                let settings = policy::registry_child(*child_policy, dynamic, krate);
                children.push(quote!(#krate::__private::Child {
                    name: #name, group: #group, kind: #kind, #settings
                }));
            }
            Entry::SubLogger(name) => sub_loggers.push(name.value.clone()),
        }
    }
    let groups = scope
        .groups
        .iter()
        .map(|g| policy::registry_group(*g, krate));
    quote! {
        #krate::__private::Contents {
            children: &[#(#children),*],
            sub_loggers: &[#(#sub_loggers),*],
            groups: &[#(#groups),*],
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
        krate,
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
    let body = start_scope(scope, &args, krate);
    let where_clause = &generics.where_clause;
    let comma = (!inputs.is_empty()).then(|| quote!(,));
    syn::parse_quote! {
        #(#attrs)*
        #vis async #fn_token #ident #generics (ctx: #krate::Context #comma #inputs)
            -> #krate::Result #where_clause
        {
            #body
        }
    }
}

/// Statements that start `scope`'s children group by group, reserve its sub-loggers, and
/// end the structure node as Done.
///
/// A dynamic group binds its handle to its name for the entries after it, structure nodes
/// included (which take clones of it, as of the tree's arguments).
fn start_scope(scope: &Scope, args: &[syn::Ident], krate: &syn::Path) -> TokenStream {
    let mut statements = Vec::new();
    let mut in_scope = args.to_vec();
    for (group, decl) in scope.groups.iter().enumerate() {
        let in_group = || {
            scope.entries.iter().filter_map(move |entry| match entry {
                Entry::Child {
                    name,
                    group: g,
                    kind,
                    policy,
                } if *g == group => Some((name, kind, policy)),
                _ => None,
            })
        };
        if let Some((name, ChildKind::Dynamic { settings, binding }, policy)) = in_group().next() {
            let name = &name.value;
            let spec = policy::dynamic_spec(*policy, *settings, krate);
            if let Some(binding) = binding {
                statements.push(quote! {
                    #[allow(unused_variables)]
                    let #binding = ctx.dynamic(#name, #spec)?;
                });
                in_scope.push(binding.clone());
            }
            continue;
        }
        let members: Vec<TokenStream> = in_group()
            .map(|(name, kind, child_policy)| {
                let runnable = match kind {
                    ChildKind::Runnable(expr) => quote!(#expr),
                    ChildKind::Structure(sub) => structure(sub, &in_scope, krate),
                    ChildKind::Dynamic { .. } => {
                        unreachable!("a dynamic group is a group of its own")
                    }
                };
                policy::add(*child_policy, &name.value, &runnable, krate)
            })
            .collect();
        let settings = policy::group_calls(*decl, krate);
        statements.push(quote! {
            ctx.run_group(#krate::Group::new() #(#members)* #settings)?;
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
        ctx.signal(#krate::Signal::Healthy);
        ctx.signal(#krate::Signal::Done);
        ::core::result::Result::Ok(())
    }
}

/// A structure node: a runnable that starts `scope`, with its own clones of the tree's
/// arguments at every start.
fn structure(scope: &Scope, args: &[syn::Ident], krate: &syn::Path) -> TokenStream {
    let body = start_scope(scope, args, krate);
    quote! {{
        #(#[allow(unused_variables)] let #args = ::core::clone::Clone::clone(&#args);)*
        move |ctx: #krate::Context| {
            #(#[allow(unused_variables)] let #args = ::core::clone::Clone::clone(&#args);)*
            async move { #body }
        }
    }}
}
