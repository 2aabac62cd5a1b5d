//! How this server's Raft node reaches its peers: openraft's `RaftNetworkFactory`, over the
//! wire of `transport.rs`. A standalone server (a one-voter group) has no peers and never sends
//! an RPC; an ensemble opens one TCP connection per openraft client (replication stream,
//! heartbeats, votes), lazily, and reopens it after a failure.
//!
//! Pipelining: openraft's replication stream hands `stream_append` a stream of AppendEntries
//! requests. A writer task sends each request as soon as openraft produces it, while the
//! returned stream reads the answers in order, so a slow `fdatasync` on the follower delays
//! acknowledgements but never stops the leader from sending the next batch. Up to
//! [`APPEND_INFLIGHT_MAX`] requests are unanswered at once. An answer is awaited for at most
//! the append timeout (derived from ZooKeeper's `syncLimit`), not openraft's per-RPC
//! heartbeat-based budget: a follower that is slow but alive is not cut off.
//!
//! Snapshots are streamed in chunks from the snapshot file on a connection of their own; the
//! follower writes them to disk as they come.
//!
//! Pre-vote: openraft's default `pre_vote` grants every request without asking the peer. Here
//! it is a real RPC answered by the peer's `Raft::pre_vote`, and the replica enables
//! `Config::enable_pre_vote`, so a partitioned or restarted server cannot bump the term and
//! depose a healthy leader when it comes back.

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::types::PeerNode;
use futures_util::Stream;
use futures_util::StreamExt;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendResult;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::OptionalSend;
use openraft::RaftNetworkV2;
use tokio::sync::mpsc;

use crate::snapshot_store::SnapshotFile;
use crate::transport;
use crate::transport::AbortOnDrop;
use crate::transport::Hello;
use crate::transport::RaftReq;
use crate::transport::RaftResp;
use crate::transport::Reader;
use crate::transport::SnapReq;
use crate::transport::SnapResp;
use crate::transport::Writer;
use crate::types::Snapshot;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Append requests sent and not yet answered, per replication stream.
pub const APPEND_INFLIGHT_MAX: usize = 64;

/// Deadlines of the RPCs this node sends, derived from the replica's configuration.
#[derive(Clone, Debug)]
pub struct NetTimeouts {
    /// Longest wait for the answer to an outstanding AppendEntries (and to connect).
    pub append: Duration,
    /// Longest wait for a snapshot to be installed after its last chunk.
    pub snapshot: Duration,
}

/// Creates connections to peers.
#[derive(Clone, Debug)]
pub enum Network {
    /// A one-voter group: there is nobody to talk to.
    Standalone,
    /// Peers are reached over TCP at the address in their membership entry (`PeerNode::addr`).
    Tcp {
        /// This node's id, sent in every connection's hello.
        from: u64,
        /// RPC deadlines.
        timeouts: NetTimeouts,
    },
}

/// A connection to one peer.
pub struct Connection {
    target: u64,
    peer: Option<TcpPeer>,
}

struct TcpPeer {
    from: u64,
    addr: String,
    timeouts: NetTimeouts,
    /// An idle connection: every request sent on it has been answered.
    stream: Option<(Reader, Writer)>,
    buf: Vec<u8>,
    /// Connection attempts that failed in a row, since the last one that worked.
    connect_failures: u32,
}

/// The first pause before connecting again to a peer that refused the last attempt; it
/// doubles with each failure up to [`RECONNECT_PAUSE_MAX`]. openraft's own backoff only
/// paces requests it pulls from an append stream, and a connection that fails is refused
/// before the first one is pulled: without this pause the replication task of a leader
/// whose follower is down retries in a tight loop (tens of thousands of attempts a second).
const RECONNECT_PAUSE_MIN: Duration = Duration::from_millis(25);
const RECONNECT_PAUSE_MAX: Duration = Duration::from_millis(500);

/// The pause before the next attempt after `failures` failed attempts in a row.
fn reconnect_pause(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    RECONNECT_PAUSE_MIN
        .saturating_mul(1u32 << (failures - 1).min(8))
        .min(RECONNECT_PAUSE_MAX)
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> Self::Network {
        match self {
            Network::Standalone => Connection { target, peer: None },
            Network::Tcp { from, timeouts } => Connection {
                target,
                peer: Some(TcpPeer {
                    from: *from,
                    addr: node.addr.clone(),
                    timeouts: timeouts.clone(),
                    stream: None,
                    buf: Vec::new(),
                    connect_failures: 0,
                }),
            },
        }
    }
}

