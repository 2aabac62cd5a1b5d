//! The apply step: openraft's `RaftStateMachine` wrapped around the server's [`Applier`].
//! Committed entries arrive here in log order on every server; normal entries go to the
//! applier, membership entries are recorded, blanks only advance `last_applied`. Snapshots are
//! the applier's bytes stored by `snapshot_store.rs` with the last applied log id and
//! membership, which this adapter tracks itself.
//!
//! The state machine is in memory: on start openraft installs the newest snapshot (the
//! applier's `restore`) and re-applies the committed entries after it, so the applier sees
//! every committed entry exactly once per process lifetime, in order, after one restore.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::Stream;
use futures_util::StreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;

use crate::proposer::Rejection;
use crate::snapshot_store::SnapshotFile;
use crate::snapshot_store::SnapshotStore;
use crate::snapshot_store::SnapshotWriter;
use crate::types::next_index;
use crate::types::LogId;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

/// What the server supplies: its state machine (the znode tree). Interior mutability is the
/// server's business; `apply`, `snapshot`, `begin_snapshot` and `restore` are called from one
/// task at a time, in log order.
pub trait Applier: Send + Sync + 'static {
    /// Apply one committed normal entry. Called on every server, in log order, exactly once
    /// per entry between two `restore` calls. `term` is the Raft term of the leader that
    /// proposed it (the ZooKeeper epoch) and `index` its log index; both are identical on every
    /// server. The outcome goes to clients through the server, not through this layer.
    fn apply(&self, term: u64, index: u64, payload: &[u8]);

    /// Serialize the whole state. Called between two `apply` calls, so it sees the state after
    /// exactly the entries applied so far. Only used through the default
    /// [`Applier::begin_snapshot`].
    fn snapshot(&self) -> Vec<u8>;

    /// Start a snapshot of the state after exactly the entries applied so far. Called on the
    /// apply task between two `apply` calls; the returned writer then runs on a blocking thread
    /// while applying goes on, and writes the snapshot's bytes straight into the snapshot file.
    ///
    /// The default calls [`Applier::snapshot`] here (so apply waits while it serializes) and
    /// the writer copies its bytes. An applier that can capture its state cheaply (an `Arc`
    /// of an immutable tree, a copy-on-write handle) should return a writer that serializes
    /// that capture, so that apply is not held up and no second copy is made in memory.
    fn begin_snapshot(&self) -> SnapshotWriter {
        let bytes = self.snapshot();
        Box::new(move |w: &mut dyn std::io::Write| w.write_all(&bytes))
    }

    /// Replace the whole state with a snapshot's bytes (at start, or when the leader sends a
    /// snapshot to a lagging follower).
    fn restore(&self, data: &[u8]) -> Result<(), String>;

    /// [`Applier::restore`] from a reader of the snapshot's bytes, called on a blocking
    /// thread. The default reads them all into memory first; an applier that can decode
    /// as it reads saves a copy of the whole snapshot in memory.
    fn restore_from(&self, data: &mut dyn std::io::Read) -> Result<(), String> {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| format!("cannot read the snapshot: {e}"))?;
        self.restore(&buf)
    }

    /// A payload this server accepted in [`crate::Replica::propose`] will not be applied
    /// through it; see [`Rejection`] for what each case means for the client. Called at most
    /// once per payload, from a replication task: must not block. The default ignores it.
    fn rejected(&self, payload: &[u8], rejection: Rejection) {
        let _ = (payload, rejection);
    }

    /// A message another server sent with [`crate::Replica::send_to_leader`] reached this
    /// server while it was leader (or this server sent it to itself while leading). Best
    /// effort: messages may be lost when leadership changes. Called from a network task: must
    /// not block. The default ignores it.
    fn on_peer_message(&self, from: u64, bytes: &[u8]) {
        let _ = (from, bytes);
    }
}

/// Progress counters shared with the [`crate::Replica`], for metrics and
/// `last_applied_index()`.
#[derive(Debug, Default)]
pub struct ApplyProgress {
    /// Last applied index + 1; 0 when nothing is applied.
    pub(crate) applied_next: AtomicU64,
    /// Normal entries handed to the applier.
    pub(crate) normal_entries_applied: AtomicU64,
    /// Snapshots built.
    pub(crate) snapshots_built: AtomicU64,
    /// Snapshots installed (restored).
    pub(crate) snapshots_installed: AtomicU64,
    /// Last snapshot's covered index count (last index + 1); 0 when none.
    pub(crate) snapshot_next: AtomicU64,
}

