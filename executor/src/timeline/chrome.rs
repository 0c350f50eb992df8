//! Writes a timeline as Chrome's trace-event JSON.
//!
//! The shape (every event has `pid`, `tid` and `ts` in microseconds):
//!
//! | what | `ph` | `cat` | where |
//! | --- | --- | --- | --- |
//! | a task's poll | `X` | `poll` | pid 1, the thread's tid; `args`: `task`, `poll`, `location`, `name` |
//! | a park | `X` | `park` | the thread; `args.driver` |
//! | a reactor turn | `X` | `reactor` | the thread; `args`: `events`, `timers`, `completions`, `sources` |
//! | a wake | `s` then `f` | `wake` | from the waker's thread to the woken poll (`bp: "e"`) |
//! | a steal | `s` then `f` | `steal` | from the victim's thread to the thief's next poll |
//! | timers firing | `i` | `timer` | the thread whose turn fired them; `args.count` |
//! | a source's operation | `b` then `e` | the source (`gpu`, `mpi`) | a process per source, a thread per track (stream, peer) |
//!
//! Thread and process names are `M` (metadata) events; `otherData` holds
//! the number of events dropped from full rings.

use super::{Event, TurnCounts};
use crate::dump::wait::name as interned;
use std::collections::HashMap;
use std::fmt::Write;

/// One track's events, copied out of its ring.
pub(super) struct TrackEvents {
    pub(super) tid: u64,
    pub(super) name: String,
    pub(super) events: Vec<Event>,
    pub(super) dropped: u64,
}

/// The process of the runtime's threads.
const RUNTIME_PID: u64 = 1;

/// The JSON for `tracks`.
pub(super) fn write(tracks: &[TrackEvents]) -> String {
    let mut names: HashMap<u64, &str> = HashMap::new();
    let mut wakes: HashMap<(u64, u32), (u64, u64)> = HashMap::new();
    let mut latest = 0;
    for track in tracks {
        for event in &track.events {
            match event {
                Event::Named { task, name } => {
                    names.insert(*task, name);
                }
                Event::Wake { task, poll, at } => {
                    wakes.entry((*task, *poll)).or_insert((track.tid, *at));
                }
                _ => {}
            }
            latest = latest.max(end_of(event));
        }
    }

    let mut out = Json::default();
    out.raw("{\"traceEvents\":[");
    out.meta("process_name", RUNTIME_PID, None, "weft runtime");
    for track in tracks {
        out.meta("thread_name", RUNTIME_PID, Some(track.tid), &track.name);
        out.sort_index(RUNTIME_PID, track.tid);
    }
    let mut flow = 0u64;
    let mut sources = Sources::default();
    for track in tracks {
        let tid = track.tid;
        // A steal's arrow ends at the thief's next poll.
        let mut steal: Option<(u64, u64, u32)> = None;
        for event in &track.events {
            match *event {
                Event::Poll {
                    task,
                    poll,
                    location,
                    start,
                    end,
                } => {
                    let name = names.get(&task).copied();
                    let label = match name {
                        Some(name) => name.to_owned(),
                        None => format!("{}:{}", location.file(), location.line()),
                    };
                    out.event(|o| {
                        o.field_str("ph", "X");
                        o.field_str("cat", "poll");
                        o.field_str("name", &label);
                        o.common(RUNTIME_PID, tid, start);
                        o.field_ts("dur", end.saturating_sub(start));
                        o.raw(",\"args\":{");
                        o.raw(&format!("\"task\":{task},\"poll\":{poll},"));
                        o.key("location");
                        o.string(&format!("{}:{}:{}", location.file(), location.line(), location.column()));
                        if let Some(name) = name {
                            o.raw(",");
                            o.key("name");
                            o.string(name);
                        }
                        o.raw("}");
                    });
                    if let Some(&(waker_tid, at)) = wakes.get(&(task, poll)) {
                        flow += 1;
                        out.flow("wake", flow, waker_tid, at.min(start), tid, start);
                    }
                    if let Some((victim, at, _)) = steal.take() {
                        flow += 1;
                        out.flow("steal", flow, victim, at.min(start), tid, start);
                    }
                }
                Event::Park { start, end, driver } => out.event(|o| {
                    o.field_str("ph", "X");
                    o.field_str("cat", "park");
                    o.field_str("name", if driver { "park (driver)" } else { "park" });
                    o.common(RUNTIME_PID, tid, start);
                    o.field_ts("dur", end.saturating_sub(start));
                    o.raw(&format!(",\"args\":{{\"driver\":{driver}}}"));
                }),
                Event::Turn { start, end, counts } => out.event(|o| {
                    let TurnCounts {
                        events,
                        timers,
                        completions,
                        sources,
                    } = counts;
                    o.field_str("ph", "X");
                    o.field_str("cat", "reactor");
                    o.field_str("name", "reactor turn");
                    o.common(RUNTIME_PID, tid, start);
                    o.field_ts("dur", end.saturating_sub(start));
                    o.raw(&format!(
                        ",\"args\":{{\"events\":{events},\"timers\":{timers},\"completions\":{completions},\"sources\":{sources}}}"
                    ));
                }),
                Event::Timer { at, count } => out.event(|o| {
                    o.field_str("ph", "i");
                    o.field_str("s", "t");
                    o.field_str("cat", "timer");
                    o.field_str("name", if count == 1 { "timer fired" } else { "timers fired" });
                    o.common(RUNTIME_PID, tid, at);
                    o.raw(&format!(",\"args\":{{\"count\":{count}}}"));
                }),
                Event::Steal { victim, tasks, at } => steal = Some((victim, at, tasks)),
                Event::OpBegin {
                    source,
                    name,
                    track_label,
                    track,
                    id,
                    at,
                } => sources.begin(source, id, name, track_label, track, at),
                Event::OpEnd { source, id, ok, at } => sources.end(source, id, ok, at),
                Event::Wake { .. } | Event::Named { .. } => {}
            }
        }
    }
    sources.write(&mut out, latest);
    let dropped: u64 = tracks.iter().map(|t| t.dropped).sum();
    out.raw(&format!(
        "],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"generator\":\"weft\",\"dropped_events\":{dropped}}}}}"
    ));
    out.buf
}

