//! Locks and semaphores (`corral_client::recipes::{lock, semaphore}`)
//! against Apache ZooKeeper 3.8 and Corral: Curator's node names, mutual
//! exclusion in arrival order, one waiter woken per release (checked with
//! the server's own `wchp` listing), and what happens when a holder's
//! session closes, expires or loses its connection.

mod recipes_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use corral_client::recipes::lock::{Mutex, ReadWriteLock};
use corral_client::recipes::semaphore::Semaphore;
use corral_client::SessionState;
use recipes_support::{eventually, expire, through, watches_by_path, within, EVENT_TIMEOUT};
use support::{servers, wait_state, Proxy};
use tokio::sync::mpsc;

/// `_c_<36-char uuid>-<name><10 digits>`.
fn assert_protected_name(name: &str, lock_name: &str) {
    let rest = name
        .strip_prefix("_c_")
        .unwrap_or_else(|| panic!("{name}: no _c_"));
    let (uuid, tail) = rest.split_at(36);
    assert_eq!(uuid.matches('-').count(), 4, "{name}: uuid");
    let seq = tail
        .strip_prefix(&format!("-{lock_name}"))
        .unwrap_or_else(|| panic!("{name}: no -{lock_name}"));
    assert!(
        seq.len() == 10 && seq.bytes().all(|b| b.is_ascii_digit()),
        "{name}: sequence"
    );
}