/// openraft's state machine over an [`Applier`].
pub struct StateMachineStore {
    applier: Arc<dyn Applier>,
    snapshots: Arc<SnapshotStore>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    progress: Arc<ApplyProgress>,
}

impl StateMachineStore {
    /// A state machine that has applied nothing yet; openraft restores the newest snapshot
    /// into it at start.
    pub fn new(
        applier: Arc<dyn Applier>,
        snapshots: Arc<SnapshotStore>,
        progress: Arc<ApplyProgress>,
    ) -> Self {
        StateMachineStore {
            applier,
            snapshots,
            last_applied: None,
            last_membership: StoredMembership::default(),
            progress,
        }
    }
}

/// Builds a snapshot from the state captured when the builder was created: openraft creates
/// the builder in the apply task (between two applies) and runs `build_snapshot` in another
/// task, so the state must be captured up front to be consistent with `meta`. The capture's
/// writer runs on a blocking thread, straight into the snapshot file.
pub struct SnapshotBuilder {
    meta: SnapshotMeta,
    /// A `Mutex` only to make the builder `Sync`, as openraft requires; never contended.
    writer: std::sync::Mutex<Option<SnapshotWriter>>,
    snapshots: Arc<SnapshotStore>,
    progress: Arc<ApplyProgress>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = self.meta.clone();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("snapshot builder used twice"))?;
        let snapshots = self.snapshots.clone();
        let meta2 = meta.clone();
        let file = tokio::task::spawn_blocking(move || snapshots.save_with(&meta2, writer))
            .await
            .map_err(|e| io::Error::other(format!("snapshot writer task failed: {e}")))?
            .map_err(io::Error::other)?;
        self.progress
            .snapshots_built
            .fetch_add(1, Ordering::Relaxed);
        self.progress
            .snapshot_next
            .store(next_index(meta.last_log_id.as_ref()), Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: file,
        })
    }
}

impl StateMachineStore {
    fn capture(&self) -> SnapshotBuilder {
        SnapshotBuilder {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
            },
            writer: std::sync::Mutex::new(Some(self.applier.begin_snapshot())),
            snapshots: self.snapshots.clone(),
            progress: self.progress.clone(),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            // Exactly once: an entry at or below last_applied would be applied twice.
            if let Some(last) = self.last_applied {
                if log_id.index <= last.index {
                    return Err(io::Error::other(format!(
                        "refusing to apply log index {} again: index {} is already applied",
                        log_id.index, last.index
                    )));
                }
            }
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(payload) => {
                    self.applier
                        .apply(log_id.leader_id.term, log_id.index, &payload.0);
                    self.progress
                        .normal_entries_applied
                        .fetch_add(1, Ordering::Relaxed);
                }
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(log_id), m);
                }
            }
            self.last_applied = Some(log_id);
            self.progress
                .applied_next
                .store(log_id.index + 1, Ordering::Release);
            if let Some(r) = responder {
                r.send(());
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.capture())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.capture()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let reader = snapshot.clone();
        let applier = Arc::clone(&self.applier);
        tokio::task::spawn_blocking(move || applier.restore_from(&mut reader.data_reader()))
            .await
            .map_err(|e| io::Error::other(format!("snapshot reader task failed: {e}")))?
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the state machine rejected snapshot {meta}: {e}"),
                )
            })?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.progress
            .applied_next
            .store(next_index(meta.last_log_id.as_ref()), Ordering::Release);
        self.progress
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        self.progress
            .snapshot_next
            .store(next_index(meta.last_log_id.as_ref()), Ordering::Relaxed);

        // Keep it on disk (a received file is renamed into place; our own newest file at
        // start is already there), and drop newer files that no longer describe our state.
        let snapshots = self.snapshots.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), io::Error> {
            snapshots
                .adopt(&meta, &snapshot)
                .map_err(io::Error::other)?;
            snapshots.remove_newer_than(&meta).map_err(io::Error::other)
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot writer task failed: {e}")))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.snapshots.clone();
        let loaded = tokio::task::spawn_blocking(move || snapshots.load_newest())
            .await
            .map_err(|e| io::Error::other(format!("snapshot reader task failed: {e}")))?
            .map_err(io::Error::other)?;
        Ok(loaded.map(|s| Snapshot {
            meta: s.meta,
            snapshot: s.file,
        }))
    }
}
