//! A deliberately small, blocking ZooKeeper wire client for tests.
//!
//! It sends exactly what the test builds: no client-side path validation, any opcode and
//! flags, raw createTTL, multi whose every sub-result is returned. Requests are strictly
//! one at a time; watch notifications (xid -1) that arrive while waiting for a reply are
//! kept, in arrival order, in [`RawSession::events`] so a test can tell which events came
//! before the reply.
//!
//! Wire format: every frame is an i32 big-endian length then the record; records are jute
//! (big-endian ints, i32-length-prefixed strings/buffers, -1 = null).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
}

/// ZooKeeper's name for an error code, for readable traces.
pub fn err_name(code: i32) -> String {
    let name = match code {
        0 => "Ok",
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -12 => "UnknownSession",
        -13 => "NewConfigNoQuorum",
        -14 => "ReconfigInProgress",
        -101 => "NoNode",
        -102 => "NoAuth",
        -103 => "BadVersion",
        -108 => "NoChildrenForEphemerals",
        -110 => "NodeExists",
        -111 => "NotEmpty",
        -112 => "SessionExpired",
        -113 => "InvalidCallback",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -118 => "SessionMoved",
        -119 => "NotReadOnly",
        -120 => "EphemeralOnLocalSession",
        -121 => "NoWatcher",
        -122 => "RequestTimeout",
        -123 => "ReconfigDisabled",
        -124 => "SessionClosedRequireSasl",
        -125 => "QuotaExceeded",
        -127 => "ThrottledOp",
        _ => return format!("Err({code})"),
    };
    name.to_string()
}

pub fn event_name(ty: i32) -> String {
    match ty {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        t => format!("Event({t})"),
    }
}

/// Jute encoder.
#[derive(Default, Clone)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn new() -> Enc {
        Enc(Vec::new())
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    pub fn buf(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.buf(v.as_bytes())
    }
    /// A buffer that may be null (length -1).
    pub fn opt_buf(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(v) => self.buf(v),
            None => self.i32(-1),
        }
    }
    /// A vector<ACL>: count, then {perms i32, scheme string, id string} each.
    pub fn acl(&mut self, acl: &[Acl]) -> &mut Self {
        self.i32(acl.len() as i32);
        for a in acl {
            self.i32(a.perms).str(&a.scheme).str(&a.id);
        }
        self
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Jute decoder over a reply body. Every read fails cleanly on short input.
pub struct Dec<'a> {
    buf: &'a [u8],
}

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "reply body too short")
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(short());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn bool(&mut self) -> io::Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }
    /// A buffer; `None` for length -1 (null).
    pub fn buf(&mut self) -> io::Result<Option<Vec<u8>>> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }
    pub fn str(&mut self) -> io::Result<String> {
        let b = self.buf()?.unwrap_or_default();
        String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
    pub fn strings(&mut self) -> io::Result<Vec<String>> {
        let n = self.i32()?;
        (0..n.max(0)).map(|_| self.str()).collect()
    }
    pub fn stat(&mut self) -> io::Result<Stat> {
        Ok(Stat {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            data_length: self.i32()?,
            num_children: self.i32()?,
            pzxid: self.i64()?,
        })
    }
    pub fn acl(&mut self) -> io::Result<Vec<Acl>> {
        let n = self.i32()?;
        (0..n.max(0))
            .map(|_| {
                Ok(Acl {
                    perms: self.i32()?,
                    scheme: self.str()?,
                    id: self.str()?,
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            scheme: scheme.into(),
            id: id.into(),
        }
    }
}

/// One reply: the ReplyHeader and the raw body (empty when `err != 0`).
#[derive(Clone, Debug)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn dec(&self) -> Dec<'_> {
        Dec::new(&self.body)
    }
}

/// A watch notification as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub ty: i32,
    pub state: i32,
    pub path: String,
    /// The zxid in the notification's ReplyHeader (ZooKeeper 3.8 sends -1).
    pub zxid: i64,
}

/// One session on one TCP connection.
pub struct RawSession {
    stream: TcpStream,
    /// The server this session is connected to.
    pub addr: SocketAddr,
    pub session_id: i64,
    pub timeout_ms: i32,
    pub passwd: Vec<u8>,
    next_xid: i32,
    /// Notifications received and not yet taken, in arrival order.
    pub events: Vec<Event>,
    /// Highest zxid seen in a reply header.
    pub last_zxid: i64,
    /// The server accepted the session read-only (the ConnectResponse's readOnly byte).
    pub read_only: bool,
}

impl RawSession {
    /// Opens a new session (ConnectRequest with the trailing readOnly byte).
    pub fn connect(addr: SocketAddr, timeout_ms: i32) -> io::Result<RawSession> {
        Self::connect_as(addr, timeout_ms, 0, &[0u8; 16], 0)
    }

