//! Turns an `async fn` into a plain `fn` that runs its body on a Weft
//! runtime.
//!
//! For `#[weft::main(worker_threads = 2)] async fn main() -> R { BODY }` the
//! expansion is:
//!
//! ```text
//! fn main() -> R {
//!     let body = async move { BODY };
//!     let runtime = ::weft::Builder::new_multi_thread()
//!         .worker_threads(2)
//!         .build()
//!         .expect("Weft could not build the runtime for `#[weft::main]`");
//!     return runtime.block_on(body);
//! }
//! ```
//!
//! - `BODY` keeps its tokens and spans, so errors point at the user's code,
//!   and `return` and `?` inside it leave the async block, which is the
//!   body's future.
//! - The async block's output type is inferred from `return
//!   runtime.block_on(body)`, which must have the declared type `R`: that is
//!   how `?` knows which error to convert into. A mismatch is reported at
//!   the body's last statement.
//! - The future is dropped inside `block_on`, while the runtime is still
//!   current; the runtime is dropped after it, when the function returns.
//!
//! When the function or the arguments are wrong, the macro still emits the
//! function (as close to the expansion as it can) next to the errors, so
//! that rustc does not add errors of its own about a missing `main` or an
//! `async fn main`.

use crate::args::{self, Config, Entry, Errors, Flavor};
use proc_macro2::{Delimiter, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Item, ItemFn};

/// Expands `#[weft::main(args)]` or `#[weft::test(args)]` on `item`.
pub(crate) fn expand(entry: Entry, args: TokenStream, item: TokenStream) -> TokenStream {
    let (config, args_error) = args::parse(entry, args);
    let mut errors = Errors::default();
    errors.extend(args_error);

    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        other => {
            // Not a function: say so, and leave the item as it was.
            let at = match &other {
                Ok(item) => item_head(item),
                Err(_) => item.clone(),
            };
            errors.push(syn::Error::new_spanned(
                at,
                format!(
                    "`{}` goes on an `async fn`, such as `async fn {}() {{ .. }}`",
                    entry.attribute(),
                    match entry {
                        Entry::Main => "main",
                        Entry::Test => "it_works",
                    }
                ),
            ));
            return with_errors(item, errors);
        }
    };

    let signature_ok = check_signature(entry, &function, &mut errors);
    let duplicate_test = entry == Entry::Test && check_no_test_attribute(&function, &mut errors);
    // A test attribute on a function the harness cannot call would add
    // rustc's own error to ours.
    let mark_test = entry == Entry::Test && signature_ok && !duplicate_test;

    let tokens = if function.sig.asyncness.is_none() {
        // Nothing to expand: keep the function as written.
        let test = mark_test.then(test_attribute);
        quote!(#test #function)
    } else if entry == Entry::Main && !signature_ok && function.sig.ident == "main" {
        // rustc would add that `main` has the wrong type: give it a `main`
        // that is right, and keep the function inside it so that its body
        // is still checked.
        let vis = &function.vis;
        quote! {
            #vis fn main() {
                #[allow(dead_code)]
                #function
            }
        }
    } else {
        wrap(entry, &config, function, mark_test)
    };
    with_errors(tokens, errors)
}

/// Checks what the function must be; returns whether its parameters and
/// generics let the harness or the program call it.
fn check_signature(entry: Entry, function: &ItemFn, errors: &mut Errors) -> bool {
    let sig = &function.sig;
    let attribute = entry.attribute();
    if sig.asyncness.is_none() {
        let (fn_token, ident) = (&sig.fn_token, &sig.ident);
        errors.push(syn::Error::new_spanned(
            quote!(#fn_token #ident),
            format!(
                "the `async` keyword is missing from the function declaration: `{attribute}` runs \
                 an `async fn` on a Weft runtime; write `async fn {}`",
                sig.ident
            ),
        ));
    }
    let mut callable = true;
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let why = match entry {
            Entry::Main => "as a program's entry point receives none; read the command line with `std::env::args()`",
            Entry::Test => "as the test harness passes none; build the inputs in its body",
        };
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!("a `{attribute}` function takes no arguments, {why}"),
        ));
        callable = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "a `{attribute}` function cannot be generic: nothing would choose its generic \
                 parameters; use concrete types"
            ),
        ));
        callable = false;
    }
    callable
}

