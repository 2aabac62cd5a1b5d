//! The timed load: N sessions × K tasks, each task issuing one request at a
//! time on its session (so each session has K in flight), for warm-up +
//! duration seconds. Only replies that arrive inside the measured window
//! count; each task keeps its own histogram, merged at the end.
//!
//! Node layout (all under [`crate::ROOT`]): `keys-<size>/k<i>` for
//! get/set/exists/mixed and `kids/c0..c9` for children, left in place so runs
//! can be repeated; `create-<run>/…` and `delete-<run>/…` per run, deleted
//! after the measured window (untimed) unless `--keep-nodes`: a faster server
//! makes more nodes in a create run, and the next run must not find it
//! holding a bigger tree (bigger snapshots) than the server it is compared with.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_client::{Acl, Client, CreateMode, Error};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::args::{BenchArgs, Op};
use crate::procstat;
use crate::report::{error_kind, new_histogram, unix_now, Latency, RunReport, ServerUsage};
use crate::ROOT;

/// Children of the node that `children` lists.
const KIDS: usize = 10;
/// Requests in flight while creating the nodes a run needs.
const SETUP_IN_FLIGHT: usize = 64;

/// What one task does and where, shared by all tasks of a run.
struct Plan {
    op: Op,
    data: Vec<u8>,
    keys: Vec<String>,
    kids_parent: String,
    run_parent: String,
    read_pct: u32,
    measure_from: Instant,
    end: Instant,
    /// Replies so far (all phases), for the progress bar.
    done: AtomicU64,
    /// Tasks still running.
    running: AtomicUsize,
}

/// What one task measured.
struct TaskResult {
    hist: Histogram<u64>,
    ops: u64,
    errors: BTreeMap<String, u64>,
    /// Index of the next node this task would have created or deleted.
    next_node: u64,
}

