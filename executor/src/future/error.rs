//! Why a promise has no result: [`PromiseError`], and the error value a
//! promise can carry, [`Exception`].

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;

/// The error a promise was failed with: asyncio's exception object.
///
/// Any `std::error::Error + Send + Sync` converts into one (so `?` and
/// `set_exception(io_error)` work); [`Exception::msg`] makes one from text.
/// It is cheap to clone (one `Arc`), because every observer of a promise
/// sees the same exception.
///
/// ```
/// use weft_executor::future::Exception;
///
/// let err = Exception::from(std::io::Error::other("disk on fire"));
/// assert_eq!(err.to_string(), "disk on fire");
/// assert!(err.downcast_ref::<std::io::Error>().is_some());
/// assert!(!err.is_panic());
/// ```
#[derive(Clone)]
pub struct Exception(Arc<dyn Error + Send + Sync + 'static>);

impl Exception {
    /// An exception holding `err`.
    pub fn new<E: Error + Send + Sync + 'static>(err: E) -> Exception {
        Exception(Arc::new(err))
    }

    /// An exception with just a message.
    pub fn msg(message: impl Into<String>) -> Exception {
        Exception::new(Message(message.into()))
    }

    /// An exception from a boxed error (what `Box<dyn Error>`-returning code
    /// has).
    pub fn from_boxed(err: Box<dyn Error + Send + Sync + 'static>) -> Exception {
        Exception(Arc::from(err))
    }

    /// The exception that stands for a panic, keeping its message.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Exception {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a payload that is not a string".to_owned()
        };
        Exception::new(Panicked(message))
    }

    /// True if this stands for a panic (in a task, a callback or a pool job).
    pub fn is_panic(&self) -> bool {
        self.downcast_ref::<Panicked>().is_some()
    }

    /// The underlying error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The underlying error.
    pub fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Exception {
    fn from(err: E) -> Exception {
        Exception::new(err)
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Exception").field(&self.0).finish()
    }
}

/// An exception that is only a message.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

/// A panic turned into an exception.
#[derive(Debug)]
struct Panicked(String);

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl Error for Panicked {}

/// Why a promise (or a task, or a pool job) gave no result.
///
/// asyncio raises `InvalidStateError`, `CancelledError` or the stored
/// exception from `Future.result()`; these are the three variants.
///
/// ```
/// use weft_executor::future::{Promise, PromiseError};
///
/// let p = Promise::<u32>::new();
/// assert!(matches!(p.result(), Err(PromiseError::Pending)));
/// p.set_exception(std::io::Error::other("nope")).unwrap();
/// let Err(PromiseError::Failed(err)) = p.result() else { unreachable!() };
/// assert_eq!(err.to_string(), "nope");
/// ```
#[derive(Clone, Debug)]
pub enum PromiseError {
    /// Not done yet (only from the non-blocking getters: `result()`,
    /// `exception()`, a `wait_timeout` that ran out).
    Pending,
    /// Cancelled before a result was set: by `cancel()`, because its
    /// settable side was dropped, or because its task or runtime stopped.
    Cancelled,
    /// Failed with an exception (`set_exception`, or a panic).
    Failed(Exception),
}

impl PromiseError {
    /// True for [`PromiseError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, PromiseError::Cancelled)
    }

    /// True for [`PromiseError::Pending`].
    pub fn is_pending(&self) -> bool {
        matches!(self, PromiseError::Pending)
    }

    /// The exception, for [`PromiseError::Failed`].
    pub fn exception(&self) -> Option<&Exception> {
        match self {
            PromiseError::Failed(err) => Some(err),
            _ => None,
        }
    }
}

impl fmt::Display for PromiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromiseError::Pending => f.write_str("the promise is not done yet"),
            PromiseError::Cancelled => f.write_str("the promise was cancelled"),
            PromiseError::Failed(err) => write!(f, "the promise failed: {err}"),
        }
    }
}

impl Error for PromiseError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PromiseError::Failed(err) => Some(err.as_error()),
            _ => None,
        }
    }
}

impl From<PromiseError> for io::Error {
    fn from(err: PromiseError) -> io::Error {
        let kind = match err {
            PromiseError::Pending => io::ErrorKind::WouldBlock,
            PromiseError::Cancelled => io::ErrorKind::Interrupted,
            PromiseError::Failed(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
