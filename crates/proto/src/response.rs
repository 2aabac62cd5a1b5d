//! Replies: `ReplyHeader` + a body only when `err` is 0. The server encodes
//! them with [`encode_reply`] and friends; the client splits a reply frame
//! with [`decode_reply`] and reads the body with [`Response::read`].
//!
//! Also the two frames that are not replies to a request: watch
//! notifications ([`encode_watch_event`]) and the handshake's
//! `ConnectResponse` ([`encode_connect_response`]).

use bytes::{BufMut, BytesMut};

use crate::error::ErrorCode;
use crate::frame::write_frame;
use crate::jute::{DecodeError, JuteReader, JuteWrite};
use crate::opcode::{xid, OpCode};
use crate::records::*;
use crate::request::{CreateKind, MULTI_END};
use crate::types::{EventType, KeeperState, Stat};

/// Appends one reply frame: length prefix, `ReplyHeader {xid, zxid, err}`,
/// then whatever `body` writes, but only when `err` is `Ok` (ZooKeeper's
/// error replies are the header alone; `body` is not called).
pub fn encode_reply(
    buf: &mut BytesMut,
    xid: i32,
    zxid: i64,
    err: ErrorCode,
    body: impl FnOnce(&mut BytesMut),
) {
    write_frame(buf, |buf| {
        ReplyHeader {
            xid,
            zxid,
            err: err.code(),
        }
        .write(buf);
        if err == ErrorCode::Ok {
            body(buf);
        }
    });
}

/// A successful reply whose body is `record`.
pub fn encode_reply_record<R: Record>(buf: &mut BytesMut, xid: i32, zxid: i64, record: &R) {
    encode_reply(buf, xid, zxid, ErrorCode::Ok, |buf| record.write(buf));
}

/// A reply with no body: an error, or a success that has none (delete,
/// ping, setWatches, auth, closeSession, checkWatches, removeWatches).
pub fn encode_header_reply(buf: &mut BytesMut, xid: i32, zxid: i64, err: ErrorCode) {
    encode_reply(buf, xid, zxid, err, |_| {});
}

/// A watch notification: `ReplyHeader {xid -1, zxid -1, err 0}` +
/// `WatcherEvent {type, state, path}`.
pub fn encode_watch_event(
    buf: &mut BytesMut,
    event_type: EventType,
    state: KeeperState,
    path: &str,
) {
    write_frame(buf, |buf| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid: -1,
            err: 0,
        }
        .write(buf);
        buf.put_i32(event_type.code());
        buf.put_i32(state.code());
        buf.put_string(path);
    });
}

/// The handshake reply, framed and with no `ReplyHeader`. Its readOnly byte
/// goes out only when `response.read_only` is `Some`.
pub fn encode_connect_response(buf: &mut BytesMut, response: &ConnectResponse) {
    write_frame(buf, |buf| response.write(buf));
}

/// `ConnectRequest` framed, for the client side of the handshake.
pub fn encode_connect_request(buf: &mut BytesMut, request: &ConnectRequest) {
    write_frame(buf, |buf| request.write(buf));
}

/// Splits a reply frame (without its length prefix) into its header and a
/// reader positioned on the body. Read the body only when `header.err` is 0.
pub fn decode_reply(
    frame: &[u8],
    field_len_max: usize,
) -> Result<(ReplyHeader, JuteReader<'_>), DecodeError> {
    let mut r = JuteReader::new(frame, field_len_max);
    let header = ReplyHeader::read(&mut r)?;
    Ok((header, r))
}

/// One result of a multi or multiRead reply.
///
/// For a failed multi, ZooKeeper sends **every** result as `Error`: `Ok`
/// for the ops before the failing one, its code for the failing op and
/// `RuntimeInconsistency` after it, with the `ReplyHeader` err 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResponseItem {
    /// create (type 1): `{path}`.
    Create { path: String },
    /// create2, createTTL, createContainer (all type 15): `{path, stat}`.
    Create2 { path: String, stat: Stat },
    /// type 2, no body.
    Delete,
    /// type 5: `{stat}`.
    SetData { stat: Stat },
    /// type 13, no body.
    Check,
    /// multiRead getData (type 4): `{data, stat}`; `None` is null data.
    GetData { data: Option<Vec<u8>>, stat: Stat },
    /// multiRead getChildren (type 8): `{children}`.
    GetChildren { children: Vec<String> },
    /// type -1: `ErrorResponse {err}`, with the `MultiHeader` err set too.
    Error(ErrorCode),
}

