//! The write path from `Replica::propose` into openraft: one task drains the bounded proposal
//! queue in batches and submits each payload without waiting for any to commit (openraft merges
//! consecutive writes into one append; the log store fsyncs them as one group). Each payload
//! carries a [`ProposalResponder`], so a proposal openraft refuses or discards is reported to
//! the [`Applier`] instead of vanishing: its client would otherwise wait forever.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use openraft::errors::ClientWriteError;
use openraft::raft::responder::Responder;
use openraft::raft::ClientWriteResult;
use openraft::type_config::async_runtime::watch::WatchReceiver as _;
use openraft::OptionalSend;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::state_machine::Applier;
use crate::types::Payload;
use crate::types::Raft;
use crate::types::TypeConfig;

/// Payloads handed to openraft per batch.
const PROPOSAL_BATCH_MAX: usize = 4096;

/// Why a proposal submitted through this server will not be applied through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Refused before it reached the log: this server is not the leader, or its leader lease
    /// lapsed (it has not heard from a quorum for an election timeout). It will never be
    /// applied anywhere; the client may retry on the leader.
    NotLeader {
        /// The leader this server knows of, if any.
        leader_id: Option<u64>,
    },
    /// It reached this server's log but was removed when leadership changed. Another server
    /// may still have committed it, so its outcome is unknown (ZooKeeper's connection loss): if
    /// it was committed, `apply` still delivers it later.
    Discarded {
        /// The leader this server knows of, if any.
        leader_id: Option<u64>,
    },
}

/// openraft's per-write responder for Corral: on success it does nothing (the outcome is the
/// `apply` call), on failure it hands the payload back to the [`Applier`].
pub struct ProposalResponder<T> {
    payload: Bytes,
    sink: Arc<RejectionSink>,
    _result: PhantomData<fn(T)>,
}

impl<T> ProposalResponder<T> {
    pub(crate) fn new(payload: Bytes, sink: Arc<RejectionSink>) -> Self {
        ProposalResponder {
            payload,
            sink,
            _result: PhantomData,
        }
    }
}

/// Where rejected proposals go: the applier, and a counter for metrics.
pub(crate) struct RejectionSink {
    pub(crate) applier: Arc<dyn Applier>,
    pub(crate) rejected: AtomicU64,
    pub(crate) submitted: AtomicU64,
}

impl RejectionSink {
    fn reject(&self, payload: &[u8], rejection: Rejection) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.applier.rejected(payload, rejection);
    }
}

impl<T> Responder<TypeConfig, T> for ProposalResponder<T>
where
    T: OptionalSend + 'static,
{
    fn on_complete(self, result: T) {
        // openraft only ever instantiates write responders with `ClientWriteResult`; the type
        // config requires the responder to be generic, so look at the result through `Any`.
        let result: &dyn Any = &result;
        let Some(Err(e)) = result.downcast_ref::<ClientWriteResult<TypeConfig>>() else {
            return;
        };
        let rejection = match e {
            ClientWriteError::ForwardToLeader(f) => Rejection::NotLeader {
                leader_id: f.leader_id,
            },
            ClientWriteError::LogEntryDiscarded(f) => Rejection::Discarded {
                leader_id: f.leader_id,
            },
            other => {
                tracing::error!(error = %other, "unexpected error for a proposal");
                Rejection::NotLeader { leader_id: None }
            }
        };
        self.sink.reject(&self.payload, rejection);
    }
}

/// Drains the proposal queue into Raft. One task for all proposals; never waits for a commit.
pub(crate) async fn run_proposer(
    raft: Raft,
    sink: Arc<RejectionSink>,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(PROPOSAL_BATCH_MAX);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, PROPOSAL_BATCH_MAX) => n,
            _ = stop.changed() => 0,
        };
        if n == 0 {
            break;
        }
        if !raft.is_leader() {
            // Leadership was lost between `propose` and now.
            let leader_id = raft.metrics().borrow_watched().current_leader;
            for payload in batch.drain(..) {
                sink.reject(&payload, Rejection::NotLeader { leader_id });
            }
            continue;
        }
        for payload in batch.drain(..) {
            let responder = ProposalResponder::new(payload.clone(), sink.clone());
            if let Err(e) = raft
                .client_write_ff(Payload(payload), Some(responder))
                .await
            {
                tracing::error!(error = %e, "raft stopped; the proposer exits");
                return;
            }
        }
        sink.submitted.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Whatever is still queued will not be submitted.
    rx.close();
    while let Ok(payload) = rx.try_recv() {
        sink.reject(&payload, Rejection::NotLeader { leader_id: None });
    }
    tracing::debug!("proposer stopped");
}
