//! The write path from `Replica::propose` into the log, on any member. One task drains the
//! bounded proposal queue in batches: on the leader it submits each payload to openraft
//! without waiting for any to commit (openraft merges consecutive writes into one append; the
//! log store fsyncs them as one group); on a follower or observer it forwards the batch to the
//! leader over the link (`link.rs`), again without waiting, up to a window of unanswered
//! proposals. The same task sends read-index requests and side-channel messages on the link.
//!
//! Every proposal that will not be applied through this server is handed back to
//! [`Applier::rejected`] exactly once, so the server can close the client connection that
//! waits for it. To keep each origin's applied proposals in proposal order with no gap
//! followed by a later proposal, a rejection also rejects everything still queued here that
//! was proposed before the rejection was reported (the rejection "epoch" moves on).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::errors::ClientWriteError;
use openraft::raft::responder::Responder;
use openraft::raft::ClientWriteResult;
use openraft::type_config::async_runtime::watch::WatchReceiver as _;
use openraft::OptionalSend;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::error::ReplicationError;
use crate::link::LeaderLink;
use crate::link::LinkOut;
use crate::link::OutcomeSender;
use crate::link::ReadWaiter;
use crate::state_machine::Applier;
use crate::transport::LinkResp;
use crate::types::Payload;
use crate::types::Raft;
use crate::types::TypeConfig;

/// Payloads handed to openraft or forwarded per batch.
const PROPOSAL_BATCH_MAX: usize = 4096;
/// Side-channel messages sent per frame.
const PEER_BATCH_MAX: usize = 4096;
/// How often the task looks at the time when nothing else happens.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// Why a proposal submitted through this server will not be applied through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// Refused before it reached the log: no leader was reachable, this server or the leader
    /// it forwarded to was not (or no longer) leader, or the leader's lease lapsed (it has not
    /// heard from a quorum for an election timeout), or an earlier proposal from this server
    /// was rejected first. It will never be applied anywhere; the client may retry.
    NotLeader {
        /// The leader this server knows of, if any.
        leader_id: Option<u64>,
    },
    /// It may have reached the log but its fate is unknown here: it was removed when
    /// leadership changed, or the link to the leader broke while it was in flight. Another
    /// server may still have committed it, so its outcome is unknown (ZooKeeper's connection
    /// loss): if it was committed, `apply` still delivers it later.
    Discarded {
        /// The leader this server knows of, if any.
        leader_id: Option<u64>,
    },
}

/// openraft's per-write responder for Corral. For a proposal of this server: on success it
/// does nothing (the outcome is the `apply` call), on failure it hands the payload back to the
/// [`Applier`]. For a proposal forwarded by another server: it reports commit or failure back
/// to that server over its link.
pub struct ProposalResponder<T> {
    target: Target,
    _result: PhantomData<fn(T)>,
}

enum Target {
    Local {
        seq: u64,
        sink: Arc<RejectionSink>,
    },
    Remote {
        seq: u64,
        out: OutcomeSender,
        committed: bool,
    },
}

impl<T> ProposalResponder<T> {
    pub(crate) fn new(seq: u64, sink: Arc<RejectionSink>) -> Self {
        ProposalResponder {
            target: Target::Local { seq, sink },
            _result: PhantomData,
        }
    }

    pub(crate) fn remote(seq: u64, out: OutcomeSender) -> Self {
        ProposalResponder {
            target: Target::Remote {
                seq,
                out,
                committed: false,
            },
            _result: PhantomData,
        }
    }
}

/// Where rejected proposals go: the applier, and counters for metrics.
pub(crate) struct RejectionSink {
    pub(crate) applier: Arc<dyn Applier>,
    pub(crate) rejected: AtomicU64,
    pub(crate) submitted: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    pub(crate) peer_messages_dropped: AtomicU64,
    /// Moves on after every rejection; queued proposals of an older epoch are rejected too.
    pub(crate) epoch: AtomicU64,
    /// This server's own proposals submitted to Raft and not yet committed or failed.
    inflight: std::sync::Mutex<InflightLocal>,
}

