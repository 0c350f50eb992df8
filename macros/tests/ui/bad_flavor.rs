// Flavors that do not exist.

#[weft::main(flavor = "multi-thread")]
async fn main() {}

#[weft::test(flavor = current_thread)]
async fn unquoted() {}
