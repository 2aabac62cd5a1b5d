//! The client-port records of `zookeeper.jute`, each readable and writable.
//!
//! Field order and types follow apache/zookeeper's
//! `zookeeper-jute/src/main/resources/zookeeper.jute` exactly; Rust names are
//! the jute names in snake_case (`timeOut` → `timeout_ms`, `type` →
//! `opcode` / `event_type` / `watch_type`), and acronyms are capitalised
//! like the rest of the crate (`CreateTTLRequest` → [`CreateTtlRequest`],
//! `GetACLRequest` → [`GetAclRequest`]).
//!
//! Decoded records own their data. A null `ustring` or `buffer` (length -1)
//! decodes as empty and a null `vector` as an empty Vec: ZooKeeper treats
//! them alike on most client paths. The exceptions are the fields where null
//! carries meaning, which are `Option`s: znode data ([`CreateRequest`],
//! [`CreateTtlRequest`], [`SetDataRequest`], [`GetDataResponse`]), whose null
//! getData returns as null, and [`ReconfigRequest`].

use bytes::{BufMut, BytesMut};

use crate::jute::{DecodeError, JuteReader, JuteWrite};
use crate::types::{Acl, Id, Stat};

/// A jute record: reads itself from and writes itself to the wire.
pub trait Record: Sized {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError>;
    fn write(&self, buf: &mut BytesMut);
}

/// Decodes one `T` from `bytes`, checking every string and buffer against
/// `field_len_max`. Bytes after the record are ignored, as ZooKeeper does.
pub fn decode_record<T: Record>(bytes: &[u8], field_len_max: usize) -> Result<T, DecodeError> {
    T::read(&mut JuteReader::new(bytes, field_len_max))
}

/// Encodes `record` into a fresh buffer (no length prefix).
pub fn encode_record<T: Record>(record: &T) -> BytesMut {
    let mut buf = BytesMut::new();
    record.write(&mut buf);
    buf
}

/// How one field type goes on the wire; lets `record!` generate the
/// read/write bodies from the field list.
trait Field: Sized {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError>;
    fn write_field(&self, buf: &mut BytesMut);
}

impl Field for i32 {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_i32(*self);
    }
}

impl Field for i64 {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_i64(*self);
    }
}

impl Field for bool {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_bool(*self);
    }
}

/// `ustring`, null read as empty.
impl Field for String {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_string()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_string(self);
    }
}

/// `ustring` that may be null.
impl Field for Option<String> {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_opt_string()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_opt_string(self.as_deref());
    }
}

/// `buffer` that may be null: znode data, where ZooKeeper keeps null apart
/// from empty (getData answers null for a node created with null data).
impl Field for Option<Vec<u8>> {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_opt_buffer()?.map(<[u8]>::to_vec))
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_opt_buffer(self.as_deref());
    }
}

/// `buffer`, null read as empty.
impl Field for Vec<u8> {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_buffer()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_buffer(self);
    }
}

/// `vector<ustring>`, null read as empty.
impl Field for Vec<String> {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_string_vec()
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_string_vec(self);
    }
}

/// `vector<Record>`, null read as empty.
impl<T: Record> Field for Vec<T> {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        r.read_vec(T::read)
    }
    fn write_field(&self, buf: &mut BytesMut) {
        buf.put_vec(self, |buf, item| item.write(buf));
    }
}

/// A nested record.
impl<T: Record> Field for T {
    fn read_field(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        T::read(r)
    }
    fn write_field(&self, buf: &mut BytesMut) {
        self.write(buf);
    }
}

/// Declares a record struct whose wire form is its fields in order.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl Record for $name {
            fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
                Ok($name { $($field: <$ty as Field>::read_field(r)?,)* })
            }

            fn write(&self, buf: &mut BytesMut) {
                $(<$ty as Field>::write_field(&self.$field, buf);)*
            }
        }
    };
}

