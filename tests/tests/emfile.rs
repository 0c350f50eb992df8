//! Accepting while the process is out of file descriptors.
//!
//! The test runs itself again as a child process (so that lowering its
//! descriptor limit harms nobody else): the child binds a listener, uses up
//! every descriptor it may open, and runs an accept loop that backs off on
//! `EMFILE`, as Weft's examples do. The parent connects, and the child frees
//! its descriptors after half a second. The accept must fail with `EMFILE`
//! (not crash), the loop must not spin, and the connection must then be
//! accepted and served.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "WEFT_EMFILE_CHILD";
const TEST: &str = "accept_under_emfile_fails_backs_off_and_recovers";

#[test]
fn accept_under_emfile_fails_backs_off_and_recovers() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the child reports its address").unwrap();
        // libtest may print "test <name> ... " on the same line first.
        if let Some((_, addr)) = line.split_once("READY ") {
            break addr.to_owned();
        }
    };
    let mut client = std::net::TcpStream::connect(addr.trim()).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    client.write_all(b"hi").unwrap();
    let mut reply = [0u8; 2];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ok", "served once descriptors were free again");
    let report: Vec<String> = lines.map_while(Result::ok).filter(|l| l.contains("REPORT")).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {report:?}");
    assert_eq!(report.len(), 1, "{report:?}");
    println!("{}", report[0]);
}

fn child() {
    let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let listener = rt.block_on(async { weft::net::TcpListener::bind("127.0.0.1:0").unwrap() });
    let addr = listener.local_addr().unwrap();
    // Use up every descriptor: a low limit first, so "every" is few.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = 256.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut hoard = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(err) if err.raw_os_error() == Some(libc::EMFILE) => break,
            Err(err) => panic!("unexpected error while using up descriptors: {err}"),
        }
    }
    println!("READY {addr}");
    std::io::stdout().flush().unwrap();
    let start = Instant::now();
    let (attempts, emfile) = rt.block_on(async move {
        weft::spawn(async move {
            weft::time::sleep(Duration::from_millis(500)).await;
            drop(hoard);
        });
        let (mut attempts, mut emfile) = (0u32, 0u32);
        loop {
            attempts += 1;
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    use weft::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 2];
                    stream.read_exact(&mut buf).await.unwrap();
                    stream.write_all(b"ok").await.unwrap();
                    break (attempts, emfile);
                }
                Err(err) if err.raw_os_error() == Some(libc::EMFILE) => {
                    emfile += 1;
                    weft::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("accept failed with an unexpected error: {err}"),
            }
        }
    });
    let elapsed = start.elapsed();
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let cpu = Duration::from_micros(
        (usage.ru_utime.tv_sec * 1_000_000
            + usage.ru_utime.tv_usec
            + usage.ru_stime.tv_sec * 1_000_000
            + usage.ru_stime.tv_usec) as u64,
    );
    println!("REPORT attempts={attempts} emfile={emfile} elapsed={elapsed:?} cpu={cpu:?}");
    assert!(emfile >= 1, "accept never saw EMFILE");
    assert!(attempts < 200, "the accept loop spun: {attempts} attempts");
    assert!(
        cpu < elapsed / 2 + Duration::from_millis(100),
        "the process burned {cpu:?} of CPU in {elapsed:?}"
    );
}
