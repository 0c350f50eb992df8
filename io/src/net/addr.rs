//! Addresses to bind and connect to, and name lookups that never block the
//! loop: the standard library's `ToSocketAddrs` resolves host names with a
//! blocking `getaddrinfo`, so Weft, like Tokio, has its own
//! [`ToSocketAddrs`] (whose docs say where each kind of address is
//! resolved).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Anything a socket can bind or connect to: the address types of the
/// standard library's `ToSocketAddrs`, resolved without blocking the loop.
///
/// An address that is already numeric (`SocketAddr`, `(IpAddr, u16)`, an IP
/// literal such as `"127.0.0.1:8080"`) is used at once. A host name is
/// looked up on a blocking thread (the runtime's blocking pool where the
/// reactor belongs to a Weft runtime, else a thread of its own), and the
/// answer comes back to the task through the reactor's notifier: one slow
/// DNS server never stalls the tasks of a worker. The async constructors
/// (`TcpStream::connect`, `UdpSocket::send_to`, [`lookup_host`]) look
/// names up that way; the synchronous ones (`bind`, `UdpSocket::connect`)
/// cannot await, and resolve a name on the calling thread.
///
/// The trait is sealed: its one method is Weft's business.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    use std::net::SocketAddr;

    /// Turns the address into [`Addrs`].
    pub trait Sealed {
        fn to_addrs(&self) -> std::io::Result<Addrs>;
    }

    /// What an address turns into before a socket is made: numeric
    /// addresses at once, or a name that needs a lookup.
    #[derive(Debug)]
    pub enum Addrs {
        /// Addresses ready to use.
        Ready(Vec<SocketAddr>),
        /// A host name and port: a DNS lookup.
        Name(String, u16),
    }
}

use sealed::Addrs;

macro_rules! numeric {
    ($($ty:ty => |$v:ident| $addr:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn to_addrs(&self) -> io::Result<Addrs> {
                let $v = self;
                Ok(Addrs::Ready(vec![$addr]))
            }
        }
    )*};
}

numeric! {
    SocketAddr => |a| *a;
    SocketAddrV4 => |a| SocketAddr::V4(*a);
    SocketAddrV6 => |a| SocketAddr::V6(*a);
    (IpAddr, u16) => |a| SocketAddr::new(a.0, a.1);
    (Ipv4Addr, u16) => |a| SocketAddr::new(IpAddr::V4(a.0), a.1);
    (Ipv6Addr, u16) => |a| SocketAddr::new(IpAddr::V6(a.0), a.1);
}

impl ToSocketAddrs for [SocketAddr] {}
impl sealed::Sealed for [SocketAddr] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::Ready(self.to_vec()))
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}
impl<const N: usize> sealed::Sealed for [SocketAddr; N] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::Ready(self.to_vec()))
    }
}

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn to_addrs(&self) -> io::Result<Addrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Addrs::Ready(vec![addr]));
        }
        // `host:port`, the port after the last colon, as std reads it.
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("an address needs a port: \"host:port\""))?;
        let port = port
            .parse()
            .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
        (host, port).to_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Addrs::Ready(vec![SocketAddr::new(ip, port)]));
        }
        Ok(Addrs::Name(host.to_owned(), port))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn to_addrs(&self) -> io::Result<Addrs> {
        self.as_str().to_addrs()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (**self).to_addrs()
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The blocking lookup itself (`getaddrinfo` through std).
fn lookup_now(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

/// Resolves `addr` on the calling thread: what the synchronous
/// constructors do (see [`ToSocketAddrs`]).
pub(crate) fn resolve_here(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match sealed::Sealed::to_addrs(addr)? {
        Addrs::Ready(addrs) => Ok(addrs),
        Addrs::Name(host, port) => lookup_now(&host, port),
    }
}

/// Resolves `addr`, looking a host name up on a blocking thread (see
/// [`ToSocketAddrs`]).
pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match sealed::Sealed::to_addrs(addr)? {
        Addrs::Ready(addrs) => Ok(addrs),
        Addrs::Name(host, port) => {
            let reactor = crate::driver::Handle::try_current()?;
            let (completer, completion) = reactor.notifier().completion();
            reactor.run_blocking(Box::new(move || completer.complete(lookup_now(&host, port))));
            completion.await.unwrap_or_else(|_| {
                Err(io::Error::other(
                    "weft: the name lookup's thread ended without an answer",
                ))
            })
        }
    }
}

/// Looks `host` up (a `"name:port"`, a `(name, port)`, or any address
/// [`ToSocketAddrs`] takes), without blocking the loop: as Tokio's
/// `lookup_host`.
///
/// # Errors
///
/// As the system's resolver reports them (an unknown name, no network), an
/// address without a port, or no runtime on this thread.
///
/// ```
/// # weft_io::Driver::new()?.block_on(async {
/// let addrs: Vec<_> = weft_io::net::lookup_host("localhost:80").await?.collect();
/// assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<impl Iterator<Item = SocketAddr>> {
    resolve(&host).await.map(Vec::into_iter)
}

