//! The blocking facade, used from plain threads (no async runtime on the
//! caller's side), against Apache ZooKeeper 3.8 and Corral.

mod support;

use std::time::Duration;

use corral_client::blocking::Client;
use corral_client::{Acl, AddWatchMode, CreateMode, Error, EventType, OpResult};

#[test]
fn the_blocking_client_works_from_plain_threads() {
    // The servers need a runtime (Corral runs in-process); the client must
    // not be used from inside it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let servers = runtime.block_on(support::servers());
    for server in &servers {
        eprintln!("--- against {}", server.name);
        let builder = corral_client::Client::builder().session_timeout(Duration::from_secs(3));
        let c = Client::connect_with(builder, &server.connect_string()).unwrap();
        let open = Acl::open_unsafe();
        let (path, stat) = c.create("/b", b"1", &open, CreateMode::Persistent).unwrap();
        assert_eq!((path.as_str(), stat.version), ("/b", 0));
        assert_eq!(c.get_data("/b").unwrap().0, b"1");
        c.create_nullable("/null", None, &open, CreateMode::Persistent)
            .unwrap();
        assert_eq!(c.get_data_nullable("/null").unwrap().0, None);
        let reads = c.multi_read_nullable(|m| m.get_data("/null")).unwrap();
        assert!(
            matches!(
                &reads[0],
                corral_client::NullableReadResult::Data { data: None, .. }
            ),
            "{reads:?}"
        );
        assert_eq!(c.get_data("/null").unwrap().0, b"");

        let (_, _, watch) = c.get_data_watch("/b").unwrap();
        let watch = watch
            .wait_timeout(Duration::from_millis(100))
            .expect_err("nothing changed yet");
        let mut events = c.add_watch("/b", AddWatchMode::Persistent).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| c.set_data("/b", b"2", Some(0)).unwrap());
        });
        assert_eq!(watch.wait().event_type, EventType::NodeDataChanged);
        let event = events
            .next_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(event.event_type, EventType::NodeDataChanged);

        let results = c
            .multi(|m| {
                m.create("/b/k", b"", &open, CreateMode::Persistent)
                    .check("/b", 1)
            })
            .unwrap();
        assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/b/k"));
        assert_eq!(c.get_children("/b").unwrap(), vec!["k".to_string()]);
        assert_eq!(c.delete("/b", None), Err(Error::NotEmpty));

        let owner = Client::connect(&server.connect_string()).unwrap();
        owner
            .create("/t", b"", &open, CreateMode::Ephemeral)
            .unwrap();
        drop(owner); // closes the session
        assert_eq!(c.exists("/t").unwrap(), None);
        c.close().unwrap();
    }
    runtime.block_on(async {
        for server in servers {
            server.stop().await;
        }
    });
}
