//! How a declared child or group is supervised (DESIGN §14): the settings written as
//! attributes on the entries of a `supervision_tree!`, read and checked at their tokens,
//! and what `#[runnable]` bodies say with literal `Spec`/`Group` chains.
//!
//! ```text
//! #[restart = permanent | transient | temporary]      a child's kind
//! #[shutdown = brutal | infinity | DURATION]           a child's shutdown policy
//! #[strategy = one_for_all | rest_for_one]             a `group { }`'s strategy
//! #[intensity(MAX, DURATION)]                          a group's (or a single child's) limit
//! #[ordered_shutdown]                                  a `group { }` stops in reverse order
//! #[max_children = N]                                  a `dynamic` group's limit (N ≥ 1)
//! DURATION := an integer or decimal literal suffixed ns, us, ms, s, m or h: 500ms, 1.5s, 5m
//! ```

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Expr, Lit, Meta, Token};

/// A child's settings, as declared; `None` is the default.
#[derive(Clone, Copy, Default)]
pub(crate) struct ChildPolicy {
    pub(crate) restart: Option<Kind>,
    pub(crate) shutdown: Option<ShutdownDecl>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Permanent,
    Transient,
    Temporary,
}

#[derive(Clone, Copy)]
pub(crate) enum ShutdownDecl {
    Brutal,
    Infinity,
    /// Nanoseconds, more than zero.
    Timeout(u64),
}

/// A group's settings, as declared.
#[derive(Clone, Copy, Default)]
pub(crate) struct GroupDecl {
    pub(crate) rest_for_one: bool,
    pub(crate) ordered_shutdown: bool,
    /// Max restarts and a period in nanoseconds (more than zero).
    pub(crate) intensity: Option<(u32, u64)>,
    /// A dynamic group's limit of children (at least 1).
    pub(crate) max_children: Option<u64>,
}

/// Where the attributes are written: which settings belong there.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A leaf or structure node on its own: a child, and a group of one.
    Single,
    /// A member of a `group { }`.
    Member,
    /// A `group { }`.
    Group,
    /// A `dynamic` group: `restart` and `shutdown` are its children's.
    Dynamic,
}

const SETTINGS: &str = "restart, shutdown, strategy, intensity, ordered_shutdown or max_children";

/// Reads the settings of one entry. Doc comments are allowed and ignored.
pub(crate) fn read(attrs: &[Attribute], place: Place) -> syn::Result<(ChildPolicy, GroupDecl)> {
    let mut child = ChildPolicy::default();
    let mut group = GroupDecl::default();
    let mut seen: Vec<String> = Vec::new();
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("doc") {
            continue;
        }
        let Some(setting) = path.get_ident().map(ToString::to_string) else {
            return Err(syn::Error::new_spanned(
                path,
                format!("unknown setting: expected {SETTINGS}"),
            ));
        };
        if seen.contains(&setting) {
            return Err(syn::Error::new_spanned(
                path,
                format!("`{setting}` is given twice"),
            ));
        }
        let belongs = match setting.as_str() {
            "restart" | "shutdown" => place != Place::Group,
            "strategy" | "ordered_shutdown" => place == Place::Group,
            "intensity" => place != Place::Member,
            "max_children" => place == Place::Dynamic,
            other => {
                return Err(syn::Error::new_spanned(
                    path,
                    format!("unknown setting `{other}`: expected {SETTINGS}"),
                ));
            }
        };
        if !belongs {
            let why = match (setting.as_str(), place) {
                ("max_children", _) => "belongs to a `dynamic` group",
                (_, Place::Dynamic) => {
                    "does not apply to a `dynamic` group: its children restart one by one"
                }
                (_, Place::Group) => "is a child's setting: put it on a member of the group",
                (_, Place::Member) => "is the group's setting: put it on the `group { }`",
                _ => {
                    "is a group's setting; a single child is a group of one: declare a `group { }`"
                }
            };
            return Err(syn::Error::new_spanned(path, format!("`{setting}` {why}")));
        }
        match setting.as_str() {
            "restart" => child.restart = Some(restart(value(attr)?)?),
            "shutdown" => child.shutdown = Some(shutdown(value(attr)?)?),
            "strategy" => group.rest_for_one = strategy(value(attr)?)?,
            "ordered_shutdown" => {
                attr.meta.require_path_only()?;
                group.ordered_shutdown = true;
            }
            "max_children" => group.max_children = Some(max_children(value(attr)?)?),
            _ => group.intensity = Some(intensity(attr)?),
        }
        seen.push(setting);
    }
    Ok((child, group))
}

