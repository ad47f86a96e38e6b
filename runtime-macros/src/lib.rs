//! `#[xenia::main]`: the entry point of a Xenia app.
//!
//! Use it through the `xenia` crate, which re-exports it:
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//!
//! #[xenia::main]
//! async fn main() {
//!     xenia::println!("hello from xenia");
//! }
//! ```
//!
//! The attribute keeps the function (renamed, so that it is not the host's `fn main`) and adds:
//! - for the guest target (`target_os = "none"`): the `__xenia_app_main` symbol the runtime
//!   calls after boot; it runs the function next to the runtime's own tasks and reports its
//!   result (`()`, or a `Result` whose error crashes the domain after printing it);
//! - for the host: a `fn main` that says the program is a Xen PV guest and how to run it, and
//!   exits with status 2. So `cargo build`, `cargo clippy` and `cargo test` of an app work on the
//!   host without `cfg` blocks around the entry point.
//!
//! The function must be `async fn main()` with no arguments; it may return `()` or anything
//! that implements `xenia::Termination`. The app depends on the runtime under the name `xenia`.
//!
//! Written on `proc_macro` alone: renaming one function needs no parser, and the app's build
//! stays free of `syn`'s compile time.

use proc_macro::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};

/// The name the app's `async fn main` gets.
const USER_MAIN: &str = "__xenia_user_main";

/// Marks the app's `async fn main` as its entry point (see the crate docs).
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    if let Some(t) = attr.into_iter().next() {
        return error(t.span(), "#[xenia::main] takes no arguments");
    }
    match rename_main(item) {
        Ok(item) => {
            let mut out: TokenStream = "#[allow(dead_code)]".parse().expect("valid tokens");
            out.extend(item);
            out.extend(entry_points());
            out
        }
        Err((span, msg)) => error(span, msg),
    }
}

/// The item with `fn main` renamed to [`USER_MAIN`]; checks that it is `async fn main()`
/// without parameters.
fn rename_main(item: TokenStream) -> Result<TokenStream, (Span, &'static str)> {
    let tokens: Vec<TokenTree> = item.into_iter().collect();
    let fn_at = tokens
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))
        .ok_or((
            Span::call_site(),
            "#[xenia::main] goes on `async fn main()`",
        ))?;
    let fn_span = tokens[fn_at].span();
    let is_async = tokens[..fn_at]
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "async"));
    if !is_async {
        return Err((fn_span, "#[xenia::main] needs an `async fn main()`"));
    }
    match tokens.get(fn_at + 1) {
        Some(TokenTree::Ident(i)) if i.to_string() == "main" => {}
        Some(t) => return Err((t.span(), "#[xenia::main] goes on a function named `main`")),
        None => return Err((fn_span, "#[xenia::main] goes on `async fn main()`")),
    }
    match tokens.get(fn_at + 2) {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
            if !g.stream().is_empty() {
                return Err((g.span(), "the app's `async fn main()` takes no parameters"));
            }
        }
        Some(t) => {
            return Err((
                t.span(),
                "the app's `main` takes no generics and no parameters: `async fn main()`",
            ))
        }
        None => return Err((fn_span, "#[xenia::main] goes on `async fn main()`")),
    }
    let mut out = tokens;
    let span = out[fn_at + 1].span();
    out[fn_at + 1] = TokenTree::Ident(Ident::new(USER_MAIN, span));
    Ok(out.into_iter().collect())
}

/// The guest's `__xenia_app_main` and the host's `fn main`.
fn entry_points() -> TokenStream {
    format!(
        r#"
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        fn __xenia_app_main() -> bool {{
            ::xenia::Termination::report(::xenia::block_on(::xenia::__run_app({USER_MAIN}())))
        }}

        #[cfg(not(target_os = "none"))]
        fn main() {{
            let name = ::core::env!("CARGO_PKG_NAME");
            ::std::eprintln!(
                "{{name}} is a Xen PV guest: build and run it with `cargo xenia run`"
            );
            ::std::process::exit(2);
        }}
        "#
    )
    .parse()
    .expect("valid tokens")
}

/// A `compile_error!` at `span`.
fn error(span: Span, msg: &str) -> TokenStream {
    let mut out: TokenStream = format!("::core::compile_error!({msg:?});")
        .parse()
        .expect("valid tokens");
    // Point the error at the offending tokens.
    out = out
        .into_iter()
        .map(|mut t| {
            if let TokenTree::Group(g) = &t {
                let mut g2 = Group::new(g.delimiter(), g.stream());
                g2.set_span(span);
                t = TokenTree::Group(g2);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect();
    out
}