    /// Sends a ConnectRequest with every field chosen: `session_id` 0 opens a new session,
    /// anything else reattaches with `passwd`; `last_zxid_seen` is what the client claims
    /// to have seen (a server behind it must refuse). A server that closes the connection
    /// without answering gives `UnexpectedEof`; an answer with timeOut 0 (session unknown
    /// or expired) gives an error saying so.
    pub fn connect_as(
        addr: SocketAddr,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
        last_zxid_seen: i64,
    ) -> io::Result<RawSession> {
        Self::connect_with(addr, timeout_ms, session_id, passwd, last_zxid_seen, false)
    }

    /// A new session from a client that accepts a read-only server (`canBeReadOnly`);
    /// [`RawSession::read_only`] tells whether the server answered as one.
    pub fn connect_read_only(addr: SocketAddr, timeout_ms: i32) -> io::Result<RawSession> {
        Self::connect_with(addr, timeout_ms, 0, &[0u8; 16], 0, true)
    }

    fn connect_with(
        addr: SocketAddr,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
        last_zxid_seen: i64,
        can_be_read_only: bool,
    ) -> io::Result<RawSession> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut s = RawSession {
            stream,
            addr,
            session_id: 0,
            timeout_ms: 0,
            passwd: Vec::new(),
            next_xid: 1,
            events: Vec::new(),
            last_zxid: last_zxid_seen,
            read_only: false,
        };
        let mut e = Enc::new();
        e.i32(0)
            .i64(last_zxid_seen)
            .i32(timeout_ms)
            .i64(session_id)
            .buf(passwd)
            .bool(can_be_read_only);
        s.write_frame(e.bytes())?;
        let frame = s.read_frame()?;
        let mut d = Dec::new(&frame);
        let _protocol = d.i32()?;
        s.timeout_ms = d.i32()?;
        s.session_id = d.i64()?;
        s.passwd = d.buf()?.unwrap_or_default();
        s.read_only = d.remaining() > 0 && d.bool()?;
        if s.timeout_ms <= 0 {
            return Err(io::Error::other("server refused the session (timeOut 0)"));
        }
        Ok(s)
    }

    fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 4);
        frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)
    }

    fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=16 << 20).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad frame length {len}"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads frames until the reply for `xid`; notifications go to `self.events`.
    pub fn read_reply(&mut self, xid: i32) -> io::Result<Reply> {
        loop {
            let frame = self.read_frame()?;
            let mut d = Dec::new(&frame);
            let rxid = d.i32()?;
            let zxid = d.i64()?;
            let err = d.i32()?;
            if rxid == -1 {
                let ty = d.i32()?;
                let state = d.i32()?;
                let path = d.str()?;
                self.events.push(Event {
                    ty,
                    state,
                    path,
                    zxid,
                });
                continue;
            }
            if zxid > self.last_zxid {
                self.last_zxid = zxid;
            }
            let body = frame[16..].to_vec();
            if rxid != xid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reply xid {rxid} while waiting for {xid} (err {err})"),
                ));
            }
            return Ok(Reply {
                xid: rxid,
                zxid,
                err,
                body,
            });
        }
    }

    /// Sends one request with the next xid and waits for its reply.
    pub fn request(&mut self, opcode: i32, body: &[u8]) -> io::Result<Reply> {
        let xid = self.send_request(opcode, body)?;
        self.read_reply(xid)
    }

    /// Sends one request with a chosen xid (ping -2, auth -4, …) and waits for its reply.
    pub fn request_with_xid(&mut self, xid: i32, opcode: i32, body: &[u8]) -> io::Result<Reply> {
        self.send_with_xid(xid, opcode, body)?;
        self.read_reply(xid)
    }

    /// Sends one request with the next xid without waiting; returns its xid
    /// (take the reply later with [`RawSession::read_reply`]).
    pub fn send_request(&mut self, opcode: i32, body: &[u8]) -> io::Result<i32> {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_with_xid(xid, opcode, body)?;
        Ok(xid)
    }

    fn send_with_xid(&mut self, xid: i32, opcode: i32, body: &[u8]) -> io::Result<()> {
        let mut frame = Enc::new();
        frame.i32(xid).i32(opcode);
        frame.0.extend_from_slice(body);
        self.write_frame(frame.bytes())
    }

    pub fn ping(&mut self) -> io::Result<Reply> {
        self.request_with_xid(-2, op::PING, &[])
    }

    /// `addauth scheme credential` (xid -4). A failure closes the connection server-side.
    pub fn auth(&mut self, scheme: &str, credential: &[u8]) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.i32(0).str(scheme).buf(credential);
        self.request_with_xid(-4, op::AUTH, e.bytes())
    }

    /// A cheap read whose reply is ordered after every notification the server queued for
    /// this session before it (`exists /`, no watch): call it, then take `events`.
    pub fn barrier(&mut self) -> io::Result<()> {
        let mut e = Enc::new();
        e.str("/").bool(false);
        let r = self.request(op::EXISTS, e.bytes())?;
        if r.err != 0 {
            return Err(io::Error::other(format!(
                "barrier exists / failed: {}",
                r.err
            )));
        }
        Ok(())
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Sends closeSession and waits for its reply (the server then closes the socket).
    pub fn close(mut self) -> io::Result<Reply> {
        self.request(op::CLOSE_SESSION, &[])
    }

    // ---- request builders for the common ops (each returns the raw Reply) ----

    pub fn create(
        &mut self,
        opcode: i32,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        flags: i32,
        ttl: Option<i64>,
    ) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).buf(data).acl(acl).i32(flags);
        if let Some(ttl) = ttl {
            e.i64(ttl);
        }
        self.request(opcode, e.bytes())
    }

    pub fn delete(&mut self, path: &str, version: i32) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).i32(version);
        self.request(op::DELETE, e.bytes())
    }

    pub fn exists(&mut self, path: &str, watch: bool) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).bool(watch);
        self.request(op::EXISTS, e.bytes())
    }

    pub fn get_data(&mut self, path: &str, watch: bool) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).bool(watch);
        self.request(op::GET_DATA, e.bytes())
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).buf(data).i32(version);
        self.request(op::SET_DATA, e.bytes())
    }

    pub fn get_children(&mut self, opcode: i32, path: &str, watch: bool) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).bool(watch);
        self.request(opcode, e.bytes())
    }

    pub fn get_acl(&mut self, path: &str) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path);
        self.request(op::GET_ACL, e.bytes())
    }

    pub fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).acl(acl).i32(version);
        self.request(op::SET_ACL, e.bytes())
    }

    pub fn sync(&mut self, path: &str) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path);
        self.request(op::SYNC, e.bytes())
    }

    /// addWatch: mode 0 persistent, 1 persistent-recursive.
    pub fn add_watch(&mut self, path: &str, mode: i32) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).i32(mode);
        self.request(op::ADD_WATCH, e.bytes())
    }

    /// checkWatches (17) / removeWatches (18): type 1 children, 2 data, 3 any.
    pub fn watches_op(&mut self, opcode: i32, path: &str, ty: i32) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path).i32(ty);
        self.request(opcode, e.bytes())
    }

    pub fn path_op(&mut self, opcode: i32, path: &str) -> io::Result<Reply> {
        let mut e = Enc::new();
        e.str(path);
        self.request(opcode, e.bytes())
    }
}

