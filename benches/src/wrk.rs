//! The load client of the `http` suite: [wrk](https://github.com/wg/wrk)
//! (Debian's package, 4.1.0), run as a child process, installed with
//! `apt-get` when it is missing.
//!
//! wrk's human-readable summary is never scraped: a Lua script (its
//! [`SCRIPT`], written to a temporary file and passed with `-s`) prints the
//! numbers from wrk's `done(summary, latency, requests)` hook as one
//! `@wrk <key> <value>` line each, and [`Run::parse`] reads those lines back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `done` hook wrk calls once its run is over: every number this suite
/// uses, one `@wrk <key> <value>` line each. wrk's latencies and durations
/// are in microseconds.
const SCRIPT: &str = r#"-- Written by weft-benches (suite `http`): wrk's summary as key/value lines.
done = function(summary, latency, requests)
   local e = summary.errors
   local out = {
      {"requests", summary.requests},
      {"duration_us", summary.duration},
      {"bytes", summary.bytes},
      {"errors_connect", e.connect},
      {"errors_read", e.read},
      {"errors_write", e.write},
      {"errors_status", e.status},
      {"errors_timeout", e.timeout},
      {"latency_mean_us", latency.mean},
      {"latency_p50_us", latency:percentile(50)},
      {"latency_p90_us", latency:percentile(90)},
      {"latency_p99_us", latency:percentile(99)},
      {"latency_p999_us", latency:percentile(99.9)},
   }
   for _, kv in ipairs(out) do
      io.write(string.format("@wrk %s %.3f\n", kv[1], kv[2]))
   end
end
"#;

/// The keys [`SCRIPT`] prints, all of which a run must report.
const KEYS: [&str; 13] = [
    "requests",
    "duration_us",
    "bytes",
    "errors_connect",
    "errors_read",
    "errors_write",
    "errors_status",
    "errors_timeout",
    "latency_mean_us",
    "latency_p50_us",
    "latency_p90_us",
    "latency_p99_us",
    "latency_p999_us",
];

