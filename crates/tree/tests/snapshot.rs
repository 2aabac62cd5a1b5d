//! Snapshots: a restored tree equals the original, byte for byte, and keeps
//! behaving the same; checked on hand-made trees and on random op sequences.

mod common;

use common::*;
use corral_proto::{perms, Acl, CreateMode, ErrorCode, Id};
use corral_tree::{DataTree, SnapshotError, TreeConfig, Txn, TxnOp};
use proptest::prelude::*;

fn snapshot_bytes(tree: &DataTree) -> Vec<u8> {
    let mut bytes = Vec::new();
    tree.write_snapshot(&mut bytes)
        .expect("writing to a Vec cannot fail");
    bytes
}

fn restore(bytes: &[u8], config: TreeConfig) -> DataTree {
    DataTree::read_snapshot(&mut &bytes[..], config).expect("a snapshot we just wrote loads")
}

fn assert_round_trips(tree: &DataTree) {
    let bytes = snapshot_bytes(tree);
    let restored = restore(&bytes, tree.config());
    restored.assert_invariants();
    assert_eq!(&restored, tree);
    assert_eq!(
        snapshot_bytes(&restored),
        bytes,
        "equal trees give equal bytes"
    );
}

#[test]
fn a_fresh_tree_round_trips() {
    assert_round_trips(&DataTree::new(TreeConfig::default()));
}

#[test]
fn snapshot_round_trip_keeps_every_part_of_the_state() {
    let config = TreeConfig {
        extended_types_enabled: true,
        enforce_quota: true,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    };
    let mut d = Driver::with_config(config);
    d.apply_as(0x200, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
    d.mk("/a");
    d.apply(create("/a/data", &[0, 1, 2, 255], CreateMode::Persistent));
    d.apply(create("/a/s-", b"", CreateMode::PersistentSequential));
    d.apply(delete("/a/s-0000000001", -1));
    d.apply(create("/a/e", b"", CreateMode::EphemeralSequential));
    d.apply_as(
        0x200,
        vec![],
        create("/other-e", b"x", CreateMode::Ephemeral),
    );
    d.apply(create("/c", b"", CreateMode::Container));
    d.apply(create_ttl(
        "/t",
        CreateMode::PersistentSequentialWithTtl,
        60_000,
    ));
    d.apply(create_acl(
        "/locked",
        vec![
            acl(perms::READ, "digest", "bob:h"),
            acl(perms::ALL, "ip", "10.0.0.0/8"),
        ],
    ));
    d.apply(set_data("/a/data", b"changed", -1));
    d.apply(create_null("/a/null"));
    d.apply(create("/a/was-set-null", b"x", CreateMode::Persistent));
    d.apply(set_data_null("/a/was-set-null", -1));
    d.apply(TxnOp::SetAcl {
        path: "/a".into(),
        acl: vec![acl(perms::ALL, "world", "anyone")],
        version: 0,
    });
    d.mk("/zookeeper/quota/a");
    d.apply(create(
        "/zookeeper/quota/a/zookeeper_limits",
        b"count=-1,bytes=-1=;countHardLimit=100",
        CreateMode::Persistent,
    ));
    d.apply(create(
        "/zookeeper/quota/a/zookeeper_stats",
        b"",
        CreateMode::Persistent,
    ));
    d.apply(create(
        "/\u{00e9}t\u{00e9}",
        "caf\u{00e9}".as_bytes(),
        CreateMode::Persistent,
    ));
    assert_round_trips(&d.tree);

    let restored = restore(&snapshot_bytes(&d.tree), config);
    assert_eq!(restored.last_zxid(), d.tree.last_zxid());
    assert_eq!(restored.session_timeout_ms(0x200), Some(4000));
    assert_eq!(restored.get_ephemerals(SESSION, "/"), ["/a/e0000000002"]);
    assert_eq!(restored.quota_roots().collect::<Vec<_>>(), ["/a"]);
    assert_eq!(restored.stat("/a"), d.tree.stat("/a"));
    assert_eq!(restored.get_data("/a/null", &[]).unwrap().0, None);
    assert_eq!(restored.get_data("/a/was-set-null", &[]).unwrap().0, None);
    assert_eq!(restored.get_data("/c", &[]).unwrap().0, Some(&b""[..]));
    assert_eq!(restored.node_count(), d.tree.node_count());
    assert_eq!(
        restored.approximate_data_size(),
        d.tree.approximate_data_size()
    );
}

#[test]
fn a_restored_tree_continues_exactly_like_the_original() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/a");
    d.apply(delete("/p/a", -1));
    let mut restored = restore(&snapshot_bytes(&d.tree), d.tree.config());
    let txn = Txn {
        session_id: SESSION,
        time_ms: 99,
        auth: vec![],
        op: create("/p/s-", b"", CreateMode::PersistentSequential),
    };
    let zxid = d.tree.last_zxid() + 1;
    let original = d.tree.apply(zxid, &txn);
    let again = restored.apply(zxid, &txn);
    assert_eq!(original, again, "the internal create counter survived");
    assert_eq!(restored, d.tree);
}

