//! Standalone server behaviour over TCP, checked with an independent client
//! (the `zookeeper-client` crate) and raw sockets against an in-process
//! Corral server on a free loopback port.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use corral_server::config::ServerConfig;
use zookeeper_client as zk;

struct TestServer {
    server: Option<corral_server::RunningServer>,
    addr: String,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    async fn start_with(extra: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        props.insert("tickTime".into(), "500".into());
        props.insert("dataDir".into(), dir.path().display().to_string());
        props.insert("clientPort".into(), "0".into());
        props.insert("clientPortAddress".into(), "127.0.0.1".into());
        props.insert("admin.enableServer".into(), "false".into());
        props.insert("4lw.commands.whitelist".into(), "*".into());
        for (k, v) in extra {
            props.insert(k.to_string(), v.to_string());
        }
        let config = ServerConfig::from_properties(&props).expect("config");
        let server = corral_server::start(config).await.expect("server starts");
        let addr = server.client_addr.to_string();
        TestServer {
            server: Some(server),
            addr,
            _dir: dir,
        }
    }

    async fn client(&self) -> zk::Client {
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .connect(&self.addr)
            .await
            .expect("client connects")
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

async fn four_letter(addr: &str, word: &str) -> String {
    let (addr, word) = (addr.to_string(), word.to_string());
    tokio::task::spawn_blocking(move || four_letter_blocking(&addr, &word))
        .await
        .unwrap()
}

fn four_letter_blocking(addr: &str, word: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(word.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
async fn create_get_set_delete_keep_zookeeper_stat_semantics() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (stat, _) = client.create("/a", b"hello", &persistent()).await.unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.czxid, stat.pzxid);
    assert_eq!(stat.data_length, 5);
    let (data, got) = client.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(got, stat);

    let set = client.set_data("/a", b"bye", Some(0)).await.unwrap();
    assert_eq!(set.version, 1);
    assert!(set.mzxid > stat.mzxid);
    assert_eq!(set.czxid, stat.czxid);
    assert_eq!(
        client.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );

    client.create("/a/b", b"", &persistent()).await.unwrap();
    assert_eq!(
        client.delete("/a", None).await.unwrap_err(),
        zk::Error::NotEmpty
    );
    client.delete("/a/b", None).await.unwrap();
    let (_, parent) = client.get_data("/a").await.unwrap();
    assert_eq!(
        parent.cversion, 2,
        "a child create and a child delete each raise cversion"
    );
    assert_eq!(parent.num_children, 0);
    client.delete("/a", Some(1)).await.unwrap();
    assert_eq!(client.get_data("/a").await.unwrap_err(), zk::Error::NoNode);
    assert_eq!(
        client.create("/a", b"", &persistent()).await.map(|_| ()),
        Ok(())
    );
    server.stop().await;
}

#[tokio::test]
async fn sequential_suffix_counts_every_child_ever_created() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client.create("/p", b"", &persistent()).await.unwrap();
    client.create("/p/a", b"", &persistent()).await.unwrap();
    client.delete("/p/a", None).await.unwrap();
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, sequence) = client.create("/p/s-", b"", &seq).await.unwrap();
    assert_eq!(sequence.into_i64(), 1);
    let mut children = client.list_children("/p").await.unwrap();
    children.sort();
    assert_eq!(children, vec!["s-0000000001".to_string()]);
    let (_, stat) = client.get_data("/p").await.unwrap();
    assert_eq!(stat.cversion, 3);
    server.stop().await;
}

#[tokio::test]
async fn ephemeral_nodes_vanish_when_their_session_closes_and_watchers_hear_it() {
    let server = TestServer::start().await;
    let owner = server.client().await;
    let watcher = server.client().await;
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let (stat, _) = owner.create("/e", b"", &eph).await.unwrap();
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    let (_, _, watch) = watcher.get_and_watch_data("/e").await.unwrap();
    drop(owner);
    let event = tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert_eq!(event.path, "/e");
    assert_eq!(watcher.check_stat("/e").await.unwrap(), None);
    server.stop().await;
}

