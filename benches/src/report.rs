//! Samples, their statistics, the printed table and the JSON file.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One (workload, runtime) series of measurements.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) workload: String,
    pub(crate) runtime: &'static str,
    /// The unit; lower-is-better metrics end in `_ns`.
    pub(crate) metric: &'static str,
    pub(crate) samples: Vec<f64>,
    /// Median and p99 computed elsewhere (from a latency histogram), used
    /// instead of `samples` when set.
    pub(crate) summary: Option<(f64, f64)>,
}

impl Series {
    pub(crate) fn median(&self) -> f64 {
        self.summary
            .map_or_else(|| percentile(&self.samples, 50.0), |(median, _)| median)
    }

    pub(crate) fn p99(&self) -> f64 {
        self.summary
            .map_or_else(|| percentile(&self.samples, 99.0), |(_, p99)| p99)
    }
}

/// The `p`-th percentile by the nearest-rank method.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The async runtimes every suite compares, in column order; Weft, the
/// first, is the anchor of every ratio.
const RUNTIMES: [&str; 3] = ["weft", "tokio", "smol"];

/// A statistic of a series (its median, its p99).
type Stat = fn(&Series) -> f64;

/// A suite's results.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) suite: &'static str,
    pub(crate) series: Vec<Series>,
}

impl Report {
    pub(crate) fn new(suite: &'static str) -> Report {
        Report {
            suite,
            series: Vec::new(),
        }
    }

    /// Adds one sample to the series of (workload, runtime).
    pub(crate) fn record(&mut self, workload: &str, runtime: &'static str, metric: &'static str, value: f64) {
        match self
            .series
            .iter_mut()
            .find(|s| s.workload == workload && s.runtime == runtime && s.metric == metric)
        {
            Some(series) => series.samples.push(value),
            None => self.series.push(Series {
                workload: workload.to_owned(),
                runtime,
                metric,
                samples: vec![value],
                summary: None,
            }),
        }
    }

    /// Records a series whose median and p99 were computed elsewhere (from
    /// a histogram of many samples).
    pub(crate) fn record_summary(
        &mut self,
        workload: &str,
        runtime: &'static str,
        metric: &'static str,
        median: f64,
        p99: f64,
    ) {
        self.series
            .retain(|s| !(s.workload == workload && s.runtime == runtime && s.metric == metric));
        self.series.push(Series {
            workload: workload.to_owned(),
            runtime,
            metric,
            samples: Vec::new(),
            summary: Some((median, p99)),
        });
    }

