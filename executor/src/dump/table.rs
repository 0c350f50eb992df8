//! A dump as a table people read: what is stuck, what each worker does,
//! and every task.

use super::wait::{WaitOn, describe};
use super::{Dump, SpawnLocation, Stuck, TaskDump, TaskKind, TaskState, WorkerDump, WorkerKind, WorkerState};
use std::collections::HashMap;
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
        if self.shut_down {
            writeln!(
                f,
                "(the runtime has shut down: its tasks are gone, its threads' rows are their last state)"
            )?;
        }
        if !self.stuck.is_empty() {
            writeln!(
                f,
                "\nSTUCK (a poll over {}, or idle over {})",
                Micros(self.options.poll_threshold.as_micros() as u64),
                Micros(self.options.idle_threshold.as_micros() as u64)
            )?;
            // Idle tasks from one spawn line waiting on the same kind of
            // thing (a server's many connection writers on their channels)
            // print a few lines and a count, so that they cannot bury the
            // one deadlock.
            let mut shown: HashMap<(SpawnLocation, String), usize> = HashMap::new();
            for stuck in &self.stuck {
                if let Stuck::Idle { location, wait, .. } = stuck {
                    let seen = shown.entry((*location, wait_kind(wait))).or_insert(0);
                    *seen += 1;
                    if *seen > STUCK_PER_GROUP && !f.alternate() {
                        continue;
                    }
                }
                f.write_str("  ")?;
                self.stuck_line(stuck, f)?;
                f.write_char('\n')?;
            }
            let mut hidden: Vec<_> = shown.into_iter().filter(|(_, n)| *n > STUCK_PER_GROUP).collect();
            if !f.alternate() {
                // Largest first; ties by spawn line, so that two prints
                // of one dump read the same (the map's order is random).
                hidden.sort_by(|((a, a_kind), a_n), ((b, b_kind), b_n)| {
                    b_n.cmp(a_n)
                        .then_with(|| (a.file, a.line, a.column, a_kind).cmp(&(b.file, b.line, b.column, b_kind)))
                });
                for ((location, kind), n) in hidden {
                    writeln!(
                        f,
                        "  ... and {} more tasks spawned at {location} idle on {kind} ({{:#}} prints every one)",
                        n - STUCK_PER_GROUP
                    )?;
                }
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
        // Only the rows printed are made (a runtime with a million tasks
        // prints a thousand).
        let limit = if f.alternate() { self.tasks.len() } else { TASK_ROWS };
        let rows: Vec<TaskRow> = self.tasks.iter().take(limit).map(|task| self.task_row(task)).collect();
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
        if self.tasks.len() > limit {
            writeln!(
                f,
                "  ... and {} more tasks ({{:#}} prints every row; the dump's `tasks` has them all)",
                self.tasks.len() - limit
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
                if *task == crate::task::Id::BLOCK_ON {
                    write!(f, "worker {worker} has been inside one poll of the block_on future")?;
                    if let Some(location) = location {
                        write!(f, " (block_on called at {location})")?;
                    }
                } else {
                    write!(f, "worker {worker} has been inside one poll of task {task}")?;
                    if let Some(name) = name {
                        write!(f, " \"{}\"", printable(name))?;
                    }
                    if let Some(location) = location {
                        write!(f, " (spawned at {location})")?;
                    }
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
                    write!(f, " \"{}\"", printable(name))?;
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
                if *task == crate::task::Id::BLOCK_ON {
                    f.write_str("polling the block_on future")?;
                } else {
                    write!(f, "polling task {task}")?;
                }
                if let Some(row) = self.task(*task) {
                    if let Some(name) = row.name.as_ref().filter(|_| *task != crate::task::Id::BLOCK_ON) {
                        write!(f, " \"{}\"", printable(name))?;
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
            id: task.id.to_string(),
            name: printable(name),
            state,
            polls: task.polls,
            last,
            longest,
            wait,
            location: task.location.to_string(),
        }
    }
}

/// Idle tasks printed per group of one spawn line and one kind of wait
/// (more are counted); `{:#}` prints every one.
const STUCK_PER_GROUP: usize = 3;

/// Rows of the task table printed; `{:#}` prints every one.
const TASK_ROWS: usize = 1000;

/// `s` with control characters escaped (a name with a newline must not
/// break the table's rows).
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped.into_iter().flatten().chain((!c.is_control()).then_some(c))
        })
        .collect()
}

/// What kind of thing a task waits on, without which one (the grouping
/// key of the stuck list).
fn wait_kind(wait: &Option<WaitOn>) -> String {
    match wait {
        None => "something Weft does not know".to_owned(),
        Some(WaitOn::Io { direction, .. }) => format!("a socket ({direction:?})"),
        Some(WaitOn::Timer { .. }) => "a timer".to_owned(),
        Some(WaitOn::Source { source, .. }) => format!("a {source} operation"),
        Some(WaitOn::Sync { primitive, .. }) => (*primitive).to_owned(),
        Some(WaitOn::Promise { .. }) => "a promise".to_owned(),
        Some(WaitOn::Join { .. }) => "a join".to_owned(),
        Some(WaitOn::Signal { .. }) => "a signal".to_owned(),
        Some(WaitOn::Completion) => "a completion".to_owned(),
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
    /// As `Id` prints (`block_on` for the block_on future's row).
    id: String,
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
    use crate::dump::{DumpOptions, SpawnLocation, TaskKind, TaskState, WaitOn};
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

    /// Ten idle tasks from one spawn line on one kind of wait print three
    /// lines and a count (two from another line print whole); `{:#}`
    /// prints all twelve. The task table stops at its row limit likewise.
    #[test]
    fn many_alike_stuck_tasks_print_a_few_lines_and_a_count() {
        use crate::dump::Stuck;
        let stuck_on = |t: &TaskDump| Stuck::Idle {
            task: t.id,
            name: t.name.clone(),
            location: t.location,
            idle_us: 20_000_000,
            wait: t.wait,
        };
        let mut tasks: Vec<TaskDump> = (0..10).map(|_| task("writer")).collect();
        for t in &mut tasks {
            t.wait = Some(WaitOn::Sync {
                primitive: "mpsc::Receiver::recv",
                address: t.id.as_u64() as usize,
            });
        }
        for _ in 0..2 {
            let mut t = task("deadlocked");
            t.location.line = 9;
            t.wait = Some(WaitOn::Sync {
                primitive: "Mutex::lock",
                address: 1,
            });
            tasks.push(t);
        }
        let stuck = tasks.iter().map(stuck_on).collect();
        let dump = Dump {
            taken_at_us: 10_000,
            taken_at_unix_ms: 0,
            shut_down: false,
            options: DumpOptions::default(),
            tasks,
            workers: Vec::new(),
            stuck,
        };
        let text = dump.to_string();
        let lines = |text: &str, what: &str| {
            text.lines()
                .filter(|l| l.contains(what) && l.contains("idle for"))
                .count()
        };
        assert_eq!(lines(&text, "\"writer\""), STUCK_PER_GROUP, "{text}");
        assert_eq!(lines(&text, "\"deadlocked\""), 2, "{text}");
        assert!(
            text.contains("... and 7 more tasks spawned at src/main.rs:3:5 idle on mpsc::Receiver::recv"),
            "{text}"
        );
        // Groups of equal size print in one order, every time.
        let mut tie = dump.clone();
        let mut other = task("other");
        other.location.line = 20;
        for _ in 0..10 {
            tie.stuck.push(stuck_on(&other));
        }
        let first = tie.to_string();
        assert!(
            first.contains("... and 7 more tasks spawned at src/main.rs:20:5"),
            "{first}"
        );
        for _ in 0..16 {
            assert_eq!(tie.to_string(), first);
        }
        let all = format!("{dump:#}");
        assert_eq!(lines(&all, "\"writer\""), 10, "{all}");
        assert!(!all.contains("... and"), "{all}");

        let many = Dump {
            taken_at_us: 10_000,
            taken_at_unix_ms: 0,
            shut_down: false,
            options: DumpOptions::default(),
            tasks: (0..TASK_ROWS + 5).map(|_| task("t")).collect(),
            workers: Vec::new(),
            stuck: Vec::new(),
        };
        let rows = |text: &str| text.lines().filter(|l| l.ends_with("src/main.rs:3:5")).count();
        let text = many.to_string();
        assert_eq!(rows(&text), TASK_ROWS);
        assert!(text.contains("... and 5 more tasks"), "the count of rows left out");
        assert_eq!(rows(&format!("{many:#}")), TASK_ROWS + 5);
    }

    /// The name column grows to the longest name (a 30-character name is
    /// printed whole) up to its bound (a longer one is cut with an
    /// ellipsis), and the legend follows the table.
    #[test]
    fn names_print_whole_up_to_the_column_bound_and_a_legend_follows() {
        let mut dump = Dump {
            taken_at_us: 10_000,
            taken_at_unix_ms: 0,
            shut_down: false,
            options: DumpOptions::default(),
            tasks: vec![task("two\nlines")],
            workers: Vec::new(),
            stuck: Vec::new(),
        };
        assert!(dump.to_string().contains("two\\nlines"), "{dump}");
        // Every line that names the task escapes it too: the stuck list
        // and the worker polling it.
        let id = dump.tasks[0].id;
        dump.tasks[0].state = TaskState::Running { worker: Some(0) };
        dump.workers.push(WorkerDump {
            kind: WorkerKind::Worker,
            index: 0,
            polls: 1,
            state: WorkerState::Polling {
                task: id,
                at_least_us: Some(200_000),
                at_most_us: 200_000,
            },
        });
        let name = Some("two\nlines".to_owned());
        dump.stuck = vec![
            Stuck::Blocking {
                worker: 0,
                task: id,
                name: name.clone(),
                location: Some(dump.tasks[0].location),
                for_us: 200_000,
            },
            Stuck::Idle {
                task: id,
                name,
                location: dump.tasks[0].location,
                idle_us: 20_000_000,
                wait: None,
            },
        ];
        let text = dump.to_string();
        assert_eq!(text.matches("two\\nlines").count(), 4, "{text}");
        assert!(!text.contains("two\nlines"), "{text}");
        // The block_on future's row prints its id as `Id` does.
        dump.tasks[0].id = Id::BLOCK_ON;
        dump.stuck.clear();
        dump.workers.clear();
        let text = dump.to_string();
        assert!(!text.contains(&u64::MAX.to_string()), "{text}");
        assert!(text.contains("block_on  two\\nlines"), "{text}");
        dump.tasks.clear();
        let fits = "a".repeat(30);
        let long = "b".repeat(NAME_WIDTH + 10);
        let dump = Dump {
            taken_at_us: 10_000,
            taken_at_unix_ms: 0,
            shut_down: false,
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
