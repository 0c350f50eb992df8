//! `#[weft::main]` and `#[weft::test]` used the way users use them, through
//! `weft`: the runtime each builds, and what the body may do.
//!
//! `#[weft::main]` works on any function without parameters, so the tests
//! below call `#[weft::main]` functions from plain tests and check what they
//! return.

use std::error::Error;
use std::thread::{self, ThreadId};
use weft::{Flavor, Handle};

/// What a body saw of the runtime it ran on.
#[derive(Debug)]
struct Seen {
    flavor: Flavor,
    workers: usize,
    body_thread: ThreadId,
    task_thread: ThreadId,
    task_thread_name: Option<String>,
}

async fn look_around() -> Seen {
    let handle = Handle::current();
    let task = weft::spawn(async { (thread::current().id(), thread::current().name().map(String::from)) });
    let (task_thread, task_thread_name) = task.await.unwrap();
    Seen {
        flavor: handle.flavor(),
        workers: handle.metrics().workers.len(),
        body_thread: thread::current().id(),
        task_thread,
        task_thread_name,
    }
}

#[weft::main]
async fn default_main() -> Seen {
    look_around().await
}

#[weft::main(worker_threads = 3)]
async fn three_workers() -> Seen {
    look_around().await
}

#[weft::main(flavor = "multi_thread", worker_threads = 1)]
async fn one_worker() -> Seen {
    look_around().await
}

#[weft::main(flavor = "current_thread")]
async fn current_thread_main() -> Seen {
    look_around().await
}

#[test]
fn main_defaults_to_multi_thread() {
    let seen = default_main();
    assert_eq!(seen.flavor, Flavor::MultiThread);
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(seen.workers, cpus, "one worker per CPU by default");
}

#[test]
fn worker_threads_sets_the_number_of_workers() {
    let seen = three_workers();
    assert_eq!(seen.flavor, Flavor::MultiThread);
    assert_eq!(seen.workers, 3);
    // `block_on` runs the body on the calling thread; spawned tasks run on
    // the workers.
    assert_eq!(seen.body_thread, thread::current().id());
    assert_ne!(seen.task_thread, seen.body_thread);
    let name = seen.task_thread_name.expect("workers are named");
    assert!(name.starts_with("weft-worker-"), "task ran on {name:?}");

    assert_eq!(one_worker().workers, 1);
}

#[test]
fn current_thread_main_runs_everything_on_the_calling_thread() {
    let seen = current_thread_main();
    assert_eq!(seen.flavor, Flavor::CurrentThread);
    assert_eq!(seen.body_thread, thread::current().id());
    assert_eq!(seen.task_thread, thread::current().id());
}

#[weft::test]
async fn test_defaults_to_current_thread() {
    let seen = look_around().await;
    assert_eq!(seen.flavor, Flavor::CurrentThread);
    assert_eq!(seen.task_thread, seen.body_thread);
}

#[weft::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_takes_flavor_and_worker_threads() {
    let seen = look_around().await;
    assert_eq!(seen.flavor, Flavor::MultiThread);
    assert_eq!(seen.workers, 2);
    assert_ne!(seen.task_thread, seen.body_thread);
}

#[weft::main(flavor = "current_thread")]
async fn parse_number() -> Result<u32, Box<dyn Error>> {
    let text = weft::spawn(async { String::from("not a number") }).await?;
    let n: u32 = text.parse()?;
    Ok(n)
}

#[test]
fn question_mark_leaves_the_body_with_the_converted_error() {
    let err = parse_number().expect_err("the text is not a number");
    assert!(err.is::<std::num::ParseIntError>(), "{err}");
}

#[weft::main(flavor = "current_thread")]
async fn first_multiple_of_seven_after_50() -> u32 {
    let mut n = 50;
    loop {
        weft::task::yield_now().await;
        if n % 7 == 0 {
            // `return` leaves the body with a value, as in any `async fn`.
            return n;
        }
        n += 1;
    }
}

#[test]
fn return_leaves_the_body_with_a_value() {
    assert_eq!(first_multiple_of_seven_after_50(), 56);
}

#[weft::main]
async fn io_result() -> std::io::Result<u64> {
    let metadata = std::fs::metadata("/weft/no/such/file")?;
    Ok(metadata.len())
}

#[test]
fn io_result_main_returns_the_io_error() {
    let err = io_result().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[weft::test]
async fn a_test_may_return_a_result() -> Result<(), Box<dyn Error>> {
    let n: u8 = weft::spawn(async { "7" }).await?.parse()?;
    assert_eq!(n, 7);
    Ok(())
}

#[weft::test]
#[should_panic(expected = "a panic in a weft test")]
async fn should_panic_is_kept() {
    weft::task::yield_now().await;
    panic!("a panic in a weft test");
}

/// A stand-in for `weft` at another path, which counts the runtimes built
/// through it: proof that the expansion names `Builder` through `crate =`.
mod shim {
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(crate) static BUILT: AtomicUsize = AtomicUsize::new(0);

    pub(crate) struct Builder(weft::Builder);

    impl Builder {
        pub(crate) fn new_current_thread() -> Builder {
            Builder(weft::Builder::new_current_thread())
        }

        pub(crate) fn new_multi_thread() -> Builder {
            Builder(weft::Builder::new_multi_thread())
        }

        pub(crate) fn worker_threads(&mut self, n: usize) -> &mut Builder {
            self.0.worker_threads(n);
            self
        }

        pub(crate) fn build(&mut self) -> std::io::Result<weft::Runtime> {
            BUILT.fetch_add(1, Ordering::SeqCst);
            self.0.build()
        }
    }
}

#[weft::main(crate = "crate::shim", worker_threads = 2)]
async fn through_the_shim() -> Seen {
    look_around().await
}

#[weft::main(crate = "self::shim", flavor = "current_thread")]
async fn through_the_shim_current_thread() -> Seen {
    look_around().await
}

#[test]
fn crate_argument_routes_every_path_through_the_given_crate() {
    use std::sync::atomic::Ordering;
    let before = shim::BUILT.load(Ordering::SeqCst);
    assert_eq!(through_the_shim().workers, 2);
    assert_eq!(through_the_shim_current_thread().flavor, Flavor::CurrentThread);
    assert_eq!(shim::BUILT.load(Ordering::SeqCst), before + 2);
}

extern crate weft as my_weft;

#[my_weft::test(crate = "my_weft")]
async fn crate_argument_takes_a_renamed_crate() {
    assert_eq!(my_weft::Handle::current().flavor(), Flavor::CurrentThread);
}

#[weft::test(crate = "::weft")]
async fn crate_argument_takes_an_absolute_path() {
    assert_eq!(Handle::current().flavor(), Flavor::CurrentThread);
}
