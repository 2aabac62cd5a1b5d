//! The command line of `corral bench`, parsed with clap inside this crate
//! (the `corral` binary hands over everything after `bench`).

use clap::{Parser, ValueEnum};

/// What one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// Create new persistent nodes of `--size` bytes (deleted, untimed, after
    /// the run unless `--keep-nodes`).
    Create,
    /// getData on `--keys` pre-created nodes.
    Get,
    /// setData (any version) on `--keys` pre-created nodes.
    Set,
    /// exists on `--keys` pre-created nodes.
    Exists,
    /// getChildren of a node with 10 children.
    Children,
    /// Delete nodes created before the timed part (`--count` of them, or as
    /// many as creates manage in 1.5 × (warm-up + duration)).
    Delete,
    /// `--read-pct` % getData, the rest setData, on `--keys` nodes.
    Mixed,
    /// N sessions each set a data watch on one node, then one setData;
    /// measures the time until the last watcher is notified (`--rounds`).
    WatchFanout,
    /// Helper for compare.sh: create exactly `--count` nodes of `--size`
    /// bytes under /corral-bench/fill (1000 per parent), as fast as possible.
    Fill,
    /// Helper for compare.sh: connect and read until the server answers or
    /// `--timeout` passes; reports the time it took.
    Probe,
}

impl Op {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::Set => "set",
            Op::Exists => "exists",
            Op::Children => "children",
            Op::Delete => "delete",
            Op::Mixed => "mixed",
            Op::WatchFanout => "watch-fanout",
            Op::Fill => "fill",
            Op::Probe => "probe",
        }
    }
}

/// `corral bench`: load for any ZooKeeper-compatible server.
///
/// Example: `corral bench --hosts 127.0.0.1:2181 --op get --sessions 32
/// --inflight 8 --duration 10 --size 100 --json`
#[derive(Debug, Clone, Parser)]
#[command(name = "corral bench", version)]
pub struct BenchArgs {
    /// Connect string: host:port[,host:port…] (no chroot: nodes go under /corral-bench).
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub hosts: String,

    /// Operation to measure.
    #[arg(long, value_enum, default_value = "get")]
    pub op: Op,

    /// Sessions (one connection each).
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,

    /// Requests in flight per session (tasks sharing the session's pipeline).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,

    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Warm-up seconds: same load, not measured.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Payload bytes of created and set nodes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,

    /// Pre-created nodes read or written by get/set/exists/mixed.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,

    /// mixed: percentage of reads (getData); the rest are setData.
    #[arg(long, default_value_t = 90)]
    pub read_pct: u32,

    /// delete: nodes to pre-create; fill: nodes to create.
    #[arg(long)]
    pub count: Option<u64>,

    /// watch-fanout: rounds of (set watches, one setData, wait for all).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,

    /// probe: seconds to keep trying.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,

    /// probe: the node to read (default: "/").
    #[arg(long)]
    pub path: Option<String>,

    /// Server process ids (comma separated, same machine): their CPU time
    /// (utime+stime) over the measured window and their RSS are reported.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Session timeout asked for, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub session_timeout: f64,

    /// Worker threads of the client runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,

    /// A free-form label copied into the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,

    /// create/delete: leave the run's nodes in place. By default they are
    /// deleted (untimed) after the measured window, so that every run starts
    /// from the same tree whichever server made more of them.
    #[arg(long)]
    pub keep_nodes: bool,

    /// Print one JSON object instead of text; no progress bar.
    #[arg(long)]
    pub json: bool,

    /// No progress bar even on a terminal.
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    /// Checks the combinations clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 || self.inflight == 0 {
            return Err("--sessions and --inflight must be at least 1".into());
        }
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            return Err("--duration must be a positive number of seconds".into());
        }
        if !(self.warmup >= 0.0 && self.warmup.is_finite()) {
            return Err("--warmup must be zero or a positive number of seconds".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.read_pct > 100 {
            return Err("--read-pct must be between 0 and 100".into());
        }
        if self.op == Op::Fill && self.count.is_none() {
            return Err("--op fill needs --count".into());
        }
        if self.op == Op::WatchFanout && self.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if self.hosts.contains('/') {
            return Err("--hosts takes no chroot; the benchmark works under /corral-bench".into());
        }
        Ok(())
    }

    /// Whether to draw a progress bar: on a terminal, unless --json/--quiet.
    pub fn progress_enabled(&self) -> bool {
        !self.json && !self.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}
