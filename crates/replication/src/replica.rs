//! `Replica`: one server's member of the Raft group, the API the server crate uses. Opens the
//! log and the snapshots, starts openraft over them, forms the group the first time (see
//! `bootstrap.rs`), serves peers (`transport.rs`) and owns the proposer task that feeds writes
//! into Raft.
//!
//! Write path: `propose` works on every member. It puts the payload in a bounded queue
//! (back-pressure when full); one proposer task drains the queue in batches and, on the
//! leader, submits every payload to openraft without waiting for any of them to commit
//! (openraft merges consecutive writes into one append, and the log store fsyncs them as one
//! group); on a follower or observer it forwards them to the leader, pipelined, in order. The
//! outcome of a proposal is its `apply` on every server, in log order; a proposal that will
//! not be applied through this server is reported to `Applier::rejected`.
//!
//! Read path: reads never touch this layer except `read_index` (ZooKeeper's `sync`), which
//! has the leader confirm its leadership with a quorum and waits until the local state
//! machine has applied everything committed before the call, on any member.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::types::PeerNode;
use bytes::Bytes;
use openraft::errors::ChangeMembershipError;
use openraft::errors::ClientWriteError;
use openraft::errors::LinearizableReadError;
use openraft::errors::RaftError;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ChangeMembers;
use openraft::Config;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bootstrap;
use crate::error::ReplicationError;
use crate::failover;
use crate::link::LinkRegistry;
use crate::log_store::LogStore;
use crate::log_store::LogStoreOptions;
use crate::log_store::LogStoreStats;
use crate::log_store::WriterJoin;
use crate::log_store::SEGMENT_MAX_BYTES_DEFAULT;
use crate::network::NetTimeouts;
use crate::network::Network;
use crate::proposer::run_proposer;
use crate::proposer::Proposal;
use crate::proposer::ProposerCtx;
use crate::proposer::ProposerInputs;
use crate::proposer::RejectionSink;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::Applier;
use crate::state_machine::ApplyProgress;
use crate::state_machine::StateMachineStore;
use crate::transport;
use crate::types::Raft;
use crate::types::RaftMetrics;
use crate::types::TypeConfig;

/// A follower whose matched log index is at most this many entries behind the leader's last
/// index counts as synced (ZooKeeper's `synced_followers`).
pub const SYNCED_LAG_ENTRIES_MAX: u64 = 16;
/// How long a membership change waits for the leader's own first entry, or the previous
/// membership, to commit before it reports the change as in progress.
const MEMBERSHIP_SETTLE_MAX: Duration = Duration::from_secs(5);
/// How often it looks again meanwhile.
const MEMBERSHIP_SETTLE_POLL: Duration = Duration::from_millis(20);
/// How long a stopping leader waits for another voter to take over.
const HAND_OVER_MAX: Duration = Duration::from_secs(1);

/// One server of the ensemble, as in zoo.cfg's `server.N=host:quorumPort:electionPort[:role]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Where its replication RPCs are served (`host:quorumPort`).
    pub addr: String,
    /// An observer (a Raft learner): replicates and applies, never votes or counts in a quorum.
    pub observer: bool,
    /// The server's description of itself (Corral: its `server.N` line), opaque here; every
    /// member learns it through the membership.
    pub spec: String,
}

impl Member {
    /// A voting member (ZooKeeper's `participant`).
    pub fn participant(addr: impl Into<String>) -> Self {
        Member {
            addr: addr.into(),
            observer: false,
            spec: String::new(),
        }
    }

    /// A non-voting member (ZooKeeper's `observer`).
    pub fn observer(addr: impl Into<String>) -> Self {
        Member {
            addr: addr.into(),
            observer: true,
            spec: String::new(),
        }
    }

