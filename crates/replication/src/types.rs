//! The openraft type configuration of Corral's replication layer and the opaque payload it
//! carries. Every other module names openraft's generic types through the aliases here.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use crate::proposer::ProposalResponder;

/// Corral's Raft types: node ids are ZooKeeper server ids (`myid`), one leader per term
/// (standard Raft leader ids, so a term maps to exactly one ZooKeeper epoch), the payload of a
/// normal entry is opaque bytes that only the server's [`crate::Applier`] understands, and
/// proposals carry a [`ProposalResponder`] that reports the ones that will not be applied.
///
/// Written out rather than with `declare_raft_types!`, which cannot set `Responder<T>`.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = Payload;
    type R = ();
    type NodeId = u64;
    type Node = PeerNode;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type AsyncRuntime = crate::runtime::CorralRuntime;
    type Responder<T>
        = ProposalResponder<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// A member's record in the Raft membership: where its peers reach it, and the server's
/// own description of itself (for Corral, its ZooKeeper `server.N` line), carried opaquely so
/// that every member knows the whole configuration from the membership alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of its replication RPC listener.
    pub addr: String,
    /// Opaque to the replication layer.
    pub spec: String,
}

impl PeerNode {
    pub fn new(addr: impl Into<String>, spec: impl Into<String>) -> PeerNode {
        PeerNode {
            addr: addr.into(),
            spec: spec.into(),
        }
    }
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

/// The bytes of one proposal, as stored in a normal log entry.
///
/// Cloning is a reference-count increment: entries are cloned into the log cache, the
/// replication stream and the apply stream without copying the payload.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(pub Bytes);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;

        impl<'de> serde::de::Visitor<'de> for PayloadVisitor {
            type Value = Payload;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(Bytes::copy_from_slice(v)))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(Bytes::from(v)))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Payload, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Payload(Bytes::from(bytes)))
            }
        }

        deserializer.deserialize_bytes(PayloadVisitor)
    }
}

/// A Raft log id: the term of the leader that proposed the entry and the entry's index.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A Raft log entry as stored in the log segments.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// The vote persisted by the log store.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A membership configuration together with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// What a snapshot covers: last included log id and the membership at that point.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot whose data is a verified snapshot file.
pub type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, crate::snapshot_store::SnapshotFile>;
/// The openraft node driven by a [`crate::Replica`].
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachineStore>;
/// The raw metrics openraft publishes.
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

/// The term of a log id (the ZooKeeper epoch of the entry).
pub fn log_id_term(log_id: &LogId) -> u64 {
    log_id.leader_id.term
}

/// The index right after an optional log id: where the next entry goes. Raft indexes start
/// at 0 (the initial membership entry written by `initialize`), so "no log id" gives 0.
pub fn next_index(log_id: Option<&LogId>) -> u64 {
    log_id.map(|l| l.index + 1).unwrap_or(0)
}
