//! Sessions across connection failures, against Apache ZooKeeper 3.8 and
//! Corral, with a cuttable TCP proxy between client and server: reconnects
//! keep the session, its ephemerals and its watches; expiry is reported and
//! terminal.

mod support;

use std::time::Duration;

use corral_client::{
    Acl, AddWatchMode, Client, CreateMode, Error, EventType, KeeperState, SessionState,
};
use support::{servers, wait_state, Proxy};

const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

async fn through(proxy: &Proxy) -> Client {
    Client::builder()
        .session_timeout(SESSION_TIMEOUT)
        .connect(&proxy.addr.to_string())
        .await
        .expect("connect through the proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_keeps_the_session_its_ephemerals_and_watches() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        let other = server.client().await;
        c.create("/eph", b"0", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        let (_, _, data_watch) = c.get_data_watch("/eph").await.unwrap();
        let mut tree = c
            .add_watch("/tree", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let session = c.session_id();
        let mut states = c.state_watcher();
        states.borrow_and_update();

        proxy.cut();
        // The first change from Connected is the disconnection; the client
        // may be connected again before this task looks at the value, so
        // wait for the change, not for the value Disconnected (the
        // Disconnected event itself is checked on the stream below).
        tokio::time::timeout(EVENT_TIMEOUT, states.changed())
            .await
            .unwrap()
            .unwrap();
        wait_state(&c, SessionState::Connected, EVENT_TIMEOUT).await;
        assert_eq!(c.session_id(), session, "[{}] same session", server.name);
        assert!(other.exists("/eph").await.unwrap().is_some());

        let event = tokio::time::timeout(EVENT_TIMEOUT, tree.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (event.event_type, event.keeper_state),
            (EventType::None, KeeperState::Disconnected)
        );
        let event = tokio::time::timeout(EVENT_TIMEOUT, tree.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.keeper_state, KeeperState::SyncConnected);

        // The watches were re-registered on the new connection.
        other.set_data("/eph", b"1", None).await.unwrap();
        let event = tokio::time::timeout(EVENT_TIMEOUT, data_watch)
            .await
            .unwrap();
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::NodeDataChanged, "/eph")
        );
        other
            .create("/tree", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let event = tokio::time::timeout(EVENT_TIMEOUT, tree.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (EventType::NodeCreated, "/tree")
        );
        assert_eq!(c.get_data("/eph").await.unwrap().0, b"1");
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_missed_while_disconnected_fires_the_watch_on_reconnect() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        let other = server.client().await;
        other
            .create("/missed", b"0", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let (_, _, changed) = c.get_data_watch("/missed").await.unwrap();
        let (_, created) = c.exists_watch("/born").await.unwrap();
        let (_, kids) = c.get_children_watch("/missed").await.unwrap();

        proxy.set_blocked(true);
        proxy.cut();
        wait_state(&c, SessionState::Disconnected, EVENT_TIMEOUT).await;
        other.set_data("/missed", b"1", None).await.unwrap();
        other
            .create("/born", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        other
            .create("/missed/kid", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        proxy.set_blocked(false);

        // setWatches with the last zxid seen makes the server report them.
        let event = tokio::time::timeout(EVENT_TIMEOUT, changed).await.unwrap();
        assert_eq!(
            event.event_type,
            EventType::NodeDataChanged,
            "[{}]",
            server.name
        );
        let event = tokio::time::timeout(EVENT_TIMEOUT, created).await.unwrap();
        assert_eq!(event.event_type, EventType::NodeCreated);
        let event = tokio::time::timeout(EVENT_TIMEOUT, kids).await.unwrap();
        assert_eq!(event.event_type, EventType::NodeChildrenChanged);
        assert_eq!(c.state(), SessionState::Connected);
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_when_the_connection_drops_fail_with_connection_loss() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        c.create("/busy", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for _ in 0..200 {
                        outcomes.push(c.get_data("/busy").await.map(|_| ()));
                    }
                    outcomes
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        proxy.cut();
        let mut losses = 0;
        for task in tasks {
            for outcome in task.await.unwrap() {
                match outcome {
                    Ok(()) => {}
                    Err(Error::ConnectionLoss) => losses += 1,
                    Err(e) => panic!("[{}] unexpected {e}", server.name),
                }
            }
        }
        eprintln!(
            "[{}] {losses} requests lost with the connection",
            server.name
        );
        wait_state(&c, SessionState::Connected, EVENT_TIMEOUT).await;
        c.exists("/busy").await.unwrap();
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_reported_and_ends_the_client() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        let other = server.client().await;
        c.create("/doomed", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        let (_, watch) = c.exists_watch("/never").await.unwrap();
        let mut stream = c
            .add_watch("/", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();

        // Keep the client away, and end its session from a second
        // connection that reattaches with the same id and password.
        proxy.set_blocked(true);
        proxy.cut();
        wait_state(&c, SessionState::Disconnected, EVENT_TIMEOUT).await;
        let twin = Client::builder()
            .session(c.session_id(), &c.session_password())
            .session_timeout(SESSION_TIMEOUT)
            .connect(&server.connect_string())
            .await
            .unwrap();
        assert_eq!(twin.session_id(), c.session_id());
        twin.close().await.unwrap();
        assert_eq!(other.exists("/doomed").await.unwrap(), None);

        proxy.set_blocked(false);
        wait_state(&c, SessionState::Expired, EVENT_TIMEOUT).await;
        assert_eq!(c.exists("/").await, Err(Error::SessionExpired));
        let event = tokio::time::timeout(EVENT_TIMEOUT, watch).await.unwrap();
        assert_eq!(
            (event.event_type, event.keeper_state),
            (EventType::None, KeeperState::Expired)
        );
        let mut last = None;
        while let Some(event) = stream.next().await {
            last = Some(event.keeper_state);
        }
        assert_eq!(last, Some(KeeperState::Expired));

        // Reattaching to a dead session is refused as expired, too.
        let again = Client::builder()
            .session(c.session_id(), &c.session_password())
            .connect(&server.connect_string())
            .await;
        assert_eq!(again.err(), Some(Error::SessionExpired));
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_within_the_session_timeout_means_expired() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = through(&proxy).await;
        let timeout = c.session_timeout();
        proxy.set_blocked(true);
        proxy.cut();
        wait_state(&c, SessionState::Disconnected, EVENT_TIMEOUT).await;
        let started = tokio::time::Instant::now();
        // A request made while disconnected waits for the outcome.
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.exists("/").await }
        });
        wait_state(&c, SessionState::Expired, timeout + EVENT_TIMEOUT).await;
        assert!(started.elapsed() + Duration::from_millis(200) >= timeout);
        assert_eq!(waiting.await.unwrap(), Err(Error::SessionExpired));
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_host_is_tried_when_one_is_down() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let dead = Proxy::start(server.addr).await;
        dead.set_blocked(true);
        let cs = format!("{},{}", dead.addr, server.addr);
        for _ in 0..3 {
            let c = Client::builder()
                .session_timeout(SESSION_TIMEOUT)
                .connect(&cs)
                .await
                .unwrap();
            assert_eq!(c.state(), SessionState::Connected);
            c.close().await.unwrap();
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_an_idle_session_alive() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = Client::builder()
            .session_timeout(Duration::from_secs(3))
            .connect(&server.connect_string())
            .await
            .unwrap();
        let other = server.client().await;
        c.create("/idle", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        let mut states = c.state_watcher();
        states.mark_unchanged();
        tokio::time::sleep(c.session_timeout() + Duration::from_millis(1500)).await;
        assert!(
            !states.has_changed().unwrap(),
            "[{}] state changed",
            server.name
        );
        assert_eq!(c.state(), SessionState::Connected);
        assert!(other.exists("/idle").await.unwrap().is_some());
        c.close().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_abandoned_before_the_session_expires() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        // Long enough that reattaching after detection (at 2/3 of it) is
        // safely before the server expires the session.
        let c = Client::builder()
            .session_timeout(Duration::from_secs(6))
            .connect(&proxy.addr.to_string())
            .await
            .unwrap();
        c.create("/quiet", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        // Session events reach a watch stream in order and none is lost,
        // unlike the state channel, which keeps only the latest value.
        let mut events = c
            .add_watch("/quiet", AddWatchMode::Persistent)
            .await
            .unwrap();
        let session = c.session_id();
        let timeout = c.session_timeout();
        let mut states = c.state_watcher();
        states.borrow_and_update();
        let frozen_at = tokio::time::Instant::now();
        proxy.freeze();
        // The first change from Connected is the client giving up on the
        // connection. By the time this task runs it may already have
        // reconnected through the proxy (a loaded machine), so wait for
        // the change rather than for the value Disconnected.
        tokio::time::timeout(timeout + EVENT_TIMEOUT, states.changed())
            .await
            .unwrap_or_else(|_| panic!("[{}] the silence went unnoticed", server.name))
            .unwrap();
        let detected_after = frozen_at.elapsed();
        // The protocol's bound: the server expires the session no sooner
        // than the session timeout after the last packet it received, so
        // the client must have given up on the connection before that.
        assert!(
            detected_after < timeout,
            "[{}] silence noticed after {detected_after:?}, session timeout {timeout:?}",
            server.name
        );
        for wanted in [KeeperState::Disconnected, KeeperState::SyncConnected] {
            let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (event.event_type, event.keeper_state),
                (EventType::None, wanted),
                "[{}]",
                server.name
            );
        }
        wait_state(&c, SessionState::Connected, EVENT_TIMEOUT).await;
        // Reattached in time: the same session, its ephemeral still there.
        assert_eq!(c.session_id(), session);
        assert!(c.exists("/quiet").await.unwrap().is_some());
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewing_client_out_of_reach_past_the_timeout_gets_a_new_session() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let proxy = Proxy::start(server.addr).await;
        let c = Client::builder()
            .session_timeout(SESSION_TIMEOUT)
            .renew_session_on_expiry(true)
            .connect(&proxy.addr.to_string())
            .await
            .unwrap();
        let old = c.session_id();
        let timeout = c.session_timeout();
        proxy.set_blocked(true);
        proxy.cut();
        // Kept out past the session timeout: the client counts its session
        // as expired, and asks for a new one as soon as it can connect.
        let started = tokio::time::Instant::now();
        while c.expired_sessions() == 0 {
            assert!(
                started.elapsed() < timeout + EVENT_TIMEOUT,
                "[{}] no expiry",
                server.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started.elapsed() + Duration::from_millis(200) >= timeout);
        assert!(!c.is_finished());
        proxy.set_blocked(false);
        wait_state(&c, SessionState::Connected, EVENT_TIMEOUT).await;
        assert_ne!(c.session_id(), old, "[{}]", server.name);
        assert!(c.exists("/").await.unwrap().is_some());
        c.close().await.unwrap();
        assert_eq!(c.state(), SessionState::Closed);
        server.stop().await;
    }
}