fn io_rpc_error(e: io::Error) -> RPCError<TypeConfig> {
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::NotFound
        | io::ErrorKind::AddrNotAvailable => {
            RPCError::Unreachable(Unreachable::from_string(e.to_string()))
        }
        _ => RPCError::Network(NetworkError::from_string(e.to_string())),
    }
}

fn timeout_error(what: &str, addr: &str, after: Duration) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "no {what} from {addr} within {after:?}"
    )))
}

fn remote_error(target: u64, msg: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "server {target} could not handle the request: {msg}"
    )))
}

fn unexpected(target: u64) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "server {target} answered with a response of another kind"
    )))
}

impl TcpPeer {
    async fn take_stream(
        &mut self,
        timeout: Duration,
    ) -> Result<(Reader, Writer), RPCError<TypeConfig>> {
        if let Some(s) = self.stream.take() {
            return Ok(s);
        }
        tokio::time::sleep(reconnect_pause(self.connect_failures)).await;
        match transport::connect(&self.addr, &Hello::Raft { from: self.from }, timeout).await {
            Ok(s) => {
                self.connect_failures = 0;
                Ok(s)
            }
            Err(e) => {
                self.connect_failures = self.connect_failures.saturating_add(1);
                Err(RPCError::Unreachable(Unreachable::from_string(format!(
                    "cannot connect to {}: {e}",
                    self.addr
                ))))
            }
        }
    }

    /// One request, one response, within `timeout`; the connection is kept only on success.
    async fn unary(
        &mut self,
        req: RaftReq,
        timeout: Duration,
    ) -> Result<RaftResp, RPCError<TypeConfig>> {
        let addr = self.addr.clone();
        let started = tokio::time::Instant::now();
        let (mut r, mut w) = self.take_stream(timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        let call = async {
            transport::send(&mut w, &req).await?;
            transport::recv::<_, RaftResp>(&mut r, &mut self.buf).await
        };
        let resp = match tokio::time::timeout(left, call).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(io_rpc_error(e)),
            Err(_) => return Err(timeout_error("answer", &addr, timeout)),
        };
        self.stream = Some((r, w));
        Ok(resp)
    }
}

impl Connection {
    fn peer(&mut self) -> Result<&mut TcpPeer, RPCError<TypeConfig>> {
        let target = self.target;
        self.peer.as_mut().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::from_string(format!(
                "this server runs standalone and has no connection to server {target}"
            )))
        })
    }

    async fn unary(
        &mut self,
        req: RaftReq,
        option: &RPCOption,
    ) -> Result<RaftResp, RPCError<TypeConfig>> {
        let target = self.target;
        match self.peer()?.unary(req, option.soft_ttl()).await? {
            RaftResp::Error(msg) => Err(remote_error(target, msg)),
            resp => Ok(resp),
        }
    }
}

/// The state of one pipelined append session, read side.
struct AppendSession<'s> {
    target: u64,
    addr: String,
    reader: Option<Reader>,
    buf: &'s mut Vec<u8>,
    /// One token per request written and not yet answered.
    sent: mpsc::Receiver<()>,
    /// Sends the requests; gives the write half back when the input ends.
    writer: Option<AbortOnDrop<io::Result<Writer>>>,
    /// Where an idle connection goes back for the next session.
    slot: &'s mut Option<(Reader, Writer)>,
    answer_timeout: Duration,
    done: bool,
}

