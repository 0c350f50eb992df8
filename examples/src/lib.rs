//! Helpers shared by the example servers: command-line handling and the
//! accept back-off every server needs.

use std::io;
use std::time::Duration;

/// How long a server waits after a failed `accept` before trying again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Logs a failed accept and sleeps a little: retrying at once would spin,
/// since a connection that could not be accepted (out of file descriptors,
/// `EMFILE`/`ENFILE`) keeps the listener ready.
pub async fn accept_backoff(server: &str, err: &io::Error) {
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        eprintln!("{server}: accept: out of file descriptors ({err}); retrying in {ACCEPT_BACKOFF:?}");
    } else {
        eprintln!("{server}: accept: {err}; retrying in {ACCEPT_BACKOFF:?}");
    }
    weft::time::sleep(ACCEPT_BACKOFF).await;
}

/// The HTTP examples' entry: with `--demo`, spawns `serve` on a free
/// loopback port and returns what `demo` (given that port's address)
/// returns; otherwise serves on `127.0.0.1:PORT` (the first argument, or
/// `default_port`) until Ctrl-C.
pub async fn serve_or_demo<S, D>(
    name: &str,
    default_port: u16,
    serve: impl FnOnce(weft::net::TcpListener) -> S,
    demo: impl FnOnce(std::net::SocketAddr) -> D,
) -> io::Result<()>
where
    S: std::future::Future<Output = ()> + Send + 'static,
    D: std::future::Future<Output = io::Result<()>>,
{
    let is_demo = std::env::args().nth(1).as_deref() == Some("--demo");
    let port = if is_demo { 0 } else { port_from_args(name, default_port) };
    let listener = weft::net::TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    if is_demo {
        weft::spawn(serve(listener));
        return demo(addr).await;
    }
    println!("{name}: listening on http://{addr} (Ctrl-C to stop)");
    let serving = std::pin::pin!(serve(listener));
    futures::future::select(std::pin::pin!(weft::signal::ctrl_c()), serving).await;
    println!("{name}: Ctrl-C, stopping");
    Ok(())
}

/// A response's body, read whole, as text.
pub async fn body_text(response: hyper::Response<hyper::body::Incoming>) -> io::Result<String> {
    use http_body_util::BodyExt;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The port from the first argument, or `default`; exits with a usage
/// message (status 2) on anything else, and prints it (status 0) for
/// `--help`.
pub fn port_from_args(name: &str, default: u16) -> u16 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = format!("usage: {name} [PORT]    (listens on 127.0.0.1:PORT; default PORT {default})");
    match args.as_slice() {
        [] => default,
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{usage}");
            std::process::exit(0)
        }
        [port] => port.parse().unwrap_or_else(|_| {
            eprintln!("{name}: not a port number: {port:?}\n{usage}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("{name}: too many arguments\n{usage}");
            std::process::exit(2)
        }
    }
}

/// Opens GPU 0 for the `gpu_*` examples (in the wake mode `WEFT_GPU_WAKE`
/// names, `poll` or `host`, as for every `Gpu`). `None` (after printing
/// `skipped: no CUDA driver`) on a machine without a CUDA driver; exits
/// with an error message if the driver refuses.
pub fn open_gpu(example: &str) -> Option<weft::gpu::Gpu> {
    use weft::gpu::{Gpu, GpuError};
    match Gpu::open(0) {
        Ok(gpu) => {
            let name = gpu.name().unwrap_or_else(|_| "?".into());
            println!("{example}: GPU 0 ({name}), completions by {:?}", gpu.wake_mode());
            Some(gpu)
        }
        Err(GpuError::NoDriver) => {
            println!("skipped: no CUDA driver");
            None
        }
        Err(err) => {
            eprintln!("{example}: {err}");
            std::process::exit(1);
        }
    }
}

pub mod latency;
