//! Watch fan-out: N sessions each set a one-time data watch on the same
//! node, then one more session sets its data once; the round's figure is
//! the time from sending that setData until the last watcher has its
//! event. Repeated `--rounds` times (watches are one-time, so each round
//! sets them again).

use std::time::{Duration, Instant};

use indicatif::ProgressStyle;
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::load::{
    close_all, connect, connect_many, ensure_path, progress_bar, run_id, sample_cpu, server_usage,
};
use crate::report::{median, new_histogram, unix_now, Fanout, Latency, RunReport};
use crate::ROOT;

/// How long a round waits for its watches before counting them as missed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between rounds, so one round's tail does not overlap the next.
const ROUND_GAP: Duration = Duration::from_millis(100);

pub async fn run(args: &BenchArgs) -> Result<RunReport, String> {
    let setup_start = Instant::now();
    let writer = connect(args).await?;
    ensure_path(&writer, ROOT).await?;
    let node = format!("{ROOT}/fanout-{}", run_id());
    let data = vec![b'x'; args.size];
    ensure_path(&writer, &node).await?;
    let watchers = connect_many(args, args.sessions).await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    let bar = progress_bar(args, args.rounds as f64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} watch-fanout round {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_length(args.rounds as u64);
    let mut hist = new_histogram();
    let mut rounds_ms = Vec::new();
    let mut first_ms = Vec::new();
    let mut missed = 0u64;
    let mut notified = 0u64;
    let usage_start = sample_cpu(&args.server_pid);
    let started = Instant::now();
    for _ in 0..args.rounds {
        // Every watcher sets its watch; all must be registered before the write.
        let mut registering = JoinSet::new();
        for c in &watchers {
            let c = c.clone();
            let node = node.clone();
            registering.spawn(async move { c.get_data_watch(&node).await.map(|(_, _, w)| w) });
        }
        let mut waiting = JoinSet::new();
        while let Some(joined) = registering.join_next().await {
            let watch = joined
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot set a watch on {node}: {e}"))?;
            waiting.spawn(async move {
                tokio::time::timeout(ROUND_TIMEOUT, watch)
                    .await
                    .ok()
                    .map(|_| Instant::now())
            });
        }
        let sent = Instant::now();
        writer
            .set_data(&node, &data, None)
            .await
            .map_err(|e| format!("setData on {node}: {e}"))?;
        let mut first: Option<Instant> = None;
        let mut last: Option<Instant> = None;
        while let Some(joined) = waiting.join_next().await {
            match joined.map_err(|e| e.to_string())? {
                Some(at) => {
                    notified += 1;
                    hist.saturating_record(at.saturating_duration_since(sent).as_micros() as u64);
                    first = Some(first.map_or(at, |f| f.min(at)));
                    last = Some(last.map_or(at, |l| l.max(at)));
                }
                None => missed += 1,
            }
        }
        if let (Some(first), Some(last)) = (first, last) {
            rounds_ms.push(last.saturating_duration_since(sent).as_secs_f64() * 1e3);
            first_ms.push(first.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
        bar.inc(1);
        bar.set_message(format!(
            "last {:.1} ms",
            rounds_ms.last().copied().unwrap_or(0.0)
        ));
        tokio::time::sleep(ROUND_GAP).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let usage_end = sample_cpu(&args.server_pid);
    bar.finish_and_clear();
    close_all(watchers).await;
    let _ = writer.close().await;

    let fanout = Fanout {
        watchers: args.sessions,
        min_ms: if rounds_ms.is_empty() {
            0.0
        } else {
            rounds_ms.iter().copied().fold(f64::INFINITY, f64::min)
        },
        max_ms: rounds_ms.iter().copied().fold(0.0, f64::max),
        median_ms: median(&rounds_ms),
        rounds_ms,
        first_ms,
        missed,
    };
    Ok(RunReport {
        op: args.op.name().to_string(),
        label: args.label.clone(),
        hosts: args.hosts.clone(),
        sessions: args.sessions,
        inflight: 1,
        size_bytes: args.size,
        warmup_s: 0.0,
        duration_s: elapsed,
        ops: notified,
        errors: missed,
        error_kinds: if missed > 0 {
            [("WatchMissed".to_string(), missed)].into()
        } else {
            Default::default()
        },
        throughput_ops_s: notified as f64 / elapsed.max(1e-9),
        latency_us: Latency::from_histogram(&hist),
        server: server_usage(&args.server_pid, usage_end.0 - usage_start.0, notified),
        client_cpu_s: usage_end.1 - usage_start.1,
        setup_s,
        cleanup_s: 0.0,
        fanout: Some(fanout),
        probe_ms: None,
        unix_time: unix_now(),
    })
}
