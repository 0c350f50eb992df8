//! TCP.

mod listener;
mod split;
mod stream;

pub use self::listener::{DEFAULT_BACKLOG, TcpIncoming, TcpListener};
pub use self::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use self::stream::TcpStream;