impl Record for Stat {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_i64(self.czxid);
        buf.put_i64(self.mzxid);
        buf.put_i64(self.ctime);
        buf.put_i64(self.mtime);
        buf.put_i32(self.version);
        buf.put_i32(self.cversion);
        buf.put_i32(self.aversion);
        buf.put_i64(self.ephemeral_owner);
        buf.put_i32(self.data_length);
        buf.put_i32(self.num_children);
        buf.put_i64(self.pzxid);
    }
}

impl Record for Id {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(Id {
            scheme: r.read_string()?,
            id: r.read_string()?,
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_string(&self.scheme);
        buf.put_string(&self.id);
    }
}

impl Record for Acl {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::read(r)?,
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_i32(self.perms);
        self.id.write(buf);
    }
}

/// The first frame of a connection, sent with no `RequestHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Clients send 0.
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    /// The session timeout the client asks for; the server clamps it.
    pub timeout_ms: i32,
    /// 0 asks for a new session; anything else reattaches.
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// The trailing `readOnly` byte, `None` when the client did not send it
    /// (an "old client"). The reply carries a readOnly byte only if this is
    /// `Some`.
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_i32(self.protocol_version);
        buf.put_i64(self.last_zxid_seen);
        buf.put_i32(self.timeout_ms);
        buf.put_i64(self.session_id);
        buf.put_buffer(&self.passwd);
        if let Some(read_only) = self.read_only {
            buf.put_bool(read_only);
        }
    }
}

/// The reply to a `ConnectRequest`, sent with no `ReplyHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    /// The negotiated timeout; 0 tells the client its session has expired.
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Written only when `Some`: set it to `Some(..)` exactly when the
    /// request carried a readOnly byte. Read as `None` when absent.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The reply ZooKeeper sends for an unknown or expired session or a wrong
    /// password (timeout 0, session 0, 16 zero bytes), before closing.
    pub fn expired(request: &ConnectRequest) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: request.read_only.map(|_| false),
        }
    }
}

impl Record for ConnectResponse {
    fn read(r: &mut JuteReader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_i32(self.protocol_version);
        buf.put_i32(self.timeout_ms);
        buf.put_i64(self.session_id);
        buf.put_buffer(&self.passwd);
        if let Some(read_only) = self.read_only {
            buf.put_bool(read_only);
        }
    }
}

record! {
    /// Starts every request frame after the handshake.
    RequestHeader {
        xid: i32,
        /// The raw `type`; see [`crate::OpCode::from_code`].
        opcode: i32,
    }
}

record! {
    /// Starts every reply frame; a body follows only when `err` is 0.
    ReplyHeader {
        xid: i32,
        zxid: i64,
        /// The raw code; see [`crate::ErrorCode::from_code`].
        err: i32,
    }
}

record! {
    /// Precedes each op (and ends the list) inside multi requests and replies.
    MultiHeader {
        /// The op's opcode, or -1 for an error result and the end marker.
        opcode: i32,
        done: bool,
        err: i32,
    }
}

record! {
    /// Body of `auth` (opcode 100, xid -4).
    AuthPacket {
        /// Always 0.
        auth_type: i32,
        scheme: String,
        /// Null (length -1) is distinct from empty: ZooKeeper's digest
        /// provider fails on a null credential.
        auth: Option<Vec<u8>>,
    }
}

record! {
    /// Body of a notification (xid -1).
    WatcherEvent {
        /// See [`crate::EventType::from_code`].
        event_type: i32,
        /// See [`crate::KeeperState::from_code`].
        state: i32,
        path: String,
    }
}

record! {
    /// An error result inside a multi reply; also addWatch's reply body.
    ErrorResponse { err: i32 }
}

record! {
    /// Body of create (1), create2 (15) and createContainer (19).
    /// `data` is `None` when sent as null; the node then reads back as null.
    CreateRequest { path: String, data: Option<Vec<u8>>, acl: Vec<Acl>, flags: i32 }
}

record! {
    /// Body of createTTL (21).
    CreateTtlRequest { path: String, data: Option<Vec<u8>>, acl: Vec<Acl>, flags: i32, ttl: i64 }
}

record! {
    /// Reply to create (1): the real path, with any sequential suffix.
    CreateResponse { path: String }
}

