//! The session task: one per client, the only owner of the socket.
//!
//! It connects (hosts in shuffled order, resending session id, password and
//! `lastZxidSeen` on reconnect, then auth and setWatches pipelined right
//! behind the ConnectRequest), pipelines requests (xids in order; ZooKeeper
//! answers each session's requests in order, so replies are matched FIFO),
//! pings after a third of the session timeout without sending, declares the
//! connection dead after two thirds without receiving, and hands each reply
//! to its caller and each notification to the watch manager.
//!
//! When a connection drops, requests in flight fail with ConnectionLoss and
//! the task tries the next server until the session timeout has passed
//! (then the session is Expired). Requests not yet sent stay queued and go
//! out on the next connection. Expired, AuthFailed and Closed are terminal:
//! everything still queued fails and the task ends — except Expired when
//! the builder asked for renewal: then the expiry is reported (state,
//! watchers, requests in flight) and the task goes on with a new session.
//!
//! Bounded everywhere: the request queue (a bounded channel the callers
//! wait on), requests in flight, bytes buffered for writing, and the frame
//! size in both directions.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use corral_proto::jute::default_field_len_max;
use corral_proto::opcode::xid;
use corral_proto::records::{AuthPacket, ConnectRequest, ConnectResponse, WatcherEvent};
use corral_proto::response::encode_connect_request;
use corral_proto::{
    decode_frame, decode_record, decode_reply, AddWatchMode, ErrorCode, KeeperState, OpCode,
    Record, Request, Response,
};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::connect_string::HostPort;
use crate::error::Error;
use crate::state::SessionState;
use crate::watch::{Registration, WatchManager};

/// Stop taking new requests while this many bytes wait to be written.
const OUT_BUFFER_SOFT_MAX_BYTES: usize = 256 * 1024;
/// Read at least this much per read call.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// The shortest time given to one connection attempt.
const ATTEMPT_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// Pause between rounds over every host: random up to this, doubling.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long `close` waits for the server to confirm closeSession.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the task needs to know from the builder.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    /// Already shuffled.
    pub hosts: Vec<HostPort>,
    /// Printable host list for errors.
    pub hosts_display: String,
    pub session_timeout: Duration,
    /// How long a new session may take to be established.
    pub connect_timeout: Duration,
    pub can_be_read_only: bool,
    pub max_in_flight: usize,
    /// `jute.maxbuffer`: the largest request frame sent.
    pub max_packet_bytes: usize,
    /// Reattach to this session instead of creating one.
    pub session: Option<(i64, Vec<u8>)>,
    /// Sent on every connection, before any request.
    pub auth: Vec<(String, Vec<u8>)>,
    /// After an expiry, start a new session instead of ending (Curator's
    /// new ZooKeeper handle after LOST).
    pub renew_expired: bool,
}

