//! The wire between servers: length-prefixed postcard frames over TCP, and the server side
//! that accepts peers' connections. The first frame of a connection says what it carries:
//!
//! - `Hello::Raft`: Raft RPCs from a peer's Raft core. Unary requests (vote, pre-vote, leader
//!   transfer, bootstrap probe) get one response each; an append session (`AppendStart` then
//!   any number of `Append` frames) is pipelined: requests are fed to this node's
//!   `Raft::stream_append` as they arrive and answered in order, without the sender waiting
//!   for one answer before sending the next (`network.rs` is the client side).
//! - `Hello::Snapshot`: a snapshot file streamed in chunks from the leader, written to a
//!   temporary file, verified, and installed (`snapshot_store.rs`).
//! - `Hello::Link`: a follower's or observer's link to the leader: forwarded proposals,
//!   read-index requests and side-channel messages (`link.rs`).
//!
//! ```text
//! frame = len:u32be postcard(message)
//! ```
//!
//! Peers are trusted: the port must only be reachable by the ensemble (as ZooKeeper's quorum
//! ports). Every frame is bounded by [`FRAME_BYTES_MAX`] and every queue is bounded.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::io::BufWriter;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::link::LinkRegistry;
use crate::proposer::Rejection;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::Applier;
use crate::types::Payload;
use crate::types::Raft;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Largest frame accepted or sent. An append batch of many large entries is the biggest
/// message; snapshots travel in chunks of [`SNAPSHOT_CHUNK_BYTES`].
pub const FRAME_BYTES_MAX: usize = 1 << 30;
/// Size of one snapshot chunk on the wire.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Concurrent peer connections served; more wait for a slot.
const CONNECTIONS_MAX: usize = 64;
/// Responses queued for one connection's writer.
const RESPONSE_QUEUE_MAX: usize = 256;
/// Append requests of one session queued for this node's Raft core.
const APPEND_QUEUE_MAX: usize = 64;

/// The first frame of a connection.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Hello {
    Raft {
        from: u64,
    },
    Snapshot {
        from: u64,
    },
    Link {
        from: u64,
        /// Orders the links one origin opens: (process start time, link counter).
        generation: (u64, u64),
    },
}

/// A frame on a `Hello::Raft` connection, client to server.
#[derive(Serialize, Deserialize)]
pub(crate) enum RaftReq {
    Vote(openraft::raft::VoteRequest<TypeConfig>),
    PreVote(openraft::raft::VoteRequest<TypeConfig>),
    TransferLeader(openraft::raft::TransferLeaderRequest<TypeConfig>),
    /// Whether this node has Raft state (bootstrap asks before initializing a group).
    Probe,
    /// Starts a new append session: the `Append` frames that follow belong to it.
    AppendStart,
    Append(openraft::raft::AppendEntriesRequest<TypeConfig>),
    /// This node's last log id (voters compare theirs when their leader died: `failover.rs`).
    LastLog,
}

/// A frame on a `Hello::Raft` connection, server to client.
#[derive(Serialize, Deserialize)]
pub(crate) enum RaftResp {
    Vote(openraft::raft::VoteResponse<TypeConfig>),
    TransferLeader(openraft::raft::TransferLeaderResponse<TypeConfig>),
    Probe {
        node_id: u64,
        initialized: bool,
    },
    /// The answer to one `Append`, in the order they were sent.
    Append(openraft::raft::StreamAppendResult<TypeConfig>),
    /// The remote Raft node could not handle the request (it is shutting down, usually).
    Error(String),
    LastLog(Option<crate::types::LogId>),
}