record! {
    /// Reply to create2, createTTL and createContainer.
    Create2Response { path: String, stat: Stat }
}

record! { DeleteRequest { path: String, version: i32 } }
record! { ExistsRequest { path: String, watch: bool } }
record! { ExistsResponse { stat: Stat } }
record! { GetDataRequest { path: String, watch: bool } }
record! {
    /// `data` is `None` (written as length -1) for a node whose data is null;
    /// `stat.data_length` is 0 then, as for empty data.
    GetDataResponse { data: Option<Vec<u8>>, stat: Stat }
}
record! { SetDataRequest { path: String, data: Option<Vec<u8>>, version: i32 } }
record! { SetDataResponse { stat: Stat } }
record! { GetAclRequest { path: String } }
record! { GetAclResponse { acl: Vec<Acl>, stat: Stat } }
record! { SetAclRequest { path: String, acl: Vec<Acl>, version: i32 } }
record! { SetAclResponse { stat: Stat } }
record! { GetChildrenRequest { path: String, watch: bool } }
record! { GetChildrenResponse { children: Vec<String> } }
record! { GetChildren2Request { path: String, watch: bool } }
record! { GetChildren2Response { children: Vec<String>, stat: Stat } }

record! {
    /// Body of check (13), normally inside a multi.
    CheckVersionRequest { path: String, version: i32 }
}

record! { SyncRequest { path: String } }
record! { SyncResponse { path: String } }
record! { GetAllChildrenNumberRequest { path: String } }
record! { GetAllChildrenNumberResponse { total_number: i32 } }
record! { GetEphemeralsRequest { prefix_path: String } }
record! { GetEphemeralsResponse { ephemerals: Vec<String> } }

record! {
    /// Body of setWatches (101, xid -8): re-registers watches after a reconnect.
    SetWatches {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
    }
}

record! {
    /// Body of setWatches2 (105, xid -8): `SetWatches` plus persistent watches.
    SetWatches2 {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
        persistent_watches: Vec<String>,
        persistent_recursive_watches: Vec<String>,
    }
}

record! {
    /// Body of addWatch (106). The reply body is `ErrorResponse { err: 0 }`.
    AddWatchRequest {
        path: String,
        /// See [`crate::AddWatchMode::from_code`].
        mode: i32,
    }
}

record! {
    /// Body of checkWatches (17).
    CheckWatchesRequest {
        path: String,
        /// See [`crate::WatcherType::from_code`].
        watch_type: i32,
    }
}

record! {
    /// Body of removeWatches (18).
    RemoveWatchesRequest {
        path: String,
        /// See [`crate::WatcherType::from_code`].
        watch_type: i32,
    }
}

record! {
    /// One identity in a whoAmI reply (`org.apache.zookeeper.data.ClientInfo`).
    ClientInfo { auth_scheme: String, user: String }
}

record! {
    /// Reply to whoAmI (107).
    WhoAmIResponse { client_info: Vec<ClientInfo> }
}

record! {
    /// Body of reconfig (16). Null strings mean "not given"; the reply is a
    /// `GetDataResponse` with the new configuration.
    ReconfigRequest {
        joining_servers: Option<String>,
        leaving_servers: Option<String>,
        new_members: Option<String>,
        cur_config_id: i64,
    }
}

record! {
    /// Body of sasl (102).
    GetSaslRequest { token: Vec<u8> }
}

