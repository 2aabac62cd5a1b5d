//! The server's shared state: the tree, the watch registry, the sessions and
//! the connections, behind one mutex.
//!
//! Why one lock: a read and its watch registration must not interleave with
//! an apply (or an event would be lost), and a connection's events and
//! replies must be queued in the order the state changed. Everything done
//! under the lock is in-memory and short; no blocking I/O and no `.await`
//! happens while it is held. Frames are handed to each connection's writer
//! task through its outbound queue; watch events may instead be written
//! straight to an idle plain-TCP socket with a non-blocking send
//! ([`DirectSocket`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use corral_proto::request::{CreateKind, Request};
use corral_proto::{ErrorCode, EventType, Id, KeeperState};
use corral_tree::DataTree;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::config::ServerConfig;
use crate::session::SessionTracker;
use crate::stats::ServerStats;
use crate::watch::{ConnId, WatchRegistry};

/// Bytes queued for one connection's socket before it counts as a slow
/// consumer and is closed.
pub const OUTBOUND_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A second handle on a plain TCP connection's socket, so that a watch event
/// can be sent from where it fires instead of through the writer task.
///
/// Why: an event fanned out to 1000 watchers was 1000 task wake-ups and
/// queue hand-offs before the first byte left; the sends themselves are
/// the same either way. The socket is non-blocking (tokio set it so), and a
/// frame goes straight out only when the writer task has nothing queued or
/// half-written, so that frames leave in the order they were produced.
pub struct DirectSocket {
    socket: std::net::TcpStream,
    /// True while frames are queued for the writer task or being written by
    /// it. Senders set it when they queue; the writer clears it when its
    /// queue is empty. Both do so under this lock, which also covers the
    /// queueing itself, so a direct send can never overtake a queued frame.
    writer_busy: Mutex<bool>,
}

impl DirectSocket {
    pub fn new(socket: std::net::TcpStream) -> DirectSocket {
        DirectSocket {
            socket,
            writer_busy: Mutex::new(false),
        }
    }

    /// Called by the writer task after a write: keeps the writer marked busy
    /// and returns the next queued message if there is one, marks it idle
    /// otherwise.
    pub fn next_or_idle(&self, rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Option<Outbound> {
        let mut busy = self.writer_busy.lock();
        match rx.try_recv() {
            Ok(next) => Some(next),
            Err(_) => {
                *busy = false;
                None
            }
        }
    }
}

/// What a connection's writer task receives.
pub enum Outbound {
    Frame(Bytes),
    /// Flush what came before, then close the socket.
    Close,
}

/// The shape of the reply a write waits for.
#[derive(Debug, Clone)]
pub enum ReplyShape {
    /// A new session's ConnectResponse (with a readOnly byte or not).
    Connect {
        timeout_ms: i32,
        read_only_byte: bool,
    },
    Create(CreateKind),
    Delete,
    SetData,
    SetAcl,
    Check,
    /// One entry per sub-op: the create kind for creates.
    Multi(Vec<Option<CreateKind>>),
    CloseSession,
    /// A GetDataResponse with the new `/zookeeper/config`.
    Reconfig,
}

/// A request of a connection waiting for an earlier write to be applied.
pub enum Pending {
    Write {
        xid: i32,
        shape: ReplyShape,
        received: Instant,
    },
    /// Reads wait behind the session's earlier writes so that they see them.
    Read {
        xid: i32,
        request: Request,
        received: Instant,
    },
    /// A reply already built (auth) that must not overtake earlier replies.
    Ready(Bytes),
    /// Close the connection once everything before it has gone out.
    Close,
    /// A `sync` waiting for the leader's read index to be applied here.
    Sync {
        xid: i32,
        request: Request,
        received: Instant,
        ready: bool,
    },
}

/// One client connection on this server.
pub struct ConnState {
    pub addr: SocketAddr,
    pub session_id: i64,
    pub timeout_ms: i32,
    /// Accepted by this server while it had no quorum (read-only mode): reads
    /// only, and the session is this server's alone (it is not in the log).
    pub read_only: bool,
    /// Came in on `secureClientPort` (TLS).
    pub secure: bool,
    /// A SASL exchange under way.
    pub sasl: Option<crate::sasl::DigestMd5Server>,
    /// `ip:<addr>` first, then ids added by `auth`.
    pub auth: Vec<Id>,
    pub pending: VecDeque<Pending>,
    out: mpsc::UnboundedSender<Outbound>,
    pub queued_bytes: Arc<AtomicUsize>,
    /// Plain TCP connections only (not TLS).
    direct: Option<Arc<DirectSocket>>,
    /// Wakes the reader to stop (session closed or expired).
    pub stop: Arc<Notify>,
    pub established: Instant,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub last_xid: i32,
    pub last_zxid: i64,
    pub last_op: &'static str,
    pub latency_min_ms: i64,
    pub latency_max_ms: i64,
    pub latency_total_ms: i64,
    pub latency_count: i64,
    server_stats: Arc<ServerStats>,
}

impl ConnState {
    pub fn new(
        addr: SocketAddr,
        out: mpsc::UnboundedSender<Outbound>,
        queued_bytes: Arc<AtomicUsize>,
        stop: Arc<Notify>,
        server_stats: Arc<ServerStats>,
    ) -> ConnState {
        ConnState {
            server_stats,
            addr,
            session_id: 0,
            timeout_ms: 0,
            read_only: false,
            secure: false,
            sasl: None,
            auth: vec![Id::new("ip", addr.ip().to_string())],
            pending: VecDeque::new(),
            out,
            queued_bytes,
            direct: None,
            stop,
            established: Instant::now(),
            packets_received: 0,
            packets_sent: 0,
            last_xid: 0,
            last_zxid: 0,
            last_op: "NA",
            latency_min_ms: 0,
            latency_max_ms: 0,
            latency_total_ms: 0,
            latency_count: 0,
        }
    }

