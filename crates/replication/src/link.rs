//! The link from a follower or observer to the leader (ZooKeeper's learner-to-leader
//! connection): forwarded proposals, read-index requests for `sync`, and side-channel messages
//! such as session liveness. One TCP connection, opened by the origin to whoever leads now.
//!
//! Forwarding keeps per-origin FIFO: proposals travel in order on one connection, numbered
//! consecutively, and the leader submits them to Raft in that order. Each link has a
//! generation, (origin start time, link counter), greater for every new link the origin opens;
//! the leader submits a batch only while it comes from the origin's newest link, under a
//! per-origin lock. So after a link breaks, a batch still buffered on the old connection can
//! never enter the log after proposals the origin sent on its replacement.
//!
//! The leader reports each forwarded proposal back once: committed (it will be applied on
//! every server) or rejected (refused, or dropped by a leader change). The origin turns
//! rejections, and the unknown outcome of everything in flight on a link that breaks, into
//! `Applier::rejected` (see `proposer.rs`).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use openraft::ReadPolicy;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::ReplicationError;
use crate::proposer::ProposalResponder;
use crate::proposer::Rejection;
use crate::transport;
use crate::transport::AbortOnDrop;
use crate::transport::Hello;
use crate::transport::LinkReq;
use crate::transport::LinkResp;
use crate::transport::Reader;
use crate::transport::ServerCtx;
use crate::transport::Writer;
use crate::types::Payload;

/// Inbound frames buffered from the leader before the proposer reads them.
const INBOUND_QUEUE_MAX: usize = 256;
/// Outcomes coalesced into one frame at most.
const OUTCOMES_PER_FRAME_MAX: usize = 4096;

/// What the leader sends back on a link, as queued for the link's writer task.
#[derive(Debug)]
pub(crate) enum LinkOut {
    Committed(u64),
    Rejected(u64, Rejection),
    ReadIndex {
        id: u64,
        result: Result<u64, String>,
    },
}

/// Where a responder of a forwarded proposal reports to. Unbounded on purpose: it is fed by
/// openraft's responders, which must not block, and it holds at most the origin's forwarding
/// window plus one read-index answer (the origin sends no more until it hears back).
pub(crate) type OutcomeSender = mpsc::UnboundedSender<LinkOut>;

/// The leader's view of the origins' links: which generation is current for each.
#[derive(Default)]
pub(crate) struct LinkRegistry {
    origins: Mutex<HashMap<u64, OriginSlot>>,
}

struct OriginSlot {
    generation: (u64, u64),
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl LinkRegistry {
    /// Record a new link; `None` when a newer link of that origin is already known.
    fn register(&self, from: u64, generation: (u64, u64)) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        let slot = origins.entry(from).or_insert_with(|| OriginSlot {
            generation,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        });
        if generation < slot.generation {
            return None;
        }
        slot.generation = generation;
        Some(slot.lock.clone())
    }

    fn is_current(&self, from: u64, generation: (u64, u64)) -> bool {
        let origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        origins.get(&from).map(|s| s.generation) == Some(generation)
    }
}

