//! Corral's replication layer: openraft driven over our own segmented log and snapshot files.
//! Knows nothing of ZooKeeper: a proposal is opaque bytes, and the server's [`Applier`] gives
//! them meaning when they are applied, in log order, on every server.
//!
//! Files, in the order a write travels: `replica.rs` (the API: propose, read_index, status),
//! `log_store.rs` + `segment.rs` (the durable log, group-commit fsync), `state_machine.rs`
//! (apply into the [`Applier`], snapshots), `snapshot_store.rs` (snapshot files),
//! `network.rs` + `transport.rs` (RPCs between servers), `types.rs` (openraft type config).

mod durable;
pub mod error;
pub mod log_store;
pub mod network;
mod replica;
mod segment;
pub mod snapshot_store;
pub mod state_machine;
mod transport;
pub mod types;

pub use bytes::Bytes;
pub use error::LogStoreError;
pub use error::ReplicationError;
pub use error::SnapshotError;
pub use replica::Replica;
pub use replica::ReplicaConfig;
pub use replica::ReplicaMetrics;
pub use replica::Role;
pub use state_machine::Applier;
