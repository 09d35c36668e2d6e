//! Compile-pass and compile-fail cases of the macros, with their expected messages.
//! `TRYBUILD=overwrite cargo test -p ui-tests` regenerates the `.stderr` files; read the
//! diff before committing it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/*/pass/*.rs");
    cases.compile_fail("tests/ui/*/fail/*.rs");
}