/// Runs create/get/set/exists/children/delete/mixed and reports.
pub async fn run(args: &BenchArgs) -> Result<RunReport, String> {
    let setup_start = Instant::now();
    let run_id = run_id();
    let admin = connect(args).await?;
    ensure_path(&admin, ROOT).await?;
    let data = vec![b'x'; args.size];
    let mut keys = Vec::new();
    let kids_parent = format!("{ROOT}/kids");
    let run_parent = format!("{ROOT}/{}-{run_id}", args.op.name());
    match args.op {
        Op::Get | Op::Set | Op::Exists | Op::Mixed => {
            let parent = format!("{ROOT}/keys-{}", args.size);
            ensure_path(&admin, &parent).await?;
            keys = (0..args.keys).map(|i| format!("{parent}/k{i}")).collect();
            create_all(&admin, &keys, &data).await?;
        }
        Op::Children => {
            ensure_path(&admin, &kids_parent).await?;
            let kids: Vec<String> = (0..KIDS).map(|i| format!("{kids_parent}/c{i}")).collect();
            create_all(&admin, &kids, &data).await?;
        }
        Op::Create | Op::Delete => ensure_path(&admin, &run_parent).await?,
        Op::WatchFanout | Op::Fill | Op::Probe => unreachable!("not a load op"),
    }
    let clients = connect_many(args, args.sessions).await?;
    let prefilled = if args.op == Op::Delete {
        Some(prefill_for_delete(args, &clients, &run_parent, &data).await?)
    } else {
        None
    };
    let setup_s = setup_start.elapsed().as_secs_f64();

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let plan = Arc::new(Plan {
        op: args.op,
        data,
        keys,
        kids_parent,
        run_parent,
        read_pct: args.read_pct,
        measure_from,
        end,
        done: AtomicU64::new(0),
        running: AtomicUsize::new(args.sessions * args.inflight),
    });
    let mut tasks = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for k in 0..args.inflight {
            let task_index = s * args.inflight + k;
            let limit = prefilled.as_ref().map(|p| p[task_index]);
            let task = run_task(plan.clone(), client.clone(), s, k, task_index as u64, limit);
            tasks.spawn(async move { (task_index, task.await) });
        }
    }

    let bar = progress_bar(args, args.warmup + args.duration);
    let mut usage_start: Option<(f64, f64)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last = (Instant::now(), 0u64);
    let measure_to = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(measure_from.into()), if usage_start.is_none() => {
                usage_start = Some(sample_cpu(&args.server_pid));
            }
        }
        let now = Instant::now();
        let done = plan.done.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, done);
        bar.set_position(now.duration_since(start).as_millis() as u64);
        bar.set_message(if now < measure_from {
            format!("warm-up {rate:.0} ops/s")
        } else {
            format!("{rate:.0} ops/s")
        });
        if now >= end || plan.running.load(Ordering::Relaxed) == 0 {
            break now.min(end);
        }
    };
    let usage_end = sample_cpu(&args.server_pid);
    let usage_start = usage_start.unwrap_or(usage_end);
    bar.finish_and_clear();

    let mut hist = new_histogram();
    let mut ops = 0;
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut left = vec![0..0; args.sessions * args.inflight];
    while let Some(joined) = tasks.join_next().await {
        let (task_index, r) = joined.map_err(|e| format!("a load task failed: {e}"))?;
        hist.add(&r.hist).map_err(|e| e.to_string())?;
        ops += r.ops;
        for (k, v) in r.errors {
            *error_kinds.entry(k).or_default() += v;
        }
        left[task_index] = match (args.op, &prefilled) {
            (Op::Create, _) => 0..r.next_node,
            (Op::Delete, Some(p)) => r.next_node..p[task_index],
            _ => 0..0,
        };
    }
    // Sampled before the clean-up, which changes the server's memory.
    let server = server_usage(&args.server_pid, usage_end.0 - usage_start.0, ops);
    let mut cleanup_s = 0.0;
    if matches!(args.op, Op::Create | Op::Delete) && !args.keep_nodes {
        let cleanup_start = Instant::now();
        delete_left(args, &clients, &plan.run_parent, &left).await?;
        match admin.delete(&plan.run_parent, None).await {
            Ok(()) | Err(Error::NoNode) => {}
            // A request that failed with a lost connection may have left a
            // node behind; that is not worth failing the run for.
            Err(Error::NotEmpty) => eprintln!(
                "corral bench: {} kept a node a failed request may have left",
                plan.run_parent
            ),
            Err(e) => return Err(format!("cleaning up {}: {e}", plan.run_parent)),
        }
        cleanup_s = cleanup_start.elapsed().as_secs_f64();
    }
    close_all(clients).await;
    let _ = admin.close().await;

    let duration_s = measure_to
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    Ok(RunReport {
        op: args.op.name().to_string(),
        label: args.label.clone(),
        hosts: args.hosts.clone(),
        sessions: args.sessions,
        inflight: args.inflight,
        size_bytes: args.size,
        warmup_s: args.warmup,
        duration_s,
        ops,
        errors: error_kinds.values().sum(),
        error_kinds,
        throughput_ops_s: if duration_s > 0.0 {
            ops as f64 / duration_s
        } else {
            0.0
        },
        latency_us: Latency::from_histogram(&hist),
        server,
        client_cpu_s: usage_end.1 - usage_start.1,
        setup_s,
        cleanup_s,
        fanout: None,
        probe_ms: None,
        unix_time: unix_now(),
    })
}

