//! The three runtimes behind one small interface, so each workload is
//! written once and compiled (monomorphised) for each: the code under test is
//! each runtime's own spawn, join, yield and block_on, with nothing boxed in
//! between.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A runtime under test, driven from the benchmark's main thread.
pub(crate) trait Rt {
    /// What tasks carry to spawn more tasks.
    type Ctx: Ctx;
    const NAME: &'static str;
    fn ctx(&self) -> Self::Ctx;
    /// Runs `f` to completion on the calling (non-worker) thread.
    fn block_on<F: Future>(&self, f: F) -> F::Output;
}

/// Spawning and yielding, from inside the runtime or from any thread.
pub(crate) trait Ctx: Clone + Send + Sync + 'static {
    type Join<T: Send + 'static>: Future<Output = T> + Send + 'static;
    fn spawn<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static;
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static;
    fn yield_now() -> impl Future<Output = ()> + Send;
    /// The runtime's own timer.
    fn sleep_until(deadline: std::time::Instant) -> impl Future<Output = ()> + Send;
}

/// Unwraps the `Result` of a join handle: every task in the benchmarks
/// succeeds, and smol's handles carry no `Result`.
pub(crate) struct Unwrap<J>(J);

impl<J, T, E> Future for Unwrap<J>
where
    J: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("benchmark task failed"))
    }
}

// ----- Weft ------------------------------------------------------------------

pub(crate) struct Weft(pub weft::Runtime);

impl Weft {
    pub(crate) fn new(workers: usize) -> Weft {
        Weft(
            weft::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .expect("weft runtime"),
        )
    }
}

#[derive(Clone)]
pub(crate) struct WeftCtx(weft::Handle);

impl Rt for Weft {
    type Ctx = WeftCtx;
    const NAME: &'static str = "weft";
    fn ctx(&self) -> WeftCtx {
        WeftCtx(self.0.handle())
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
}

impl Ctx for WeftCtx {
    type Join<T: Send + 'static> = Unwrap<weft::JoinHandle<T>>;
    fn spawn<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        Unwrap(self.0.spawn(f))
    }
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.0.spawn(f));
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        weft::task::yield_now()
    }
    fn sleep_until(deadline: std::time::Instant) -> impl Future<Output = ()> + Send {
        weft::time::sleep_until(deadline)
    }
}

// ----- Tokio -----------------------------------------------------------------

pub(crate) struct Tokio(pub tokio::runtime::Runtime);

impl Tokio {
    pub(crate) fn new(workers: usize) -> Tokio {
        Tokio(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                // Weft always runs its reactor; so does Tokio here.
                .enable_all()
                .build()
                .expect("tokio runtime"),
        )
    }
}

#[derive(Clone)]
pub(crate) struct TokioCtx(tokio::runtime::Handle);

impl Rt for Tokio {
    type Ctx = TokioCtx;
    const NAME: &'static str = "tokio";
    fn ctx(&self) -> TokioCtx {
        TokioCtx(self.0.handle().clone())
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
}

impl Ctx for TokioCtx {
    type Join<T: Send + 'static> = Unwrap<tokio::task::JoinHandle<T>>;
    fn spawn<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        Unwrap(self.0.spawn(f))
    }
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.0.spawn(f));
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
    fn sleep_until(deadline: std::time::Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(deadline.into())
    }
}

// ----- smol --------------------------------------------------------------------

/// An `async_executor::Executor` run by `workers` threads, as smol programs
/// run a multi-threaded executor.
pub(crate) struct Smol {
    pub(crate) ex: Arc<async_executor::Executor<'static>>,
    /// Dropping it ends the runner threads' `run` futures.
    stop: Option<futures::channel::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Smol {
    pub(crate) fn new(workers: usize) -> Smol {
        let ex = Arc::new(async_executor::Executor::new());
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let rx = futures::future::FutureExt::shared(rx);
        let threads = (0..workers)
            .map(|i| {
                let ex = ex.clone();
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("smol-{i}"))
                    .spawn(move || {
                        let _ = futures_lite::future::block_on(ex.run(rx));
                    })
                    .expect("smol runner thread")
            })
            .collect();
        Smol {
            ex,
            stop: Some(tx),
            threads,
        }
    }
}

impl Drop for Smol {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub(crate) struct SmolCtx(Arc<async_executor::Executor<'static>>);

impl Rt for Smol {
    type Ctx = SmolCtx;
    const NAME: &'static str = "smol";
    fn ctx(&self) -> SmolCtx {
        SmolCtx(self.ex.clone())
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }
}

impl Ctx for SmolCtx {
    type Join<T: Send + 'static> = async_executor::Task<T>;
    fn spawn<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.0.spawn(f)
    }
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(f).detach();
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
    async fn sleep_until(deadline: std::time::Instant) {
        async_io::Timer::at(deadline).await;
    }
}