/// A frame on a `Hello::Snapshot` connection, client to server.
#[derive(Serialize, Deserialize)]
pub(crate) enum SnapReq {
    Begin {
        vote: Vote,
        meta: SnapshotMeta,
        file_len: u64,
    },
    Chunk(#[serde(with = "serde_bytes_vec")] Vec<u8>),
    End,
}

/// The answer on a `Hello::Snapshot` connection.
#[derive(Serialize, Deserialize)]
pub(crate) enum SnapResp {
    Done(openraft::raft::SnapshotResponse<TypeConfig>),
    Error(String),
}

/// A frame on a `Hello::Link` connection, origin to leader.
#[derive(Serialize, Deserialize)]
pub(crate) enum LinkReq {
    /// Proposals numbered `first_seq`, `first_seq + 1`, ... in proposal order.
    Forward {
        first_seq: u64,
        payloads: Vec<Payload>,
    },
    /// Confirm leadership with a quorum and answer the index a read must wait for.
    ReadIndex { id: u64 },
    /// Side-channel messages for the leader's applier.
    PeerMessages(Vec<Payload>),
}

/// A frame on a `Hello::Link` connection, leader to origin.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum LinkResp {
    /// Forwarded proposals now committed (they will be applied) or refused/dropped.
    Outcomes {
        committed: Vec<u64>,
        rejected: Vec<(u64, Rejection)>,
    },
    ReadIndex {
        id: u64,
        result: Result<u64, String>,
    },
}

mod serde_bytes_vec {
    use serde::Deserializer;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Encode a message as one frame body.
pub(crate) fn encode<T: Serialize>(msg: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(msg).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot encode frame: {e}"),
        )
    })
}

/// Decode one frame body.
pub(crate) fn decode<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(buf).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot decode frame: {e}"),
        )
    })
}

/// Write one frame and flush.
pub(crate) async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    body: &[u8],
) -> io::Result<()> {
    if body.len() > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {FRAME_BYTES_MAX}-byte limit",
                body.len()
            ),
        ));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

/// Encode and write one message.
pub(crate) async fn send<W: AsyncWriteExt + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> io::Result<()> {
    let body = encode(msg)?;
    write_frame(w, &body).await
}

/// Read one frame into `buf`; `Ok(false)` on a clean end of stream before a frame starts.
pub(crate) async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {FRAME_BYTES_MAX}-byte limit"),
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

/// Read one frame and decode it; an end of stream is an error here.
pub(crate) async fn recv<R: AsyncReadExt + Unpin, T: for<'a> Deserialize<'a>>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<T> {
    if !read_frame(r, buf).await? {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed the connection",
        ));
    }
    decode(buf)
}

/// The two halves of a connection, buffered.
pub(crate) type Reader = BufReader<OwnedReadHalf>;
/// The write half of a connection, buffered.
pub(crate) type Writer = BufWriter<OwnedWriteHalf>;

/// Connect to `addr` within `timeout` and send `hello`.
pub(crate) async fn connect(
    addr: &str,
    hello: &Hello,
    timeout: Duration,
) -> io::Result<(Reader, Writer)> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(s) => s?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} took longer than {timeout:?}"),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut w = BufWriter::with_capacity(64 << 10, w);
    send(&mut w, hello).await?;
    Ok((BufReader::with_capacity(64 << 10, r), w))
}

/// What the server side needs to answer peers.
pub(crate) struct ServerCtx {
    pub(crate) node_id: u64,
    pub(crate) raft: Raft,
    pub(crate) snapshots: Arc<SnapshotStore>,
    pub(crate) applier: Arc<dyn Applier>,
    pub(crate) links: Arc<LinkRegistry>,
    /// Longest wait for the next frame of a snapshot being received.
    pub(crate) snapshot_chunk_timeout: Duration,
    /// When a leader last sent appends or heartbeats here.
    pub(crate) leader_contact: Arc<LeaderContact>,
    /// Told which peer's replication connection closed (`failover.rs`).
    pub(crate) peer_gone: Option<crate::failover::PeerGone>,
    /// For telling peers this server's last log id.
    pub(crate) log: crate::log_store::LogReader,
}

/// When this server last heard from a leader (an append or a heartbeat), for telling a
/// follower cut off from its leader: openraft keeps naming the old leader until an election
/// succeeds, which without a quorum is never.
pub(crate) struct LeaderContact {
    base: std::time::Instant,
    /// Milliseconds after `base` plus one; 0: never.
    at_ms: std::sync::atomic::AtomicU64,
}

