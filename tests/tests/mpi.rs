//! weft-mpi on 1 to 3 ranks: each test runs one scenario of the
//! `mpi-scenarios` rank program (src/bin/mpi_scenarios.rs, src/mpi/) under
//! `mpirun` and checks that every rank finished it. Multi-rank scenarios
//! run over shared memory (Open MPI's default between ranks of one host)
//! and over the TCP transport (`--mca btl tcp,self`, as between hosts).
//! Built with `--features mpi` (scripts/test.sh does), which needs Open
//! MPI installed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `mpirun` may take before the test kills it and fails.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `scenario` on `ranks` ranks (a singleton if 1) and asserts that
/// every rank reported success.
fn run(scenario: &str, ranks: usize) {
    run_with(scenario, ranks, &[]);
}

/// [`run`] over Open MPI's TCP transport: the ranks exchange messages
/// through sockets (loopback here), as ranks on different hosts do.
fn run_tcp(scenario: &str, ranks: usize) {
    run_with(scenario, ranks, &["--mca", "btl", "tcp,self"]);
}

fn run_with(scenario: &str, ranks: usize, mpirun_args: &[&str]) {
    let stdout = launch(scenario, ranks, mpirun_args, true).stdout;
    for rank in 0..ranks {
        assert!(
            stdout.contains(&format!("ok {scenario} rank {rank}\n")),
            "rank {rank} did not finish {scenario}:\n{stdout}"
        );
    }
}

/// What a run printed.
struct Printed {
    stdout: String,
    stderr: String,
}

/// Starts the scenario (with extra `mpirun` arguments), waits at most
/// `LIMIT`, and returns what it printed; `must_succeed` also asserts a
/// zero exit status.
fn launch(scenario: &str, ranks: usize, mpirun_args: &[&str], must_succeed: bool) -> Printed {
    let program = env!("CARGO_BIN_EXE_mpi-scenarios");
    let mut command = if ranks == 1 {
        Command::new(program)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["-n", &ranks.to_string(), "--oversubscribe"]);
        c.args(mpirun_args);
        c.arg(program);
        c
    };
    command
        .arg(scenario)
        // mpirun refuses root without these (CI runs as root).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mpirun ({e}): run scripts/setup.sh --mpi to install Open MPI"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
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
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        status.success() || !must_succeed,
        "{scenario} on {ranks} ranks failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    Printed { stdout, stderr }
}

#[test]
fn point_to_point_typed_owned_and_probed() {
    run("point_to_point", 2);
    run("point_to_point", 3);
    run_tcp("point_to_point", 2);
}

#[test]
fn any_source_receives_from_every_rank() {
    run("any_source", 2);
    run("any_source", 3);
    run_tcp("any_source", 3);
}

#[test]
fn a_message_too_long_for_the_buffer_is_an_error_not_a_crash() {
    run("truncate", 2);
    run_tcp("truncate", 2);
}

#[test]
fn a_cancelled_receive_takes_no_message() {
    run("cancel", 2);
}

#[test]
fn ten_thousand_messages_in_flight() {
    run("many", 2);
}

#[test]
fn collectives_on_two_and_three_ranks_and_a_singleton() {
    run("collectives", 1);
    run("collectives", 2);
    run("collectives", 3);
    run_tcp("collectives", 3);
}

#[test]
fn bad_ranks_tags_and_lengths_are_errors() {
    run("bad_input", 1);
    run("bad_input", 3);
}

#[test]
fn pool_map_submit_and_job_errors() {
    run("pool_map", 1);
    run("pool_map", 2);
    run("pool_map", 3);
    run_tcp("pool_map", 3);
}

#[test]
fn dropping_the_pool_fails_queued_and_running_jobs_at_once() {
    run("pool_drop", 1);
    run("pool_drop", 2);
    run("pool_drop", 3);
}

#[test]
fn a_pool_worker_runs_one_job_at_a_time_unless_asked() {
    run("pool_concurrency", 1);
    run("pool_concurrency", 2);
    run("pool_concurrency", 3);
}

#[test]
fn a_job_registered_with_other_types_on_a_worker_fails_clearly() {
    run("pool_mismatch", 2);
    run("pool_mismatch", 3);
}

