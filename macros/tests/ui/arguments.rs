// Parameters and generics: nothing could pass them.

#[weft::main]
async fn main(port: u16) {
    let _ = port;
}

#[weft::test]
async fn takes_input(input: &str) {
    assert!(!input.is_empty());
}

#[weft::test]
async fn generic<T: Default>() {
    let _ = T::default();
}