#[tokio::test]
async fn a_watch_fires_once_then_must_be_set_again() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.create("/w", b"0", &persistent()).await.unwrap();
    let (_, _, watch) = b.get_and_watch_data("/w").await.unwrap();
    a.set_data("/w", b"1", None).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    // No watch now: a second change must not fire; a child watch fires on create.
    let (_, child_watch) = b
        .get_and_watch_children("/w")
        .await
        .map(|(c, _, w)| (c, w))
        .unwrap();
    a.set_data("/w", b"2", None).await.unwrap();
    a.create("/w/c", b"", &persistent()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), child_watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeChildrenChanged);
    assert_eq!(event.path, "/w");
    server.stop().await;
}

#[tokio::test]
async fn persistent_recursive_watches_see_every_descendant() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.create("/r", b"", &persistent()).await.unwrap();
    let mut watcher = b
        .watch("/r", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    a.create("/r/x", b"", &persistent()).await.unwrap();
    a.create("/r/x/y", b"", &persistent()).await.unwrap();
    a.set_data("/r/x/y", b"v", None).await.unwrap();
    a.delete("/r/x/y", None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = tokio::time::timeout(Duration::from_secs(5), watcher.changed())
            .await
            .unwrap();
        seen.push((e.event_type, e.path));
    }
    assert_eq!(
        seen,
        vec![
            (zk::EventType::NodeCreated, "/r/x".to_string()),
            (zk::EventType::NodeCreated, "/r/x/y".to_string()),
            (zk::EventType::NodeDataChanged, "/r/x/y".to_string()),
            (zk::EventType::NodeDeleted, "/r/x/y".to_string()),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn multi_is_atomic_and_reports_each_operation() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut writer = client.new_multi_writer();
    writer.add_create("/m1", b"", &persistent()).unwrap();
    writer.add_delete("/missing", None).unwrap();
    writer.add_create("/m2", b"", &persistent()).unwrap();
    let err = writer.commit().await.unwrap_err();
    match err {
        zk::MultiWriteError::OperationFailed { index, source } => {
            assert_eq!(index, 1);
            assert_eq!(source, zk::Error::NoNode);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        client.check_stat("/m1").await.unwrap(),
        None,
        "nothing of a failed multi applies"
    );
    let mut writer = client.new_multi_writer();
    writer.add_create("/m1", b"", &persistent()).unwrap();
    writer.add_create("/m1/c", b"x", &persistent()).unwrap();
    writer.add_set_data("/m1", b"y", Some(0)).unwrap();
    let results = writer.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn digest_acls_refuse_other_identities() {
    let server = TestServer::start().await;
    let owner = zk::Client::connector()
        .with_auth("digest", b"bob:secret")
        .connect(&server.addr)
        .await
        .unwrap();
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    owner.create("/secret", b"s", &creator).await.unwrap();
    let (acl, _) = owner.get_acl("/secret").await.unwrap();
    assert_eq!(acl[0].auth_id().id(), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
    let stranger = server.client().await;
    assert_eq!(
        stranger.get_data("/secret").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        stranger.set_data("/secret", b"x", None).await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(owner.get_data("/secret").await.unwrap().0, b"s");
    server.stop().await;
}

#[tokio::test]
async fn four_letter_words_follow_the_whitelist_and_zookeeper_format() {
    let server = TestServer::start_with(&[("4lw.commands.whitelist", "srvr, ruok")]).await;
    assert_eq!(four_letter(&server.addr, "ruok").await, "imok");
    let srvr = four_letter(&server.addr, "srvr").await;
    assert!(srvr.starts_with("Zookeeper version: 3.8."), "{srvr}");
    assert!(srvr.contains("Mode: standalone\n"), "{srvr}");
    assert!(srvr.contains("Node count: 5\n"), "{srvr}");
    assert_eq!(
        four_letter(&server.addr, "mntr").await,
        "mntr is not executed because it is not in the whitelist.\n"
    );
    server.stop().await;
}

fn raw_connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn connect_request(session_id: i64, passwd: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&30000i32.to_be_bytes());
    body.extend_from_slice(&session_id.to_be_bytes());
    body.extend_from_slice(&(passwd.len() as i32).to_be_bytes());
    body.extend_from_slice(passwd);
    body.push(0);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[tokio::test]
async fn a_wrong_password_is_told_the_session_expired() {
    let server = TestServer::start().await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = raw_connect(&addr);
        s.write_all(&connect_request(0, &[0; 16])).unwrap();
        let reply = read_frame(&mut s).unwrap();
        let session_id = i64::from_be_bytes(reply[8..16].try_into().unwrap());
        assert_ne!(session_id, 0);
        let mut s2 = raw_connect(&addr);
        s2.write_all(&connect_request(session_id, &[7; 16]))
            .unwrap();
        let reply = read_frame(&mut s2).unwrap();
        assert_eq!(&reply[4..8], &0i32.to_be_bytes(), "timeout 0 means expired");
        assert_eq!(&reply[8..16], &0i64.to_be_bytes());
        assert!(closed(&mut s2));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_input_closes_the_connection_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        // Garbage instead of a handshake: a huge "length".
        let mut s = raw_connect(&addr);
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(closed(&mut s));
        // A frame over jute.maxbuffer after a good handshake.
        let mut s = raw_connect(&addr);
        s.write_all(&connect_request(0, &[0; 16])).unwrap();
        read_frame(&mut s).unwrap();
        s.write_all(&(2_000_000i32).to_be_bytes()).unwrap();
        assert!(closed(&mut s));
        // An unknown opcode gets Unimplemented, then the connection closes.
        let mut s = raw_connect(&addr);
        s.write_all(&connect_request(0, &[0; 16])).unwrap();
        read_frame(&mut s).unwrap();
        let mut req = 8i32.to_be_bytes().to_vec();
        req.extend_from_slice(&5i32.to_be_bytes());
        req.extend_from_slice(&999i32.to_be_bytes());
        s.write_all(&req).unwrap();
        let reply = read_frame(&mut s).unwrap();
        assert_eq!(&reply[0..4], &5i32.to_be_bytes());
        assert_eq!(&reply[12..16], &(-6i32).to_be_bytes());
        assert!(closed(&mut s));
    })
    .await
    .unwrap();
    let client = server.client().await;
    client
        .create("/still-alive", b"", &persistent())
        .await
        .unwrap();
    server.stop().await;
}

/// Sends a request with corral-proto's encoder on a raw socket.
fn send_request(s: &mut TcpStream, xid: i32, request: &corral_proto::request::Request) {
    let mut buf = bytes::BytesMut::new();
    request.encode(xid, &mut buf);
    s.write_all(&buf).unwrap();
}

#[tokio::test]
async fn ephemeral_nodes_vanish_when_the_session_expires() {
    let server = TestServer::start().await;
    let addr = server.addr.clone();
    let watcher = server.client().await;
    // A raw client that creates an ephemeral and then goes silent.
    let silent = tokio::task::spawn_blocking(move || {
        let mut s = raw_connect(&addr);
        let mut req = connect_request(0, &[0; 16]);
        // Ask for 1 ms: the server raises it to minSessionTimeout (2 ticks).
        req[16..20].copy_from_slice(&1i32.to_be_bytes());
        s.write_all(&req).unwrap();
        let reply = read_frame(&mut s).unwrap();
        assert_eq!(
            &reply[4..8],
            &1000i32.to_be_bytes(),
            "timeout clamped to 2 x tickTime"
        );
        let create = corral_proto::request::Request::Create(corral_proto::request::CreateOp {
            kind: corral_proto::request::CreateKind::Create,
            path: "/silent".into(),
            data: Some(vec![]),
            acl: corral_proto::Acl::open_unsafe(),
            flags: 1,
            ttl_ms: -1,
        });
        send_request(&mut s, 1, &create);
        let reply = read_frame(&mut s).unwrap();
        assert_eq!(&reply[12..16], &0i32.to_be_bytes());
        s
    })
    .await
    .unwrap();
    let (_, _, watch) = watcher.get_and_watch_data("/silent").await.unwrap();
    let started = std::time::Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.changed())
        .await
        .unwrap();
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "expired too early"
    );
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn empty_containers_are_reaped_after_their_last_child_goes() {
    let server = TestServer::start_with(&[("znode.container.checkIntervalMs", "100")]).await;
    let client = server.client().await;
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    client.create("/c", b"", &container).await.unwrap();
    client.create("/c/child", b"", &persistent()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        client.check_stat("/c").await.unwrap().is_some(),
        "a container with a child stays"
    );
    client.delete("/c/child", None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while client.check_stat("/c").await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "empty container was not reaped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// Opens two sessions (kept open, returned) and checks that a third connection is
/// closed at accept.
fn two_sessions_and_a_third_refused(addr: &str) -> (TcpStream, TcpStream) {
    let open = || {
        let mut s = raw_connect(addr);
        s.write_all(&connect_request(0, &[0; 16])).unwrap();
        read_frame(&mut s).expect("a session within the limit");
        s
    };
    let (a, b) = (open(), open());
    let mut c = raw_connect(addr);
    let _ = c.write_all(&connect_request(0, &[0; 16]));
    assert!(
        read_frame(&mut c).is_none(),
        "the third connection is closed at accept"
    );
    (a, b)
}

#[tokio::test]
async fn max_client_cnxns_limits_connections_per_address() {
    let server = TestServer::start_with(&[("maxClientCnxns", "2")]).await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let _open = two_sessions_and_a_third_refused(&addr);
    })
    .await
    .unwrap();
    server.stop().await;
}

/// `maxCnxns` caps connections in all, whatever their address (`maxClientCnxns=0`: no
/// limit per address); a connection closed makes room again.
#[tokio::test]
async fn max_cnxns_limits_connections_in_all() {
    let server = TestServer::start_with(&[("maxCnxns", "2"), ("maxClientCnxns", "0")]).await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let (a, _b) = two_sessions_and_a_third_refused(&addr);
        drop(a);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut d = raw_connect(&addr);
            let _ = d.write_all(&connect_request(0, &[0; 16]));
            if read_frame(&mut d).is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no room after a connection closed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn reconnecting_with_the_session_keeps_ephemerals() {
    let server = TestServer::start().await;
    let addr = server.addr.clone();
    let checker = server.client().await;
    tokio::task::spawn_blocking(move || {
        let mut s = raw_connect(&addr);
        s.write_all(&connect_request(0, &[0; 16])).unwrap();
        let reply = read_frame(&mut s).unwrap();
        let session_id = i64::from_be_bytes(reply[8..16].try_into().unwrap());
        let passwd = reply[20..36].to_vec();
        let create = corral_proto::request::Request::Create(corral_proto::request::CreateOp {
            kind: corral_proto::request::CreateKind::Create,
            path: "/mine".into(),
            data: Some(vec![]),
            acl: corral_proto::Acl::open_unsafe(),
            flags: 1,
            ttl_ms: -1,
        });
        send_request(&mut s, 1, &create);
        read_frame(&mut s).unwrap();
        drop(s);
        let mut s2 = raw_connect(&addr);
        s2.write_all(&connect_request(session_id, &passwd)).unwrap();
        let reply = read_frame(&mut s2).unwrap();
        assert_eq!(
            i64::from_be_bytes(reply[8..16].try_into().unwrap()),
            session_id
        );
        s2
    })
    .await
    .unwrap();
    let stat = checker
        .check_stat("/mine")
        .await
        .unwrap()
        .expect("ephemeral kept");
    assert_ne!(stat.ephemeral_owner, 0);
    server.stop().await;
}

/// zoo.cfg's `preAllocSize` (KiB) is the size each log segment is created at,
/// as ZooKeeper preallocates its log files by that much.
#[tokio::test]
async fn pre_alloc_size_sets_the_size_log_segments_are_created_at() {
    let server = TestServer::start_with(&[("preAllocSize", "128")]).await;
    let log_dir = server._dir.path().join("log");
    let client = server.client().await;
    // ~400 KiB of writes: more than three 128 KiB segments.
    let data = vec![b'x'; 8 * 1024];
    for i in 0..50 {
        client
            .create(&format!("/big-{i}"), &data, &persistent())
            .await
            .expect("create");
    }
    let mut sizes: Vec<u64> = std::fs::read_dir(&log_dir)
        .expect("the log directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect();
    sizes.sort();
    assert!(sizes.len() >= 3, "segments in {log_dir:?}: {sizes:?}");
    assert!(
        sizes.iter().all(|&len| len == 128 * 1024),
        "every segment preallocated to preAllocSize: {sizes:?}"
    );
    drop(client);
    server.stop().await;
}
