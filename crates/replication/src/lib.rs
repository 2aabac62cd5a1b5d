//! Corral's replication layer: openraft driven over our own segmented log and snapshot files.
//! Knows nothing of ZooKeeper: a proposal is opaque bytes, and the server's [`Applier`] gives
//! them meaning when they are applied, in log order, on every server.

mod durable;
pub mod error;
pub mod log_store;
mod segment;
pub mod types;

pub use error::LogStoreError;
pub use error::ReplicationError;
pub use error::SnapshotError;
pub mod snapshot_store;
pub mod state_machine;

pub use state_machine::Applier;
