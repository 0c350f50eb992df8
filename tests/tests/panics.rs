//! Panics inside tasks, and the unhandled-panic policy.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use weft::UnhandledPanic;
use weft_tests::{builder, each_flavor, panic_message, runtime};

each_flavor! {
    fn a_panicking_task_reports_its_panic_and_the_runtime_lives_on(flavor) {
        let rt = runtime(flavor);
        let err = rt.block_on(async { weft::spawn(async { panic!("task exploded") }).await.unwrap_err() });
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert!(err.to_string().contains("task exploded"), "{err}");
        assert_eq!(panic_message(&*err.into_panic()), "task exploded");
        // Still works: many tasks, some of which panic.
        let ok = rt.block_on(async {
            let handles: Vec<_> = (0..100)
                .map(|i| weft::spawn(async move {
                    if i % 10 == 0 {
                        panic!("every tenth");
                    }
                    i
                }))
                .collect();
            let mut ok = 0;
            for h in handles {
                if h.await.is_ok() {
                    ok += 1;
                }
            }
            ok
        });
        assert_eq!(ok, 90);
    }

    fn a_panic_with_a_non_string_payload(flavor) {
        let rt = runtime(flavor);
        let err = rt.block_on(async {
            weft::spawn(async { std::panic::panic_any(42u32) }).await.unwrap_err()
        });
        assert_eq!(*err.into_panic().downcast::<u32>().unwrap(), 42);
    }

    fn a_panicking_blocking_job_reports_its_panic(flavor) {
        let rt = runtime(flavor);
        let err = rt.block_on(async { weft::spawn_blocking(|| panic!("blocking exploded")).await.unwrap_err() });
        assert!(err.is_panic());
        assert_eq!(rt.block_on(async { weft::spawn_blocking(|| 3).await.unwrap() }), 3);
    }

    fn shutdown_on_unhandled_panic(flavor) {
        let rt = builder(flavor).unhandled_panic(UnhandledPanic::ShutdownRuntime).build().unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let pending = weft::spawn(std::future::pending::<()>());
                drop(weft::spawn(async { panic!("fatal") }));
                // block_on must not wait for this forever: the panic shuts
                // the runtime down.
                let _ = pending.await;
                std::future::pending::<()>().await;
            })
        }));
        let payload = outcome.expect_err("block_on panics after the runtime shut down");
        assert!(panic_message(&*payload).contains("UnhandledPanic::ShutdownRuntime"), "{}", panic_message(&*payload));
        // The runtime is shut down: new tasks are cancelled.
        let late = rt.spawn(async { 1 });
        let err = weft::Runtime::new().unwrap().block_on(late).unwrap_err();
        assert!(err.is_cancelled());
        rt.shutdown_timeout(Duration::from_secs(5));
    }
}
