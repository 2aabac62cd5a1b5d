//! Watches against real servers (Apache ZooKeeper 3.8 and Corral): one-time
//! data, child and exist watches, persistent and persistent-recursive
//! watches, and their removal.

mod support;

use std::time::Duration;

use corral_client::{
    Acl, AddWatchMode, CreateMode, Error, EventType, KeeperState, OneshotWatch, WatchStream,
    WatchedEvent, WatcherType,
};
use support::servers;

const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait to be fairly sure an event is not coming.
const QUIET: Duration = Duration::from_millis(300);

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

async fn fired(watch: OneshotWatch) -> WatchedEvent {
    tokio::time::timeout(EVENT_TIMEOUT, watch)
        .await
        .expect("watch did not fire")
}

async fn next(stream: &mut WatchStream) -> (EventType, String) {
    let event = tokio::time::timeout(EVENT_TIMEOUT, stream.next())
        .await
        .expect("no event")
        .expect("stream ended");
    (event.event_type, event.path)
}

async fn quiet(stream: &mut WatchStream) {
    if let Ok(event) = tokio::time::timeout(QUIET, stream.next()).await {
        panic!("unexpected event {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_fires_once_then_must_be_set_again() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let watcher = server.client().await;
        let writer = server.client().await;
        writer
            .create("/w", b"0", &open(), CreateMode::Persistent)
            .await
            .unwrap();

        let (data, stat, changed) = watcher.get_data_watch("/w").await.unwrap();
        assert_eq!((data.as_slice(), stat.version), (&b"0"[..], 0));
        writer.set_data("/w", b"1", None).await.unwrap();
        let event = fired(changed).await;
        assert_eq!(
            event,
            WatchedEvent {
                event_type: EventType::NodeDataChanged,
                keeper_state: KeeperState::SyncConnected,
                path: "/w".into()
            }
        );

        // The next change is seen only by a new watch.
        let (_, _, again) = watcher.get_data_watch("/w").await.unwrap();
        let (children, kids) = watcher.get_children_watch("/w").await.unwrap();
        assert!(children.is_empty());
        writer
            .create("/w/c", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let event = fired(kids).await;
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::NodeChildrenChanged, "/w")
        );
        writer.delete("/w/c", None).await.unwrap();
        writer.set_data("/w", b"2", None).await.unwrap();
        assert_eq!(fired(again).await.event_type, EventType::NodeDataChanged);

        // exists sets a watch on a missing node, which fires on create...
        let (none, created) = watcher.exists_watch("/later").await.unwrap();
        assert_eq!(none, None);
        writer
            .create("/later", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let event = fired(created).await;
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::NodeCreated, "/later")
        );
        // ...and on an existing one, which fires on delete.
        let (some, deleted) = watcher.exists_watch("/later").await.unwrap();
        assert!(some.is_some());
        let (_, _, data_deleted) = watcher.get_data_watch("/later").await.unwrap();
        writer.delete("/later", None).await.unwrap();
        assert_eq!(fired(deleted).await.event_type, EventType::NodeDeleted);
        assert_eq!(fired(data_deleted).await.event_type, EventType::NodeDeleted);

        // getData on a missing node sets no watch.
        assert!(matches!(
            watcher.get_data_watch("/missing").await,
            Err(Error::NoNode)
        ));

        watcher.close().await.unwrap();
        writer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_resolves_its_pending_watches() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let watcher = server.client().await;
        let (_, pending) = watcher.exists_watch("/never").await.unwrap();
        watcher.close().await.unwrap();
        let event = fired(pending).await;
        assert_eq!(
            (event.event_type, event.keeper_state),
            (EventType::None, KeeperState::Closed)
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_watch_reports_every_descendant_but_no_child_events() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let watcher = server.client().await;
        let writer = server.client().await;
        let mut tree = watcher
            .add_watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        writer
            .create("/r", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer
            .create("/r/a", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer
            .create("/r/a/b", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer.set_data("/r/a", b"x", None).await.unwrap();
        writer.delete("/r/a/b", None).await.unwrap();
        writer
            .create("/rx", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(next(&mut tree).await, (EventType::NodeCreated, "/r".into()));
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeCreated, "/r/a".into())
        );
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeCreated, "/r/a/b".into())
        );
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeDataChanged, "/r/a".into())
        );
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeDeleted, "/r/a/b".into())
        );
        quiet(&mut tree).await;

        watcher
            .remove_watches("/r", WatcherType::Any)
            .await
            .unwrap();
        assert_eq!(
            next(&mut tree).await,
            (EventType::PersistentWatchRemoved, "/r".into())
        );
        assert!(tree.next().await.is_none(), "the stream ends once removed");
        writer.set_data("/r/a", b"y", None).await.unwrap();
        assert_eq!(
            watcher.remove_watches("/r", WatcherType::Any).await,
            Err(Error::NoWatcher)
        );
        watcher.close().await.unwrap();
        writer.close().await.unwrap();
        server.stop().await;
    }
}