#[test]
fn rank_0_leaving_with_an_error_and_a_pool_alive_ends_every_rank() {
    for ranks in [2, 3] {
        let start = Instant::now();
        let printed = launch("pool_error_exit", ranks, &[], false);
        for rank in 1..ranks {
            assert!(
                printed.stdout.contains(&format!("ok pool_error_exit rank {rank}\n")),
                "worker {rank} was not released:\n{}",
                printed.stdout
            );
        }
        assert!(
            printed.stderr.contains("rank 0 gives up"),
            "rank 0's error was not printed:\n{}",
            printed.stderr
        );
        // Not a timing test: a hang would take LIMIT.
        assert!(start.elapsed() < LIMIT / 2, "took {:?}", start.elapsed());
    }
}

#[test]
fn mpi4py_order_post_receive_post_send_wait_send_wait_receive() {
    run("mpi4py_order", 2);
    run("mpi4py_order", 3);
    run_tcp("mpi4py_order", 2);
}

#[test]
fn a_send_after_an_idle_gap_wakes_a_receiver_that_polls_an_hour_apart() {
    run("rung_after_gap", 1);
    run("rung_after_gap", 2);
    run("rung_after_gap", 3);
    run_tcp("rung_after_gap", 2);
}

#[test]
fn a_collective_progresses_while_its_task_computes() {
    run("allreduce_overlap", 1);
    run("allreduce_overlap", 2);
    run("allreduce_overlap", 3);
}

#[test]
fn wait_all_and_wait_any_over_sends_receives_and_collectives() {
    run("wait_mix", 1);
    run("wait_mix", 2);
    run("wait_mix", 3);
}

#[test]
fn sendrecv_with_proc_null_at_the_edges() {
    run("sendrecv_shift", 1);
    run("sendrecv_shift", 2);
    run("sendrecv_shift", 3);
    run_tcp("sendrecv_shift", 3);
}

#[test]
fn gatherv_all_gatherv_scatterv_with_varying_lengths() {
    run("varying", 1);
    run("varying", 2);
    run("varying", 3);
}

#[test]
fn cartesian_grids_and_shifts() {
    run("cartesian", 1);
    run("cartesian", 2);
    run("cartesian", 3);
}

#[test]
fn object_messages_point_to_point_and_broadcast() {
    run("objects", 1);
    run("objects", 2);
    run("objects", 3);
    run_tcp("objects", 2);
}

#[test]
fn a_worker_that_dies_mid_map_fails_its_jobs_and_the_pool_goes_on() {
    // `mpirun` would otherwise kill rank 0 along with the dead rank; the
    // job's exit status reports rank 2's death, so only the output counts.
    let stdout = launch("pool_death", 3, &["--mca", "orte_abort_on_non_zero_status", "0"], false).stdout;
    assert!(
        stdout.contains("ok pool_death rank 0\n"),
        "rank 0 did not finish:\n{stdout}"
    );
    assert!(
        stdout.contains("ok pool_death rank 1\n"),
        "rank 1 was not released:\n{stdout}"
    );
}

#[test]
fn no_mpi_call_on_a_communicator_freed_after_a_pool() {
    run("freed_comm_after_pool", 1);
    run("freed_comm_after_pool", 2);
    run_tcp("freed_comm_after_pool", 2);
}

#[test]
fn no_mpi_call_on_a_communicator_freed_after_a_dropped_receive() {
    run("freed_comm_after_dropped_recv", 1);
    run("freed_comm_after_dropped_recv", 2);
    run_tcp("freed_comm_after_dropped_recv", 2);
}

#[test]
fn collectives_dropped_at_every_point_leave_the_ranks_in_step() {
    run("cancelled_collectives", 1);
    run("cancelled_collectives", 2);
    run("cancelled_collectives", 3);
    run_tcp("cancelled_collectives", 3);
}

#[test]
fn collectives_post_in_the_order_they_were_started() {
    run("collective_order", 2);
    run("collective_order", 3);
    run_tcp("collective_order", 2);
}

#[test]
fn ranks_that_disagree_on_a_collective_all_fail_and_stay_in_step() {
    run("disagreeing_collectives", 2);
    run("disagreeing_collectives", 3);
    run_tcp("disagreeing_collectives", 3);
}