#[test]
fn a_capture_snapshots_the_tree_as_it_was_whatever_is_written_after() {
    let mut d = Driver::new();
    d.apply_as(0x300, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
    // Enough nodes to span several of the store's chunks of 256 slots.
    for dir in 0..4 {
        d.mk(&format!("/d{dir}"));
        // /d3 is a big directory, whose child list is kept as shared runs.
        for i in 0..(if dir == 3 { 5000 } else { 300 }) {
            d.apply_unchecked(
                SESSION,
                vec![],
                create(&format!("/d{dir}/n{i}"), b"before", CreateMode::Persistent),
            );
        }
    }
    let expected = snapshot_bytes(&d.tree);
    let capture = d.tree.capture();
    assert_eq!(capture.last_zxid(), d.tree.last_zxid());
    // Every kind of write after the capture: data, children (the parent's
    // child list), deletes (freed slots then reused), ACLs, sessions.
    for i in 0..300 {
        d.apply_unchecked(
            SESSION,
            vec![],
            set_data(&format!("/d0/n{i}"), b"after", -1),
        );
        d.apply_unchecked(SESSION, vec![], delete(&format!("/d1/n{i}"), -1));
        d.apply_unchecked(
            SESSION,
            vec![],
            create(&format!("/d2/new{i}"), b"after", CreateMode::Persistent),
        );
        d.apply_unchecked(SESSION, vec![], delete(&format!("/d3/n{}", i * 7), -1));
        d.apply_unchecked(
            SESSION,
            vec![],
            create(&format!("/d3/new{i}"), b"after", CreateMode::Persistent),
        );
    }
    d.apply(create_acl(
        "/locked",
        vec![acl(perms::READ, "digest", "bob:h")],
    ));
    d.apply_as(0x300, vec![], TxnOp::CloseSession);
    d.tree.assert_invariants();
    let mut captured = Vec::new();
    capture
        .write(&mut captured)
        .expect("writing to a Vec cannot fail");
    assert!(
        captured == expected,
        "the capture shows writes made after it"
    );
    let restored = restore(&captured, d.tree.config());
    restored.assert_invariants();
    assert_eq!(
        restored.get_data("/d0/n7", &[]).unwrap().0,
        Some(&b"before"[..])
    );
    assert!(restored.stat("/d1/n7").is_some());
    assert!(restored.stat("/d2/new7").is_none());
    assert!(restored.stat("/d3/n7").is_some());
    assert!(restored.stat("/d3/new7").is_none());
    assert_eq!(restored.stat("/d3").map(|s| s.num_children), Some(5000));
    assert_eq!(restored.session_timeout_ms(0x300), Some(4000));
    assert_round_trips(&d.tree);
}

#[test]
fn a_snapshot_with_wrong_magic_or_cut_short_is_refused() {
    let bytes = snapshot_bytes(&DataTree::new(TreeConfig::default()));
    let mut wrong = bytes.clone();
    wrong[0] ^= 0xFF;
    assert!(matches!(
        DataTree::read_snapshot(&mut &wrong[..], TreeConfig::default()),
        Err(SnapshotError::BadMagic)
    ));
    for cut in [4, 12, bytes.len() / 2, bytes.len() - 1] {
        let result = DataTree::read_snapshot(&mut &bytes[..cut], TreeConfig::default());
        assert!(result.is_err(), "cut at {cut} of {}", bytes.len());
    }
    let mut garbage = bytes.clone();
    let last = garbage.len() - 1;
    garbage[last] = 0x77;
    assert!(DataTree::read_snapshot(&mut &garbage[..], TreeConfig::default()).is_err());
}

#[test]
fn a_snapshot_of_format_1_from_before_null_data_is_refused_by_its_format() {
    let mut bytes = snapshot_bytes(&DataTree::new(TreeConfig::default()));
    // Magic (8), record length (4), Header variant (postcard varint 0), then
    // the format as a varint.
    assert_eq!((bytes[12], bytes[13]), (0, 2));
    bytes[13] = 1;
    assert!(matches!(
        DataTree::read_snapshot(&mut &bytes[..], TreeConfig::default()),
        Err(SnapshotError::UnsupportedFormat(1))
    ));
}

// ---- random op sequences -----------------------------------------------

const TOP_PATHS: &[&str] = &["/a", "/b", "/c"];
const CHILD_PATHS: &[&str] = &["/a/b", "/a/c", "/b/x", "/c/s-"];
const ODD_PATHS: &[&str] = &[
    "/a/b/c",
    "/a/",
    "/zookeeper/quota/a",
    "/zookeeper/quota/a/zookeeper_limits",
    "/zookeeper/quota/a/zookeeper_stats",
    "/zookeeper",
    "bad",
];

const SESSIONS: &[i64] = &[1, 2, 3];

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => prop::sample::select(TOP_PATHS),
        4 => prop::sample::select(CHILD_PATHS),
        2 => prop::sample::select(ODD_PATHS),
    ]
    .prop_map(str::to_owned)
}