#[derive(Default)]
struct InflightLocal {
    next_seq: u64,
    proposals: std::collections::BTreeMap<u64, (std::time::Instant, Bytes)>,
}

impl RejectionSink {
    pub(crate) fn new(applier: Arc<dyn Applier>) -> Self {
        RejectionSink {
            applier,
            rejected: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            peer_messages_dropped: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            inflight: std::sync::Mutex::new(InflightLocal::default()),
        }
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, InflightLocal> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember proposals about to be submitted to Raft; returns their numbers.
    fn track(&self, payloads: &[Bytes]) -> std::ops::Range<u64> {
        let now = std::time::Instant::now();
        let mut inflight = self.inflight();
        let first = inflight.next_seq;
        for p in payloads {
            let seq = inflight.next_seq;
            inflight.proposals.insert(seq, (now, p.clone()));
            inflight.next_seq += 1;
        }
        first..inflight.next_seq
    }

    /// A submitted proposal committed (`None`) or failed; reported unless already reported.
    fn complete(&self, seq: u64, failure: Option<Rejection>) {
        let removed = self.inflight().proposals.remove(&seq);
        if let (Some((_, payload)), Some(rejection)) = (removed, failure) {
            self.reject(&payload, rejection);
        }
    }

    /// Report every submitted proposal as of unknown outcome when the oldest has waited
    /// longer than `limit` (this leader cannot reach a quorum). Returns how many.
    fn expire_stalled(&self, limit: Duration, leader_id: Option<u64>) -> usize {
        let stalled = {
            let mut inflight = self.inflight();
            match inflight.proposals.first_key_value() {
                Some((_, (since, _))) if since.elapsed() > limit => {
                    std::mem::take(&mut inflight.proposals)
                }
                _ => return 0,
            }
        };
        let n = stalled.len();
        for (_, (_, payload)) in stalled {
            self.reject(&payload, Rejection::Discarded { leader_id });
        }
        n
    }

    pub(crate) fn reject(&self, payload: &[u8], rejection: Rejection) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        // The applier first: a proposal that sees the new epoch was made after the server
        // heard of this rejection.
        self.applier.rejected(payload, rejection);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

fn rejection_of(e: &ClientWriteError<TypeConfig>) -> Rejection {
    match e {
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
    }
}

impl<T> Responder<TypeConfig, T> for ProposalResponder<T>
where
    T: OptionalSend + 'static,
{
    fn on_commit(&mut self, _log_id: crate::types::LogId) {
        if let Target::Remote {
            seq,
            out,
            committed,
        } = &mut self.target
        {
            *committed = true;
            let _ = out.send(LinkOut::Committed(*seq));
        }
    }

    fn on_complete(self, result: T) {
        // openraft only ever instantiates write responders with `ClientWriteResult`; the type
        // config requires the responder to be generic, so look at the result through `Any`.
        let result: &dyn Any = &result;
        let failure = match result.downcast_ref::<ClientWriteResult<TypeConfig>>() {
            Some(Err(e)) => Some(rejection_of(e)),
            _ => None,
        };
        match (self.target, failure) {
            (Target::Local { seq, sink }, failure) => sink.complete(seq, failure),
            (Target::Remote { seq, out, .. }, Some(rejection)) => {
                let _ = out.send(LinkOut::Rejected(seq, rejection));
            }
            (
                Target::Remote {
                    seq,
                    out,
                    committed,
                },
                None,
            ) => {
                if !committed {
                    let _ = out.send(LinkOut::Committed(seq));
                }
            }
        }
    }
}

/// One queued proposal.
pub(crate) struct Proposal {
    pub(crate) epoch: u64,
    pub(crate) payload: Bytes,
}

/// What the proposer task needs.
pub(crate) struct ProposerCtx {
    pub(crate) node_id: u64,
    pub(crate) raft: Raft,
    pub(crate) sink: Arc<RejectionSink>,
    /// Process start time, the first half of every link generation.
    pub(crate) boot_nanos: u64,
    /// Forwarded proposals without an outcome, at most.
    pub(crate) forward_window: usize,
    /// How long proposals wait for a leader to be known before they are rejected.
    pub(crate) no_leader_wait: Duration,
    /// Connect timeout for the link.
    pub(crate) connect_timeout: Duration,
    /// Proposals not committed for this long (the leader cannot reach a quorum) are reported
    /// as of unknown outcome, as ZooKeeper closes connections when its leader loses quorum.
    pub(crate) stall_timeout: Duration,
}

/// The queues feeding the proposer task.
pub(crate) struct ProposerInputs {
    pub(crate) proposals: mpsc::Receiver<Proposal>,
    pub(crate) reads: mpsc::Receiver<ReadWaiter>,
    pub(crate) peer_messages: mpsc::Receiver<Bytes>,
    pub(crate) stop: watch::Receiver<bool>,
}

struct Proposer {
    ctx: ProposerCtx,
    link: Option<LeaderLink>,
    link_counter: u64,
    waiting_reads: Vec<ReadWaiter>,
    no_leader_since: Option<tokio::time::Instant>,
}

/// Drains the proposal queue into Raft or to the leader. One task for all proposals; never
/// waits for a commit.
pub(crate) async fn run_proposer(ctx: ProposerCtx, mut inputs: ProposerInputs) {
    let mut metrics = ctx.raft.server_metrics();
    let mut p = Proposer {
        ctx,
        link: None,
        link_counter: 0,
        waiting_reads: Vec::new(),
        no_leader_since: None,
    };
    let mut batch = Vec::with_capacity(PROPOSAL_BATCH_MAX);
    let mut peer_batch = Vec::with_capacity(PEER_BATCH_MAX);
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let leader = p.leader();
        if let Some(l) = &p.link {
            if Some(l.leader_id) != leader {
                p.fail_link("leadership moved");
            }
        }
        let can_take = match leader {
            Some(id) if id == p.ctx.node_id => true,
            Some(_) => p
                .link
                .as_ref()
                .is_none_or(|l| l.pending.len() < p.ctx.forward_window),
            None => false,
        };
        let link_open = p.link.is_some();
        tokio::select! {
            biased;
            _ = inputs.stop.changed() => break,
            changed = metrics.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            msg = async { match p.link.as_mut() { Some(l) => l.recv().await, None => std::future::pending().await } }, if link_open => {
                p.on_link_message(msg);
            }
            n = inputs.proposals.recv_many(&mut batch, PROPOSAL_BATCH_MAX), if can_take => {
                if n == 0 {
                    break;
                }
                if !p.submit(leader, &mut batch).await {
                    break;
                }
            }
            Some(w) = inputs.reads.recv() => {
                p.waiting_reads.push(w);
            }
            n = inputs.peer_messages.recv_many(&mut peer_batch, PEER_BATCH_MAX) => {
                if n > 0 {
                    p.send_peer_messages(leader, &mut peer_batch).await;
                }
            }
            _ = tick.tick() => {
                p.housekeeping(leader, &mut inputs.proposals);
            }
        }
        p.send_reads(p.leader()).await;
    }
    // Whatever is still queued or in flight will not be submitted through us.
    p.fail_link("shutting down");
    inputs.proposals.close();
    while let Ok(prop) = inputs.proposals.try_recv() {
        p.ctx
            .sink
            .reject(&prop.payload, Rejection::NotLeader { leader_id: None });
    }
    for w in p.waiting_reads.drain(..) {
        let _ = w.send(Err(ReplicationError::ShutDown));
    }
    tracing::debug!("proposer stopped");
}

impl Proposer {
    fn leader(&self) -> Option<u64> {
        self.ctx
            .raft
            .server_metrics()
            .borrow_watched()
            .current_leader
    }

