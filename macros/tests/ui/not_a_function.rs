// The attributes go on functions only.

#[weft::main]
struct Server {
    port: u16,
}

#[weft::test]
const ANSWER: u32 = 42;

fn main() {
    let _ = Server { port: ANSWER as u16 };
}