fn value(attr: &Attribute) -> syn::Result<&Expr> {
    match &attr.meta {
        Meta::NameValue(nv) => Ok(&nv.value),
        meta => Err(syn::Error::new_spanned(
            meta,
            format!(
                "expected `{} = …`",
                attr.path()
                    .get_ident()
                    .map_or(String::new(), ToString::to_string)
            ),
        )),
    }
}

fn word(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(ToString::to_string),
        _ => None,
    }
}

fn restart(expr: &Expr) -> syn::Result<Kind> {
    match word(expr).as_deref() {
        Some("permanent") => Ok(Kind::Permanent),
        Some("transient") => Ok(Kind::Transient),
        Some("temporary") => Ok(Kind::Temporary),
        _ => Err(syn::Error::new_spanned(
            expr,
            "unknown restart kind: expected permanent, transient or temporary",
        )),
    }
}

fn strategy(expr: &Expr) -> syn::Result<bool> {
    match word(expr).as_deref() {
        Some("one_for_all") => Ok(false),
        Some("rest_for_one") => Ok(true),
        _ => Err(syn::Error::new_spanned(
            expr,
            "unknown strategy: expected one_for_all or rest_for_one",
        )),
    }
}

fn shutdown(expr: &Expr) -> syn::Result<ShutdownDecl> {
    match word(expr).as_deref() {
        Some("brutal") => return Ok(ShutdownDecl::Brutal),
        Some("infinity") => return Ok(ShutdownDecl::Infinity),
        _ => {}
    }
    let Expr::Lit(lit) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            "unknown shutdown policy: expected brutal, infinity, or a timeout such as 30s",
        ));
    };
    match duration(&lit.lit)? {
        0 => Err(syn::Error::new_spanned(
            expr,
            "a shutdown timeout must be more than zero; a child dropped at once is `brutal`",
        )),
        nanos => Ok(ShutdownDecl::Timeout(nanos)),
    }
}

fn max_children(expr: &Expr) -> syn::Result<u64> {
    let bad = || syn::Error::new_spanned(expr, "max_children must be a whole number, at least 1");
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(n), ..
    }) = expr
    else {
        return Err(bad());
    };
    match n.base10_parse::<u64>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

/// `intensity(MAX, DURATION)`.
fn intensity(attr: &Attribute) -> syn::Result<(u32, u64)> {
    struct Args(syn::LitInt, Lit);
    impl Parse for Args {
        fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
            let max = input.parse()?;
            input.parse::<Token![,]>()?;
            let period = input.parse()?;
            input.parse::<Option<Token![,]>>()?;
            Ok(Args(max, period))
        }
    }
    let Meta::List(list) = &attr.meta else {
        return Err(syn::Error::new_spanned(
            &attr.meta,
            "expected `intensity(max_restarts, period)`, e.g. `intensity(3, 5s)`",
        ));
    };
    let Args(max, period) = list.parse_args()?;
    let max = max.base10_parse::<u32>().map_err(|_| {
        syn::Error::new_spanned(&max, "max_restarts must be a whole number (a u32)")
    })?;
    match duration(&period)? {
        0 => Err(syn::Error::new(
            period.span(),
            "the intensity period must be more than zero (max_restarts = 0 gives up on the \
             first failure)",
        )),
        nanos => Ok((max, nanos)),
    }
}