    fn leader_addr(&self, leader: u64) -> Option<String> {
        let m = self.ctx.raft.server_metrics();
        let m = m.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Submit or forward a batch; false when Raft has stopped.
    async fn submit(&mut self, leader: Option<u64>, batch: &mut Vec<Proposal>) -> bool {
        let epoch = self.ctx.sink.epoch();
        let sink = self.ctx.sink.clone();
        let mut payloads = Vec::with_capacity(batch.len());
        for prop in batch.drain(..) {
            if prop.epoch < epoch {
                // Proposed before an earlier proposal's rejection was reported.
                sink.reject(&prop.payload, Rejection::NotLeader { leader_id: leader });
            } else {
                payloads.push(prop.payload);
            }
        }
        if payloads.is_empty() {
            return true;
        }
        let n = payloads.len() as u64;
        match leader {
            Some(id) if id == self.ctx.node_id => {
                let seqs = sink.track(&payloads);
                for (seq, payload) in seqs.zip(payloads) {
                    let responder = ProposalResponder::new(seq, sink.clone());
                    if let Err(e) = self
                        .ctx
                        .raft
                        .client_write_ff(Payload(payload), Some(responder))
                        .await
                    {
                        tracing::error!(error = %e, "raft stopped; the proposer exits");
                        // This one and the rest are still tracked: report them all.
                        sink.expire_stalled(Duration::ZERO, None);
                        return false;
                    }
                }
                sink.submitted.fetch_add(n, Ordering::Relaxed);
            }
            Some(id) => {
                if self.ensure_link(id).await {
                    if let Some(link) = self.link.as_mut() {
                        let res = link.forward(payloads).await;
                        sink.submitted.fetch_add(n, Ordering::Relaxed);
                        sink.forwarded.fetch_add(n, Ordering::Relaxed);
                        if let Err(e) = res {
                            tracing::warn!(leader = id, error = %e, "forwarding to the leader failed");
                            self.fail_link("forwarding failed");
                        }
                    }
                } else {
                    for payload in payloads {
                        sink.reject(
                            &payload,
                            Rejection::NotLeader {
                                leader_id: Some(id),
                            },
                        );
                    }
                }
            }
            None => {
                for payload in payloads {
                    sink.reject(&payload, Rejection::NotLeader { leader_id: None });
                }
            }
        }
        true
    }

    /// Open a link to `leader` unless one is open; false when it cannot be reached.
    async fn ensure_link(&mut self, leader: u64) -> bool {
        if self.link.as_ref().is_some_and(|l| l.leader_id == leader) {
            return true;
        }
        self.fail_link("leadership moved");
        let Some(addr) = self.leader_addr(leader) else {
            tracing::warn!(leader, "the leader has no address in the membership");
            return false;
        };
        self.link_counter += 1;
        let generation = (self.ctx.boot_nanos, self.link_counter);
        match LeaderLink::connect(
            self.ctx.node_id,
            leader,
            &addr,
            generation,
            self.ctx.connect_timeout,
        )
        .await
        {
            Ok(link) => {
                self.link = Some(link);
                true
            }
            Err(e) => {
                tracing::warn!(leader, %addr, error = %e, "cannot open the link to the leader");
                false
            }
        }
    }

    /// Close the link: everything in flight on it has an unknown outcome.
    fn fail_link(&mut self, why: &str) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        let leader_id = Some(link.leader_id);
        if !link.pending.is_empty() {
            tracing::info!(
                leader = link.leader_id,
                in_flight = link.pending.len(),
                why,
                "link to the leader closed with proposals in flight"
            );
        }
        for (_, payload) in std::mem::take(&mut link.pending) {
            self.ctx
                .sink
                .reject(&payload, Rejection::Discarded { leader_id });
        }
        if let Some((_, waiters)) = link.read_inflight.take() {
            for w in waiters {
                let _ = w.send(Err(ReplicationError::NotLeader {
                    leader_id: self.leader(),
                }));
            }
        }
    }

