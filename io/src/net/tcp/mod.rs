//! TCP.

mod listener;
mod split;
mod stream;

pub use self::listener::{TcpIncoming, TcpListener};
pub use self::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use self::stream::TcpStream;