fn last(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_admits_one_holder_at_a_time_with_curators_node_names() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let a = server.client().await;
        let b = server.client().await;
        let mutex_a = Mutex::new(&a, "/locks/orders");
        let mutex_b = Mutex::new(&b, "/locks/orders");

        let held = mutex_a.acquire().await.unwrap();
        assert!(held.node_path().starts_with("/locks/orders/"));
        assert_protected_name(last(held.node_path()), "lock-");
        // The parent is a container, as Curator makes it.
        let (_, stat) = a.get_data("/locks/orders").await.unwrap();
        assert_eq!(stat.ephemeral_owner, 0);

        // A timed attempt gives up and leaves no node behind.
        let timed = mutex_b.try_acquire(Duration::from_millis(300)).await;
        assert!(timed.unwrap().is_none());
        assert_eq!(a.get_children("/locks/orders").await.unwrap().len(), 1);

        let waiting = tokio::spawn(async move { mutex_b.acquire().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "[{}] b must wait", server.name);
        assert_eq!(mutex_a.participants().await.unwrap().len(), 2);
        held.release().await.unwrap();
        let got = within("b gets the lock", waiting).await.unwrap().unwrap();
        got.release().await.unwrap();
        assert!(a.get_children("/locks/orders").await.unwrap().is_empty());

        // Dropping a waiting acquire withdraws it.
        let held = mutex_a.acquire().await.unwrap();
        let mutex_b = Mutex::new(&b, "/locks/orders");
        let cancelled = tokio::time::timeout(Duration::from_millis(200), mutex_b.acquire()).await;
        assert!(cancelled.is_err());
        eventually("the cancelled waiter's node goes", || async {
            a.get_children("/locks/orders").await.unwrap().len() == 1
        })
        .await;
        held.release().await.unwrap();
        a.close().await.unwrap();
        b.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_the_lock_wakes_only_the_next_waiter() {
    const WAITERS: usize = 4;
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let holder = server.client().await;
        let held = Mutex::new(&holder, "/herd").acquire().await.unwrap();

        let (acquired_tx, mut acquired) = mpsc::channel(WAITERS);
        let mut sessions = Vec::new();
        let mut clients = Vec::new();
        for i in 0..WAITERS {
            let client = server.client().await;
            sessions.push(client.session_id());
            let mutex = Mutex::new(&client, "/herd");
            let tx = acquired_tx.clone();
            tokio::spawn(async move {
                let guard = mutex.acquire().await.unwrap();
                tx.send((i, guard)).await.unwrap();
            });
            clients.push(client);
            // Queue the waiters in a known order.
            eventually("the waiter queues", || async {
                holder.get_children("/herd").await.unwrap().len() == i + 2
            })
            .await;
        }
        let mut nodes = holder.get_children("/herd").await.unwrap();
        nodes.sort_by(|x, y| x[x.len() - 10..].cmp(&y[y.len() - 10..]));

        // Each waiter watches exactly its predecessor, and nothing else
        // under the lock.
        let mut expected: BTreeMap<String, Vec<i64>> = (0..WAITERS)
            .map(|i| (format!("/herd/{}", nodes[i]), vec![sessions[i]]))
            .collect();
        let herd_watches = || async {
            watches_by_path(server.addr)
                .await
                .into_iter()
                .filter(|(p, _)| p.starts_with("/herd/"))
                .collect::<BTreeMap<_, _>>()
        };
        eventually("every waiter has set its watch", || async {
            herd_watches().await == expected
        })
        .await;

        held.release().await.unwrap();
        let (first, guard) = within("the next waiter gets the lock", acquired.recv())
            .await
            .unwrap();
        assert_eq!(first, 0, "[{}] first in line goes first", server.name);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(acquired.try_recv().is_err(), "nobody else got the lock");
        // The other waiters' watches did not fire: still in place.
        expected.remove(&format!("/herd/{}", nodes[0]));
        assert_eq!(herd_watches().await, expected);

        // The rest follow one by one, in order.
        guard.release().await.unwrap();
        for want in 1..WAITERS {
            let (i, guard) = within("the next waiter", acquired.recv()).await.unwrap();
            assert_eq!(i, want);
            guard.release().await.unwrap();
        }
        for c in clients {
            c.close().await.unwrap();
        }
        holder.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_passes_on_when_its_holders_session_closes_or_expires() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let other = server.client().await;
        let waiter = Mutex::new(&other, "/failing");

        // Closed: the server deletes the holder's node at once.
        let closing = server.client().await;
        let _held = Mutex::new(&closing, "/failing").acquire().await.unwrap();
        let waiting = tokio::spawn({
            let waiter = waiter.clone();
            async move { waiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        closing.close().await.unwrap();
        let guard = within("lock after close", waiting).await.unwrap().unwrap();
        guard.release().await.unwrap();

        // Expired: the holder is told it lost the lock, the waiter gets it.
        let proxy = Proxy::start(server.addr).await;
        let victim = through(&proxy).await;
        let held = Mutex::new(&victim, "/failing").acquire().await.unwrap();
        let waiting = tokio::spawn({
            let waiter = waiter.clone();
            async move { waiter.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished());
        expire(&server, &victim, &proxy).await;
        within("the holder learns it lost the lock", held.lost()).await;
        let guard = within("lock after expiry", waiting).await.unwrap().unwrap();
        // The expired holder's own calls now fail as expired.
        let again = Mutex::new(&victim, "/failing").acquire().await;
        assert_eq!(again.err(), Some(corral_client::Error::SessionExpired));
        drop(held); // releasing an expired lock is a no-op
        guard.release().await.unwrap();
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_keeps_its_place_across_a_connection_loss() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let holder = server.client().await;
        let proxy = Proxy::start(server.addr).await;
        let flaky = through(&proxy).await;
        let held = Mutex::new(&holder, "/blip").acquire().await.unwrap();
        let waiting = tokio::spawn({
            let mutex = Mutex::new(&flaky, "/blip");
            async move { mutex.acquire().await }
        });
        eventually("the waiter queues", || async {
            holder.get_children("/blip").await.unwrap().len() == 2
        })
        .await;

        // The connection drops; the lock is released while it is down.
        proxy.set_blocked(true);
        proxy.cut();
        wait_state(&flaky, SessionState::Disconnected, EVENT_TIMEOUT).await;
        held.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_blocked(false);

        let guard = within("lock after reconnecting", waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(holder.get_children("/blip").await.unwrap().len(), 1);

        // A holder whose connection drops is told to stop trusting it.
        {
            let lost = guard.lost();
            tokio::pin!(lost);
            assert!(
                tokio::time::timeout(Duration::from_millis(200), &mut lost)
                    .await
                    .is_err(),
                "connected holders hold"
            );
            proxy.cut();
            within("lost() on disconnect", &mut lost).await;
        }
        wait_state(&flaky, SessionState::Connected, EVENT_TIMEOUT).await;
        guard.release().await.unwrap();
        flaky.close().await.unwrap();
        holder.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_and_writers_exclude_in_queue_order() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let a = server.client().await;
        let b = server.client().await;
        let rw_a = ReadWriteLock::new(&a, "/rw");
        let rw_b = ReadWriteLock::new(&b, "/rw");

        let read_a = rw_a.acquire_read().await.unwrap();
        assert_protected_name(last(read_a.node_path()), "__READ__");
        let read_b = rw_b
            .try_acquire_read(Duration::from_secs(2))
            .await
            .unwrap()
            .expect("readers share");
        assert!(rw_b
            .try_acquire_write(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none());

        // A queued writer holds back later readers.
        let writer = tokio::spawn({
            let rw = rw_b.clone();
            async move { rw.acquire_write().await }
        });
        eventually("the writer queues", || async {
            let children = a.get_children("/rw").await.unwrap();
            children.iter().any(|c| c.contains("__WRIT__"))
        })
        .await;
        assert!(rw_a
            .try_acquire_read(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none());
        read_a.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "one reader still holds");
        read_b.release().await.unwrap();
        let write = within("the writer", writer).await.unwrap().unwrap();
        assert_protected_name(last(write.node_path()), "__WRIT__");
        let late_reader = tokio::spawn({
            let rw = rw_a.clone();
            async move { rw.acquire_read().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!late_reader.is_finished());
        write.release().await.unwrap();
        within("the reader", late_reader)
            .await
            .unwrap()
            .unwrap()
            .release()
            .await
            .unwrap();
        a.close().await.unwrap();
        b.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_hands_out_its_leases_and_takes_back_a_dead_holders() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let a = server.client().await;
        let b = server.client().await;
        let sem_a = Semaphore::new(&a, "/sem", 2);
        let sem_b = Semaphore::new(&b, "/sem", 2);

        let first = sem_a.acquire().await.unwrap();
        let second = sem_b.acquire().await.unwrap();
        assert!(first.node_path().starts_with("/sem/leases/"));
        assert_protected_name(last(first.node_path()), "lease-");
        assert_eq!(sem_a.participants().await.unwrap().len(), 2);
        assert!(sem_a
            .try_acquire(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none());
        assert_eq!(sem_a.participants().await.unwrap().len(), 2);

        let third = tokio::spawn({
            let sem = sem_a.clone();
            async move { sem.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!third.is_finished());
        // The holder of the second lease dies.
        drop(second);
        b.close().await.unwrap();
        let third = within("a lease after the holder died", third)
            .await
            .unwrap()
            .unwrap();
        // The acquirers' mutex is free again.
        assert!(a.get_children("/sem/locks").await.unwrap().is_empty());
        first.release().await.unwrap();
        third.release().await.unwrap();
        assert!(sem_a.participants().await.unwrap().is_empty());
        a.close().await.unwrap();
        server.stop().await;
    }
}