    fn on_link_message(&mut self, msg: std::io::Result<LinkResp>) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match msg {
            Ok(LinkResp::Outcomes {
                committed,
                rejected,
            }) => {
                link.last_progress = std::time::Instant::now();
                for seq in committed {
                    link.pending.remove(&seq);
                }
                let mut refused = Vec::new();
                for (seq, rejection) in rejected {
                    if let Some(payload) = link.pending.remove(&seq) {
                        refused.push((payload, rejection));
                    }
                }
                for (payload, rejection) in refused {
                    self.ctx.sink.reject(&payload, rejection);
                }
            }
            Ok(LinkResp::ReadIndex { id, result }) => {
                if let Some((inflight, waiters)) = link.read_inflight.take() {
                    if inflight != id {
                        link.read_inflight = Some((inflight, waiters));
                        return;
                    }
                    let leader_id = Some(link.leader_id);
                    for w in waiters {
                        let r = match &result {
                            Ok(index) => Ok(*index),
                            Err(msg) if msg.contains("forward") || msg.contains("Forward") => {
                                Err(ReplicationError::NotLeader { leader_id })
                            }
                            Err(msg) => Err(ReplicationError::NoQuorum(msg.clone())),
                        };
                        let _ = w.send(r);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "link to the leader broke");
                self.fail_link("the link broke");
            }
        }
    }