/// ZooKeeper 3.8 keeps one watch mode per path and session (the latest):
/// a persistent watch added after a recursive one on the same path would end
/// the recursive one's events from below. The client asks for a recursive
/// watch then, and both watchers keep their events (two caches on one path
/// once lost their updates this way, depending on which re-registered last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_watch_added_after_a_recursive_one_on_its_path_keeps_both() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let watcher = server.client().await;
        let writer = server.client().await;
        writer
            .create("/both", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let mut tree = watcher
            .add_watch("/both", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let mut node = watcher
            .add_watch("/both", AddWatchMode::Persistent)
            .await
            .unwrap();
        writer
            .create("/both/a", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer.set_data("/both", b"x", None).await.unwrap();
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeCreated, "/both/a".into()),
            "[{}] the recursive watch still sees below its path",
            server.name
        );
        assert_eq!(
            next(&mut tree).await,
            (EventType::NodeDataChanged, "/both".into())
        );
        assert_eq!(
            next(&mut node).await,
            (EventType::NodeDataChanged, "/both".into()),
            "[{}] the persistent watch sees its node",
            server.name
        );
        quiet(&mut node).await;
        watcher.close().await.unwrap();
        writer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_watch_reports_the_node_and_its_children_list() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let watcher = server.client().await;
        let writer = server.client().await;
        let mut node = watcher
            .add_watch("/p", AddWatchMode::Persistent)
            .await
            .unwrap();
        writer
            .create("/p", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer
            .create("/p/x", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        writer.set_data("/p/x", b"1", None).await.unwrap();
        writer.set_data("/p", b"1", None).await.unwrap();
        writer.set_data("/p", b"2", None).await.unwrap();
        assert_eq!(next(&mut node).await, (EventType::NodeCreated, "/p".into()));
        assert_eq!(
            next(&mut node).await,
            (EventType::NodeChildrenChanged, "/p".into())
        );
        assert_eq!(
            next(&mut node).await,
            (EventType::NodeDataChanged, "/p".into())
        );
        assert_eq!(
            next(&mut node).await,
            (EventType::NodeDataChanged, "/p".into())
        );
        quiet(&mut node).await;
        watcher.close().await.unwrap();
        let end = tokio::time::timeout(EVENT_TIMEOUT, node.next())
            .await
            .unwrap();
        assert_eq!(
            end.map(|e| (e.event_type, e.keeper_state)),
            Some((EventType::None, KeeperState::Closed))
        );
        assert!(node.next().await.is_none());
        writer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_one_time_watch_tells_its_waiter() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        c.create("/rw", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let (_, _, data) = c.get_data_watch("/rw").await.unwrap();
        let (_, kids) = c.get_children_watch("/rw").await.unwrap();
        c.check_watches("/rw", WatcherType::Data).await.unwrap();
        c.remove_watches("/rw", WatcherType::Data).await.unwrap();
        assert_eq!(fired(data).await.event_type, EventType::DataWatchRemoved);
        assert_eq!(
            c.check_watches("/rw", WatcherType::Data).await,
            Err(Error::NoWatcher)
        );
        c.remove_watches("/rw", WatcherType::Children)
            .await
            .unwrap();
        let event = fired(kids).await;
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::ChildWatchRemoved, "/rw")
        );
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_falls_behind_is_cut_off_not_buffered_forever() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = corral_client::Client::builder()
            .watch_stream_capacity(4)
            .connect(&server.connect_string())
            .await
            .unwrap();
        c.create("/lag", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let mut stream = c.add_watch("/lag", AddWatchMode::Persistent).await.unwrap();
        for i in 0..10 {
            c.set_data("/lag", format!("{i}").as_bytes(), None)
                .await
                .unwrap();
        }
        let mut received = 0;
        while let Some(event) = stream.next().await {
            assert_eq!(event.event_type, EventType::NodeDataChanged);
            received += 1;
        }
        assert_eq!(received, 4);
        assert!(stream.lagged());
        c.close().await.unwrap();
        server.stop().await;
    }
}
