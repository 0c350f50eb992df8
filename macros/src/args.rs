//! The arguments inside `#[weft::main(...)]` and `#[weft::test(...)]`.
//!
//! The grammar is a comma-separated list of `key = value` pairs, each key at
//! most once:
//!
//! ```text
//! flavor = "multi_thread" | "current_thread"
//! worker_threads = <integer literal ≥ 1>     (multi_thread only)
//! crate = "<path to the weft crate>"         (default `::weft`)
//! ```
//!
//! Parsing never gives up at the first mistake: every bad argument adds an
//! error, and the [`Config`] keeps the defaults for the arguments that were
//! wrong, so that the macro can still expand the function and the user sees
//! only the errors that matter.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, Meta, MetaNameValue, Token};

/// Which attribute is being expanded: they differ in their default flavor
/// and in how the function is called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `#[weft::main]`: the program's entry point, multi-thread by default.
    Main,
    /// `#[weft::test]`: a test, current-thread by default (as Tokio).
    Test,
}

impl Entry {
    /// The attribute as users write it, for error messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Entry::Main => "#[weft::main]",
            Entry::Test => "#[weft::test]",
        }
    }

    fn default_flavor(self) -> Flavor {
        match self {
            Entry::Main => Flavor::MultiThread,
            Entry::Test => Flavor::CurrentThread,
        }
    }
}

/// The scheduler of the runtime the function runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `Builder::new_current_thread()`.
    CurrentThread,
    /// `Builder::new_multi_thread()`.
    MultiThread,
}

/// The valid `flavor` values, for parsing and for error messages.
const FLAVORS: [(&str, Flavor); 2] = [
    ("multi_thread", Flavor::MultiThread),
    ("current_thread", Flavor::CurrentThread),
];

/// What the arguments ask for, with defaults filled in.
pub(crate) struct Config {
    /// The runtime's scheduler.
    pub(crate) flavor: Flavor,
    /// `Builder::worker_threads`, when given (multi-thread only).
    pub(crate) worker_threads: Option<usize>,
    /// The path every emitted Weft path starts with (`::weft` by default).
    pub(crate) krate: syn::Path,
}

/// Parses the attribute's arguments. Always returns a usable [`Config`]; the
/// error, if any, combines every mistake found.
pub(crate) fn parse(entry: Entry, args: TokenStream) -> (Config, Option<syn::Error>) {
    let mut config = Config {
        flavor: entry.default_flavor(),
        worker_threads: None,
        krate: syn::parse_quote!(::weft),
    };
    let mut errors = Errors::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(err) => {
            errors.push(syn::Error::new(
                err.span(),
                format!(
                    "{err}; `{}` takes `key = value` arguments separated by commas, \
                     e.g. `flavor = \"current_thread\"`",
                    entry.attribute()
                ),
            ));
            return (config, errors.finish());
        }
    };

    // The keys given so far, to report duplicates and conflicts.
    let mut flavor_given = false;
    let mut workers_given: Option<&MetaNameValue> = None;
    let mut crate_given = false;

    for meta in &metas {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            other => {
                errors.push(not_key_value(entry, other));
                continue;
            }
        };
        let key = nv.path.get_ident().map(ToString::to_string).unwrap_or_default();
        let seen = match key.as_str() {
            "flavor" => std::mem::replace(&mut flavor_given, true),
            "worker_threads" => workers_given.replace(nv).is_some(),
            "crate" => std::mem::replace(&mut crate_given, true),
            _ => {
                errors.push(unknown_key(entry, nv));
                continue;
            }
        };
        if seen {
            errors.push(syn::Error::new_spanned(
                &nv.path,
                format!("`{key}` is given more than once in `{}`; keep one", entry.attribute()),
            ));
            continue;
        }
        let parsed = match key.as_str() {
            "flavor" => parse_flavor(&nv.value).map(|flavor| config.flavor = flavor),
            "worker_threads" => parse_worker_threads(&nv.value).map(|n| config.worker_threads = Some(n)),
            _ => parse_crate(&nv.value).map(|krate| config.krate = krate),
        };
        if let Err(err) = parsed {
            errors.push(err);
        }
    }

    if let (Some(workers), Flavor::CurrentThread) = (workers_given, config.flavor) {
        let msg = if flavor_given {
            "`worker_threads` sets the size of a multi-thread runtime, but a `current_thread` runtime \
             runs every task on the calling thread: remove `worker_threads`, or use \
             `flavor = \"multi_thread\"`"
                .to_string()
        } else {
            format!(
                "`worker_threads` needs `flavor = \"multi_thread\"`: `{}` runs on a current-thread \
                 runtime unless told otherwise",
                entry.attribute()
            )
        };
        errors.push(syn::Error::new_spanned(workers, msg));
        config.worker_threads = None;
    }

    (config, errors.finish())
}

