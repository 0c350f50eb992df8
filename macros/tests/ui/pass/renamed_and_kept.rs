// A renamed crate, another path to Weft, kept attributes, and a `main` that
// returns a `Result`.

extern crate weft as my_weft;

mod runtime {
    pub use weft::*;
}

/// Doubles `n` on a runtime of its own, reached through the renamed crate.
#[my_weft::main(crate = "my_weft", flavor = "multi_thread", worker_threads = 1)]
#[must_use]
async fn doubled_apart() -> u8 {
    my_weft::spawn(async { 21 * 2 }).await.unwrap()
}

#[weft::main(crate = "crate::runtime", flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u8 = "7".parse()?;
    if n == 0 {
        return Err("zero".into());
    }
    let doubled = runtime::spawn(async move { n * 2 }).await?;
    assert_eq!(doubled, 14);
    // A `#[weft::main]` function is a plain, blocking function: call it
    // from a thread outside this runtime.
    let apart = std::thread::spawn(doubled_apart).join().unwrap();
    assert_eq!(apart, 42);
    Ok(())
}
