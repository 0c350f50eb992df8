//! [`select!`](macro@crate::select): wait on a fixed set of futures at once and
//! run the handler of the first to finish, with Tokio's grammar.
//!
//! # How it works
//!
//! The macro is declarative. Its first part (`__select_parse`) reads the
//! branches one at a time and gives each three local variables of its own
//! (its future, its "enabled" flag and its output slot: each name is
//! written by a separate expansion, so hygiene keeps them apart). Its second
//! part (`__select_expand`) writes:
//!
//! 1. the output slots, outside everything else, so they outlive the
//!    futures;
//! 2. a block that evaluates every precondition, then every future
//!    expression, pins the futures on the stack (`core::pin::pin!`: no
//!    allocation), and awaits one `poll_fn`. Each poll visits the enabled
//!    branches in turn, starting at a random one (or the first, when
//!    `biased;`), and stops at the first that is ready *and* whose output
//!    fits its pattern: that output goes to the branch's slot. A branch
//!    whose future finished is disabled, whether its pattern fit or not;
//!    when no branch is left pending, the `poll_fn` ends with every slot
//!    empty. The block ends there, which **drops every future**, before
//!    any handler runs, so a handler may use what the futures borrowed;
//! 3. a chain of `if let Some(pattern) = slot { handler } else ...`,
//!    ending in the `else` branch (or a panic, when there is none).
//!
//! The pattern is tried on a *reference* to the output inside the poll (the
//! output must stay whole for the handler), so a copy of it with `mut`,
//! `ref` and `&` taken out is used there (`__select_test_pattern`): Rust
//! 2024 refuses those under a reference, and none of them changes whether
//! a pattern matches.

/// What the macro's expansion names, at paths the caller's crate can reach.
#[doc(hidden)]
pub mod __private {
    pub use crate::random::random_below;
    pub use core::future::{Future, IntoFuture, poll_fn};
    pub use core::task::Poll;
}

/// Waits on several futures at once and runs the handler of the first one
/// that finishes (and matches its pattern); the others are dropped. Tokio's
/// `select!`, with the same grammar:
///
/// ```text
/// select! {
///     biased;                                    // optional: poll in order
///     <pattern> = <future> [, if <condition>] => <handler>,
///     ...
///     else => <expression>                       // optional
/// }
/// ```
///
/// 1. Every `<condition>` is evaluated; a branch whose condition is false
///    is disabled for this `select!`.
/// 2. Every `<future>` expression is evaluated (anything that is
///    `IntoFuture`, also for disabled branches, which are then never
///    polled) and pinned on the stack.
/// 3. The enabled futures are polled together. Each time the task wakes,
///    polling starts at a **random** branch, so a branch that is always
///    ready cannot starve the others; with `biased;` first, it starts at the
///    first branch every time (use it when order is a priority, or to make
///    a test deterministic).
/// 4. When a future finishes, its output is matched against its
///    `<pattern>`. If it fits, every future is dropped and that branch's
///    `<handler>` runs with the pattern's bindings; its value is the value
///    of the `select!`. If it does not fit, the branch is disabled and the
///    others go on (Tokio's rule: `Some(v) = rx.recv()` stops listening to a
///    closed channel).
/// 5. When every branch is disabled (by its condition, or finished without
///    fitting), the `else` expression is the value; without an `else`,
///    that panics.
///
/// Handlers run in the caller's body, not in a closure: `return`, `?`,
/// `break` and `continue` in them act on the caller's function and loops.
/// All handlers (and `else`) must have the same type.
///
/// **Dropping the losers.** The futures that did not win are dropped,
/// which must lose nothing: every receive, acquire and `notified` in this
/// crate is cancel-safe, and in Weft dropping a `JoinHandle` detaches the
/// task and dropping a wait on a promise stops waiting without cancelling
/// anything. A `send` that waits for room is not cancel-safe (its message
/// is dropped with it): `reserve` in the branch, then send on the permit in
/// the handler. To keep one future across the iterations of a loop (a
/// deadline, say), pin it outside and give `&mut` of it:
/// `let mut deadline = std::pin::pin!(sleep(d));` then
/// `_ = &mut deadline => ...`.
///
/// Each branch costs about two levels of the compiler's macro recursion
/// limit, so about fifty branches fit in its default of 128; for more,
/// raise it with `#![recursion_limit = "256"]` in your crate.
///
/// It needs only `std::task`, so it works on Weft (as `weft::select!`), on
/// any other runtime, and under a bare `block_on`. Unlike
/// `futures::select!`, it needs no `FusedFuture` and no `.fuse()`.
///
/// ```
/// use weft_sync::{mpsc, oneshot, select};
///
/// futures::executor::block_on(async {
///     let (tx, mut numbers) = mpsc::unbounded_channel();
///     let (stop_tx, mut stop) = oneshot::channel::<()>();
///     for i in 1..=3 {
///         tx.send(i).unwrap();
///     }
///     drop((tx, stop_tx));
///     let (mut sum, mut stopped) = (0, false);
///     loop {
///         select! {
///             // Disabled once the channel is drained: `None` does not fit.
///             Some(n) = numbers.recv() => sum += n,
///             // Disabled by its condition once it has fired.
///             _ = &mut stop, if !stopped => stopped = true,
///             // Both disabled.
///             else => break,
///         }
///     }
///     assert_eq!((sum, stopped), (6, true));
/// });
/// ```
///
/// # Panics
///
/// When every branch is disabled and there is no `else` branch.
#[macro_export]
macro_rules! select {
    (biased; else => $else:expr $(,)?) => {{ $else }};
    (else => $else:expr $(,)?) => {{ $else }};
    (biased; $($branches:tt)+) => {
        $crate::__select_parse!(@pattern (true) () [] [] $($branches)+)
    };
    ($($branches:tt)+) => {
        $crate::__select_parse!(@pattern (false) () [] [] $($branches)+)
    };
    ($(biased;)?) => {
        ::core::compile_error!("weft_sync::select! needs at least one branch: `pattern = future => handler`")
    };
}