/// One sub-operation of a multi (14) or multiRead (22) request.
#[derive(Clone, Debug)]
pub struct MultiOp {
    pub opcode: i32,
    /// The op's request record (as the single-op request body would be).
    pub body: Vec<u8>,
}

/// Encodes a multi body: {MultiHeader{type, done=false, err=-1}, record}* then
/// MultiHeader{-1, true, -1}.
pub fn encode_multi(ops: &[MultiOp]) -> Vec<u8> {
    let mut e = Enc::new();
    for o in ops {
        e.i32(o.opcode).bool(false).i32(-1);
        e.0.extend_from_slice(&o.body);
    }
    e.i32(-1).bool(true).i32(-1);
    e.0
}

/// One result of a multi or multiRead reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    /// type -1: the header's err and the ErrorResponse's err (they should agree).
    Error {
        header_err: i32,
        err: i32,
    },
    /// A result type this decoder does not know; the rest of the reply is not decoded.
    Unknown {
        ty: i32,
        header_err: i32,
    },
}

/// Decodes a multi/multiRead reply body into its results (up to the done marker).
pub fn decode_multi(body: &[u8]) -> io::Result<Vec<MultiResult>> {
    let mut d = Dec::new(body);
    let mut out = Vec::new();
    loop {
        let ty = d.i32()?;
        let done = d.bool()?;
        let header_err = d.i32()?;
        if done {
            return Ok(out);
        }
        let r = match ty {
            op::CREATE => MultiResult::Create { path: d.str()? },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => MultiResult::Create2 {
                path: d.str()?,
                stat: d.stat()?,
            },
            op::DELETE => MultiResult::Delete,
            op::SET_DATA => MultiResult::SetData { stat: d.stat()? },
            op::CHECK => MultiResult::Check,
            op::GET_DATA => MultiResult::GetData {
                data: d.buf()?,
                stat: d.stat()?,
            },
            op::GET_CHILDREN => MultiResult::GetChildren {
                children: d.strings()?,
            },
            -1 => MultiResult::Error {
                header_err,
                err: d.i32()?,
            },
            _ => {
                out.push(MultiResult::Unknown { ty, header_err });
                return Ok(out);
            }
        };
        out.push(r);
    }
}
