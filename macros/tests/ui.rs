//! Compile-time checks of `#[weft::main]` and `#[weft::test]`: the misuses
//! under `ui/` must fail with the errors in their `.stderr` files, and the
//! programs under `ui/pass/` must build and run.
//!
//! After a deliberate change to a message, regenerate the `.stderr` files
//! with `TRYBUILD=overwrite cargo test -p weft-macros --test ui` and read
//! them before committing.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