/// A duration literal (`500ms`, `1.5s`, `5m`) in nanoseconds.
fn duration(lit: &Lit) -> syn::Result<u64> {
    let bad = || {
        syn::Error::new(
            lit.span(),
            "expected a duration: a number suffixed ns, us, ms, s, m or h, e.g. 500ms or 30s",
        )
    };
    let (digits, suffix) = match lit {
        Lit::Int(i) => (i.base10_digits().to_owned(), i.suffix().to_owned()),
        Lit::Float(f) => (f.base10_digits().to_owned(), f.suffix().to_owned()),
        _ => return Err(bad()),
    };
    let unit: f64 = match suffix.as_str() {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return Err(bad()),
    };
    let value: f64 = digits.parse().map_err(|_| bad())?;
    let nanos = (value * unit).round();
    if !(0.0..=u64::MAX as f64).contains(&nanos) {
        return Err(syn::Error::new(lit.span(), "the duration is too long"));
    }
    Ok(nanos as u64)
}

impl Kind {
    fn variant(self) -> TokenStream {
        match self {
            Kind::Permanent => quote!(Permanent),
            Kind::Transient => quote!(Transient),
            Kind::Temporary => quote!(Temporary),
        }
    }
}

/// `.add(name, r)`, or `.add_with(name, r, spec)` when the child declares settings.
pub(crate) fn add(
    policy: ChildPolicy,
    name: &str,
    runnable: &TokenStream,
    krate: &syn::Path,
) -> TokenStream {
    if policy.restart.is_none() && policy.shutdown.is_none() {
        return quote!(.add(#name, #runnable));
    }
    let spec = spec(policy, krate);
    quote!(.add_with(#name, #runnable, #spec))
}

fn shutdown_tokens(s: ShutdownDecl, krate: &syn::Path) -> TokenStream {
    match s {
        ShutdownDecl::Brutal => quote!(#krate::__private::Shutdown::Brutal),
        ShutdownDecl::Infinity => quote!(#krate::__private::Shutdown::Infinity),
        ShutdownDecl::Timeout(nanos) => quote!(#krate::__private::timeout(#nanos)),
    }
}

/// An intensity as an `Option` expression.
fn option_intensity(intensity: Option<(u32, u64)>, krate: &syn::Path) -> TokenStream {
    match intensity {
        Some((max, nanos)) => {
            quote!(::core::option::Option::Some(#krate::__private::intensity(#max, #nanos)))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The registry's description of a dynamic group: its limit and intensity.
pub(crate) fn registry_dynamic(group: GroupDecl, krate: &syn::Path) -> TokenStream {
    let max = match group.max_children {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    let intensity = option_intensity(group.intensity, krate);
    quote!(#krate::__private::ChildKind::Dynamic { max_children: #max, intensity: #intensity })
}

/// `DynamicSpec::new()…` for a declared dynamic group.
pub(crate) fn dynamic_spec(
    policy: ChildPolicy,
    group: GroupDecl,
    krate: &syn::Path,
) -> TokenStream {
    let max = group.max_children.map(|n| {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        quote!(.max_children(#n))
    });
    let child = (policy.restart.is_some() || policy.shutdown.is_some()).then(|| {
        let spec = spec(policy, krate);
        quote!(.child(#spec))
    });
    let intensity = group
        .intensity
        .map(|(max, nanos)| quote!(.intensity(#krate::__private::intensity(#max, #nanos))));
    quote!(#krate::DynamicSpec::new() #max #child #intensity)
}

/// `Spec::new()…` with the child's settings.
fn spec(policy: ChildPolicy, krate: &syn::Path) -> TokenStream {
    let restart = policy.restart.map(|k| {
        let v = k.variant();
        quote!(.restart(#krate::Restart::#v))
    });
    let shutdown = policy.shutdown.map(|s| {
        let s = shutdown_tokens(s, krate);
        quote!(.shutdown(#s))
    });
    quote!(#krate::Spec::new() #restart #shutdown)
}

/// What a literal `DynamicSpec::new()…` chain in a `#[runnable]` body says: its children's
/// spec (a literal `Spec` chain in `.child(…)`) and `.max_children(N)` when N is a literal.
pub(crate) fn dynamic_chain(expr: &Expr) -> (ChildPolicy, GroupDecl) {
    let mut child = ChildPolicy::default();
    let mut group = GroupDecl::default();
    let mut cur = expr;
    while let Expr::MethodCall(call) = cur {
        match (call.method.to_string().as_str(), call.args.first()) {
            ("child", Some(spec)) => child = spec_chain(spec),
            (
                "max_children",
                Some(Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(n), ..
                })),
            ) => group.max_children = n.base10_parse().ok(),
            _ => {}
        }
        cur = &call.receiver;
    }
    (child, group)
}

/// The group's settings as calls on its `Group`.
pub(crate) fn group_calls(group: GroupDecl, krate: &syn::Path) -> TokenStream {
    let strategy = group
        .rest_for_one
        .then(|| quote!(.strategy(#krate::__private::Strategy::RestForOne)));
    let ordered = group.ordered_shutdown.then(|| quote!(.ordered_shutdown()));
    let intensity = group
        .intensity
        .map(|(max, nanos)| quote!(.intensity(#krate::__private::intensity(#max, #nanos))));
    quote!(#strategy #ordered #intensity)
}

/// The registry's `restart` and `shutdown` fields of a child (of a dynamic group's
/// children, whose kind defaults to temporary).
pub(crate) fn registry_child(policy: ChildPolicy, dynamic: bool, krate: &syn::Path) -> TokenStream {
    let default = if dynamic {
        Kind::Temporary
    } else {
        Kind::Permanent
    };
    let restart = policy.restart.unwrap_or(default).variant();
    let shutdown = match policy.shutdown {
        Some(s) => {
            let s = shutdown_tokens(s, krate);
            quote!(::core::option::Option::Some(#s))
        }
        None => quote!(::core::option::Option::None),
    };
    quote!(restart: #krate::__private::Restart::#restart, shutdown: #shutdown)
}

/// The registry's description of a group.
pub(crate) fn registry_group(group: GroupDecl, krate: &syn::Path) -> TokenStream {
    let strategy = if group.rest_for_one {
        quote!(RestForOne)
    } else {
        quote!(OneForAll)
    };
    let ordered = group.ordered_shutdown;
    let intensity = option_intensity(group.intensity, krate);
    quote! {
        #krate::__private::DeclaredGroup {
            strategy: #krate::__private::Strategy::#strategy,
            ordered_shutdown: #ordered,
            intensity: #intensity,
        }
    }
}

/// What a literal `Spec::new()…` chain in a `#[runnable]` body says: its kind and shutdown
/// when written as `Restart::…` and `Shutdown::Brutal`/`Infinity` (anything else is left
/// as the default: the body's code, not the registry, is the truth).
pub(crate) fn spec_chain(expr: &Expr) -> ChildPolicy {
    let mut policy = ChildPolicy::default();
    let mut cur = expr;
    while let Expr::MethodCall(call) = cur {
        let arg = call.args.first().and_then(last_ident);
        match (call.method.to_string().as_str(), arg.as_deref()) {
            ("restart", Some("Permanent")) => policy.restart = Some(Kind::Permanent),
            ("restart", Some("Transient")) => policy.restart = Some(Kind::Transient),
            ("restart", Some("Temporary")) => policy.restart = Some(Kind::Temporary),
            ("shutdown", Some("Brutal")) => policy.shutdown = Some(ShutdownDecl::Brutal),
            ("shutdown", Some("Infinity")) => policy.shutdown = Some(ShutdownDecl::Infinity),
            _ => {}
        }
        cur = &call.receiver;
    }
    policy
}

/// What a literal `Group::new()…` chain says of the group: `.strategy(Strategy::…)` and
/// `.ordered_shutdown()`.
pub(crate) fn group_method(group: &mut GroupDecl, call: &syn::ExprMethodCall) {
    match call.method.to_string().as_str() {
        "strategy" => {
            group.rest_for_one =
                call.args.first().and_then(last_ident).as_deref() == Some("RestForOne");
        }
        "ordered_shutdown" => group.ordered_shutdown = true,
        _ => {}
    }
}

fn last_ident(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}
