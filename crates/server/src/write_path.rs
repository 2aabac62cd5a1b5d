//! Turning a client's write request into a log entry. Nothing is decided
//! here: validation happens when the entry is applied, identically on every
//! server. This side only stamps the leader time and the connection's
//! identities, and remembers the shape of the reply.

use corral_proto::request::{CreateKind, CreateOp, MultiOp, Request};
use corral_proto::{CreateMode, ErrorCode, Id};
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
                        let (op, kind) = multi_create_op(c);
                        kinds.push(Some(kind));
                        txn_ops.push(op);
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
    let mode = match (op.mode(), op.kind) {
        // ZooKeeper's CreateMode.fromFlag fails before anything else.
        (None, _) => return TxnOp::Fail(ErrorCode::BadArguments),
        // The createContainer opcode makes a container whatever non-TTL
        // flags come with it: ZooKeeper's txn type decides, not the flags.
        (Some(mode), CreateKind::CreateContainer) if !mode.is_ttl() => CreateMode::Container,
        (Some(mode), _) => mode,
    };
    TxnOp::Create {
        path: op.path,
        data: op.data,
        acl: op.acl,
        mode,
        ttl_ms: op.ttl_ms,
    }
}

/// A create inside a multi, rebuilt from its flags as ZooKeeper's
/// `MultiOperationRecord` does (`Op.create`): unknown flags mean persistent,
/// the mode alone picks container or not, and a TTL mode that did not come
/// as createTTL cannot be prepared (the whole multi fails). Returns the op
/// and the opcode it answers as.
fn multi_create_op(op: CreateOp) -> (TxnOp, CreateKind) {
    // The op is built with unknown flags read as persistent, but preparing
    // it checks the flags again: BadArguments for that op.
    let Some(mode) = op.mode() else {
        return (TxnOp::Fail(ErrorCode::BadArguments), op.kind);
    };
    if mode.is_ttl() && op.kind != CreateKind::CreateTtl {
        return (TxnOp::Fail(ErrorCode::MarshallingError), op.kind);
    }
    let (kind, ttl_ms) = match (op.kind, mode) {
        (_, CreateMode::Container) => (CreateKind::CreateContainer, -1),
        (CreateKind::CreateTtl, m) if m.is_ttl() => (CreateKind::CreateTtl, op.ttl_ms),
        (CreateKind::Create2, _) => (CreateKind::Create2, -1),
        _ => (CreateKind::Create, -1),
    };
    (
        TxnOp::Create {
            path: op.path,
            data: op.data,
            acl: op.acl,
            mode,
            ttl_ms,
        },
        kind,
    )
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