/// Leader side: serve one origin's link.
pub(crate) async fn serve_link(
    mut r: Reader,
    mut w: Writer,
    mut buf: Vec<u8>,
    ctx: Arc<ServerCtx>,
    from: u64,
    generation: (u64, u64),
) -> io::Result<()> {
    let Some(origin_lock) = ctx.links.register(from, generation) else {
        tracing::debug!(from, ?generation, "refusing a superseded link");
        return Ok(());
    };
    tracing::debug!(from, ?generation, "link from a follower opened");
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<LinkOut>();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256);
        while out_rx.recv_many(&mut batch, OUTCOMES_PER_FRAME_MAX).await > 0 {
            let mut committed = Vec::new();
            let mut rejected = Vec::new();
            for out in batch.drain(..) {
                match out {
                    LinkOut::Committed(seq) => committed.push(seq),
                    LinkOut::Rejected(seq, r) => rejected.push((seq, r)),
                    LinkOut::ReadIndex { id, result } => {
                        transport::send(&mut w, &LinkResp::ReadIndex { id, result }).await?;
                    }
                }
            }
            if !committed.is_empty() || !rejected.is_empty() {
                transport::send(
                    &mut w,
                    &LinkResp::Outcomes {
                        committed,
                        rejected,
                    },
                )
                .await?;
            }
        }
        Ok::<_, io::Error>(())
    });
    let _writer = AbortOnDrop(writer);
    while transport::read_frame(&mut r, &mut buf).await? {
        let req: LinkReq = transport::decode(&buf)?;
        match req {
            LinkReq::Forward {
                first_seq,
                payloads,
            } => {
                let _turn = origin_lock.lock().await;
                let leader_id = ctx.raft.metrics().borrow_watched().current_leader;
                let refuse = if !ctx.links.is_current(from, generation) {
                    Some(Rejection::Discarded { leader_id })
                } else if !ctx.raft.is_leader() {
                    Some(Rejection::NotLeader { leader_id })
                } else {
                    None
                };
                let mut seq = first_seq;
                let mut payloads = payloads.into_iter();
                if refuse.is_none() {
                    for payload in payloads.by_ref() {
                        let responder = ProposalResponder::remote(seq, out_tx.clone());
                        if ctx
                            .raft
                            .client_write_ff(payload, Some(responder))
                            .await
                            .is_err()
                        {
                            // Raft stopped; the responder was dropped with the request.
                            let _ = out_tx.send(LinkOut::Rejected(
                                seq,
                                Rejection::NotLeader { leader_id: None },
                            ));
                            seq += 1;
                            break;
                        }
                        seq += 1;
                    }
                }
                let rejection = refuse.unwrap_or(Rejection::NotLeader { leader_id: None });
                for _ in payloads {
                    let _ = out_tx.send(LinkOut::Rejected(seq, rejection.clone()));
                    seq += 1;
                }
            }
            LinkReq::ReadIndex { id } => {
                let raft = ctx.raft.clone();
                let out = out_tx.clone();
                // At most one in flight per link: the origin batches its callers.
                tokio::spawn(async move {
                    let result = match raft.get_read_log_id(ReadPolicy::ReadIndex).await {
                        Ok((read_log_id, _)) => Ok(read_log_id.index()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = out.send(LinkOut::ReadIndex { id, result });
                });
            }
            LinkReq::PeerMessages(msgs) => {
                if ctx.raft.is_leader() {
                    for m in msgs {
                        ctx.applier.on_peer_message(from, &m.0);
                    }
                }
            }
        }
    }
    Ok(())
}

use openraft::type_config::async_runtime::watch::WatchReceiver as _;

/// Callers of `read_index` waiting for the leader's answer.
pub(crate) type ReadWaiter = oneshot::Sender<Result<u64, ReplicationError>>;

/// Origin side: the open link to the current leader.
pub(crate) struct LeaderLink {
    pub(crate) leader_id: u64,
    w: Writer,
    inbound: mpsc::Receiver<io::Result<LinkResp>>,
    _reader: AbortOnDrop<()>,
    next_seq: u64,
    /// Forwarded proposals without an outcome yet, by sequence number.
    pub(crate) pending: BTreeMap<u64, Bytes>,
    /// The read-index request in flight and the callers it answers.
    pub(crate) read_inflight: Option<(u64, Vec<ReadWaiter>)>,
    next_read_id: u64,
    /// When an outcome last arrived (or forwarding started after an idle spell).
    pub(crate) last_progress: std::time::Instant,
}

impl LeaderLink {
    /// Connect to the leader at `addr`.
    pub(crate) async fn connect(
        from: u64,
        leader_id: u64,
        addr: &str,
        generation: (u64, u64),
        timeout: Duration,
    ) -> io::Result<LeaderLink> {
        let (mut r, w) =
            transport::connect(addr, &Hello::Link { from, generation }, timeout).await?;
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let msg = transport::recv::<_, LinkResp>(&mut r, &mut buf).await;
                let stop = msg.is_err();
                if tx.send(msg).await.is_err() || stop {
                    return;
                }
            }
        });
        tracing::debug!(leader_id, %addr, ?generation, "link to the leader opened");
        Ok(LeaderLink {
            leader_id,
            w,
            inbound,
            _reader: AbortOnDrop(reader),
            next_seq: 0,
            pending: BTreeMap::new(),
            read_inflight: None,
            next_read_id: 0,
            last_progress: std::time::Instant::now(),
        })
    }

    /// Send proposals, in order, without waiting for any answer.
    pub(crate) async fn forward(&mut self, payloads: Vec<Bytes>) -> io::Result<()> {
        let first_seq = self.next_seq;
        if self.pending.is_empty() {
            self.last_progress = std::time::Instant::now();
        }
        for p in &payloads {
            self.pending.insert(self.next_seq, p.clone());
            self.next_seq += 1;
        }
        let req = LinkReq::Forward {
            first_seq,
            payloads: payloads.into_iter().map(Payload).collect(),
        };
        transport::send(&mut self.w, &req).await
    }

    /// Ask for a read index on behalf of `waiters`.
    pub(crate) async fn read_index(&mut self, waiters: Vec<ReadWaiter>) -> io::Result<()> {
        let id = self.next_read_id;
        self.next_read_id += 1;
        self.read_inflight = Some((id, waiters));
        transport::send(&mut self.w, &LinkReq::ReadIndex { id }).await
    }

    /// Send side-channel messages.
    pub(crate) async fn peer_messages(&mut self, msgs: Vec<Bytes>) -> io::Result<()> {
        let req = LinkReq::PeerMessages(msgs.into_iter().map(Payload).collect());
        transport::send(&mut self.w, &req).await
    }

    /// The next frame from the leader; an error when the link broke.
    pub(crate) async fn recv(&mut self) -> io::Result<LinkResp> {
        match self.inbound.recv().await {
            Some(msg) => msg,
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the link reader stopped",
            )),
        }
    }
}
