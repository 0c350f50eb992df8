//! A dump as a table people read: what is stuck, what each worker does,
//! and every task.

use super::wait::describe;
use super::{Dump, SpawnLocation, Stuck, TaskDump, TaskKind, TaskState, WorkerDump, WorkerKind, WorkerState};
use std::fmt::{self, Write};

/// Microseconds, printed in the largest unit that keeps them readable.
pub(crate) struct Micros(pub(crate) u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        let s = if us < 1_000 {
            format!("{us} µs")
        } else if us < 1_000_000 {
            format!("{:.1} ms", us as f64 / 1e3)
        } else if us < 120_000_000 {
            format!("{:.2} s", us as f64 / 1e6)
        } else {
            format!("{:.0} s", us as f64 / 1e6)
        };
        f.pad(&s)
    }
}

impl fmt::Display for SpawnLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.workers.iter().filter(|w| w.kind == WorkerKind::Worker).count();
        let blocking = self.workers.len() - workers;
        writeln!(
            f,
            "Weft runtime dump: {workers} worker{}, {blocking} blocking thread{}, {} task{}, {} stuck",
            plural(workers),
            plural(blocking),
            self.tasks.len(),
            plural(self.tasks.len()),
            self.stuck.len(),
        )?;
        if !self.stuck.is_empty() {
            writeln!(
                f,
                "\nSTUCK (a poll over {}, or idle over {})",
                Micros(self.options.poll_threshold.as_micros() as u64),
                Micros(self.options.idle_threshold.as_micros() as u64)
            )?;
            for stuck in &self.stuck {
                f.write_str("  ")?;
                self.stuck_line(stuck, f)?;
                f.write_char('\n')?;
            }
        }
        writeln!(f, "\nWORKERS")?;
        writeln!(f, "  {:<12} {:>10}  state", "thread", "polls")?;
        for worker in &self.workers {
            let thread = match worker.kind {
                WorkerKind::Worker => format!("worker {}", worker.index),
                WorkerKind::Blocking => format!("blocking {}", worker.index),
            };
            write!(f, "  {thread:<12} {:>10}  ", worker.polls)?;
            self.worker_state(worker, f)?;
            f.write_char('\n')?;
        }
        writeln!(f, "\nTASKS")?;
        let rows: Vec<TaskRow> = self.tasks.iter().map(|task| self.task_row(task)).collect();
        // Columns as wide as their longest cell, within bounds (the JSON
        // form has every name and wait whole).
        let width = |cell: fn(&TaskRow) -> &str, title: &str, max: usize| {
            rows.iter()
                .map(|row| cell(row).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
                .min(max)
        };
        let name_w = width(|r| &r.name, "name", NAME_WIDTH);
        let wait_w = width(|r| &r.wait, "waits on", WAIT_WIDTH);
        writeln!(
            f,
            "  {:>6}  {:<name_w$} {:<12} {:>6} {:>10} {:>10}  {:<wait_w$} spawned at",
            "id", "name", "state", "polls", "last poll", "longest", "waits on"
        )?;
        for row in &rows {
            writeln!(
                f,
                "  {:>6}  {:<name_w$} {:<12} {:>6} {:>10} {:>10}  {:<wait_w$} {}",
                row.id,
                truncate(&row.name, name_w),
                row.state,
                row.polls,
                row.last,
                row.longest,
                truncate(&row.wait, wait_w),
                row.location
            )?;
        }
        f.write_str(LEGEND)
    }
}