record! {
    /// Reply to sasl (102).
    SetSaslResponse { token: Vec<u8> }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn connect_request_bytes(read_only: Option<u8>) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i32(0);
        b.put_i64(0x10);
        b.put_i32(30_000);
        b.put_i64(0);
        b.put_buffer(&[0; 16]);
        if let Some(byte) = read_only {
            b.put_u8(byte);
        }
        b
    }

    #[test]
    fn connect_request_without_the_read_only_byte_is_an_old_client() {
        let req: ConnectRequest = decode_record(&connect_request_bytes(None), MAX).unwrap();
        assert_eq!(req.read_only, None);
        assert_eq!(req.timeout_ms, 30_000);
        assert_eq!(req.last_zxid_seen, 0x10);
        assert_eq!(req.passwd, vec![0; 16]);
        assert_eq!(encode_record(&req)[..], connect_request_bytes(None)[..]);
    }

    #[test]
    fn connect_request_with_the_read_only_byte_records_it() {
        let req: ConnectRequest = decode_record(&connect_request_bytes(Some(1)), MAX).unwrap();
        assert_eq!(req.read_only, Some(true));
        let req: ConnectRequest = decode_record(&connect_request_bytes(Some(0)), MAX).unwrap();
        assert_eq!(req.read_only, Some(false));
        assert_eq!(encode_record(&req)[..], connect_request_bytes(Some(0))[..]);
    }

    #[test]
    fn connect_response_carries_read_only_only_if_the_request_did() {
        let old = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 1,
            session_id: 5,
            passwd: vec![],
            read_only: None,
        };
        let new = ConnectRequest {
            read_only: Some(true),
            ..old.clone()
        };
        assert_eq!(
            encode_record(&ConnectResponse::expired(&old)).len(),
            4 + 4 + 8 + 4 + 16
        );
        assert_eq!(
            encode_record(&ConnectResponse::expired(&new)).len(),
            4 + 4 + 8 + 4 + 16 + 1
        );
        let back: ConnectResponse =
            decode_record(&encode_record(&ConnectResponse::expired(&new)), MAX).unwrap();
        assert_eq!(back.read_only, Some(false));
        assert_eq!(back.timeout_ms, 0);
    }

    #[test]
    fn a_truncated_connect_request_is_an_error() {
        let full = connect_request_bytes(Some(1));
        for cut in 0..full.len() - 1 {
            assert!(
                decode_record::<ConnectRequest>(&full[..cut], MAX).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn null_strings_and_vectors_decode_as_empty_but_null_data_stays_null() {
        let mut b = Vec::new();
        b.put_i32(-1); // path
        b.put_i32(-1); // data
        b.put_i32(-1); // acl
        b.put_i32(3); // flags
        let req: CreateRequest = decode_record(&b, MAX).unwrap();
        assert_eq!(
            req,
            CreateRequest {
                path: String::new(),
                data: None,
                acl: vec![],
                flags: 3
            }
        );
    }

    #[test]
    fn znode_data_keeps_null_apart_from_empty() {
        for data in [None, Some(vec![]), Some(b"v".to_vec())] {
            let resp = GetDataResponse {
                data: data.clone(),
                stat: Stat::default(),
            };
            let bytes = encode_record(&resp);
            let len = data.as_ref().map_or(-1, |d| d.len() as i32);
            assert_eq!(&bytes[..4], &len.to_be_bytes());
            assert_eq!(decode_record::<GetDataResponse>(&bytes, MAX), Ok(resp));
            let req = SetDataRequest {
                path: "/a".into(),
                data,
                version: -1,
            };
            assert_eq!(
                decode_record::<SetDataRequest>(&encode_record(&req), MAX),
                Ok(req)
            );
        }
    }

    #[test]
    fn reconfig_keeps_null_apart_from_empty() {
        let req = ReconfigRequest {
            joining_servers: None,
            leaving_servers: Some(String::new()),
            new_members: Some("server.1=a:1:2".into()),
            cur_config_id: -1,
        };
        let bytes = encode_record(&req);
        assert_eq!(&bytes[..4], &(-1i32).to_be_bytes());
        assert_eq!(decode_record::<ReconfigRequest>(&bytes, MAX), Ok(req));
    }

    #[test]
    fn stat_is_68_bytes_in_wire_order() {
        let stat = Stat {
            czxid: 1,
            pzxid: 11,
            num_children: 10,
            ..Stat::default()
        };
        let bytes = encode_record(&stat);
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[..8], &1i64.to_be_bytes());
        assert_eq!(&bytes[56..60], &10i32.to_be_bytes());
        assert_eq!(&bytes[60..], &11i64.to_be_bytes());
    }
}
