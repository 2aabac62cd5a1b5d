//! Glue between the server and the replication layer (openraft over our own
//! log): proposals go straight to the replica's bounded queue;
//! committed entries come back through [`Applier::apply`], which runs the
//! server's apply step; snapshots are the tree's snapshot encoding.
//!
//! Standalone is a one-voter group: the same path an ensemble uses.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corral_replication::{Applier, Rejection, Replica, ReplicaConfig, Role, SnapshotWriter};
use corral_tree::{DataTree, TreeCapture};

use crate::core::{Pending, Shared};
use crate::entry::LogEntry;
use crate::reconfig::PeerMessage;
use crate::ServerError;

/// The server's state machine as the replication layer sees it.
struct TreeApplier {
    shared: Arc<Shared>,
}

impl TreeApplier {
    fn capture(&self) -> TreeCapture {
        let core = self.shared.core.lock();
        let started = Instant::now();
        let capture = core.tree.capture();
        drop(core);
        tracing::info!(
            lock_held_us = started.elapsed().as_micros() as u64,
            last_zxid = capture.last_zxid(),
            "captured the tree for a snapshot"
        );
        capture
    }
}

impl Applier for TreeApplier {
    fn apply(&self, term: u64, index: u64, payload: &[u8]) {
        self.shared.apply_committed(term, index, payload);
    }

    fn snapshot(&self) -> Vec<u8> {
        let capture = self.capture();
        let mut out = Vec::new();
        if let Err(e) = capture.write(&mut out) {
            // Writing into a Vec cannot fail short of memory exhaustion.
            tracing::error!("cannot serialize the tree for a snapshot: {e}");
        }
        out
    }

    /// Captures the tree under the core lock (shared nodes, no copy: about
    /// 0.2 ms with a million znodes) and serializes it on the snapshot
    /// builder's thread without the lock, while writes go on. The capture
    /// is exact: it is taken between two applies, so it holds precisely the
    /// entries applied so far, as openraft's snapshot metadata says.
    fn begin_snapshot(&self) -> SnapshotWriter {
        let capture = self.capture();
        let stats = self.shared.stats.clone();
        Box::new(move |out: &mut dyn std::io::Write| {
            capture.write(out)?;
            stats.snapshot_taken(capture.last_zxid());
            Ok(())
        })
    }
    fn restore(&self, data: &[u8]) -> Result<(), String> {
        self.restore_from(&mut &data[..])
    }

    /// Decodes as it reads (no copy of the whole snapshot in memory), then
    /// swaps the tree in under the lock.
    fn restore_from(&self, data: &mut dyn std::io::Read) -> Result<(), String> {
        let config = self.shared.core.lock().tree.config();
        let tree = DataTree::read_snapshot(&mut &mut *data, config).map_err(|e| e.to_string())?;
        self.shared.stats.snapshot_taken(tree.last_zxid());
        let mut core = self.shared.core.lock();
        core.tree = tree;
        crate::install_config_node(&self.shared.config, &mut core);
        // Session liveness is local; bring the tracker in line with the
        // sessions the snapshot knows.
        let known: std::collections::HashMap<i64, i32> = core.tree.sessions().collect();
        let stale: Vec<i64> = core
            .sessions
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !known.contains_key(id))
            .collect();
        for id in stale {
            core.sessions.remove(id);
        }
        for (id, timeout) in known {
            if core.sessions.get(id).is_none() {
                core.sessions.add(id, timeout, None);
            }
        }
        Ok(())
    }

    fn on_peer_message(&self, from: u64, bytes: &[u8]) {
        match postcard::from_bytes::<PeerMessage>(bytes) {
            // Followers report the sessions their clients kept alive; only
            // the leader expires sessions, so it needs to hear of every touch.
            Ok(PeerMessage::Touches(ids)) => {
                let mut core = self.shared.core.lock();
                for id in ids {
                    core.sessions.touch(id);
                }
            }
            Ok(PeerMessage::Reconfig(call)) => crate::reconfig::received(&self.shared, call),
            Err(e) => tracing::warn!(from, "undecodable peer message: {e}"),
        }
    }

    fn rejected(&self, payload: &[u8], rejection: Rejection) {
        let Ok(entry) = LogEntry::decode(payload) else {
            return;
        };
        if entry.origin != self.shared.server_id || entry.conn == 0 {
            return;
        }
        let mut core = self.shared.core.lock();
        // A proposal whose link broke before the leader's commit notice came
        // back may have been applied here already, and answered: then the
        // client knows its outcome and keeps its connection.
        let owed = core.conns.get(&entry.conn).is_some_and(|c| {
            c.pending
                .iter()
                .any(|p| matches!(p, Pending::Write { xid, .. } if *xid == entry.xid))
        });
        if !owed {
            return;
        }
        // The client cannot learn this write's outcome from us: close its
        // connection so it reconnects (ZooKeeper's connection loss).
        tracing::info!(
            conn = entry.conn,
            ?rejection,
            "write not applied through this server; closing the client connection"
        );
        core.drop_conn(entry.conn);
    }
}

