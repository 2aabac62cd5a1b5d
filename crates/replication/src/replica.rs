//! `Replica`: one server's member of the Raft group, the API the server crate uses. Opens the
//! log and the snapshots, starts openraft over them, initializes a brand-new group, and owns
//! the proposer task that feeds writes into Raft.
//!
//! Write path: `propose` puts the payload in a bounded queue (back-pressure when full); one
//! proposer task drains the queue in batches and submits every payload to openraft without
//! waiting for any of them to commit (openraft merges consecutive writes into one append, and
//! the log store fsyncs them as one group). The outcome of a proposal is its `apply` on every
//! server, in log order; `propose` itself only reports that it could not be submitted.
//!
//! Read path: reads never touch this layer except `read_index` (ZooKeeper's `sync`), which
//! confirms leadership with a quorum and waits until the local state machine has applied
//! everything committed before the call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use openraft::errors::LinearizableReadError;
use openraft::errors::RaftError;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::BasicNode;
use openraft::Config;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ReplicationError;
use crate::log_store::LogStore;
use crate::log_store::LogStoreOptions;
use crate::log_store::LogStoreStats;
use crate::log_store::WriterJoin;
use crate::log_store::SEGMENT_MAX_BYTES_DEFAULT;
use crate::network::Network;
use crate::proposer::run_proposer;
use crate::proposer::RejectionSink;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::Applier;
use crate::state_machine::ApplyProgress;
use crate::state_machine::StateMachineStore;
use crate::transport;
use crate::types::Raft;
use crate::types::RaftMetrics;
use crate::types::TypeConfig;

/// How to open a [`Replica`].
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This server's id (ZooKeeper's `myid`).
    pub node_id: u64,
    /// Where snapshots go (`<data_dir>/snapshots`), as ZooKeeper's `dataDir`.
    pub data_dir: PathBuf,
    /// Where the log goes (`<log_dir>/log`), as ZooKeeper's `dataLogDir`; may equal `data_dir`.
    pub log_dir: PathBuf,
    /// Take a snapshot every this many applied entries (ZooKeeper's `snapCount`).
    pub snap_count: u64,
    /// Snapshots kept on disk, at least 3 (ZooKeeper's `autopurge.snapRetainCount`).
    pub snap_retain_count: usize,
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout, lower bound.
    pub election_timeout_min_ms: u64,
    /// Election timeout, upper bound.
    pub election_timeout_max_ms: u64,
    /// Size at which a log segment is closed and a new one started.
    pub segment_max_bytes: u64,
    /// Entries already covered by a snapshot that openraft keeps in the log (so a briefly
    /// lagging follower catches up from the log rather than with a full snapshot).
    pub logs_kept_after_snapshot: u64,
    /// Proposals queued before `propose` waits.
    pub proposal_queue_capacity: usize,
    /// The voters of a new group and their replication addresses (`host:port`). Empty, or
    /// only this server: standalone, a one-voter group.
    pub members: BTreeMap<u64, String>,
    /// Where to listen for peers' RPCs (`host:port`); `None` for a standalone server.
    pub listen_addr: Option<String>,
}

impl ReplicaConfig {
    /// A standalone server (a one-voter group) with ZooKeeper-like defaults.
    pub fn standalone(
        node_id: u64,
        data_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
    ) -> Self {
        ReplicaConfig {
            node_id,
            data_dir: data_dir.into(),
            log_dir: log_dir.into(),
            snap_count: 100_000,
            snap_retain_count: 3,
            heartbeat_ms: 100,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            segment_max_bytes: SEGMENT_MAX_BYTES_DEFAULT,
            logs_kept_after_snapshot: 1000,
            proposal_queue_capacity: 16384,
            members: BTreeMap::new(),
            listen_addr: None,
        }
    }

    fn is_standalone(&self) -> bool {
        self.listen_addr.is_none() && self.members.keys().all(|id| *id == self.node_id)
    }
}

/// The role of this server in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes and serves `sync`.
    Leader,
    /// Replicates the leader's log.
    Follower,
    /// Running an election.
    Candidate,
    /// Replicates but does not vote (a ZooKeeper observer).
    Learner,
    /// Stopped.
    Shutdown,
}

