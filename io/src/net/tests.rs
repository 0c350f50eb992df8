//! The waiter lists of sockets (`driver/scheduled_io.rs`): a waiting
//! future that is dropped leaves no waker behind, and the poll API keeps at
//! most one per direction.

use super::{TcpListener, TcpStream, UdpSocket};
use crate::Driver;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// Counts live wakers: each clone adds one, each drop takes one away, so a
/// waker the reactor keeps shows up in the count.
struct Live(AtomicUsize);

fn counted(live: &Arc<Live>) -> Waker {
    fn clone(p: *const ()) -> RawWaker {
        // SAFETY: `p` came from `Arc::into_raw` in `counted` (or here) and
        // that count is still held by the waker being cloned.
        let live = unsafe { Arc::from_raw(p as *const Live) };
        live.0.fetch_add(1, SeqCst);
        let raw = RawWaker::new(Arc::into_raw(live.clone()) as *const (), &VTABLE);
        std::mem::forget(live);
        raw
    }
    fn wake_by_ref(_: *const ()) {}
    fn drop(p: *const ()) {
        // SAFETY: as in `clone`; this releases the waker's own count.
        let live = unsafe { Arc::from_raw(p as *const Live) };
        live.0.fetch_sub(1, SeqCst);
    }
    // Waking by value consumes the waker: it is a drop.
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, drop, wake_by_ref, drop);
    live.0.fetch_add(1, SeqCst);
    let raw = RawWaker::new(Arc::into_raw(live.clone()) as *const (), &VTABLE);
    // SAFETY: the vtable keeps the `RawWaker` contract: clone makes a new
    // count, drop releases one, wake does nothing.
    unsafe { Waker::from_raw(raw) }
}

/// Polls `future` once with a fresh waker (as a combinator gives each
/// child), expecting `Pending`.
fn poll_once_pending<F: Future>(future: F, live: &Arc<Live>) {
    let future = pin!(future);
    let waker = counted(live);
    assert!(future.poll(&mut Context::from_waker(&waker)).is_pending());
}

fn pair(driver: &mut Driver) -> (TcpListener, TcpStream, TcpStream) {
    let _enter = driver.handle().enter();
    driver.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (listener, client, server)
    })
}

#[test]
fn ten_thousand_dropped_waiting_futures_leave_no_waker() {
    let mut driver = Driver::new().unwrap();
    let (listener, _client, server) = pair(&mut driver);
    let _enter = driver.handle().enter();
    let live = Arc::new(Live(AtomicUsize::new(0)));
    let mut buf = [0u8; 8];
    for _ in 0..10_000 {
        poll_once_pending(server.readable(), &live);
        poll_once_pending(server.peek(&mut buf), &live);
        poll_once_pending(listener.accept(), &live);
    }
    assert_eq!(server.io.registration().waiting(), 0);
    assert_eq!(listener.io.registration().waiting(), 0);
    assert_eq!(live.0.load(SeqCst), 0, "a waker of a dropped future is still alive");
}

#[test]
fn the_poll_api_keeps_at_most_the_last_pollers_waker() {
    let mut driver = Driver::new().unwrap();
    let (_listener, mut client, server) = pair(&mut driver);
    let _enter = driver.handle().enter();
    let live = Arc::new(Live(AtomicUsize::new(0)));
    let mut buf = [0u8; 8];
    for _ in 0..10_000 {
        let waker = counted(&live);
        let polled = futures_io::AsyncRead::poll_read(pin!(&server), &mut Context::from_waker(&waker), &mut buf);
        assert!(polled.is_pending());
    }
    assert_eq!(
        server.io.registration().waiting(),
        1,
        "the read slot holds the last waker"
    );
    assert_eq!(live.0.load(SeqCst), 1);
    // An event takes it.
    driver.block_on(async {
        use crate::io::AsyncWriteExt;
        client.write_all(b"x").await.unwrap();
        server.readable().await.unwrap();
    });
    assert_eq!(live.0.load(SeqCst), 0);
}

#[test]
fn a_million_dropped_waiters_keep_the_list_flat() {
    let driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let live = Arc::new(Live(AtomicUsize::new(0)));
    let mut buf = [0u8; 8];
    for _ in 0..1_000_000 {
        poll_once_pending(socket.recv(&mut buf), &live);
    }
    let registration = socket.io.registration();
    assert_eq!(registration.waiting(), 0);
    assert!(
        registration.waiter_capacity() <= 4,
        "the entries' slab grew: {}",
        registration.waiter_capacity()
    );
    assert_eq!(live.0.load(SeqCst), 0);
}

#[test]
fn waiting_futures_are_each_woken_and_a_completed_one_leaves() {
    // Two futures wait in one direction; an event wakes both; the one that
    // completes leaves the list at once, the other stays until dropped.
    let mut driver = Driver::new().unwrap();
    let _enter = driver.handle().enter();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let live = Arc::new(Live(AtomicUsize::new(0)));
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    let mut first = Box::pin(socket.recv(&mut a));
    let mut second = Box::pin(socket.recv(&mut b));
    let (wa, wb) = (counted(&live), counted(&live));
    assert!(first.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
    assert!(second.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
    assert_eq!(socket.io.registration().waiting(), 2);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"one", addr).unwrap();
    // Turn the loop until the event is in.
    while socket.io.registration().waiting() > 0 {
        driver.turn(Some(std::time::Duration::from_millis(10)));
    }
    assert!(matches!(
        first.as_mut().poll(&mut Context::from_waker(&wa)),
        Poll::Ready(Ok(3))
    ));
    assert!(
        second.as_mut().poll(&mut Context::from_waker(&wb)).is_pending(),
        "no second datagram"
    );
    assert_eq!(socket.io.registration().waiting(), 1, "the completed future left");
    drop(second);
    drop(first);
    assert_eq!(socket.io.registration().waiting(), 0);
}
