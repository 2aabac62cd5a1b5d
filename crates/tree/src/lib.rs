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

pub mod txn;

pub use txn::{ApplyOutcome, MultiOpResult, Txn, TxnOp, TxnResult, WatchTrigger};