/// One task: one request at a time on its session until the end (or, for
/// delete, until its pre-created nodes run out).
async fn run_task(
    plan: Arc<Plan>,
    client: Client,
    session: usize,
    slot: usize,
    seed: u64,
    limit: Option<u64>,
) -> TaskResult {
    let mut result = TaskResult {
        hist: new_histogram(),
        ops: 0,
        errors: BTreeMap::new(),
        next_node: 0,
    };
    let mut rng = XorShift::new(seed);
    let acl = Acl::open_unsafe();
    let mut n: u64 = 0;
    loop {
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        let sent = Instant::now();
        if sent >= plan.end {
            break;
        }
        let outcome = match plan.op {
            Op::Create => {
                let path = task_node(&plan.run_parent, session, slot, n);
                client
                    .create(&path, &plan.data, &acl, CreateMode::Persistent)
                    .await
                    .map(drop)
            }
            Op::Delete => {
                let path = task_node(&plan.run_parent, session, slot, n);
                client.delete(&path, None).await
            }
            Op::Get => client.get_data(rng.pick(&plan.keys)).await.map(drop),
            Op::Set => client
                .set_data(rng.pick(&plan.keys), &plan.data, None)
                .await
                .map(drop),
            Op::Exists => client.exists(rng.pick(&plan.keys)).await.map(drop),
            Op::Children => client.get_children(&plan.kids_parent).await.map(drop),
            Op::Mixed => {
                let key = rng.pick(&plan.keys);
                if (rng.next() % 100) < u64::from(plan.read_pct) {
                    client.get_data(key).await.map(drop)
                } else {
                    client.set_data(key, &plan.data, None).await.map(drop)
                }
            }
            Op::WatchFanout | Op::Fill | Op::Probe => unreachable!("not a load op"),
        };
        n += 1;
        let now = Instant::now();
        plan.done.fetch_add(1, Ordering::Relaxed);
        let counted = now >= plan.measure_from && now <= plan.end;
        match outcome {
            Ok(()) => {
                if counted {
                    result.ops += 1;
                    result
                        .hist
                        .saturating_record(now.duration_since(sent).as_micros() as u64);
                }
            }
            Err(e) => {
                if counted {
                    *result.errors.entry(error_kind(&e)).or_default() += 1;
                }
                if e.is_terminal() || e == Error::ClientClosed {
                    break;
                }
                if e.is_connection_loss() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    plan.running.fetch_sub(1, Ordering::Relaxed);
    result.next_node = n;
    result
}

/// The `n`th node that task `slot` of session `session` creates or deletes
/// under `parent`: the one naming create, delete, their pre-fill and their
/// clean-up agree on.
fn task_node(parent: &str, session: usize, slot: usize, n: u64) -> String {
    format!("{parent}/s{session}k{slot}n{n}")
}

/// Deletes, untimed, the nodes `s<s>k<k>n<i>` under `parent` for the index
/// range each task left (`left[task]`), each task's range on its own
/// session; nodes already gone (a create that failed) are skipped.
async fn delete_left(
    args: &BenchArgs,
    clients: &[Client],
    parent: &str,
    left: &[std::ops::Range<u64>],
) -> Result<(), String> {
    let mut set = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for k in 0..args.inflight {
            let client = client.clone();
            let parent = parent.to_string();
            let range = left[s * args.inflight + k].clone();
            set.spawn(async move {
                for n in range {
                    let path = task_node(&parent, s, k, n);
                    match client.delete(&path, None).await {
                        Ok(()) | Err(Error::NoNode) => {}
                        Err(e) => return Err(format!("cleaning up {path}: {e}")),
                    }
                }
                Ok(())
            });
        }
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Creates, untimed, the nodes `delete` will remove: every task creates its
/// own `s<s>k<k>n<0..>` until `--count` nodes exist in all or, without
/// `--count`, for 1.5 × (warm-up + duration). Returns each task's count.
async fn prefill_for_delete(
    args: &BenchArgs,
    clients: &[Client],
    parent: &str,
    data: &[u8],
) -> Result<Vec<u64>, String> {
    let tasks_total = (args.sessions * args.inflight) as u64;
    let per_task = args.count.map(|c| c.div_ceil(tasks_total));
    let deadline = Instant::now() + Duration::from_secs_f64(1.5 * (args.warmup + args.duration));
    let mut set = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for k in 0..args.inflight {
            let client = client.clone();
            let parent = parent.to_string();
            let data = data.to_vec();
            let index = s * args.inflight + k;
            set.spawn(async move {
                let acl = Acl::open_unsafe();
                let mut n = 0u64;
                loop {
                    match per_task {
                        Some(limit) if n >= limit => break,
                        None if Instant::now() >= deadline => break,
                        _ => {}
                    }
                    let path = task_node(&parent, s, k, n);
                    match client
                        .create(&path, &data, &acl, CreateMode::Persistent)
                        .await
                    {
                        Ok(_) | Err(Error::NodeExists) => n += 1,
                        Err(e) => return Err(format!("pre-creating {path}: {e}")),
                    }
                }
                Ok((index, n))
            });
        }
    }
    let mut counts = vec![0; args.sessions * args.inflight];
    while let Some(joined) = set.join_next().await {
        let (index, n) = joined.map_err(|e| e.to_string())??;
        counts[index] = n;
    }
    Ok(counts)
}

/// A session with the benchmark's settings.
pub async fn connect(args: &BenchArgs) -> Result<Client, String> {
    Client::builder()
        .session_timeout(Duration::from_secs_f64(args.session_timeout))
        .connect_timeout(Duration::from_secs(15))
        .max_in_flight(args.inflight.max(SETUP_IN_FLIGHT) * 2)
        .connect(&args.hosts)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.hosts))
}

/// `count` sessions, at most 64 handshakes at a time.
pub async fn connect_many(args: &BenchArgs, count: usize) -> Result<Vec<Client>, String> {
    let gate = Arc::new(Semaphore::new(64));
    let mut set = JoinSet::new();
    for i in 0..count {
        let args = args.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            connect(&args).await.map(|c| (i, c))
        });
    }
    let mut clients: Vec<Option<Client>> = vec![None; count];
    while let Some(joined) = set.join_next().await {
        let (i, c) = joined.map_err(|e| e.to_string())??;
        clients[i] = Some(c);
    }
    Ok(clients.into_iter().flatten().collect())
}