/// Reads the branches of a [`select!`]: state `(@pattern (biased) (count)
/// [branches read] [pattern so far] tokens...)`, then `(@branch ...)` for
/// the future, the condition and the handler. Each branch read becomes
/// `{ [pattern] (future) (condition) {handler} (index) future enabled
/// output }`, the last three being names this expansion writes, so each
/// branch gets its own.
///
/// Every step is one level of macro recursion, and the compiler allows 128
/// by default, so the pattern is read up to four tokens at a time: a branch
/// whose pattern has at most three tokens outside brackets (`Some(v)`,
/// `Ok((a, b))`, `_`) costs two steps, and about 50 branches fit.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // Every branch read, and an `else`.
    (@pattern $biased:tt $count:tt $done:tt [] else => $else:expr $(,)?) => {
        $crate::__select_expand!($biased $count $done { $else })
    };
    (@pattern $biased:tt $count:tt $done:tt [] else => $($rest:tt)*) => {
        ::core::compile_error!("weft_sync::select!: the `else` branch must come last")
    };
    // Every branch read, no `else`.
    (@pattern $biased:tt $count:tt $done:tt []) => {
        $crate::__select_expand!($biased $count $done {
            ::core::panic!(
                "weft_sync::select!: every branch is disabled (its condition was false, or its future finished \
                 with a value its pattern does not match) and there is no `else` branch to run: add one"
            )
        })
    };
    // The pattern ends at the `=` within the next four tokens (the rules
    // are tried in order, so the first `=` ends it).
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] = $($rest:tt)+) => {
        $crate::__select_parse!(@branch $biased $count $done [$($pat)*] $($rest)+)
    };
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] $a:tt = $($rest:tt)+) => {
        $crate::__select_parse!(@branch $biased $count $done [$($pat)* $a] $($rest)+)
    };
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] $a:tt $b:tt = $($rest:tt)+) => {
        $crate::__select_parse!(@branch $biased $count $done [$($pat)* $a $b] $($rest)+)
    };
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] $a:tt $b:tt $c:tt = $($rest:tt)+) => {
        $crate::__select_parse!(@branch $biased $count $done [$($pat)* $a $b $c] $($rest)+)
    };
    // No `=` yet: four more tokens of the pattern.
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] $a:tt $b:tt $c:tt $d:tt $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased $count $done [$($pat)* $a $b $c $d] $($rest)*)
    };
    (@pattern $biased:tt $count:tt $done:tt [$($pat:tt)*] $($rest:tt)*) => {
        ::core::compile_error!(
            "weft_sync::select!: each branch reads `pattern = future => handler` (with `, if condition` before `=>` if you need one)"
        )
    };
    // After the `=`: the future, an optional condition, and the handler, a
    // block (the comma after it is optional) or an expression (with a
    // comma, unless it is the last branch). The branch's three names are
    // written here.
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr, if $cond:expr => $handler:block, $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) ($cond) $handler ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr, if $cond:expr => $handler:block $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) ($cond) $handler ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr, if $cond:expr => $handler:expr, $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) ($cond) { $handler } ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr, if $cond:expr => $handler:expr) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) ($cond) { $handler } ($($count)*) future enabled output }] [])
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr => $handler:block, $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) (true) $handler ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr => $handler:block $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) (true) $handler ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr => $handler:expr, $($rest:tt)*) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) (true) { $handler } ($($count)*) future enabled output }] [] $($rest)*)
    };
    (@branch $biased:tt ($($count:tt)*) [$($done:tt)*] [$($pat:tt)+] $fut:expr => $handler:expr) => {
        $crate::__select_parse!(@pattern $biased ($($count)* 1)
            [$($done)* { [$($pat)+] ($fut) (true) { $handler } ($($count)*) future enabled output }] [])
    };
    (@branch $($rest:tt)*) => {
        ::core::compile_error!(
            "weft_sync::select!: each branch reads `pattern = future => handler` (with `, if condition` before `=>` if you need one)"
        )
    };
}