impl LeaderContact {
    pub(crate) fn new() -> LeaderContact {
        LeaderContact {
            base: std::time::Instant::now(),
            at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let now = self.base.elapsed().as_millis() as u64 + 1;
        self.at_ms.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a leader was heard from within `window`.
    pub(crate) fn within(&self, window: Duration) -> bool {
        match self.at_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => false,
            at => {
                let now = self.base.elapsed().as_millis() as u64 + 1;
                now.saturating_sub(at) <= window.as_millis() as u64
            }
        }
    }
}

/// The accept loop serving peers' RPCs; aborted by the replica at shutdown.
pub(crate) struct RpcServer {
    pub(crate) local_addr: std::net::SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

/// Bind `addr` and serve peers.
pub(crate) async fn serve(addr: &str, ctx: Arc<ServerCtx>) -> io::Result<RpcServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a replication connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Reap finished connection tasks so the set stays bounded.
            while connections.try_join_next().is_some() {}
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            connections.spawn(async move {
                let _permit = permit;
                if let Err(e) = serve_connection(stream, ctx).await {
                    tracing::debug!(%peer, error = %e, "replication connection closed");
                }
            });
        }
    });
    Ok(RpcServer { local_addr, task })
}

async fn serve_connection(stream: TcpStream, ctx: Arc<ServerCtx>) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 << 10, r);
    let w = BufWriter::with_capacity(64 << 10, w);
    let mut buf = Vec::new();
    if !read_frame(&mut r, &mut buf).await? {
        return Ok(());
    }
    let hello: Hello = decode(&buf)?;
    match hello {
        Hello::Raft { from } => {
            let served = serve_raft(r, w, buf, ctx.clone()).await;
            if let Some(gone) = &ctx.peer_gone {
                // Full: the watcher has reports to look at already.
                let _ = gone.try_send(from);
            }
            served
        }
        Hello::Snapshot { from } => serve_snapshot(r, w, buf, ctx, from).await,
        Hello::Link { from, generation } => {
            crate::link::serve_link(r, w, buf, ctx, from, generation).await
        }
    }
}

/// Spawn the task that writes a connection's responses in queue order.
fn spawn_writer<T: Serialize + Send + 'static>(
    mut w: Writer,
) -> (mpsc::Sender<T>, JoinHandle<io::Result<()>>) {
    let (tx, mut rx) = mpsc::channel::<T>(RESPONSE_QUEUE_MAX);
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while rx.recv_many(&mut batch, 64).await > 0 {
            for msg in batch.drain(..) {
                let body = encode(&msg)?;
                if body.len() > FRAME_BYTES_MAX {
                    return Err(io::Error::other("response frame too large"));
                }
                w.write_all(&(body.len() as u32).to_be_bytes()).await?;
                w.write_all(&body).await?;
            }
            w.flush().await?;
        }
        Ok(())
    });
    (tx, task)
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_raft(
    mut r: Reader,
    w: Writer,
    mut buf: Vec<u8>,
    ctx: Arc<ServerCtx>,
) -> io::Result<()> {
    let (out, writer) = spawn_writer::<RaftResp>(w);
    let _writer = AbortOnDrop(writer);
    // The current append session: where its requests go, and the task answering them.
    let mut session: Option<(
        mpsc::Sender<openraft::raft::AppendEntriesRequest<TypeConfig>>,
        AbortOnDrop<()>,
    )> = None;
    while read_frame(&mut r, &mut buf).await? {
        let req: RaftReq = decode(&buf)?;
        let resp = match req {
            RaftReq::Append(rpc) => {
                ctx.leader_contact.touch();
                if let Some((tx, _)) = &session {
                    // A closed session (it ended on a conflict or a higher vote) drops the
                    // request: the sender stops reading answers at that error anyway.
                    let _ = tx.send(rpc).await;
                }
                continue;
            }
            RaftReq::AppendStart => {
                let (tx, rx) = mpsc::channel(APPEND_QUEUE_MAX);
                let input = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|req| (req, rx))
                });
                let output = ctx.raft.stream_append(input);
                let out = out.clone();
                let task = tokio::spawn(async move {
                    let mut output = std::pin::pin!(output);
                    while let Some(item) = output.next().await {
                        let msg = match item {
                            Ok(res) => RaftResp::Append(res),
                            Err(fatal) => RaftResp::Error(fatal.to_string()),
                        };
                        if out.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
                // Dropping the previous session's sender ends its input stream.
                session = Some((tx, AbortOnDrop(task)));
                continue;
            }
            RaftReq::Vote(rpc) => match ctx.raft.vote(rpc).await {
                Ok(r) => RaftResp::Vote(r),
                Err(e) => RaftResp::Error(e.to_string()),
            },
            RaftReq::PreVote(rpc) => match ctx.raft.pre_vote(rpc).await {
                Ok(r) => RaftResp::Vote(r),
                Err(e) => RaftResp::Error(e.to_string()),
            },
            RaftReq::TransferLeader(rpc) => match ctx.raft.handle_transfer_leader(rpc).await {
                Ok(r) => RaftResp::TransferLeader(r),
                Err(e) => RaftResp::Error(e.to_string()),
            },
            RaftReq::LastLog => RaftResp::LastLog(ctx.log.last_log_id()),
            RaftReq::Probe => match ctx.raft.is_initialized().await {
                Ok(initialized) => RaftResp::Probe {
                    node_id: ctx.node_id,
                    initialized,
                },
                Err(e) => RaftResp::Error(e.to_string()),
            },
        };
        if out.send(resp).await.is_err() {
            break;
        }
    }
    Ok(())
}

