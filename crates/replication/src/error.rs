//! Operational errors of the replication layer, typed with `thiserror`. Each names the file or
//! the condition a user can act on; none of them is a ZooKeeper protocol outcome.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors of the segmented log and its metadata file.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// An I/O call failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("open log segment", "fdatasync", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A record failed its checks and valid records follow it: this is not a torn write at the
    /// tail but corruption inside the log, and going on could lose committed entries.
    #[error(
        "log segment {path} is corrupt at byte {offset} (expected the record of index {index}): {reason}; \
         valid records follow it, so this is not a torn write at the tail: refusing to start"
    )]
    CorruptMidLog {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// The index the bad record should have had.
        index: u64,
        /// What check failed.
        reason: String,
    },

    /// A segment other than the last one is damaged (only the last segment can have a torn tail).
    #[error(
        "log segment {path} is corrupt at byte {offset} (expected the record of index {index}): {reason}; \
         it is not the last segment, so this is not a torn write: refusing to start"
    )]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// The index the bad record should have had.
        index: u64,
        /// What check failed.
        reason: String,
    },

    /// Log indexes are not contiguous across segments.
    #[error(
        "gap in the log: {path} starts at index {found} but index {expected} was expected next"
    )]
    Gap {
        /// The segment that starts too late.
        path: PathBuf,
        /// The index that should have come next.
        expected: u64,
        /// The index the segment starts at.
        found: u64,
    },

    /// The vote/commit/purge metadata file cannot be decoded.
    #[error("log metadata {path} is corrupt: {reason}")]
    CorruptMeta {
        /// The metadata file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// An earlier write or fsync failed; the store refuses to continue, because the state of the
    /// file after a failed fsync is unknown.
    #[error("the log store stopped after an earlier failure: {0}")]
    Failed(String),
}

impl LogStoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogStoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Errors of the snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// An I/O call failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A snapshot file fails its checks.
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
}

impl SnapshotError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SnapshotError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Errors returned by [`crate::Replica`].
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The log store failed to open or to write.
    #[error(transparent)]
    LogStore(#[from] LogStoreError),

    /// The snapshot files failed to open or to write.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),

    /// The configuration is unusable.
    #[error("invalid replication config: {0}")]
    Config(String),

    /// Writes and `sync` are served by the leader; this server is not it.
    #[error("not leader (leader is {})", LeaderDisplay(*leader_id))]
    NotLeader {
        /// The leader this server knows of, if any.
        leader_id: Option<u64>,
    },

    /// The proposal queue is full (only from [`crate::Replica::try_propose`]).
    #[error("proposal queue is full ({capacity} proposals outstanding)")]
    Busy {
        /// The queue's capacity.
        capacity: usize,
    },

    /// The replica has been shut down or its Raft core stopped.
    #[error("replication is shut down")]
    ShutDown,

    /// A read-index could not be confirmed by a quorum.
    #[error("no quorum: {0}")]
    NoQuorum(String),

    /// Something did not happen in time.
    #[error("timed out after {after_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        after_ms: u64,
    },

    /// The RPC listener could not be set up.
    #[error("cannot listen for replication RPCs on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A membership change was refused (one is already under way, the node is unknown...).
    #[error("membership change refused: {0}")]
    Membership(String),

    /// openraft reported an unrecoverable error (usually a storage failure logged before it).
    #[error("raft stopped: {0}")]
    Fatal(String),
}

struct LeaderDisplay(Option<u64>);

impl fmt::Display for LeaderDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "server {id}"),
            None => f.write_str("unknown"),
        }
    }
}