    fn find(&self, workload: &str, runtime: &str, metric: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.workload == workload && s.runtime == runtime && s.metric == metric)
    }

    /// The columns of one row: Weft, Tokio and smol, unless the row measures
    /// Weft against libraries that are none of them (rayon, in suite
    /// `promise`), which then take their place. Weft comes first: it is the
    /// anchor of the ratios. A row with no Weft series at all (suite `sync`,
    /// where every column is a library on one Weft runtime) keeps only its
    /// own columns, in the order they were recorded: the first is the anchor.
    fn columns(&self, workload: &str, metric: &str) -> Vec<&'static str> {
        let mut others: Vec<&'static str> = Vec::new();
        for s in &self.series {
            if s.workload == workload
                && s.metric == metric
                && !RUNTIMES.contains(&s.runtime)
                && !others.contains(&s.runtime)
            {
                others.push(s.runtime);
            }
        }
        if others.is_empty() {
            RUNTIMES.to_vec()
        } else if self.find(workload, RUNTIMES[0], metric).is_none() {
            others
        } else {
            std::iter::once(RUNTIMES[0]).chain(others).collect()
        }
    }

    /// The table: medians per runtime and Weft's ratios (p50 and p99 rows for
    /// histogram summaries). A row with other columns than the one above it
    /// starts a new header.
    pub(crate) fn table(&self) -> String {
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for s in &self.series {
            if !rows.contains(&(s.workload.as_str(), s.metric)) {
                rows.push((s.workload.as_str(), s.metric));
            }
        }
        let mut out = String::new();
        let mut header: Vec<&'static str> = Vec::new();
        for (workload, metric) in rows {
            let columns = self.columns(workload, metric);
            if columns != header {
                if !header.is_empty() {
                    out.push('\n');
                }
                write_header(&mut out, &columns);
                header = columns.clone();
            }
            // Histogram summaries (latencies) get a p99 row under the p50 one:
            // their tails are what a service is judged on.
            let summarised = self
                .series
                .iter()
                .any(|s| s.workload == workload && s.metric == metric && s.summary.is_some());
            let stats: &[(&str, Stat)] = if summarised {
                &[(" p50", Series::median), (" p99", Series::p99)]
            } else if metric.ends_with(PER_REP_P99) {
                &[(" p99/rep", Series::median)]
            } else {
                &[("", Series::median)]
            };
            for &(label, stat) in stats {
                let values: Vec<f64> = columns
                    .iter()
                    .map(|rt| self.find(workload, rt, metric).map_or(f64::NAN, stat))
                    .collect();
                let smallest = values
                    .iter()
                    .copied()
                    .filter(|v| !v.is_nan())
                    .fold(f64::INFINITY, f64::min);
                let (unit, scale) = display_unit(metric, smallest);
                let value = |v: f64| {
                    if v.is_nan() {
                        "-".to_owned()
                    } else {
                        format!("{:.1}", v / scale)
                    }
                };
                let ratio = |r: f64| if r.is_nan() { "-".to_owned() } else { format!("{r:.2}x") };
                write_row(
                    &mut out,
                    workload,
                    &format!("{unit}{label}"),
                    &columns,
                    values.iter().map(|&v| value(v)),
                    values[1..].iter().map(|&v| ratio(values[0] / v)),
                );
            }
        }
        if header.is_empty() {
            // Nothing measured (a filter that matched no workload): the
            // runtimes' header alone, as before any row.
            write_header(&mut out, &RUNTIMES);
        }
        out
    }

    pub(crate) fn print(&self) {
        println!(
            "\n{} (medians, and p50/p99 over every sample for latencies; on _ns and bytes metrics lower is better and a ratio below 1.0 favours Weft; \
             on _per_s metrics higher is better and a ratio above 1.0 favours Weft)\n",
            self.suite
        );
        print!("{}", self.table());
    }

    /// The JSON document shared by every suite.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let results: Vec<serde_json::Value> = self
            .series
            .iter()
            .map(|s| {
                serde_json::json!({
                    "workload": s.workload,
                    "runtime": s.runtime,
                    "metric": s.metric,
                    "median": s.median(),
                    "p99": s.p99(),
                })
            })
            .collect();
        serde_json::json!({ "suite": self.suite, "results": results })
    }

    /// Writes `target/bench/<suite>.json` (under `CARGO_TARGET_DIR` if set).
    pub(crate) fn write_json(&self) -> std::io::Result<PathBuf> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
        let dir = target.join("bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.suite));
        std::fs::write(&path, serde_json::to_string_pretty(&self.to_json())? + "\n")?;
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    }
}

/// Writes the table's header for `columns`: their names, then a ratio
/// column (`weft/tokio`) per column after the first.
fn write_header(out: &mut String, columns: &[&str]) {
    write_row(
        out,
        "workload",
        "metric",
        columns,
        columns.iter().map(|c| (*c).to_owned()),
        columns[1..].iter().map(|c| format!("{}/{c}", columns[0])),
    );
}