/// What one wrk run measured, as its `done` hook reported it.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Responses received (every one of them, 2xx or not).
    pub(crate) requests: f64,
    /// The run's length in microseconds, as wrk timed it.
    pub(crate) duration_us: f64,
    /// Socket errors (connect, read, write, timeout) and non-2xx/3xx
    /// responses (wrk's `status`), by kind.
    pub(crate) errors: [(&'static str, f64); 5],
    /// Latency percentiles p50, p90, p99 and p99.9, in microseconds.
    pub(crate) latency_us: [f64; 4],
    /// Mean latency in microseconds.
    pub(crate) latency_mean_us: f64,
}

impl Run {
    /// Requests per second over the run.
    pub(crate) fn requests_per_s(&self) -> f64 {
        self.requests / (self.duration_us / 1e6)
    }

    /// The number of errors of every kind.
    pub(crate) fn error_count(&self) -> f64 {
        self.errors.iter().map(|&(_, n)| n).sum()
    }

    /// Reads the `@wrk` lines of wrk's standard output.
    fn parse(stdout: &str) -> Result<Run, String> {
        let values: HashMap<&str, f64> = stdout
            .lines()
            .filter_map(|line| line.strip_prefix("@wrk "))
            .filter_map(|kv| {
                let (key, value) = kv.split_once(' ')?;
                Some((key, value.trim().parse().ok()?))
            })
            .collect();
        if let Some(missing) = KEYS.iter().find(|key| !values.contains_key(*key)) {
            return Err(format!("wrk's script printed no {missing:?} line"));
        }
        let get = |key: &str| values[key];
        Ok(Run {
            requests: get("requests"),
            duration_us: get("duration_us"),
            errors: [
                ("connect", get("errors_connect")),
                ("read", get("errors_read")),
                ("write", get("errors_write")),
                ("timeout", get("errors_timeout")),
                ("non-2xx/3xx", get("errors_status")),
            ],
            latency_us: [
                get("latency_p50_us"),
                get("latency_p90_us"),
                get("latency_p99_us"),
                get("latency_p999_us"),
            ],
            latency_mean_us: get("latency_mean_us"),
        })
    }
}

/// A wrk ready to run: the binary found (or installed), the script
/// written, and the CPU it runs on.
#[derive(Debug)]
pub(crate) struct Wrk {
    script: PathBuf,
    /// `Some(cpu)`: run under `taskset -c cpu`.
    cpu: Option<usize>,
}

impl Wrk {
    /// Finds wrk, installing Debian's package when it is not on `PATH`,
    /// and writes the script. `cpu`: pin wrk there (with `taskset`).
    ///
    /// # Errors
    ///
    /// Why wrk could not be installed, or the script not written.
    pub(crate) fn new(cpu: Option<usize>) -> Result<Wrk, String> {
        if !on_path("wrk") {
            install()?;
        }
        let script = std::env::temp_dir().join(format!("weft-benches-http-{}.lua", std::process::id()));
        std::fs::write(&script, SCRIPT).map_err(|err| format!("could not write {}: {err}", script.display()))?;
        Ok(Wrk { script, cpu })
    }

    /// Runs `wrk -t1 -c<conns> -d<secs>s --latency` against `http://addr/`.
    ///
    /// # Errors
    ///
    /// If wrk cannot start or fails, its script reports nothing, or the run
    /// saw any error or non-2xx/3xx response (the message names them and
    /// carries wrk's output).
    pub(crate) fn run(&self, addr: SocketAddr, conns: usize, secs: u32) -> Result<Run, String> {
        let mut command = match self.cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string(), "wrk"]);
                taskset
            }
            None => Command::new("wrk"),
        };
        command
            .arg("-t1")
            .arg(format!("-c{conns}"))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .arg("-s")
            .arg(&self.script)
            .arg(format!("http://{addr}/"));
        let output = command.output().map_err(|err| format!("could not start wrk: {err}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let context = || format!("{command:?}\n--- stdout\n{stdout}--- stderr\n{stderr}");
        if !output.status.success() {
            return Err(format!("wrk failed ({}): {}", output.status, context()));
        }
        let run = Run::parse(&stdout).map_err(|err| format!("{err}: {}", context()))?;
        if run.error_count() > 0.0 || run.requests == 0.0 {
            let errors: Vec<String> = run
                .errors
                .iter()
                .filter(|&&(_, n)| n > 0.0)
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            return Err(format!(
                "wrk saw errors ({}) in {} requests: {}",
                errors.join(", "),
                run.requests,
                context()
            ));
        }
        Ok(run)
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

/// Installs Debian's wrk with apt-get (needs root).
fn install() -> Result<(), String> {
    eprintln!("wrk is not on PATH: installing Debian's package (apt-get install wrk)");
    let apt = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|err| format!("could not run apt-get: {err}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`apt-get {}` failed ({}); install wrk by hand (as root: apt-get install wrk):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    apt(&["update"])?;
    apt(&["install", "-y", "--no-install-recommends", "wrk"])?;
    if on_path("wrk") {
        Ok(())
    } else {
        Err("apt-get installed wrk, but it is still not on PATH".to_owned())
    }
}

/// Whether an executable file `name` is in a directory on `PATH`.
pub(crate) fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_lines_and_ignores_wrks_own() {
        let mut stdout = String::from("Running 2s test @ http://127.0.0.1:1/\n  Latency 1.00ms\n");
        for key in KEYS {
            let value = match key {
                "requests" => 5000.0,
                "duration_us" => 2_000_000.0,
                "errors_read" => 2.0,
                "latency_p99_us" => 900.5,
                _ => 1.0,
            };
            stdout.push_str(&format!("@wrk {key} {value:.3}\n"));
        }
        let run = Run::parse(&stdout).expect("every key is there");
        assert_eq!(run.requests_per_s(), 2500.0);
        assert_eq!(run.latency_us[2], 900.5);
        // 1 each of connect, write, timeout and status, and 2 read errors.
        assert_eq!(run.error_count(), 6.0);
        let missing = stdout.replace("@wrk bytes", "bytes");
        assert!(Run::parse(&missing).unwrap_err().contains("\"bytes\""));
    }
}
