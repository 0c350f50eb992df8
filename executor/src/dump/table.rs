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
        writeln!(
            f,
            "  {:>6}  {:<18} {:<12} {:>6} {:>10} {:>10}  {:<40} spawned at",
            "id", "name", "state", "polls", "last poll", "longest", "waits on"
        )?;
        for task in &self.tasks {
            self.task_row(task, f)?;
        }
        Ok(())
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

    fn task_row(&self, task: &TaskDump, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Some(w) => describe(w, self.taken_at_us, &mut wait)?,
            None if task.state == TaskState::Idle && task.polls > 0 => wait.push('?'),
            None => {}
        }
        let longest = match task.longest_poll_us {
            0 => "-".to_owned(),
            us => Micros(us).to_string(),
        };
        writeln!(
            f,
            "  {:>6}  {:<18} {:<12} {:>6} {:>10} {:>10}  {:<40} {}",
            task.id.as_u64(),
            truncate(name, 18),
            state,
            task.polls,
            last,
            longest,
            truncate(&wait, 40),
            task.location
        )
    }
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
