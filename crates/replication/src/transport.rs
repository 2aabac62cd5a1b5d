//! Raft RPCs between servers over TCP: length-prefixed postcard frames, one request then one
//! response at a time on a connection. The client side is used by `network.rs`; the server
//! side accepts connections from peers and hands each request to the local Raft node.
//!
//! ```text
//! frame = len:u32be postcard(RpcRequest | RpcResponse)
//! ```
//!
//! Peers are trusted: the port must only be reachable by the ensemble (as ZooKeeper's quorum
//! ports). Every frame is bounded by [`FRAME_BYTES_MAX`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::io::BufWriter;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::types::Raft;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Largest frame accepted or sent (a full snapshot travels in one frame).
pub const FRAME_BYTES_MAX: usize = 1 << 30;
/// Concurrent peer connections served; more wait for a slot.
const CONNECTIONS_MAX: usize = 64;

/// A request from a peer.
#[derive(Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    Append(openraft::raft::AppendEntriesRequest<TypeConfig>),
    Vote(openraft::raft::VoteRequest<TypeConfig>),
    PreVote(openraft::raft::VoteRequest<TypeConfig>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    TransferLeader(openraft::raft::TransferLeaderRequest<TypeConfig>),
}

/// The answer to an [`RpcRequest`].
#[derive(Serialize, Deserialize)]
pub(crate) enum RpcResponse {
    Append(openraft::raft::AppendEntriesResponse<TypeConfig>),
    Vote(openraft::raft::VoteResponse<TypeConfig>),
    Snapshot(openraft::raft::SnapshotResponse<TypeConfig>),
    TransferLeader(openraft::raft::TransferLeaderResponse<TypeConfig>),
    /// The remote Raft node could not handle the request (it is shutting down, usually).
    Error(String),
}

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: io::Error },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} answered: {message}")]
    Remote { addr: String, message: String },
    #[error("{addr}: {message}")]
    Protocol { addr: String, message: String },
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, body: &[u8]) -> io::Result<()> {
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

/// Read one frame into `buf`; `Ok(false)` on a clean end of stream before a frame starts.
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
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

/// One connection to one peer, opened on first use and reopened after a failure.
pub(crate) struct RpcClient {
    addr: String,
    stream: Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    )>,
    buf: Vec<u8>,
}

impl RpcClient {
    pub(crate) fn new(addr: String) -> Self {
        RpcClient {
            addr,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// Send `req` and wait for its response, for at most `timeout`.
    pub(crate) async fn call(
        &mut self,
        req: &RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        match tokio::time::timeout(timeout, self.call_inner(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                // The stream may hold half a frame: never reuse it.
                self.stream = None;
                Err(CallError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            }
        }
    }

    async fn call_inner(&mut self, req: &RpcRequest) -> Result<RpcResponse, CallError> {
        let addr = self.addr.clone();
        if self.stream.is_none() {
            let s = TcpStream::connect(&addr)
                .await
                .map_err(|source| CallError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            self.stream = Some((BufReader::new(r), BufWriter::new(w)));
        }
        let body = postcard::to_allocvec(req).map_err(|e| CallError::Protocol {
            addr: addr.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let Some((r, w)) = self.stream.as_mut() else {
            return Err(CallError::Protocol {
                addr,
                message: "no connection".into(),
            });
        };
        let io_err = |source| CallError::Io {
            addr: addr.clone(),
            source,
        };
        write_frame(w, &body).await.map_err(io_err)?;
        if !read_frame(r, &mut self.buf).await.map_err(io_err)? {
            return Err(CallError::Io {
                addr: addr.clone(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection"),
            });
        }
        let resp: RpcResponse =
            postcard::from_bytes(&self.buf).map_err(|e| CallError::Protocol {
                addr: addr.clone(),
                message: format!("cannot decode response: {e}"),
            })?;
        if let RpcResponse::Error(message) = resp {
            return Err(CallError::Remote { addr, message });
        }
        Ok(resp)
    }
}

/// The accept loop serving peers' RPCs; aborted on drop of its handle by the replica.
pub(crate) struct RpcServer {
    pub(crate) local_addr: std::net::SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

/// Bind `addr` and serve RPCs to `raft`.
pub(crate) async fn serve(addr: &str, raft: Raft) -> io::Result<RpcServer> {
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
            let raft = raft.clone();
            connections.spawn(async move {
                let _permit = permit;
                if let Err(e) = serve_connection(stream, raft).await {
                    tracing::debug!(%peer, error = %e, "replication connection closed");
                }
            });
        }
    });
    Ok(RpcServer { local_addr, task })
}

async fn serve_connection(stream: TcpStream, raft: Raft) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    while read_frame(&mut r, &mut buf).await? {
        let req: RpcRequest = postcard::from_bytes(&buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot decode request: {e}"),
            )
        })?;
        let resp = handle(&raft, req).await;
        let body = postcard::to_allocvec(&resp).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot encode response: {e}"),
            )
        })?;
        write_frame(&mut w, &body).await?;
    }
    Ok(())
}

async fn handle(raft: &Raft, req: RpcRequest) -> RpcResponse {
    match req {
        RpcRequest::Append(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => RpcResponse::Append(r),
            Err(e) => RpcResponse::Error(e.to_string()),
        },
        RpcRequest::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => RpcResponse::Vote(r),
            Err(e) => RpcResponse::Error(e.to_string()),
        },
        RpcRequest::PreVote(rpc) => match raft.pre_vote(rpc).await {
            Ok(r) => RpcResponse::Vote(r),
            Err(e) => RpcResponse::Error(e.to_string()),
        },
        RpcRequest::Snapshot { vote, meta, data } => {
            let snapshot = crate::types::Snapshot {
                meta,
                snapshot: data,
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(r) => RpcResponse::Snapshot(r),
                Err(e) => RpcResponse::Error(e.to_string()),
            }
        }
        RpcRequest::TransferLeader(rpc) => match raft.handle_transfer_leader(rpc).await {
            Ok(r) => RpcResponse::TransferLeader(r),
            Err(e) => RpcResponse::Error(e.to_string()),
        },
    }
}