/// Writes one line of the table: the workload, the metric, a value per
/// column (13 wide, or as wide as a longer column name) and a ratio per
/// column after the first, each ratio as wide as its header (`weft/tokio`)
/// and a space.
fn write_row(
    out: &mut String,
    workload: &str,
    metric: &str,
    columns: &[&str],
    values: impl Iterator<Item = String>,
    ratios: impl Iterator<Item = String>,
) {
    let _ = write!(out, "{workload:<26} {metric:>9}");
    for (column, value) in columns.iter().zip(values) {
        let width = column.len().max(13);
        let _ = write!(out, " {value:>width$}");
    }
    for (column, ratio) in columns[1..].iter().zip(ratios) {
        let width = columns[0].len() + 1 + column.len() + 1;
        let _ = write!(out, " {ratio:>width$}");
    }
    out.push('\n');
}

/// The ending of a metric that holds each repetition's own p99 (of a
/// latency whose summary pools every repetition): its row shows their
/// median, which one disturbed repetition cannot move as it moves the
/// pooled p99.
pub(crate) const PER_REP_P99: &str = "p99_per_rep_ns";

/// A readable unit for a metric given the magnitude of its values.
fn display_unit(metric: &str, smallest: f64) -> (&'static str, f64) {
    if metric.ends_with("_per_s") {
        return if smallest >= 1e3 { ("k/s", 1e3) } else { ("/s", 1.0) };
    }
    if metric == "bytes" {
        return ("B", 1.0);
    }
    if metric.ends_with("sleeps_per_1k") {
        return ("sleeps/1k", 1.0);
    }
    if !metric.ends_with("_ns") {
        return ("", 1.0);
    }
    if smallest >= 1e6 {
        ("ms", 1e6)
    } else if smallest >= 1e3 {
        ("µs", 1e3)
    } else {
        ("ns", 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn json_has_the_shared_shape() {
        let mut report = Report::new("sched");
        report.record("w", "weft", "time_ns", 2.0);
        report.record("w", "weft", "time_ns", 4.0);
        let json = report.to_json();
        assert_eq!(json["suite"], "sched");
        let first = &json["results"][0];
        assert_eq!(first["workload"], "w");
        assert_eq!(first["runtime"], "weft");
        assert_eq!(first["metric"], "time_ns");
        assert_eq!(first["median"], 2.0);
        assert_eq!(first["p99"], 4.0);
    }

    #[test]
    fn runtime_rows_keep_their_columns_and_others_get_their_own() {
        let mut report = Report::new("promise");
        report.record("a", "weft", "time_ns", 1.0);
        report.record("a", "tokio", "time_ns", 2.0);
        report.record("b", "weft", "time_ns", 3.0);
        report.record("b", "rayon", "time_ns", 6.0);
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        let runtimes = format!(
            "{:<26} {:>9} {:>13} {:>13} {:>13} {:>11} {:>10}",
            "workload", "metric", "weft", "tokio", "smol", "weft/tokio", "weft/smol"
        );
        assert_eq!(lines[0], runtimes);
        assert!(lines[1].starts_with('a') && lines[1].ends_with("0.50x          -"));
        assert_eq!(lines[2], "");
        assert!(lines[3].ends_with(" weft/rayon") && !lines[3].contains("tokio"));
        assert!(lines[4].starts_with('b') && lines[4].ends_with(" 0.50x"));
        assert_eq!(lines.len(), 5);
        assert_eq!(Report::new("empty").table().trim_end(), runtimes);
    }

    #[test]
    fn rows_without_weft_are_anchored_on_their_first_column_and_long_names_widen_theirs() {
        let mut report = Report::new("sync");
        report.record("m", "weft-sync", "lock_ns", 1.0);
        report.record("m", "tokio::sync", "lock_ns", 2.0);
        report.record("m", "async-broadcast", "lock_ns", 4.0);
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "{:<26} {:>9} {:>13} {:>13} {:>15} {:>22} {:>26}",
                "workload",
                "metric",
                "weft-sync",
                "tokio::sync",
                "async-broadcast",
                "weft-sync/tokio::sync",
                "weft-sync/async-broadcast"
            )
        );
        assert_eq!(lines[1].len(), lines[0].len());
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["m", "ns", "1.0", "2.0", "4.0", "0.50x", "0.25x"]);
        assert_eq!(lines.len(), 2);
    }
}
