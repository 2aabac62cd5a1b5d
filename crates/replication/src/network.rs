//! How this server's Raft node reaches its peers: openraft's `RaftNetworkFactory`. Pluggable by
//! variant: a standalone server (a one-voter group) has no peers and never sends an RPC; an
//! ensemble uses the TCP transport of `transport.rs`, one connection per peer and purpose
//! (replication, heartbeat, snapshot), each opened lazily and reopened after a failure.
//!
//! Pre-vote: openraft's default `pre_vote` grants every request without asking the peer. Here
//! it is a real RPC answered by the peer's `Raft::pre_vote`, and the replica enables
//! `Config::enable_pre_vote`, so a partitioned or restarted server cannot bump the term and
//! depose a healthy leader when it comes back.

use std::future::Future;

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
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RaftNetworkV2;

use crate::transport::CallError;
use crate::transport::RpcClient;
use crate::transport::RpcRequest;
use crate::transport::RpcResponse;
use crate::types::Snapshot;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Creates connections to peers.
#[derive(Clone, Debug)]
pub enum Network {
    /// A one-voter group: there is nobody to talk to.
    Standalone,
    /// Peers are reached over TCP at the address in their membership entry (`BasicNode::addr`).
    Tcp,
}

/// A connection to one peer.
pub struct Connection(Conn);

enum Conn {
    /// Fails every RPC; a one-voter group never sends one.
    Standalone { target: u64 },
    /// A TCP connection to the peer.
    Tcp { target: u64, client: RpcClient },
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        match self {
            Network::Standalone => Connection(Conn::Standalone { target }),
            Network::Tcp => Connection(Conn::Tcp {
                target,
                client: RpcClient::new(node.addr.clone()),
            }),
        }
    }
}

fn rpc_error(e: CallError) -> RPCError<TypeConfig> {
    match e {
        CallError::Connect { .. } => RPCError::Unreachable(Unreachable::from_string(e.to_string())),
        _ => RPCError::Network(NetworkError::from_string(e.to_string())),
    }
}

fn unexpected(target: u64) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "server {target} answered with a response of another kind"
    )))
}

impl Connection {
    async fn call(
        &mut self,
        req: RpcRequest,
        option: &RPCOption,
    ) -> Result<RpcResponse, RPCError<TypeConfig>> {
        match &mut self.0 {
            Conn::Standalone { target } => Err(RPCError::Unreachable(Unreachable::from_string(
                format!("this server runs standalone and has no connection to server {target}"),
            ))),
            Conn::Tcp { client, .. } => client
                .call(&req, option.soft_ttl())
                .await
                .map_err(rpc_error),
        }
    }

    fn target(&self) -> u64 {
        match &self.0 {
            Conn::Standalone { target } | Conn::Tcp { target, .. } => *target,
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::Append(rpc), &option).await? {
            RpcResponse::Append(r) => Ok(r),
            _ => Err(unexpected(self.target())),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::Vote(rpc), &option).await? {
            RpcResponse::Vote(r) => Ok(r),
            _ => Err(unexpected(self.target())),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::PreVote(rpc), &option).await? {
            RpcResponse::Vote(r) => Ok(r),
            _ => Err(unexpected(self.target())),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = RpcRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        // The whole snapshot travels as one frame.
        let call = self.call(req, &option);
        tokio::select! {
            res = call => match res {
                Ok(RpcResponse::Snapshot(r)) => Ok(r),
                Ok(_) => Err(StreamingError::Network(NetworkError::from_string("unexpected response to a snapshot"))),
                Err(RPCError::Unreachable(u)) => Err(StreamingError::Unreachable(u)),
                Err(e) => Err(StreamingError::Network(NetworkError::from_string(e.to_string()))),
            },
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RpcRequest::TransferLeader(req), &option).await? {
            RpcResponse::TransferLeader(r) => Ok(r),
            _ => Err(unexpected(self.target())),
        }
    }
}
