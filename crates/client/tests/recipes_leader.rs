//! Leader latch and leader selector (`corral_client::recipes::leader`)
//! against Apache ZooKeeper 3.8 and Corral: one leader at a time,
//! Curator's `latch-` nodes holding the participant id, the listener told
//! of every gain and loss, and failover when the leader closes, expires or
//! loses its connection.

mod recipes_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::recipes::leader::{LeaderLatch, LeaderSelector, LeadershipEvent};
use corral_client::SessionState;
use recipes_support::{eventually, expire, through, within, EVENT_TIMEOUT};
use support::{servers, wait_state, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_elects_one_leader_and_fails_over_when_it_leaves() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let clients = [
            server.client().await,
            server.client().await,
            server.client().await,
        ];
        let mut latches = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            latches.push(
                LeaderLatch::start(c, "/election", &format!("node-{i}"))
                    .await
                    .unwrap(),
            );
        }
        within("the first leads", latches[0].wait_leadership())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!latches[1].is_leader() && !latches[2].is_leader());

        // Curator's layout: _c_<uuid>-latch-<seq>, data = id.
        let node = latches[0].node_path().unwrap();
        let name = node.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("_c_") && name.contains("-latch-"),
            "{name}"
        );
        assert_eq!(clients[1].get_data(&node).await.unwrap().0, b"node-0");
        let participants = latches[2].participants().await.unwrap();
        let ids: Vec<_> = participants.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["node-0", "node-1", "node-2"]);
        assert!(participants[0].is_leader && !participants[1].is_leader);

        // The listener hears the gain.
        let mut second = latches[1].leadership();
        let first = latches.remove(0);
        first.close().await.unwrap();
        within("the second hears it leads", second.wait_for(|l| *l))
            .await
            .unwrap();
        assert_eq!(
            latches[1].leader().await.unwrap().unwrap().id,
            "node-1",
            "[{}]",
            server.name
        );
        assert!(!latches[1].is_leader());

        // The leader's process dies (session closed): the third leads.
        let mut third = latches[1].leadership();
        clients[1].close().await.unwrap();
        within("the third leads", third.wait_for(|l| *l))
            .await
            .unwrap();
        for latch in latches {
            latch.close().await.unwrap();
        }
        assert!(clients[0]
            .get_children("/election")
            .await
            .unwrap()
            .is_empty());
        clients[0].close().await.unwrap();
        clients[2].close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_gives_up_leadership_while_disconnected_and_after_expiry() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let flaky = through(&proxy).await;
        let steady = server.client().await;
        let leader = LeaderLatch::start(&flaky, "/flaky", "flaky").await.unwrap();
        within("flaky leads", leader.wait_leadership())
            .await
            .unwrap();
        let other = LeaderLatch::start(&steady, "/flaky", "steady")
            .await
            .unwrap();
        let mut events = leader.subscribe();

        // A blip: leadership is dropped at once, and comes back with the
        // session (its node kept its place). The listener hears both.
        proxy.cut();
        let event = within("loss on disconnect", events.recv()).await.unwrap();
        assert_eq!(event, LeadershipEvent::Lost);
        let event = within("back after reconnect", events.recv()).await.unwrap();
        assert_eq!(event, LeadershipEvent::Gained);
        assert!(leader.is_leader() && !other.is_leader());

        // Expiry: leadership is gone for good and passes on.
        expire(&server, &flaky, &proxy).await;
        within("the other leads", other.wait_leadership())
            .await
            .unwrap();
        assert!(!leader.is_leader());
        assert!(leader.wait_leadership().await.is_err());
        drop(leader);
        other.close().await.unwrap();
        steady.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_runs_one_leader_at_a_time_and_requeues() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let running = Arc::new(AtomicUsize::new(0));
        let terms = Arc::new(AtomicUsize::new(0));
        let overlap = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        let mut selectors = Vec::new();
        for i in 0..3 {
            let c = server.client().await;
            let (running, terms, overlap) = (running.clone(), terms.clone(), overlap.clone());
            selectors.push(LeaderSelector::start(
                &c,
                "/master",
                &format!("m-{i}"),
                true,
                move |lead| {
                    let (running, terms, overlap) =
                        (running.clone(), terms.clone(), overlap.clone());
                    async move {
                        assert!(lead.node_path.contains("-lock-"));
                        if running.fetch_add(1, Ordering::SeqCst) != 0 {
                            overlap.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        terms.fetch_add(1, Ordering::SeqCst);
                    }
                },
            ));
            clients.push(c);
        }
        eventually("several terms pass", || async {
            terms.load(Ordering::SeqCst) >= 6
        })
        .await;
        assert_eq!(overlap.load(Ordering::SeqCst), 0, "two leaders at once");
        // Three contenders (one may be between terms, requeueing).
        let participants = selectors[0].participants().await.unwrap();
        assert!((2..=3).contains(&participants.len()), "{participants:?}");
        for s in selectors {
            s.close().await;
        }
        eventually("every node gone", || async {
            clients[0].get_children("/master").await.unwrap().is_empty()
        })
        .await;
        for c in clients {
            c.close().await.unwrap();
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selectors_leadership_is_cancelled_when_its_connection_drops() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let flaky = through(&proxy).await;
        let cancelled = Arc::new(AtomicUsize::new(0));
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let selector = LeaderSelector::start(&flaky, "/cancel", "flaky", false, {
            let cancelled = cancelled.clone();
            move |_lead| {
                let flag = Flag(cancelled.clone());
                async move {
                    // Leads "forever" unless cancelled.
                    std::future::pending::<()>().await;
                    drop(flag);
                }
            }
        });
        let mut events = selector.subscribe();
        let mut leading = selector.leadership();
        within("leads", leading.wait_for(|l| *l)).await.unwrap();
        proxy.cut();
        loop {
            let event = within("cancelled on disconnect", events.recv()).await;
            if event.unwrap() == LeadershipEvent::Lost {
                break;
            }
        }
        assert_eq!(cancelled.load(Ordering::SeqCst), 1);
        wait_state(&flaky, SessionState::Connected, EVENT_TIMEOUT).await;
        // No requeue: the node is released and stays gone.
        let steady = server.client().await;
        eventually("the lock node is released", || async {
            steady.get_children("/cancel").await.unwrap().is_empty()
        })
        .await;
        selector.close().await;
        flaky.close().await.unwrap();
        steady.close().await.unwrap();
        server.stop().await;
    }
}