/// The error for an argument that is not `key = value`, such as a bare
/// `current_thread` or `flavor("current_thread")`.
fn not_key_value(entry: Entry, meta: &Meta) -> syn::Error {
    let path = meta.path();
    let word = path.get_ident().map(ToString::to_string).unwrap_or_default();
    let msg = if FLAVORS.iter().any(|(name, _)| *name == word) {
        format!("`{word}` is a flavor: write `flavor = \"{word}\"`")
    } else {
        format!(
            "`{}` takes `key = value` arguments, such as `flavor = \"current_thread\"`; \
             the keys are `flavor`, `worker_threads` and `crate`",
            entry.attribute()
        )
    };
    syn::Error::new_spanned(meta, msg)
}

fn unknown_key(entry: Entry, nv: &MetaNameValue) -> syn::Error {
    let key = nv.path.get_ident().map(ToString::to_string);
    let hint = match key.as_deref() {
        Some("flavour") => "; did you mean `flavor`?",
        Some("threads" | "workers" | "core_threads" | "worker_thread") => "; did you mean `worker_threads`?",
        _ => "",
    };
    let shown = quote::ToTokens::to_token_stream(&nv.path).to_string().replace(' ', "");
    syn::Error::new_spanned(
        &nv.path,
        format!(
            "unknown argument `{shown}` for `{}`; the arguments are `flavor`, `worker_threads` and \
             `crate`{hint}",
            entry.attribute()
        ),
    )
}

fn parse_flavor(value: &Expr) -> syn::Result<Flavor> {
    let expected = "\"multi_thread\" or \"current_thread\"";
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`flavor` takes a string: {expected}, e.g. `flavor = \"current_thread\"`"),
        ));
    };
    let name = lit.value();
    match FLAVORS.iter().find(|(valid, _)| *valid == name) {
        Some((_, flavor)) => Ok(*flavor),
        None => Err(syn::Error::new_spanned(
            lit,
            format!("unknown flavor `{name}`; Weft's flavors are {expected}"),
        )),
    }
}

fn parse_worker_threads(value: &Expr) -> syn::Result<usize> {
    let usage = "`worker_threads` takes a whole number of threads, at least 1, e.g. `worker_threads = 4`";
    let Some(Lit::Int(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, usage));
    };
    if !matches!(lit.suffix(), "" | "usize") {
        return Err(syn::Error::new_spanned(lit, usage));
    }
    match lit.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new_spanned(
            lit,
            "`worker_threads = 0` would leave the runtime no thread to run tasks on; give at least 1",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(syn::Error::new_spanned(lit, usage)),
    }
}

fn parse_crate(value: &Expr) -> syn::Result<syn::Path> {
    let usage = "`crate` takes the path of the Weft crate as a string, e.g. `crate = \"my_weft\"` \
                 when the dependency is renamed to `my_weft`";
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, usage));
    };
    // The path's tokens carry the literal's span, so a path that does not
    // resolve is reported at the string.
    lit.parse::<syn::Path>()
        .map_err(|_| syn::Error::new_spanned(lit, usage))
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        // `$value` from a `macro_rules!` arrives wrapped in an invisible group.
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// Several errors reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds `err` to the errors.
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    /// Adds every error in `err`, if any.
    pub(crate) fn extend(&mut self, err: Option<syn::Error>) {
        if let Some(err) = err {
            self.push(err);
        }
    }

    /// The combined error, or `None` if there was none.
    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}
