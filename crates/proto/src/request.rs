//! Requests after the handshake: one frame = `RequestHeader` + the body its
//! opcode names. The server decodes them with [`decode_request`]; the client
//! encodes them with [`Request::encode`].
//!
//! Sits right after `frame::decode_frame` on the server's request path: the
//! frame codec hands over one frame's bytes, this module turns them into a
//! [`Request`] or says which reply the failure deserves.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use crate::error::ErrorCode;
use crate::frame::write_frame;
use crate::jute::{DecodeError, JuteReader};
use crate::opcode::{xid, OpCode};
use crate::records::*;
use crate::types::{Acl, CreateMode};

/// Which of the four create opcodes a create came in as. The reply format
/// depends on it: `Create` answers `CreateResponse {path}`, the others
/// `Create2Response {path, stat}` (in multi too, as type 1 or 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateKind {
    /// create (1), body `CreateRequest`.
    Create,
    /// create2 (15), body `CreateRequest`.
    Create2,
    /// createContainer (19), body `CreateRequest`.
    CreateContainer,
    /// createTTL (21), body `CreateTTLRequest`.
    CreateTtl,
}

impl CreateKind {
    pub fn opcode(self) -> OpCode {
        match self {
            CreateKind::Create => OpCode::Create,
            CreateKind::Create2 => OpCode::Create2,
            CreateKind::CreateContainer => OpCode::CreateContainer,
            CreateKind::CreateTtl => OpCode::CreateTtl,
        }
    }

    pub fn from_opcode(opcode: OpCode) -> Option<CreateKind> {
        match opcode {
            OpCode::Create => Some(CreateKind::Create),
            OpCode::Create2 => Some(CreateKind::Create2),
            OpCode::CreateContainer => Some(CreateKind::CreateContainer),
            OpCode::CreateTtl => Some(CreateKind::CreateTtl),
            _ => None,
        }
    }

    /// True when the reply is `Create2Response` (path and Stat).
    pub fn replies_with_stat(self) -> bool {
        self != CreateKind::Create
    }
}

/// Any of the create requests, with the opcode it came as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOp {
    pub kind: CreateKind,
    pub path: String,
    /// `None` when the client sent null data (length -1); the node then
    /// reads back as null, as in ZooKeeper.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    /// The raw `flags`; see [`CreateOp::mode`]. Invalid flags are the
    /// server's BadArguments, not a decoding error.
    pub flags: i32,
    /// The request's ttl for `CreateKind::CreateTtl`; -1 for the other kinds,
    /// whose body has no ttl (and is not written on encode).
    pub ttl_ms: i64,
}

impl CreateOp {
    /// The create mode, `None` when the flags are not a known mode.
    pub fn mode(&self) -> Option<CreateMode> {
        CreateMode::from_flags(self.flags)
    }

    fn read(kind: CreateKind, r: &mut JuteReader<'_>) -> Result<CreateOp, DecodeError> {
        if kind == CreateKind::CreateTtl {
            let CreateTtlRequest {
                path,
                data,
                acl,
                flags,
                ttl,
            } = CreateTtlRequest::read(r)?;
            Ok(CreateOp {
                kind,
                path,
                data,
                acl,
                flags,
                ttl_ms: ttl,
            })
        } else {
            let CreateRequest {
                path,
                data,
                acl,
                flags,
            } = CreateRequest::read(r)?;
            Ok(CreateOp {
                kind,
                path,
                data,
                acl,
                flags,
                ttl_ms: -1,
            })
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        use crate::jute::JuteWrite;
        buf.put_string(&self.path);
        buf.put_opt_buffer(self.data.as_deref());
        buf.put_vec(&self.acl, |buf, acl| acl.write(buf));
        buf.put_i32(self.flags);
        if self.kind == CreateKind::CreateTtl {
            buf.put_i64(self.ttl_ms);
        }
    }
}

/// One op of a multi (14): the write ops only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateOp),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
}

impl MultiOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(op) => op.kind.opcode(),
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(op) => &op.path,
            MultiOp::Delete(op) => &op.path,
            MultiOp::SetData(op) => &op.path,
            MultiOp::Check(op) => &op.path,
        }
    }

    fn read(opcode: i32, r: &mut JuteReader<'_>) -> Result<MultiOp, DecodeError> {
        let op = OpCode::from_code(opcode).ok_or(DecodeError::BadOpType(opcode))?;
        if let Some(kind) = CreateKind::from_opcode(op) {
            let create = CreateOp::read(kind, r)?;
            return Ok(MultiOp::Create(create));
        }
        match op {
            OpCode::Delete => DeleteRequest::read(r).map(MultiOp::Delete),
            OpCode::SetData => SetDataRequest::read(r).map(MultiOp::SetData),
            OpCode::Check => CheckVersionRequest::read(r).map(MultiOp::Check),
            _ => Err(DecodeError::BadOpType(opcode)),
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        match self {
            MultiOp::Create(op) => op.write(buf),
            MultiOp::Delete(op) => op.write(buf),
            MultiOp::SetData(op) => op.write(buf),
            MultiOp::Check(op) => op.write(buf),
        }
    }
}