/// The time an event ends at.
fn end_of(event: &Event) -> u64 {
    match *event {
        Event::Poll { end, .. } | Event::Park { end, .. } | Event::Turn { end, .. } => end,
        Event::Wake { at, .. }
        | Event::Steal { at, .. }
        | Event::Timer { at, .. }
        | Event::OpBegin { at, .. }
        | Event::OpEnd { at, .. } => at,
        Event::Named { .. } => 0,
    }
}

/// Source operations, paired by (source, id).
#[derive(Default)]
struct Sources {
    ops: HashMap<(u32, u64), Op>,
    order: Vec<(u32, u64)>,
}

struct Op {
    name: u32,
    track_label: u32,
    track: u64,
    begin: u64,
    end: Option<(u64, bool)>,
}

impl Sources {
    fn begin(&mut self, source: u32, id: u64, name: u32, track_label: u32, track: u64, at: u64) {
        if self
            .ops
            .insert(
                (source, id),
                Op {
                    name,
                    track_label,
                    track,
                    begin: at,
                    end: None,
                },
            )
            .is_none()
        {
            self.order.push((source, id));
        }
    }

    fn end(&mut self, source: u32, id: u64, ok: bool, at: u64) {
        // An end whose begin left the ring has nothing to pair with.
        if let Some(op) = self.ops.get_mut(&(source, id)) {
            op.end = Some((at, ok));
        }
    }

    /// A process per source (pids from 2, in order of first operation), a
    /// thread per track; each operation an async slice.
    fn write(&self, out: &mut Json, latest: u64) {
        let mut pids: HashMap<u32, u64> = HashMap::new();
        let mut tracks: HashMap<(u32, u64), ()> = HashMap::new();
        for key in &self.order {
            let op = &self.ops[key];
            let (source, id) = *key;
            let next_pid = RUNTIME_PID + 1 + pids.len() as u64;
            let pid = *pids.entry(source).or_insert_with(|| {
                out.meta("process_name", next_pid, None, interned(source));
                next_pid
            });
            let tid = op.track + 1;
            if tracks.insert((source, op.track), ()).is_none() {
                out.meta(
                    "thread_name",
                    pid,
                    Some(tid),
                    &format!("{} {}", interned(op.track_label), op.track),
                );
                out.sort_index(pid, tid);
            }
            let (end, ok, in_flight) = match op.end {
                Some((at, ok)) => (at, ok, false),
                None => (latest.max(op.begin), true, true),
            };
            for (ph, at) in [("b", op.begin), ("e", end)] {
                out.event(|o| {
                    o.field_str("ph", ph);
                    o.field_str("cat", interned(source));
                    o.field_str("name", interned(op.name));
                    o.raw(&format!(",\"id\":\"{}-{id}\"", interned(source)));
                    o.common(pid, tid, at);
                    if ph == "e" {
                        o.raw(&format!(",\"args\":{{\"ok\":{ok},\"in_flight\":{in_flight}}}"));
                    }
                });
            }
        }
    }
}

