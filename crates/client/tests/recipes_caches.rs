//! Node, children and tree caches (`corral_client::recipes::cache`)
//! against Apache ZooKeeper 3.8 and Corral: the initial load, one event
//! per change, and a rebuild that reports what changed while the client
//! was disconnected.

mod recipes_support;
mod support;

use std::time::Duration;

use corral_client::recipes::cache::{CacheEvent, ChildrenCache, NodeCache, TreeCache};
use corral_client::{Acl, CreateMode, SessionState};
use recipes_support::{eventually, through, within, EVENT_TIMEOUT};
use support::{servers, wait_state, Proxy};
use tokio::sync::broadcast;

async fn next(events: &mut broadcast::Receiver<CacheEvent>) -> CacheEvent {
    within("a cache event", events.recv()).await.unwrap()
}

/// (kind, path) of an event, for compact assertions.
fn brief(event: &CacheEvent) -> (&'static str, String) {
    let kind = match event {
        CacheEvent::Created(_) => "created",
        CacheEvent::Changed { .. } => "changed",
        CacheEvent::Deleted(_) => "deleted",
        CacheEvent::Rebuilt => "rebuilt",
    };
    (kind, event.path().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cache_follows_one_config_node() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        let writer = server.client().await;
        let open = Acl::open_unsafe();
        let cache = NodeCache::start(&c, "/config").await.unwrap();
        assert_eq!(cache.get(), None);
        let mut events = cache.subscribe();

        writer
            .create("/config", b"v1", &open, CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("created", "/config".into())
        );
        assert_eq!(cache.get().unwrap().data, b"v1");
        writer.set_data("/config", b"v2", None).await.unwrap();
        match next(&mut events).await {
            CacheEvent::Changed { old, new } => {
                assert_eq!((old.data, new.data), (b"v1".to_vec(), b"v2".to_vec()));
            }
            other => panic!("{other:?}"),
        }
        // Children are not the node cache's business.
        writer
            .create("/config/child", b"", &open, CreateMode::Persistent)
            .await
            .unwrap();
        writer.delete("/config/child", None).await.unwrap();
        writer.delete("/config", None).await.unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("deleted", "/config".into())
        );
        assert_eq!(cache.get(), None);
        cache.close().await;
        c.close().await.unwrap();
        writer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_children_cache_loads_then_reports_each_change() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        let open = Acl::open_unsafe();
        c.create("/workers", b"", &open, CreateMode::Persistent)
            .await
            .unwrap();
        c.create("/workers/a", b"1", &open, CreateMode::Persistent)
            .await
            .unwrap();
        let cache = ChildrenCache::start(&c, "/workers").await.unwrap();
        let names: Vec<_> = cache.children().into_keys().collect();
        assert_eq!(names, ["a"]);
        let mut events = cache.subscribe();

        c.create("/workers/b", b"2", &open, CreateMode::Ephemeral)
            .await
            .unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("created", "/workers/b".into())
        );
        c.set_data("/workers/a", b"1'", None).await.unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("changed", "/workers/a".into())
        );
        assert_eq!(cache.get("a").unwrap().data, b"1'");
        // Grandchildren are beyond a children cache.
        c.create("/workers/a/deep", b"", &open, CreateMode::Persistent)
            .await
            .unwrap();
        c.delete("/workers/b", None).await.unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("deleted", "/workers/b".into())
        );
        assert_eq!(cache.children().len(), 1);
        cache.close().await;
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cache_is_rebuilt_after_a_reconnect_with_the_missed_changes() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        let writer = server.client().await;
        let open = Acl::open_unsafe();
        for (path, data) in [
            ("/app", ""),
            ("/app/x", "1"),
            ("/app/x/y", "2"),
            ("/app/z", "3"),
        ] {
            writer
                .create(path, data.as_bytes(), &open, CreateMode::Persistent)
                .await
                .unwrap();
        }
        let tree = TreeCache::start(&c, "/app").await.unwrap();
        let paths: Vec<_> = tree.snapshot().into_keys().collect();
        assert_eq!(paths, ["/app", "/app/x", "/app/x/y", "/app/z"]);
        let mut events = tree.subscribe();
        writer
            .create("/app/x/y/w", b"deep", &open, CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(
            brief(&next(&mut events).await),
            ("created", "/app/x/y/w".into())
        );

        // Changes made while the cache's client is away are found on
        // reconnect.
        proxy.set_blocked(true);
        proxy.cut();
        wait_state(&c, SessionState::Disconnected, EVENT_TIMEOUT).await;
        writer.set_data("/app/z", b"3'", None).await.unwrap();
        writer.delete("/app/x/y/w", None).await.unwrap();
        writer
            .create("/app/new", b"n", &open, CreateMode::Persistent)
            .await
            .unwrap();
        proxy.set_blocked(false);
        wait_state(&c, SessionState::Connected, EVENT_TIMEOUT).await;
        let mut seen = Vec::new();
        loop {
            let event = next(&mut events).await;
            if event == CacheEvent::Rebuilt {
                break;
            }
            seen.push(brief(&event));
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                ("changed", "/app/z".to_owned()),
                ("created", "/app/new".to_owned()),
                ("deleted", "/app/x/y/w".to_owned()),
            ]
        );
        assert_eq!(tree.get("/app/z").unwrap().data, b"3'");
        // And it keeps following afterwards.
        writer.delete("/app/new", None).await.unwrap();
        eventually("the delete after the rebuild", || async {
            tree.get("/app/new").is_none()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        tree.close().await;
        c.close().await.unwrap();
        writer.close().await.unwrap();
        server.stop().await;
    }
}