impl MultiResponseItem {
    /// The result of a successful create, in the shape its opcode answers.
    pub fn created(kind: CreateKind, path: String, stat: Stat) -> MultiResponseItem {
        if kind.replies_with_stat() {
            MultiResponseItem::Create2 { path, stat }
        } else {
            MultiResponseItem::Create { path }
        }
    }

    /// The `MultiHeader` type in front of this result.
    pub fn opcode(&self) -> i32 {
        match self {
            MultiResponseItem::Create { .. } => OpCode::Create.code(),
            MultiResponseItem::Create2 { .. } => OpCode::Create2.code(),
            MultiResponseItem::Delete => OpCode::Delete.code(),
            MultiResponseItem::SetData { .. } => OpCode::SetData.code(),
            MultiResponseItem::Check => OpCode::Check.code(),
            MultiResponseItem::GetData { .. } => OpCode::GetData.code(),
            MultiResponseItem::GetChildren { .. } => OpCode::GetChildren.code(),
            MultiResponseItem::Error(_) => OpCode::Error.code(),
        }
    }

    /// Writes the `MultiHeader` and the body.
    pub fn write(&self, buf: &mut BytesMut) {
        let err = match self {
            MultiResponseItem::Error(code) => code.code(),
            _ => 0,
        };
        MultiHeader {
            opcode: self.opcode(),
            done: false,
            err,
        }
        .write(buf);
        match self {
            MultiResponseItem::Create { path } => buf.put_string(path),
            MultiResponseItem::Create2 { path, stat } => {
                buf.put_string(path);
                stat.write(buf);
            }
            MultiResponseItem::Delete | MultiResponseItem::Check => {}
            MultiResponseItem::SetData { stat } => stat.write(buf),
            MultiResponseItem::GetData { data, stat } => {
                buf.put_opt_buffer(data.as_deref());
                stat.write(buf);
            }
            MultiResponseItem::GetChildren { children } => buf.put_string_vec(children),
            MultiResponseItem::Error(code) => buf.put_i32(code.code()),
        }
    }

    /// Reads the body that follows a `MultiHeader` of type `opcode`.
    fn read_body(opcode: i32, r: &mut JuteReader<'_>) -> Result<MultiResponseItem, DecodeError> {
        Ok(match OpCode::from_code(opcode) {
            Some(OpCode::Create) => MultiResponseItem::Create {
                path: r.read_string()?,
            },
            Some(OpCode::Create2) => MultiResponseItem::Create2 {
                path: r.read_string()?,
                stat: Stat::read(r)?,
            },
            Some(OpCode::Delete) => MultiResponseItem::Delete,
            Some(OpCode::SetData) => MultiResponseItem::SetData {
                stat: Stat::read(r)?,
            },
            Some(OpCode::Check) => MultiResponseItem::Check,
            Some(OpCode::GetData) => MultiResponseItem::GetData {
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                stat: Stat::read(r)?,
            },
            Some(OpCode::GetChildren) => MultiResponseItem::GetChildren {
                children: r.read_string_vec()?,
            },
            Some(OpCode::Error) => {
                let err = r.read_i32()?;
                MultiResponseItem::Error(
                    ErrorCode::from_code(err).ok_or(DecodeError::UnknownErrorCode(err))?,
                )
            }
            _ => return Err(DecodeError::BadOpType(opcode)),
        })
    }
}

/// Writes a multi or multiRead reply body: each result, then the end marker
/// `{-1, true, -1}`.
pub fn write_multi_response(buf: &mut BytesMut, items: &[MultiResponseItem]) {
    for item in items {
        item.write(buf);
    }
    MULTI_END.write(buf);
}

/// Appends a complete multi or multiRead reply frame. The `ReplyHeader` err
/// is 0 even when the multi failed (the failure is in the items).
pub fn encode_multi_reply(buf: &mut BytesMut, xid: i32, zxid: i64, items: &[MultiResponseItem]) {
    encode_reply(buf, xid, zxid, ErrorCode::Ok, |buf| {
        write_multi_response(buf, items)
    });
}

/// Reads a multi or multiRead reply body up to its end marker.
pub fn read_multi_response(r: &mut JuteReader<'_>) -> Result<Vec<MultiResponseItem>, DecodeError> {
    let mut items = Vec::new();
    loop {
        let header = MultiHeader::read(r)?;
        if header.done {
            return Ok(items);
        }
        items.push(MultiResponseItem::read_body(header.opcode, r)?);
    }
}

