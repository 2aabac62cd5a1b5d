//! What a run reports: [`RunReport`], printed as text for people or as one
//! JSON object for `bench/compare.sh` (the field names are that contract).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The result of one `corral bench` run. Fields that do not apply to the
/// operation are `null` in JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// The operation (`create`, `get`, … `watch-fanout`, `fill`, `probe`).
    pub op: String,
    /// `--label`, copied through.
    pub label: String,
    pub hosts: String,
    pub sessions: usize,
    pub inflight: usize,
    pub size_bytes: usize,
    pub warmup_s: f64,
    /// The measured wall time (the timed window, or the whole fill/probe).
    pub duration_s: f64,
    /// Operations that succeeded inside the measured window.
    pub ops: u64,
    /// Operations that failed inside the measured window.
    pub errors: u64,
    /// Failures by error, e.g. `{"ConnectionLoss": 3}`.
    pub error_kinds: BTreeMap<String, u64>,
    /// `ops / duration_s`.
    pub throughput_ops_s: f64,
    /// Latency of the successful operations, in microseconds.
    pub latency_us: Option<Latency>,
    /// CPU and memory of the `--server-pid` processes.
    pub server: Option<ServerUsage>,
    /// CPU seconds this benchmark process used in the measured window
    /// (it shares the machine with the server).
    pub client_cpu_s: f64,
    /// Seconds spent connecting and creating the nodes the run needs.
    pub setup_s: f64,
    /// Seconds spent deleting, after the measured window, the nodes a
    /// create/delete run left (0 with `--keep-nodes` and for other ops).
    #[serde(default)]
    pub cleanup_s: f64,
    /// watch-fanout only.
    pub fanout: Option<Fanout>,
    /// probe only: milliseconds until a read succeeded.
    pub probe_ms: Option<f64>,
    /// When the run ended (seconds since the Unix epoch).
    pub unix_time: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds (`None` when it is empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        Some(Latency {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// Resource use of the server processes named with `--server-pid`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pids: Vec<u32>,
    /// utime + stime over the measured window, summed over the pids.
    pub cpu_s: f64,
    /// `cpu_s / ops` in microseconds (`None` when no operation completed).
    pub cpu_us_per_op: Option<f64>,
    /// Resident set size at the end of the run, summed over the pids.
    pub rss_bytes: u64,
}

/// Watch fan-out: one setData, N one-time data watches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fanout {
    pub watchers: usize,
    /// Per round: milliseconds from sending the setData until the last
    /// watcher was notified.
    pub rounds_ms: Vec<f64>,
    /// Per round: milliseconds until the first watcher was notified.
    pub first_ms: Vec<f64>,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    /// Watches that did not fire within the round's time limit (10 s).
    pub missed: u64,
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl RunReport {
    /// Whether the run did what it was asked (exit code 0).
    pub fn ok(&self) -> bool {
        match self.op.as_str() {
            "probe" => self.probe_ms.is_some(),
            "watch-fanout" => self
                .fanout
                .as_ref()
                .is_some_and(|f| !f.rounds_ms.is_empty() && f.missed == 0),
            _ => self.ops > 0,
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// Parses what [`RunReport::to_json`] printed.
    pub fn from_json(text: &str) -> Result<RunReport, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// A few lines for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "corral bench: op={} hosts={} sessions={} inflight={} size={}B{}",
            self.op,
            self.hosts,
            self.sessions,
            self.inflight,
            self.size_bytes,
            if self.label.is_empty() {
                String::new()
            } else {
                format!(" label={}", self.label)
            }
        );
        if let Some(ms) = self.probe_ms {
            let _ = writeln!(out, "  serving after {ms:.1} ms");
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(
                out,
                "  fan-out to {} watchers: median {:.2} ms, min {:.2} ms, max {:.2} ms over {} rounds{}",
                f.watchers,
                f.median_ms,
                f.min_ms,
                f.max_ms,
                f.rounds_ms.len(),
                if f.missed > 0 {
                    format!(", {} watches missed", f.missed)
                } else {
                    String::new()
                }
            );
        }
        if self.op != "probe" && self.op != "watch-fanout" {
            let _ = writeln!(
                out,
                "  {} ops in {:.2} s = {:.0} ops/s ({} errors{})",
                self.ops,
                self.duration_s,
                self.throughput_ops_s,
                self.errors,
                if self.error_kinds.is_empty() {
                    String::new()
                } else {
                    format!(": {:?}", self.error_kinds)
                }
            );
        }
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                out,
                "  latency µs: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        }
        if let Some(s) = &self.server {
            let per_op = s
                .cpu_us_per_op
                .map(|v| format!(" = {v:.1} µs/op"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  server {:?}: CPU {:.2} s{}, RSS {:.1} MiB",
                s.pids,
                s.cpu_s,
                per_op,
                s.rss_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        let _ = writeln!(
            out,
            "  client CPU {:.2} s, setup {:.2} s, clean-up {:.2} s",
            self.client_cpu_s, self.setup_s, self.cleanup_s
        );
        out
    }
}

/// Counts failures by the error's variant name.
pub fn error_kind(e: &corral_client::Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("Error")
        .to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The median of a non-empty list (sorted copy).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_json() {
        let mut h = new_histogram();
        for v in [100, 200, 300, 5000] {
            h.record(v).unwrap();
        }
        let r = RunReport {
            op: "get".into(),
            ops: 4,
            latency_us: Latency::from_histogram(&h),
            ..Default::default()
        };
        let back = RunReport::from_json(&r.to_json()).unwrap();
        assert_eq!(back.ops, 4);
        assert!(back.ok());
        let l = back.latency_us.unwrap();
        assert_eq!(l.count, 4);
        assert!(l.max >= 5000 && l.p50 >= 199 && l.p50 <= 201);
    }

    #[test]
    fn error_kind_is_the_variant_name() {
        assert_eq!(error_kind(&corral_client::Error::NoNode), "NoNode");
        let e = corral_client::Error::MultiFailed {
            index: 1,
            error: Box::new(corral_client::Error::NodeExists),
        };
        assert_eq!(error_kind(&e), "MultiFailed");
    }

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
