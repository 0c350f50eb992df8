// Errors rustc finds in the expansion point at the user's code: a body
// whose value is not of the declared return type, a `crate` path that
// leads nowhere.

#[weft::main]
async fn main() -> Result<(), std::io::Error> {
    let n: u32 = "7".parse().unwrap();
    if n > 100 {
        return Ok(());
    }
    let _ = forgot_ok();
    n
}

#[weft::main(flavor = "current_thread")]
async fn forgot_ok() -> std::io::Result<()> {
    std::fs::metadata("/")?;
}

#[weft::main(crate = "no_such_weft")]
async fn nowhere() {}
