//! The znode tree: Corral's replicated state machine.
//!
//! Every server applies the same log of [`Txn`]s with [`DataTree::apply`] and
//! so reaches the same tree. `apply` validates each request (NodeExists,
//! BadVersion, NoAuth, sequential suffixes…) deterministically: it never reads
//! a clock or a random number; time comes in `Txn::time_ms`, stamped by the
//! leader. Reads are plain methods on `&DataTree`.
//!
//! This crate knows nothing of sockets, files or sessions' connections: the
//! server turns [`WatchTrigger`]s into events and replies.
//!
//! Files, in the order a write meets them: `apply.rs` (check then carry out),
//! `path.rs` and `acl.rs` (the rules the checks use), `node.rs` (one znode) and `children.rs`
//! (its child list),
//! `store.rs` (where nodes live, shared with snapshot captures), `tree.rs` (the tree, its indexes, reads), `quota.rs`, `reap.rs`,
//! `snapshot.rs`.

mod acl;
mod apply;
mod children;
mod node;
mod path;
mod quota;
mod reap;
mod snapshot;
mod store;
mod tree;
pub mod txn;

pub use acl::{check_acl, digest_id};
pub use path::validate_path;
pub use quota::StatsTrack;
pub use snapshot::{SnapshotError, TreeCapture};
pub use tree::{DataTree, TreeConfig};
pub use txn::{ApplyOutcome, MultiOpResult, Txn, TxnOp, TxnResult, WatchTrigger};
