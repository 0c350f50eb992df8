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

    /// The table: medians per runtime and Weft's ratios (p50 and p99 rows for
    /// histogram summaries).
    pub(crate) fn table(&self) -> String {
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for s in &self.series {
            if !rows.contains(&(s.workload.as_str(), s.metric)) {
                rows.push((s.workload.as_str(), s.metric));
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<26} {:>9} {:>13} {:>13} {:>13} {:>11} {:>10}",
            "workload", "metric", "weft", "tokio", "smol", "weft/tokio", "weft/smol"
        );
        for (workload, metric) in rows {
            // Histogram summaries (latencies) get a p99 row under the p50 one:
            // their tails are what a service is judged on.
            let summarised = self
                .series
                .iter()
                .any(|s| s.workload == workload && s.metric == metric && s.summary.is_some());
            let stats: &[(&str, Stat)] = if summarised {
                &[(" p50", Series::median), (" p99", Series::p99)]
            } else {
                &[("", Series::median)]
            };
            for &(label, stat) in stats {
                let value_of = |rt: &str| self.find(workload, rt, metric).map_or(f64::NAN, stat);
                let (w, t, s) = (value_of("weft"), value_of("tokio"), value_of("smol"));
                let smallest = [w, t, s]
                    .into_iter()
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
                let _ = writeln!(
                    out,
                    "{:<26} {:>9} {:>13} {:>13} {:>13} {:>11} {:>10}",
                    workload,
                    format!("{unit}{label}"),
                    value(w),
                    value(t),
                    value(s),
                    ratio(w / t),
                    ratio(w / s),
                );
            }
        }
        out
    }

    pub(crate) fn print(&self) {
        println!(
            "\n{} (medians, and p50/p99 over every sample for latencies; on _ns metrics lower is better and a ratio below 1.0 favours Weft; \
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

/// A readable unit for a metric given the magnitude of its values.
fn display_unit(metric: &str, smallest: f64) -> (&'static str, f64) {
    if metric.ends_with("_per_s") {
        return if smallest >= 1e3 { ("k/s", 1e3) } else { ("/s", 1.0) };
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
}
