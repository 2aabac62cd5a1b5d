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
use crate::snapshot_store::SnapshotStore;
use crate::types::next_index;
use crate::types::LogId;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

/// What the server supplies: its state machine (the znode tree). Interior mutability is the
/// server's business; every method is called from one task at a time, in log order.
pub trait Applier: Send + Sync + 'static {
    /// Apply one committed normal entry. Called on every server, in log order, exactly once
    /// per entry between two `restore` calls. `term` is the Raft term of the leader that
    /// proposed it (the ZooKeeper epoch) and `index` its log index; both are identical on every
    /// server. The outcome goes to clients through the server, not through this layer.
    fn apply(&self, term: u64, index: u64, payload: &[u8]);

    /// Serialize the whole state. Called between two `apply` calls, so it sees the state after
    /// exactly the entries applied so far.
    fn snapshot(&self) -> Vec<u8>;

    /// Replace the whole state with a snapshot's bytes (at start, or when the leader sends a
    /// snapshot to a lagging follower).
    fn restore(&self, data: &[u8]) -> Result<(), String>;

    /// A payload this server accepted in [`crate::Replica::propose`] will not be applied
    /// through it; see [`Rejection`] for what each case means for the client. Called from
    /// the Raft task or the proposer task: must not block. The default ignores it.
    fn rejected(&self, payload: &[u8], rejection: Rejection) {
        let _ = (payload, rejection);
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

/// Builds a snapshot from bytes captured when the builder was created: openraft creates the
/// builder in the apply task (between two applies) and runs `build_snapshot` in another task,
/// so the state must be captured up front to be consistent with `meta`.
pub struct SnapshotBuilder {
    meta: SnapshotMeta,
    data: Vec<u8>,
    snapshots: Arc<SnapshotStore>,
    progress: Arc<ApplyProgress>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = self.meta.clone();
        let data = std::mem::take(&mut self.data);
        let snapshots = self.snapshots.clone();
        let (meta, data) =
            tokio::task::spawn_blocking(move || snapshots.save(&meta, &data).map(|_| (meta, data)))
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
            snapshot: data,
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
            data: self.applier.snapshot(),
            snapshots: self.snapshots.clone(),
            progress: self.progress.clone(),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = Vec<u8>;
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
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        self.applier.restore(&snapshot).map_err(|e| {
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

        // Persist it unless this is the restore of our own newest file at start.
        let snapshots = self.snapshots.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), io::Error> {
            if !snapshots.contains(&meta) {
                snapshots.save(&meta, &snapshot).map_err(io::Error::other)?;
            }
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
            snapshot: s.data,
        }))
    }
}