/// A point-in-time view of the replica, for status commands (`srvr`, `mntr`, `/metrics`).
#[derive(Debug, Clone)]
pub struct ReplicaMetrics {
    /// This server's id.
    pub node_id: u64,
    /// Its role.
    pub role: Role,
    /// The current Raft term (the ZooKeeper epoch).
    pub current_term: u64,
    /// The leader this server knows of.
    pub leader_id: Option<u64>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last committed entry known here.
    pub committed_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied_index: Option<u64>,
    /// Last index covered by the newest snapshot.
    pub snapshot_index: Option<u64>,
    /// Last purged index.
    pub purged_index: Option<u64>,
    /// Voters of the current membership.
    pub voters: Vec<u64>,
    /// Learners (observers) of the current membership.
    pub learners: Vec<u64>,
    /// Proposals handed to Raft since start.
    pub proposals_submitted: u64,
    /// Proposals reported to [`Applier::rejected`] since start.
    pub proposals_rejected: u64,
    /// Proposals waiting in the queue.
    pub proposals_queued: usize,
    /// Normal entries given to the applier since start.
    pub entries_applied: u64,
    /// Log batches made durable (one fdatasync each).
    pub log_fsyncs: u64,
    /// Log entries written.
    pub log_entries_written: u64,
    /// Log bytes written.
    pub log_bytes_written: u64,
    /// Mean append fdatasync latency, microseconds.
    pub log_fsync_micros_avg: u64,
    /// Longest append fdatasync, microseconds.
    pub log_fsync_micros_max: u64,
    /// Snapshots built since start.
    pub snapshots_built: u64,
    /// Snapshots restored since start.
    pub snapshots_installed: u64,
    /// The address peers' RPCs are served on, when any.
    pub rpc_addr: Option<std::net::SocketAddr>,
}

/// This server's member of the replication group. See the module documentation.
pub struct Replica {
    node_id: u64,
    raft: Raft,
    proposals: mpsc::Sender<Bytes>,
    proposal_queue_capacity: usize,
    proposer: Mutex<Option<JoinHandle<()>>>,
    stop_proposer: watch::Sender<bool>,
    sink: Arc<RejectionSink>,
    progress: Arc<ApplyProgress>,
    log_stats: Arc<LogStoreStats>,
    writer: WriterJoin,
    rpc_server: Mutex<Option<transport::RpcServer>>,
    rpc_addr: Option<std::net::SocketAddr>,
    stopped: AtomicBool,
    election_timeout_max_ms: u64,
}

fn fatal(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::Fatal(e.to_string())
}

