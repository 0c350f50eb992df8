//! Every stream-like type is a `futures_core::Stream`: checked at compile
//! time for each, and by behaviour for those whose stream face is its own
//! code (task groups, watch channels, intervals, incoming connections).

use futures::StreamExt;
use futures_core::Stream;
use std::time::Duration;
use weft::future::TaskGroup;
use weft::net::{TcpListener, TcpStream};
use weft_tests::{each_flavor, runtime};

/// Compiles only for a `Stream` with the given item.
fn is_stream<S: Stream<Item = I>, I>(_: &S) {}

#[test]
fn every_stream_like_type_is_a_stream() {
    let rt = runtime(weft::Flavor::CurrentThread);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        is_stream::<_, std::io::Result<TcpStream>>(&listener.incoming());
        let dir = std::env::temp_dir().join(format!("weft-streams-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = weft::net::UnixListener::bind(&dir).unwrap();
        is_stream::<_, std::io::Result<weft::net::UnixStream>>(&unix.incoming());
        let _ = std::fs::remove_file(&dir);
        is_stream::<_, std::time::Instant>(&weft::time::interval(Duration::from_secs(1)));
        is_stream::<_, u8>(&weft::sync::mpsc::channel::<u8>(1).1);
        is_stream::<_, u8>(&weft::sync::mpsc::unbounded_channel::<u8>().1);
        is_stream::<_, Result<u8, weft::sync::broadcast::RecvError>>(&weft::sync::broadcast::channel::<u8>(1).1);
        is_stream::<_, u8>(&weft::sync::watch::channel(0u8).1.into_stream());
        is_stream::<_, ()>(&weft::signal::unix::signal(weft::signal::unix::SignalKind::user_defined2()).unwrap());
        is_stream::<_, Result<u8, weft::JoinError>>(&TaskGroup::<u8>::new());
        is_stream::<_, (usize, u8)>(&weft::future::as_completed([std::future::ready(1u8)]));
        let lines = weft::io::AsyncBufReadExt::lines(weft::io::BufReader::new(futures::io::Cursor::new(b"a\n")));
        is_stream::<_, std::io::Result<String>>(&lines);
    });
}

each_flavor! {
    fn a_task_group_streams_outcomes_in_completion_order(flavor) {
        runtime(flavor).block_on(async {
            let mut group = TaskGroup::new();
            for (value, delay) in [(1u32, 60u64), (2, 20), (3, 40)] {
                group.spawn(async move {
                    weft::time::sleep(Duration::from_millis(delay)).await;
                    value
                });
            }
            assert_eq!(group.size_hint(), (3, Some(3)));
            let order: Vec<u32> = (&mut group).map(|outcome| outcome.unwrap()).collect().await;
            assert_eq!(order, [2, 3, 1]);
            assert!(group.next().await.is_none(), "an empty group ends the stream");
        });
    }

    fn incoming_connections_and_intervals_as_streams(flavor) {
        runtime(flavor).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients = weft::spawn(async move {
                let mut kept = Vec::new();
                for _ in 0..3 {
                    kept.push(TcpStream::connect(addr).await.unwrap());
                }
                kept
            });
            let accepted: Vec<_> = listener.incoming().take(3).collect().await;
            // Three connections, each accepted: an early end of the stream
            // (an empty list) must fail here.
            assert_eq!(accepted.len(), 3, "the stream ended early: {accepted:?}");
            assert!(accepted.iter().all(|conn| conn.is_ok()), "{accepted:?}");
            drop(clients.await.unwrap());

            let start = std::time::Instant::now();
            let ticks: Vec<_> = weft::time::interval(Duration::from_millis(5)).take(3).collect().await;
            assert_eq!(ticks.len(), 3);
            assert!(start.elapsed() >= Duration::from_millis(10), "three ticks 5 ms apart");
        });
    }

    fn a_watch_stream_yields_changes_and_ends_with_the_sender(flavor) {
        runtime(flavor).block_on(async {
            let (tx, rx) = weft::sync::watch::channel("start");
            let mut changes = rx.into_stream();
            // Each change comes from another task while the stream waits.
            let sender = weft::spawn(async move {
                weft::time::sleep(Duration::from_millis(2)).await;
                tx.send("one").unwrap();
                tx
            });
            assert_eq!(changes.next().await, Some("one"));
            let tx = sender.await.unwrap();
            weft::spawn(async move {
                weft::time::sleep(Duration::from_millis(2)).await;
                tx.send("two").unwrap();
            });
            assert_eq!(changes.next().await, Some("two"));
            assert_eq!(changes.next().await, None, "the sender is gone");
        });
    }
}