/// One op of a multiRead (22). ZooKeeper ignores the `watch` flags here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(GetDataRequest),
    GetChildren(GetChildrenRequest),
}

impl ReadOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            ReadOp::GetData(_) => OpCode::GetData,
            ReadOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            ReadOp::GetData(op) => &op.path,
            ReadOp::GetChildren(op) => &op.path,
        }
    }

    fn read(opcode: i32, r: &mut JuteReader<'_>) -> Result<ReadOp, DecodeError> {
        match OpCode::from_code(opcode) {
            Some(OpCode::GetData) => GetDataRequest::read(r).map(ReadOp::GetData),
            Some(OpCode::GetChildren) => GetChildrenRequest::read(r).map(ReadOp::GetChildren),
            _ => Err(DecodeError::BadOpType(opcode)),
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        match self {
            ReadOp::GetData(op) => op.write(buf),
            ReadOp::GetChildren(op) => op.write(buf),
        }
    }
}

/// Reads a multi body: `MultiHeader` + op until a header with `done` set.
/// Like ZooKeeper, only `done` ends the list; the end header's other fields
/// are not checked.
fn read_multi<T>(
    r: &mut JuteReader<'_>,
    mut read_op: impl FnMut(i32, &mut JuteReader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let header = MultiHeader::read(r)?;
        if header.done {
            return Ok(ops);
        }
        ops.push(read_op(header.opcode, r)?);
    }
}

/// Writes a multi body the way the Java client does: `{type, false, -1}`
/// before each op, `{-1, true, -1}` at the end.
fn write_multi<T>(
    buf: &mut BytesMut,
    ops: &[T],
    opcode: impl Fn(&T) -> OpCode,
    write: impl Fn(&T, &mut BytesMut),
) {
    for op in ops {
        MultiHeader {
            opcode: opcode(op).code(),
            done: false,
            err: -1,
        }
        .write(buf);
        write(op, buf);
    }
    MULTI_END.write(buf);
}

/// The header that ends a multi request or reply.
pub(crate) const MULTI_END: MultiHeader = MultiHeader {
    opcode: -1,
    done: true,
    err: -1,
};

/// A decoded request body, one variant per supported opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15), createContainer (19) and createTTL (21).
    Create(CreateOp),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    Sync(SyncRequest),
    /// Empty body; sent with xid -2.
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    /// Sent with xid -4.
    Auth(AuthPacket),
    /// Sent with xid -8.
    SetWatches(SetWatches),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    /// Sent with xid -8.
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    /// Empty body.
    WhoAmI,
    /// Empty body.
    CloseSession,
}

