//! Async I/O helpers on top of the `futures-io` traits.
//!
//! Weft's byte streams (TCP and Unix sockets) implement
//! [`AsyncRead`], [`AsyncWrite`] and, once buffered, [`AsyncBufRead`] from the
//! `futures-io` crate, re-exported here. Those traits only have `poll_*`
//! methods; this module adds what you call from `async` code:
//!
//! | item | what |
//! | --- | --- |
//! | [`AsyncReadExt`] | `read`, `read_exact`, `read_to_end`, `read_to_string` |
//! | [`AsyncWriteExt`] | `write`, `write_all`, `write_vectored`, `flush`, `close` |
//! | [`AsyncBufReadExt`] | `read_until`, `read_line`, and [`lines`](AsyncBufReadExt::lines) as a [`Stream`](futures_core::Stream) |
//! | [`BufReader`] | a buffer in front of any reader, making it an [`AsyncBufRead`] |
//! | [`copy()`], [`copy_buf`] | a whole stream into a writer |
//!
//! The extension traits are implemented for every reader and writer, sized
//! or not (`dyn AsyncRead + Unpin` included). Their methods return named
//! futures that borrow the stream and need it to be [`Unpin`]; pin one that
//! is not with `Box::pin` or [`std::pin::pin!`].
//!
//! # Cancellation
//!
//! Dropping a future before it completes (a `select` that picks another
//! branch, a timeout) is safe for [`read`](AsyncReadExt::read),
//! [`write`](AsyncWriteExt::write) and
//! [`write_vectored`](AsyncWriteExt::write_vectored): nothing was
//! transferred. The others (`read_exact`, `read_to_end`, `read_to_string`,
//! `write_all`, `read_until`, `read_line`, `copy`) may have transferred
//! part of the data, which the caller then cannot account for: each method
//! says what is left where.
//!
//! # Example
//!
//! ```
//! use futures::io::Cursor;
//! use weft_io::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
//!
//! futures::executor::block_on(async {
//!     // Any AsyncRead works: a socket, or here bytes in memory.
//!     let mut reader = BufReader::new(Cursor::new(b"HELLO 5\nworld and more".to_vec()));
//!
//!     let mut header = String::new();
//!     reader.read_line(&mut header).await?;
//!     assert_eq!(header, "HELLO 5\n");
//!     let len: usize = header.trim_end().rsplit(' ').next().unwrap().parse().unwrap();
//!
//!     let mut body = vec![0; len];
//!     reader.read_exact(&mut body).await?;
//!     assert_eq!(body, b"world");
//!
//!     let mut out = Cursor::new(Vec::new());
//!     out.write_all(&body).await?;
//!     let rest = weft_io::io::copy(&mut reader, &mut out).await?;
//!     assert_eq!(rest, 9);
//!     assert_eq!(out.into_inner(), b"world and more");
//!     # Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! ```

mod buf_read;
mod buf_reader;
mod copy;
mod read;
mod take;
#[cfg(test)]
mod test_util;
mod write;

pub use buf_read::{AsyncBufReadExt, Lines, ReadLine, ReadUntil};
pub use buf_reader::BufReader;
pub use copy::{copy, copy_buf};
pub use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};
pub use read::{AsyncReadExt, Read, ReadExact, ReadToEnd, ReadToString};
pub use take::Take;
pub use write::{AsyncWriteExt, Close, Flush, Write, WriteAll, WriteVectored};