async fn serve_snapshot(
    mut r: Reader,
    mut w: Writer,
    mut buf: Vec<u8>,
    ctx: Arc<ServerCtx>,
    from: u64,
) -> io::Result<()> {
    let first: SnapReq = recv(&mut r, &mut buf).await?;
    let SnapReq::Begin {
        vote,
        meta,
        file_len,
    } = first
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a snapshot stream must start with Begin",
        ));
    };
    tracing::info!(from, %meta, file_len, "receiving a snapshot");
    let path = ctx.snapshots.receiving_path();
    let result = receive_snapshot(&mut r, &mut buf, &ctx, &path, vote, meta, file_len).await;
    let resp = match result {
        Ok(resp) => SnapResp::Done(resp),
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            tracing::warn!(from, error = %e, "receiving a snapshot failed");
            SnapResp::Error(e.to_string())
        }
    };
    send(&mut w, &resp).await
}

async fn receive_snapshot(
    r: &mut Reader,
    buf: &mut Vec<u8>,
    ctx: &ServerCtx,
    path: &std::path::Path,
    vote: Vote,
    meta: SnapshotMeta,
    file_len: u64,
) -> io::Result<openraft::raft::SnapshotResponse<TypeConfig>> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await?;
    let mut received = 0u64;
    loop {
        let frame = tokio::time::timeout(ctx.snapshot_chunk_timeout, recv::<_, SnapReq>(r, buf))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no snapshot chunk within the timeout",
                )
            })??;
        match frame {
            SnapReq::Chunk(bytes) => {
                received += bytes.len() as u64;
                if received > file_len {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "snapshot stream is longer than announced",
                    ));
                }
                file.write_all(&bytes).await?;
            }
            SnapReq::End => break,
            SnapReq::Begin { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a second Begin in a snapshot stream",
                ))
            }
        }
    }
    if received != file_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot stream ended after {received} of {file_len} bytes"),
        ));
    }
    file.flush().await?;
    drop(file);
    let p = path.to_path_buf();
    let (file_meta, snapshot) =
        tokio::task::spawn_blocking(move || crate::snapshot_store::open_snapshot(&p))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
    if file_meta != meta {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("received snapshot file describes {file_meta}, not the announced {meta}"),
        ));
    }
    let snapshot = crate::types::Snapshot { meta, snapshot };
    let result = ctx
        .raft
        .install_full_snapshot(vote, snapshot)
        .await
        .map_err(io::Error::other);
    // Installed means renamed into place; otherwise (a stale snapshot, a newer vote here) the
    // received file is not needed.
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}