fn acl_list() -> impl Strategy<Value = Vec<Acl>> {
    prop_oneof![
        8 => Just(Acl::open_unsafe()),
        1 => Just(vec![Acl { perms: perms::READ | perms::CREATE, id: Id::anyone() }]),
        1 => Just(vec![Acl { perms: perms::ALL, id: Id::new("digest", "bob:h") }]),
        1 => Just(vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }]),
        1 => Just(vec![]),
    ]
}

fn mode() -> impl Strategy<Value = (CreateMode, i64)> {
    prop_oneof![
        4 => Just((CreateMode::Persistent, -1)),
        2 => Just((CreateMode::PersistentSequential, -1)),
        2 => Just((CreateMode::Ephemeral, -1)),
        1 => Just((CreateMode::EphemeralSequential, -1)),
        2 => Just((CreateMode::Container, -1)),
        1 => (1i64..5_000).prop_map(|ttl| (CreateMode::PersistentWithTtl, ttl)),
        1 => Just((CreateMode::PersistentSequentialWithTtl, 0)),
    ]
}

/// Znode data: null, empty or not, and quota limits.
fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        3 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Some),
        1 => Just(Some(b"count=-1,bytes=-1=;countHardLimit=4;byteHardLimit=20".to_vec())),
    ]
}

fn version() -> impl Strategy<Value = i32> {
    prop_oneof![3 => Just(-1), 1 => 0i32..3]
}

fn simple_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        12 => (path(), data(), acl_list(), mode())
            .prop_map(|(path, data, acl, (mode, ttl_ms))| TxnOp::Create { path, data, acl, mode, ttl_ms }),
        3 => (path(), version()).prop_map(|(path, version)| TxnOp::Delete { path, version }),
        3 => (path(), data(), version()).prop_map(|(path, data, version)| TxnOp::SetData { path, data, version }),
        1 => (path(), version()).prop_map(|(path, version)| TxnOp::Check { path, version }),
    ]
}

fn op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        10 => simple_op(),
        2 => (path(), acl_list(), version()).prop_map(|(path, acl, version)| TxnOp::SetAcl { path, acl, version }),
        2 => prop::collection::vec(simple_op(), 0..4).prop_map(TxnOp::Multi),
        1 => (1i32..10_000).prop_map(|timeout_ms| TxnOp::CreateSession { timeout_ms }),
        1 => Just(TxnOp::CloseSession),
        1 => Just(TxnOp::Fail(ErrorCode::BadArguments)),
        1 => path().prop_map(|path| TxnOp::DeleteContainer { path }),
    ]
}

fn auth() -> impl Strategy<Value = Vec<Id>> {
    prop_oneof![
        4 => Just(vec![Id::new("ip", "127.0.0.1")]),
        2 => Just(vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "bob:h")]),
        1 => Just(vec![Id::new("super", "")]),
    ]
}

