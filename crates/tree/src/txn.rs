//! What goes through the log and what applying it yields.

use std::sync::Arc;

use corral_proto::{Acl, CreateMode, ErrorCode, EventType, Id, Stat};
use serde::{Deserialize, Serialize};

/// One replicated request. The log carries the request, not its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    /// The session that sent the request (0 for internal requests such as
    /// container reaping).
    pub session_id: i64,
    /// Leader wall-clock time in ms when the request was proposed; becomes
    /// ctime/mtime.
    pub time_ms: i64,
    /// The identities the sending connection had authenticated, including its
    /// `ip:` id and `super:` when it authenticated as the super user. ACL checks
    /// at apply time use these.
    pub auth: Vec<Id>,
    pub op: TxnOp,
}

/// The write operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Registers `Txn::session_id` with its negotiated timeout.
    CreateSession {
        timeout_ms: i32,
    },
    /// Ends `Txn::session_id` (closed by the client or expired): deletes its
    /// ephemerals in one zxid.
    CloseSession,
    /// create, create2, createContainer, createTTL. `ttl_ms` is the request's
    /// ttl for createTTL and -1 otherwise. `data` is `None` when the client
    /// sent null; the node then reads back as null.
    Create {
        path: String,
        /// Encoded as bytes, not as a sequence of `u8`: the same postcard
        /// bytes (a length, then the bytes), copied in one go instead of one
        /// serde call per byte.
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    /// `data` is `None` when the client sent null.
    SetData {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// Atomic: all sub-ops succeed or none is applied. Sub-ops are Create,
    /// Delete, SetData, Check only.
    Multi(Vec<TxnOp>),
    /// Internal (container/TTL reaper): delete if still empty and reapable.
    DeleteContainer {
        path: String,
    },
    /// A request the server rejected before it reached the tree (for example
    /// create flags that are no CreateMode → BadArguments). Like ZooKeeper's
    /// error txn it still uses a zxid and changes nothing; `apply` returns
    /// `TxnResult::Error(code)`. Inside a multi, that op fails with `code`,
    /// except `Fail(MarshallingError)`, which, once reached, fails the whole
    /// multi with MarshallingError (as ZooKeeper's prep stage does).
    Fail(ErrorCode),
    /// A reconfiguration took effect (ZooKeeper's reconfig txn, a setData of
    /// `/zookeeper/config` with version -1): `members` is the dynamic
    /// configuration's `server.N=…` lines; the tree appends
    /// `version=<zxid in hex>`, the version of the new configuration.
    SetConfig {
        members: String,
    },
    /// The session's client reattached through another server. The server
    /// records the new owner without a zxid (ZooKeeper's revalidation is no
    /// transaction) and never hands this op to the tree; applying it here
    /// changes nothing.
    MoveSession {
        timeout_ms: i32,
    },
}

/// The outcome of one op. Errors are protocol outcomes, not Rust errors.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnResult {
    SessionCreated,
    SessionClosed,
    /// The created path (with any sequential suffix) and the new node's Stat.
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    Multi(Vec<MultiOpResult>),
    Error(ErrorCode),
}

/// One sub-result of a multi. On failure every entry is `Error`: `Ok` for the
/// ops before the failing one, its own code for the failing op,
/// `RuntimeInconsistency` after it (exactly as ZooKeeper answers).
#[derive(Debug, Clone, PartialEq)]
pub enum MultiOpResult {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    Checked,
    Error(ErrorCode),
}

/// A change that fires watches: the server's watch registry maps it to the
/// sessions watching `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchTrigger {
    pub path: String,
    pub event: EventType,
    /// The ACL of the node the event names (the parent's for
    /// NodeChildrenChanged); a watcher gets the event only if it passes a READ
    /// check against it (ZooKeeper's CVE-2024-23944 fix).
    pub acl: Arc<Vec<Acl>>,
}

/// What applying one txn yields.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOutcome {
    pub zxid: i64,
    pub result: TxnResult,
    /// In the order ZooKeeper fires them.
    pub triggers: Vec<WatchTrigger>,
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::TxnOp;

    /// `TxnOp::SetData` as builds before `serde_bytes` declared it: data as a
    /// sequence of `u8`.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum OldTxnOp {
        CreateSession {
            timeout_ms: i32,
        },
        CloseSession,
        Create,
        Delete,
        SetData {
            path: String,
            data: Option<Vec<u8>>,
            version: i32,
        },
    }

    #[test]
    fn data_as_bytes_is_encoded_as_before_so_old_logs_still_read() {
        for data in [
            None,
            Some(vec![]),
            Some(vec![0, 1, 255]),
            Some(vec![7; 300]),
        ] {
            let new = TxnOp::SetData {
                path: "/a".into(),
                data: data.clone(),
                version: -1,
            };
            let old = OldTxnOp::SetData {
                path: "/a".into(),
                data,
                version: -1,
            };
            let new_bytes = postcard::to_allocvec(&new).unwrap();
            assert_eq!(new_bytes, postcard::to_allocvec(&old).unwrap());
            assert_eq!(postcard::from_bytes::<OldTxnOp>(&new_bytes).unwrap(), old);
            assert_eq!(postcard::from_bytes::<TxnOp>(&new_bytes).unwrap(), new);
        }
    }
}
