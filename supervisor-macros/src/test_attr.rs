//! `#[supervisor::test]`: parse the runtime arguments and the test function, expand to a
//! `#[test]` that runs it with the harness.

use proc_macro2::TokenStream;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Lit, MetaNameValue, Token};

use crate::parse::Errors;

struct Options {
    multi_thread: bool,
    worker_threads: Option<usize>,
    start_paused: bool,
    krate: syn::Path,
}

fn options(args: TokenStream) -> syn::Result<Options> {
    let parser = Punctuated::<MetaNameValue, Token![,]>::parse_terminated;
    let pairs = syn::parse::Parser::parse2(parser, args)?;
    let mut options = Options {
        multi_thread: false,
        worker_threads: None,
        start_paused: false,
        krate: syn::parse_quote!(::supervisor),
    };
    let mut errors = Errors::default();
    let mut flavor_span = None;
    let mut workers_span = None;
    for pair in &pairs {
        let key = pair
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let lit = match &pair.value {
            Expr::Lit(l) => Some(&l.lit),
            _ => None,
        };
        match (key.as_str(), lit) {
            ("flavor", Some(Lit::Str(s))) => {
                flavor_span = Some(s.span());
                match s.value().as_str() {
                    "current_thread" => options.multi_thread = false,
                    "multi_thread" => options.multi_thread = true,
                    other => errors.push(syn::Error::new(
                        s.span(),
                        format!("unknown flavor `{other}`: expected `current_thread` or `multi_thread`"),
                    )),
                }
            }
            ("worker_threads", Some(Lit::Int(n))) => {
                workers_span = Some(pair.path.span());
                match n.base10_parse::<usize>() {
                    Ok(0) | Err(_) => errors.push(syn::Error::new(
                        n.span(),
                        "`worker_threads` must be a number of at least 1",
                    )),
                    Ok(n) => options.worker_threads = Some(n),
                }
            }
            ("start_paused", Some(Lit::Bool(b))) => options.start_paused = b.value,
            ("crate", Some(Lit::Str(path))) => match crate::parse::parse_crate_path(path) {
                Ok(path) => options.krate = path,
                Err(e) => errors.push(e),
            },
            ("crate", _) => errors.push(syn::Error::new_spanned(
                &pair.value,
                "`crate` takes the crate's path as a string: `crate = \"::supervisor\"`",
            )),
            ("flavor", _) => errors.push(syn::Error::new_spanned(
                &pair.value,
                "`flavor` takes a string: `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`",
            )),
            ("worker_threads", _) => errors.push(syn::Error::new_spanned(
                &pair.value,
                "`worker_threads` takes a number: `worker_threads = 2`",
            )),
            ("start_paused", _) => errors.push(syn::Error::new_spanned(
                &pair.value,
                "`start_paused` takes `true` or `false`",
            )),
            _ => errors.push(syn::Error::new_spanned(
                &pair.path,
                format!("unknown argument `{key}`: expected `flavor`, `worker_threads`, `start_paused` or `crate`"),
            )),
        }
    }
    if options.worker_threads.is_some() && !options.multi_thread {
        errors.push(syn::Error::new(
            workers_span.unwrap_or_else(proc_macro2::Span::call_site),
            "`worker_threads` needs `flavor = \"multi_thread\"`",
        ));
    }
    if options.start_paused && options.multi_thread {
        errors.push(syn::Error::new(
            flavor_span.unwrap_or_else(proc_macro2::Span::call_site),
            "`start_paused` needs the `current_thread` flavor (tokio pauses time only there)",
        ));
    }
    errors.finish()?;
    Ok(options)
}

/// `#[test]`, `#[tokio::test]`, `#[supervisor::test]` again, or another crate's `test`
/// attribute: each would make a second test (or a second runtime) of the same function.
fn is_test_attribute(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "test")
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => return e.into_compile_error(),
    };
    match expand_fn(args, &func) {
        Ok(tokens) => tokens,
        Err(error) => {
            // Keep a plain function so that the rest of the file still makes sense.
            let error = error.into_compile_error();
            quote!(#func #error)
        }
    }
}

fn expand_fn(args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let options = options(args);
    let mut errors = Errors::default();
    if func.sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            func.sig.fn_token,
            "`#[supervisor::test]` needs an `async fn`",
        ));
    }
    for attr in &func.attrs {
        if is_test_attribute(attr) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "a second test attribute: `#[supervisor::test]` already makes this a test \
                     with its own runtime; remove `#[{}]`",
                    crate::parse::compact(attr.path())
                ),
            ));
        }
    }
    if func.sig.inputs.len() > 1 {
        errors.push(syn::Error::new_spanned(
            &func.sig.inputs,
            "a `#[supervisor::test]` takes no parameters, or only its `ctx: supervisor::Context`",
        ));
    }
    let options = match options {
        Ok(o) => Some(o),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    errors.finish()?;
    let Some(Options {
        multi_thread,
        worker_threads,
        start_paused,
        krate,
    }) = options
    else {
        unreachable!("errors were returned above");
    };
    let worker_threads = match worker_threads {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let options = quote! {
        #krate::__private::testing::RuntimeOptions {
            multi_thread: #multi_thread,
            worker_threads: #worker_threads,
            start_paused: #start_paused,
        }
    };
    let (attrs, vis, name) = (&func.attrs, &func.vis, &func.sig.ident);
    let mut inner = func.clone();
    inner.attrs.clear();
    inner.vis = syn::Visibility::Inherited;
    inner.sig.ident = syn::Ident::new("__supervisor_test", name.span());
    let run = if func.sig.inputs.is_empty() {
        quote!(#krate::__private::testing::run_body(#options, __supervisor_test()))
    } else {
        quote!(#krate::__private::testing::run_root(#options, __supervisor_test))
    };
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #inner
            #run;
        }
    })
}