async fn next_answer(
    mut st: AppendSession<'_>,
) -> Option<(
    Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>,
    AppendSession<'_>,
)> {
    if st.done {
        return None;
    }
    // Wait (without a deadline: an idle stream is fine) until a request is on the wire.
    if st.sent.recv().await.is_none() {
        // The input ended and every request sent was answered: the connection is idle.
        st.done = true;
        let mut writer = st.writer.take()?;
        let joined = (&mut writer.0).await;
        drop(writer);
        return match joined {
            Ok(Ok(w)) => {
                if let Some(r) = st.reader.take() {
                    *st.slot = Some((r, w));
                }
                None
            }
            Ok(Err(e)) => Some((Err(io_rpc_error(e)), st)),
            Err(e) => Some((
                Err(RPCError::Network(NetworkError::from_string(format!(
                    "append writer task failed: {e}"
                )))),
                st,
            )),
        };
    }
    let Some(reader) = st.reader.as_mut() else {
        st.done = true;
        return None;
    };
    let answer = tokio::time::timeout(
        st.answer_timeout,
        transport::recv::<_, RaftResp>(reader, st.buf),
    )
    .await;
    let item = match answer {
        Err(_) => Err(timeout_error("append answer", &st.addr, st.answer_timeout)),
        Ok(Err(e)) => Err(io_rpc_error(e)),
        Ok(Ok(RaftResp::Append(res))) => Ok(res),
        Ok(Ok(RaftResp::Error(msg))) => Err(remote_error(st.target, msg)),
        Ok(Ok(_)) => Err(unexpected(st.target)),
    };
    // The session ends at the first error of either kind; the connection, which may still
    // carry answers to requests sent after it, is dropped rather than reused.
    if !matches!(item, Ok(Ok(_))) {
        st.done = true;
        st.reader = None;
        st.writer = None;
    }
    Some((item, st))
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft uses `stream_append`; this unary form is kept for completeness.
        let target = self.target;
        let mut out = self
            .stream_append(Box::pin(futures_util::stream::once(async { rpc })), option)
            .await?;
        match out.next().await {
            Some(Ok(Ok(_))) => Ok(AppendEntriesResponse::Success),
            Some(Ok(Err(openraft::raft::StreamAppendError::Conflict(_)))) => {
                Ok(AppendEntriesResponse::Conflict)
            }
            Some(Ok(Err(openraft::raft::StreamAppendError::HigherVote(v)))) => {
                Ok(AppendEntriesResponse::HigherVote(v))
            }
            Some(Err(e)) => Err(e),
            None => Err(RPCError::Network(NetworkError::from_string(format!(
                "server {target} closed the append stream without an answer"
            )))),
        }
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let target = self.target;
            let peer = self.peer()?;
            let answer_timeout = peer.timeouts.append.max(option.soft_ttl());
            let (reader, mut w) = peer.take_stream(answer_timeout).await?;
            transport::send(&mut w, &RaftReq::AppendStart)
                .await
                .map_err(io_rpc_error)?;
            let (sent_tx, sent_rx) = mpsc::channel::<()>(APPEND_INFLIGHT_MAX);
            let writer = tokio::spawn(async move {
                let mut input = input;
                while let Some(req) = input.next().await {
                    // Bound the unanswered requests; stop when the reader is gone.
                    let Ok(permit) = sent_tx.reserve().await else {
                        return Err(io::Error::other("append session closed"));
                    };
                    transport::send(&mut w, &RaftReq::Append(req)).await?;
                    permit.send(());
                }
                Ok(w)
            });
            let session = AppendSession {
                target,
                addr: peer.addr.clone(),
                reader: Some(reader),
                buf: &mut peer.buf,
                sent: sent_rx,
                writer: Some(AbortOnDrop(writer)),
                slot: &mut peer.stream,
                answer_timeout,
                done: false,
            };
            let out: BoxStream<'s, _> =
                Box::pin(futures_util::stream::unfold(session, next_answer));
            Ok(out)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.unary(RaftReq::Vote(rpc), &option).await? {
            RaftResp::Vote(r) => Ok(r),
            _ => Err(unexpected(self.target)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.unary(RaftReq::PreVote(rpc), &option).await? {
            RaftResp::Vote(r) => Ok(r),
            _ => Err(unexpected(self.target)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let peer = match self.peer() {
            Ok(p) => p,
            Err(RPCError::Unreachable(u)) => return Err(StreamingError::Unreachable(u)),
            Err(e) => {
                return Err(StreamingError::Network(NetworkError::from_string(
                    e.to_string(),
                )))
            }
        };
        let from = peer.from;
        let addr = peer.addr.clone();
        let chunk_timeout = peer.timeouts.append;
        let install_timeout = peer.timeouts.snapshot.max(option.soft_ttl());
        let send = send_snapshot(from, addr, vote, snapshot, chunk_timeout, install_timeout);
        tokio::select! {
            res = send => res.map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => StreamingError::Unreachable(Unreachable::from_string(e.to_string())),
                _ => StreamingError::Network(NetworkError::from_string(e.to_string())),
            }),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.unary(RaftReq::TransferLeader(req), &option).await? {
            RaftResp::TransferLeader(r) => Ok(r),
            _ => Err(unexpected(self.target)),
        }
    }
}

/// Stream the snapshot file to `addr` in chunks and wait for it to be installed.
async fn send_snapshot(
    from: u64,
    addr: String,
    vote: Vote,
    snapshot: Snapshot,
    chunk_timeout: Duration,
    install_timeout: Duration,
) -> io::Result<SnapshotResponse<TypeConfig>> {
    let timed_out = |what: &str, after: Duration| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} to {addr} took longer than {after:?}"),
        )
    };
    let (mut r, mut w) =
        transport::connect(&addr, &Hello::Snapshot { from }, chunk_timeout).await?;
    let file = snapshot.snapshot;
    let file_len = file.file_len();
    tracing::info!(%addr, meta = %snapshot.meta, file_len, "sending a snapshot");
    let begin = SnapReq::Begin {
        vote,
        meta: snapshot.meta,
        file_len,
    };
    tokio::time::timeout(chunk_timeout, transport::send(&mut w, &begin))
        .await
        .map_err(|_| timed_out("sending a snapshot header", chunk_timeout))??;
    let mut offset = 0u64;
    while offset < file_len {
        let f = file.clone();
        let at = offset;
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; transport::SNAPSHOT_CHUNK_BYTES];
            let n = f.read_file_at(&mut buf, at)?;
            buf.truncate(n);
            Ok::<_, io::Error>(buf)
        })
        .await
        .map_err(io::Error::other)??;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "snapshot file is shorter than it was",
            ));
        }
        offset += chunk.len() as u64;
        tokio::time::timeout(
            chunk_timeout,
            transport::send(&mut w, &SnapReq::Chunk(chunk)),
        )
        .await
        .map_err(|_| timed_out("sending a snapshot chunk", chunk_timeout))??;
    }
    transport::send(&mut w, &SnapReq::End).await?;
    let mut buf = Vec::new();
    let resp = tokio::time::timeout(
        install_timeout,
        transport::recv::<_, SnapResp>(&mut r, &mut buf),
    )
    .await
    .map_err(|_| timed_out("installing a snapshot", install_timeout))??;
    match resp {
        SnapResp::Done(r) => Ok(r),
        SnapResp::Error(msg) => Err(io::Error::other(format!(
            "{addr} could not install the snapshot: {msg}"
        ))),
    }
}