/// A small JSON writer: events separated by commas, strings escaped.
#[derive(Default)]
struct Json {
    buf: String,
    first: bool,
    started: bool,
}

impl Json {
    fn raw(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    /// One event object; `f` writes its fields, the first without a comma.
    fn event(&mut self, f: impl FnOnce(&mut Json)) {
        if self.started {
            self.buf.push(',');
        }
        self.started = true;
        self.buf.push('{');
        self.first = true;
        f(self);
        self.buf.push('}');
    }

    fn sep(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.buf.push(',');
        }
    }

    fn key(&mut self, key: &str) {
        self.string(key);
        self.buf.push(':');
    }

    fn field_str(&mut self, key: &str, value: &str) {
        self.sep();
        self.key(key);
        self.string(value);
    }

    /// A time in nanoseconds, as Chrome's microseconds.
    fn field_ts(&mut self, key: &str, ns: u64) {
        self.sep();
        self.key(key);
        let _ = write!(self.buf, "{}.{:03}", ns / 1000, ns % 1000);
    }

    fn common(&mut self, pid: u64, tid: u64, ts: u64) {
        self.sep();
        let _ = write!(self.buf, "\"pid\":{pid},\"tid\":{tid}");
        self.field_ts("ts", ts);
    }

    fn meta(&mut self, what: &str, pid: u64, tid: Option<u64>, name: &str) {
        self.event(|o| {
            o.field_str("ph", "M");
            o.field_str("name", what);
            o.sep();
            let _ = write!(o.buf, "\"pid\":{pid}");
            if let Some(tid) = tid {
                let _ = write!(o.buf, ",\"tid\":{tid}");
            }
            o.raw(",\"args\":{\"name\":");
            o.string(name);
            o.raw("}");
        });
    }

    fn sort_index(&mut self, pid: u64, tid: u64) {
        self.event(|o| {
            o.raw(&format!(
                "\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}"
            ));
        });
    }

    /// A flow arrow `id` from (`from_tid`, `from_ts`) to the slice that
    /// encloses (`to_tid`, `to_ts`).
    fn flow(&mut self, cat: &str, id: u64, from_tid: u64, from_ts: u64, to_tid: u64, to_ts: u64) {
        for (ph, tid, ts) in [("s", from_tid, from_ts), ("f", to_tid, to_ts)] {
            self.event(|o| {
                o.field_str("ph", ph);
                o.field_str("cat", cat);
                o.field_str("name", cat);
                o.raw(&format!(",\"id\":{id}"));
                if ph == "f" {
                    o.raw(",\"bp\":\"e\"");
                }
                o.common(RUNTIME_PID, tid, ts);
            });
        }
    }

    fn string(&mut self, s: &str) {
        self.buf.push('"');
        for c in s.chars() {
            match c {
                '"' => self.buf.push_str("\\\""),
                '\\' => self.buf.push_str("\\\\"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                '\t' => self.buf.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.buf, "\\u{:04x}", c as u32);
                }
                c => self.buf.push(c),
            }
        }
        self.buf.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut json = Json::default();
        json.string("a\"b\\c\nd\u{1}");
        assert_eq!(json.buf, r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn a_wake_becomes_an_arrow_into_the_poll_it_caused() {
        let location = std::panic::Location::caller();
        let tracks = [
            TrackEvents {
                tid: 1,
                name: "waker".into(),
                events: vec![Event::Wake {
                    task: 7,
                    poll: 2,
                    at: 1_000,
                }],
                dropped: 0,
            },
            TrackEvents {
                tid: 2,
                name: "poller".into(),
                events: vec![Event::Poll {
                    task: 7,
                    poll: 2,
                    location,
                    start: 5_000,
                    end: 6_500,
                }],
                dropped: 3,
            },
        ];
        let json = write(&tracks);
        assert!(
            json.contains(r#""ph":"s","cat":"wake","name":"wake","id":1,"pid":1,"tid":1,"ts":1.000"#),
            "{json}"
        );
        assert!(
            json.contains(r#""ph":"f","cat":"wake","name":"wake","id":1,"bp":"e","pid":1,"tid":2,"ts":5.000"#),
            "{json}"
        );
        assert!(json.contains(r#""dur":1.500"#), "{json}");
        assert!(json.contains(r#""dropped_events":3"#), "{json}");
    }
}
