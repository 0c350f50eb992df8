//! CPU placement and accounting shared by the suites that load a server
//! from another process (`echo`, `http`): which CPUs this process may use,
//! pinning a thread (and the threads it starts later) to one, and the CPU
//! time the process has used.

/// This process's resource usage so far, or `None` if `getrusage` fails.
fn usage() -> Option<libc::rusage> {
    // SAFETY: an all-zero `rusage` is a valid value of a plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` only writes the struct it is given.
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0).then_some(usage)
}

/// CPU time (user and system) this process has used, in nanoseconds.
pub(crate) fn process_cpu_ns() -> f64 {
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    usage().map_or(f64::NAN, |u| ns(u.ru_utime) + ns(u.ru_stime))
}

/// How many times this process's threads have gone to sleep so far
/// (voluntary context switches: a wait in `epoll_wait`, on a futex, in
/// `nanosleep`). Per message, it counts the wakeups a server pays for.
pub(crate) fn process_sleeps() -> f64 {
    usage().map_or(f64::NAN, |u| u.ru_nvcsw as f64)
}

/// The CPUs this thread may run on.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is
    // the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `sched_getaffinity` writes at most `size_of::<cpu_set_t>()`
    // bytes into `set`, which is that large.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(format!("sched_getaffinity: {}", std::io::Error::last_os_error()));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below `CPU_SETSIZE`, the size of the set in bits.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`. Threads it starts later inherit that.
pub(crate) fn pin_this_thread(cpu: usize) -> Result<(), String> {
    // SAFETY: as in `allowed_cpus`: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from `allowed_cpus`, so it is below `CPU_SETSIZE`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `sched_setaffinity` reads `size_of::<cpu_set_t>()` bytes of
    // `set`; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(format!("sched_setaffinity: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
