//! [`Registry`] and [`Job`]: the functions a pool runs, typed.
//!
//! Code cannot travel between processes, so every rank builds the same
//! registry, and a job names its function. Registering gives a [`Job`]
//! handle that carries the argument and result types, so
//! `pool.map(&square, ...)` is checked by the compiler on rank 0; the job
//! message also carries a fingerprint of the types (their names), checked
//! on the worker against its own registration, so ranks running different
//! builds fail with an error that says so instead of misreading bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// A registered function: serialised argument in, serialised result (or
/// why it failed) out.
pub(crate) type Run = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// One registration.
#[derive(Clone)]
pub(crate) struct Registered {
    /// The argument and result types, as the job message carries them.
    pub(crate) types: Arc<str>,
    pub(crate) run: Arc<Run>,
}

/// The functions jobs may name. Every rank must register the same names
/// with the same types (a worker checks).
#[derive(Default, Clone)]
pub struct Registry {
    functions: HashMap<String, Registered>,
}

/// A registered function, typed: `A` in, `R` out. Cheap to clone; pass it
/// to [`MpiPool::map`](super::MpiPool::map) or
/// [`submit`](super::MpiPool::submit).
pub struct Job<A, R> {
    pub(crate) name: Arc<str>,
    pub(crate) types: Arc<str>,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for Job<A, R> {
    fn clone(&self) -> Job<A, R> {
        Job {
            name: self.name.clone(),
            types: self.types.clone(),
            _types: PhantomData,
        }
    }
}

impl<A, R> Job<A, R> {
    /// The name it was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<A, R> fmt::Debug for Job<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("types", &self.types)
            .finish()
    }
}

fn types<A, R>() -> Arc<str> {
    format!("{} -> {}", std::any::type_name::<A>(), std::any::type_name::<R>()).into()
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `f` under `name`: a job naming it deserialises its
    /// argument as `A` and serialises the `R` it returns. A panic in `f`
    /// fails that item with the panic's message. For a function that
    /// returns `Result`, use [`register_fallible`](Self::register_fallible),
    /// so that its `Err` is the item's error.
    ///
    /// # Panics
    ///
    /// If `name` is registered already (a bug: the ranks' registries must
    /// agree, and a name must mean one function).
    pub fn register<A, R, F>(&mut self, name: &str, f: F) -> Job<A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        self.register_fallible(name, move |a: A| Ok::<R, std::convert::Infallible>(f(a)))
    }

    /// Registers a function that returns `Result<R, E>`: an `Err` fails
    /// that item with [`PoolError::Job`](super::PoolError::Job) carrying
    /// the error's text (the other items are unaffected).
    ///
    /// # Panics
    ///
    /// As [`register`](Self::register).
    pub fn register_fallible<A, R, E, F>(&mut self, name: &str, f: F) -> Job<A, R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        E: fmt::Display,
        F: Fn(A) -> Result<R, E> + Send + Sync + 'static,
    {
        assert!(
            !self.functions.contains_key(name),
            "weft-mpi: a job named {name:?} is registered twice; every name must mean one function"
        );
        let run = move |bytes: &[u8]| -> Result<Vec<u8>, String> {
            let arg: A =
                crate::error::decode_whole(bytes).map_err(|e| format!("the argument did not deserialise: {e}"))?;
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(arg)))
                .map_err(|panic| format!("the job panicked: {}", panic_message(&*panic)))?
                .map_err(|e| e.to_string())?;
            postcard::to_allocvec(&out).map_err(|e| format!("the result did not serialise: {e}"))
        };
        let types = types::<A, R>();
        self.functions.insert(
            name.to_owned(),
            Registered {
                types: types.clone(),
                run: Arc::new(run),
            },
        );
        Job {
            name: name.into(),
            types,
            _types: PhantomData,
        }
    }

    /// Runs `name` on every argument, checking that it was registered with
    /// the types the caller names.
    pub(crate) fn run(&self, name: &str, types: &str, args: &[Vec<u8>]) -> Vec<Result<Vec<u8>, String>> {
        let fail = |why: String| args.iter().map(|_| Err(why.clone())).collect();
        match self.functions.get(name) {
            None => fail(format!("no job {name:?} is registered on this rank")),
            Some(registered) if &*registered.types != types => fail(format!(
                "job {name:?} takes {types} on rank 0 but {} here: the ranks run different builds",
                registered.types
            )),
            Some(registered) => args.iter().map(|a| (registered.run)(a)).collect(),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_checks_its_types_and_reports_errors_per_item() {
        let mut registry = Registry::new();
        let square = registry.register("square", |x: u64| x * x);
        let half = registry.register_fallible("half", |x: u64| {
            if x % 2 == 0 {
                Ok(x / 2)
            } else {
                Err(format!("{x} is odd"))
            }
        });
        let arg = |x: u64| postcard::to_allocvec(&x).unwrap();
        let out = registry.run("square", &square.types, &[arg(3)]);
        assert_eq!(postcard::from_bytes::<u64>(out[0].as_ref().unwrap()).unwrap(), 9);
        let out = registry.run("half", &half.types, &[arg(4), arg(5)]);
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err(), "5 is odd");
        // A rank 0 that thinks `square` takes a String.
        let wrong = types::<String, u64>();
        let out = registry.run("square", &wrong, &[arg(3)]);
        let why = out[0].as_ref().unwrap_err();
        assert!(
            why.contains("different builds") && why.contains("alloc::string::String"),
            "{why}"
        );
        assert!(
            registry.run("cube", &square.types, &[arg(1)])[0]
                .as_ref()
                .unwrap_err()
                .contains("no job")
        );
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_means_one_function() {
        let mut registry = Registry::new();
        registry.register("f", |x: u8| x);
        registry.register("f", |x: u16| x);
    }
}