impl Replica {
    /// Open storage, start Raft, and (the first time) initialize the group.
    ///
    /// `applier` must hold the empty state: the newest snapshot is restored into it, then every
    /// committed entry after that snapshot is applied, in order, exactly once. For a standalone
    /// server this returns once the server is leader and has applied everything committed
    /// before the restart, so the server can serve reads at once.
    pub async fn open(
        cfg: ReplicaConfig,
        applier: Arc<dyn Applier>,
    ) -> Result<Replica, ReplicationError> {
        validate(&cfg)?;
        let standalone = cfg.is_standalone();

        // Snapshots first: they decide how much of the log may be deleted.
        let floor = Arc::new(AtomicU64::new(0));
        let snapshot_dir = cfg.data_dir.join("snapshots");
        let retain = cfg.snap_retain_count;
        let floor2 = floor.clone();
        let snapshots =
            tokio::task::spawn_blocking(move || SnapshotStore::open(snapshot_dir, retain, floor2))
                .await
                .map_err(fatal)??;
        let snapshots = Arc::new(snapshots);

        let mut opts = LogStoreOptions::new(cfg.log_dir.join("log"));
        opts.segment_max_bytes = cfg.segment_max_bytes;
        opts.deletion_floor = floor;
        let mut log = tokio::task::spawn_blocking(move || LogStore::open(opts))
            .await
            .map_err(fatal)??;

        // When the log is purged, a snapshot must cover the purged part. If the newest
        // snapshot is unreadable, fall back to an older one and replay the log from there.
        if let Some(purged) = log.last_purged() {
            let snaps = snapshots.clone();
            let newest = tokio::task::spawn_blocking(move || snaps.load_newest())
                .await
                .map_err(fatal)??;
            let covered = newest.as_ref().and_then(|s| s.meta.last_log_id);
            if covered.map(|c| c.index) < Some(purged.index) {
                let ok = log.lower_purge_mark(covered).await?;
                if !ok {
                    return Err(ReplicationError::Snapshot(crate::error::SnapshotError::Corrupt {
                        path: snapshots.dir().to_path_buf(),
                        reason: format!(
                            "no readable snapshot covers the purged log (purged up to index {}, newest readable \
                             snapshot covers up to {:?}) and the log entries needed to replay are deleted",
                            purged.index,
                            covered.map(|c| c.index)
                        ),
                    }));
                }
                tracing::warn!(purged = purged.index, snapshot = ?covered.map(|c| c.index),
                    "replaying the log from an older snapshot because the newer one is unreadable");
            }
        }

        let writer = log.writer_join();
        let log_stats = log.stats();
        let progress = Arc::new(ApplyProgress::default());
        let sink = Arc::new(RejectionSink {
            applier: applier.clone(),
            rejected: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
        });
        let sm = StateMachineStore::new(applier, snapshots, progress.clone());

        let config = Config {
            cluster_name: "corral".to_string(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snap_count),
            max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
            purge_batch_size: 1,
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| ReplicationError::Config(e.to_string()))?,
        );
        let network = if standalone {
            Network::Standalone
        } else {
            Network::Tcp
        };
        let raft = Raft::new(cfg.node_id, config, network, log, sm)
            .await
            .map_err(fatal)?;

