// A key given twice, and a test marked twice.

#[weft::main(flavor = "multi_thread", flavor = "current_thread")]
async fn main() {}

#[weft::test]
#[test]
async fn tested_twice() {}
