// `crate` values that are not strings or not paths.

#[weft::main(crate = weft)]
async fn main() {}

#[weft::test(crate = "weft::")]
async fn not_a_path() {}