impl Request {
    pub fn opcode(&self) -> OpCode {
        match self {
            Request::Create(op) => op.kind.opcode(),
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// The fixed xid clients use for this request, if it has one (ping -2,
    /// auth -4, setWatches -8).
    pub fn special_xid(&self) -> Option<i32> {
        match self {
            Request::Ping => Some(xid::PING),
            Request::Auth(_) => Some(xid::AUTH),
            Request::SetWatches(_) | Request::SetWatches2(_) => Some(xid::SET_WATCHES),
            _ => None,
        }
    }

    /// True for the requests that go through the log (they use a zxid, even
    /// when they fail).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// Reads the body for `opcode`. `Ok(None)` means the opcode is not one a
    /// client may send (unknown, or internal like createSession).
    pub fn read_body(opcode: i32, r: &mut JuteReader<'_>) -> Result<Option<Request>, DecodeError> {
        let Some(op) = OpCode::from_code(opcode) else {
            return Ok(None);
        };
        if let Some(kind) = CreateKind::from_opcode(op) {
            return CreateOp::read(kind, r).map(|op| Some(Request::Create(op)));
        }
        let request = match op {
            OpCode::Delete => Request::Delete(DeleteRequest::read(r)?),
            OpCode::Exists => Request::Exists(ExistsRequest::read(r)?),
            OpCode::GetData => Request::GetData(GetDataRequest::read(r)?),
            OpCode::SetData => Request::SetData(SetDataRequest::read(r)?),
            OpCode::GetAcl => Request::GetAcl(GetAclRequest::read(r)?),
            OpCode::SetAcl => Request::SetAcl(SetAclRequest::read(r)?),
            OpCode::GetChildren => Request::GetChildren(GetChildrenRequest::read(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(GetChildren2Request::read(r)?),
            OpCode::Sync => Request::Sync(SyncRequest::read(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::Check => Request::Check(CheckVersionRequest::read(r)?),
            OpCode::Multi => Request::Multi(read_multi(r, MultiOp::read)?),
            OpCode::MultiRead => Request::MultiRead(read_multi(r, ReadOp::read)?),
            OpCode::Reconfig => Request::Reconfig(ReconfigRequest::read(r)?),
            OpCode::CheckWatches => Request::CheckWatches(CheckWatchesRequest::read(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::read(r)?),
            OpCode::Auth => Request::Auth(AuthPacket::read(r)?),
            OpCode::SetWatches => Request::SetWatches(SetWatches::read(r)?),
            OpCode::Sasl => Request::Sasl(GetSaslRequest::read(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::read(r)?),
            OpCode::GetAllChildrenNumber => {
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::read(r)?)
            }
            OpCode::SetWatches2 => Request::SetWatches2(SetWatches2::read(r)?),
            OpCode::AddWatch => Request::AddWatch(AddWatchRequest::read(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Create
            | OpCode::Create2
            | OpCode::CreateContainer
            | OpCode::CreateTtl
            | OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Ok(None),
        };
        Ok(Some(request))
    }

    /// Writes the body alone (no length prefix, no header).
    pub fn write_body(&self, buf: &mut BytesMut) {
        match self {
            Request::Create(op) => op.write(buf),
            Request::Delete(r) => r.write(buf),
            Request::Exists(r) => r.write(buf),
            Request::GetData(r) => r.write(buf),
            Request::SetData(r) => r.write(buf),
            Request::GetAcl(r) => r.write(buf),
            Request::SetAcl(r) => r.write(buf),
            Request::GetChildren(r) => r.write(buf),
            Request::GetChildren2(r) => r.write(buf),
            Request::Sync(r) => r.write(buf),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Check(r) => r.write(buf),
            Request::Multi(ops) => write_multi(buf, ops, MultiOp::opcode, MultiOp::write),
            Request::MultiRead(ops) => write_multi(buf, ops, ReadOp::opcode, ReadOp::write),
            Request::Reconfig(r) => r.write(buf),
            Request::CheckWatches(r) => r.write(buf),
            Request::RemoveWatches(r) => r.write(buf),
            Request::Auth(r) => r.write(buf),
            Request::SetWatches(r) => r.write(buf),
            Request::Sasl(r) => r.write(buf),
            Request::GetEphemerals(r) => r.write(buf),
            Request::GetAllChildrenNumber(r) => r.write(buf),
            Request::SetWatches2(r) => r.write(buf),
            Request::AddWatch(r) => r.write(buf),
        }
    }

    /// Appends one complete frame to `buf`: length prefix, `RequestHeader
    /// {xid, opcode}`, body. The caller picks the xid (see
    /// [`Request::special_xid`]).
    pub fn encode(&self, xid: i32, buf: &mut BytesMut) {
        write_frame(buf, |buf| {
            RequestHeader {
                xid,
                opcode: self.opcode().code(),
            }
            .write(buf);
            self.write_body(buf);
        });
    }
}

/// Why a request frame could not be turned into a [`Request`]; each variant
/// says what the server does about it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestDecodeError {
    /// The frame is shorter than a `RequestHeader`. No reply can be
    /// addressed: close the connection.
    #[error("request header unreadable: {0}")]
    Header(#[source] DecodeError),
    /// An opcode the server does not serve. ZooKeeper replies
    /// `{xid, zxid -1, Unimplemented}` and then closes the connection.
    #[error("unknown or unsupported opcode {opcode} (xid {xid})")]
    UnknownOpCode { xid: i32, opcode: i32 },
    /// The body does not decode as the opcode's record. ZooKeeper replies
    /// `MarshallingError`.
    #[error("malformed body for opcode {opcode} (xid {xid}): {source}")]
    MalformedBody {
        xid: i32,
        opcode: i32,
        #[source]
        source: DecodeError,
    },
}

impl RequestDecodeError {
    /// The xid and error code to reply with, or `None` when the connection
    /// should just be closed.
    pub fn reply(&self) -> Option<(i32, ErrorCode)> {
        match self {
            RequestDecodeError::Header(_) => None,
            RequestDecodeError::UnknownOpCode { xid, .. } => Some((*xid, ErrorCode::Unimplemented)),
            RequestDecodeError::MalformedBody { xid, .. } => {
                Some((*xid, ErrorCode::MarshallingError))
            }
        }
    }
}

/// Decodes one request frame (without its length prefix): the header, then
/// the body for its opcode. Strings and buffers longer than `field_len_max`
/// are malformed (see [`crate::jute::default_field_len_max`]).
///
/// Bytes after the body are ignored, as ZooKeeper ignores them.
pub fn decode_request(
    frame: &[u8],
    field_len_max: usize,
) -> Result<(RequestHeader, Request), RequestDecodeError> {
    let mut r = JuteReader::new(frame, field_len_max);
    let header = RequestHeader::read(&mut r).map_err(RequestDecodeError::Header)?;
    let RequestHeader { xid, opcode } = header;
    match Request::read_body(opcode, &mut r) {
        Ok(Some(request)) => Ok((header, request)),
        Ok(None) => Err(RequestDecodeError::UnknownOpCode { xid, opcode }),
        Err(source) => Err(RequestDecodeError::MalformedBody {
            xid,
            opcode,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::JuteWrite;

    const MAX: usize = 1 << 20;

    fn body_of(frame: &BytesMut) -> &[u8] {
        &frame[4..]
    }

    #[test]
    fn a_frame_shorter_than_the_header_closes_the_connection() {
        let err = decode_request(&[0, 0, 0, 1, 0, 0], MAX).unwrap_err();
        assert!(matches!(
            err,
            RequestDecodeError::Header(DecodeError::Truncated { .. })
        ));
        assert_eq!(err.reply(), None);
    }

    #[test]
    fn an_unknown_opcode_is_answered_unimplemented() {
        let mut b = Vec::new();
        b.put_i32(7);
        b.put_i32(999);
        let err = decode_request(&b, MAX).unwrap_err();
        assert_eq!(
            err,
            RequestDecodeError::UnknownOpCode {
                xid: 7,
                opcode: 999
            }
        );
        assert_eq!(err.reply(), Some((7, ErrorCode::Unimplemented)));
    }

    #[test]
    fn internal_opcodes_from_a_client_are_unimplemented() {
        for opcode in [0, -1, -10, 20] {
            let mut b = Vec::new();
            b.put_i32(1);
            b.put_i32(opcode);
            assert_eq!(
                decode_request(&b, MAX).unwrap_err(),
                RequestDecodeError::UnknownOpCode { xid: 1, opcode }
            );
        }
    }

    #[test]
    fn a_truncated_body_is_answered_marshalling_error() {
        let mut frame = BytesMut::new();
        Request::GetData(GetDataRequest {
            path: "/a".into(),
            watch: true,
        })
        .encode(3, &mut frame);
        let body = body_of(&frame);
        let err = decode_request(&body[..body.len() - 1], MAX).unwrap_err();
        assert!(matches!(
            err,
            RequestDecodeError::MalformedBody {
                xid: 3,
                opcode: 4,
                ..
            }
        ));
        assert_eq!(err.reply(), Some((3, ErrorCode::MarshallingError)));
    }

    #[test]
    fn a_path_over_the_field_limit_is_malformed() {
        let mut frame = BytesMut::new();
        Request::Sync(SyncRequest {
            path: "/abcdef".into(),
        })
        .encode(3, &mut frame);
        assert!(decode_request(body_of(&frame), 7).is_ok());
        assert!(matches!(
            decode_request(body_of(&frame), 6),
            Err(RequestDecodeError::MalformedBody {
                source: DecodeError::TooLong { len: 7, max: 6 },
                ..
            })
        ));
    }

    #[test]
    fn ping_with_no_body_decodes() {
        let mut frame = BytesMut::new();
        Request::Ping.encode(xid::PING, &mut frame);
        assert_eq!(
            &frame[..],
            &[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]
        );
        let (header, request) = decode_request(body_of(&frame), MAX).unwrap();
        assert_eq!(
            header,
            RequestHeader {
                xid: -2,
                opcode: 11
            }
        );
        assert_eq!(request, Request::Ping);
    }

    #[test]
    fn each_create_opcode_is_kept_and_only_create_ttl_carries_a_ttl() {
        for kind in [
            CreateKind::Create,
            CreateKind::Create2,
            CreateKind::CreateContainer,
            CreateKind::CreateTtl,
        ] {
            let ttl_ms = if kind == CreateKind::CreateTtl {
                5000
            } else {
                -1
            };
            let op = CreateOp {
                kind,
                path: "/n".into(),
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms,
            };
            let mut frame = BytesMut::new();
            Request::Create(op.clone()).encode(1, &mut frame);
            let expected_body_len = 4
                + 2
                + 4
                + 1
                + 4
                + (4 + 4 + 5 + 4 + 6)
                + 4
                + if kind == CreateKind::CreateTtl { 8 } else { 0 };
            assert_eq!(frame.len(), 4 + 8 + expected_body_len, "{kind:?}");
            let (_, request) = decode_request(body_of(&frame), MAX).unwrap();
            assert_eq!(request, Request::Create(op));
        }
    }

    /// Writes one op's body into a hand-built multi frame.
    type WriteBody<'a> = &'a dyn Fn(&mut BytesMut);

    fn multi_frame(ops: &[(i32, WriteBody)], end: MultiHeader) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(9);
        b.put_i32(OpCode::Multi.code());
        for (opcode, write) in ops {
            MultiHeader {
                opcode: *opcode,
                done: false,
                err: -1,
            }
            .write(&mut b);
            write(&mut b);
        }
        end.write(&mut b);
        b
    }

    #[test]
    fn multi_reads_ops_until_a_done_header() {
        let delete = |b: &mut BytesMut| {
            DeleteRequest {
                path: "/a".into(),
                version: -1,
            }
            .write(b)
        };
        let check = |b: &mut BytesMut| {
            CheckVersionRequest {
                path: "/b".into(),
                version: 3,
            }
            .write(b)
        };
        let frame = multi_frame(&[(2, &delete), (13, &check)], MULTI_END);
        let (_, request) = decode_request(&frame, MAX).unwrap();
        assert_eq!(
            request,
            Request::Multi(vec![
                MultiOp::Delete(DeleteRequest {
                    path: "/a".into(),
                    version: -1
                }),
                MultiOp::Check(CheckVersionRequest {
                    path: "/b".into(),
                    version: 3
                }),
            ])
        );
    }

    #[test]
    fn an_empty_multi_is_valid() {
        let frame = multi_frame(&[], MULTI_END);
        assert_eq!(
            decode_request(&frame, MAX).unwrap().1,
            Request::Multi(vec![])
        );
    }

    #[test]
    fn a_read_op_inside_multi_is_malformed() {
        let get = |b: &mut BytesMut| {
            GetDataRequest {
                path: "/a".into(),
                watch: false,
            }
            .write(b)
        };
        let frame = multi_frame(&[(4, &get)], MULTI_END);
        assert!(matches!(
            decode_request(&frame, MAX),
            Err(RequestDecodeError::MalformedBody {
                source: DecodeError::BadOpType(4),
                ..
            })
        ));
    }

    #[test]
    fn a_write_op_inside_multi_read_is_malformed() {
        let delete = |b: &mut BytesMut| {
            DeleteRequest {
                path: "/a".into(),
                version: -1,
            }
            .write(b)
        };
        let mut frame = multi_frame(&[(2, &delete)], MULTI_END);
        frame[4..8].copy_from_slice(&OpCode::MultiRead.code().to_be_bytes());
        assert!(matches!(
            decode_request(&frame, MAX),
            Err(RequestDecodeError::MalformedBody {
                opcode: 22,
                source: DecodeError::BadOpType(2),
                ..
            })
        ));
    }

    #[test]
    fn a_multi_without_its_end_marker_is_malformed() {
        let delete = |b: &mut BytesMut| {
            DeleteRequest {
                path: "/a".into(),
                version: -1,
            }
            .write(b)
        };
        let mut frame = multi_frame(&[(2, &delete)], MULTI_END);
        frame.truncate(frame.len() - 9);
        assert!(matches!(
            decode_request(&frame, MAX),
            Err(RequestDecodeError::MalformedBody {
                source: DecodeError::Truncated { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_not_done_end_type_is_an_unknown_op() {
        let frame = multi_frame(
            &[],
            MultiHeader {
                opcode: -1,
                done: false,
                err: -1,
            },
        );
        assert!(matches!(
            decode_request(&frame, MAX),
            Err(RequestDecodeError::MalformedBody {
                source: DecodeError::BadOpType(-1),
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_after_a_body_are_ignored_like_zookeeper() {
        let mut b = BytesMut::new();
        b.put_i32(5);
        b.put_i32(OpCode::Sync.code());
        b.put_string("/x");
        b.put_slice(b"junk");
        assert_eq!(
            decode_request(&b, MAX).unwrap().1,
            Request::Sync(SyncRequest { path: "/x".into() })
        );
    }
}
