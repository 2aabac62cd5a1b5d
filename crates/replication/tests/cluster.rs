//! Three replicas in one process, talking over TCP on 127.0.0.1: they elect a leader, apply the
//! same entries in the same order, refuse writes on followers, and elect a new leader when the
//! old one stops.

mod common;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::VecApplier;
use corral_replication::Replica;
use corral_replication::ReplicaConfig;
use corral_replication::ReplicationError;

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_len(applier: &VecApplier, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while applier.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} entries applied",
            applier.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Propose `payloads` on whichever server leads, re-proposing the ones reported rejected (a
/// leader change or a lapsed leader lease on a loaded machine), until all are applied.
async fn propose_until_applied(
    replicas: &BTreeMap<u64, Replica>,
    appliers: &BTreeMap<u64, Arc<VecApplier>>,
    payloads: &[String],
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pending: Vec<String> = payloads.to_vec();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "proposals not applied in time"
        );
        if !pending.is_empty() {
            if let Some(leader) = replicas.values().find(|r| r.is_leader()) {
                let mut batch = std::mem::take(&mut pending).into_iter();
                while let Some(p) = batch.next() {
                    if leader.propose(Bytes::from(p.clone())).await.is_err() {
                        pending.push(p);
                        pending.extend(batch);
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for a in appliers.values() {
            for (p, _) in a.take_rejected() {
                pending.push(String::from_utf8(p).unwrap());
            }
        }
        let applied: HashSet<String> = appliers
            .values()
            .next()
            .unwrap()
            .payloads()
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        pending.retain(|p| !applied.contains(p));
        if pending.is_empty() && payloads.iter().all(|p| applied.contains(p)) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_agree_on_one_log_and_survive_the_loss_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let members: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut opens = Vec::new();
    let mut appliers = BTreeMap::new();
    for id in 1..=3u64 {
        let node_dir = dir.path().join(format!("n{id}"));
        let mut cfg = ReplicaConfig::standalone(id, node_dir.join("data"), node_dir.join("log"));
        cfg.members = members.clone();
        cfg.listen_addr = Some(members[&id].clone());
        cfg.heartbeat_ms = 100;
        cfg.election_timeout_min_ms = 500;
        cfg.election_timeout_max_ms = 1000;
        let applier = Arc::new(VecApplier::default());
        appliers.insert(id, applier.clone());
        opens.push(tokio::spawn(
            async move { Replica::open(cfg, applier).await },
        ));
    }
    let mut replicas = BTreeMap::new();
    for (i, o) in opens.into_iter().enumerate() {
        replicas.insert(i as u64 + 1, o.await.unwrap().expect("open"));
    }

    let leader = replicas[&1].wait_for_leader(WAIT).await.unwrap();
    replicas[&leader].wait_for_leadership(WAIT).await.unwrap();
    let first: Vec<String> = (0..200).map(|i| format!("a{i}")).collect();
    propose_until_applied(&replicas, &appliers, &first).await;
    for a in appliers.values() {
        wait_len(a, 200).await;
    }
    let leader = replicas
        .values()
        .find(|r| r.is_leader())
        .map(|r| r.node_id())
        .unwrap();
    let reference = appliers[&leader].entries();
    for a in appliers.values() {
        assert_eq!(
            a.entries(),
            reference,
            "every server applies the same entries in the same order"
        );
    }

    let follower = *replicas.keys().find(|id| **id != leader).unwrap();
    match replicas[&follower]
        .propose(Bytes::from_static(b"nope"))
        .await
    {
        Err(ReplicationError::NotLeader { leader_id }) => assert_eq!(leader_id, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert!(replicas[&leader].read_index().await.unwrap() >= reference.last().unwrap().1);

    // Stop the leader: the two others elect a new one in a higher term and go on.
    let old_term = replicas[&leader].current_term();
    let old = replicas.remove(&leader).unwrap();
    old.shutdown().await.unwrap();
    appliers.remove(&leader);

    let second: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    propose_until_applied(&replicas, &appliers, &second).await;
    for a in appliers.values() {
        wait_len(a, 300).await;
    }
    let new_leader = replicas
        .values()
        .find(|r| r.is_leader())
        .map(|r| r.node_id())
        .unwrap();
    assert!(replicas[&new_leader].current_term() > old_term);
    let reference = appliers[&new_leader].entries();
    for a in appliers.values() {
        assert_eq!(a.entries(), reference);
    }
    assert!(reference[200..].iter().all(|(term, _, _)| *term > old_term));
    for r in replicas.values() {
        r.shutdown().await.unwrap();
    }
}