/// Owns the replica and the forwarder task.
pub struct ReplicaHandle {
    replica: Arc<Replica>,
}

impl ReplicaHandle {
    pub async fn shutdown(self) {
        if let Err(e) = self.replica.shutdown().await {
            tracing::warn!("replication shutdown: {e}");
        }
    }
}

/// The replica, reachable from `Shared` for status and leadership checks.
pub type ReplicaCell = OnceLock<Arc<Replica>>;

/// Opens the log and snapshots in dataDir/dataLogDir, restores the tree,
/// replays committed entries, and starts forwarding proposals.
pub async fn open(shared: Arc<Shared>) -> Result<ReplicaHandle, ServerError> {
    let config = &shared.config;
    let node_id = config.my_id.unwrap_or(1).max(1);
    let mut rc = ReplicaConfig::standalone(node_id, &config.data_dir, &config.data_log_dir);
    rc.snap_count = config.snap_count;
    rc.snap_retain_count = config.snap_retain_count;
    // Segments smaller than this would mean a file per few batches.
    const SEGMENT_MIN_BYTES: u64 = 64 << 10;
    rc.segment_max_bytes = config
        .pre_alloc_size_kb
        .saturating_mul(1024)
        .max(SEGMENT_MIN_BYTES);
    // ZooKeeper's tick drives failure detection: heartbeat every tick/2,
    // elections after syncLimit ticks, snapshot transfers bounded by
    // initLimit ticks (documented in docs/ARCHITECTURE.md).
    let tick = u64::from(config.tick_time_ms);
    rc.heartbeat_ms = (tick / 2).max(20);
    // ZooKeeper notices a crashed leader at once (its sockets close); Raft
    // needs a timer. Two ticks keep failover within a few ticks while
    // pre-vote keeps a slow or returning server from disrupting a leader.
    rc.election_timeout_min_ms = (tick * 2).max(rc.heartbeat_ms * 3);
    rc.election_timeout_max_ms = rc.election_timeout_min_ms * 2;
    // A peer leaves its quorum (and closes its clients) after syncLimit
    // ticks without it, as ZooKeeper's do.
    rc.quorum_lease_ms =
        Some((tick * u64::from(config.sync_limit.max(1))).max(rc.election_timeout_min_ms));
    rc.snapshot_timeout_ms = Some((tick * u64::from(config.init_limit)).max(30_000));
    let ensemble = !config.servers.is_empty();
    if ensemble {
        for peer in &config.servers {
            rc.members.insert(peer.id, crate::reconfig::member_of(peer));
        }
        let me = config
            .servers
            .iter()
            .find(|p| Some(p.id) == config.my_id)
            .ok_or_else(|| {
                ServerError::Replication(format!(
                    "myid {} is not one of the server.N lines of zoo.cfg",
                    config.my_id.unwrap_or(0)
                ))
            })?;
        rc.listen_addr = Some(format!("{}:{}", me.host, me.quorum_port));
    }
    let applier = Arc::new(TreeApplier {
        shared: shared.clone(),
    });
    let replica = Replica::open(rc, applier)
        .await
        .map_err(|e| ServerError::Replication(e.to_string()))?;
    if !ensemble {
        replica
            .wait_for_leadership(Duration::from_secs(30))
            .await
            .map_err(|e| ServerError::Replication(e.to_string()))?;
    }
    let replica = Arc::new(replica);
    let _ = shared.replica.set(replica.clone());
    Ok(ReplicaHandle { replica })
}

/// `standalone`, `leader`, `follower` or `observer` for status commands.
pub fn mode_of(shared: &Shared) -> &'static str {
    if shared.config.servers.is_empty() {
        return "standalone";
    }
    let Some(replica) = shared.replica.get() else {
        return "follower";
    };
    match replica.metrics().role {
        Role::Leader => "leader",
        // A learner is an observer once the membership names it one; until
        // then (a server not yet added) it is a follower looking for its
        // group.
        Role::Learner if is_observer_member(replica) => "observer",
        _ => "follower",
    }
}

/// Whether the current membership has this server as a non-voting member.
/// The membership, not zoo.cfg, decides: a reconfig may have changed it.
fn is_observer_member(replica: &Replica) -> bool {
    replica
        .membership()
        .get(&replica.node_id())
        .is_some_and(|m| m.observer)
}

/// Whether this server has joined its group in its current role (a server
/// openraft reports as a learner but the membership does not name is still
/// outside).
pub fn joined(shared: &Shared) -> bool {
    let Some(replica) = shared.replica.get() else {
        return false;
    };
    match replica.metrics().role {
        Role::Leader | Role::Follower => true,
        Role::Learner => is_observer_member(replica),
        _ => false,
    }
}
