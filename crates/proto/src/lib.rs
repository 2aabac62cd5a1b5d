//! ZooKeeper's client wire protocol, as defined by apache/zookeeper's
//! `zookeeper-jute/src/main/resources/zookeeper.jute`, `ZooDefs.java` and
//! `KeeperException.java`.
//!
//! This crate knows bytes and records only: no sockets, no tree. The server
//! and the client both build on it. On the server's request path the modules
//! come in this order: [`fourlw`] (first bytes of a connection), [`frame`]
//! (length prefix), [`records`] (`ConnectRequest` for the first frame),
//! [`request`] (every later frame), [`response`] (replies and watch events).
//! [`jute`] holds the primitive encoding they all use.

pub mod error;
pub mod fourlw;
pub mod frame;
pub mod jute;
pub mod opcode;
pub mod records;
pub mod request;
pub mod response;
pub mod types;

pub use error::ErrorCode;
pub use fourlw::FourLetterWord;
pub use frame::{decode_frame, write_frame, FrameError};
pub use jute::{DecodeError, JuteReader, JuteWrite};
pub use opcode::OpCode;
pub use records::{decode_record, encode_record, Record};
pub use request::{
    decode_request, CreateKind, CreateOp, MultiOp, ReadOp, Request, RequestDecodeError,
};
pub use response::{
    decode_reply, encode_connect_response, encode_header_reply, encode_multi_reply, encode_reply,
    encode_reply_record, encode_watch_event, MultiResponseItem, Response,
};
pub use types::{
    perms, Acl, AddWatchMode, CreateMode, EventType, Id, KeeperState, Stat, WatcherType,
};
