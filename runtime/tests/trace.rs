//! `weft`'s own spawn paths name the caller's line in the task's span
//! (feature `tracing`): the wrappers in `runtime/src` are `#[track_caller]`
//! all the way down to the executor.

#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// `(task.name, loc.file, loc.line)` of every task span created.
#[derive(Clone, Default)]
struct Spawns(Arc<Mutex<Vec<(String, String, u32)>>>);

#[derive(Default)]
struct Fields {
    name: String,
    file: String,
    line: u32,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "task.name" => self.name = value.to_owned(),
            "loc.file" => self.file = value.to_owned(),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "loc.line" {
            self.line = value as u32;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value as u64);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "task.name" | "loc.file" => self.record_str(field, text.trim_matches('"')),
            "loc.line" => self.line = text.parse().unwrap_or(0),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Spawns {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
        if attrs.metadata().target() == "weft::task" {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            self.0.lock().unwrap().push((fields.name, fields.file, fields.line));
        }
    }
}

#[test]
fn every_weft_spawn_path_records_the_callers_line() {
    let spawns = Spawns::default();
    let subscriber = tracing_subscriber::registry().with(spawns.clone());
    let mut expected = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let rt = weft::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let handle = rt.handle();
        let mut joins = Vec::new();
        joins.push(rt.spawn(async {}));
        expected.push(line!() - 1);
        joins.push(rt.spawn_blocking(|| {}));
        expected.push(line!() - 1);
        joins.push(handle.spawn(async {}));
        expected.push(line!() - 1);
        joins.push(handle.spawn_blocking(|| {}));
        expected.push(line!() - 1);
        joins.push(weft::task::Builder::new().name("named").spawn_on(async {}, &handle));
        expected.push(line!() - 1);
        // (A location names the line of the method's name, so each call
        // is kept on one line.)
        let named = weft::task::Builder::new().name("named");
        joins.push(named.spawn_blocking_on(|| {}, &handle));
        expected.push(line!() - 1);
        rt.block_on(async {
            weft::spawn(async {}).await.unwrap();
            expected.push(line!() - 1);
            weft::task::Builder::new().name("named").spawn(async {}).await.unwrap();
            expected.push(line!() - 1);
            for join in joins {
                join.await.unwrap();
            }
        });
    });
    let spawns = spawns.0.lock().unwrap();
    let ours: Vec<u32> = spawns
        .iter()
        .filter(|(_, file, _)| file.ends_with("tests/trace.rs"))
        .map(|(_, _, line)| *line)
        .collect();
    let mut sorted = ours.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        sorted, expected,
        "every spawn names this file and line; all spans: {spawns:?}"
    );
    let named = spawns.iter().filter(|(name, _, _)| name == "named").count();
    assert_eq!(named, 3);
}
