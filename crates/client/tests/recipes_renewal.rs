//! Recipes on a client that renews expired sessions
//! (`ClientBuilder::renew_session_on_expiry`, Curator's behaviour), against
//! Apache ZooKeeper 3.8 and Corral: after an expiry forced from a second
//! connection (the victim's session reattached and closed while the victim
//! is cut off), memberships, registrations and latches come back on the
//! new session, caches watch and rebuild again, and locks report the loss.

mod recipes_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use corral_client::recipes::cache::{ChildrenCache, NodeCache, TreeCache};
use corral_client::recipes::discovery::{ServiceDiscovery, ServiceInstance};
use corral_client::recipes::group::GroupMember;
use corral_client::recipes::leader::{LeaderLatch, LeaderSelector, LeadershipEvent};
use corral_client::recipes::lock::Mutex;
use corral_client::recipes::semaphore::Semaphore;
use corral_client::{Acl, CreateMode, Error, EventType, KeeperState, SessionState};
use recipes_support::{eventually, expire_and_renew, through_renewing, within};
use support::{servers, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewing_client_starts_a_new_session_after_an_expiry() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        c.create("/mine", b"", &Acl::open_unsafe(), CreateMode::Ephemeral)
            .await
            .unwrap();
        let (_, watch) = c.exists_watch("/never").await.unwrap();
        let mut states = c.state_watcher();
        states.borrow_and_update();

        expire_and_renew(&server, &c, &proxy).await;
        assert!(c.renews_expired_sessions());
        assert_eq!(c.expired_sessions(), 1, "[{name}]");
        assert!(!c.is_finished());
        // Watchers heard of the expiry, as on a client that ends.
        let event = within("the expired watch", watch).await;
        assert_eq!(
            (event.event_type, event.keeper_state),
            (EventType::None, KeeperState::Expired),
            "[{name}]"
        );
        // The old session's ephemeral went with it; the new one works.
        assert_eq!(other.exists("/mine").await.unwrap(), None, "[{name}]");
        let (_, stat) = c
            .create("/mine", b"", &Acl::open_unsafe(), CreateMode::Ephemeral)
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, c.session_id(), "[{name}]");
        assert_eq!(c.state(), SessionState::Connected);
        c.close().await.unwrap();
        assert!(c.is_finished());
        assert_eq!(c.state(), SessionState::Closed);
        assert_eq!(other.exists("/mine").await.unwrap(), None, "[{name}]");
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_joins_again_on_the_new_session() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        let me = GroupMember::join(&c, "/group", "m1", b"payload")
            .await
            .unwrap();
        let peer = GroupMember::join(&other, "/group", "m2", b"p2")
            .await
            .unwrap();
        eventually("both members seen", || async { me.members().len() == 2 }).await;

        expire_and_renew(&server, &c, &proxy).await;
        eventually(
            "the member node is back, owned by the new session",
            || async {
                matches!(
                    other.exists("/group/m1").await,
                    Ok(Some(stat)) if stat.ephemeral_owner == c.session_id()
                )
            },
        )
        .await;
        assert_eq!(other.get_data("/group/m1").await.unwrap().0, b"payload");
        // The member's own view follows the group again.
        eventually("both members seen again", || async {
            me.members().len() == 2
        })
        .await;
        peer.leave().await.unwrap();
        eventually("the peer's leave seen after the renewal", || async {
            me.members().keys().cloned().collect::<Vec<_>>() == ["m1"]
        })
        .await;
        me.leave().await.unwrap();
        assert_eq!(other.exists("/group/m1").await.unwrap(), None, "[{name}]");
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_registration_comes_back_on_the_new_session() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        let discovery = ServiceDiscovery::new(&c, "/services");
        let instance = ServiceInstance::new("api", "10.0.0.7", 8080).with_id("api-1");
        discovery.register(&instance).await.unwrap();
        let watcher = ServiceDiscovery::new(&other, "/services");
        let cache = watcher.service_cache("api").await.unwrap();
        eventually("the instance seen", || async {
            cache.instances().len() == 1
        })
        .await;

        expire_and_renew(&server, &c, &proxy).await;
        eventually("the instance registered on the new session", || async {
            matches!(
                other.exists("/services/api/api-1").await,
                Ok(Some(stat)) if stat.ephemeral_owner == c.session_id()
            )
        })
        .await;
        eventually("the others' cache sees it again", || async {
            cache
                .instances()
                .iter()
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
                == ["api-1"]
        })
        .await;
        let found = watcher.query_for_instances("api").await.unwrap();
        assert_eq!(found.len(), 1, "[{name}]");
        assert_eq!(
            (found[0].address.as_deref(), found[0].port),
            (Some("10.0.0.7"), Some(8080))
        );
        discovery.close().await.unwrap();
        assert_eq!(other.exists("/services/api/api-1").await.unwrap(), None);
        cache.close().await;
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_latch_loses_leadership_and_joins_again() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        let latch = LeaderLatch::start(&c, "/latch", "a").await.unwrap();
        let mut events = latch.subscribe();
        within("leadership", latch.wait_leadership()).await.unwrap();
        let old_node = latch.node_path().unwrap();
        // A second contender, so that the election is not trivially ours.
        let rival = LeaderLatch::start(&other, "/latch", "b").await.unwrap();

        expire_and_renew(&server, &c, &proxy).await;
        // Leadership was reported lost, and passed to the rival.
        let mut saw = Vec::new();
        while saw.last() != Some(&LeadershipEvent::Lost) {
            saw.push(within("a leadership event", events.recv()).await.unwrap());
        }
        within("the rival leads", rival.wait_leadership())
            .await
            .unwrap();
        // We are back in line with a new node of the new session.
        eventually("a new latch node", || async {
            latch.node_path().is_some_and(|p| p != old_node)
        })
        .await;
        let node = latch.node_path().unwrap();
        let stat = other.exists(&node).await.unwrap().expect("our node");
        assert_eq!(stat.ephemeral_owner, c.session_id(), "[{name}]");
        assert!(!latch.is_leader());
        // And lead again once the rival leaves.
        rival.close().await.unwrap();
        within("leadership again", latch.wait_leadership())
            .await
            .unwrap();
        assert_eq!(
            within("gained again", events.recv()).await.unwrap(),
            LeadershipEvent::Gained
        );
        latch.close().await.unwrap();
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_selector_with_requeue_leads_again_after_an_expiry() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let terms = Arc::new(AtomicUsize::new(0));
        let counter = terms.clone();
        let selector = LeaderSelector::start(&c, "/selector", "a", true, move |_lead| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // Lead until cut short.
                std::future::pending::<()>().await;
            }
        });
        let mut events = selector.subscribe();
        // Leading, and the function running (Gained is announced just
        // before it is first polled).
        eventually("the first term runs", || async {
            terms.load(Ordering::SeqCst) == 1
        })
        .await;

        expire_and_renew(&server, &c, &proxy).await;
        // The first term's Gained may or may not have reached the
        // subscription; the loss comes next, then the new term.
        let mut event = within("an event", events.recv()).await.unwrap();
        if event == LeadershipEvent::Gained {
            event = within("an event", events.recv()).await.unwrap();
        }
        assert_eq!(event, LeadershipEvent::Lost, "[{}]", server.name);
        assert_eq!(
            within("gained again", events.recv()).await.unwrap(),
            LeadershipEvent::Gained
        );
        // Gained is announced just before the function starts running.
        eventually("the function runs again", || async {
            terms.load(Ordering::SeqCst) >= 2
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut later = Vec::new();
        while let Ok(e) = events.try_recv() {
            later.push(e);
        }
        assert_eq!(
            (terms.load(Ordering::SeqCst), later),
            (2, vec![]),
            "[{}] one more term, and nothing after it",
            server.name
        );
        let participants = selector.participants().await.unwrap();
        assert_eq!(participants.len(), 1, "[{}] {participants:?}", server.name);
        selector.close().await;
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_watch_again_and_rebuild_after_an_expiry() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let open = Acl::open_unsafe();
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        other
            .create("/cfg", b"1", &open, CreateMode::Persistent)
            .await
            .unwrap();
        other
            .create("/cfg/a", b"a", &open, CreateMode::Persistent)
            .await
            .unwrap();
        let node = NodeCache::start(&c, "/cfg").await.unwrap();
        let children = ChildrenCache::start(&c, "/cfg").await.unwrap();
        let tree = TreeCache::start(&c, "/cfg").await.unwrap();

        // Changes made while the client is cut off and its session dies.
        proxy.set_blocked(true);
        proxy.cut();
        other.set_data("/cfg", b"2", None).await.unwrap();
        other
            .create("/cfg/b", b"b", &open, CreateMode::Persistent)
            .await
            .unwrap();
        proxy.set_blocked(false);
        expire_and_renew(&server, &c, &proxy).await;
        eventually("the rebuild found the missed changes", || async {
            node.get().is_some_and(|d| d.data == b"2")
                && children.children().len() == 2
                && tree.get("/cfg/b").is_some()
        })
        .await;

        // The watches are set again on the new session.
        other.set_data("/cfg", b"3", None).await.unwrap();
        other.delete("/cfg/a", None).await.unwrap();
        other
            .create("/cfg/b/deep", b"d", &open, CreateMode::Persistent)
            .await
            .unwrap();
        let followed = || {
            (
                node.get().map(|d| d.data),
                children.children().keys().cloned().collect::<Vec<_>>(),
                tree.get("/cfg/b/deep").is_some(),
            )
        };
        let wanted = (Some(b"3".to_vec()), vec!["b".to_owned()], true);
        let deadline = tokio::time::Instant::now() + recipes_support::EVENT_TIMEOUT;
        while followed() != wanted && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(followed(), wanted, "[{name}] later changes followed");
        assert!(tree.get("/cfg/a").is_none(), "[{name}]");
        node.close().await;
        children.close().await;
        tree.close().await;
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_or_lease_held_when_the_session_expired_is_reported_lost() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let proxy = Proxy::start(server.addr).await;
        let c = through_renewing(&proxy).await;
        let other = server.client().await;
        let guard = Mutex::new(&c, "/locks/x").acquire().await.unwrap();
        let lease = Semaphore::new(&c, "/sem", 1).acquire().await.unwrap();
        assert!(!guard.is_lost() && !lease.is_lost());

        expire_and_renew(&server, &c, &proxy).await;
        within("the lock reported lost", guard.lost()).await;
        within("the lease reported lost", lease.lost()).await;
        assert!(guard.is_lost(), "[{name}]");
        assert!(lease.is_lost(), "[{name}]");
        // Someone else can have them now.
        let theirs = within(
            "the other takes the lock",
            Mutex::new(&other, "/locks/x").acquire(),
        )
        .await
        .unwrap();
        let their_lease = within(
            "the other takes the lease",
            Semaphore::new(&other, "/sem", 1).acquire(),
        )
        .await
        .unwrap();
        // Releasing what was lost deletes nothing of theirs.
        guard.release().await.unwrap();
        lease.release().await.unwrap();
        assert!(other.exists(theirs.node_path()).await.unwrap().is_some());
        // The renewed client contends normally again.
        let mine = Mutex::new(&c, "/locks/x")
            .try_acquire(std::time::Duration::from_millis(300))
            .await
            .unwrap();
        assert!(mine.is_none(), "[{name}] the lock is theirs");
        theirs.release().await.unwrap();
        their_lease.release().await.unwrap();
        let mine = within("the lock again", Mutex::new(&c, "/locks/x").acquire())
            .await
            .unwrap();
        assert!(!mine.is_lost());
        mine.release().await.unwrap();
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_an_expiry_still_ends_the_recipes() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = recipes_support::through(&proxy).await;
        let latch = LeaderLatch::start(&c, "/latch", "a").await.unwrap();
        within("leadership", latch.wait_leadership()).await.unwrap();
        recipes_support::expire(&server, &c, &proxy).await;
        assert!(c.is_finished());
        assert_eq!(
            within("the latch ends", latch.wait_leadership()).await,
            Err(Error::SessionExpired)
        );
        server.stop().await;
    }
}