    /// The same member with its description set.
    pub fn with_spec(mut self, spec: impl Into<String>) -> Self {
        self.spec = spec.into();
        self
    }
}

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
    /// Leader heartbeat interval (ZooKeeper: a fraction of `tickTime`).
    pub heartbeat_ms: u64,
    /// Election timeout, lower bound (ZooKeeper: `syncLimit * tickTime`). Also the leader's
    /// lease: a leader that has not heard from a quorum for `election_timeout_max_ms` refuses
    /// new proposals.
    pub election_timeout_min_ms: u64,
    /// Election timeout, upper bound.
    pub election_timeout_max_ms: u64,
    /// Longest wait for a peer to answer an outstanding AppendEntries (or to connect) before
    /// the connection is dropped and replication restarts; `None`: `election_timeout_min_ms`
    /// (ZooKeeper's `syncLimit * tickTime`). Requests are pipelined, so this bounds how long a
    /// follower may stall (a slow fsync), not the round trip of each request.
    pub append_timeout_ms: Option<u64>,
    /// How long a member counts as in a working quorum without hearing from one: a leader
    /// since a quorum last acknowledged it, a follower or observer since its leader last
    /// sent an append or heartbeat (ZooKeeper's `syncLimit * tickTime`, after which its
    /// peers leave the quorum); `None`: `election_timeout_min_ms`.
    pub quorum_lease_ms: Option<u64>,
    /// Longest wait for a follower to install a snapshot after its last chunk, and for each
    /// chunk to be taken; `None`: 10 × `election_timeout_max_ms`, at least 30 s (ZooKeeper's
    /// `initLimit * tickTime` is the natural setting).
    pub snapshot_timeout_ms: Option<u64>,
    /// Size at which a log segment is closed and a new one started.
    pub segment_max_bytes: u64,
    /// Entries already covered by a snapshot that openraft keeps in the log (so a briefly
    /// lagging follower catches up from the log rather than with a full snapshot).
    pub logs_kept_after_snapshot: u64,
    /// Proposals queued before `propose` waits.
    pub proposal_queue_capacity: usize,
    /// Proposals forwarded to the leader and not yet answered, at most (per follower).
    pub forward_window: usize,
    /// Side-channel messages queued for the leader before `send_to_leader` drops them.
    pub peer_message_queue_capacity: usize,
    /// Every server of the ensemble with its role (participants and observers), as listed in
    /// zoo.cfg; must include this server. Empty, or only this server: standalone, a one-voter
    /// group. Used to form a new group; a group that has state keeps its own membership
    /// (change it with [`Replica::add_voter`] and friends).
    pub members: BTreeMap<u64, Member>,
    /// Where to listen for peers' RPCs (`host:quorumPort`); `None` for a standalone server.
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
            append_timeout_ms: None,
            quorum_lease_ms: None,
            snapshot_timeout_ms: None,
            segment_max_bytes: SEGMENT_MAX_BYTES_DEFAULT,
            logs_kept_after_snapshot: 1000,
            proposal_queue_capacity: 16384,
            forward_window: 16384,
            peer_message_queue_capacity: 4096,
            members: BTreeMap::new(),
            listen_addr: None,
        }
    }

    /// A member of an ensemble: `members` lists every server with its role, and this server
    /// listens on its own member address.
    pub fn ensemble(
        node_id: u64,
        data_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
        members: BTreeMap<u64, Member>,
    ) -> Self {
        let mut cfg = ReplicaConfig::standalone(node_id, data_dir, log_dir);
        cfg.listen_addr = members.get(&node_id).map(|m| m.addr.clone());
        cfg.members = members;
        cfg
    }

    fn is_standalone(&self) -> bool {
        self.listen_addr.is_none() && self.members.keys().all(|id| *id == self.node_id)
    }

    /// The ids of the voting members.
    pub fn voter_ids(&self) -> BTreeSet<u64> {
        self.members
            .iter()
            .filter(|(_, m)| !m.observer)
            .map(|(id, _)| *id)
            .collect()
    }

    fn append_timeout(&self) -> Duration {
        Duration::from_millis(
            self.append_timeout_ms
                .unwrap_or(self.election_timeout_min_ms),
        )
    }

    fn snapshot_timeout(&self) -> Duration {
        Duration::from_millis(
            self.snapshot_timeout_ms
                .unwrap_or((self.election_timeout_max_ms * 10).max(30_000)),
        )
    }
}

