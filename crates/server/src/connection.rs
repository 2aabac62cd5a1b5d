//! One client connection: the handshake (or a four-letter word), then a
//! reader loop that decodes requests in order and a writer task that drains
//! the outbound queue with one `write` per batch of frames.
//!
//! Reads are answered at once unless the session still has writes in
//! flight; then they wait in the connection's queue and are served right
//! after those writes are applied (see `apply.rs`). Writes are pipelined:
//! the reader never waits for a write to commit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corral_proto::fourlw::FourLetterWord;
use corral_proto::frame::{decode_frame, FrameError};
use corral_proto::jute::default_field_len_max;
use corral_proto::records::{decode_record, ConnectRequest, ConnectResponse, SetSaslResponse};
use corral_proto::request::{decode_request, Request, RequestDecodeError};
use corral_proto::response::{encode_connect_response, encode_header_reply, encode_reply_record};
use corral_proto::{ErrorCode, Id};
use corral_tree::TxnOp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::core::{ConnState, DirectSocket, Outbound, Pending, ReplyShape, Shared};
use crate::entry::LogEntry;
use crate::read_path::serve_read;
use crate::session::{accepted_response, read_only_response, session_password};
use crate::watch::ConnId;
use crate::write_path::{stamp, to_txn_op};

/// Bytes the writer gathers into one `write` call.
const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// How long a new connection may take to send its first frame.
pub(crate) fn handshake_timeout(shared: &Shared) -> Duration {
    Duration::from_millis(shared.config.max_session_timeout_ms.max(10_000) as u64)
}

/// Serves one accepted socket until it closes.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let direct = direct_socket(&stream, addr);
    let (rd, wr) = stream.into_split();
    serve_io(shared, rd, wr, addr, None, direct).await;
}

/// A second descriptor of the same (non-blocking) socket, for watch events
/// sent where they fire; without one, they go through the writer task.
///
/// Only on a runtime of one worker (the server's default on 2 cores): there
/// every task runs on that one thread anyway, and sending from where the
/// event fires saves 1000 wake-ups in a 1000-watcher fan-out. With more
/// workers the writer tasks spread a fan-out's sends over them, and the
/// server's lock is not held while they send.
fn direct_socket(stream: &TcpStream, addr: SocketAddr) -> Option<Arc<DirectSocket>> {
    if tokio::runtime::Handle::current().metrics().num_workers() != 1 {
        return None;
    }
    match std::os::fd::AsFd::as_fd(stream).try_clone_to_owned() {
        Ok(fd) => Some(Arc::new(DirectSocket::new(std::net::TcpStream::from(fd)))),
        Err(e) => {
            tracing::debug!(%addr, "cannot duplicate the socket for direct sends: {e}");
            None
        }
    }
}

/// Serves a connection that is not a bare TCP stream (TLS on
/// `secureClientPort`) exactly as one on `clientPort`.
/// `client_id`: the subject of the client's certificate, its x509 identity.
pub async fn serve_stream<S>(
    shared: Arc<Shared>,
    stream: S,
    addr: SocketAddr,
    client_id: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    serve_io(shared, rd, wr, addr, Some(client_id), None).await;
}

