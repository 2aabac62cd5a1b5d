//! The two helpers `bench/compare.sh` needs besides the load itself:
//! `fill` (create exactly N znodes, for the memory and restart figures) and
//! `probe` (wait until a server answers a read, for the restart figure).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_client::{Acl, Client, CreateMode, Error};
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::load::{
    close_all, connect, connect_many, create_all, ensure_path, progress_bar, sample_cpu,
    server_usage,
};
use crate::report::{error_kind, new_histogram, unix_now, Latency, RunReport};
use crate::ROOT;

/// Children per parent under /corral-bench/fill, so no node has a million
/// children.
const FILL_FANOUT: u64 = 1000;

/// The path of fill node `i`.
pub fn fill_path(i: u64) -> String {
    format!("{ROOT}/fill/p{}/n{i}", i / FILL_FANOUT)
}

/// Creates `--count` nodes of `--size` bytes at [`fill_path`]`(0..count)`
/// (existing ones count as created, so an interrupted fill can resume).
pub async fn fill(args: &BenchArgs) -> Result<RunReport, String> {
    let count = args.count.unwrap_or(0);
    let setup_start = Instant::now();
    let admin = connect(args).await?;
    ensure_path(&admin, ROOT).await?;
    ensure_path(&admin, &format!("{ROOT}/fill")).await?;
    let parents: Vec<String> = (0..count.div_ceil(FILL_FANOUT))
        .map(|p| format!("{ROOT}/fill/p{p}"))
        .collect();
    create_all(&admin, &parents, b"").await?;
    let clients = connect_many(args, args.sessions).await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    let next = Arc::new(AtomicU64::new(0));
    let data = Arc::new(vec![b'x'; args.size]);
    let started = Instant::now();
    let usage_start = sample_cpu(&args.server_pid);
    let mut set = JoinSet::new();
    for client in &clients {
        for _ in 0..args.inflight {
            let (client, next, data) = (client.clone(), next.clone(), data.clone());
            set.spawn(fill_task(client, next, data, count));
        }
    }
    let bar = progress_bar(args, 1.0);
    bar.set_length(count);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while !set.is_empty() {
        tokio::select! {
            _ = tick.tick() => bar.set_position(next.load(Ordering::Relaxed).min(count)),
            joined = set.join_next() => {
                if let Some(joined) = joined {
                    joined.map_err(|e| e.to_string())??;
                }
            }
        }
    }
    bar.finish_and_clear();
    let duration_s = started.elapsed().as_secs_f64();
    let usage_end = sample_cpu(&args.server_pid);
    close_all(clients).await;
    let _ = admin.close().await;
    Ok(RunReport {
        op: args.op.name().to_string(),
        label: args.label.clone(),
        hosts: args.hosts.clone(),
        sessions: args.sessions,
        inflight: args.inflight,
        size_bytes: args.size,
        warmup_s: 0.0,
        duration_s,
        ops: count,
        errors: 0,
        error_kinds: Default::default(),
        throughput_ops_s: count as f64 / duration_s.max(1e-9),
        latency_us: None,
        server: server_usage(&args.server_pid, usage_end.0 - usage_start.0, count),
        client_cpu_s: usage_end.1 - usage_start.1,
        setup_s,
        cleanup_s: 0.0,
        fanout: None,
        probe_ms: None,
        unix_time: unix_now(),
    })
}

async fn fill_task(
    client: Client,
    next: Arc<AtomicU64>,
    data: Arc<Vec<u8>>,
    count: u64,
) -> Result<(), String> {
    let acl = Acl::open_unsafe();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return Ok(());
        }
        let path = fill_path(i);
        let mut attempts = 0;
        loop {
            match client
                .create(&path, &data, &acl, CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(Error::NodeExists) => break,
                Err(e) if e.is_connection_loss() && attempts < 10 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("creating {path}: {e} ({})", error_kind(&e))),
            }
        }
    }
}

/// Keeps trying to connect and read `--path` (default "/") until it works
/// or `--timeout` passes. The figure is from the probe's start.
pub async fn probe(args: &BenchArgs) -> Result<RunReport, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let path = args.path.clone().unwrap_or_else(|| "/".to_string());
    let hosts: Vec<String> = args.hosts.split(',').map(str::to_string).collect();
    let mut last_error = String::from("no attempt made");
    let mut hist = new_histogram();
    let mut attempt_timeout = Duration::from_millis(100);
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "{} not serving {path} after {:.1} s: {last_error}",
                args.hosts, args.timeout
            ));
        }
        // A refused TCP connect is cheap to retry; the client's own
        // reconnect back-off (up to 1 s) would blur the figure.
        let mut reachable = false;
        for h in &hosts {
            if tokio::net::TcpStream::connect(h.as_str()).await.is_ok() {
                reachable = true;
                break;
            }
        }
        if !reachable {
            last_error = "connection refused".into();
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // Short handshake attempts, doubling while they time out: a server
        // that refuses sessions while it loads is retried every ~100 ms
        // instead of after the client's back-off.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = Client::builder()
            .session_timeout(Duration::from_secs_f64(args.session_timeout))
            .connect_timeout(remaining.min(attempt_timeout))
            .connect(&args.hosts)
            .await;
        let client = match attempt {
            Ok(c) => c,
            Err(e) => {
                last_error = e.to_string();
                attempt_timeout = (attempt_timeout * 2).min(Duration::from_secs(2));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let sent = Instant::now();
        match client.get_data(&path).await {
            Ok(_) => {
                hist.saturating_record(sent.elapsed().as_micros() as u64);
                let probe_ms = started.elapsed().as_secs_f64() * 1e3;
                let _ = client.close().await;
                return Ok(RunReport {
                    op: args.op.name().to_string(),
                    label: args.label.clone(),
                    hosts: args.hosts.clone(),
                    sessions: 1,
                    inflight: 1,
                    duration_s: probe_ms / 1e3,
                    ops: 1,
                    latency_us: Latency::from_histogram(&hist),
                    server: server_usage(&args.server_pid, 0.0, 1),
                    probe_ms: Some(probe_ms),
                    unix_time: unix_now(),
                    ..Default::default()
                });
            }
            Err(e) => {
                last_error = format!("reading {path}: {e}");
                let _ = client.close().await;
                if e == Error::NoNode {
                    return Err(format!("{path} does not exist on {}", args.hosts));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
