//! Serving reads from the local tree: getData, exists, getChildren, ACLs,
//! multiRead, watch management and the other requests that do not go
//! through the log. Runs under the core lock, so a read and its watch
//! registration see one consistent state.

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use corral_proto::jute::JuteWrite;
use corral_proto::records::{
    ClientInfo, ExistsResponse, GetAclResponse, GetAllChildrenNumberResponse, GetChildren2Response,
    GetChildrenResponse, GetEphemeralsResponse, WhoAmIResponse,
};
use corral_proto::request::{ReadOp, Request};
use corral_proto::response::{
    encode_header_reply, encode_multi_reply, encode_reply, encode_reply_record, encode_watch_event,
    MultiResponseItem,
};
use corral_proto::{ErrorCode, EventType, KeeperState, Record};

use crate::core::{op_name, Core};
use crate::watch::{ConnId, WatchMode, WatchTable};

/// Serves one read for `conn_id` and queues its reply.
pub fn serve_read(core: &mut Core, conn_id: ConnId, xid: i32, request: Request, received: Instant) {
    let zxid = core.tree.last_zxid();
    let Core {
        tree,
        watches,
        conns,
        ..
    } = core;
    let Some(conn) = conns.get_mut(&conn_id) else {
        return;
    };
    let auth = &conn.auth;
    // A header, a Stat and a small node's data without growing the buffer.
    let mut buf = BytesMut::with_capacity(256);
    let op = op_name(&request);
    match request {
        Request::Ping => encode_header_reply(&mut buf, xid, zxid, ErrorCode::Ok),
        Request::Exists(r) => {
            if r.path.contains('\0') {
                encode_header_reply(&mut buf, xid, zxid, ErrorCode::BadArguments);
            } else {
                let stat = tree.stat(&r.path);
                if r.watch {
                    watches.add(WatchTable::Data, &r.path, conn_id, WatchMode::Standard);
                }
                match stat {
                    Some(stat) => {
                        encode_reply_record(&mut buf, xid, zxid, &ExistsResponse { stat })
                    }
                    None => encode_header_reply(&mut buf, xid, zxid, ErrorCode::NoNode),
                }
            }
        }
        Request::GetData(r) => match tree.get_data(&r.path, auth) {
            Ok((data, stat)) => {
                if r.watch {
                    watches.add(WatchTable::Data, &r.path, conn_id, WatchMode::Standard);
                }
                encode_reply(&mut buf, xid, zxid, ErrorCode::Ok, |b| {
                    // Null data goes back as null (length -1), as in ZooKeeper.
                    b.put_opt_buffer(data);
                    stat.write(b);
                });
            }
            Err(code) => encode_header_reply(&mut buf, xid, zxid, code),
        },
        Request::GetChildren(r) => match tree.get_children(&r.path, auth) {
            Ok((children, _stat)) => {
                if r.watch {
                    watches.add(WatchTable::Child, &r.path, conn_id, WatchMode::Standard);
                }
                let children = children.into_iter().map(|c| c.to_string()).collect();
                encode_reply_record(&mut buf, xid, zxid, &GetChildrenResponse { children });
            }
            Err(code) => encode_header_reply(&mut buf, xid, zxid, code),
        },
        Request::GetChildren2(r) => match tree.get_children(&r.path, auth) {
            Ok((children, stat)) => {
                if r.watch {
                    watches.add(WatchTable::Child, &r.path, conn_id, WatchMode::Standard);
                }
                let children = children.into_iter().map(|c| c.to_string()).collect();
                encode_reply_record(
                    &mut buf,
                    xid,
                    zxid,
                    &GetChildren2Response { children, stat },
                );
            }
            Err(code) => encode_header_reply(&mut buf, xid, zxid, code),
        },
        Request::GetAcl(r) => match tree.get_acl(&r.path, auth) {
            Ok((acl, stat)) => {
                encode_reply_record(&mut buf, xid, zxid, &GetAclResponse { acl, stat })
            }
            Err(code) => encode_header_reply(&mut buf, xid, zxid, code),
        },
        Request::GetAllChildrenNumber(r) => match tree.get_all_children_number(&r.path, auth) {
            Ok(n) => encode_reply_record(
                &mut buf,
                xid,
                zxid,
                &GetAllChildrenNumberResponse { total_number: n },
            ),
            Err(code) => encode_header_reply(&mut buf, xid, zxid, code),
        },
        Request::GetEphemerals(r) => {
            let ephemerals = tree.get_ephemerals(conn.session_id, &r.prefix_path);
            encode_reply_record(&mut buf, xid, zxid, &GetEphemeralsResponse { ephemerals });
        }
        Request::Sync(r) => encode_reply(&mut buf, xid, zxid, ErrorCode::Ok, |b| {
            // Java's jute writes strings one UTF-16 unit at a time, so a
            // character outside the BMP goes out as two 3-byte surrogates
            // (CESU-8); the path is echoed exactly as ZooKeeper echoes it.
            b.put_buffer(&java_string_bytes(&r.path))
        }),
        Request::MultiRead(ops) => {
            let items: Vec<MultiResponseItem> = ops
                .iter()
                .map(|op| match op {
                    ReadOp::GetData(r) => match tree.get_data(&r.path, auth) {
                        Ok((data, stat)) => MultiResponseItem::GetData {
                            data: data.map(<[u8]>::to_vec),
                            stat,
                        },
                        Err(code) => MultiResponseItem::Error(code),
                    },
                    ReadOp::GetChildren(r) => match tree.get_children(&r.path, auth) {
                        Ok((children, _)) => MultiResponseItem::GetChildren {
                            children: children.into_iter().map(|c| c.to_string()).collect(),
                        },
                        Err(code) => MultiResponseItem::Error(code),
                    },
                })
                .collect();
            encode_multi_reply(&mut buf, xid, zxid, &items);
        }
        Request::AddWatch(r) => match r.mode {
            0 | 1 => {
                watches.add_persistent(&r.path, conn_id, r.mode == 1);
                encode_reply(&mut buf, xid, zxid, ErrorCode::Ok, |b| b.put_i32(0));
            }
            _ => encode_header_reply(&mut buf, xid, zxid, ErrorCode::BadArguments),
        },
        Request::CheckWatches(r) => {
            let found = watches.remove(&r.path, conn_id, r.watch_type, false);
            let code = if found {
                ErrorCode::Ok
            } else {
                ErrorCode::NoWatcher
            };
            encode_header_reply(&mut buf, xid, zxid, code);
        }
        Request::RemoveWatches(r) => {
            let found = watches.remove(&r.path, conn_id, r.watch_type, true);
            let code = if found {
                ErrorCode::Ok
            } else {
                ErrorCode::NoWatcher
            };
            encode_header_reply(&mut buf, xid, zxid, code);
        }
        Request::SetWatches(r) => {
            let catch_up = |path: &str| tree.stat(path);
            set_watches(
                &mut buf,
                watches,
                conn_id,
                r.relative_zxid,
                [&r.data_watches, &r.exist_watches, &r.child_watches],
                [&[][..], &[][..]],
                catch_up,
            );
            encode_header_reply(&mut buf, xid, zxid, ErrorCode::Ok);
        }
        Request::SetWatches2(r) => {
            let catch_up = |path: &str| tree.stat(path);
            set_watches(
                &mut buf,
                watches,
                conn_id,
                r.relative_zxid,
                [&r.data_watches, &r.exist_watches, &r.child_watches],
                [&r.persistent_watches, &r.persistent_recursive_watches],
                catch_up,
            );
            encode_header_reply(&mut buf, xid, zxid, ErrorCode::Ok);
        }
        Request::WhoAmI => {
            let client_info = conn
                .auth
                .iter()
                .map(|id| ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    user: match id.scheme.as_str() {
                        "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
                        "super" => String::new(),
                        _ => id.id.clone(),
                    },
                })
                .collect();
            encode_reply_record(&mut buf, xid, zxid, &WhoAmIResponse { client_info });
        }
        // Writes, auth and the rest never reach the read path.
        other => {
            tracing::error!(op = ?other.opcode(), "request routed to the read path by mistake");
            encode_header_reply(&mut buf, xid, zxid, ErrorCode::SystemError);
        }
    }
    conn.record_reply(op, xid, zxid, received);
    conn.send(buf.freeze());
}