/// `tls`: came in on the secure port, with the client certificate's subject
/// if it sent one.
async fn serve_io<R, W>(
    shared: Arc<Shared>,
    mut rd: R,
    mut wr: W,
    addr: SocketAddr,
    tls: Option<Option<String>>,
    direct: Option<Arc<DirectSocket>>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let deadline = handshake_timeout(&shared);

    // The first 4 bytes are either a four-letter word or a frame length.
    match tokio::time::timeout(deadline, fill(&mut rd, &mut buf, 4)).await {
        Ok(Ok(true)) => {}
        Ok(_) => return,
        Err(_) => {
            tracing::info!(%addr, "client sent nothing within {:?}; closing", deadline);
            return;
        }
    }
    let first: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    if let Some(word) = FourLetterWord::from_bytes(&first) {
        let output = crate::fourlw::execute(&shared, word, addr);
        let _ = wr.write_all(output.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }

    let max_frame = shared.config.jute_maxbuffer;
    let connect_frame = match tokio::time::timeout(
        deadline,
        read_frame(&mut rd, &mut buf, max_frame),
    )
    .await
    {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::info!(%addr, "closing connection: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%addr, "client did not complete its ConnectRequest within {:?}", deadline);
            return;
        }
    };
    let field_len_max = default_field_len_max(max_frame);
    let request: ConnectRequest = match decode_record(&connect_frame, field_len_max) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(%addr, "closing connection: malformed ConnectRequest: {e}");
            return;
        }
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_loop(
        shared.clone(),
        wr,
        rx,
        queued.clone(),
        direct.clone(),
    ));
    let stop = Arc::new(Notify::new());
    let conn_id = shared.next_conn_id();

    let mut conn = ConnState::new(addr, tx.clone(), queued, stop.clone(), shared.stats.clone());
    if let Some(direct) = direct {
        conn.set_direct(direct);
    }
    conn.secure = tls.is_some();
    if let Some(Some(subject)) = tls {
        // ZooKeeper's X509AuthenticationProvider: the certificate names the client.
        if shared.config.x509_super_user.as_deref() == Some(subject.as_str()) {
            conn.auth.push(Id::new("super", ""));
        }
        conn.auth.push(Id::new("x509", subject));
    }
    let outcome = handshake(&shared, conn_id, addr, &request, conn);
    let proposal = match outcome {
        Handshake::Refused => {
            let _ = tx.send(Outbound::Close);
            let _ = writer.await;
            return;
        }
        Handshake::Established => None,
        Handshake::Propose(payload) => Some(payload),
    };
    if let Some(payload) = proposal {
        if shared.propose(payload).await.is_err() {
            shared.core.lock().drop_conn(conn_id);
            let _ = writer.await;
            return;
        }
    }

    let reason = read_loop(&shared, conn_id, &mut rd, &mut buf, &stop).await;
    tracing::debug!(%addr, conn_id, "connection closed: {reason}");
    shared.core.lock().drop_conn(conn_id);
    let _ = tx.send(Outbound::Close);
    let _ = writer.await;
}

enum Handshake {
    /// Close the connection (after whatever reply was queued).
    Refused,
    /// The session was reattached and the ConnectResponse queued.
    Established,
    /// A new session: propose its createSession entry; the reply follows
    /// when it is applied.
    Propose(Vec<u8>),
}

/// Checks a ConnectRequest and registers the connection (ZooKeeper's
/// processConnectRequest): refuse a client that has seen a later zxid,
/// negotiate the timeout, then create or reattach the session.
fn handshake(
    shared: &Shared,
    conn_id: ConnId,
    addr: SocketAddr,
    request: &ConnectRequest,
    mut conn: ConnState,
) -> Handshake {
    if !shared.is_serving() {
        if shared.is_read_only() && request.read_only == Some(true) {
            return read_only_handshake(shared, conn_id, addr, request, conn);
        }
        tracing::info!(%addr, "refusing a client: this server has no quorum yet");
        return Handshake::Refused;
    }
    let mut core = shared.core.lock();
    if seen_later_zxid(&core, request, addr) {
        return Handshake::Refused;
    }
    let timeout_ms = shared.config.negotiate_timeout(request.timeout_ms);
    conn.timeout_ms = timeout_ms;
    if request.session_id == 0 {
        let session_id = core.allocate_session_id();
        let op = TxnOp::CreateSession { timeout_ms };
        return answer_when_logged(shared, &mut core, conn_id, conn, request, session_id, op);
    }
    let session_id = request.session_id;
    if refused_as_expired(&core, request, addr, &mut conn) {
        return Handshake::Refused;
    }
    let mut out = BytesMut::new();
    let owner = core.tree.session_owner(session_id);
    if !shared.config.servers.is_empty() && owner.is_some_and(|o| o != shared.server_id) {
        // The session moves here from another server: the log decides the
        // new owner before the client is answered, so that writes still
        // coming through the old server fail with SessionMoved.
        let op = TxnOp::MoveSession { timeout_ms };
        return answer_when_logged(shared, &mut core, conn_id, conn, request, session_id, op);
    }
    if let Some(old) = core.sessions.get(session_id).and_then(|s| s.conn) {
        core.drop_conn(old);
    }
    if let Some(s) = core.sessions.get_mut(session_id) {
        s.conn = Some(conn_id);
    }
    core.sessions.set_timeout(session_id, timeout_ms);
    conn.session_id = session_id;
    encode_connect_response(
        &mut out,
        &accepted_response(session_id, timeout_ms, request.read_only.is_some()),
    );
    conn.send(out.freeze());
    core.conns.insert(conn_id, conn);
    Handshake::Established
}

