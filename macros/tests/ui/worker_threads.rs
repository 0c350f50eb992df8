// Worker counts that cannot be, and workers for a current-thread runtime.

#[weft::main(worker_threads = 0)]
async fn main() {}

#[weft::main(worker_threads = "4")]
async fn quoted() {}

#[weft::main(flavor = "current_thread", worker_threads = 2)]
async fn current_thread_workers() {}

#[weft::test(worker_threads = 2)]
async fn test_defaults_to_current_thread() {}