/// Closes sessions concurrently; gives up after 5 s (the server expires
/// the rest).
pub async fn close_all(clients: Vec<Client>) {
    let mut set = JoinSet::new();
    for c in clients {
        set.spawn(async move {
            let _ = c.close().await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while set.join_next().await.is_some() {}
    })
    .await;
}

/// Creates `path` (empty, persistent) unless it exists; parents must exist.
pub async fn ensure_path(client: &Client, path: &str) -> Result<(), String> {
    match client
        .create(path, b"", &Acl::open_unsafe(), CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(e) => Err(format!("cannot create {path}: {e}")),
    }
}

/// Creates every path with `data` (existing ones are left alone), 64 in
/// flight on one session.
pub async fn create_all(client: &Client, paths: &[String], data: &[u8]) -> Result<(), String> {
    let gate = Arc::new(Semaphore::new(SETUP_IN_FLIGHT));
    let mut set = JoinSet::new();
    for path in paths {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let client = client.clone();
        let path = path.clone();
        let data = data.to_vec();
        set.spawn(async move {
            let _permit = permit;
            match client
                .create(&path, &data, &Acl::open_unsafe(), CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(Error::NodeExists) => Ok(()),
                Err(e) => Err(format!("cannot create {path}: {e}")),
            }
        });
        while let Some(done) = set.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// (server CPU seconds summed over `pids`, this process's CPU seconds).
pub fn sample_cpu(pids: &[u32]) -> (f64, f64) {
    (
        procstat::total_cpu_seconds(pids),
        procstat::own_cpu_seconds(),
    )
}

/// The server part of a report (`None` without `--server-pid`).
pub fn server_usage(pids: &[u32], cpu_s: f64, ops: u64) -> Option<ServerUsage> {
    if pids.is_empty() {
        return None;
    }
    Some(ServerUsage {
        pids: pids.to_vec(),
        cpu_s,
        cpu_us_per_op: (ops > 0).then(|| cpu_s * 1e6 / ops as f64),
        rss_bytes: pids.iter().map(|&p| procstat::rss_bytes(p)).sum(),
    })
}

/// A bar over `total_s` seconds (position in ms) on stderr, or a hidden one
/// when not on a terminal or with --json/--quiet.
pub fn progress_bar(args: &BenchArgs, total_s: f64) -> ProgressBar {
    if !args.progress_enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new((total_s * 1000.0) as u64);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} {} [{{elapsed}}/{:.0}s] {{wide_bar}} {{msg}}",
        args.op.name(),
        total_s
    )) {
        bar.set_style(style);
    }
    bar
}

/// A name unique to this run, so repeated runs never collide.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos)
}

/// A tiny deterministic generator for picking keys (no per-op syscall, no
/// shared state).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[(self.next() % items.len() as u64) as usize]
    }
}