/// Ask `addr` whether it has Raft state (used by bootstrap). `Ok((id, initialized))`.
pub(crate) async fn probe(from: u64, addr: &str, timeout: Duration) -> io::Result<(u64, bool)> {
    match ask(from, addr, RaftReq::Probe, timeout).await? {
        RaftResp::Probe {
            node_id,
            initialized,
        } => Ok((node_id, initialized)),
        _ => Err(io::Error::other("unexpected answer to a probe")),
    }
}

/// Ask `addr` for its last log id (used after the leader died, `failover.rs`).
pub(crate) async fn last_log(
    from: u64,
    addr: &str,
    timeout: Duration,
) -> io::Result<Option<crate::types::LogId>> {
    match ask(from, addr, RaftReq::LastLog, timeout).await? {
        RaftResp::LastLog(last) => Ok(last),
        _ => Err(io::Error::other("unexpected answer to a last-log question")),
    }
}

/// One request on a connection of its own, within `timeout`.
async fn ask(from: u64, addr: &str, req: RaftReq, timeout: Duration) -> io::Result<RaftResp> {
    let call = async {
        let (mut r, mut w) = transport::connect(addr, &Hello::Raft { from }, timeout).await?;
        transport::send(&mut w, &req).await?;
        let mut buf = Vec::new();
        match transport::recv::<_, RaftResp>(&mut r, &mut buf).await? {
            RaftResp::Error(m) => Err(io::Error::other(m)),
            resp => Ok(resp),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {addr}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_pauses_double_from_the_first_failure_up_to_the_cap() {
        assert_eq!(reconnect_pause(0), Duration::ZERO);
        assert_eq!(reconnect_pause(1), RECONNECT_PAUSE_MIN);
        assert_eq!(reconnect_pause(2), RECONNECT_PAUSE_MIN * 2);
        assert_eq!(reconnect_pause(3), RECONNECT_PAUSE_MIN * 4);
        assert_eq!(reconnect_pause(40), RECONNECT_PAUSE_MAX);
        assert_eq!(reconnect_pause(u32::MAX), RECONNECT_PAUSE_MAX);
    }
}