/// setWatches / setWatches2: re-registers a reconnecting client's watches,
/// first sending the events it missed since `relative_zxid` (ZooKeeper's
/// DataTree.setWatches). Events go out before the reply.
fn set_watches(
    buf: &mut BytesMut,
    watches: &mut crate::watch::WatchRegistry,
    conn_id: ConnId,
    relative_zxid: i64,
    [data, exist, child]: [&Vec<String>; 3],
    [persistent, recursive]: [&[String]; 2],
    stat_of: impl Fn(&str) -> Option<corral_proto::Stat>,
) {
    let event = |buf: &mut BytesMut, kind: EventType, path: &str| {
        encode_watch_event(buf, kind, KeeperState::SyncConnected, path);
    };
    for path in data {
        match stat_of(path) {
            None => event(buf, EventType::NodeDeleted, path),
            Some(stat) if stat.mzxid > relative_zxid => {
                event(buf, EventType::NodeDataChanged, path)
            }
            Some(_) => watches.add(WatchTable::Data, path, conn_id, WatchMode::Standard),
        }
    }
    for path in exist {
        match stat_of(path) {
            Some(_) => event(buf, EventType::NodeCreated, path),
            None => watches.add(WatchTable::Data, path, conn_id, WatchMode::Standard),
        }
    }
    for path in child {
        match stat_of(path) {
            None => event(buf, EventType::NodeDeleted, path),
            Some(stat) if stat.pzxid > relative_zxid => {
                event(buf, EventType::NodeChildrenChanged, path)
            }
            Some(_) => watches.add(WatchTable::Child, path, conn_id, WatchMode::Standard),
        }
    }
    for path in persistent {
        watches.add_persistent(path, conn_id, false);
    }
    for path in recursive {
        watches.add_persistent(path, conn_id, true);
    }
    let _ = buf.remaining_mut();
}

/// A string encoded as Java's jute `BinaryOutputArchive` does: UTF-8 per
/// UTF-16 code unit (CESU-8 for characters outside the BMP).
fn java_string_bytes(s: &str) -> Vec<u8> {
    if s.is_ascii() || s.chars().all(|c| (c as u32) < 0x10000) {
        return s.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    for unit in s.encode_utf16() {
        let u = u32::from(unit);
        if u < 0x80 {
            out.push(u as u8);
        } else if u < 0x800 {
            out.push(0xC0 | (u >> 6) as u8);
            out.push(0x80 | (u & 0x3F) as u8);
        } else {
            out.push(0xE0 | (u >> 12) as u8);
            out.push(0x80 | ((u >> 6) & 0x3F) as u8);
            out.push(0x80 | (u & 0x3F) as u8);
        }
    }
    out
}
