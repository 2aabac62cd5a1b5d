//! Timed work of the server: expiring sessions whose deadline passed and
//! reaping empty containers and expired TTL nodes. Both only *propose*
//! transactions; what they do happens at apply time, as every write does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_tree::TxnOp;

use crate::core::Shared;
use crate::entry::LogEntry;
use crate::reconfig::PeerMessage;
use crate::write_path::{stamp, wall_clock_ms};

/// Checks session deadlines every tick (ZooKeeper's expiry interval) on
/// the leader; on the other servers, reports the sessions their clients
/// touched to the leader, which alone decides expiry.
pub async fn expire_sessions(shared: Arc<Shared>) {
    let tick = Duration::from_millis(shared.config.tick_time_ms.max(1) as u64);
    let mut interval = tokio::time::interval((tick / 2).min(Duration::from_millis(500)));
    let mut was_leader = false;
    let mut reconciled = crate::reconfig::Reconciler::default();
    loop {
        interval.tick().await;
        let leader = shared.is_leader();
        let ensemble = !shared.config.servers.is_empty();
        let serving = shared.is_serving();
        let touched: Vec<i64> = {
            let mut core = shared.core.lock();
            if ensemble && serving && shared.config.readonly_mode_enabled {
                let closed = core.drop_read_only_conns();
                if closed > 0 {
                    tracing::info!(closed, "quorum is back: closing the read-only connections");
                }
            }
            if ensemble && !serving {
                // ZooKeeper's peer shuts its clients out when it leaves the
                // quorum: they reconnect to a server that has one (their
                // sessions live on), and a client of a cut-off minority sees
                // itself disconnected instead of holding on as if nothing
                // happened (a leader latch must learn it may have lost).
                let closed = core.drop_read_write_conns();
                if closed > 0 {
                    tracing::info!(closed, "out of quorum: closing the client connections");
                }
            }
            if leader && !was_leader {
                // A new leader has not seen the others' touches: give every
                // session a full timeout from now, as ZooKeeper's leader does.
                core.sessions.touch_all();
            }
            core.touched.drain().collect()
        };
        was_leader = leader;
        if !leader {
            if !touched.is_empty() {
                if let Some(replica) = shared.replica.get() {
                    let report = PeerMessage::Touches(touched).encode();
                    let _ = replica.send_to_leader(report.into());
                }
            }
            continue;
        }
        if !shared.config.servers.is_empty() {
            crate::reconfig::reconcile(&shared, &mut reconciled).await;
        }
        let expired = shared.core.lock().sessions.take_expired(Instant::now());
        for session_id in expired {
            tracing::info!(session = format_args!("{session_id:#x}"), "session expired");
            let entry = LogEntry {
                origin: shared.server_id,
                conn: 0,
                xid: 0,
                txn: stamp(session_id, &[], TxnOp::CloseSession),
            };
            if shared.propose(entry.encode()).await.is_err() {
                return;
            }
        }
    }
}

/// ZooKeeper's ContainerManager: every `znode.container.checkIntervalMs`,
/// deletes empty used containers and expired TTL nodes, spaced by
/// `maxPerMinute`.
pub async fn reap_containers(shared: Arc<Shared>) {
    let period = Duration::from_millis(shared.config.container_check_interval_ms.max(1));
    let spacing =
        Duration::from_millis(60_000 / u64::from(shared.config.container_max_per_minute.max(1)));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        interval.tick().await;
        if !shared.is_leader() {
            continue;
        }
        let candidates = shared.core.lock().tree.reapable_nodes(
            wall_clock_ms(),
            shared.config.container_max_never_used_interval_ms,
        );
        for path in candidates {
            let entry = LogEntry {
                origin: shared.server_id,
                conn: 0,
                xid: 0,
                txn: stamp(0, &[], TxnOp::DeleteContainer { path }),
            };
            if shared.propose(entry.encode()).await.is_err() {
                return;
            }
            tokio::time::sleep(spacing).await;
        }
    }
}
