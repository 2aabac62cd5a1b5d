//! Id generator, double barrier, queue and shared counter
//! (`corral_client::recipes::{id, barrier, queue, counter}`) against Apache
//! ZooKeeper 3.8 and Corral, with several clients at once and a member
//! that dies.

mod recipes_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use corral_client::recipes::barrier::DoubleBarrier;
use corral_client::recipes::counter::{decode_count, SharedCount};
use corral_client::recipes::id::IdGenerator;
use corral_client::recipes::queue::Queue;
use recipes_support::within;
use support::servers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_and_increasing_across_clients() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let mut tasks = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let c = server.client().await;
            let ids = IdGenerator::new(&c, "/ids/orders");
            clients.push(c);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..20 {
                    mine.push(ids.next_id().await.unwrap());
                }
                mine
            }));
        }
        let mut all = BTreeSet::new();
        for task in tasks {
            let mine = task.await.unwrap();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "increasing: {mine:?}");
            all.extend(mine);
        }
        assert_eq!(all.len(), 60, "unique");
        assert_eq!(all.iter().next(), Some(&0));
        let ids = IdGenerator::new(&clients[0], "/ids/orders");
        assert_eq!(ids.next_id_string().await.unwrap(), "0000000060");
        for c in clients {
            c.close().await.unwrap();
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_starts_and_ends_together_even_if_a_member_dies() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let clients = [
            server.client().await,
            server.client().await,
            server.client().await,
        ];
        let barriers: Vec<_> = clients
            .iter()
            .map(|c| DoubleBarrier::new(c, "/barrier", 3))
            .collect();
        assert!(!barriers[0]
            .enter_for(Duration::from_millis(300))
            .await
            .unwrap());
        let second = tokio::spawn({
            let b = barriers[1].clone();
            async move { b.enter().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "two of three: still closed");
        barriers[2].enter().await.unwrap();
        within("the second enters", second).await.unwrap().unwrap();
        assert!(clients[0].exists("/barrier/ready").await.unwrap().is_some());

        // Leaving: the first two wait for the third, which dies instead.
        let leaving: Vec<_> = barriers[..2]
            .iter()
            .cloned()
            .map(|b| tokio::spawn(async move { b.leave().await }))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(leaving.iter().all(|t| !t.is_finished()));
        clients[2].close().await.unwrap();
        for t in leaving {
            within("leave after the third died", t)
                .await
                .unwrap()
                .unwrap();
        }
        assert!(clients[0]
            .get_children("/barrier")
            .await
            .unwrap()
            .is_empty());
        clients[0].close().await.unwrap();
        clients[1].close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_fifo_and_each_item_goes_to_one_consumer() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let producer = server.client().await;
        let queue = Queue::new(&producer, "/queue");
        assert_eq!(queue.poll().await.unwrap(), None);
        for i in 0..3 {
            let path = queue.offer(format!("job-{i}").as_bytes()).await.unwrap();
            assert!(path.starts_with("/queue/qn-"), "{path}");
        }
        assert_eq!(queue.len().await.unwrap(), 3);
        assert_eq!(queue.peek().await.unwrap().unwrap(), b"job-0");
        assert_eq!(queue.poll().await.unwrap().unwrap(), b"job-0");
        assert_eq!(queue.take().await.unwrap(), b"job-1");
        assert_eq!(queue.take().await.unwrap(), b"job-2");
        assert_eq!(
            queue.take_for(Duration::from_millis(200)).await.unwrap(),
            None
        );

        // Competing consumers, each blocked in take(): 30 items, each
        // delivered once.
        let mut consumers = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let c = server.client().await;
            let q = Queue::new(&c, "/queue");
            clients.push(c);
            consumers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(item) = q.take_for(Duration::from_secs(2)).await.unwrap() {
                    got.push(String::from_utf8(item).unwrap());
                }
                got
            }));
        }
        for i in 0..30 {
            queue.offer(format!("{i:02}").as_bytes()).await.unwrap();
        }
        let mut all = Vec::new();
        for consumer in consumers {
            let got = consumer.await.unwrap();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted, "each consumer sees FIFO order");
            all.extend(got);
        }
        all.sort();
        let want: Vec<String> = (0..30).map(|i| format!("{i:02}")).collect();
        assert_eq!(all, want);
        for c in clients {
            c.close().await.unwrap();
        }
        producer.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_count_loses_no_update_under_contention() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let first = server.client().await;
        let count = SharedCount::new(&first, "/counters/hits", 10)
            .await
            .unwrap();
        // Curator's layout: a 4-byte big-endian int.
        assert_eq!(
            first.get_data("/counters/hits").await.unwrap().0,
            [0, 0, 0, 10]
        );
        let (watcher, mut changes) = count.watch().await.unwrap();

        let seen = count.get().await.unwrap();
        assert_eq!(seen.value, 10);
        assert!(count.try_set(seen, 11).await.unwrap());
        assert!(!count.try_set(seen, 12).await.unwrap(), "stale version");
        let change = within("the change is seen", changes.recv()).await.unwrap();
        let corral_client::recipes::cache::CacheEvent::Changed { new, .. } = change else {
            panic!("{change:?}");
        };
        assert_eq!(decode_count(&new.data), Some(11));

        let mut tasks = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let c = server.client().await;
            let count = SharedCount::new(&c, "/counters/hits", 0).await.unwrap();
            clients.push(c);
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    count.add(1).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count.get().await.unwrap().value, 51);
        watcher.close().await;
        for c in clients {
            c.close().await.unwrap();
        }
        first.close().await.unwrap();
        server.stop().await;
    }
}
