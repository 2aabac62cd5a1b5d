//! The apply step every server runs for every committed entry, in log order:
//! the tree applies the txn, watches fire, and the server that holds the
//! requesting connection queues the reply — after the events, as ZooKeeper
//! does — then serves the reads that were waiting behind that write.

use bytes::BytesMut;
use corral_proto::records::{Create2Response, CreateResponse, SetAclResponse, SetDataResponse};
use corral_proto::response::{
    encode_connect_response, encode_header_reply, encode_multi_reply, encode_reply_record,
    MultiResponseItem,
};
use corral_proto::ErrorCode;
use corral_tree::{MultiOpResult, TxnOp, TxnResult};

use crate::core::{Core, Pending, ReplyShape, Shared};
use crate::entry::{next_zxid, LogEntry};
use crate::read_path::serve_read;
use crate::session::accepted_response;

impl Shared {
    /// Applies one committed log entry. Called by the replication layer, in
    /// log order, exactly once per entry on this server.
    pub fn apply_committed(&self, term: u64, index: u64, payload: &[u8]) {
        let entry = match LogEntry::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                // Every server decodes the same bytes the same way, so
                // skipping keeps replicas identical; it means a bug though.
                tracing::error!(index, error = %e, "undecodable log entry skipped");
                return;
            }
        };
        let mut core = self.core.lock();
        let zxid = next_zxid(core.tree.last_zxid(), term);
        let outcome = core.tree.apply(zxid, &entry.txn);
        let session_id = entry.txn.session_id;
        let ours = entry.origin == self.server_id && entry.conn != 0;

        match &entry.txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                let conn = if ours && core.conns.contains_key(&entry.conn) {
                    Some(entry.conn)
                } else {
                    None
                };
                core.sessions.add(session_id, *timeout_ms, conn);
            }
            TxnOp::CloseSession => {
                if let Some(tracked) = core.sessions.remove(session_id) {
                    // An expired session's connection is closed with no
                    // message; a client's own close is answered first (below).
                    if let Some(conn_id) = tracked.conn {
                        if !(ours && conn_id == entry.conn) {
                            core.drop_conn(conn_id);
                        }
                    }
                }
            }
            _ => {}
        }

        for trigger in &outcome.triggers {
            core.fire(&trigger.path, trigger.event, &trigger.acl);
        }

        if ours {
            reply(
                &mut core,
                entry.conn,
                entry.xid,
                zxid,
                session_id,
                outcome.result,
            );
        }
    }
}

/// Queues the reply of an applied write on its connection, then the reads
/// that waited behind it.
fn reply(core: &mut Core, conn_id: u64, xid: i32, zxid: i64, session_id: i64, result: TxnResult) {
    let Some(conn) = core.conns.get_mut(&conn_id) else {
        return;
    };
    let Some(Pending::Write {
        xid: pending_xid,
        shape,
        received,
    }) = conn.pending.pop_front()
    else {
        tracing::error!(
            conn_id,
            xid,
            "applied write has no pending request on its connection"
        );
        return;
    };
    debug_assert_eq!(
        pending_xid, xid,
        "a session's replies must follow its request order"
    );
    let mut buf = BytesMut::new();
    let mut close_after = false;
    match (&shape, result) {
        (
            ReplyShape::Connect {
                timeout_ms,
                read_only_byte,
            },
            _,
        ) => {
            conn.session_id = session_id;
            conn.timeout_ms = *timeout_ms;
            let response = accepted_response(session_id, *timeout_ms, *read_only_byte);
            encode_connect_response(&mut buf, &response);
            tracing::debug!(
                session = format_args!("{session_id:#x}"),
                "session established"
            );
        }
        (_, TxnResult::Error(code)) => encode_header_reply(&mut buf, xid, zxid, code),
        (ReplyShape::Create(kind), TxnResult::Created { path, stat }) => {
            if kind.replies_with_stat() {
                encode_reply_record(&mut buf, xid, zxid, &Create2Response { path, stat });
            } else {
                encode_reply_record(&mut buf, xid, zxid, &CreateResponse { path });
            }
        }
        (ReplyShape::SetData, TxnResult::DataSet { stat }) => {
            encode_reply_record(&mut buf, xid, zxid, &SetDataResponse { stat })
        }
        (ReplyShape::SetAcl, TxnResult::AclSet { stat }) => {
            encode_reply_record(&mut buf, xid, zxid, &SetAclResponse { stat })
        }
        (ReplyShape::Multi(kinds), TxnResult::Multi(results)) => {
            let items: Vec<MultiResponseItem> = results
                .into_iter()
                .enumerate()
                .map(|(i, r)| multi_item(kinds.get(i).copied().flatten(), r))
                .collect();
            encode_multi_reply(&mut buf, xid, zxid, &items);
        }
        (ReplyShape::CloseSession, _) => {
            encode_header_reply(&mut buf, xid, zxid, ErrorCode::Ok);
            close_after = true;
        }
        (_, _) => encode_header_reply(&mut buf, xid, zxid, ErrorCode::Ok),
    }
    conn.record_reply(shape_name(&shape), xid, zxid, received);
    conn.send(buf.freeze());
    if close_after {
        core.drop_conn(conn_id);
        return;
    }
    serve_waiting_reads(core, conn_id);
}

