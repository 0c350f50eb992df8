//! A Tokio user's paths: where Weft mirrors a Tokio type, Tokio's path names
//! it (the channels' `error` modules, `net::tcp` and `net::unix` halves),
//! and the flat names Weft had keep working, as the same types. And
//! `UnixStream::split`/`into_split`, like the TCP stream's.

use std::time::Duration;
use weft::io::{AsyncReadExt, AsyncWriteExt};
use weft::net::UnixStream;
use weft_tests::{each_flavor, runtime};

/// Compiles only if both arguments have one type.
fn same_type<T>(_: &T, _: &T) {}

#[test]
fn channel_errors_are_at_tokio_s_paths_and_the_flat_names_are_the_same_types() {
    use weft::sync::{broadcast, mpsc, oneshot, watch};

    let closed = broadcast::error::RecvError::Closed;
    same_type(&closed, &broadcast::RecvError::Lagged(1));
    same_type(&broadcast::error::TryRecvError::Empty, &broadcast::TryRecvError::Closed);
    same_type(&broadcast::error::SendError(1), &broadcast::SendError(2));

    same_type(&mpsc::error::SendError('a'), &mpsc::SendError('b'));
    same_type(&mpsc::error::TrySendError::Full(1), &mpsc::TrySendError::Closed(2));
    same_type(&mpsc::error::TryRecvError::Empty, &mpsc::TryRecvError::Disconnected);

    same_type(&oneshot::error::TryRecvError::Empty, &oneshot::TryRecvError::Closed);
    same_type(&watch::error::SendError(1), &watch::SendError(2));

    // The errors the channels return, named by Tokio's paths.
    let (tx, rx) = oneshot::channel::<u8>();
    drop(tx);
    let err: oneshot::error::RecvError = futures::executor::block_on(rx).unwrap_err();
    assert_eq!(err.to_string(), oneshot::RecvError::to_string(&err));
    let (tx, rx) = watch::channel(0);
    drop(rx);
    let err: watch::error::SendError<i32> = tx.send(1).unwrap_err();
    assert_eq!(err.0, 1);
    let (tx, mut rx) = watch::channel(0);
    drop(tx);
    let err: Result<(), watch::error::RecvError> = futures::executor::block_on(rx.changed());
    assert!(err.is_err());

    // Tokio's name for the unbounded channel's receiver.
    let (tx, rx): (mpsc::UnboundedSender<u8>, mpsc::UnboundedReceiver<u8>) = mpsc::unbounded_channel();
    drop((tx, rx));
}

#[test]
fn stream_halves_are_at_tokio_s_paths() {
    // TCP: `net::tcp::*`, as in Tokio, and the short names Weft had.
    same_type::<Option<weft::net::tcp::OwnedReadHalf>>(&None, &None::<weft::net::OwnedReadHalf>);
    same_type::<Option<weft::net::tcp::OwnedWriteHalf>>(&None, &None::<weft::net::OwnedWriteHalf>);
    same_type::<Option<weft::net::tcp::ReadHalf<'_>>>(&None, &None::<weft::net::ReadHalf<'_>>);
    same_type::<Option<weft::net::tcp::WriteHalf<'_>>>(&None, &None::<weft::net::WriteHalf<'_>>);
    same_type::<Option<weft::net::tcp::ReuniteError>>(&None, &None::<weft::net::ReuniteError>);
    // Unix: `net::unix::*`.
    let _: Option<(weft::net::unix::OwnedReadHalf, weft::net::unix::OwnedWriteHalf)> = None;
    let _: Option<(weft::net::unix::ReadHalf<'_>, weft::net::unix::WriteHalf<'_>)> = None;
    let _: Option<weft::net::unix::ReuniteError> = None;
    let _: Option<weft::net::unix::SocketAddr> = None;
}