    /// Lets watch events go straight to this connection's socket.
    pub fn set_direct(&mut self, direct: Arc<DirectSocket>) {
        self.direct = Some(direct);
    }

    /// Sends a frame now if the socket allows (a plain TCP connection whose
    /// writer has nothing queued), else queues it like [`ConnState::send`].
    pub fn send_now(&mut self, frame: Bytes) {
        let Some(direct) = self.direct.clone() else {
            self.send(frame);
            return;
        };
        let mut busy = direct.writer_busy.lock();
        let mut rest = frame;
        if !*busy {
            use std::io::Write;
            // Any error (would block, reset) leaves the frame to the writer
            // task, which waits for the socket or reports the error.
            if let Ok(n) = (&direct.socket).write(&rest) {
                if n == rest.len() {
                    self.packets_sent += 1;
                    self.server_stats
                        .packets_sent
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                rest = rest.slice(n..);
            }
        }
        *busy = true;
        self.enqueue(rest);
    }

    /// Queues a frame for the socket. A connection that does not drain its
    /// queue is closed rather than allowed to grow memory without bound.
    pub fn send(&mut self, frame: Bytes) {
        self.with_writer_busy(|conn| conn.enqueue(frame));
    }

    /// Runs `queue` with the writer task marked busy, under the direct
    /// socket's lock if there is one, so that no direct send overtakes what
    /// `queue` hands to the writer.
    fn with_writer_busy(&mut self, queue: impl FnOnce(&mut Self)) {
        match self.direct.clone() {
            Some(direct) => {
                let mut busy = direct.writer_busy.lock();
                *busy = true;
                queue(self);
            }
            None => queue(self),
        }
    }

    /// Hands a frame to the writer task (the caller holds the direct
    /// socket's lock, if any, with the writer marked busy).
    fn enqueue(&mut self, frame: Bytes) {
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        self.packets_sent += 1;
        if queued > OUTBOUND_BYTES_MAX {
            tracing::warn!(addr = %self.addr, queued, "client does not read its replies; closing");
            self.queue_close();
            return;
        }
        let _ = self.out.send(Outbound::Frame(frame));
    }

    /// Sends a reply that is ready now but must not overtake the replies
    /// this connection still owes (writes in flight, reads behind them).
    pub fn send_in_turn(&mut self, frame: Bytes) {
        if self.pending.is_empty() {
            self.send(frame);
        } else {
            self.pending.push_back(Pending::Ready(frame));
        }
    }

    pub fn close(&mut self) {
        self.with_writer_busy(Self::queue_close);
    }

    /// Closes after what is queued (the caller marked the writer busy).
    fn queue_close(&mut self) {
        let _ = self.out.send(Outbound::Close);
        self.stop.notify_one();
    }

    /// Mean request latency in ms (0 before the first reply), as `cons` shows it.
    pub fn latency_avg_ms(&self) -> i64 {
        if self.latency_count > 0 {
            self.latency_total_ms / self.latency_count
        } else {
            0
        }
    }

    /// When the connection was accepted, in wall-clock ms (`cons`' `est`).
    pub fn established_wall_ms(&self) -> i64 {
        crate::write_path::wall_clock_ms() - self.established.elapsed().as_millis() as i64
    }

    pub fn record_reply(&mut self, op: &'static str, xid: i32, zxid: i64, received: Instant) {
        let ms = received.elapsed().as_millis() as i64;
        self.server_stats.record_latency(ms);
        if self.latency_count == 0 || ms < self.latency_min_ms {
            self.latency_min_ms = ms;
        }
        self.latency_max_ms = self.latency_max_ms.max(ms);
        self.latency_total_ms += ms;
        self.latency_count += 1;
        self.last_op = op;
        self.last_xid = xid;
        self.last_zxid = zxid;
    }
}

/// Everything behind the server's one lock.
pub struct Core {
    pub tree: DataTree,
    pub watches: WatchRegistry,
    pub sessions: SessionTracker,
    pub conns: HashMap<ConnId, ConnState>,
    /// Sessions touched since the last report to the leader.
    pub touched: std::collections::HashSet<i64>,
    next_session_id: i64,
}

impl Core {
    pub fn new(tree: DataTree, sessions: SessionTracker, first_session_id: i64) -> Core {
        Core {
            tree,
            watches: WatchRegistry::default(),
            sessions,
            conns: HashMap::new(),
            touched: Default::default(),
            next_session_id: first_session_id,
        }
    }

