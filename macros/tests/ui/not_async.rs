// A function without `async`, for `main` and for a test.

#[weft::main]
fn main() {}

#[weft::test]
fn plain_test() {}
