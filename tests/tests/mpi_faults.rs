//! The MPI halves of the fault-injection and composition tests (issue 22.4
//! and 22.5): each runs one scenario of the `mpi-faults` rank program
//! (src/bin/mpi_faults.rs, whose doc says what each checks), as a
//! singleton or under `mpirun`, bounded in time. Built with
//! `--features mpi`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one scenario may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `scenario` on `ranks` ranks (a singleton if 1) and returns its
/// output, failing the test if it outlives `LIMIT`.
fn launch(scenario: &str, ranks: usize) -> Output {
    launch_with(scenario, ranks, &[])
}

/// [`launch`] with extra `mpirun` arguments (a transport).
fn launch_with(scenario: &str, ranks: usize, mpirun_args: &[&str]) -> Output {
    let program = env!("CARGO_BIN_EXE_mpi-faults");
    let mut command = if ranks == 1 {
        Command::new(program)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["-n", &ranks.to_string(), "--oversubscribe"]);
        c.args(mpirun_args).arg(program);
        c
    };
    let mut child = command
        .arg(scenario)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {scenario} ({e}): run scripts/setup.sh to install Open MPI"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{scenario} on {ranks} ranks hung for {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs a singleton scenario and asserts it reported success.
fn singleton(scenario: &str) {
    let out = launch(scenario, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("ok {scenario} rank 0\n")),
        "{scenario} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn receives_dropped_in_a_race_lose_no_message() {
    singleton("race-recv");
}

/// Runs a scenario on `ranks` ranks and asserts every rank reported
/// success.
fn on_ranks(scenario: &str, ranks: usize, mpirun_args: &[&str]) {
    let out = launch_with(scenario, ranks, mpirun_args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for rank in 0..ranks {
        assert!(
            out.status.success() && stdout.contains(&format!("ok {scenario} rank {rank}\n")),
            "{scenario} failed on rank {rank} ({})\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_new_receive_each_round_of_a_select_loop_loses_no_message() {
    on_ranks("select-recv", 2, &[]);
}

/// Over TCP a large message takes many polls to receive, so receives are
/// dropped while MPI still receives their message (the placeholder path).
#[test]
fn a_new_receive_each_round_of_a_select_loop_loses_no_message_over_tcp() {
    on_ranks("select-recv", 2, &["--mca", "btl", "tcp,self"]);
}

#[test]
fn shutting_down_with_receives_and_a_probe_pending() {
    singleton("shutdown-pending");
}

#[test]
fn a_send_promise_completed_after_its_runtime_shut_down() {
    singleton("promise-shutdown");
}

#[test]
fn a_rank_dying_mid_collective_ends_the_job_with_an_error() {
    let start = Instant::now();
    let out = launch("die-mid-collective", 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the job cannot succeed with a dead rank:\n{stdout}"
    );
    assert!(
        !stdout.contains("ok die-mid-collective"),
        "no rank may finish the loop:\n{stdout}"
    );
    println!("a dead rank ended the job in {:.1?} ({})", start.elapsed(), out.status);
}