#[test]
fn agreements_run_point_to_point_on_every_size_and_stay_apart() {
    for ranks in 1..=5 {
        run("agreement_rounds", ranks);
    }
    run_tcp("agreement_rounds", 3);
}

#[test]
fn a_collective_right_after_a_duplicate_pairs_with_its_own_on_every_rank() {
    for ranks in [1, 2, 3, 5] {
        run("idup_then_collective", ranks);
    }
    run_tcp("idup_then_collective", 3);
}

#[test]
fn communicators_dropped_with_units_in_flight_leave_the_world_in_step() {
    for ranks in [1, 2, 3, 5] {
        run("comm_dropped_in_flight", ranks);
    }
    run_tcp("comm_dropped_in_flight", 3);
}

#[test]
fn a_rank_that_drops_a_duplicate_and_leaves_still_finalizes() {
    for ranks in [1, 2, 3] {
        run("dropped_duplicate_at_exit", ranks);
    }
}

#[test]
fn agreement_tags_wrap_past_32768_units_and_stay_paired() {
    for ranks in [1, 2, 3, 5] {
        run("tag_wrap", ranks);
    }
    run_tcp("tag_wrap", 3);
}

#[test]
fn agreements_in_flight_when_a_runtime_shuts_down_run_on_in_the_next() {
    for ranks in [1, 2, 3, 5] {
        run("runtime_dropped_mid_agreement", ranks);
    }
}

#[test]
fn user_receives_from_any_source_with_any_tag_never_see_an_agreement() {
    for ranks in [1, 2, 3, 5] {
        run("user_any_tag", ranks);
    }
    run_tcp("user_any_tag", 4);
}

#[test]
fn a_rank_that_dies_mid_agreement_fails_no_survivor_by_a_hang() {
    for (ranks, dead) in [(2, 0), (3, 0), (3, 1), (3, 2), (4, 3), (5, 0), (5, 1), (5, 4)] {
        let scenario = format!("death_mid_agreement_{dead}");
        let printed = launch(
            &scenario,
            ranks,
            &["--mca", "orte_abort_on_non_zero_status", "0"],
            false,
        );
        for rank in (0..ranks).filter(|&r| r != dead) {
            assert!(
                printed.stdout.contains(&format!("ok {scenario} rank {rank}\n")),
                "survivor {rank} of {ranks} did not finish:\n{}\nstderr:\n{}",
                printed.stdout,
                printed.stderr
            );
        }
    }
}

/// Ranks that drop a barrier and leave before a late rank joins it keep
/// answering its rounds in the exit fence (`env.rs`) until it has left too:
/// on 3 ranks (a size that folds a rank in) the late rank waited forever
/// when leaving ranks stopped the engine after the 2 s drain.
#[test]
fn ranks_that_leave_mid_agreement_do_not_strand_a_late_rank() {
    for ranks in [2, 3, 4] {
        run("shutdown_mid_agreement", ranks);
    }
}

#[test]
fn mpi_initialised_elsewhere_must_be_at_thread_multiple() {
    run("foreign_serialized", 1);
    run("foreign_serialized", 2);
    run("foreign_multiple", 1);
    run("foreign_multiple", 2);
}

#[test]
fn the_last_handle_may_be_dropped_on_another_thread() {
    run("last_handle_on_another_thread", 1);
    run("last_handle_on_another_thread", 2);
}

#[test]
fn a_rank_that_dies_mid_collective_fails_it_on_every_survivor() {
    for ranks in [2, 3] {
        let stdout = launch(
            "peer_death",
            ranks,
            &["--mca", "orte_abort_on_non_zero_status", "0"],
            false,
        )
        .stdout;
        for rank in 0..ranks - 1 {
            assert!(
                stdout.contains(&format!("ok peer_death rank {rank}\n")),
                "survivor {rank} did not finish:\n{stdout}"
            );
        }
    }
}

#[test]
fn a_request_shows_in_dumps_and_on_the_timeline() {
    run("observe", 2);
}

/// Doorbell rule 6: a ring read late (the rank's only loop thread
/// was busy) must not mark its ringer awake: rank 0 sleeps, and the reply
/// must ring it.
#[test]
fn a_reply_after_a_busy_gap_rings_a_sleeping_requester() {
    run("busy_gap", 2);
}
