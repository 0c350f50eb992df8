//! The thread context, and the messages misuse gets.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use weft_tests::{each_flavor, panic_message, runtime};

each_flavor! {
    fn nested_block_on_is_refused_with_a_message(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let message = rt.block_on(async move {
            let caught = catch_unwind(AssertUnwindSafe(|| handle.block_on(async { 1 })));
            panic_message(&*caught.expect_err("nested block_on panics"))
        });
        assert!(message.contains("Weft cannot start a runtime from within a runtime"), "{message}");
        assert!(message.contains("`.await`"), "the message names the fix: {message}");
        // The runtime is still usable.
        assert_eq!(rt.block_on(async { 2 }), 2);
    }

    fn block_on_inside_a_task_is_refused(flavor) {
        let rt = runtime(flavor);
        let handle = rt.handle();
        let err = rt.block_on(async move {
            weft::spawn(async move { handle.block_on(async {}) }).await.unwrap_err()
        });
        assert!(err.is_panic());
        assert!(panic_message(&*err.into_panic()).contains("from within a runtime"));
    }

    fn handle_current_inside_and_outside(flavor) {
        let rt = runtime(flavor);
        assert!(weft::Handle::try_current().is_err());
        let inside = rt.block_on(async { weft::Handle::try_current().map(|h| h.flavor()) });
        assert_eq!(inside.unwrap(), flavor);
        let in_task = rt.block_on(async { weft::spawn(async { weft::Handle::current().flavor() }).await.unwrap() });
        assert_eq!(in_task, flavor);
        {
            let _guard = rt.enter();
            let h = weft::spawn(async { 3 });
            drop(_guard);
            assert_eq!(rt.block_on(h).unwrap(), 3);
        }
        assert!(weft::Handle::try_current().unwrap_err().is_missing_context());
    }

    fn thread_hooks_run_on_runtime_threads(flavor) {
        let started = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let (s1, s2) = (started.clone(), stopped.clone());
        let rt = weft_tests::builder(flavor)
            .on_thread_start(move || { s1.fetch_add(1, SeqCst); })
            .on_thread_stop(move || { s2.fetch_add(1, SeqCst); })
            .build()
            .unwrap();
        rt.block_on(rt.spawn_blocking(|| ())).unwrap();
        drop(rt);
        let workers = if flavor == weft::Flavor::MultiThread { weft_tests::WORKERS } else { 0 };
        assert_eq!(started.load(SeqCst), workers + 1, "workers plus one blocking thread");
        assert_eq!(stopped.load(SeqCst), workers + 1);
    }
}

#[test]
fn spawn_outside_a_runtime_names_the_fix() {
    let caught = catch_unwind(|| drop(weft::spawn(async {})));
    let message = panic_message(&*caught.unwrap_err());
    assert!(message.contains("there is no Weft runtime on this thread"), "{message}");
    assert!(message.contains("Runtime::block_on"), "{message}");
    let caught = catch_unwind(|| drop(weft::spawn_blocking(|| ())));
    assert!(panic_message(&*caught.unwrap_err()).contains("no Weft runtime"));
    let caught = catch_unwind(weft::Handle::current);
    assert!(panic_message(&*caught.unwrap_err()).contains("no Weft runtime"));
}

#[test]
fn dropping_a_runtime_inside_a_task_is_refused_with_a_message() {
    let outer = weft::Runtime::new().unwrap();
    let inner = weft::Builder::new_current_thread().build().unwrap();
    let err = outer.block_on(async move { weft::spawn(async move { drop(inner) }).await.unwrap_err() });
    let message = panic_message(&*err.into_panic());
    assert!(message.contains("shutdown_background"), "{message}");
}

#[test]
fn bad_settings_are_errors_not_panics() {
    for build in [
        weft::Builder::new_multi_thread().worker_threads(0).build(),
        weft::Builder::new_multi_thread().event_interval(0).build(),
        weft::Builder::new_current_thread().global_queue_interval(0).build(),
        weft::Builder::new_current_thread().max_blocking_threads(0).build(),
        weft::Builder::new_multi_thread().worker_threads(1 << 20).build(),
        weft::Builder::new_current_thread().timeline_capacity(0).build(),
    ] {
        let err = build.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("must be at"), "{err}");
    }
}
