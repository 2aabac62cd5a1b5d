//! Forming the group without manual steps. Every participant started from the same member list
//! runs this once, in the background, when it has no Raft state:
//!
//! 1. Probe the other participants. If any of them already has state, a group exists: wait to
//!    be contacted by its leader (a restarted or re-imaged server rejoins this way; a server
//!    with state never initializes again).
//! 2. Otherwise, once a quorum of participants (this one included) answers, the
//!    lowest-numbered of those that answered initializes the group with every participant as a
//!    voter. Two servers that see different quorums may both initialize, which is safe:
//!    openraft allows `initialize` on several nodes with an identical membership, and the
//!    election picks one leader.
//!
//! Then, on whichever server leads while the membership is still the initial one, observers
//! are added as learners in one membership change. Observers never initialize anything: they
//! wait for the leader to replicate to them.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::types::PeerNode;
use openraft::type_config::async_runtime::watch::WatchReceiver as _;
use openraft::ChangeMembers;
use tokio::sync::watch;

use crate::network;
use crate::replica::Member;
use crate::types::Raft;

/// Pause between bootstrap rounds.
const ROUND_INTERVAL: Duration = Duration::from_millis(200);

pub(crate) struct Bootstrap {
    pub(crate) node_id: u64,
    pub(crate) raft: Raft,
    pub(crate) members: BTreeMap<u64, Member>,
    pub(crate) probe_timeout: Duration,
}

/// Run until the group is formed here and its observers are members, or until stopped.
pub(crate) async fn run(b: Bootstrap, mut stop: watch::Receiver<bool>) {
    let voters: BTreeSet<u64> = b
        .members
        .iter()
        .filter(|(_, m)| !m.observer)
        .map(|(id, _)| *id)
        .collect();
    let observers: BTreeMap<u64, PeerNode> = b
        .members
        .iter()
        .filter(|(_, m)| m.observer)
        .map(|(id, m)| (*id, PeerNode::new(m.addr.clone(), m.spec.clone())))
        .collect();
    let is_voter = voters.contains(&b.node_id);
    let mut initialized = matches!(b.raft.is_initialized().await, Ok(true));
    let mut others_have_state = false;
    loop {
        if !initialized && is_voter && !others_have_state {
            match try_initialize(&b, &voters).await {
                Round::Initialized => initialized = true,
                Round::GroupExists => {
                    tracing::info!("another participant has state; waiting for its leader");
                    others_have_state = true;
                }
                Round::Wait => {}
            }
        }
        if !initialized {
            initialized = matches!(b.raft.is_initialized().await, Ok(true));
        }
        if initialized && add_observers(&b, &observers).await {
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(ROUND_INTERVAL) => {}
        }
    }
}

enum Round {
    Initialized,
    GroupExists,
    Wait,
}

async fn try_initialize(b: &Bootstrap, voters: &BTreeSet<u64>) -> Round {
    let mut probes = Vec::new();
    for id in voters.iter().filter(|id| **id != b.node_id) {
        let Some(m) = b.members.get(id) else { continue };
        let addr = m.addr.clone();
        let (from, timeout, id) = (b.node_id, b.probe_timeout, *id);
        probes.push(async move { (id, network::probe(from, &addr, timeout).await) });
    }
    let answers = futures_util::future::join_all(probes).await;
    let mut reachable = BTreeSet::from([b.node_id]);
    for (id, answer) in answers {
        match answer {
            Ok((node_id, has_state)) => {
                if node_id != id {
                    tracing::warn!(
                        expected = id,
                        answered = node_id,
                        "a member's address answers with another server id; check the member list"
                    );
                    continue;
                }
                if has_state {
                    return Round::GroupExists;
                }
                reachable.insert(id);
            }
            Err(e) => tracing::debug!(peer = id, error = %e, "bootstrap probe failed"),
        }
    }
    let quorum = voters.len() / 2 + 1;
    if reachable.len() < quorum || reachable.iter().next() != Some(&b.node_id) {
        return Round::Wait;
    }
    // Last look: something may have replicated to us while we probed.
    if matches!(b.raft.is_initialized().await, Ok(true)) {
        return Round::Initialized;
    }
    let nodes: BTreeMap<u64, PeerNode> = voters
        .iter()
        .filter_map(|id| {
            b.members
                .get(id)
                .map(|m| (*id, PeerNode::new(m.addr.clone(), m.spec.clone())))
        })
        .collect();
    tracing::info!(voters = ?nodes.keys().collect::<Vec<_>>(), reachable = ?reachable, "initializing a new replication group");
    match b.raft.initialize(nodes).await {
        Ok(()) => Round::Initialized,
        Err(openraft::errors::RaftError::APIError(
            openraft::errors::InitializeError::NotAllowed(_),
        )) => Round::Initialized,
        Err(e) => {
            tracing::error!(error = %e, "cannot initialize the replication group");
            Round::Wait
        }
    }
}

/// Add the configured observers as learners if this server leads the initial membership.
/// True when there is nothing left to do here.
async fn add_observers(b: &Bootstrap, observers: &BTreeMap<u64, PeerNode>) -> bool {
    let (is_leader, missing, initial) = {
        let m = b.raft.server_metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        let missing: BTreeMap<u64, PeerNode> = observers
            .iter()
            .filter(|(id, _)| membership.get_node(id).is_none())
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let index = m.membership_config.log_id().map(|l| l.index);
        if index.is_none() {
            // Not formed yet here (or the metrics lag behind `initialize`).
            return false;
        }
        (
            m.current_leader == Some(b.node_id),
            missing,
            index == Some(0),
        )
    };
    if missing.is_empty() || !initial {
        // Done, or the membership was changed since the group formed: reconfiguration owns it.
        return true;
    }
    if !is_leader {
        return false;
    }
    tracing::info!(observers = ?missing.keys().collect::<Vec<_>>(), "adding observers as learners");
    match b
        .raft
        .change_membership(ChangeMembers::AddNodes(missing), false)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "adding observers failed; will retry");
            false
        }
    }
}