    pub fn allocate_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_session_id;
            self.next_session_id = self.next_session_id.wrapping_add(1);
            if id != 0 && self.sessions.get(id).is_none() {
                return id;
            }
        }
    }

    /// Queues watch events for `path` to every watching connection that may
    /// read the node (the ACL filter of ZooKeeper's CVE-2024-23944 fix).
    pub fn fire(&mut self, path: &str, event: EventType, acl: &[corral_proto::Acl]) {
        let targets = self.watches.trigger(path, event);
        if targets.is_empty() {
            return;
        }
        let mut frame = BytesMut::new();
        corral_proto::response::encode_watch_event(
            &mut frame,
            event,
            KeeperState::SyncConnected,
            path,
        );
        let frame = frame.freeze();
        for conn_id in targets {
            if let Some(conn) = self.conns.get_mut(&conn_id) {
                if self
                    .tree
                    .permits(acl, &conn.auth, corral_proto::perms::READ)
                {
                    conn.send_now(frame.clone());
                }
            }
        }
    }

    /// Closes every connection that waits for a write to be applied (used
    /// when the log refuses proposals: their outcome cannot be known here).
    pub fn drop_conns_with_pending_writes(&mut self) {
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pending.iter().any(|p| matches!(p, Pending::Write { .. })))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.drop_conn(id);
        }
    }

    /// Closes the connections accepted in read-only mode, as ZooKeeper's
    /// read-only server shuts down when its peer rejoins a quorum: their
    /// clients reconnect and get read-write sessions. Returns how many.
    pub fn drop_read_only_conns(&mut self) -> usize {
        self.drop_conns_where(|c| c.read_only)
    }

    /// Closes every other connection (a server that left its quorum).
    pub fn drop_read_write_conns(&mut self) -> usize {
        self.drop_conns_where(|c| !c.read_only)
    }

    fn drop_conns_where(&mut self, which: impl Fn(&ConnState) -> bool) -> usize {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| which(c))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.drop_conn(*id);
        }
        ids.len()
    }

    /// Closes a connection's socket and forgets it and its watches.
    pub fn drop_conn(&mut self, conn_id: ConnId) {
        if let Some(mut conn) = self.conns.remove(&conn_id) {
            conn.close();
            if let Some(s) = self.sessions.get_mut(conn.session_id) {
                if s.conn == Some(conn_id) {
                    s.conn = None;
                }
            }
        }
        self.watches.remove_conn(conn_id);
    }
}