fn txn() -> impl Strategy<Value = (Txn, i64)> {
    (prop::sample::select(SESSIONS), auth(), op(), 0i64..3).prop_map(
        |(session_id, auth, op, reap)| {
            (
                Txn {
                    session_id,
                    time_ms: 0,
                    auth,
                    op,
                },
                reap,
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random writes keep every invariant; at any point a snapshot restores
    /// to an equal tree that then applies the rest of the log identically.
    #[test]
    fn random_writes_keep_invariants_and_snapshots_restore_equal_trees(
        txns in prop::collection::vec(txn(), 1..120),
        split in 0usize..120,
        extended_types_enabled in any::<bool>(),
        enforce_quota in any::<bool>(),
    ) {
        let config = TreeConfig { extended_types_enabled, enforce_quota, sasl_acls: false, x509_acls: false, skip_acl: false };
        let mut tree = DataTree::new(config);
        let mut restored: Option<DataTree> = None;
        for &session_id in SESSIONS {
            let open = Txn { session_id, time_ms: 0, auth: vec![], op: TxnOp::CreateSession { timeout_ms: 5000 } };
            tree.apply(tree.last_zxid() + 1, &open);
        }
        let first_zxid = tree.last_zxid() + 1;
        for (index, (mut txn, reap)) in txns.into_iter().enumerate() {
            let zxid = first_zxid + index as i64;
            txn.time_ms = zxid * 1000;
            // Now and then let the reaper turn a candidate into its txn.
            if reap == 0 {
                if let Some(path) = tree.reapable_nodes(txn.time_ms, 1500).into_iter().next() {
                    txn = Txn { session_id: 0, time_ms: txn.time_ms, auth: vec![], op: TxnOp::DeleteContainer { path } };
                }
            }
            if index == split {
                let bytes = snapshot_bytes(&tree);
                let copy = restore(&bytes, config);
                prop_assert_eq!(&copy, &tree);
                restored = Some(copy);
            }
            let outcome = tree.apply(zxid, &txn);
            tree.assert_invariants();
            if let TxnOp::Multi(ops) = &txn.op {
                if let corral_tree::TxnResult::Multi(results) = &outcome.result {
                    prop_assert_eq!(results.len(), ops.len());
                }
            }
            if let corral_tree::TxnResult::Error(code) = outcome.result {
                prop_assert!(outcome.triggers.is_empty(), "a failed write fired {:?} ({:?})", outcome.triggers, code);
                prop_assert_ne!(code, ErrorCode::Ok);
            }
            if let Some(copy) = restored.as_mut() {
                let again = copy.apply(zxid, &txn);
                prop_assert_eq!(&again, &outcome);
            }
        }
        assert_round_trips(&tree);
        if let Some(copy) = restored {
            prop_assert_eq!(&copy, &tree);
        }
    }
}

#[test]
fn session_owners_and_a_reconfigured_config_node_survive_a_snapshot() {
    let mut d = Driver::new();
    d.apply_as(0x300, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
    d.tree.set_session_owner(0x300, 2);
    // An unknown session gets no owner.
    d.tree.set_session_owner(0x999, 3);
    let out = d.apply(TxnOp::SetConfig {
        members: "server.1=h:1:2:participant;0.0.0.0:3\n".into(),
    });
    let stat = d.stat("/zookeeper/config");
    assert_eq!(stat.mzxid, out.zxid);
    assert_eq!(stat.version, -1, "ZooKeeper's reconfig txn sets version -1");
    let (data, _) = d
        .tree
        .get_data("/zookeeper/config", &[Id::new("super", "")])
        .expect("config node");
    assert_eq!(
        data.map(|d| String::from_utf8_lossy(d).into_owned()),
        Some(format!(
            "server.1=h:1:2:participant;0.0.0.0:3\nversion={:x}",
            out.zxid
        ))
    );
    assert_round_trips(&d.tree);
    let restored = restore(&snapshot_bytes(&d.tree), d.tree.config());
    assert_eq!(restored.session_owner(0x300), Some(2));
    assert_eq!(restored.session_owner(0x999), None);
    d.apply_as(0x300, vec![], TxnOp::CloseSession);
    assert_eq!(
        d.tree.session_owner(0x300),
        None,
        "closing forgets the owner"
    );
}