impl Dump {
    fn task(&self, id: crate::task::Id) -> Option<&TaskDump> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.tasks[i])
    }

    fn stuck_line(&self, stuck: &Stuck, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match stuck {
            Stuck::Blocking {
                worker,
                task,
                name,
                location,
                for_us,
            } => {
                write!(f, "worker {worker} has been inside one poll of task {task}")?;
                if let Some(name) = name {
                    write!(f, " \"{name}\"")?;
                }
                if let Some(location) = location {
                    write!(f, " (spawned at {location})")?;
                }
                write!(f, " for {}: a blocking call in async code?", Micros(*for_us))
            }
            Stuck::Idle {
                task,
                name,
                location,
                idle_us,
                wait,
            } => {
                write!(f, "task {task}")?;
                if let Some(name) = name {
                    write!(f, " \"{name}\"")?;
                }
                write!(f, " (spawned at {location}) idle for {}, ", Micros(*idle_us))?;
                match wait {
                    Some(wait) => {
                        f.write_str("waiting on ")?;
                        describe(wait, self.taken_at_us, f)
                    }
                    None => f.write_str("waiting on something Weft does not know"),
                }
            }
        }
    }

    fn worker_state(&self, worker: &WorkerDump, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &worker.state {
            WorkerState::Polling {
                task,
                at_least_us,
                at_most_us,
            } => {
                write!(f, "polling task {task}")?;
                if let Some(row) = self.task(*task) {
                    if let Some(name) = &row.name {
                        write!(f, " \"{name}\"")?;
                    }
                    write!(f, " ({})", row.location)?;
                }
                match at_least_us {
                    Some(least) => write!(f, " for {}", Micros(*least)),
                    None => write!(f, " for at most {}", Micros(*at_most_us)),
                }
            }
            WorkerState::Parked { for_us } => write!(f, "parked for {}", Micros(*for_us)),
            WorkerState::Between => f.write_str("between polls"),
        }
    }

    fn task_row(&self, task: &TaskDump) -> TaskRow {
        let state = match (task.kind, task.state) {
            (_, TaskState::Idle) => "idle".to_owned(),
            (_, TaskState::Scheduled) => "scheduled".to_owned(),
            (_, TaskState::Queued) => "queued".to_owned(),
            (TaskKind::Blocking, TaskState::Running { worker: Some(w) }) => match self.workers.get(w) {
                Some(t) => format!("blocking {}", t.index),
                None => "running".to_owned(),
            },
            (_, TaskState::Running { worker: Some(w) }) => match self.workers.get(w) {
                Some(t) => format!("on worker {}", t.index),
                None => "running".to_owned(),
            },
            (_, TaskState::Running { worker: None }) => "running".to_owned(),
        };
        let state = if task.cancelling {
            format!("{state}, cancel")
        } else {
            state
        };
        let name = task.name.as_deref().unwrap_or(match task.kind {
            TaskKind::Task => "-",
            TaskKind::Blocking => "(blocking)",
        });
        let last = match task.since_last_poll_us {
            Some(us) => Micros(us).to_string(),
            None => "never".to_owned(),
        };
        let mut wait = String::new();
        match &task.wait {
            // Writing into a String cannot fail.
            Some(w) => drop(describe(w, self.taken_at_us, &mut wait)),
            None if task.state == TaskState::Idle && task.polls > 0 => wait.push('?'),
            None => {}
        }
        let longest = match task.longest_poll_us {
            0 => "-".to_owned(),
            us => Micros(us).to_string(),
        };
        TaskRow {
            id: task.id.as_u64(),
            name: name.to_owned(),
            state,
            polls: task.polls,
            last,
            longest,
            wait,
            location: task.location.to_string(),
        }
    }
}

/// The widest the name and "waits on" columns grow.
const NAME_WIDTH: usize = 32;
const WAIT_WIDTH: usize = 56;

/// What the table's columns mean (printed under it).
const LEGEND: &str = "
  state: idle (waiting for a wake), scheduled (woken, in a run queue), on worker N (being polled there),
         queued (a blocking job waiting for a pool thread), blocking N (a blocking job on that pool thread)
  last poll: time since the task's last poll began. longest: the longest poll a watcher or a dump saw
         in progress, '-' if none (short polls are not timed one by one; workers' poll histograms have them)
  waits on: what the task's last poll waits for, where Weft knows; '?' when it does not
";

/// One task's cells.
struct TaskRow {
    id: u64,
    name: String,
    state: String,
    polls: u32,
    last: String,
    longest: String,
    wait: String,
    location: String,
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// At most `max` characters of `s`, with an ellipsis if cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{DumpOptions, SpawnLocation, TaskKind, TaskState};
    use crate::task::Id;

    fn task(name: &str) -> TaskDump {
        TaskDump {
            id: Id::next(),
            name: Some(name.to_owned()),
            location: SpawnLocation {
                file: "src/main.rs",
                line: 3,
                column: 5,
            },
            kind: TaskKind::Task,
            state: TaskState::Idle,
            cancelling: false,
            wait: None,
            polls: 2,
            since_last_poll_us: Some(1_000),
            longest_poll_us: 0,
        }
    }

    /// The name column grows to the longest name (a 30-character name is
    /// printed whole) up to its bound (a longer one is cut with an
    /// ellipsis), and the legend follows the table.
    #[test]
    fn names_print_whole_up_to_the_column_bound_and_a_legend_follows() {
        let fits = "a".repeat(30);
        let long = "b".repeat(NAME_WIDTH + 10);
        let dump = Dump {
            taken_at_us: 10_000,
            options: DumpOptions::default(),
            tasks: vec![task(&fits), task(&long)],
            workers: Vec::new(),
            stuck: Vec::new(),
        };
        let text = dump.to_string();
        assert!(text.contains(&fits), "{text}");
        let cut = format!("{}…", "b".repeat(NAME_WIDTH - 1));
        assert!(text.contains(&cut) && !text.contains(&long), "{text}");
        assert!(text.ends_with(LEGEND), "{text}");
        // Every row's "spawned at" starts in the same column.
        let columns: Vec<usize> = text
            .lines()
            .filter(|l| l.contains("src/main.rs"))
            .map(|l| l.chars().count() - "src/main.rs:3:5".len())
            .collect();
        assert_eq!(columns.len(), 2);
        assert_eq!(columns[0], columns[1], "{text}");
    }
}