/// Immutable wiring plus the locked core; one per server, shared by all
/// tasks.
pub struct Shared {
    pub config: ServerConfig,
    pub server_id: u64,
    pub core: Mutex<Core>,
    pub stats: Arc<ServerStats>,
    /// Set once the log is open.
    pub replica: crate::replicate::ReplicaCell,
    /// SASL DIGEST-MD5 accounts, when the JAAS configuration has them.
    pub sasl: Option<crate::sasl::SaslAccounts>,
    /// On the leader: a reconfig is being decided or committed.
    pub reconfig_busy: std::sync::atomic::AtomicBool,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn new(
        config: ServerConfig,
        server_id: u64,
        core: Core,
        sasl: Option<crate::sasl::SaslAccounts>,
    ) -> Shared {
        // Connection ids carry a random incarnation in their top 32 bits so
        // that entries of an earlier run, replayed from the log after a
        // restart, never reach (or answer) a connection of this run. (A
        // start time in seconds was not enough: a server restarted twice in
        // one second reused its ids.)
        let incarnation = u64::from(rand::random::<u32>() | 1);
        Shared {
            config,
            server_id,
            core: Mutex::new(core),
            stats: Arc::default(),
            replica: Default::default(),
            sasl,
            reconfig_busy: Default::default(),
            next_conn: AtomicU64::new(incarnation << 32),
        }
    }

    /// Hands a write to the log. `Err` when the log refused it (no leader,
    /// shutting down): the connections waiting on writes are closed, since
    /// their outcome cannot be known here.
    pub async fn propose(&self, payload: Vec<u8>) -> Result<(), ()> {
        let Some(replica) = self.replica.get() else {
            return Err(());
        };
        match replica.propose(bytes::Bytes::from(payload)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("proposal refused: {e}");
                self.core.lock().drop_conns_with_pending_writes();
                Err(())
            }
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Error codes as `&'static str` op names for `cons` (ZooKeeper's lastOp).
pub fn op_name(request: &Request) -> &'static str {
    use Request::*;
    match request {
        Create(_) => "CREA",
        Delete(_) => "DELE",
        Exists(_) => "EXIS",
        GetData(_) => "GETD",
        SetData(_) => "SETD",
        GetAcl(_) => "GETA",
        SetAcl(_) => "SETA",
        GetChildren(_) | GetChildren2(_) => "GETC",
        Sync(_) => "SYNC",
        Ping => "PING",
        Check(_) => "CHEC",
        Multi(_) => "MULT",
        MultiRead(_) => "MLTR",
        Reconfig(_) => "RECO",
        CheckWatches(_) => "CHKW",
        RemoveWatches(_) => "REMW",
        Auth(_) => "AUTH",
        SetWatches(_) | SetWatches2(_) => "SETW",
        Sasl(_) => "SASL",
        GetEphemerals(_) => "GETE",
        GetAllChildrenNumber(_) => "GETACN",
        AddWatch(_) => "ADDW",
        WhoAmI => "HOMI",
        CloseSession => "CLOS",
    }
}

/// Used where a code is needed for a request that cannot be served.
pub const UNSERVED: ErrorCode = ErrorCode::Unimplemented;