/// A caller's request to the task.
#[derive(Debug)]
pub(crate) enum Command {
    Op {
        request: Request,
        reply: oneshot::Sender<Result<Response, Error>>,
        watch: Option<Registration>,
    },
    Auth {
        scheme: String,
        auth: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

impl Command {
    fn fail(self, error: Error) {
        match self {
            Command::Op { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Auth { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What the client handles can read about the session without asking the
/// task.
#[derive(Debug, Default)]
pub(crate) struct SessionInfo {
    pub session_id: i64,
    pub password: Vec<u8>,
    pub negotiated_timeout: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub info: Mutex<SessionInfo>,
    pub last_zxid: AtomicI64,
    /// Sessions that expired under a renewing client: a recipe that saw
    /// a lower count knows its ephemerals and watches are gone.
    pub sessions_expired: AtomicU64,
}

impl Shared {
    pub(crate) fn info(&self) -> std::sync::MutexGuard<'_, SessionInfo> {
        self.info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The channels the task is driven through.
pub(crate) struct TaskChannels {
    pub commands: mpsc::Receiver<Command>,
    /// `true`, or the sender dropped, means close.
    pub close: watch::Receiver<bool>,
    pub state: watch::Sender<SessionState>,
}

struct Pending {
    xid: i32,
    opcode: OpCode,
    /// `None` for closeSession, which nobody waits on directly.
    reply: Option<oneshot::Sender<Result<Response, Error>>>,
    watch: Option<Registration>,
}

struct AuthWaiter {
    scheme: String,
    auth: Vec<u8>,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// Why the task ends.
#[derive(Debug)]
enum Terminal {
    Closed,
    Expired,
    AuthFailed,
    /// No server reachable for a new session.
    ConnectFailed(Error),
}

/// Why one connection ended.
enum ServeEnd {
    Lost(String),
    Terminal(Terminal),
}

struct Connection {
    stream: TcpStream,
    /// Bytes read after the ConnectResponse.
    inbuf: BytesMut,
    read_only: bool,
    host: HostPort,
}

enum Handshake {
    Connected(Connection),
    Expired,
}

enum Event {
    Close,
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Command(Option<Command>),
    Timer,
}

pub(crate) struct SessionTask {
    config: SessionConfig,
    next_host: usize,
    channels: TaskChannels,
    /// Answered once the first connection (with its auth) is up, or with
    /// the error that ended the task before that.
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    shared: Arc<Shared>,
    session_id: i64,
    password: Vec<u8>,
    negotiated_timeout: Duration,
    last_zxid: i64,
    auth: Vec<(String, Vec<u8>)>,
    watches: WatchManager,
    pending: VecDeque<Pending>,
    /// Auth replies (xid -4) in the order the packets went out on this
    /// connection; `None` for credentials resent at connect.
    auth_waiters: VecDeque<Option<AuthWaiter>>,
    /// Resent credentials not yet answered on this connection; the client
    /// counts as ready once they are.
    handshake_auths: usize,
    next_xid: i32,
}

impl SessionTask {
    pub(crate) fn new(
        config: SessionConfig,
        watches: WatchManager,
        channels: TaskChannels,
        ready: oneshot::Sender<Result<(), Error>>,
        shared: Arc<Shared>,
    ) -> SessionTask {
        let (session_id, password) = config.session.clone().unwrap_or((0, vec![0; 16]));
        let auth = config.auth.clone();
        let negotiated_timeout = config.session_timeout;
        SessionTask {
            config,
            next_host: 0,
            channels,
            ready: Some(ready),
            shared,
            session_id,
            password,
            negotiated_timeout,
            last_zxid: 0,
            auth,
            watches,
            pending: VecDeque::new(),
            auth_waiters: VecDeque::new(),
            handshake_auths: 0,
            next_xid: 1,
        }
    }

    /// Runs the session to its end.
    pub(crate) async fn run(mut self) {
        let terminal = self.run_until_terminal().await;
        self.finish(terminal).await;
    }

    async fn run_until_terminal(&mut self) -> Terminal {
        let mut deadline = Instant::now()
            + if self.session_id == 0 {
                self.config.connect_timeout
            } else {
                self.config.session_timeout
            };
        loop {
            let conn = match self.connect(deadline).await {
                Ok(conn) => conn,
                // A session existed (the client was handed out) and the
                // application asked for a new one after an expiry.
                Err(Terminal::Expired) if self.config.renew_expired && self.ready.is_none() => {
                    self.expire_and_renew();
                    deadline = Instant::now() + self.config.connect_timeout;
                    continue;
                }
                // No server for the replacement session yet: keep trying
                // (Curator retries forever too); `close` still ends it.
                Err(Terminal::ConnectFailed(e))
                    if self.config.renew_expired && self.ready.is_none() =>
                {
                    tracing::warn!(error = %e, "no server for a new session yet; still trying");
                    deadline = Instant::now() + self.config.connect_timeout;
                    continue;
                }
                Err(terminal) => return terminal,
            };
            let state = if conn.read_only {
                SessionState::ConnectedReadOnly
            } else {
                SessionState::Connected
            };
            tracing::debug!(
                host = %conn.host,
                session = format_args!("{:#x}", self.session_id),
                timeout_ms = self.negotiated_timeout.as_millis() as u64,
                "connected"
            );
            self.channels.state.send_replace(state);
            self.watches.session_event(state.keeper_state());
            match self.serve(conn).await {
                ServeEnd::Terminal(terminal) => return terminal,
                ServeEnd::Lost(reason) => {
                    tracing::info!(
                        session = format_args!("{:#x}", self.session_id),
                        %reason,
                        "connection lost; reconnecting"
                    );
                    self.fail_in_flight(&Error::ConnectionLoss);
                    self.channels.state.send_replace(SessionState::Disconnected);
                    self.watches
                        .session_event(SessionState::Disconnected.keeper_state());
                    deadline = Instant::now() + self.negotiated_timeout;
                }
            }
        }
    }

    /// The session expired and a new one is wanted: report the expiry as
    /// a terminal task would (state Expired, every watcher resolved with
    /// it, requests in flight failed with SessionExpired), then forget the
    /// session so that the next connection asks for a new one. Requests
    /// still queued go out on the new session; credentials are resent.
    fn expire_and_renew(&mut self) {
        tracing::info!(
            session = format_args!("{:#x}", self.session_id),
            "session expired; starting a new session"
        );
        self.channels.state.send_replace(SessionState::Expired);
        self.fail_in_flight(&Error::SessionExpired);
        self.watches.terminate(KeeperState::Expired);
        self.session_id = 0;
        self.password = vec![0; 16];
        self.negotiated_timeout = self.config.session_timeout;
        {
            let mut info = self.shared.info();
            info.session_id = 0;
            info.password = self.password.clone();
        }
        self.shared.sessions_expired.fetch_add(1, Ordering::Relaxed);
        self.channels.state.send_replace(SessionState::Connecting);
    }

    /// Publishes the final state and fails everything still waiting.
    async fn finish(&mut self, terminal: Terminal) {
        let (state, error) = match terminal {
            Terminal::Closed => (SessionState::Closed, Error::ClientClosed),
            Terminal::Expired => (SessionState::Expired, Error::SessionExpired),
            Terminal::AuthFailed => (SessionState::AuthFailed, Error::AuthFailed),
            Terminal::ConnectFailed(error) => (SessionState::Closed, error),
        };
        tracing::debug!(
            session = format_args!("{:#x}", self.session_id),
            ?state,
            "session ended"
        );
        self.channels.state.send_replace(state);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error.clone()));
        }
        self.fail_in_flight(&error);
        self.watches.terminate(state.keeper_state());
        self.channels.commands.close();
        while let Some(command) = self.channels.commands.recv().await {
            command.fail(error.clone());
        }
    }

    fn fail_in_flight(&mut self, error: &Error) {
        for pending in self.pending.drain(..) {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        for waiter in self.auth_waiters.drain(..).flatten() {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        self.handshake_auths = 0;
    }

    fn in_flight(&self) -> usize {
        self.pending.len() + self.auth_waiters.len()
    }

    fn incoming_frame_max(&self) -> usize {
        default_field_len_max(self.config.max_packet_bytes)
    }

    /// Tries the hosts in turn until one accepts the session, `deadline`
    /// passes, or the client is closed.
    async fn connect(&mut self, deadline: Instant) -> Result<Connection, Terminal> {
        let mut close = self.channels.close.clone();
        let hosts_len = self.config.hosts.len().max(1);
        let mut failures_in_round = 0;
        let mut backoff = BACKOFF_START;
        let mut last_error = String::from("no attempt made");
        loop {
            if close_requested(&close) {
                return Err(Terminal::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.give_up(last_error));
            }
            let host = self.config.hosts[self.next_host % hosts_len].clone();
            self.next_host = (self.next_host + 1) % hosts_len;
            let attempt = (self.config.session_timeout / hosts_len as u32)
                .max(ATTEMPT_TIMEOUT_MIN)
                .min(deadline - now);
            let outcome = tokio::select! {
                biased;
                _ = wait_for_close(&mut close) => return Err(Terminal::Closed),
                outcome = tokio::time::timeout(attempt, self.handshake(&host)) => outcome,
            };
            match outcome {
                Ok(Ok(Handshake::Connected(conn))) => return Ok(conn),
                Ok(Ok(Handshake::Expired)) => return Err(Terminal::Expired),
                Ok(Err(e)) => last_error = format!("{host}: {e}"),
                Err(_) => last_error = format!("{host}: no answer within {attempt:?}"),
            }
            tracing::debug!(%last_error, "connection attempt failed");
            failures_in_round += 1;
            if failures_in_round >= hosts_len {
                failures_in_round = 0;
                let remaining = deadline.saturating_duration_since(Instant::now());
                let pause = rand::thread_rng()
                    .gen_range(Duration::ZERO..=backoff)
                    .min(remaining);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    biased;
                    _ = wait_for_close(&mut close) => return Err(Terminal::Closed),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    fn give_up(&self, last_error: String) -> Terminal {
        if self.session_id == 0 {
            Terminal::ConnectFailed(Error::ConnectFailed {
                hosts: self.config.hosts_display.clone(),
                last_error,
            })
        } else {
            tracing::info!(
                session = format_args!("{:#x}", self.session_id),
                %last_error,
                "no server reachable within the session timeout; session expired"
            );
            Terminal::Expired
        }
    }

    /// One connection attempt: TCP connect, then ConnectRequest with the
    /// credentials and setWatches pipelined behind it, then the
    /// ConnectResponse.
    async fn handshake(&mut self, host: &HostPort) -> Result<Handshake, String> {
        let addrs = tokio::net::lookup_host((host.host.as_str(), host.port))
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?;
        let mut last_error = String::from("resolved to no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = format!("{addr}: {e}"),
            }
        }
        let mut stream = stream.ok_or(last_error)?;
        // Small frames are the norm; don't let Nagle delay them.
        let _ = stream.set_nodelay(true);

        let mut out = BytesMut::with_capacity(512);
        encode_connect_request(
            &mut out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: self.last_zxid,
                timeout_ms: duration_ms_i32(self.config.session_timeout),
                session_id: self.session_id,
                passwd: self.password.clone(),
                read_only: Some(self.config.can_be_read_only),
            },
        );
        self.auth_waiters.clear();
        for (scheme, auth) in &self.auth {
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: scheme.clone(),
                auth: Some(auth.clone()),
            })
            .encode(xid::AUTH, &mut out);
            self.auth_waiters.push_back(None);
        }
        self.handshake_auths = self.auth.len();
        if self.session_id != 0 {
            self.watches.encode_set_watches(self.last_zxid, &mut out);
        }
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;

        let mut inbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let frame = loop {
            match decode_frame(&mut inbuf, self.incoming_frame_max()) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read_buf(&mut inbuf).await {
                Ok(0) => {
                    return Err("closed by the server during the handshake (it may be \
                                behind the last zxid this client saw)"
                        .into())
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let response: ConnectResponse = decode_record(&frame, self.incoming_frame_max())
            .map_err(|e| format!("bad ConnectResponse: {e}"))?;
        if response.timeout_ms <= 0 {
            return Ok(Handshake::Expired);
        }
        self.session_id = response.session_id;
        self.password = response.passwd;
        self.negotiated_timeout = Duration::from_millis(response.timeout_ms as u64);
        {
            let mut info = self.shared.info();
            info.session_id = self.session_id;
            info.password = self.password.clone();
            info.negotiated_timeout = self.negotiated_timeout;
        }
        Ok(Handshake::Connected(Connection {
            stream,
            inbuf,
            read_only: response.read_only == Some(true),
            host: host.clone(),
        }))
    }

    /// Drives one established connection until it drops or the session
    /// ends.
    async fn serve(&mut self, conn: Connection) -> ServeEnd {
        let Connection {
            mut stream,
            mut inbuf,
            ..
        } = conn;
        let (mut reader, mut writer) = stream.split();
        let mut out = BytesMut::new();
        let timeout = self.negotiated_timeout;
        let ping_every = timeout / 3;
        let read_timeout = timeout * 2 / 3;
        let mut last_send = Instant::now();
        let mut last_recv = Instant::now();
        let mut close_deadline: Option<Instant> = None;
        let mut close = self.channels.close.clone();

        if let Err(end) = self.process_frames(&mut inbuf) {
            return end;
        }
        self.signal_ready_when_authenticated();
        loop {
            if inbuf.capacity() - inbuf.len() < READ_CHUNK_BYTES {
                inbuf.reserve(READ_CHUNK_BYTES);
            }
            let accepting = close_deadline.is_none()
                && self.in_flight() < self.config.max_in_flight
                && out.len() < OUT_BUFFER_SOFT_MAX_BYTES;
            let mut wake = (last_send + ping_every).min(last_recv + read_timeout);
            if let Some(deadline) = close_deadline {
                wake = wake.min(deadline);
            }
            let event = tokio::select! {
                biased;
                _ = wait_for_close(&mut close), if close_deadline.is_none() => Event::Close,
                r = reader.read_buf(&mut inbuf) => Event::Read(r),
                r = writer.write(&out), if !out.is_empty() => Event::Wrote(r),
                command = self.channels.commands.recv(), if accepting => Event::Command(command),
                _ = tokio::time::sleep_until(wake) => Event::Timer,
            };
            let now = Instant::now();
            match event {
                Event::Close | Event::Command(None) => {
                    self.begin_close(&mut out);
                    close_deadline = Some(now + CLOSE_REPLY_TIMEOUT.min(timeout));
                }
                Event::Read(Ok(0)) => {
                    if close_deadline.is_some() {
                        return ServeEnd::Terminal(Terminal::Closed);
                    }
                    return ServeEnd::Lost("the server closed the connection".into());
                }
                Event::Read(Err(e)) => return ServeEnd::Lost(format!("read: {e}")),
                Event::Read(Ok(_)) => {
                    last_recv = now;
                    if let Err(end) = self.process_frames(&mut inbuf) {
                        return end;
                    }
                    self.signal_ready_when_authenticated();
                }
                Event::Wrote(Ok(0)) => return ServeEnd::Lost("write returned 0".into()),
                Event::Wrote(Ok(n)) => {
                    out.advance(n);
                    last_send = now;
                }
                Event::Wrote(Err(e)) => return ServeEnd::Lost(format!("write: {e}")),
                Event::Command(Some(command)) => {
                    self.submit(command, &mut out);
                    while self.in_flight() < self.config.max_in_flight
                        && out.len() < OUT_BUFFER_SOFT_MAX_BYTES
                    {
                        match self.channels.commands.try_recv() {
                            Ok(command) => self.submit(command, &mut out),
                            Err(_) => break,
                        }
                    }
                }
                Event::Timer => {
                    if close_deadline.is_some_and(|deadline| now >= deadline) {
                        return ServeEnd::Terminal(Terminal::Closed);
                    }
                    if now >= last_recv + read_timeout {
                        return ServeEnd::Lost(format!(
                            "nothing received from the server for {read_timeout:?}"
                        ));
                    }
                    if now >= last_send + ping_every {
                        if out.is_empty() {
                            Request::Ping.encode(xid::PING, &mut out);
                        }
                        // A write in progress counts as sending.
                        last_send = now;
                    }
                }
            }
        }
    }

    fn signal_ready_when_authenticated(&mut self) {
        if self.handshake_auths == 0 {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
    }

    fn next_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    /// A ZooKeeper 3.8 server keeps one watch mode per path and session,
    /// the latest added (ZOOKEEPER-4466, changed in 3.9): a persistent watch
    /// added on a path where this client already has, or is adding, a
    /// recursive one would silently end the recursive one's events from
    /// below the path. Ask for a recursive watch instead: the persistent
    /// watcher still gets every event on its path (the local tables tell
    /// them apart) except that path's NodeChildrenChanged, which recursive
    /// watches do not carry. (Two caches on one path raced on this.)
    fn keep_recursive(&self, request: Request) -> Request {
        match request {
            Request::AddWatch(mut add)
                if add.mode == AddWatchMode::Persistent.code()
                    && (self.watches.has_recursive(&add.path)
                        || self.pending.iter().any(|p| {
                            matches!(&p.watch, Some(Registration::Persistent { path, recursive: true, .. }) if *path == add.path)
                        })) =>
            {
                add.mode = AddWatchMode::PersistentRecursive.code();
                Request::AddWatch(add)
            }
            other => other,
        }
    }

    /// Encodes a caller's request into the write buffer and queues its
    /// reply slot.
    fn submit(&mut self, command: Command, out: &mut BytesMut) {
        match command {
            Command::Op {
                request,
                reply,
                watch,
            } => {
                if reply.is_closed() {
                    // The caller gave up before it was sent: don't send it.
                    return;
                }
                let request = self.keep_recursive(request);
                let xid = self.next_xid();
                let start = out.len();
                request.encode(xid, out);
                let len_bytes = out.len() - start - 4;
                if len_bytes > self.config.max_packet_bytes {
                    out.truncate(start);
                    let _ = reply.send(Err(Error::PacketTooLarge {
                        len_bytes,
                        max_bytes: self.config.max_packet_bytes,
                    }));
                    return;
                }
                self.pending.push_back(Pending {
                    xid,
                    opcode: request.opcode(),
                    reply: Some(reply),
                    watch,
                });
            }
            Command::Auth {
                scheme,
                auth,
                reply,
            } => {
                let packet = AuthPacket {
                    auth_type: 0,
                    scheme,
                    auth: Some(auth),
                };
                Request::Auth(packet.clone()).encode(xid::AUTH, out);
                self.auth_waiters.push_back(Some(AuthWaiter {
                    scheme: packet.scheme,
                    auth: packet.auth.unwrap_or_default(),
                    reply,
                }));
            }
        }
    }

    fn begin_close(&mut self, out: &mut BytesMut) {
        let xid = self.next_xid();
        Request::CloseSession.encode(xid, out);
        self.pending.push_back(Pending {
            xid,
            opcode: OpCode::CloseSession,
            reply: None,
            watch: None,
        });
    }

    fn process_frames(&mut self, inbuf: &mut BytesMut) -> Result<(), ServeEnd> {
        loop {
            match decode_frame(inbuf, self.incoming_frame_max()) {
                Ok(Some(frame)) => self.process_frame(&frame)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ServeEnd::Lost(format!("bad frame from the server: {e}"))),
            }
        }
    }

    /// Handles one frame from the server: a notification, a reply to a
    /// special xid, or the reply to the oldest request in flight.
    fn process_frame(&mut self, frame: &[u8]) -> Result<(), ServeEnd> {
        let protocol = |what: String| ServeEnd::Lost(format!("protocol error: {what}"));
        let (header, mut r) = decode_reply(frame, self.incoming_frame_max())
            .map_err(|e| protocol(format!("reply header: {e}")))?;
        match header.xid {
            xid::NOTIFICATION => {
                let event = WatcherEvent::read(&mut r)
                    .map_err(|e| protocol(format!("watch event: {e}")))?;
                self.watches.dispatch(&event);
            }
            xid::PING => {}
            xid::AUTH => return self.process_auth_reply(header.err),
            xid::SET_WATCHES => {
                if header.err != 0 {
                    tracing::warn!(
                        err = header.err,
                        "the server refused to re-register watches"
                    );
                }
            }
            reply_xid => {
                let Some(pending) = self.pending.pop_front() else {
                    return Err(protocol(format!(
                        "reply xid {reply_xid} with nothing in flight"
                    )));
                };
                if pending.xid != reply_xid {
                    return Err(protocol(format!(
                        "xid out of order: expected {}, got {reply_xid}",
                        pending.xid
                    )));
                }
                if header.zxid > 0 {
                    self.last_zxid = header.zxid;
                    self.shared.last_zxid.store(header.zxid, Ordering::Relaxed);
                }
                if pending.opcode == OpCode::CloseSession {
                    return Err(ServeEnd::Terminal(Terminal::Closed));
                }
                let result = if header.err == 0 {
                    Response::read(pending.opcode, &mut r)
                        .map_err(|e| Error::Protocol(format!("{:?} reply: {e}", pending.opcode)))
                } else {
                    Err(Error::from_code(header.err))
                };
                if let Some(registration) = pending.watch {
                    if result.is_ok() || header.err != 0 {
                        self.watches.register(registration, header.err);
                    }
                }
                if let Some(reply) = pending.reply {
                    let _ = reply.send(result);
                }
            }
        }
        Ok(())
    }

    fn process_auth_reply(&mut self, err: i32) -> Result<(), ServeEnd> {
        let waiter = match self.auth_waiters.pop_front() {
            Some(Some(waiter)) => Some(waiter),
            Some(None) => {
                self.handshake_auths = self.handshake_auths.saturating_sub(1);
                None
            }
            None => {
                tracing::warn!(err, "auth reply with no auth in flight ignored");
                return Ok(());
            }
        };
        if err == ErrorCode::AuthFailed.code() {
            if let Some(waiter) = waiter {
                let _ = waiter.reply.send(Err(Error::AuthFailed));
            }
            return Err(ServeEnd::Terminal(Terminal::AuthFailed));
        }
        if let Some(waiter) = waiter {
            if err == 0 {
                self.auth.push((waiter.scheme, waiter.auth));
                let _ = waiter.reply.send(Ok(()));
            } else {
                let _ = waiter.reply.send(Err(Error::from_code(err)));
            }
        }
        Ok(())
    }
}

fn close_requested(close: &watch::Receiver<bool>) -> bool {
    *close.borrow() || close.has_changed().is_err()
}

/// Resolves once close is requested (or every client handle is gone).
async fn wait_for_close(close: &mut watch::Receiver<bool>) {
    loop {
        if *close.borrow_and_update() {
            return;
        }
        if close.changed().await.is_err() {
            return;
        }
    }
}

fn duration_ms_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
