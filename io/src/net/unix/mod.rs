//! The halves of a [`UnixStream`](crate::net::UnixStream) and the socket
//! address type, at Tokio's paths (`net::unix::OwnedReadHalf`); the sockets
//! themselves are [`net::UnixStream`](crate::net::UnixStream),
//! [`net::UnixListener`](crate::net::UnixListener) and
//! [`net::UnixDatagram`](crate::net::UnixDatagram), as in Tokio.

pub(super) mod datagram;
pub(super) mod listener;
mod split;
pub(super) mod stream;

pub use self::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};

/// The address of a Unix-domain socket, as the standard library gives it
/// (what `local_addr` and `peer_addr` return).
pub use std::os::unix::net::SocketAddr;
