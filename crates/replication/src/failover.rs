//! Noticing a crashed leader at once. ZooKeeper's followers elect a new leader moments after
//! the leader's process dies, because its sockets close; a Raft follower waits out its
//! election timeout (two ticks or more) and, until then, refuses to vote for anyone else (the
//! leader lease). A leader stopped by its operator hands over first (`Replica::shutdown`); this
//! covers the one that crashed or was killed.
//!
//! When a replication connection from the current leader closes, a voter probes the leader's
//! replication port. A port where nothing listens (it refuses the probe, or resets it at once)
//! means the leader's process is gone. (A paused or partitioned leader does neither, and is
//! left to the election timeout, as ZooKeeper leaves it to `syncLimit`.) The surviving voters then ask each other for
//! their last log ids and stand in the same order on each of them: the newest log first (ties:
//! the lowest id), the next [`STAGGER`] later and only if no new leader is known by then. Each
//! stands with openraft's leadership-transfer election: the usual vote request, granted only
//! to a log at least as new as the voter's, but without waiting for the dead leader's lease to
//! run out. The newest log standing first is what makes the first election succeed: a voter
//! whose log lacks an entry another survivor holds would be refused.
use std::time::Duration;

use openraft::raft::TransferLeaderRequest;
use openraft::type_config::async_runtime::watch::WatchReceiver as _;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::log_store::LogReader;
use crate::network;
use crate::types::LogId;
use crate::types::Raft;

/// Between one surviving voter standing for election and the next.
const STAGGER: Duration = Duration::from_millis(300);
/// Longest wait for the dead leader's port to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a probe's connection must stay open for the leader to count as alive.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// Peers whose replication connection to this server closed, reported by the transport.
pub(crate) type PeerGone = mpsc::Sender<u64>;

/// Reports queued before the watcher takes them; more are dropped (the watcher only needs
/// to hear of the leader's connection once).
pub(crate) const PEER_GONE_QUEUE: usize = 64;

/// Watches for the leader's connections closing until `stop`.
pub(crate) async fn run(
    node_id: u64,
    raft: Raft,
    log: LogReader,
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
        let Some(survivors) = survivors_of(node_id, &raft, from) else {
            continue;
        };
        if !is_down(&survivors.leader_addr).await {
            continue;
        }
        tracing::warn!(
            leader = from,
            addr = %survivors.leader_addr,
            "the leader's connection closed and nothing listens at its port: it is down"
        );
        let wait = wait_before_standing(node_id, &log, &survivors.others).await;
        if !wait.is_zero() {
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        stand(node_id, &raft, from).await;
    }
}

/// The voters that may take over from a dead leader.
struct Survivors {
    leader_addr: String,
    /// The other surviving voters and their replication addresses.
    others: Vec<(u64, String)>,
}

/// `None` unless `from` is the current leader, and this server is another voter.
fn survivors_of(node_id: u64, raft: &Raft, from: u64) -> Option<Survivors> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    if from == node_id || m.current_leader != Some(from) {
        return None;
    }
    let membership = m.membership_config.membership();
    if !membership.voter_ids().any(|id| id == node_id) {
        return None;
    }
    let others = membership
        .voter_ids()
        .filter(|id| *id != from && *id != node_id)
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
        .collect();
    let leader_addr = membership.get_node(&from)?.addr.clone();
    Some(Survivors {
        leader_addr,
        others,
    })
}

/// How long this voter waits before standing: [`STAGGER`] per survivor ahead of it, newest
/// log first, then lowest id. Survivors that do not answer are left out.
async fn wait_before_standing(node_id: u64, log: &LogReader, others: &[(u64, String)]) -> Duration {
    let mine = log.last_log_id();
    let asks = others.iter().map(|(id, addr)| async move {
        (
            *id,
            network::last_log(node_id, addr, PROBE_TIMEOUT).await.ok(),
        )
    });
    let mut order: Vec<(Option<LogId>, u64)> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(id, last)| last.map(|last| (last, id)))
        .collect();
    order.push((mine, node_id));
    standing_order(&mut order);
    let ahead = order.iter().position(|(_, id)| *id == node_id).unwrap_or(0);
    STAGGER * ahead as u32
}

/// Newest log first, then lowest id.
fn standing_order(order: &mut [(Option<LogId>, u64)]) {
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
}

/// Whether nothing listens at `addr`: it refuses connections, or the one it accepted closes
/// at once. (The leader's connections may close a moment before its listener does, as its
/// process exits: a connection accepted into that listener's backlog is then reset. A live
/// server waits for the connection's hello, so it stays open.) Anything else (connected and
/// open, which includes a paused process whose backlog still accepts; unreachable; slow): not
/// known to be down.
async fn is_down(addr: &str) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(Ok(mut stream)) => {
            let mut byte = [0u8; 1];
            matches!(
                tokio::time::timeout(CLOSE_WAIT, stream.read(&mut byte)).await,
                Ok(Ok(0) | Err(_))
            )
        }
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log_id(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(
            openraft::vote::leader_id_std::CommittedLeaderId::new(term),
            index,
        ))
    }

    #[test]
    fn the_newest_log_stands_first_and_ties_go_to_the_lowest_id() {
        let mut order = vec![
            (log_id(3, 10), 1),
            (log_id(3, 12), 3),
            (None, 0),
            (log_id(4, 11), 5),
            (log_id(3, 12), 2),
        ];
        standing_order(&mut order);
        let ids: Vec<u64> = order.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids, vec![5, 2, 3, 1, 0]);
    }
}