/// A client that has seen a later zxid than this server must not be served
/// here (it would go back in time); logged.
fn seen_later_zxid(core: &crate::core::Core, request: &ConnectRequest, addr: SocketAddr) -> bool {
    let ours = core.tree.last_zxid();
    if request.last_zxid_seen <= ours {
        return false;
    }
    tracing::info!(
        %addr,
        client_zxid = format_args!("{:#x}", request.last_zxid_seen),
        our_zxid = format_args!("{ours:#x}"),
        "refusing a client that has seen a later zxid than this server"
    );
    true
}

/// A reconnect to a session that is unknown, closing or given the wrong
/// password gets ZooKeeper's expired ConnectResponse (timeout 0); true when
/// it did.
fn refused_as_expired(
    core: &crate::core::Core,
    request: &ConnectRequest,
    addr: SocketAddr,
    conn: &mut ConnState,
) -> bool {
    let session_id = request.session_id;
    let valid = core.sessions.get(session_id).is_some_and(|s| !s.closing)
        && request.passwd == session_password(session_id);
    if valid {
        return false;
    }
    tracing::info!(
        %addr,
        session = format_args!("{session_id:#x}"),
        "reconnect refused: session expired or unknown, or wrong password"
    );
    let mut out = BytesMut::new();
    encode_connect_response(&mut out, &ConnectResponse::expired(request));
    conn.send(out.freeze());
    true
}

/// ZooKeeper's read-only server (`readonlymode.enabled`, a member cut off from
/// its quorum) accepting a client that allows it (`canBeReadOnly`): reads are
/// served from this server's tree, writes get NotReadOnly. A new session is
/// this server's alone, as ZooKeeper's read-only sessions are local: it is not
/// logged, and a read-write server does not know it. A session the log knows
/// may reattach here read-only with its password.
fn read_only_handshake(
    shared: &Shared,
    conn_id: ConnId,
    addr: SocketAddr,
    request: &ConnectRequest,
    mut conn: ConnState,
) -> Handshake {
    let mut core = shared.core.lock();
    if seen_later_zxid(&core, request, addr) {
        return Handshake::Refused;
    }
    let timeout_ms = shared.config.negotiate_timeout(request.timeout_ms);
    let session_id = if request.session_id == 0 {
        core.allocate_session_id()
    } else if refused_as_expired(&core, request, addr, &mut conn) {
        return Handshake::Refused;
    } else {
        request.session_id
    };
    tracing::info!(
        %addr,
        session = format_args!("{session_id:#x}"),
        "accepted a read-only client: this server has no quorum"
    );
    conn.timeout_ms = timeout_ms;
    conn.session_id = session_id;
    conn.read_only = true;
    let mut out = BytesMut::new();
    encode_connect_response(&mut out, &read_only_response(session_id, timeout_ms));
    conn.send(out.freeze());
    core.conns.insert(conn_id, conn);
    Handshake::Established
}

/// Registers the connection with its ConnectResponse owed, to be sent when
/// `op` (createSession or a session's move here) is applied.
fn answer_when_logged(
    shared: &Shared,
    core: &mut crate::core::Core,
    conn_id: ConnId,
    mut conn: ConnState,
    request: &ConnectRequest,
    session_id: i64,
    op: TxnOp,
) -> Handshake {
    conn.session_id = session_id;
    conn.pending.push_back(Pending::Write {
        xid: 0,
        shape: ReplyShape::Connect {
            timeout_ms: conn.timeout_ms,
            read_only_byte: request.read_only.is_some(),
        },
        received: Instant::now(),
    });
    core.conns.insert(conn_id, conn);
    let entry = LogEntry {
        origin: shared.server_id,
        conn: conn_id,
        xid: 0,
        txn: stamp(session_id, &[], op),
    };
    Handshake::Propose(entry.encode())
}