/// Serves the reads at the front of a connection's queue, up to the next
/// write that has not been applied yet.
pub fn serve_waiting_reads(core: &mut Core, conn_id: u64) {
    loop {
        let Some(conn) = core.conns.get_mut(&conn_id) else {
            return;
        };
        match conn.pending.front() {
            Some(Pending::Read { .. }) | Some(Pending::Ready(_)) | Some(Pending::Close) => {}
            Some(Pending::Sync { ready: true, .. }) => {}
            _ => return,
        }
        match conn.pending.pop_front() {
            Some(Pending::Read {
                xid,
                request,
                received,
            })
            | Some(Pending::Sync {
                xid,
                request,
                received,
                ..
            }) => serve_read(core, conn_id, xid, request, received),
            Some(Pending::Ready(frame)) => conn.send(frame),
            Some(Pending::Close) => {
                conn.close();
                return;
            }
            _ => return,
        }
    }
}

/// Marks a connection's `sync` as caught up and serves what can go out.
pub fn sync_done(core: &mut Core, conn_id: u64, sync_xid: i32) {
    let Some(conn) = core.conns.get_mut(&conn_id) else {
        return;
    };
    for pending in conn.pending.iter_mut() {
        if let Pending::Sync { xid, ready, .. } = pending {
            if *xid == sync_xid && !*ready {
                *ready = true;
                break;
            }
        }
    }
    serve_waiting_reads(core, conn_id);
}

fn multi_item(
    kind: Option<corral_proto::request::CreateKind>,
    r: MultiOpResult,
) -> MultiResponseItem {
    match r {
        MultiOpResult::Created { path, stat } => match kind {
            Some(kind) => MultiResponseItem::created(kind, path, stat),
            None => MultiResponseItem::Create2 { path, stat },
        },
        MultiOpResult::Deleted => MultiResponseItem::Delete,
        MultiOpResult::DataSet { stat } => MultiResponseItem::SetData { stat },
        MultiOpResult::Checked => MultiResponseItem::Check,
        MultiOpResult::Error(code) => MultiResponseItem::Error(code),
    }
}

fn shape_name(shape: &ReplyShape) -> &'static str {
    match shape {
        ReplyShape::Connect { .. } => "SESS",
        ReplyShape::Create(_) => "CREA",
        ReplyShape::Delete => "DELE",
        ReplyShape::SetData => "SETD",
        ReplyShape::SetAcl => "SETA",
        ReplyShape::Check => "CHEC",
        ReplyShape::Multi(_) => "MULT",
        ReplyShape::CloseSession => "CLOS",
    }
}