/// Writes a [`select!`] from its branches (see the module doc of
/// `select.rs` for the shape).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_expand {
    (
        ($biased:literal) ($($count:tt)*)
        [$({
            [$($pat:tt)+] ($fut:expr) ($cond:expr) $handler:block ($($index:tt)*)
            $future:ident $enabled:ident $output:ident
        })+]
        $else:block
    ) => {{
        $(let mut $output = ::core::option::Option::None;)+
        {
            $(let mut $enabled: bool = $cond;)+
            $(let mut $future = ::core::pin::pin!($crate::__private::IntoFuture::into_future($fut));)+
            $crate::__private::poll_fn(|cx| {
                let branches: usize = 0 $(+ $count)*;
                let start = if $biased { 0 } else { $crate::__private::random_below(branches) };
                let mut pending = false;
                // The branches from `start` to the last, then the first to
                // `start`.
                for from_start in [true, false] {
                    $(
                        if $enabled && (0 $(+ $index)* >= start) == from_start {
                            match $crate::__private::Future::poll($future.as_mut(), cx) {
                                $crate::__private::Poll::Pending => pending = true,
                                $crate::__private::Poll::Ready(out) => {
                                    $enabled = false;
                                    #[allow(unused_variables, unreachable_patterns)]
                                    let fits = match &out {
                                        $crate::__select_test_pattern!($($pat)+) => true,
                                        _ => false,
                                    };
                                    if fits {
                                        $output = ::core::option::Option::Some(out);
                                        return $crate::__private::Poll::Ready(());
                                    }
                                }
                            }
                        }
                    )+
                }
                if pending {
                    $crate::__private::Poll::Pending
                } else {
                    $crate::__private::Poll::Ready(())
                }
            })
            .await;
        }
        $(if let ::core::option::Option::Some($($pat)+) = $output $handler else)+ $else
    }};
}

/// A [`select!`] branch's pattern with `mut`, `ref` and `&` taken out, in
/// every group, to try it on a reference to the output. State: `(@clean
/// [tokens kept] [stack of the groups being cleaned] tokens...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_test_pattern {
    (@clean [$($kept:tt)*] []) => { $($kept)* };
    // The end of a group: close it, and carry on in the one around it.
    (@clean [$($inner:tt)*] [(paren [$($kept:tt)*] [$($rest:tt)*]) $($stack:tt)*]) => {
        $crate::__select_test_pattern!(@clean [$($kept)* ($($inner)*)] [$($stack)*] $($rest)*)
    };
    (@clean [$($inner:tt)*] [(bracket [$($kept:tt)*] [$($rest:tt)*]) $($stack:tt)*]) => {
        $crate::__select_test_pattern!(@clean [$($kept)* [$($inner)*]] [$($stack)*] $($rest)*)
    };
    (@clean [$($inner:tt)*] [(brace [$($kept:tt)*] [$($rest:tt)*]) $($stack:tt)*]) => {
        $crate::__select_test_pattern!(@clean [$($kept)* {$($inner)*}] [$($stack)*] $($rest)*)
    };
    // What a reference refuses, or does not need.
    (@clean $kept:tt $stack:tt mut $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean $kept $stack $($rest)*)
    };
    (@clean $kept:tt $stack:tt ref $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean $kept $stack $($rest)*)
    };
    (@clean $kept:tt $stack:tt & $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean $kept $stack $($rest)*)
    };
    (@clean $kept:tt $stack:tt && $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean $kept $stack $($rest)*)
    };
    // Into a group.
    (@clean $kept:tt [$($stack:tt)*] ($($inner:tt)*) $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean [] [(paren $kept [$($rest)*]) $($stack)*] $($inner)*)
    };
    (@clean $kept:tt [$($stack:tt)*] [$($inner:tt)*] $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean [] [(bracket $kept [$($rest)*]) $($stack)*] $($inner)*)
    };
    (@clean $kept:tt [$($stack:tt)*] {$($inner:tt)*} $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean [] [(brace $kept [$($rest)*]) $($stack)*] $($inner)*)
    };
    // Any other token stays.
    (@clean [$($kept:tt)*] $stack:tt $next:tt $($rest:tt)*) => {
        $crate::__select_test_pattern!(@clean [$($kept)* $next] $stack $($rest)*)
    };
    ($($pat:tt)+) => {
        $crate::__select_test_pattern!(@clean [] [] $($pat)+)
    };
}
