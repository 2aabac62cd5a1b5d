//! Turning a client's write request into a log entry. Nothing is decided
//! here: validation happens when the entry is applied, identically on every
//! server. This side only stamps the leader time and the connection's
//! identities, and remembers the shape of the reply.

use corral_proto::request::{CreateOp, MultiOp, Request};
use corral_proto::{ErrorCode, Id};
use corral_tree::{Txn, TxnOp};

use crate::core::ReplyShape;

/// The txn op and reply shape of a write request; `None` for requests that
/// are not writes.
pub fn to_txn_op(request: Request) -> Option<(TxnOp, ReplyShape)> {
    Some(match request {
        Request::Create(op) => {
            let kind = op.kind;
            (create_op(op), ReplyShape::Create(kind))
        }
        Request::Delete(r) => (
            TxnOp::Delete {
                path: r.path,
                version: r.version,
            },
            ReplyShape::Delete,
        ),
        Request::SetData(r) => (
            TxnOp::SetData {
                path: r.path,
                data: r.data,
                version: r.version,
            },
            ReplyShape::SetData,
        ),
        Request::SetAcl(r) => (
            TxnOp::SetAcl {
                path: r.path,
                acl: r.acl,
                version: r.version,
            },
            ReplyShape::SetAcl,
        ),
        Request::Check(r) => (
            TxnOp::Check {
                path: r.path,
                version: r.version,
            },
            ReplyShape::Check,
        ),
        Request::Multi(ops) => {
            let mut kinds = Vec::with_capacity(ops.len());
            let mut txn_ops = Vec::with_capacity(ops.len());
            for op in ops {
                match op {
                    MultiOp::Create(c) => {
                        kinds.push(Some(c.kind));
                        txn_ops.push(create_op(c));
                    }
                    MultiOp::Delete(r) => {
                        kinds.push(None);
                        txn_ops.push(TxnOp::Delete {
                            path: r.path,
                            version: r.version,
                        });
                    }
                    MultiOp::SetData(r) => {
                        kinds.push(None);
                        txn_ops.push(TxnOp::SetData {
                            path: r.path,
                            data: r.data,
                            version: r.version,
                        });
                    }
                    MultiOp::Check(r) => {
                        kinds.push(None);
                        txn_ops.push(TxnOp::Check {
                            path: r.path,
                            version: r.version,
                        });
                    }
                }
            }
            (TxnOp::Multi(txn_ops), ReplyShape::Multi(kinds))
        }
        Request::CloseSession => (TxnOp::CloseSession, ReplyShape::CloseSession),
        _ => return None,
    })
}

fn create_op(op: CreateOp) -> TxnOp {
    match op.mode() {
        Some(mode) => TxnOp::Create {
            path: op.path,
            data: op.data,
            acl: op.acl,
            mode,
            ttl_ms: op.ttl_ms,
        },
        // ZooKeeper's CreateMode.fromFlag fails before anything else.
        None => TxnOp::Fail(ErrorCode::BadArguments),
    }
}

/// Stamps a txn with the proposing server's wall clock (the only clock the
/// tree ever sees) and the connection's identities.
pub fn stamp(session_id: i64, auth: &[Id], op: TxnOp) -> Txn {
    Txn {
        session_id,
        time_ms: wall_clock_ms(),
        auth: auth.to_vec(),
        op,
    }
}

pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