/// The role of this server in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes and serves `sync`.
    Leader,
    /// Replicates the leader's log and votes.
    Follower,
    /// Running an election.
    Candidate,
    /// Replicates but does not vote (a ZooKeeper observer), or not yet part of the group.
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
    /// The current membership: every member with its address and role.
    pub members: BTreeMap<u64, Member>,
    /// Index of the log entry that set the current membership.
    pub membership_index: Option<u64>,
    /// Whether a membership change is under way (joint consensus).
    pub membership_changing: bool,
    /// On the leader: voters other than itself (ZooKeeper's `followers`); 0 elsewhere.
    pub followers: usize,
    /// On the leader: followers whose log matches the leader's within
    /// [`SYNCED_LAG_ENTRIES_MAX`] entries (ZooKeeper's `synced_followers`); 0 elsewhere.
    pub synced_followers: usize,
    /// On the leader: the ids of the members (voters and learners, not itself) that answer
    /// heartbeats and are synced as above; empty elsewhere.
    pub synced_members: Vec<u64>,
    /// On the leader: learners (observers) being replicated to; 0 elsewhere.
    pub learners_count: usize,
    /// On the leader: learners within [`SYNCED_LAG_ENTRIES_MAX`] entries (ZooKeeper's
    /// `synced_observers`); 0 elsewhere.
    pub synced_learners: usize,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Proposals handed to Raft or forwarded to the leader since start.
    pub proposals_submitted: u64,
    /// Of those, proposals forwarded to the leader.
    pub proposals_forwarded: u64,
    /// Proposals reported to [`Applier::rejected`] since start.
    pub proposals_rejected: u64,
    /// Proposals waiting in the queue.
    pub proposals_queued: usize,
    /// Side-channel messages dropped (no leader, queue full, link broken).
    pub peer_messages_dropped: u64,
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
    proposals: mpsc::Sender<Proposal>,
    reads: mpsc::Sender<crate::link::ReadWaiter>,
    peer_messages: mpsc::Sender<Bytes>,
    proposal_queue_capacity: usize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop_tasks: watch::Sender<bool>,
    sink: Arc<RejectionSink>,
    progress: Arc<ApplyProgress>,
    log_stats: Arc<LogStoreStats>,
    writer: WriterJoin,
    rpc_server: Mutex<Option<transport::RpcServer>>,
    rpc_addr: Option<std::net::SocketAddr>,
    stopped: AtomicBool,
    election_timeout_max_ms: u64,
    quorum_lease_ms: u64,
    leader_contact: Arc<transport::LeaderContact>,
}

/// On the leader: whether `id` acknowledged a heartbeat within `within`.
fn heard_from(m: &RaftMetrics, id: u64, within: Duration) -> bool {
    m.heartbeat
        .as_ref()
        .and_then(|h| h.get(&id).copied().flatten())
        .is_some_and(|acked| openraft::Instant::elapsed(&*acked) <= within)
}

fn fatal(e: impl std::fmt::Display) -> ReplicationError {
    ReplicationError::Fatal(e.to_string())
}

fn write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ReplicationError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ReplicationError::NotLeader {
            leader_id: f.leader_id,
        },
        RaftError::APIError(e) => ReplicationError::Membership(e.to_string()),
        RaftError::Fatal(openraft::errors::Fatal::Stopped) => ReplicationError::ShutDown,
        RaftError::Fatal(f) => fatal(f),
    }
}

