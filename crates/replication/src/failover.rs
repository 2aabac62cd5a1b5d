//! Noticing a crashed leader at once. ZooKeeper's followers elect a new leader moments after
//! the leader's process dies, because its sockets close; a Raft follower waits out its
//! election timeout (two ticks or more) and, until then, refuses to vote for anyone else (the
//! leader lease). A leader stopped by its operator hands over first (`Replica::shutdown`); this
//! covers the one that crashed or was killed.
//!
//! When a replication connection from the current leader closes, a voter probes the leader's
//! replication port. A port that refuses connections means no process is listening there: the
//! leader is down. (A paused or partitioned leader does not refuse, and is left to the election
//! timeout, as ZooKeeper leaves it to `syncLimit`.) Then the surviving voters stand, one at a
//! time in the order of their ids, [`STAGGER`] apart, each only while no new leader is known,
//! with openraft's leadership-transfer election: the same vote request, granted by a voter
//! whose log is no newer, but without waiting for the dead leader's lease to run out. The
//! order keeps two voters from splitting the vote; if the first one's log is behind another's,
//! its election fails and the next one stands.

use std::time::Duration;

use openraft::raft::TransferLeaderRequest;
use openraft::type_config::async_runtime::watch::WatchReceiver as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::types::Raft;

/// Between one surviving voter standing for election and the next.
const STAGGER: Duration = Duration::from_millis(300);
/// Longest wait for the dead leader's port to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Peers whose replication connection to this server closed, reported by the transport.
pub(crate) type PeerGone = mpsc::Sender<u64>;

/// Reports queued before the watcher takes them; more are dropped (the watcher only needs
/// to hear of the leader's connection once).
pub(crate) const PEER_GONE_QUEUE: usize = 64;

/// Watches for the leader's connections closing until `stop`.
pub(crate) async fn run(
    node_id: u64,
    raft: Raft,
    mut gone: mpsc::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let from = tokio::select! {
            biased;
            _ = stop.changed() => return,
            from = gone.recv() => match from {
                Some(from) => from,
                None => return,
            },
        };
        if *stop.borrow() {
            return;
        }
        let Some(standing) = standing_after(node_id, &raft, from) else {
            continue;
        };
        if !refuses_connections(&standing.leader_addr).await {
            continue;
        }
        tracing::warn!(
            leader = from,
            addr = %standing.leader_addr,
            "the leader's connection closed and its port refuses connections: it is down"
        );
        if !standing.wait.is_zero() {
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                _ = tokio::time::sleep(standing.wait) => {}
            }
        }
        stand(node_id, &raft, from).await;
    }
}

/// This voter's turn after leader `from` went down.
struct Standing {
    leader_addr: String,
    wait: Duration,
}

/// `None` unless `from` is the current leader, and this server is another voter.
fn standing_after(node_id: u64, raft: &Raft, from: u64) -> Option<Standing> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    if from == node_id || m.current_leader != Some(from) {
        return None;
    }
    let membership = m.membership_config.membership();
    let survivors: Vec<u64> = membership.voter_ids().filter(|id| *id != from).collect();
    let rank = survivors.iter().position(|id| *id == node_id)?;
    let leader_addr = membership.get_node(&from)?.addr.clone();
    Some(Standing {
        leader_addr,
        wait: STAGGER * rank as u32,
    })
}

/// Whether nothing listens at `addr`. Connected (alive, or paused with its backlog still
/// accepting), unreachable or slow: not known to be down.
async fn refuses_connections(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Stand for election unless a leader other than the dead one is known by now.
async fn stand(node_id: u64, raft: &Raft, dead: u64) {
    let vote = {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        if m.current_leader.is_some_and(|l| l != dead) {
            tracing::info!(leader = ?m.current_leader, "a new leader is known; not standing");
            return;
        }
        m.vote
    };
    tracing::info!(
        dead,
        "standing for election without waiting out the dead leader's lease"
    );
    // From this server's own vote to itself: openraft lifts the lease and starts a
    // leadership-transfer election (no log position to wait for: `None`).
    let req = TransferLeaderRequest::new(vote, node_id, None);
    match raft.handle_transfer_leader(req).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::info!(error = %e, "not standing: the vote moved on"),
        Err(e) => tracing::warn!(error = %e, "cannot stand for election"),
    }
}