    /// Send the waiting read-index callers' request, unless one is in flight.
    async fn send_reads(&mut self, leader: Option<u64>) {
        if self.waiting_reads.is_empty() {
            return;
        }
        let Some(leader) = leader else {
            return;
        };
        if leader == self.ctx.node_id {
            // Leadership came here: the caller reads locally.
            for w in self.waiting_reads.drain(..) {
                let _ = w.send(Err(ReplicationError::NotLeader {
                    leader_id: Some(leader),
                }));
            }
            return;
        }
        if self
            .link
            .as_ref()
            .is_some_and(|l| l.read_inflight.is_some())
        {
            return;
        }
        if !self.ensure_link(leader).await {
            for w in self.waiting_reads.drain(..) {
                let _ = w.send(Err(ReplicationError::NotLeader {
                    leader_id: Some(leader),
                }));
            }
            return;
        }
        let waiters = std::mem::take(&mut self.waiting_reads);
        if let Some(link) = self.link.as_mut() {
            if let Err(e) = link.read_index(waiters).await {
                tracing::debug!(error = %e, "sending a read-index request failed");
                self.fail_link("sending failed");
            }
        }
    }

    async fn send_peer_messages(&mut self, leader: Option<u64>, batch: &mut Vec<Bytes>) {
        let n = batch.len() as u64;
        let msgs = std::mem::take(batch);
        match leader {
            Some(id) if id == self.ctx.node_id => {
                for m in msgs {
                    self.ctx.sink.applier.on_peer_message(id, &m);
                }
            }
            Some(id) if self.ensure_link(id).await => {
                if let Some(link) = self.link.as_mut() {
                    if let Err(e) = link.peer_messages(msgs).await {
                        tracing::debug!(error = %e, "sending peer messages failed");
                        self.ctx
                            .sink
                            .peer_messages_dropped
                            .fetch_add(n, Ordering::Relaxed);
                        self.fail_link("sending failed");
                    }
                }
            }
            _ => {
                self.ctx
                    .sink
                    .peer_messages_dropped
                    .fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Report proposals stuck behind a leader that cannot commit, and reject what has waited
    /// too long for a leader to be known.
    fn housekeeping(&mut self, leader: Option<u64>, queue: &mut mpsc::Receiver<Proposal>) {
        let stalled = self.ctx.sink.expire_stalled(self.ctx.stall_timeout, leader);
        if stalled > 0 {
            tracing::warn!(
                stalled,
                "proposals not committed within the stall timeout (no quorum?); reported as of unknown outcome"
            );
        }
        if let Some(link) = &self.link {
            if !link.pending.is_empty() && link.last_progress.elapsed() > self.ctx.stall_timeout {
                self.fail_link("no outcome from the leader within the stall timeout");
            }
        }
        if leader.is_some() {
            self.no_leader_since = None;
            return;
        }
        let now = tokio::time::Instant::now();
        let since = *self.no_leader_since.get_or_insert(now);
        if now.duration_since(since) < self.ctx.no_leader_wait {
            return;
        }
        let mut n = 0;
        while let Ok(prop) = queue.try_recv() {
            self.ctx
                .sink
                .reject(&prop.payload, Rejection::NotLeader { leader_id: None });
            n += 1;
        }
        for w in self.waiting_reads.drain(..) {
            let _ = w.send(Err(ReplicationError::NotLeader { leader_id: None }));
        }
        if n > 0 {
            tracing::warn!(
                rejected = n,
                "no leader known for a while; rejected the queued proposals"
            );
        }
    }
}
