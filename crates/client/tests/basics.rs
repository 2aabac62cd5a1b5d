//! The client's requests against real servers: each test runs the same
//! scenario against Apache ZooKeeper 3.8 and against Corral.

mod support;

use std::time::Duration;

use corral_client::{
    digest_acl, perms, Acl, AclExt, Client, CreateMode, Error, Id, NullableReadResult, OpResult,
    ReadResult, SessionState,
};
use support::{servers, TestServer, SUPER_AUTH};

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_follow_zookeeper_semantics() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        crud(&server).await;
        server.stop().await;
    }
}

async fn crud(server: &TestServer) {
    let name = server.name;
    let c = server.client().await;
    assert_eq!(c.state(), SessionState::Connected);
    assert_ne!(c.session_id(), 0);

    let (path, stat) = c
        .create("/a", b"hello", &open(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(path, "/a");
    assert_eq!(stat.version, 0, "{name}");
    assert_eq!(stat.czxid, stat.mzxid, "{name}");
    assert_eq!(stat.czxid, stat.pzxid, "{name}");
    assert_eq!(stat.data_length, 5, "{name}");
    assert_eq!(stat.ephemeral_owner, 0, "{name}");
    assert!(c.last_zxid() >= stat.czxid, "{name}");
    assert_eq!(
        c.create("/a", b"", &open(), CreateMode::Persistent).await,
        Err(Error::NodeExists)
    );

    let (data, got) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(got, stat, "{name}");
    assert_eq!(c.exists("/a").await.unwrap(), Some(stat));
    assert_eq!(c.exists("/missing").await.unwrap(), None);
    assert_eq!(c.get_data("/missing").await, Err(Error::NoNode));

    let set = c.set_data("/a", b"bye", Some(0)).await.unwrap();
    assert_eq!(set.version, 1);
    assert!(set.mzxid > stat.mzxid);
    assert_eq!(set.czxid, stat.czxid);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await,
        Err(Error::BadVersion)
    );

    c.create("/a/b", b"", &open(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.delete("/a", None).await, Err(Error::NotEmpty));
    assert_eq!(c.get_children("/a").await.unwrap(), vec!["b".to_string()]);
    let (children, parent) = c.get_children2("/a").await.unwrap();
    assert_eq!(children, vec!["b".to_string()]);
    assert_eq!(parent.num_children, 1, "{name}");
    assert_eq!(parent.cversion, 1, "{name}");
    assert_eq!(c.get_all_children_number("/a").await.unwrap(), 1, "{name}");
    c.delete("/a/b", None).await.unwrap();
    assert_eq!(c.get_data("/a/b").await, Err(Error::NoNode));

    let (acl, _) = c.get_acl("/a").await.unwrap();
    assert_eq!(acl, open());
    let stat = c.set_acl("/a", &Acl::read_unsafe(), Some(0)).await.unwrap();
    assert_eq!(stat.aversion, 1, "{name}");
    assert_eq!(c.set_data("/a", b"no", None).await, Err(Error::NoAuth));
    c.sync("/a").await.unwrap();
    c.delete("/a", Some(1)).await.unwrap();
    assert_eq!(c.delete("/a", None).await, Err(Error::NoNode));

    // Checked here, never sent.
    assert!(matches!(
        c.get_data("relative").await,
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        c.create("/x/", b"", &open(), CreateMode::Persistent).await,
        Err(Error::InvalidPath { .. })
    ));
    assert_eq!(
        c.create("/x", b"", &[], CreateMode::Persistent).await,
        Err(Error::InvalidAcl)
    );
    let (config, _) = c.get_config().await.unwrap();
    let _ = config;

    c.close().await.unwrap();
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(c.exists("/").await, Err(Error::ClientClosed));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_suffix_counts_every_child_ever_created() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        c.create("/p", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        c.create("/p/a", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        c.delete("/p/a", None).await.unwrap();
        let (seq, _) = c
            .create("/p/s-", b"", &open(), CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(seq, "/p/s-0000000001");
        let (eseq, _) = c
            .create("/p/e-", b"", &open(), CreateMode::EphemeralSequential)
            .await
            .unwrap();
        assert_eq!(eseq, "/p/e-0000000002");
        // `/p/` with the sequential flag is a valid path: the suffix is the
        // whole name.
        let (bare, _) = c
            .create("/p/", b"", &open(), CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(bare, "/p/0000000003");
        let (_, stat) = c.get_data("/p").await.unwrap();
        assert_eq!(
            stat.cversion, 5,
            "[{}] two per create and delete pair",
            server.name
        );
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_nodes_vanish_when_the_session_closes() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let owner = server.client().await;
        let other = server.client().await;
        let (_, stat) = owner
            .create("/e", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, owner.session_id());
        owner
            .create("/es", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        assert_eq!(
            owner
                .create("/e/child", b"", &open(), CreateMode::Persistent)
                .await,
            Err(Error::NoChildrenForEphemerals)
        );
        let mut mine = owner.get_ephemerals("/e").await.unwrap();
        mine.sort();
        assert_eq!(mine, vec!["/e".to_string(), "/es".to_string()]);
        assert!(other.get_ephemerals("/").await.unwrap().is_empty());

        owner.close().await.unwrap();
        assert_eq!(other.exists("/e").await.unwrap(), None);
        assert_eq!(other.exists("/es").await.unwrap(), None);
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_closes_the_session() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let other = server.client().await;
        let owner = server.client().await;
        owner
            .create("/gone", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        let clone = owner.clone();
        drop(owner);
        assert!(other.exists("/gone").await.unwrap().is_some());
        drop(clone);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while other.exists("/gone").await.unwrap().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{}] ephemeral still there",
                server.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        other.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_applies_all_ops_or_none_and_names_the_failing_op() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        let results = c
            .multi()
            .create("/m", b"1", &open(), CreateMode::Persistent)
            .create("/m/c", b"", &open(), CreateMode::Persistent)
            .set_data("/m", b"2", Some(0))
            .check("/m", 1)
            .create("/m/s-", b"", &open(), CreateMode::PersistentSequential)
            .commit()
            .await
            .unwrap();
        assert_eq!(results.len(), 5);
        assert_eq!(
            results[0],
            OpResult::Create {
                path: "/m".into(),
                stat: None
            }
        );
        assert!(matches!(&results[1], OpResult::Create { path, .. } if path == "/m/c"));
        assert!(matches!(&results[2], OpResult::SetData { stat } if stat.version == 1));
        assert_eq!(results[3], OpResult::Check);
        assert!(matches!(&results[4], OpResult::Create { path, .. } if path == "/m/s-0000000001"));

        let failed = c
            .multi()
            .create("/m2", b"", &open(), CreateMode::Persistent)
            .delete("/missing", None)
            .set_data("/m", b"3", None)
            .commit()
            .await;
        assert_eq!(
            failed,
            Err(Error::MultiFailed {
                index: 1,
                error: Box::new(Error::NoNode)
            }),
            "[{}]",
            server.name
        );
        assert_eq!(c.exists("/m2").await.unwrap(), None, "nothing applied");
        assert_eq!(c.get_data("/m").await.unwrap().0, b"2");
        assert_eq!(
            c.multi().check("/m", 0).commit().await,
            Err(Error::MultiFailed {
                index: 0,
                error: Box::new(Error::BadVersion)
            })
        );
        assert!(matches!(
            c.multi()
                .delete("/ok", None)
                .delete("bad", None)
                .commit()
                .await,
            Err(Error::MultiFailed { index: 1, .. })
        ));
        assert_eq!(c.multi().commit().await, Ok(vec![]));

        let reads = c
            .multi_read()
            .get_data("/m")
            .get_children("/m")
            .get_data("/nope")
            .execute()
            .await
            .unwrap();
        assert!(matches!(&reads[0], ReadResult::Data { data, .. } if data == b"2"));
        match &reads[1] {
            ReadResult::Children { children } => {
                let mut children = children.clone();
                children.sort();
                assert_eq!(children, vec!["c", "s-0000000001"]);
            }
            other => panic!("[{}] {other:?}", server.name),
        }
        assert_eq!(reads[2], ReadResult::Error(Error::NoNode));
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chroot_is_added_to_every_path_and_stripped_from_every_answer() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let root = server.client().await;
        root.create("/app", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let c = server.client_with(Client::builder(), "/app").await;
        assert_eq!(c.chroot(), Some("/app"));

        let (path, _) = c
            .create("/x", b"1", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(path, "/x");
        assert!(root.exists("/app/x").await.unwrap().is_some());
        let (seq, _) = c
            .create("/s-", b"", &open(), CreateMode::EphemeralSequential)
            .await
            .unwrap();
        assert_eq!(seq, "/s-0000000001");
        assert_eq!(c.get_ephemerals("/").await.unwrap(), vec![seq.clone()]);
        let mut children = c.get_children("/").await.unwrap();
        children.sort();
        assert_eq!(children, vec!["s-0000000001", "x"]);
        assert_eq!(
            c.get_data("/").await.unwrap().1,
            root.get_data("/app").await.unwrap().1
        );

        let (none, created) = c.exists_watch("/y").await.unwrap();
        assert_eq!(none, None);
        let mut tree = c
            .add_watch("/", corral_client::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        root.create("/app/y", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), created)
            .await
            .unwrap();
        assert_eq!(event.path, "/y");
        let event = tokio::time::timeout(Duration::from_secs(5), tree.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.path, "/y");

        let results = c
            .multi()
            .create("/m", b"", &open(), CreateMode::Persistent)
            .commit()
            .await
            .unwrap();
        assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
        c.close().await.unwrap();
        root.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_credentials_open_digest_acls() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let bob = server.client().await;
        bob.add_auth("digest", b"bob:secret").await.unwrap();
        bob.create(
            "/secure",
            b"s",
            &[digest_acl("bob", "secret", perms::ALL)],
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        bob.create("/mine", b"", &Acl::creator_all(), CreateMode::Persistent)
            .await
            .unwrap();
        let (acl, _) = bob.get_acl("/mine").await.unwrap();
        assert_eq!(
            acl[0].id,
            Id::new("digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")
        );
        let who = bob.whoami().await.unwrap();
        assert!(
            who.iter()
                .any(|i| i.auth_scheme == "digest" && i.user == "bob"),
            "[{}] {who:?}",
            server.name
        );

        let stranger = server.client().await;
        assert_eq!(stranger.get_data("/secure").await, Err(Error::NoAuth));
        let admin = server
            .client_with(Client::builder().auth("digest", SUPER_AUTH), "")
            .await;
        assert_eq!(admin.get_data("/secure").await.unwrap().0, b"s");
        let bob_again = server
            .client_with(Client::builder().auth("digest", b"bob:secret"), "")
            .await;
        assert_eq!(bob_again.get_data("/secure").await.unwrap().0, b"s");

        // An unknown scheme is refused, and that ends the session.
        assert_eq!(
            stranger.add_auth("no-such-scheme", b"x").await,
            Err(Error::AuthFailed)
        );
        support::wait_state(&stranger, SessionState::AuthFailed, Duration::from_secs(2)).await;
        assert_eq!(stranger.exists("/").await, Err(Error::AuthFailed));
        let refused = Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .auth("no-such-scheme", b"x")
            .connect(&server.connect_string())
            .await;
        match refused.err() {
            Some(Error::AuthFailed) => {}
            other => panic!("[{}] expected AuthFailed, got {other:?}", server.name),
        }
        for c in [bob, admin, bob_again] {
            c.close().await.unwrap();
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_ttl_nodes_use_their_own_opcodes() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        let (path, stat) = c
            .create_ttl(
                "/ttl-",
                b"",
                &open(),
                CreateMode::PersistentSequentialWithTtl,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(path, "/ttl-0000000000");
        assert_eq!(
            stat.ephemeral_owner, 0,
            "[{}] TTL nodes show no owner",
            server.name
        );
        let (_, stat) = c
            .create("/ctr", b"", &open(), CreateMode::Container)
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, 0);
        c.create("/ctr/kid", b"", &open(), CreateMode::Ephemeral)
            .await
            .unwrap();
        assert_eq!(
            c.create("/t", b"", &open(), CreateMode::PersistentWithTtl)
                .await,
            Err(Error::BadArguments),
            "a TTL mode needs create_ttl"
        );
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_pipelined_connection() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = Client::builder()
            .max_in_flight(64)
            .request_queue_len(16)
            .connect(&server.connect_string())
            .await
            .unwrap();
        c.create("/n", b"", &open(), CreateMode::Persistent)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..40 {
                        let data = format!("{t}-{i}");
                        c.set_data("/n", data.as_bytes(), None).await.unwrap();
                        let path = format!("/n/{t}-{i}");
                        c.create(&path, b"", &Acl::open_unsafe(), CreateMode::Persistent)
                            .await
                            .unwrap();
                        assert!(c.exists(&path).await.unwrap().is_some());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (_, stat) = c.get_data("/n").await.unwrap();
        assert_eq!(stat.version, 16 * 40);
        assert_eq!(stat.num_children, 16 * 40);
        assert_eq!(c.get_all_children_number("/n").await.unwrap(), 16 * 40);
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_packet_limit_fails_without_losing_the_connection() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let c = server.client().await;
        let big = vec![7u8; 2 * 1024 * 1024];
        assert!(matches!(
            c.create("/big", &big, &open(), CreateMode::Persistent)
                .await,
            Err(Error::PacketTooLarge { .. })
        ));
        let fits = vec![7u8; 512 * 1024];
        c.create("/fits", &fits, &open(), CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(c.get_data("/fits").await.unwrap().0.len(), fits.len());
        assert_eq!(c.state(), SessionState::Connected);
        c.close().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_with_the_hosts_tried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Client::builder()
        .connect_timeout(Duration::from_millis(800))
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ConnectFailed { ref hosts, .. } if hosts.contains(&port.to_string())),
        "{err}"
    );
    assert!(matches!(
        Client::connect("no-port:").await,
        Err(Error::InvalidConnectString { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_created_with_null_data_reads_back_null_not_empty() {
    for server in servers().await {
        eprintln!("--- against {}", server.name);
        let name = server.name;
        let c = server.client().await;
        let (_, stat) = c
            .create_nullable("/null", None, &open(), CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(stat.data_length, 0, "[{name}]");
        c.create_nullable("/empty", Some(b""), &open(), CreateMode::Persistent)
            .await
            .unwrap();
        c.create_ttl_nullable(
            "/null-ttl",
            None,
            &open(),
            CreateMode::PersistentWithTtl,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        c.multi()
            .create_nullable("/null/m", None, &open(), CreateMode::Persistent)
            .create_nullable("/null/e", Some(b""), &open(), CreateMode::Persistent)
            .commit()
            .await
            .unwrap();
        for (path, want) in [
            ("/null", None),
            ("/empty", Some(Vec::new())),
            ("/null-ttl", None),
            ("/null/m", None),
            ("/null/e", Some(Vec::new())),
        ] {
            let (data, _) = c.get_data_nullable(path).await.unwrap();
            assert_eq!(data, want, "[{name}] {path}");
        }
        // multiRead keeps null apart from empty too, in its nullable form.
        let reads = c
            .multi_read()
            .get_data("/null")
            .get_data("/empty")
            .get_data("/null/m")
            .get_data("/nope")
            .get_children("/null")
            .execute_nullable()
            .await
            .unwrap();
        let data: Vec<_> = reads[..3]
            .iter()
            .map(|r| match r {
                NullableReadResult::Data { data, .. } => data.clone(),
                other => panic!("[{name}] {other:?}"),
            })
            .collect();
        assert_eq!(data, [None, Some(Vec::new()), None], "[{name}]");
        assert_eq!(
            reads[3],
            NullableReadResult::Error(Error::NoNode),
            "[{name}]"
        );
        assert!(
            matches!(&reads[4], NullableReadResult::Children { children } if children.len() == 2),
            "[{name}] {:?}",
            reads[4]
        );
        // The plain reads keep answering empty for null.
        assert_eq!(c.get_data("/null").await.unwrap().0, b"");
        let plain = c
            .multi_read()
            .get_data("/null")
            .get_data("/empty")
            .execute()
            .await
            .unwrap();
        for read in &plain {
            assert!(
                matches!(read, ReadResult::Data { data, .. } if data.is_empty()),
                "[{name}] {read:?}"
            );
        }
        // Setting data replaces null like any other value.
        c.set_data("/null", b"x", None).await.unwrap();
        assert_eq!(
            c.get_data_nullable("/null").await.unwrap().0,
            Some(b"x".to_vec())
        );
        c.close().await.unwrap();
        server.stop().await;
    }
}
