//! Corral's replication layer: openraft driven over our own segmented log and snapshot files.
//! Knows nothing of ZooKeeper: a proposal is opaque bytes, and the server's [`Applier`] gives
//! them meaning when they are applied, in log order, on every server.
//!
//! Files, in the order a write travels: `replica.rs` (the API: propose, read_index,
//! send_to_leader, membership, status), `bootstrap.rs` (forming the group the first time),
//! `proposer.rs` (the one task feeding proposals into Raft or forwarding them to the leader),
//! `link.rs` (a follower's link to the leader: forwarded writes, read index, side channel),
//! `log_store.rs` + `segment.rs` (the durable log, group-commit fsync), `state_machine.rs`
//! (apply into the [`Applier`], snapshots), `snapshot_store.rs` (snapshot files),
//! `network.rs` + `transport.rs` (RPCs between servers: pipelined appends, streamed
//! snapshots), `types.rs` (openraft type config).
//!
//! # Durability
//!
//! An entry reaches [`Applier::apply`] only after it is committed, and openraft counts a
//! server towards commit only once that server's log store has called the entry's
//! `IOFlushed` callback, which the log writer does after the `fdatasync` of the batch holding
//! it. So on a standalone server every applied entry is on disk before `apply` runs; in an
//! ensemble it is on the disks of a quorum. Vote and purge marks are written tmp + fsync +
//! rename + fsync dir before openraft is told they are saved. The committed index is persisted
//! lazily (it only saves re-applying work on restart). Snapshots are fsynced before the log
//! they cover is purged, and segments are deleted only below the oldest kept snapshot.
//!
//! On restart the newest readable snapshot is restored into the (empty) applier and every
//! committed entry after it is applied again, in order, once.

mod bootstrap;
mod durable;
pub mod error;
mod failover;
mod link;
pub mod log_store;
pub mod network;
mod proposer;
mod replica;
pub mod runtime;
mod segment;
pub mod snapshot_store;
pub mod state_machine;
mod transport;
pub mod types;

pub use bytes::Bytes;
pub use error::LogStoreError;
pub use error::ReplicationError;
pub use error::SnapshotError;
pub use proposer::ProposalResponder;
pub use proposer::Rejection;
pub use replica::Member;
pub use replica::Replica;
pub use replica::ReplicaConfig;
pub use replica::ReplicaMetrics;
pub use replica::Role;
pub use replica::SYNCED_LAG_ENTRIES_MAX;
pub use snapshot_store::SnapshotWriter;
pub use state_machine::Applier;
pub use types::PeerNode;