each_flavor! {
    /// The owned halves of a Unix stream in two tasks at once: one writes
    /// a stream of bytes while the other reads the peer's echo of them,
    /// then they are put back together and the stream still works.
    fn unix_owned_halves_run_in_two_tasks_at_once_and_reunite(flavor) {
        const BYTES: usize = 256 * 1024;
        let rt = runtime(flavor);
        rt.block_on(async {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            // The peer echoes everything back until it reads end of stream.
            let echo = weft::spawn(async move {
                let (mut from, mut to) = peer.split();
                let copied = weft::io::copy(&mut from, &mut to).await.unwrap();
                to.close().await.unwrap();
                copied
            });
            let (mut reader, mut writer) = ours.into_split();
            let writing = weft::spawn(async move {
                let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
                for chunk in data.chunks(4096) {
                    writer.write_all(chunk).await.unwrap();
                }
                writer
            });
            let reading = weft::spawn(async move {
                let mut got = vec![0u8; BYTES];
                reader.read_exact(&mut got).await.unwrap();
                (reader, got)
            });
            // Both are in flight at once: the socket buffers are far
            // smaller than what is written, so the writer finishes only
            // because the reader drains the echo meanwhile.
            let writer = writing.await.unwrap();
            let (reader, got) = reading.await.unwrap();
            assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "bytes were lost or reordered");
            let mut stream = reader.reunite(writer).expect("halves of one stream");
            // Reuniting kept the writing direction open.
            stream.write_all(b"more").await.unwrap();
            let mut more = [0u8; 4];
            stream.read_exact(&mut more).await.unwrap();
            assert_eq!(&more, b"more");
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(echo.await.unwrap(), BYTES as u64 + 4);
        });
    }

    /// Halves of two different streams do not reunite; both come back,
    /// still working, and reunite with their own partners.
    fn unix_mismatched_halves_fail_to_reunite_and_come_back(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (a, mut a_peer) = UnixStream::pair().unwrap();
            let (b, _b_peer) = UnixStream::pair().unwrap();
            let (a_read, a_write) = a.into_split();
            let (b_read, b_write) = b.into_split();
            let err = a_read.reunite(b_write).unwrap_err();
            assert!(err.to_string().contains("not from the same socket"));
            let weft::net::unix::ReuniteError(a_read, b_write) = err;
            let err = a_write.reunite(b_read).unwrap_err();
            let weft::net::unix::ReuniteError(b_read, mut a_write) = err;
            // Still usable: the failed reunite shut nothing down.
            a_write.write_all(b"ok").await.unwrap();
            let mut buf = [0u8; 2];
            a_peer.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ok");
            assert!(a_read.reunite(a_write).is_ok());
            assert!(b_write.reunite(b_read).is_ok());
        });
    }

    /// Dropping the owned writing half shuts writing down (the peer reads
    /// end of stream) while the reading half still reads; `forget` keeps
    /// it open.
    fn unix_dropping_the_write_half_ends_the_peer_s_stream(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            let (mut reader, writer) = ours.into_split();
            drop(writer);
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            peer.write_all(b"still").await.unwrap();
            let mut buf = [0u8; 5];
            reader.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"still");

            let (ours, mut peer) = UnixStream::pair().unwrap();
            let (_reader, writer) = ours.into_split();
            writer.forget();
            let mut byte = [0u8; 1];
            let read = weft::time::timeout(Duration::from_millis(20), peer.read(&mut byte)).await;
            assert!(read.is_err(), "forget() kept writing open: the peer reads nothing, not end of stream");
        });
    }

    /// The borrowed halves of one Unix stream, driven together in one task.
    fn unix_borrowed_halves_read_and_write_at_once(flavor) {
        let rt = runtime(flavor);
        rt.block_on(async {
            let (mut ours, mut peer) = UnixStream::pair().unwrap();
            let echo = weft::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                peer.read_exact(&mut buf).await.unwrap();
                peer.write_all(&buf).await.unwrap();
            });
            let (mut reader, mut writer) = ours.split();
            let data = vec![7u8; 64 * 1024];
            let mut got = vec![0u8; 64 * 1024];
            let (w, r) = futures::join!(writer.write_all(&data), reader.read_exact(&mut got));
            w.unwrap();
            r.unwrap();
            assert_eq!(got, data);
            echo.await.unwrap();
        });
    }
}