/// Reads until `buf` holds at least `n` bytes; false on EOF.
async fn fill<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> std::io::Result<bool> {
    while buf.len() < n {
        if rd.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<BytesMut>, ReadError> {
    loop {
        if let Some(frame) = decode_frame(buf, max)? {
            return Ok(Some(frame));
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Decodes and handles requests until the connection ends; returns why.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    conn_id: ConnId,
    rd: &mut R,
    buf: &mut BytesMut,
    stop: &Notify,
) -> String {
    let max = shared.config.jute_maxbuffer;
    let field_len_max = default_field_len_max(max);
    loop {
        loop {
            let frame = match decode_frame(buf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(conn_id, "closing connection: {e}");
                    return e.to_string();
                }
            };
            shared
                .stats
                .packets_received
                .fetch_add(1, Ordering::Relaxed);
            match handle_frame(shared, conn_id, &frame, field_len_max).await {
                Continue::Yes
                | Continue::Propose(_)
                | Continue::Sync(_)
                | Continue::Reconfig(_)
                | Continue::RefuseLater { .. } => {}
                Continue::No(reason) => return reason,
            }
            // Back-pressure: a client that pipelines faster than its
            // requests complete stops being read (TCP pushes back on it).
            while pending_len(shared, conn_id) > PENDING_REQUESTS_MAX {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
                    _ = stop.notified() => return "closed by the server".into(),
                }
            }
        }
        tokio::select! {
            read = rd.read_buf(buf) => match read {
                Ok(0) => return "client closed the connection".into(),
                Ok(_) => {}
                Err(e) => return format!("read failed: {e}"),
            },
            _ = stop.notified() => return "closed by the server".into(),
        }
    }
}

/// Requests of one connection waiting for earlier writes before the
/// server stops reading more from it.
const PENDING_REQUESTS_MAX: usize = 4096;

fn pending_len(shared: &Shared, conn_id: ConnId) -> usize {
    shared
        .core
        .lock()
        .conns
        .get(&conn_id)
        .map_or(0, |c| c.pending.len())
}

enum Continue {
    Yes,
    No(String),
    /// Go on after handing this entry to the log.
    Propose(Vec<u8>),
    /// Go on; the `sync` with this xid completes once the leader's read
    /// index is applied here.
    Sync(i32),
    /// Go on after handing this reconfig to the leader.
    Reconfig(crate::reconfig::ReconfigCall),
    /// A failed password check: after [`AUTH_FAILURE_DELAY`], send this
    /// refusal and close.
    RefuseLater {
        frame: Bytes,
        reason: String,
    },
}

/// How long a wrong SASL password waits for its AuthFailed: it makes guessing
/// passwords online slow, and a client sees its session connected before the
/// refusal closes it (kazoo reports AuthFailedError only then; ZooKeeper's
/// slower reply gives the same order).
const AUTH_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

async fn handle_frame(
    shared: &Arc<Shared>,
    conn_id: ConnId,
    frame: &[u8],
    field_len_max: usize,
) -> Continue {
    match handle_request(shared, conn_id, frame, field_len_max) {
        Continue::Propose(payload) => {
            if shared.propose(payload).await.is_err() {
                return Continue::No("the server is shutting down".into());
            }
            Continue::Yes
        }
        Continue::Reconfig(call) => {
            if crate::reconfig::submit(shared, call).is_err() {
                return Continue::No("no leader to hand a reconfig to".into());
            }
            Continue::Yes
        }
        Continue::RefuseLater { frame, reason } => {
            tokio::time::sleep(AUTH_FAILURE_DELAY).await;
            let mut core = shared.core.lock();
            match core.conns.get_mut(&conn_id) {
                Some(conn) => refuse_and_close(conn, frame, reason),
                None => Continue::No("connection gone".into()),
            }
        }
        Continue::Sync(xid) => {
            // Not in the reader: later requests keep flowing meanwhile.
            let shared = shared.clone();
            tokio::spawn(async move {
                let caught_up = match shared.replica.get() {
                    Some(replica) => replica.read_index().await.is_ok(),
                    None => false,
                };
                let mut core = shared.core.lock();
                if caught_up {
                    crate::apply::sync_done(&mut core, conn_id, xid);
                } else {
                    tracing::info!(conn_id, "sync failed: no leader; closing the connection");
                    core.drop_conn(conn_id);
                }
            });
            Continue::Yes
        }
        other => other,
    }
}

/// Handles one request frame under the core lock; never waits.
fn handle_request(
    shared: &Shared,
    conn_id: ConnId,
    frame: &[u8],
    field_len_max: usize,
) -> Continue {
    let received = Instant::now();
    let decoded = decode_request(frame, field_len_max);
    let mut core = shared.core.lock();
    let zxid = core.tree.last_zxid();
    let (header, request) = match decoded {
        Ok(ok) => ok,
        Err(e) => {
            tracing::info!(conn_id, "bad request: {e}");
            let Some(conn) = core.conns.get_mut(&conn_id) else {
                return Continue::No("connection gone".into());
            };
            return match (&e, e.reply()) {
                (RequestDecodeError::UnknownOpCode { .. }, Some((xid, code))) => {
                    let mut out = BytesMut::new();
                    encode_header_reply(&mut out, xid, -1, code);
                    conn.send(out.freeze());
                    conn.close();
                    Continue::No(e.to_string())
                }
                (RequestDecodeError::MalformedBody { opcode, .. }, Some((xid, code)))
                    if is_write_opcode(*opcode) =>
                {
                    // ZooKeeper decodes write bodies in its prep stage, so a
                    // malformed write becomes an error txn and uses a zxid.
                    let entry = LogEntry {
                        origin: shared.server_id,
                        conn: conn_id,
                        xid,
                        txn: stamp(conn.session_id, &conn.auth, TxnOp::Fail(code)),
                    };
                    conn.pending.push_back(Pending::Write {
                        xid,
                        shape: ReplyShape::Check,
                        received,
                    });
                    Continue::Propose(entry.encode())
                }
                (_, Some((xid, code))) => {
                    let mut out = BytesMut::new();
                    encode_header_reply(&mut out, xid, zxid, code);
                    conn.send_in_turn(out.freeze());
                    Continue::Yes
                }
                (_, None) => Continue::No(e.to_string()),
            };
        }
    };
    let xid = header.xid;
    let Some(conn) = core.conns.get(&conn_id) else {
        return Continue::No("connection gone".into());
    };
    let session_id = conn.session_id;
    let awaiting_session = matches!(
        conn.pending.front(),
        Some(Pending::Write {
            shape: ReplyShape::Connect { .. },
            ..
        })
    );
    // A read-only session is this server's alone: no tracker entry to touch,
    // nothing to report to a leader.
    let read_only = conn.read_only;
    if !read_only && !awaiting_session && !core.sessions.touch(session_id) {
        // ZooKeeper drops requests of a closed or expired session unanswered.
        return Continue::Yes;
    }
    if !read_only {
        core.touched.insert(session_id);
    }
    let Some(conn) = core.conns.get_mut(&conn_id) else {
        return Continue::No("connection gone".into());
    };
    conn.packets_received += 1;
    let enforced = &shared.config.enforce_auth_schemes;
    if !enforced.is_empty()
        && !matches!(request, Request::Auth(_) | Request::Sasl(_))
        && !conn.auth.iter().any(|id| enforced.contains(&id.scheme))
    {
        return refuse_unauthenticated(conn, xid, enforced);
    }
    if read_only && (request.is_write() || matches!(request, Request::Sync(_))) {
        return refuse_on_read_only(conn, xid, zxid, &request);
    }

    match request {
        Request::Auth(packet) => {
            let mut out = BytesMut::new();
            let ok = match packet.scheme.as_str() {
                // Java decodes the credential with replacement characters
                // and fails on a null one (DigestAuthenticationProvider).
                "digest" => match packet.auth.as_deref() {
                    Some(raw) => {
                        let id = corral_tree::digest_id(&String::from_utf8_lossy(raw));
                        let is_super = shared
                            .config
                            .super_digest
                            .as_deref()
                            .is_some_and(|sd| sd == id.as_str());
                        add_identity(&mut conn.auth, Id::new("digest", id));
                        if is_super {
                            add_identity(&mut conn.auth, Id::new("super", ""));
                        }
                        true
                    }
                    None => false,
                },
                "ip" => {
                    let ip = Id::new("ip", conn.addr.ip().to_string());
                    add_identity(&mut conn.auth, ip);
                    true
                }
                _ => false,
            };
            if ok {
                // The identities count for the requests after this one at
                // once; the reply must still wait its turn.
                encode_header_reply(&mut out, xid, 0, ErrorCode::Ok);
                conn.send_in_turn(out.freeze());
                Continue::Yes
            } else {
                shared.stats.auth_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    addr = %conn.addr,
                    scheme = %packet.scheme,
                    "Authentication failed for scheme: {}",
                    packet.scheme
                );
                encode_header_reply(&mut out, xid, 0, ErrorCode::AuthFailed);
                let reason = format!("authentication failed for scheme {:?}", packet.scheme);
                refuse_and_close(conn, out.freeze(), reason)
            }
        }
        Request::Sasl(packet) => sasl_step(shared, conn, xid, &packet.token),
        Request::Reconfig(r) => {
            conn.pending.push_back(Pending::Write {
                xid,
                shape: ReplyShape::Reconfig,
                received,
            });
            // Refusals go through the log as error txns, as ZooKeeper's do
            // (they use a zxid and keep the session's order).
            let refusal = if !shared.config.reconfig_enabled {
                Some(ErrorCode::ReconfigDisabled)
            } else if shared.config.servers.is_empty() {
                // ZooKeeper: "standalone mode - reconfiguration currently
                // not supported".
                Some(ErrorCode::Unimplemented)
            } else {
                None
            };
            match refusal {
                Some(code) => Continue::Propose(
                    LogEntry {
                        origin: shared.server_id,
                        conn: conn_id,
                        xid,
                        txn: stamp(session_id, &conn.auth, TxnOp::Fail(code)),
                    }
                    .encode(),
                ),
                None => Continue::Reconfig(crate::reconfig::ReconfigCall {
                    origin: shared.server_id,
                    conn: conn_id,
                    xid,
                    session_id,
                    auth: conn.auth.clone(),
                    joining: r.joining_servers,
                    leaving: r.leaving_servers,
                    new_members: r.new_members,
                    cur_config_id: r.cur_config_id,
                }),
            }
        }
        request if request.is_write() => {
            let Some((op, shape)) = to_txn_op(request) else {
                return Continue::No("unroutable write".into());
            };
            let entry = LogEntry {
                origin: shared.server_id,
                conn: conn_id,
                xid,
                txn: stamp(session_id, &conn.auth, op),
            };
            conn.pending.push_back(Pending::Write {
                xid,
                shape,
                received,
            });
            Continue::Propose(entry.encode())
        }
        Request::Sync(r) if !shared.config.servers.is_empty() => {
            conn.pending.push_back(Pending::Sync {
                xid,
                request: Request::Sync(r),
                received,
                ready: false,
            });
            Continue::Sync(xid)
        }
        request => {
            if conn.pending.is_empty() {
                serve_read(&mut core, conn_id, xid, request, received);
            } else {
                conn.pending.push_back(Pending::Read {
                    xid,
                    request,
                    received,
                });
            }
            Continue::Yes
        }
    }
}

/// One SASL token (ZooKeeper's `processSasl`): the next DIGEST-MD5 token
/// goes back; once the client has proved its password it holds
/// `sasl:<name>` (and `super` as `zookeeper.superUser`). A failed exchange,
/// or SASL on a server without accounts, gets AuthFailed and the
/// connection closes, as ZooKeeper closes it.
fn sasl_step(shared: &Shared, conn: &mut ConnState, xid: i32, token: &[u8]) -> Continue {
    let step = match &shared.sasl {
        Some(accounts) => conn
            .sasl
            .get_or_insert_with(|| accounts.begin())
            .step(token, &accounts.passwords),
        None => crate::sasl::Step::Failed(
            "the server has no SASL accounts (no JAAS Server section with a DigestLoginModule)"
                .into(),
        ),
    };
    let mut out = BytesMut::new();
    match step {
        crate::sasl::Step::Continue(token) => {
            encode_reply_record(&mut out, xid, 0, &SetSaslResponse { token });
            conn.send_in_turn(out.freeze());
            Continue::Yes
        }
        crate::sasl::Step::Done { token, user } => {
            conn.sasl = None;
            tracing::info!(addr = %conn.addr, user = %user, "SASL authenticated");
            if shared.config.super_user.as_deref() == Some(user.as_str()) {
                add_identity(&mut conn.auth, Id::new("super", ""));
            }
            add_identity(&mut conn.auth, Id::new("sasl", user));
            encode_reply_record(&mut out, xid, 0, &SetSaslResponse { token });
            conn.send_in_turn(out.freeze());
            Continue::Yes
        }
        crate::sasl::Step::Failed(why) => {
            conn.sasl = None;
            shared.stats.auth_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(addr = %conn.addr, "SASL authentication failed: {why}; closing");
            encode_header_reply(&mut out, xid, 0, ErrorCode::AuthFailed);
            Continue::RefuseLater {
                frame: out.freeze(),
                reason: format!("SASL authentication failed: {why}"),
            }
        }
    }
}

/// `enforce.auth.enabled`: a request before the client authenticated with
/// an enforced scheme gets SessionClosedRequireSaslAuth and the connection
/// closes (ZooKeeper's AuthenticationHelper).
fn refuse_unauthenticated(conn: &mut ConnState, xid: i32, enforced: &[String]) -> Continue {
    tracing::warn!(
        addr = %conn.addr,
        held = ?conn.auth.iter().map(|id| id.scheme.as_str()).collect::<Vec<_>>(),
        ?enforced,
        "request before authentication with an enforced scheme; closing the session's connection"
    );
    let mut out = BytesMut::new();
    encode_header_reply(&mut out, xid, 0, ErrorCode::SessionClosedRequireSaslAuth);
    refuse_and_close(
        conn,
        out.freeze(),
        "not authenticated with an enforced scheme".into(),
    )
}

/// Sends a refusal and closes the connection after it; behind a reply still
/// owed (a pending ConnectResponse), both wait their turn.
fn refuse_and_close(conn: &mut ConnState, frame: Bytes, reason: String) -> Continue {
    if conn.pending.is_empty() {
        conn.send(frame);
        conn.close();
        return Continue::No(reason);
    }
    conn.pending.push_back(Pending::Ready(frame));
    conn.pending.push_back(Pending::Close);
    Continue::Yes
}

/// What ZooKeeper's ReadOnlyRequestProcessor answers to a request a read-only
/// server cannot carry out: NotReadOnly for writes, `sync` and `reconfig`;
/// closing the session closes the connection. Reads, pings, watches and auth
/// take the usual way.
fn refuse_on_read_only(conn: &mut ConnState, xid: i32, zxid: i64, request: &Request) -> Continue {
    let mut out = BytesMut::new();
    if matches!(request, Request::CloseSession) {
        encode_header_reply(&mut out, xid, zxid, ErrorCode::Ok);
        conn.send(out.freeze());
        conn.close();
        return Continue::No("read-only session closed".into());
    }
    encode_header_reply(&mut out, xid, zxid, ErrorCode::NotReadOnly);
    conn.send(out.freeze());
    Continue::Yes
}

/// Opcodes whose requests go through the log (and so use a zxid even when
/// their body cannot be decoded).
fn is_write_opcode(opcode: i32) -> bool {
    use corral_proto::OpCode::*;
    matches!(
        corral_proto::OpCode::from_code(opcode),
        Some(
            Create
                | Create2
                | CreateContainer
                | CreateTtl
                | Delete
                | SetData
                | SetAcl
                | Check
                | Multi
        )
    )
}

/// A connection's identities form a set, as in ZooKeeper's ServerCnxn.
fn add_identity(auth: &mut Vec<Id>, id: Id) {
    if !auth.contains(&id) {
        auth.push(id);
    }
}

/// Drains the connection's outbound queue, one `write` per batch of frames.
/// With a [`DirectSocket`], tells it when the queue is empty, so that watch
/// events may be sent straight to the socket again.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
    direct: Option<Arc<DirectSocket>>,
) {
    let mut batch = BytesMut::with_capacity(16 * 1024);
    let mut carried: Option<Outbound> = None;
    'outer: loop {
        let first = match carried.take() {
            Some(msg) => msg,
            None => match rx.recv().await {
                Some(msg) => msg,
                None => break,
            },
        };
        let mut close = false;
        let mut frames = 0u64;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Outbound::Frame(frame) => {
                    batch.extend_from_slice(&frame);
                    frames += 1;
                }
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            if batch.len() < WRITE_BATCH_BYTES_MAX {
                next = rx.try_recv().ok();
            }
        }
        queued.fetch_sub(
            batch.len().min(queued.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        shared
            .stats
            .packets_sent
            .fetch_add(frames, Ordering::Relaxed);
        if !batch.is_empty() && wr.write_all(&batch).await.is_err() {
            break 'outer;
        }
        batch.clear();
        if close {
            break;
        }
        if let Some(direct) = &direct {
            carried = direct.next_or_idle(&mut rx);
        }
    }
    let _ = wr.shutdown().await;
}
