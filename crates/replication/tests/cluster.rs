//! Ensembles in one process, talking over TCP on 127.0.0.1: they form a group from their
//! member lists in any start order, apply the same entries in the same order, take writes and
//! `sync` on every member, keep observers out of the quorum, elect a new leader when the old
//! one stops, and bring a server that fell far behind up to date with a snapshot.

mod common;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::VecApplier;
use corral_replication::Member;
use corral_replication::Rejection;
use corral_replication::Replica;
use corral_replication::ReplicaConfig;
use corral_replication::Role;
use rand::seq::SliceRandom;
use rand::Rng;
use rand::SeedableRng;

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Servers of one ensemble, each with its own directories, startable and stoppable.
struct Ensemble {
    dir: tempfile::TempDir,
    members: BTreeMap<u64, Member>,
    replicas: BTreeMap<u64, Arc<Replica>>,
    appliers: BTreeMap<u64, Arc<VecApplier>>,
    tune: fn(&mut ReplicaConfig),
}

fn default_tune(cfg: &mut ReplicaConfig) {
    cfg.heartbeat_ms = 100;
    cfg.election_timeout_min_ms = 600;
    cfg.election_timeout_max_ms = 1200;
}

impl Ensemble {
    fn new(voters: u64, observers: u64) -> Ensemble {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("CORRAL_LOG"))
            .with_test_writer()
            .try_init();
        let mut members = BTreeMap::new();
        for id in 1..=voters {
            members.insert(
                id,
                Member::participant(format!("127.0.0.1:{}", free_port())),
            );
        }
        for id in voters + 1..=voters + observers {
            members.insert(id, Member::observer(format!("127.0.0.1:{}", free_port())));
        }
        Ensemble {
            dir: tempfile::tempdir().unwrap(),
            members,
            replicas: BTreeMap::new(),
            appliers: BTreeMap::new(),
            tune: default_tune,
        }
    }

    fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("n{id}"))
    }

    fn config(&self, id: u64) -> ReplicaConfig {
        let d = self.node_dir(id);
        let mut cfg =
            ReplicaConfig::ensemble(id, d.join("data"), d.join("log"), self.members.clone());
        (self.tune)(&mut cfg);
        cfg
    }

    async fn start(&mut self, id: u64) {
        let applier = Arc::new(VecApplier::default());
        let replica = Replica::open(self.config(id), applier.clone())
            .await
            .expect("open");
        self.replicas.insert(id, Arc::new(replica));
        self.appliers.insert(id, applier);
    }

    async fn stop(&mut self, id: u64) {
        if let Some(r) = self.replicas.remove(&id) {
            r.shutdown().await.unwrap();
        }
        self.appliers.remove(&id);
    }

    async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.replicas.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    fn leader(&self) -> Option<u64> {
        self.replicas
            .values()
            .find(|r| r.is_leader())
            .map(|r| r.node_id())
    }

    async fn wait_leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(id) = self.leader() {
                // Every running participant agrees on it (observers hear of it once added).
                if self
                    .replicas
                    .iter()
                    .filter(|(rid, _)| !self.members[*rid].observer)
                    .all(|(_, r)| r.leader_id() == Some(id))
                {
                    return id;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let view: Vec<_> = self
                    .replicas
                    .iter()
                    .map(|(id, r)| (*id, r.metrics().role, r.leader_id()))
                    .collect();
                panic!("no leader elected: {view:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until every running server applied the same `n` entries.
    async fn wait_all_applied(&self, n: usize) -> Vec<(u64, u64, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lens: Vec<usize> = self.appliers.values().map(|a| a.len()).collect();
            if lens.iter().all(|l| *l >= n) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "applied counts {lens:?}, want {n}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reference = self.appliers.values().next().unwrap().entries();
        for (id, a) in &self.appliers {
            assert_eq!(
                a.entries(),
                reference,
                "server {id} applied other entries or another order"
            );
        }
        reference
    }
}

fn text(p: &[u8]) -> String {
    String::from_utf8(p.to_vec()).unwrap()
}

/// Propose `payloads` through server `origin` (whatever its role), re-proposing the ones
/// reported rejected, until all are applied on `origin`.
async fn propose_until_applied(e: &Ensemble, origin: u64, payloads: &[String]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let replica = e.replicas[&origin].clone();
    let applier = e.appliers[&origin].clone();
    let mut pending: Vec<String> = payloads.to_vec();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "proposals through server {origin} not applied in time"
        );
        for p in pending.drain(..) {
            replica.propose(Bytes::from(p)).await.expect("propose");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let applied: HashSet<String> = applier.payloads().iter().map(|p| text(p)).collect();
        for (p, _) in applier.take_rejected() {
            let p = text(&p);
            if !applied.contains(&p) {
                pending.push(p);
            }
        }
        if pending.is_empty() && payloads.iter().all(|p| applied.contains(p)) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_form_a_group_in_any_start_order_and_survive_the_loss_of_the_leader() {
    let seed: u64 = rand::thread_rng().gen();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut e = Ensemble::new(3, 0);
    let mut order = vec![1u64, 2, 3];
    order.shuffle(&mut rng);
    for id in order {
        e.start(id).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..800))).await;
    }
    let leader = e.wait_leader().await;
    let m = e.replicas[&leader].metrics();
    assert_eq!(m.role, Role::Leader);
    assert_eq!(m.voters, vec![1, 2, 3]);

    // Writes through every member, including followers.
    for origin in 1..=3u64 {
        let batch: Vec<String> = (0..100).map(|i| format!("{origin}-a{i}")).collect();
        propose_until_applied(&e, origin, &batch).await;
    }
    let before = e.wait_all_applied(300).await;

    // Stop the leader: the two others elect a new one, in a higher term, within seconds, and
    // nothing committed is lost.
    let old_term = e.replicas[&leader].current_term();
    e.stop(leader).await;
    let started = tokio::time::Instant::now();
    let new_leader = e.wait_leader().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a new leader took {:?}",
        started.elapsed()
    );
    assert_ne!(new_leader, leader);
    assert!(e.replicas[&new_leader].current_term() > old_term);
    let follower = *e.replicas.keys().find(|id| **id != new_leader).unwrap();
    let batch: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    propose_until_applied(&e, follower, &batch).await;
    let after = e.wait_all_applied(400).await;
    assert_eq!(&after[..300], &before[..], "committed entries survive");
    assert!(after[300..].iter().all(|(term, _, _)| *term > old_term));

    // The old leader comes back as a follower and catches up.
    e.start(leader).await;
    e.wait_all_applied(400).await;
    e.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_and_observers_forward_writes_in_order_and_serve_sync() {
    let mut e = Ensemble::new(3, 1);
    for id in [4u64, 3, 2, 1] {
        e.start(id).await;
    }
    let leader = e.wait_leader().await;
    // The observer joins as a learner.
    let deadline = tokio::time::Instant::now() + WAIT;
    while e.replicas[&leader].metrics().learners != vec![4]
        || e.replicas[&4].leader_id() != Some(leader)
    {
        assert!(tokio::time::Instant::now() < deadline, "observer not added");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = e.replicas[&4].metrics();
    assert_eq!(m.role, Role::Learner);
    assert_eq!(m.leader_id, Some(leader));

    // Pipelined writes from the observer and a follower, concurrently.
    let follower = if leader == 1 { 2 } else { 1 };
    let mut tasks = Vec::new();
    for origin in [4u64, follower] {
        let r = e.replicas[&origin].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                r.propose(Bytes::from(format!("{origin}:{i:05}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = e.wait_all_applied(1000).await;
    for origin in [4u64, follower] {
        let mine: Vec<String> = entries
            .iter()
            .map(|(_, _, p)| text(p))
            .filter(|p| p.starts_with(&format!("{origin}:")))
            .collect();
        let mut sorted = mine.clone();
        sorted.sort();
        assert_eq!(
            mine.len(),
            500,
            "every write of server {origin} applied once"
        );
        assert_eq!(
            mine, sorted,
            "server {origin}'s writes applied in proposal order"
        );
        assert!(e.appliers[&origin].take_rejected().is_empty());
    }

    // sync on every member returns an index applied there.
    for id in 1..=4u64 {
        let index = e.replicas[&id].read_index().await.unwrap();
        assert!(index >= entries.last().unwrap().1);
        assert!(e.replicas[&id].last_applied_index() >= Some(index));
    }
    // Concurrent syncs on a follower share round trips and all succeed.
    let r = e.replicas[&follower].clone();
    let syncs: Vec<_> = (0..50)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.read_index().await })
        })
        .collect();
    for s in syncs {
        s.await.unwrap().unwrap();
    }

    // Side channel: follower and observer messages reach the leader's applier.
    e.replicas[&follower]
        .send_to_leader(Bytes::from_static(b"touch-f"))
        .unwrap();
    e.replicas[&4]
        .send_to_leader(Bytes::from_static(b"touch-o"))
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = e.appliers[&leader].peer_messages.lock().unwrap().clone();
        if got.contains(&(follower, b"touch-f".to_vec())) && got.contains(&(4, b"touch-o".to_vec()))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer messages lost: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Leader metrics for srvr/mntr.
    let m = e.replicas[&leader].metrics();
    assert_eq!(m.followers, 2);
    assert_eq!(m.learners_count, 1);
    assert!(m.synced_followers >= 1);
    assert_eq!(m.members.len(), 4);
    assert!(m.members[&4].observer);
    e.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_applies_but_does_not_vote() {
    let mut e = Ensemble::new(3, 1);
    for id in 1..=4u64 {
        e.start(id).await;
    }
    let leader = e.wait_leader().await;
    let batch: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
    propose_until_applied(&e, 4, &batch).await;
    e.wait_all_applied(50).await;

    // Two voters down, the observer up: one voter and one observer are no quorum.
    let survivor = if leader == 3 { 2 } else { 3 };
    for id in 1..=3u64 {
        if id != survivor {
            e.stop(id).await;
        }
    }
    let applied_before = e.appliers[&4].len();
    for i in 0..20 {
        let _ = e.replicas[&4].propose(Bytes::from(format!("y{i}"))).await;
        let _ = e.replicas[&survivor]
            .propose(Bytes::from(format!("z{i}")))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(e.appliers[&4].len(), applied_before, "nothing commits");
    assert_eq!(e.appliers[&survivor].len(), applied_before);
    assert!(!e.replicas[&4].is_leader());
    assert_ne!(e.replicas[&4].metrics().role, Role::Candidate);
    e.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_survive_two_down_and_refuse_writes_with_three_down() {
    let mut e = Ensemble::new(5, 0);
    for id in [5u64, 1, 4, 2, 3] {
        e.start(id).await;
    }
    e.wait_leader().await;
    let batch: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    propose_until_applied(&e, 5, &batch).await;
    e.wait_all_applied(50).await;

    // Two down, including the leader: the other three go on.
    let leader = e.wait_leader().await;
    let other = if leader == 1 { 2 } else { 1 };
    e.stop(leader).await;
    e.stop(other).await;
    e.wait_leader().await;
    let origin = *e.replicas.keys().next().unwrap();
    let batch: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
    propose_until_applied(&e, origin, &batch).await;
    let applied = e.wait_all_applied(100).await;

    // A third down: two of five are no quorum; writes are refused, nothing commits.
    let third = *e.replicas.keys().next().unwrap();
    e.stop(third).await;
    for id in e.replicas.keys().copied().collect::<Vec<_>>() {
        for i in 0..10 {
            let _ = e.replicas[&id]
                .propose(Bytes::from(format!("c{id}-{i}")))
                .await;
        }
    }
    // Within a few election timeouts every proposal is reported as not applied.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rejected: usize = e
            .appliers
            .values()
            .map(|a| a.rejected.lock().unwrap().len())
            .sum();
        if rejected == 20 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {rejected} of 20 proposals reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for a in e.appliers.values() {
        assert_eq!(a.entries(), applied, "nothing commits without a quorum");
        for (_, r) in a.rejected.lock().unwrap().iter() {
            assert!(matches!(
                r,
                Rejection::NotLeader { .. } | Rejection::Discarded { .. }
            ));
        }
    }
    e.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_far_behind_catches_up_by_snapshot() {
    let mut e = Ensemble::new(3, 0);
    e.tune = |cfg| {
        default_tune(cfg);
        cfg.snap_count = 100;
        cfg.logs_kept_after_snapshot = 10;
        cfg.segment_max_bytes = 8192;
    };
    for id in 1..=3u64 {
        e.start(id).await;
    }
    let leader = e.wait_leader().await;
    let lagger = if leader == 3 { 2 } else { 3 };
    e.stop(lagger).await;
    let batch: Vec<String> = (0..1000).map(|i| format!("s{i:04}")).collect();
    let origin = *e.replicas.keys().next().unwrap();
    propose_until_applied(&e, origin, &batch).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while e.replicas[&leader].metrics().purged_index < Some(500) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leader never purged"
        );
        let _ = e.replicas[&leader]
            .propose(Bytes::from_static(b"pad"))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    e.start(lagger).await;
    let n = e.appliers[&leader].len();
    let entries = e.wait_all_applied(n).await;
    assert!(entries.len() >= 1000);
    let m = e.replicas[&lagger].metrics();
    assert!(
        m.snapshots_installed >= 1,
        "the restarted server caught up by snapshot: {m:?}"
    );
    e.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_add_and_remove_members_through_joint_consensus() {
    let mut e = Ensemble::new(3, 0);
    for id in 1..=3u64 {
        e.start(id).await;
    }
    let leader = e.wait_leader().await;
    // A fourth server, not in anyone's list, started with the full list plus itself.
    e.members
        .insert(4, Member::participant(format!("127.0.0.1:{}", free_port())));
    e.start(4).await;
    let addr = e.members[&4].addr.clone();
    // A leader just elected refuses a membership change until it has committed an entry
    // of its own term (openraft: "already undergoing a configuration change" while the
    // initial membership is not known committed); a read index waits for that entry.
    e.replicas[&leader].read_index().await.unwrap();
    e.replicas[&leader].add_voter(4, addr).await.unwrap();
    let m = e.replicas[&leader].metrics();
    assert_eq!(m.voters, vec![1, 2, 3, 4]);
    let batch: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    propose_until_applied(&e, 4, &batch).await;
    e.wait_all_applied(20).await;

    let follower = *e
        .replicas
        .keys()
        .find(|id| **id != leader && **id != 4)
        .unwrap();
    e.replicas[&leader].remove_member(follower).await.unwrap();
    let m = e.replicas[&leader].metrics();
    assert!(!m.members.contains_key(&follower));
    assert!(!m.membership_changing);
    e.stop_all().await;
}
