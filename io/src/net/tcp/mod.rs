//! The halves of a [`TcpStream`](crate::net::TcpStream), at Tokio's paths
//! (`net::tcp::OwnedReadHalf`); the stream and the listener themselves are
//! [`net::TcpStream`](crate::net::TcpStream) and
//! [`net::TcpListener`](crate::net::TcpListener), as in Tokio.

pub(super) mod listener;
mod split;
pub(super) mod stream;

pub use self::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
