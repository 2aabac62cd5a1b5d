//! The apply step every server runs for every committed entry, in log order:
//! the tree applies the txn, watches fire, and the server that holds the
//! requesting connection queues the reply — after the events, as ZooKeeper
//! does — then serves the reads that were waiting behind that write.

use bytes::BytesMut;
use corral_proto::records::{
    ConnectResponse, Create2Response, CreateResponse, GetDataResponse, SetAclResponse,
    SetDataResponse,
};
use corral_proto::response::{
    encode_connect_response, encode_header_reply, encode_multi_reply, encode_reply_record,
    MultiResponseItem,
};
use corral_proto::ErrorCode;
use corral_tree::{MultiOpResult, Txn, TxnOp, TxnResult};

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
        let ours = entry.origin == self.server_id && entry.conn != 0;
        if let TxnOp::MoveSession { timeout_ms } = entry.txn.op {
            // No zxid: ZooKeeper's revalidation is no transaction.
            self.move_session(&mut core, &entry, timeout_ms, ours);
            return;
        }
        let session_id = entry.txn.session_id;
        // ZooKeeper's checkSession(owner): once a session has moved to
        // another server, a write still arriving through its old server
        // fails with SessionMoved (and changes nothing). The owner lives in
        // the tree, so every server decides this alike.
        let moved = session_id != 0
            && !matches!(
                entry.txn.op,
                TxnOp::CreateSession { .. } | TxnOp::CloseSession
            )
            && core
                .tree
                .session_owner(session_id)
                .is_some_and(|owner| owner != entry.origin);
        let zxid = next_zxid(core.tree.last_zxid(), term);
        let outcome = if moved {
            let refused = Txn {
                session_id,
                time_ms: entry.txn.time_ms,
                auth: Vec::new(),
                op: TxnOp::Fail(ErrorCode::SessionMoved),
            };
            core.tree.apply(zxid, &refused)
        } else {
            core.tree.apply(zxid, &entry.txn)
        };

        match &entry.txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                let conn = if ours && core.conns.contains_key(&entry.conn) {
                    Some(entry.conn)
                } else {
                    None
                };
                core.sessions.add(session_id, *timeout_ms, conn);
                core.tree.set_session_owner(session_id, entry.origin);
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

    /// A client reattached its session through `entry.origin`: that server
    /// owns it from here on in the log's order, and a connection to it
    /// anywhere else is closed (ZooKeeper closes the old connection when a
    /// write comes through it; closing at once is the same, sooner).
    fn move_session(&self, core: &mut Core, entry: &LogEntry, timeout_ms: i32, ours: bool) {
        let session_id = entry.txn.session_id;
        let known = core.tree.session_timeout_ms(session_id).is_some();
        if known {
            core.tree.set_session_owner(session_id, entry.origin);
            let old = core.sessions.get(session_id).and_then(|s| s.conn);
            if let Some(old) = old {
                if !(ours && old == entry.conn) {
                    core.drop_conn(old);
                }
            }
            if ours && core.conns.contains_key(&entry.conn) {
                if let Some(s) = core.sessions.get_mut(session_id) {
                    s.conn = Some(entry.conn);
                }
                core.sessions.set_timeout(session_id, timeout_ms);
            }
        }
        if ours {
            let result = if known {
                TxnResult::SessionCreated
            } else {
                TxnResult::Error(ErrorCode::SessionExpired)
            };
            let zxid = core.tree.last_zxid();
            reply(core, entry.conn, entry.xid, zxid, session_id, result);
        }
    }
}

/// Room for a reply header and a Stat (and a short path) without growing the buffer.
const REPLY_CAPACITY: usize = 128;

/// Queues the reply of an applied write on its connection, then the reads
/// that waited behind it.
fn reply(core: &mut Core, conn_id: u64, xid: i32, zxid: i64, session_id: i64, result: TxnResult) {
    // A reconfig's outcome comes back after the membership change, so writes
    // the client sent after it may be applied first: the reply takes the
    // place of its own request in the queue, and goes out in request order.
    // Only a reconfig's reply carries the config; other writes skip the read.
    let answers_reconfig = core.conns.get(&conn_id).is_some_and(|c| {
        c.pending.iter().any(|p| {
            matches!(p, Pending::Write { xid: x, shape: ReplyShape::Reconfig, .. } if *x == xid)
        })
    });
    let config_data = match result {
        TxnResult::DataSet { .. } if answers_reconfig => {
            crate::reconfig::config_node(&core.tree).map(|(text, _)| text.into_bytes())
        }
        _ => None,
    };
    let Some(conn) = core.conns.get_mut(&conn_id) else {
        return;
    };
    let position = conn
        .pending
        .iter()
        .position(|p| matches!(p, Pending::Write { xid: x, .. } if *x == xid));
    let Some(Pending::Write {
        shape, received, ..
    }) = position.and_then(|i| conn.pending.remove(i))
    else {
        tracing::error!(
            conn_id,
            xid,
            "applied write has no pending request on its connection"
        );
        return;
    };
    let position = position.unwrap_or(0);
    debug_assert!(
        position == 0
            || conn.pending.iter().take(position).any(|p| matches!(
                p,
                Pending::Write {
                    shape: ReplyShape::Reconfig,
                    ..
                }
            )),
        "a session's replies must follow its request order"
    );
    let mut buf = BytesMut::with_capacity(REPLY_CAPACITY);
    let mut close_after = false;
    match (&shape, result) {
        (ReplyShape::Connect { read_only_byte, .. }, TxnResult::Error(_)) => {
            // The session ended before the reattach reached the log.
            let response = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: read_only_byte.then_some(false),
            };
            encode_connect_response(&mut buf, &response);
            close_after = true;
        }
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
        (_, TxnResult::Error(code)) => {
            encode_header_reply(&mut buf, xid, zxid, code);
            // ZooKeeper answers SessionMoved and closes the connection.
            close_after = code == ErrorCode::SessionMoved;
        }
        (ReplyShape::Reconfig, TxnResult::DataSet { stat }) => encode_reply_record(
            &mut buf,
            xid,
            zxid,
            &GetDataResponse {
                data: config_data,
                stat,
            },
        ),
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
    if position > 0 {
        // Still behind an unanswered reconfig: wait in its place.
        if close_after {
            conn.pending.insert(position, Pending::Close);
        }
        conn.pending.insert(position, Pending::Ready(buf.freeze()));
        return;
    }
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
        ReplyShape::Reconfig => "RECO",
    }
}