/// A successful reply body, by the opcode of the request it answers. The
/// client's view; the server writes the records directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// delete, ping, check, setWatches, setWatches2, checkWatches,
    /// removeWatches, auth, closeSession: no body.
    Empty,
    Create(CreateResponse),
    /// create2, createTTL, createContainer.
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// multi and multiRead.
    Multi(Vec<MultiResponseItem>),
    /// The new configuration, as getData would return it.
    Reconfig(GetDataResponse),
    Sasl(SetSaslResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// addWatch answers `ErrorResponse {err: 0}`.
    AddWatch(ErrorResponse),
    WhoAmI(WhoAmIResponse),
}

impl Response {
    /// Reads the body of a reply with err 0 to a request of type `opcode`.
    pub fn read(opcode: OpCode, r: &mut JuteReader<'_>) -> Result<Response, DecodeError> {
        Ok(match opcode {
            OpCode::Create => Response::Create(CreateResponse::read(r)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(Create2Response::read(r)?)
            }
            OpCode::Exists => Response::Exists(ExistsResponse::read(r)?),
            OpCode::GetData => Response::GetData(GetDataResponse::read(r)?),
            OpCode::SetData => Response::SetData(SetDataResponse::read(r)?),
            OpCode::GetAcl => Response::GetAcl(GetAclResponse::read(r)?),
            OpCode::SetAcl => Response::SetAcl(SetAclResponse::read(r)?),
            OpCode::GetChildren => Response::GetChildren(GetChildrenResponse::read(r)?),
            OpCode::GetChildren2 => Response::GetChildren2(GetChildren2Response::read(r)?),
            OpCode::Sync => Response::Sync(SyncResponse::read(r)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(read_multi_response(r)?),
            OpCode::Reconfig => Response::Reconfig(GetDataResponse::read(r)?),
            OpCode::Sasl => Response::Sasl(SetSaslResponse::read(r)?),
            OpCode::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::read(r)?),
            OpCode::GetAllChildrenNumber => {
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::read(r)?)
            }
            OpCode::AddWatch => Response::AddWatch(ErrorResponse::read(r)?),
            OpCode::WhoAmI => Response::WhoAmI(WhoAmIResponse::read(r)?),
            // A lone check may carry an (unfilled) Stat; nothing in it is
            // meaningful, so it is skipped.
            OpCode::Delete
            | OpCode::Ping
            | OpCode::Check
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::Auth
            | OpCode::CloseSession => Response::Empty,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::BadOpType(opcode.code())),
        })
    }

    /// Writes the body (nothing for `Empty`).
    pub fn write(&self, buf: &mut BytesMut) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.write(buf),
            Response::Create2(r) => r.write(buf),
            Response::Exists(r) => r.write(buf),
            Response::GetData(r) | Response::Reconfig(r) => r.write(buf),
            Response::SetData(r) => r.write(buf),
            Response::GetAcl(r) => r.write(buf),
            Response::SetAcl(r) => r.write(buf),
            Response::GetChildren(r) => r.write(buf),
            Response::GetChildren2(r) => r.write(buf),
            Response::Sync(r) => r.write(buf),
            Response::Multi(items) => write_multi_response(buf, items),
            Response::Sasl(r) => r.write(buf),
            Response::GetEphemerals(r) => r.write(buf),
            Response::GetAllChildrenNumber(r) => r.write(buf),
            Response::AddWatch(r) => r.write(buf),
            Response::WhoAmI(r) => r.write(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_frame;

    const MAX: usize = 1 << 20;

    fn one_frame(mut buf: BytesMut) -> BytesMut {
        let frame = decode_frame(&mut buf, MAX).unwrap().unwrap();
        assert!(buf.is_empty(), "exactly one frame expected");
        frame
    }

    #[test]
    fn an_error_reply_is_the_header_alone() {
        let mut buf = BytesMut::new();
        encode_reply(&mut buf, 5, 0x20, ErrorCode::NoNode, |_| {
            panic!("no body on error")
        });
        let frame = one_frame(buf);
        assert_eq!(frame.len(), 16);
        let (header, r) = decode_reply(&frame, MAX).unwrap();
        assert_eq!(
            header,
            ReplyHeader {
                xid: 5,
                zxid: 0x20,
                err: -101
            }
        );
        assert!(r.is_empty());
    }

    #[test]
    fn a_successful_reply_carries_its_body() {
        let mut buf = BytesMut::new();
        encode_reply_record(&mut buf, 5, 7, &SyncResponse { path: "/s".into() });
        let frame = one_frame(buf);
        let (header, mut r) = decode_reply(&frame, MAX).unwrap();
        assert_eq!(header.err, 0);
        assert_eq!(
            Response::read(OpCode::Sync, &mut r),
            Ok(Response::Sync(SyncResponse { path: "/s".into() }))
        );
    }

    #[test]
    fn a_watch_event_has_xid_and_zxid_minus_one() {
        let mut buf = BytesMut::new();
        encode_watch_event(
            &mut buf,
            EventType::NodeDeleted,
            KeeperState::SyncConnected,
            "/v/k",
        );
        let frame = one_frame(buf);
        let (header, mut r) = decode_reply(&frame, MAX).unwrap();
        assert_eq!(
            header,
            ReplyHeader {
                xid: -1,
                zxid: -1,
                err: 0
            }
        );
        assert_eq!(
            WatcherEvent::read(&mut r),
            Ok(WatcherEvent {
                event_type: 2,
                state: 3,
                path: "/v/k".into()
            })
        );
        assert!(r.is_empty());
    }

    #[test]
    fn a_failed_multi_sends_every_result_as_an_error_with_header_err_zero() {
        let items = [
            MultiResponseItem::Error(ErrorCode::Ok),
            MultiResponseItem::Error(ErrorCode::NoNode),
            MultiResponseItem::Error(ErrorCode::RuntimeInconsistency),
        ];
        let mut buf = BytesMut::new();
        encode_multi_reply(&mut buf, 3, 9, &items);
        let frame = one_frame(buf);

        let mut expected = Vec::new();
        for code in [0i32, -101, -2] {
            expected.extend_from_slice(&(-1i32).to_be_bytes());
            expected.push(0);
            expected.extend_from_slice(&code.to_be_bytes());
            expected.extend_from_slice(&code.to_be_bytes());
        }
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(&frame[16..], &expected[..]);

        let (header, mut r) = decode_reply(&frame, MAX).unwrap();
        assert_eq!(
            header,
            ReplyHeader {
                xid: 3,
                zxid: 9,
                err: 0
            }
        );
        assert_eq!(read_multi_response(&mut r), Ok(items.to_vec()));
    }

    #[test]
    fn multi_success_results_use_their_opcodes() {
        let stat = Stat {
            czxid: 4,
            ..Stat::default()
        };
        let items = vec![
            MultiResponseItem::created(CreateKind::Create, "/a".into(), stat),
            MultiResponseItem::created(CreateKind::CreateTtl, "/b".into(), stat),
            MultiResponseItem::Delete,
            MultiResponseItem::SetData { stat },
            MultiResponseItem::Check,
        ];
        assert_eq!(
            items
                .iter()
                .map(MultiResponseItem::opcode)
                .collect::<Vec<_>>(),
            [1, 15, 2, 5, 13]
        );
        let mut body = BytesMut::new();
        write_multi_response(&mut body, &items);
        // create: header 9 + path 6; create2: 9 + 6 + 68; delete 9; setData 9 + 68; check 9; end 9.
        assert_eq!(body.len(), 15 + 83 + 9 + 77 + 9 + 9);
        assert_eq!(
            read_multi_response(&mut JuteReader::new(&body, MAX)),
            Ok(items)
        );
    }

    #[test]
    fn an_unknown_error_code_in_a_multi_reply_is_a_decode_error() {
        let mut body = BytesMut::new();
        MultiHeader {
            opcode: -1,
            done: false,
            err: -999,
        }
        .write(&mut body);
        body.put_i32(-999);
        MULTI_END.write(&mut body);
        assert_eq!(
            read_multi_response(&mut JuteReader::new(&body, MAX)),
            Err(DecodeError::UnknownErrorCode(-999))
        );
    }

    #[test]
    fn connect_response_framing_omits_read_only_for_old_clients() {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x100,
            passwd: vec![1; 16],
            read_only: None,
        };
        let mut buf = BytesMut::new();
        encode_connect_response(&mut buf, &response);
        assert_eq!(buf.len(), 4 + 36);
        let frame = one_frame(buf);
        assert_eq!(
            decode_record::<ConnectResponse>(&frame, MAX),
            Ok(response.clone())
        );

        let mut buf = BytesMut::new();
        encode_connect_response(
            &mut buf,
            &ConnectResponse {
                read_only: Some(false),
                ..response
            },
        );
        assert_eq!(buf.len(), 4 + 37);
    }
}
