// Keys that do not exist, a misspelt one, and a bare word.

#[weft::main(threads = 4)]
async fn main() {}

#[weft::test(flavour = "multi_thread")]
async fn british() {}

#[weft::test(start_paused = true)]
async fn tokio_only() {}

#[weft::test(current_thread)]
async fn bare_word() {}