/// Tries `f` on each address in turn; returns the first success, or the
/// last error.
pub(crate) fn first_that_works<T>(
    addrs: Vec<SocketAddr>,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addrs {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| invalid("the address resolved to nothing")))
}

/// Resolves `addr` on this thread and tries `f` on each address in turn.
pub(crate) fn each_addr<T>(
    addr: &(impl ToSocketAddrs + ?Sized),
    f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    first_that_works(resolve_here(addr)?, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// A reactor whose blocking jobs are counted, then run on a thread of
    /// their own (or dropped unrun, with `run: false`).
    fn counting(run: bool) -> (Driver, Arc<AtomicUsize>) {
        let driver = Driver::new().unwrap();
        let jobs = Arc::new(AtomicUsize::new(0));
        let count = jobs.clone();
        driver.handle().set_blocking_runner(Box::new(move |job| {
            count.fetch_add(1, SeqCst);
            if run {
                std::thread::spawn(job);
            }
        }));
        (driver, jobs)
    }

    #[test]
    fn numeric_addresses_need_no_lookup() {
        let (mut driver, jobs) = counting(true);
        driver.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            TcpStream::connect(addr).await.unwrap();
            TcpStream::connect(addr.to_string()).await.unwrap();
            TcpStream::connect(("127.0.0.1", addr.port())).await.unwrap();
            TcpStream::connect((addr.ip(), addr.port())).await.unwrap();
            TcpStream::connect(&[addr][..]).await.unwrap();
        });
        assert_eq!(jobs.load(SeqCst), 0, "a numeric address went to the blocking runner");
    }

    #[test]
    fn a_host_name_is_looked_up_off_the_loop() {
        let (mut driver, jobs) = counting(true);
        driver.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let stream = TcpStream::connect(format!("localhost:{port}")).await.unwrap();
            assert_eq!(stream.peer_addr().unwrap().port(), port);
            assert_eq!(jobs.load(SeqCst), 1);
            let found: Vec<_> = lookup_host(("localhost", port)).await.unwrap().collect();
            assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback() && a.port() == port));
        });
        assert_eq!(jobs.load(SeqCst), 2);
    }

    #[test]
    fn a_lookup_whose_job_is_dropped_fails_instead_of_hanging() {
        let (mut driver, _) = counting(false);
        let err = driver.block_on(TcpStream::connect("localhost:1")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            for (bad, says) in [
                ("localhost", "port"),
                ("localhost:http", "port"),
                ("localhost:70000", "port"),
            ] {
                let err = TcpStream::connect(bad).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
                assert!(err.to_string().contains(says), "{bad}: {err}");
            }
        });
    }

    #[test]
    fn synchronous_binds_take_names_too() {
        let mut driver = Driver::new().unwrap();
        driver.block_on(async {
            let listener = TcpListener::bind("localhost:0").unwrap();
            assert!(listener.local_addr().unwrap().ip().is_loopback());
        });
    }
}
