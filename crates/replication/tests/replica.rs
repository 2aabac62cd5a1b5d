//! A standalone replica on real files: proposals are applied in one order, restarts replay
//! exactly the committed entries, snapshots bound the log, and `sync` (read_index) works.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::VecApplier;
use corral_replication::Replica;
use corral_replication::ReplicaConfig;
use corral_replication::ReplicationError;
use corral_replication::Role;

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path) -> ReplicaConfig {
    let mut cfg = ReplicaConfig::standalone(1, dir.join("data"), dir.join("datalog"));
    cfg.segment_max_bytes = 4096;
    cfg
}

async fn propose_all(replica: &Replica, payloads: impl IntoIterator<Item = String>) {
    for p in payloads {
        replica.propose(Bytes::from(p)).await.expect("propose");
    }
}

/// Wait until `applier` holds `n` entries.
async fn wait_len(applier: &VecApplier, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while applier.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} entries applied",
            applier.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait until no snapshot is being written: openraft builds them in the background, so one
/// may still be in flight (a `.tmp` file) when the purge the test waits for has happened;
/// shutting down then leaves the temporary file behind, as a crash would.
async fn wait_snapshots_settled(replica: &Replica, dir: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = (
        replica.metrics().snapshot_index,
        replica.metrics().snapshots_built,
    );
    let mut stable_since = tokio::time::Instant::now();
    loop {
        let building = std::fs::read_dir(dir.join("data/snapshots"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .unwrap_or(false);
        let m = replica.metrics();
        let now = (m.snapshot_index, m.snapshots_built);
        if now != last || building {
            last = now;
            stable_since = tokio::time::Instant::now();
        } else if stable_since.elapsed() > Duration::from_millis(300) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshots still being written: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn strings(v: Vec<Vec<u8>>) -> Vec<String> {
    v.into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_is_leader_at_once_and_applies_proposals_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let applier = Arc::new(VecApplier::default());
    let replica = Replica::open(config(dir.path()), applier.clone())
        .await
        .unwrap();
    assert!(replica.is_leader());
    assert_eq!(replica.leader_id(), Some(1));
    assert!(replica.current_term() >= 1);

    let want: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    propose_all(&replica, want.clone()).await;
    wait_len(&applier, 100).await;
    assert_eq!(strings(applier.payloads()), want);

    let entries = applier.entries();
    assert!(
        entries.windows(2).all(|w| w[0].1 < w[1].1),
        "indexes strictly increase"
    );
    assert!(entries
        .iter()
        .all(|(term, _, _)| *term == replica.current_term()));
    assert_eq!(
        replica.last_applied_index(),
        Some(entries.last().unwrap().1)
    );

    let m = replica.metrics();
    assert_eq!(m.role, Role::Leader);
    assert_eq!(m.voters, vec![1]);
    assert_eq!(m.entries_applied, 100);
    assert!(m.log_fsyncs > 0);
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_every_committed_entry_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<String> = (0..300).map(|i| format!("entry-{i}")).collect();
    {
        let applier = Arc::new(VecApplier::default());
        let replica = Replica::open(config(dir.path()), applier.clone())
            .await
            .unwrap();
        propose_all(&replica, want.clone()).await;
        wait_len(&applier, want.len()).await;
        replica.shutdown().await.unwrap();
    }
    for _ in 0..2 {
        let applier = Arc::new(VecApplier::default());
        let replica = Replica::open(config(dir.path()), applier.clone())
            .await
            .unwrap();
        // Open returns after the replay: no waiting needed, and nothing is applied twice.
        assert_eq!(strings(applier.payloads()), want);
        assert!(replica.is_leader());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(applier.len(), want.len());
        replica.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_proposals_from_many_tasks_are_applied_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let applier = Arc::new(VecApplier::default());
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 1 << 20;
    cfg.proposal_queue_capacity = 256;
    let replica = Arc::new(Replica::open(cfg, applier.clone()).await.unwrap());

    const TASKS: usize = 8;
    const PER_TASK: usize = 1250;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let replica = replica.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                replica
                    .propose(Bytes::from(format!("{t}:{i}")))
                    .await
                    .expect("propose");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    wait_len(&applier, TASKS * PER_TASK).await;

    // Each task's proposals keep their order; all are there once; indexes increase.
    let mut next_per_task: HashMap<usize, usize> = HashMap::new();
    for p in strings(applier.payloads()) {
        let (t, i) = p.split_once(':').unwrap();
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        let next = next_per_task.entry(t).or_default();
        assert_eq!(*next, i, "task {t} proposals out of order");
        *next += 1;
    }
    assert!(next_per_task.values().all(|n| *n == PER_TASK));
    let entries = applier.entries();
    assert!(entries.windows(2).all(|w| w[0].1 < w[1].1));

    let m = replica.metrics();
    assert_eq!(m.proposals_submitted, (TASKS * PER_TASK) as u64);
    assert!(
        m.log_fsyncs < (TASKS * PER_TASK) as u64 / 4,
        "proposals should share fsyncs: {} fsyncs for {} entries",
        m.log_fsyncs,
        TASKS * PER_TASK
    );
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_a_restart_restores_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snap_count = 50;
    cfg.logs_kept_after_snapshot = 0;
    let want: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
    {
        let applier = Arc::new(VecApplier::default());
        let replica = Replica::open(cfg.clone(), applier.clone()).await.unwrap();
        // In rounds, so that snapshots are taken along the way (openraft checks the policy
        // after each applied batch).
        for round in want.chunks(60) {
            // Counted before proposing: entries of this round may apply meanwhile.
            let done = applier.len() + round.len();
            propose_all(&replica, round.to_vec()).await;
            wait_len(&applier, done).await;
        }
        // Let the last snapshot and purge finish.
        let deadline = tokio::time::Instant::now() + WAIT;
        while replica.metrics().purged_index.unwrap_or(0) < 500 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no purge: {:?}",
                replica.metrics()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait_snapshots_settled(&replica, dir.path()).await;
        let m = replica.metrics();
        assert!(m.snapshots_built >= 5, "{m:?}");
        replica.shutdown().await.unwrap();
    }
    let snapshots = std::fs::read_dir(dir.path().join("data/snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, 3, "the newest 3 snapshots are kept");
    // Old segments are gone: only what the oldest kept snapshot needs remains.
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("datalog/log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        log_bytes < 600 * 40,
        "log should have been purged: {log_bytes} bytes left"
    );

    let applier = Arc::new(VecApplier::default());
    let replica = Replica::open(cfg, applier.clone()).await.unwrap();
    assert_eq!(
        *applier.restores.lock().unwrap(),
        1,
        "state comes from one snapshot restore"
    );
    assert_eq!(strings(applier.payloads()), want);
    propose_all(&replica, ["after".to_string()]).await;
    wait_len(&applier, want.len() + 1).await;
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_newest_snapshot_falls_back_to_an_older_one_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snap_count = 40;
    cfg.logs_kept_after_snapshot = 0;
    let want: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    {
        let applier = Arc::new(VecApplier::default());
        let replica = Replica::open(cfg.clone(), applier.clone()).await.unwrap();
        for round in want.chunks(50) {
            // Counted before proposing: entries of this round may apply meanwhile.
            let done = applier.len() + round.len();
            propose_all(&replica, round.to_vec()).await;
            wait_len(&applier, done).await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while replica.metrics().purged_index.unwrap_or(0) < 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no purge: {:?}",
                replica.metrics()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait_snapshots_settled(&replica, dir.path()).await;
        replica.shutdown().await.unwrap();
    }
    let mut snaps: Vec<_> = std::fs::read_dir(dir.path().join("data/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    snaps.sort();
    let newest = snaps.pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&newest, bytes).unwrap();

    let applier = Arc::new(VecApplier::default());
    let replica = Replica::open(cfg, applier.clone()).await.unwrap();
    assert_eq!(strings(applier.payloads()), want);
    assert!(std::path::PathBuf::from(format!("{}.corrupt", newest.display())).exists());
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_index_returns_after_every_earlier_write_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let applier = Arc::new(VecApplier::default());
    let replica = Replica::open(config(dir.path()), applier.clone())
        .await
        .unwrap();
    propose_all(&replica, (0..50).map(|i| format!("r{i}"))).await;
    // The proposals are queued, maybe not yet committed; the barrier must wait for whatever
    // is committed when it is taken, and a second barrier after all are applied covers all.
    wait_len(&applier, 50).await;
    let index = replica.read_index().await.unwrap();
    assert!(index >= applier.entries().last().unwrap().1);
    assert!(replica.last_applied_index().unwrap() >= index);
    replica.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(config(dir.path()), Arc::new(VecApplier::default()))
        .await
        .unwrap();
    replica.shutdown().await.unwrap();
    replica.shutdown().await.unwrap();
    assert!(matches!(
        replica.propose(Bytes::from_static(b"x")).await,
        Err(ReplicationError::ShutDown)
    ));
    assert!(matches!(
        replica.read_index().await,
        Err(ReplicationError::ShutDown)
    ));
    assert!(!replica.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.election_timeout_min_ms = 500;
    cfg.election_timeout_max_ms = 400;
    match Replica::open(cfg, Arc::new(VecApplier::default())).await {
        Err(ReplicationError::Config(m)) => assert!(m.contains("election_timeout"), "{m}"),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("expected a config error"),
    }
}