/// Reports a `#[test]` already on the function (`#[weft::test]` adds one);
/// returns whether there was one.
fn check_no_test_attribute(function: &ItemFn, errors: &mut Errors) -> bool {
    let mut found = false;
    for attr in &function.attrs {
        let path = attr.path();
        let is_test = path.segments.last().is_some_and(|last| last.ident == "test");
        if is_test {
            let shown = path.to_token_stream().to_string().replace(' ', "");
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "`#[weft::test]` already makes the function a test; remove `#[{shown}]`, \
                     which would make it a test twice"
                ),
            ));
            found = true;
        }
    }
    found
}

/// The plain function that builds the runtime and blocks on the body.
fn wrap(entry: Entry, config: &Config, mut function: ItemFn, mark_test: bool) -> TokenStream {
    function.sig.asyncness = None;
    let ItemFn { attrs, vis, sig, block } = function;

    let krate = &config.krate;
    let builder = match config.flavor {
        Flavor::MultiThread => quote!(#krate::Builder::new_multi_thread()),
        Flavor::CurrentThread => quote!(#krate::Builder::new_current_thread()),
    };
    let workers = config.worker_threads.map(|n| {
        let n = Literal::usize_unsuffixed(n);
        quote!(.worker_threads(#n))
    });
    let expect = format!("Weft could not build the runtime for `{}`", entry.attribute());

    // A body whose type is not the declared return type is reported at its
    // last statement, the usual place of the value it produces: the
    // expression `runtime.block_on(body)` starts with a token spanned at the
    // statement's first token and ends with one spanned at its last, so
    // rustc's span for it covers the statement (a single span would cover
    // only its first token on stable Rust).
    let (first, last) = statement_ends(&block);
    let runtime = quote_spanned!(first=> runtime);
    let call = quote_spanned!(last=> .block_on(body));
    let block_on = quote_spanned! {last=>
        #[allow(clippy::needless_return)]
        return #runtime #call;
    };
    let test = mark_test.then(test_attribute);

    quote! {
        #test
        #(#attrs)*
        #vis #sig {
            let body = async move #block;
            #[allow(clippy::expect_used)]
            let runtime = #builder #workers .build().expect(#expect);
            #block_on
        }
    }
}

/// The spans of the first and last tokens of the block's last statement
/// (without its `;`, so that rustc's suggestions such as "wrap the
/// expression in `Ok`" read right), or of its closing brace when it is
/// empty.
fn statement_ends(block: &syn::Block) -> (Span, Span) {
    let tokens = match block.stmts.last() {
        Some(syn::Stmt::Expr(expr, _)) => expr.to_token_stream(),
        Some(stmt) => stmt.to_token_stream(),
        None => TokenStream::new(),
    };
    let mut tokens = tokens.into_iter();
    let Some(first) = tokens.next().map(|token| token.span()) else {
        let close = block.brace_token.span.close();
        return (close, close);
    };
    (first, tokens.last().map_or(first, |token| token.span()))
}

/// The standard test attribute, by a path no user item can shadow.
fn test_attribute() -> TokenStream {
    quote!(#[::core::prelude::v1::test])
}

/// The tokens an error about a whole item points at: its first line
/// (`pub struct Config`), without its attributes or its body.
fn item_head(item: &Item) -> TokenStream {
    let mut tokens = item.to_token_stream().into_iter();
    let mut head = TokenStream::new();
    while let Some(token) = tokens.next() {
        match &token {
            // An outer attribute: `#` and its `[..]`.
            TokenTree::Punct(punct) if punct.as_char() == '#' && head.is_empty() => {
                tokens.next();
                continue;
            }
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => break,
            _ => {}
        }
        head.extend([token]);
    }
    if head.is_empty() { item.to_token_stream() } else { head }
}

fn with_errors(mut tokens: TokenStream, errors: Errors) -> TokenStream {
    if let Some(err) = errors.finish() {
        tokens.extend(err.to_compile_error());
    }
    tokens
}