        let mut rpc_server = None;
        let mut rpc_addr = None;
        if let Some(addr) = &cfg.listen_addr {
            let server = transport::serve(addr, raft.clone())
                .await
                .map_err(|source| ReplicationError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
            rpc_addr = Some(server.local_addr);
            rpc_server = Some(server);
        }

        let restarted = raft.is_initialized().await.map_err(fatal)?;
        if !restarted {
            let members: BTreeMap<u64, BasicNode> = if cfg.members.is_empty() {
                BTreeMap::from([(
                    cfg.node_id,
                    BasicNode::new(cfg.listen_addr.clone().unwrap_or_default()),
                )])
            } else {
                cfg.members
                    .iter()
                    .map(|(id, addr)| (*id, BasicNode::new(addr)))
                    .collect()
            };
            tracing::info!(?members, "initializing a new replication group");
            if let Err(e) = raft.initialize(members).await {
                match e {
                    RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_)) => {}
                    e => {
                        return Err(ReplicationError::Config(format!(
                            "cannot initialize the group: {e}"
                        )))
                    }
                }
            }
        }

        let (tx, rx) = mpsc::channel(cfg.proposal_queue_capacity);
        let (stop_tx, stop_rx) = watch::channel(false);
        let proposer = tokio::spawn(run_proposer(raft.clone(), sink.clone(), rx, stop_rx));

        let replica = Replica {
            node_id: cfg.node_id,
            raft,
            proposals: tx,
            proposal_queue_capacity: cfg.proposal_queue_capacity,
            proposer: Mutex::new(Some(proposer)),
            stop_proposer: stop_tx,
            sink,
            progress,
            log_stats,
            writer,
            rpc_server: Mutex::new(rpc_server),
            rpc_addr,
            stopped: AtomicBool::new(false),
            election_timeout_max_ms: cfg.election_timeout_max_ms,
        };

        if standalone {
            // After a restart a one-voter group elects itself at once instead of waiting out
            // the election timeout (a new group already did so in `initialize`).
            if restarted && !replica.raft.is_leader() {
                let _ = replica.raft.trigger().elect(false).await;
            }
            let timeout = Duration::from_millis(cfg.election_timeout_max_ms * 20 + 5_000);
            replica
                .raft
                .wait_for_recovery(Some(timeout))
                .await
                .map_err(|_| ReplicationError::Timeout {
                    what: "the standalone server to become leader and replay its log",
                    after_ms: timeout.as_millis() as u64,
                })?;
        }
        Ok(replica)
    }

    /// Submit a write. Returns once the payload is queued for Raft (waiting while the queue is
    /// full), not when it is committed: its outcome is the [`Applier::apply`] call for it.
    ///
    /// A proposal accepted here that will not be applied through this server (leadership or
    /// the leader lease was lost before it reached the log, or it was discarded by a new
    /// leader) is handed back to [`Applier::rejected`].
    pub async fn propose(&self, payload: Bytes) -> Result<(), ReplicationError> {
        self.check_can_propose()?;
        self.proposals
            .send(payload)
            .await
            .map_err(|_| ReplicationError::ShutDown)
    }

    /// As [`Replica::propose`], but fails with [`ReplicationError::Busy`] instead of waiting
    /// when the queue is full.
    pub fn try_propose(&self, payload: Bytes) -> Result<(), ReplicationError> {
        self.check_can_propose()?;
        self.proposals.try_send(payload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ReplicationError::Busy {
                capacity: self.proposal_queue_capacity,
            },
            mpsc::error::TrySendError::Closed(_) => ReplicationError::ShutDown,
        })
    }

    fn check_can_propose(&self) -> Result<(), ReplicationError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ReplicationError::ShutDown);
        }
        if !self.raft.is_leader() {
            return Err(ReplicationError::NotLeader {
                leader_id: self.leader_id(),
            });
        }
        Ok(())
    }

    /// Linearizable read barrier (ZooKeeper's `sync`): confirms with a quorum that this server
    /// is still leader, then waits until everything committed before the call is applied
    /// here. Returns the index applied through.
    pub async fn read_index(&self) -> Result<u64, ReplicationError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ReplicationError::ShutDown);
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ReplicationError::NotLeader {
                    leader_id: f.leader_id,
                })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(ReplicationError::NoQuorum(q.to_string()))
            }
            Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)) => {
                Err(ReplicationError::ShutDown)
            }
            Err(RaftError::Fatal(f)) => Err(fatal(f)),
        }
    }

    /// This server's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Whether this server is the leader now (it may stop being so at any moment).
    pub fn is_leader(&self) -> bool {
        !self.stopped.load(Ordering::Acquire) && self.raft.is_leader()
    }

    /// The current Raft term, i.e. the ZooKeeper epoch.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The leader this server knows of.
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Index of the last entry applied here, `None` before the first.
    pub fn last_applied_index(&self) -> Option<u64> {
        self.progress
            .applied_next
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Wait until this server is leader, for at most `timeout`.
    pub async fn wait_for_leadership(&self, timeout: Duration) -> Result<(), ReplicationError> {
        self.raft
            .wait(Some(timeout))
            .state(ServerState::Leader, "wait for leadership")
            .await
            .map(|_| ())
            .map_err(|_| ReplicationError::Timeout {
                what: "leadership",
                after_ms: timeout.as_millis() as u64,
            })
    }

    /// Wait until some server is known as leader, for at most `timeout`; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, ReplicationError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "wait for a leader")
            .await
            .map_err(|_| ReplicationError::Timeout {
                what: "a leader",
                after_ms: timeout.as_millis() as u64,
            })?;
        m.current_leader.ok_or(ReplicationError::ShutDown)
    }

    /// Wait until the entry at `index` is applied here, for at most `timeout`.
    pub async fn wait_for_applied(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<(), ReplicationError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "wait for apply")
            .await
            .map(|_| ())
            .map_err(|_| ReplicationError::Timeout {
                what: "entries to be applied",
                after_ms: timeout.as_millis() as u64,
            })
    }

    /// Metrics for status commands.
    pub fn metrics(&self) -> ReplicaMetrics {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        let fsyncs = self.log_stats.fsyncs.load(Ordering::Relaxed);
        ReplicaMetrics {
            node_id: self.node_id,
            role: if self.stopped.load(Ordering::Acquire) {
                Role::Shutdown
            } else {
                match m.state {
                    ServerState::Leader => Role::Leader,
                    ServerState::Follower => Role::Follower,
                    ServerState::Candidate => Role::Candidate,
                    ServerState::Learner => Role::Learner,
                    ServerState::Shutdown => Role::Shutdown,
                }
            },
            current_term: m.current_term,
            leader_id: m.current_leader,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.map(|l| l.index),
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            proposals_submitted: self.sink.submitted.load(Ordering::Relaxed),
            proposals_rejected: self.sink.rejected.load(Ordering::Relaxed),
            proposals_queued: self.proposal_queue_capacity - self.proposals.capacity(),
            entries_applied: self.progress.normal_entries_applied.load(Ordering::Relaxed),
            log_fsyncs: fsyncs,
            log_entries_written: self.log_stats.entries_written.load(Ordering::Relaxed),
            log_bytes_written: self.log_stats.bytes_written.load(Ordering::Relaxed),
            log_fsync_micros_avg: self.log_stats.fsync_micros_total.load(Ordering::Relaxed)
                / fsyncs.max(1),
            log_fsync_micros_max: self.log_stats.fsync_micros_max.load(Ordering::Relaxed),
            snapshots_built: self.progress.snapshots_built.load(Ordering::Relaxed),
            snapshots_installed: self.progress.snapshots_installed.load(Ordering::Relaxed),
            rpc_addr: self.rpc_addr,
        }
    }

    /// openraft's raw metrics channel (term, leader, log positions, replication progress).
    pub fn raft_metrics(
        &self,
    ) -> openraft::type_config::alias::WatchReceiverOf<TypeConfig, RaftMetrics> {
        self.raft.metrics()
    }

    /// The underlying openraft node, for operations this API does not wrap yet (membership
    /// changes, leader transfer).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The address peers' RPCs are served on, when listening.
    pub fn rpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc_addr
    }

    /// Stop: no more proposals, stop Raft, let the log writer finish its queue and persist the
    /// last committed log id. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ReplicationError> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _ = self.stop_proposer.send(true);
        let proposer = self
            .proposer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(p) = proposer {
            let _ = p.await;
        }
        let server = self
            .rpc_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = server {
            s.task.abort();
            let _ = s.task.await;
        }
        self.raft.shutdown().await.map_err(fatal)?;
        let writer = self.writer.clone();
        let join = tokio::task::spawn_blocking(move || writer.join_blocking());
        let limit = Duration::from_millis(self.election_timeout_max_ms.max(1000) * 10);
        match tokio::time::timeout(limit, join).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(fatal(e)),
            Err(_) => Err(ReplicationError::Timeout {
                what: "the log writer to finish",
                after_ms: limit.as_millis() as u64,
            }),
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::Acquire) {
            let _ = self.stop_proposer.send(true);
            if let Some(s) = self
                .rpc_server
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                s.task.abort();
            }
        }
    }
}

