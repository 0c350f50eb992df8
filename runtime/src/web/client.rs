//! hyper-util's pooled client on Weft: a connector and a preset builder.

use crate::hyper::{WeftExecutor, WeftTimer};
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use weft_io::net::TcpStream;

/// hyper-util's client builder with Weft's executor (for the connection
/// tasks and HTTP/2's) and timer (for the pool's idle timeout and hyper's
/// timeouts) set. Build it with a [`WeftConnector`]:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use http_body_util::Empty;
///
/// let client = weft::web::client_builder().build::<_, Empty<Bytes>>(weft::web::WeftConnector::new());
/// let response = client.get("http://127.0.0.1:3000/".parse()?).await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
///
/// The client keeps idle connections for reuse (90 s unless
/// `pool_idle_timeout` says otherwise), retries a request that a pooled
/// connection dropped before sending it, and with `http2_only(true)`
/// carries every request to a host over one multiplexed HTTP/2 connection.
/// It must be used inside a Weft runtime (it spawns its connections' tasks
/// there).
pub fn client_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = hyper_util::client::legacy::Builder::new(WeftExecutor::new());
    builder.timer(WeftTimer::new()).pool_timer(WeftTimer::new());
    builder
}

/// A connector for hyper-util's client (`tower::Service<Uri>`): resolves
/// the URI's host on Weft's blocking pool (an IP address needs no lookup),
/// connects with Weft's [`TcpStream`], trying each address in turn.
///
/// Plain TCP: `http://` URIs (or none). For `https://`, wrap the
/// connection in a TLS stream (a `futures-io` one through
/// [`HyperIo`](crate::hyper::HyperIo)) in a connector of your own.
#[derive(Clone, Debug)]
pub struct WeftConnector {
    connect_timeout: Option<Duration>,
    nodelay: bool,
}

impl Default for WeftConnector {
    fn default() -> WeftConnector {
        WeftConnector::new()
    }
}

impl WeftConnector {
    /// A connector with no connect timeout and `TCP_NODELAY` on.
    pub fn new() -> WeftConnector {
        WeftConnector {
            connect_timeout: None,
            nodelay: true,
        }
    }

    /// Gives up connecting after `timeout` (the lookup is not counted),
    /// with `ErrorKind::TimedOut`. A name with several addresses gives each
    /// an equal share, so one address that never answers leaves time for
    /// the next. `None`: wait as long as the system does.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> WeftConnector {
        self.connect_timeout = timeout.into();
        self
    }

    /// Sets `TCP_NODELAY` on each connection (on by default: requests and
    /// small responses go out at once).
    pub fn nodelay(mut self, nodelay: bool) -> WeftConnector {
        self.nodelay = nodelay;
        self
    }

    async fn connect(self, uri: Uri) -> io::Result<WeftConnection> {
        let (host, port) = host_and_port(&uri)?;
        let addrs: Vec<SocketAddr> = weft_io::net::lookup_host((host, port)).await?.collect();
        let deadline = self.connect_timeout.map(|timeout| Instant::now() + timeout);
        let mut last_error = None;
        for (i, addr) in addrs.iter().enumerate() {
            let attempt = match deadline {
                None => TcpStream::connect(*addr).await,
                Some(deadline) => {
                    // An equal share of what is left for each address left.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let share = left / (addrs.len() - i) as u32;
                    TcpStream::connect_timeout(*addr, share).await
                }
            };
            match attempt {
                Ok(stream) => {
                    stream.set_nodelay(self.nodelay)?;
                    return Ok(WeftConnection { stream });
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address")))
    }
}

/// The host (without an IPv6 literal's brackets) and port of a URI.
fn host_and_port(uri: &Uri) -> io::Result<(String, u16)> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(other) => {
            return Err(invalid(format!(
                "WeftConnector speaks plain TCP, not `{other}://`: wrap its connections in TLS in a connector of your own"
            )));
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("the URI `{uri}` has no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), uri.port_u16().unwrap_or(80)))
}

impl tower_service::Service<Uri> for WeftConnector {
    type Response = WeftConnection;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        Connecting(Box::pin(self.clone().connect(uri)))
    }
}

/// A connection being made by [`WeftConnector`].
#[must_use = "futures do nothing unless awaited"]
pub struct Connecting(Pin<Box<dyn Future<Output = io::Result<WeftConnection>> + Send>>);

impl Future for Connecting {
    type Output = io::Result<WeftConnection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

/// A connection made by [`WeftConnector`]: Weft's [`TcpStream`], with
/// hyper-util's `Connection` (what the pool needs to know about it).
#[derive(Debug)]
pub struct WeftConnection {
    stream: TcpStream,
}

impl WeftConnection {
    /// The stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The stream, consuming the connection.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl Connection for WeftConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for WeftConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        hyper::rt::Read::poll_read(Pin::new(&mut self.stream), cx, buf)
    }
}

impl hyper::rt::Write for WeftConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.stream), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.stream), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.stream)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.stream), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.stream), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_give_their_host_and_port() {
        let parse = |uri: &str| host_and_port(&uri.parse().unwrap());
        assert_eq!(parse("http://example.test/a").unwrap(), ("example.test".to_owned(), 80));
        assert_eq!(parse("http://127.0.0.1:8080/").unwrap(), ("127.0.0.1".to_owned(), 8080));
        assert_eq!(parse("http://[::1]:9000/").unwrap(), ("::1".to_owned(), 9000));
        let https = parse("https://example.test/").unwrap_err();
        assert_eq!(https.kind(), io::ErrorKind::InvalidInput);
        assert!(https.to_string().contains("TLS"), "{https}");
        assert_eq!(parse("/only/a/path").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
