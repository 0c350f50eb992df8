//! Unix-domain sockets.

mod datagram;
mod listener;
mod stream;

pub use self::datagram::UnixDatagram;
pub use self::listener::{UnixIncoming, UnixListener};
pub use self::stream::UnixStream;
