//! The spawn/abort/panic/drop matrix (issue 22.2), after Tokio's
//! `task_combinations`: every plan of `weft_tests::combinations::all_plans`
//! ({current-thread, 1 worker, 4 workers} × {returns, panics} × {future's
//! destructor panics or not} × {output's destructor panics or not} ×
//! {aborted never, before the first poll, while idle, during a poll, during
//! the final poll, after finishing, after the join} × {through the
//! JoinHandle, through an AbortHandle} × {JoinHandle dropped at once, while
//! idle, after finishing, awaited early, awaited late} × {runtime shut down
//! at the end, while the task is idle, after it finished}), each checked
//! for exactly-once drops, the right outcome and no hang (see the module).
//!
//! No leak: this binary counts live heap bytes; after a warm-up, playing
//! every plan again must leave the heap where it was (a task, waker or
//! output leaked per plan would add hundreds of bytes each time).
//!
//! The long mode (`scripts/soak.sh combinations`, 1M random plans with
//! random pauses between steps) lives in the `stress` binary.

use weft_tests::combinations::{Jitter, Plan, RuntimeKind, all_plans, quiet_planned_panics, run};

#[global_allocator]
static ALLOC: weft_tests::heap::CountingAllocator = weft_tests::heap::CountingAllocator;

/// The two tests take turns: the byte count is the whole process's.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn play(plans: &[Plan]) {
    let mut jitter = Jitter::none();
    for &plan in plans {
        run(plan, &mut jitter);
    }
}

#[test]
fn every_combination_drops_everything_once_and_reports_the_right_outcome() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    quiet_planned_panics();
    let plans = all_plans();
    assert!(plans.len() > 2000, "the matrix lost its breadth: {} plans", plans.len());
    for kind in [RuntimeKind::CurrentThread, RuntimeKind::Multi1, RuntimeKind::Multi4] {
        assert!(plans.iter().any(|p| p.runtime == kind));
    }
    play(&plans);
    println!("combinations run: {}", plans.len());
}

#[test]
fn playing_the_matrix_again_leaks_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    quiet_planned_panics();
    // The current-thread and one-worker plans: the four-worker ones start
    // four threads per plan, whose exits crossbeam-epoch reclaims lazily,
    // which blurs a byte count. (valgrind's run of the leak-check binary
    // covers those: scripts/leak-check.sh.)
    let plans: Vec<Plan> = all_plans()
        .into_iter()
        .filter(|p| p.runtime != RuntimeKind::Multi4)
        .collect();
    play(&plans);
    let warm = weft_tests::heap::live();
    play(&plans);
    play(&plans);
    let grown = weft_tests::heap::live() - warm;
    // One task cell alone is a few hundred bytes: a leak in even a
    // twentieth of the plans would pass 16 KiB.
    assert!(
        grown < 16 * 1024,
        "the heap grew by {grown} bytes over {} plans played twice",
        plans.len()
    );
    println!(
        "heap after warm-up: {warm} B; after {} more plans: {grown:+} B",
        plans.len() * 2
    );
}