fn validate(cfg: &ReplicaConfig) -> Result<(), ReplicationError> {
    let bad = |m: String| Err(ReplicationError::Config(m));
    if cfg.snap_count == 0 {
        return bad("snap_count must be at least 1".into());
    }
    if cfg.election_timeout_min_ms >= cfg.election_timeout_max_ms {
        return bad(format!(
            "election_timeout_min_ms ({}) must be below election_timeout_max_ms ({})",
            cfg.election_timeout_min_ms, cfg.election_timeout_max_ms
        ));
    }
    if cfg.heartbeat_ms == 0 || cfg.heartbeat_ms >= cfg.election_timeout_min_ms {
        return bad(format!(
            "heartbeat_ms ({}) must be above 0 and below election_timeout_min_ms ({})",
            cfg.heartbeat_ms, cfg.election_timeout_min_ms
        ));
    }
    if cfg.proposal_queue_capacity == 0 {
        return bad("proposal_queue_capacity must be at least 1".into());
    }
    if !cfg.members.is_empty() && !cfg.members.contains_key(&cfg.node_id) {
        return bad(format!(
            "members do not include this server ({})",
            cfg.node_id
        ));
    }
    if !cfg.is_standalone() && cfg.listen_addr.is_none() {
        return bad("an ensemble member needs listen_addr".into());
    }
    Ok(())
}