impl Replica {
    /// Open storage, start Raft, serve peers, and (the first time) form the group.
    ///
    /// `applier` must hold the empty state: the newest snapshot is restored into it, then every
    /// committed entry after that snapshot is applied, in order, exactly once. For a standalone
    /// server this returns once the server is leader and has applied everything committed
    /// before the restart, so the server can serve reads at once. An ensemble member returns
    /// once it serves peers; the group forms (or is rejoined) in the background: wait with
    /// [`Replica::wait_for_leader`].
    pub async fn open(
        cfg: ReplicaConfig,
        applier: Arc<dyn Applier>,
    ) -> Result<Replica, ReplicationError> {
        let mut cfg = cfg;
        if cfg.members.is_empty() {
            if let Some(addr) = &cfg.listen_addr {
                // A listening server with no member list is an ensemble of one.
                cfg.members
                    .insert(cfg.node_id, Member::participant(addr.clone()));
            }
        }
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
        let log_reader = log.reader();
        let log_stats = log.stats();
        let progress = Arc::new(ApplyProgress::default());
        let sink = Arc::new(RejectionSink::new(applier.clone()));
        let sm = StateMachineStore::new(applier.clone(), snapshots.clone(), progress.clone());

        let snapshot_timeout = cfg.snapshot_timeout();
        let config = Config {
            cluster_name: "corral".to_string(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            install_snapshot_timeout: snapshot_timeout.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snap_count),
            snapshot_max_chunk_size: transport::SNAPSHOT_CHUNK_BYTES as u64,
            max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
            purge_batch_size: 1,
            enable_pre_vote: Some(true),
            // A restarted leader runs an election like anyone else: its state machine is
            // rebuilt from the snapshot and the log, and the committed index it persisted may
            // lag, so it must learn the commit point from a quorum before serving `sync`.
            enable_leader_restore: Some(false),
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
            Network::Tcp {
                from: cfg.node_id,
                timeouts: NetTimeouts {
                    append: cfg.append_timeout(),
                    snapshot: snapshot_timeout,
                },
            }
        };
        let raft = Raft::new(cfg.node_id, config, network, log, sm)
            .await
            .map_err(fatal)?;

        let mut rpc_server = None;
        let mut rpc_addr = None;
        let leader_contact = Arc::new(transport::LeaderContact::new());
        let (peer_gone_tx, peer_gone_rx) = mpsc::channel(failover::PEER_GONE_QUEUE);
        if let Some(addr) = &cfg.listen_addr {
            let ctx = Arc::new(transport::ServerCtx {
                leader_contact: leader_contact.clone(),
                peer_gone: (!standalone).then_some(peer_gone_tx),
                log: log_reader.clone(),
                node_id: cfg.node_id,
                raft: raft.clone(),
                snapshots: snapshots.clone(),
                applier: applier.clone(),
                links: Arc::new(LinkRegistry::default()),
                snapshot_chunk_timeout: snapshot_timeout,
            });
            let server =
                transport::serve(addr, ctx)
                    .await
                    .map_err(|source| ReplicationError::Listen {
                        addr: addr.clone(),
                        source,
                    })?;
            rpc_addr = Some(server.local_addr);
            rpc_server = Some(server);
        }

        let restarted = raft.is_initialized().await.map_err(fatal)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if standalone {
            if !restarted {
                let members = BTreeMap::from([(
                    cfg.node_id,
                    PeerNode::new(
                        cfg.listen_addr.clone().unwrap_or_default(),
                        cfg.members
                            .get(&cfg.node_id)
                            .map(|m| m.spec.clone())
                            .unwrap_or_default(),
                    ),
                )]);
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
        } else {
            tasks.push(tokio::spawn(bootstrap::run(
                bootstrap::Bootstrap {
                    node_id: cfg.node_id,
                    raft: raft.clone(),
                    members: cfg.members.clone(),
                    probe_timeout: cfg.append_timeout().min(Duration::from_secs(2)),
                },
                stop_rx.clone(),
            )));
        }

        if !standalone {
            tasks.push(tokio::spawn(failover::run(
                cfg.node_id,
                raft.clone(),
                log_reader,
                peer_gone_rx,
                stop_rx.clone(),
            )));
        }

        let (tx, rx) = mpsc::channel(cfg.proposal_queue_capacity);
        let (reads_tx, reads_rx) = mpsc::channel(1024);
        let (peer_tx, peer_rx) = mpsc::channel(cfg.peer_message_queue_capacity.max(1));
        let boot_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        tasks.push(tokio::spawn(run_proposer(
            ProposerCtx {
                node_id: cfg.node_id,
                raft: raft.clone(),
                sink: sink.clone(),
                boot_nanos,
                forward_window: cfg.forward_window.max(1),
                no_leader_wait: Duration::from_millis(cfg.election_timeout_max_ms * 2),
                connect_timeout: cfg.append_timeout(),
                stall_timeout: Duration::from_millis(cfg.election_timeout_max_ms * 2),
            },
            ProposerInputs {
                proposals: rx,
                reads: reads_rx,
                peer_messages: peer_rx,
                stop: stop_rx,
            },
        )));

        let replica = Replica {
            node_id: cfg.node_id,
            raft,
            proposals: tx,
            reads: reads_tx,
            peer_messages: peer_tx,
            proposal_queue_capacity: cfg.proposal_queue_capacity,
            tasks: Mutex::new(tasks),
            stop_tasks: stop_tx,
            sink,
            progress,
            log_stats,
            writer,
            rpc_server: Mutex::new(rpc_server),
            rpc_addr,
            stopped: AtomicBool::new(false),
            election_timeout_max_ms: cfg.election_timeout_max_ms,
            quorum_lease_ms: cfg.quorum_lease_ms.unwrap_or(cfg.election_timeout_min_ms),
            leader_contact,
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

    /// Submit a write, on any member. Returns once the payload is queued (waiting while the
    /// queue is full), not when it is committed: its outcome is the [`Applier::apply`] call
    /// for it, on every server.
    ///
    /// On a follower or observer the payload is forwarded to the leader, which proposes it as
    /// its own. Proposals from this server enter the log in the order they were proposed. A
    /// proposal accepted here that will not be applied through this server (no leader, the
    /// leader refused it or lost leadership, the link to it broke) is handed back to
    /// [`Applier::rejected`] exactly once; after a rejection, proposals queued before it was
    /// reported are rejected too, so no later proposal of this server can be applied after
    /// one that was not.
    pub async fn propose(&self, payload: Bytes) -> Result<(), ReplicationError> {
        self.check_running()?;
        let proposal = Proposal {
            epoch: self.sink.epoch(),
            payload,
        };
        self.proposals
            .send(proposal)
            .await
            .map_err(|_| ReplicationError::ShutDown)
    }

    /// As [`Replica::propose`], but fails with [`ReplicationError::Busy`] instead of waiting
    /// when the queue is full.
    pub fn try_propose(&self, payload: Bytes) -> Result<(), ReplicationError> {
        self.check_running()?;
        let proposal = Proposal {
            epoch: self.sink.epoch(),
            payload,
        };
        self.proposals.try_send(proposal).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ReplicationError::Busy {
                capacity: self.proposal_queue_capacity,
            },
            mpsc::error::TrySendError::Closed(_) => ReplicationError::ShutDown,
        })
    }

    fn check_running(&self) -> Result<(), ReplicationError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ReplicationError::ShutDown);
        }
        Ok(())
    }

    /// Linearizable read barrier (ZooKeeper's `sync`), on any member: the leader confirms
    /// with a quorum that it is still leader and names the index committed before the call;
    /// this returns once that index is applied here. Returns the index applied through.
    /// Concurrent calls on a follower share one round trip to the leader.
    pub async fn read_index(&self) -> Result<u64, ReplicationError> {
        self.check_running()?;
        let timeout = Duration::from_millis(self.election_timeout_max_ms * 3);
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || ReplicationError::Timeout {
            what: "a read index",
            after_ms: timeout.as_millis() as u64,
        };
        loop {
            if self.raft.is_leader() {
                let res = tokio::time::timeout_at(deadline, self.local_read_index())
                    .await
                    .map_err(|_| timed_out())?;
                match res {
                    Err(ReplicationError::NotLeader { .. }) => {}
                    other => return other,
                }
            } else {
                let (tx, rx) = oneshot::channel();
                self.reads
                    .send(tx)
                    .await
                    .map_err(|_| ReplicationError::ShutDown)?;
                let answer = tokio::time::timeout_at(deadline, rx)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|_| ReplicationError::ShutDown)?;
                match answer {
                    Ok(index) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        self.wait_for_applied(index, left).await?;
                        return Ok(index);
                    }
                    Err(ReplicationError::NotLeader { leader_id }) if leader_id.is_some() => {}
                    Err(e) => return Err(e),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(timed_out());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn local_read_index(&self) -> Result<u64, ReplicationError> {
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

    /// Send a message to the leader's [`Applier::on_peer_message`] (e.g. a batch of session
    /// ids touched here), best effort: queued and sent in batches over the link to the leader;
    /// dropped when the queue is full, no leader is known or the link breaks (counted in
    /// `peer_messages_dropped`). On the leader itself it is handed to the local applier at
    /// once.
    pub fn send_to_leader(&self, bytes: Bytes) -> Result<(), ReplicationError> {
        self.check_running()?;
        if self.raft.is_leader() {
            self.sink.applier.on_peer_message(self.node_id, &bytes);
            return Ok(());
        }
        match self.peer_messages.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.sink
                    .peer_messages_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Err(ReplicationError::Busy {
                    capacity: self.peer_messages.max_capacity(),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ReplicationError::ShutDown),
        }
    }

    /// Add a voting member (on the leader): it joins as a learner, catches up, then becomes a
    /// voter through joint consensus. Returns once the change is committed.
    pub async fn add_voter(
        &self,
        id: u64,
        addr: impl Into<String>,
    ) -> Result<(), ReplicationError> {
        self.check_running()?;
        let addr = addr.into();
        let is_voter = self.raft.voter_ids().any(|v| v == id);
        if !is_voter {
            self.raft
                .add_learner(id, PeerNode::new(addr, ""), true)
                .await
                .map_err(write_error)?;
        }
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Add a non-voting member (an observer), on the leader. Returns once the change is
    /// committed; the learner catches up in the background.
    pub async fn add_learner(
        &self,
        id: u64,
        addr: impl Into<String>,
    ) -> Result<(), ReplicationError> {
        self.check_running()?;
        self.raft
            .add_learner(id, PeerNode::new(addr, ""), false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Remove a member, voter or learner, on the leader (a voter through joint consensus).
    /// Removing the leader itself makes it step down once the change is committed.
    pub async fn remove_member(&self, id: u64) -> Result<(), ReplicationError> {
        self.check_running()?;
        let change = if self.raft.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.change_membership_settled(change, false).await
    }

    /// openraft's `change_membership`, waiting out the refusals that only mean "not yet": a
    /// leader that has not committed an entry of its own term (just elected), or a previous
    /// membership entry not yet committed. ZooKeeper's new leader takes a reconfig as soon as
    /// it leads, so a client must not see ReconfigInProgress for the election it just rode
    /// out. Gives up after [`MEMBERSHIP_SETTLE_MAX`].
    async fn change_membership_settled(
        &self,
        change: ChangeMembers<u64, PeerNode>,
        retain: bool,
    ) -> Result<(), ReplicationError> {
        let deadline = tokio::time::Instant::now() + MEMBERSHIP_SETTLE_MAX;
        loop {
            match self.raft.change_membership(change.clone(), retain).await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::UncommittedLeaderLog(_)
                    | ChangeMembershipError::InProgress(_),
                ))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(MEMBERSHIP_SETTLE_POLL).await;
                }
                Err(e) => return Err(write_error(e)),
            }
        }
    }

    /// Makes the membership exactly `target` (voters are the non-observers), in one joint
    /// consensus change, on the leader. New members join without waiting to catch up: the
    /// caller checks first that a quorum of the new voters is synced (as ZooKeeper's reconfig
    /// does). Members left out are removed; a removed leader steps down once the change is
    /// committed. Returns once the final membership is committed.
    pub async fn change_members(
        &self,
        target: &BTreeMap<u64, Member>,
    ) -> Result<(), ReplicationError> {
        self.check_running()?;
        let current = self.membership();
        let nodes: BTreeMap<u64, PeerNode> = target
            .iter()
            .map(|(id, m)| (*id, PeerNode::new(m.addr.clone(), m.spec.clone())))
            .collect();
        let voters: BTreeSet<u64> = target
            .iter()
            .filter(|(_, m)| !m.observer)
            .map(|(id, _)| *id)
            .collect();
        if voters.is_empty() {
            return Err(ReplicationError::Membership(
                "a membership needs at least one voter".into(),
            ));
        }
        let added: BTreeMap<u64, PeerNode> = nodes
            .iter()
            .filter(|(id, _)| !current.contains_key(id))
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let changed: BTreeMap<u64, PeerNode> = nodes
            .iter()
            .filter(|(id, n)| {
                current
                    .get(id)
                    .is_some_and(|m| m.addr != n.addr || m.spec != n.spec)
            })
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let mut changes = Vec::new();
        if !added.is_empty() {
            changes.push(ChangeMembers::AddNodes(added));
        }
        if !changed.is_empty() {
            changes.push(ChangeMembers::SetNodes(changed));
        }
        changes.push(ChangeMembers::ReplaceAllVoters(voters));
        // Removed voters stay learners through the joint phase (`retain`): the joint
        // configuration still counts them, so their nodes must stay until it is over.
        self.change_membership_settled(ChangeMembers::Batch(changes), true)
            .await?;
        let gone: BTreeSet<u64> = self
            .membership()
            .keys()
            .filter(|id| !target.contains_key(id))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.change_membership_settled(ChangeMembers::RemoveNodes(gone), false)
                .await?;
        }
        Ok(())
    }

    /// The current membership: every member with its address and role.
    pub fn membership(&self) -> BTreeMap<u64, Member> {
        let m = self.raft.server_metrics();
        let m = m.borrow_watched();
        members_of(m.membership_config.membership())
    }

    /// This server's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Whether this server is the leader now (it may stop being so at any moment).
    pub fn is_leader(&self) -> bool {
        !self.stopped.load(Ordering::Acquire) && self.raft.is_leader()
    }

    /// Whether this server is part of a working quorum now, as ZooKeeper's peers leave
    /// their quorum (and drop their clients) when it breaks: a leader that a quorum has
    /// acknowledged within the quorum lease (always, when it is the only voter), or a
    /// follower or observer that heard from its leader within it. A candidate is not.
    pub fn in_quorum(&self) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let window = Duration::from_millis(self.quorum_lease_ms);
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        match m.state {
            ServerState::Leader => {
                let alone = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .all(|id| id == self.node_id);
                alone
                    || m.last_quorum_acked
                        .as_ref()
                        .is_some_and(|acked| openraft::Instant::elapsed(&**acked) <= window)
            }
            ServerState::Follower | ServerState::Learner => {
                m.current_leader.is_some() && self.leader_contact.within(window)
            }
            _ => false,
        }
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
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        let (mut followers, mut synced_followers, mut learners_count, mut synced_learners) =
            (0, 0, 0, 0);
        let mut synced_members = Vec::new();
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            let alive_within = Duration::from_millis(self.election_timeout_max_ms);
            for (id, matched) in replication.iter() {
                if *id == self.node_id {
                    continue;
                }
                // ZooKeeper counts the followers connected to the leader: a follower
                // that stopped acknowledging heartbeats is gone even when no write has
                // moved the log since it died.
                let alive = heard_from(&m, *id, alive_within);
                let synced = alive
                    && matched
                        .map(|l| l.index + SYNCED_LAG_ENTRIES_MAX >= last)
                        .unwrap_or(false);
                if synced {
                    synced_members.push(*id);
                }
                if voters.contains(id) {
                    followers += 1;
                    synced_followers += usize::from(synced);
                } else {
                    learners_count += 1;
                    synced_learners += usize::from(synced);
                }
            }
        }
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
            members: members_of(membership),
            membership_index: m.membership_config.log_id().map(|l| l.index),
            membership_changing: membership.get_joint_config().len() > 1,
            voters,
            learners,
            followers,
            synced_followers,
            synced_members,
            learners_count,
            synced_learners,
            #[allow(deprecated)] // its replacement is an instant that needs a clock to read
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            proposals_submitted: self.sink.submitted.load(Ordering::Relaxed),
            proposals_forwarded: self.sink.forwarded.load(Ordering::Relaxed),
            proposals_rejected: self.sink.rejected.load(Ordering::Relaxed),
            proposals_queued: self.proposal_queue_capacity - self.proposals.capacity(),
            peer_messages_dropped: self.sink.peer_messages_dropped.load(Ordering::Relaxed),
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

    /// The underlying openraft node, for operations this API does not wrap (leader transfer).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The address peers' RPCs are served on, when listening.
    pub fn rpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc_addr
    }

    /// On a leader that is stopping: hands leadership to the most up-to-date live voter and
    /// waits (at most [`HAND_OVER_MAX`]) until that voter leads. ZooKeeper's followers notice a
    /// stopped leader at once (its sockets close) and elect another within moments; a Raft
    /// follower would wait out its election timeout (two ticks or more) while clients get no
    /// writes through. Best effort: with no live voter to take over, or if the transfer does
    /// not complete in time, the server stops anyway and the election timeout takes over.
    async fn hand_over_leadership(&self) {
        if !self.is_leader() {
            return;
        }
        let target = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
            let alive_within = Duration::from_millis(self.election_timeout_max_ms);
            m.replication.as_ref().and_then(|replication| {
                replication
                    .iter()
                    .filter(|(id, _)| **id != self.node_id && voters.contains(id))
                    .filter(|(id, _)| heard_from(&m, **id, alive_within))
                    .max_by_key(|(_, matched)| matched.map(|l| l.index))
                    .map(|(id, _)| *id)
            })
        };
        let Some(to) = target else {
            return;
        };
        tracing::info!(to, "stopping: handing leadership over");
        if self.raft.trigger().transfer_leader(to).await.is_err() {
            return;
        }
        let handed = self
            .raft
            .wait(Some(HAND_OVER_MAX))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != m.id),
                "leadership handed over",
            )
            .await;
        match handed {
            Ok(m) => tracing::info!(leader = ?m.current_leader, "leadership handed over"),
            Err(_) => tracing::warn!(
                to,
                "leadership was not handed over in time; stopping anyway"
            ),
        }
    }

    /// Stop: no more proposals, stop serving peers, stop Raft, let the log writer finish its
    /// queue and persist the last committed log id. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ReplicationError> {
        if self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        self.hand_over_leadership().await;
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _ = self.stop_tasks.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
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

fn members_of(membership: &openraft::Membership<u64, PeerNode>) -> BTreeMap<u64, Member> {
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| {
            (
                *id,
                Member {
                    addr: node.addr.clone(),
                    observer: !voters.contains(id),
                    spec: node.spec.clone(),
                },
            )
        })
        .collect()
}

impl Drop for Replica {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::Acquire) {
            let _ = self.stop_tasks.send(true);
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
    if !cfg.members.is_empty() && cfg.voter_ids().is_empty() {
        return bad("members include no participant (every server is an observer)".into());
    }
    if !cfg.is_standalone() && cfg.listen_addr.is_none() {
        return bad("an ensemble member needs listen_addr".into());
    }
    Ok(())
}
