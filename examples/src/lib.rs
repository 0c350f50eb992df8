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
