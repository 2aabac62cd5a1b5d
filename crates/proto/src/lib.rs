//! ZooKeeper's client wire protocol, as defined by apache/zookeeper's
//! `zookeeper-jute/src/main/resources/zookeeper.jute`, `ZooDefs.java` and
//! `KeeperException.java`.
//!
//! This crate knows bytes and records only: no sockets, no tree. The server
//! and the client both build on it.

pub mod error;
pub mod opcode;
pub mod types;

pub use error::ErrorCode;
pub use opcode::OpCode;
pub use types::{perms, Acl, CreateMode, EventType, Id, KeeperState, Stat};
