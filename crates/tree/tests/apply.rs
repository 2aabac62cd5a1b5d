//! The write path, as ZooKeeper 3.8 behaves (ZOOKEEPER-BEHAVIOUR.md §4–§6,
//! §9, §10, §14).

mod common;

use common::*;
use corral_proto::{perms, Acl, CreateMode, ErrorCode, EventType, Id};
use corral_tree::{digest_id, DataTree, MultiOpResult, TreeConfig, Txn, TxnOp, TxnResult};

fn created_path(result: &TxnResult) -> &str {
    match result {
        TxnResult::Created { path, .. } => path,
        other => panic!("expected Created, got {other:?}"),
    }
}

// ---- fresh tree ------------------------------------------------------------

#[test]
fn a_fresh_tree_has_the_system_nodes_with_zookeepers_stats() {
    let tree = DataTree::new(TreeConfig::default());
    let root = tree.stat("/").unwrap();
    assert_eq!(
        (root.cversion, root.num_children, root.czxid, root.pzxid),
        (-1, 1, 0, 0)
    );
    let zk = tree.stat("/zookeeper").unwrap();
    assert_eq!((zk.cversion, zk.num_children), (-2, 2));
    let quota = tree.stat("/zookeeper/quota").unwrap();
    assert_eq!((quota.cversion, quota.num_children), (0, 0));
    assert_eq!(tree.stat("").unwrap(), root, "the root alias");
    let (config, config_stat) = tree.get_data("/zookeeper/config", &[]).unwrap();
    assert_eq!(config, Some(&b""[..]), "empty, not null");
    assert_eq!(config_stat.data_length, 0);
    let (config_acl, _) = tree.get_acl("/zookeeper/config", &[]).unwrap();
    assert_eq!(config_acl, vec![acl(perms::READ, "world", "anyone")]);
    assert_eq!(
        tree.get_acl("/zookeeper/quota", &[]).unwrap().0,
        Acl::open_unsafe()
    );
    assert_eq!(
        tree.node_count(),
        5,
        "srvr's Node count counts the root twice"
    );
    assert_eq!(tree.get_all_children_number("/", &[]), Ok(3));
    assert_eq!(tree.approximate_data_size(), 1 + 10 + 16 + 17);
    assert_eq!(tree.last_zxid(), 0);
}

// ---- zxids -----------------------------------------------------------------

#[test]
fn failed_write_still_uses_a_zxid() {
    let mut d = Driver::new();
    let before = d.tree.last_zxid();
    let outcome = d.apply(delete("/missing", -1));
    assert_eq!(outcome.result, err(ErrorCode::NoNode));
    assert_eq!(outcome.zxid, before + 1);
    assert_eq!(d.tree.last_zxid(), before + 1);
    assert!(outcome.triggers.is_empty());
}

#[test]
#[should_panic(expected = "the log went backwards")]
fn applying_a_zxid_that_is_not_above_the_last_one_stops_the_server() {
    let mut tree = DataTree::new(TreeConfig::default());
    let txn = Txn {
        session_id: 1,
        time_ms: 0,
        auth: vec![],
        op: TxnOp::CreateSession { timeout_ms: 1 },
    };
    tree.apply(5, &txn);
    tree.apply(5, &txn);
}

// ---- create ----------------------------------------------------------------

#[test]
fn create_stamps_the_new_node_and_bumps_the_parent() {
    let mut d = Driver::new();
    d.mk("/p");
    let outcome = d.apply(create("/p/a", b"hello", CreateMode::Persistent));
    let zxid = outcome.zxid;
    let TxnResult::Created { path, stat } = outcome.result else {
        panic!()
    };
    assert_eq!(path, "/p/a");
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (zxid, zxid, zxid));
    assert_eq!((stat.ctime, stat.mtime), (zxid * 1000, zxid * 1000));
    assert_eq!(
        (
            stat.version,
            stat.cversion,
            stat.aversion,
            stat.ephemeral_owner
        ),
        (0, 0, 0, 0)
    );
    assert_eq!((stat.data_length, stat.num_children), (5, 0));
    let parent = d.stat("/p");
    assert_eq!(
        (parent.cversion, parent.num_children, parent.pzxid),
        (1, 1, zxid)
    );
    assert_ne!(
        parent.mzxid, zxid,
        "a child create leaves the parent's mzxid"
    );
    assert_eq!(parent.version, 0);
}

#[test]
fn create_fires_node_created_then_the_parents_children_changed() {
    let mut d = Driver::new();
    let outcome = d.apply(create("/top", b"", CreateMode::Persistent));
    let events: Vec<_> = outcome
        .triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        [
            ("/top", EventType::NodeCreated),
            ("/", EventType::NodeChildrenChanged)
        ]
    );
    d.apply(create_acl(
        "/locked",
        vec![acl(perms::ALL, "digest", "bob:h")],
    ));
    let outcome = d.apply_as(
        SESSION,
        vec![Id::new("digest", "bob:h")],
        create("/locked/k", b"", CreateMode::Persistent),
    );
    assert_eq!(
        *outcome.triggers[0].acl,
        Acl::open_unsafe(),
        "NodeCreated carries the new node's ACL"
    );
    assert_eq!(
        *outcome.triggers[1].acl,
        vec![acl(perms::ALL, "digest", "bob:h")],
        "the parent's ACL"
    );
}

#[test]
fn sequential_suffix_uses_internal_counter_not_visible_cversion() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/a");
    assert_eq!(d.result(delete("/p/a", -1)), TxnResult::Deleted);
    let result = d.result(create("/p/s-", b"", CreateMode::PersistentSequential));
    assert_eq!(created_path(&result), "/p/s-0000000001");
    assert_eq!(d.stat("/p").cversion, 3, "two creates and one delete");
    let result = d.result(create("/p/s-", b"", CreateMode::PersistentSequential));
    assert_eq!(created_path(&result), "/p/s-0000000002");
}

#[test]
fn sequential_create_with_a_trailing_slash_names_the_node_by_its_number() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/x");
    d.mk("/p/y");
    let result = d.result(create("/p/", b"", CreateMode::PersistentSequential));
    assert_eq!(created_path(&result), "/p/0000000002");
}

#[test]
fn create_checks_in_zookeepers_order() {
    let config = TreeConfig {
        extended_types_enabled: true,
        enforce_quota: false,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    };
    let mut d = Driver::with_config(config);
    d.mk("/p");
    d.apply(create_acl(
        "/locked",
        vec![acl(perms::READ, "world", "anyone")],
    ));
    d.apply(create("/eph", b"", CreateMode::Ephemeral));
    let bad_acl = vec![acl(perms::ALL, "world", "foo")];
    let cases: Vec<(&str, TxnOp, ErrorCode)> = vec![
        (
            "ttl 0",
            create_ttl("/p/t", CreateMode::PersistentWithTtl, 0),
            ErrorCode::BadArguments,
        ),
        (
            "ttl too big",
            create_ttl("/p/t", CreateMode::PersistentWithTtl, 0xFF_FFFF_FFFF + 1),
            ErrorCode::BadArguments,
        ),
        (
            "ttl on a plain create",
            create_ttl("/p/t", CreateMode::Persistent, 5),
            ErrorCode::BadArguments,
        ),
        (
            "ttl value before path",
            create_ttl("bad", CreateMode::PersistentWithTtl, 0),
            ErrorCode::BadArguments,
        ),
        (
            "no slash",
            create("noslash", b"", CreateMode::Persistent),
            ErrorCode::BadArguments,
        ),
        (
            "nul",
            create("/p/a\0b", b"", CreateMode::Persistent),
            ErrorCode::BadArguments,
        ),
        (
            "invalid ACL before missing parent",
            TxnOp::Create {
                path: "/nope/x".into(),
                data: Some(vec![]),
                acl: bad_acl,
                mode: CreateMode::Persistent,
                ttl_ms: -1,
            },
            ErrorCode::InvalidAcl,
        ),
        (
            "empty ACL",
            TxnOp::Create {
                path: "/p/x".into(),
                data: Some(vec![]),
                acl: vec![],
                mode: CreateMode::Persistent,
                ttl_ms: -1,
            },
            ErrorCode::InvalidAcl,
        ),
        (
            "missing parent before the full path",
            create("/q/x/", b"", CreateMode::Persistent),
            ErrorCode::NoNode,
        ),
        (
            "NoAuth before the full path",
            create("/locked/", b"", CreateMode::Persistent),
            ErrorCode::NoAuth,
        ),
        (
            "full path invalid",
            create("/p/", b"", CreateMode::Persistent),
            ErrorCode::BadArguments,
        ),
        (
            "dot component",
            create("/p/..", b"", CreateMode::Persistent),
            ErrorCode::BadArguments,
        ),
        (
            "emoji",
            create("/p/\u{1F600}", b"", CreateMode::Persistent),
            ErrorCode::BadArguments,
        ),
        (
            "exists",
            create("/p", b"", CreateMode::Persistent),
            ErrorCode::NodeExists,
        ),
        (
            "the root exists",
            create("/", b"", CreateMode::Persistent),
            ErrorCode::NodeExists,
        ),
        (
            "ephemeral parent",
            create("/eph/child", b"", CreateMode::Persistent),
            ErrorCode::NoChildrenForEphemerals,
        ),
    ];
    for (what, op, code) in cases {
        assert_eq!(d.result(op), err(code), "{what}");
    }
}

#[test]
fn ttl_create_is_unimplemented_unless_extended_types_are_enabled() {
    let mut d = Driver::new();
    assert_eq!(
        d.result(create_ttl("bad path", CreateMode::PersistentWithTtl, 0)),
        err(ErrorCode::Unimplemented)
    );
    assert_eq!(
        d.result(create_ttl(
            "/t",
            CreateMode::PersistentSequentialWithTtl,
            10
        )),
        err(ErrorCode::Unimplemented)
    );
    let mut d = Driver::with_config(TreeConfig {
        extended_types_enabled: true,
        enforce_quota: false,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    });
    let result = d.result(create_ttl("/t", CreateMode::PersistentWithTtl, 10));
    let TxnResult::Created { stat, .. } = result else {
        panic!("{result:?}")
    };
    assert_eq!(stat.ephemeral_owner, 0, "clients see owner 0 on TTL nodes");
}

#[test]
fn containers_and_ttl_nodes_may_have_ephemeral_children() {
    let mut d = Driver::with_config(TreeConfig {
        extended_types_enabled: true,
        enforce_quota: false,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    });
    let result = d.result(create("/c", b"", CreateMode::Container));
    let TxnResult::Created { stat, .. } = result else {
        panic!("{result:?}")
    };
    assert_eq!(stat.ephemeral_owner, 0, "clients see owner 0 on containers");
    d.result(create_ttl("/t", CreateMode::PersistentWithTtl, 1000));
    assert!(matches!(
        d.result(create("/c/e", b"", CreateMode::Ephemeral)),
        TxnResult::Created { .. }
    ));
    assert!(matches!(
        d.result(create("/t/e", b"", CreateMode::Ephemeral)),
        TxnResult::Created { .. }
    ));
    assert_eq!(d.stat("/c/e").ephemeral_owner, SESSION);
}

#[test]
fn an_ephemeral_for_a_session_that_is_not_open_is_refused() {
    let mut d = Driver::new();
    let outcome = d.apply_as(0x999, vec![], create("/e", b"", CreateMode::Ephemeral));
    assert_eq!(outcome.result, err(ErrorCode::SessionExpired));
    let outcome = d.apply_as(0x999, vec![], create("/p", b"", CreateMode::Persistent));
    assert!(
        matches!(outcome.result, TxnResult::Created { .. }),
        "non-ephemeral writes are the session layer's call"
    );
}

#[test]
fn create_with_auth_acl_expands_to_the_digest_ids_of_the_request() {
    let mut d = Driver::new();
    let bob = digest_id("bob:secret");
    let auth = vec![Id::new("ip", "10.0.0.1"), Id::new("digest", bob.as_str())];
    let outcome = d.apply_as(
        SESSION,
        auth.clone(),
        create_acl("/mine", vec![acl(perms::ALL, "auth", "")]),
    );
    assert!(matches!(outcome.result, TxnResult::Created { .. }));
    assert_eq!(
        d.tree.get_acl("/mine", &auth).unwrap().0,
        vec![acl(perms::ALL, "digest", &bob)]
    );
    let ip_only = vec![Id::new("ip", "10.0.0.1")];
    let outcome = d.apply_as(
        SESSION,
        ip_only,
        create_acl("/other", vec![acl(perms::ALL, "auth", "")]),
    );
    assert_eq!(outcome.result, err(ErrorCode::InvalidAcl));
}

// ---- delete ----------------------------------------------------------------

#[test]
fn badversion_wins_over_notempty() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/c");
    assert_eq!(d.result(delete("/p", 7)), err(ErrorCode::BadVersion));
    assert_eq!(d.result(delete("/p", 0)), err(ErrorCode::NotEmpty));
    assert_eq!(d.result(delete("/p", -1)), err(ErrorCode::NotEmpty));
}

#[test]
fn delete_checks_in_zookeepers_order() {
    let mut d = Driver::new();
    d.mk("/p");
    d.apply(create_acl(
        "/nodel",
        vec![acl(perms::ALL & !perms::DELETE, "world", "anyone")],
    ));
    d.mk("/nodel/c");
    let cases = [
        ("/zookeeper", ErrorCode::BadArguments),
        ("/zookeeper/quota", ErrorCode::BadArguments),
        ("/zookeeper/config", ErrorCode::BadArguments),
        ("/", ErrorCode::BadArguments),
        ("noslash", ErrorCode::BadArguments),
        ("/p\0", ErrorCode::BadArguments),
        ("/p/", ErrorCode::NoNode),
        ("/missing/x", ErrorCode::NoNode),
        ("/nodel/c", ErrorCode::NoAuth),
        ("/nodel/missing", ErrorCode::NoAuth),
        ("/p/missing", ErrorCode::NoNode),
    ];
    for (path, code) in cases {
        assert_eq!(d.result(delete(path, -1)), err(code), "delete {path:?}");
    }
}

#[test]
fn delete_raises_the_visible_cversion_but_not_the_create_counter() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/a");
    let outcome = d.apply(delete("/p/a", 0));
    assert_eq!(outcome.result, TxnResult::Deleted);
    let events: Vec<_> = outcome
        .triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        [
            ("/p/a", EventType::NodeDeleted),
            ("/p", EventType::NodeChildrenChanged)
        ]
    );
    let parent = d.stat("/p");
    assert_eq!(
        (parent.cversion, parent.num_children, parent.pzxid),
        (2, 0, outcome.zxid)
    );
    assert!(d.tree.stat("/p/a").is_none());
}

// ---- setData / setACL / check ----------------------------------------------

#[test]
fn set_data_bumps_version_mzxid_and_mtime_even_for_the_same_bytes() {
    let mut d = Driver::new();
    d.apply(create("/n", b"same", CreateMode::Persistent));
    let outcome = d.apply(set_data("/n", b"same", 0));
    let TxnResult::DataSet { stat } = outcome.result else {
        panic!()
    };
    assert_eq!(
        (stat.version, stat.mzxid, stat.mtime),
        (1, outcome.zxid, outcome.zxid * 1000)
    );
    assert_ne!(stat.czxid, stat.mzxid);
    assert_eq!(outcome.triggers.len(), 1);
    assert_eq!(outcome.triggers[0].event, EventType::NodeDataChanged);
    assert_eq!(
        d.result(set_data("/n", b"x", 0)),
        err(ErrorCode::BadVersion)
    );
    assert_eq!(
        d.result(set_data("/n", b"longer", -1)),
        TxnResult::DataSet {
            stat: d.tree.stat("/n").unwrap()
        }
    );
    assert_eq!(d.tree.get_data("/n", &[]).unwrap().0, Some(&b"longer"[..]));
}

#[test]
fn null_data_reads_back_as_null_and_empty_data_as_empty_both_with_length_zero() {
    let mut d = Driver::new();
    d.apply(create_null("/null"));
    d.apply(create("/empty", b"", CreateMode::Persistent));
    let (data, stat) = d.tree.get_data("/null", &[]).unwrap();
    assert_eq!((data, stat.data_length), (None, 0));
    let (data, stat) = d.tree.get_data("/empty", &[]).unwrap();
    assert_eq!((data, stat.data_length), (Some(&b""[..]), 0));

    d.apply(set_data_null("/empty", -1));
    assert_eq!(d.tree.get_data("/empty", &[]).unwrap().0, None);
    d.apply(set_data("/null", b"now", -1));
    let (data, stat) = d.tree.get_data("/null", &[]).unwrap();
    assert_eq!((data, stat.data_length), (Some(&b"now"[..]), 3));
    d.apply(set_data("/null", b"", -1));
    assert_eq!(d.tree.get_data("/null", &[]).unwrap().0, Some(&b""[..]));

    let outcome = d.apply(TxnOp::Multi(vec![
        create_null("/m"),
        set_data_null("/null", -1),
    ]));
    assert!(matches!(outcome.result, TxnResult::Multi(_)));
    assert_eq!(d.tree.get_data("/m", &[]).unwrap().0, None);
    assert_eq!(d.tree.get_data("/null", &[]).unwrap().0, None);
}

#[test]
fn set_data_checks_in_zookeepers_order() {
    let mut d = Driver::new();
    d.apply(create_acl("/ro", vec![acl(perms::READ, "world", "anyone")]));
    assert_eq!(
        d.result(set_data("/ro/", b"", -1)),
        err(ErrorCode::BadArguments)
    );
    assert_eq!(
        d.result(set_data("/missing", b"", -1)),
        err(ErrorCode::NoNode)
    );
    assert_eq!(d.result(set_data("/ro", b"", 5)), err(ErrorCode::NoAuth));
    let outcome = d.apply_as(SESSION, vec![Id::new("super", "")], set_data("/ro", b"", 5));
    assert_eq!(
        outcome.result,
        err(ErrorCode::BadVersion),
        "super passes the ACL, not the version"
    );
}

#[test]
fn set_acl_changes_only_the_acl_and_aversion() {
    let mut d = Driver::new();
    d.mk("/n");
    let before = d.stat("/n");
    let outcome = d.apply(TxnOp::SetAcl {
        path: "/n".into(),
        acl: vec![acl(perms::READ, "world", "anyone")],
        version: 0,
    });
    let TxnResult::AclSet { stat } = outcome.result else {
        panic!("{:?}", outcome.result)
    };
    assert_eq!(stat.aversion, 1);
    assert_eq!(
        (stat.mzxid, stat.mtime, stat.version),
        (before.mzxid, before.mtime, before.version)
    );
    assert!(outcome.triggers.is_empty(), "setACL fires no watch");
    assert_eq!(
        d.result(TxnOp::SetAcl {
            path: "/n".into(),
            acl: Acl::open_unsafe(),
            version: 1
        }),
        err(ErrorCode::NoAuth)
    );
}

#[test]
fn set_acl_reports_an_invalid_acl_before_a_missing_node() {
    let mut d = Driver::new();
    let result = d.result(TxnOp::SetAcl {
        path: "/missing".into(),
        acl: vec![],
        version: -1,
    });
    assert_eq!(result, err(ErrorCode::InvalidAcl));
    let result = d.result(TxnOp::SetAcl {
        path: "/bad/".into(),
        acl: vec![],
        version: -1,
    });
    assert_eq!(result, err(ErrorCode::BadArguments));
    let result = d.result(TxnOp::SetAcl {
        path: "/missing".into(),
        acl: Acl::open_unsafe(),
        version: -1,
    });
    assert_eq!(result, err(ErrorCode::NoNode));
    d.mk("/n");
    let result = d.result(TxnOp::SetAcl {
        path: "/n".into(),
        acl: Acl::open_unsafe(),
        version: 3,
    });
    assert_eq!(result, err(ErrorCode::BadVersion), "compared with aversion");
}

#[test]
fn check_needs_read_and_the_version_and_changes_nothing() {
    let mut d = Driver::new();
    d.mk("/n");
    d.apply(create_acl(
        "/secret",
        vec![acl(perms::WRITE, "world", "anyone")],
    ));
    let before = d.tree.clone();
    assert_eq!(
        d.result(TxnOp::Check {
            path: "/n".into(),
            version: 0
        }),
        TxnResult::Checked
    );
    assert_eq!(
        d.result(TxnOp::Check {
            path: "/n".into(),
            version: 1
        }),
        err(ErrorCode::BadVersion)
    );
    assert_eq!(
        d.result(TxnOp::Check {
            path: "/secret".into(),
            version: 0
        }),
        err(ErrorCode::NoAuth)
    );
    assert_eq!(
        d.result(TxnOp::Check {
            path: "/n/".into(),
            version: 0
        }),
        err(ErrorCode::BadArguments)
    );
    assert_eq!(
        d.result(TxnOp::Check {
            path: "/none".into(),
            version: 0
        }),
        err(ErrorCode::NoNode)
    );
    assert_eq!(d.tree.stat("/n"), before.stat("/n"));
}

#[test]
fn a_request_the_server_rejected_fails_with_its_code_and_uses_a_zxid() {
    let mut d = Driver::new();
    let outcome = d.apply(TxnOp::Fail(ErrorCode::BadArguments));
    assert_eq!(outcome.result, err(ErrorCode::BadArguments));
}

// ---- multi -----------------------------------------------------------------

#[test]
fn multi_failure_reports_ok_then_code_then_runtime_inconsistency() {
    let mut d = Driver::new();
    let before = d.tree.clone();
    let outcome = d.apply(TxnOp::Multi(vec![
        create("/a", b"", CreateMode::Persistent),
        delete("/missing", -1),
        set_data("/a", b"x", -1),
    ]));
    assert_eq!(
        outcome.result,
        TxnResult::Multi(vec![
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::NoNode),
            MultiOpResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(outcome.triggers.is_empty());
    assert!(
        d.tree.stat("/a").is_none(),
        "nothing of a failed multi is applied"
    );
    assert_eq!(d.tree.stat("/"), before.stat("/"));
    assert_eq!(
        d.tree.last_zxid(),
        before.last_zxid() + 1,
        "the failed multi used one zxid"
    );
}

#[test]
fn multi_ops_see_the_effects_of_the_ops_before_them_and_share_one_zxid() {
    let mut d = Driver::new();
    let outcome = d.apply(TxnOp::Multi(vec![
        create("/a", b"", CreateMode::Persistent),
        create("/a/b", b"1", CreateMode::Persistent),
        set_data("/a/b", b"22", 0),
        TxnOp::Check {
            path: "/a/b".into(),
            version: 1,
        },
        create("/a/s-", b"", CreateMode::PersistentSequential),
        create("/a/s-", b"", CreateMode::PersistentSequential),
        delete("/a/s-0000000002", -1),
    ]));
    let TxnResult::Multi(results) = &outcome.result else {
        panic!()
    };
    assert!(matches!(&results[0], MultiOpResult::Created { path, .. } if path == "/a"));
    assert!(matches!(&results[2], MultiOpResult::DataSet { stat } if stat.version == 1));
    assert_eq!(results[3], MultiOpResult::Checked);
    assert!(
        matches!(&results[4], MultiOpResult::Created { path, .. } if path == "/a/s-0000000001")
    );
    assert!(
        matches!(&results[5], MultiOpResult::Created { path, .. } if path == "/a/s-0000000002")
    );
    assert_eq!(results[6], MultiOpResult::Deleted);
    for path in ["/a", "/a/b", "/a/s-0000000001"] {
        assert_eq!(d.stat(path).czxid, outcome.zxid);
    }
    let events: Vec<_> = outcome
        .triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        [
            ("/a", EventType::NodeCreated),
            ("/", EventType::NodeChildrenChanged),
            ("/a/b", EventType::NodeCreated),
            ("/a", EventType::NodeChildrenChanged),
            ("/a/b", EventType::NodeDataChanged),
            ("/a/s-0000000001", EventType::NodeCreated),
            ("/a", EventType::NodeChildrenChanged),
            ("/a/s-0000000002", EventType::NodeCreated),
            ("/a", EventType::NodeChildrenChanged),
            ("/a/s-0000000002", EventType::NodeDeleted),
            ("/a", EventType::NodeChildrenChanged),
        ]
    );
}

#[test]
fn a_multi_fails_on_a_check_that_sees_an_earlier_ops_version() {
    let mut d = Driver::new();
    d.mk("/n");
    let result = d.result(TxnOp::Multi(vec![
        set_data("/n", b"x", 0),
        TxnOp::Check {
            path: "/n".into(),
            version: 0,
        },
    ]));
    assert_eq!(
        result,
        TxnResult::Multi(vec![
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::BadVersion)
        ])
    );
    assert_eq!(d.stat("/n").version, 0);
}

#[test]
fn a_multi_delete_then_recreate_of_the_same_path_works() {
    let mut d = Driver::new();
    d.mk("/n");
    let result = d.result(TxnOp::Multi(vec![
        delete("/n", -1),
        create("/n", b"new", CreateMode::Persistent),
    ]));
    let TxnResult::Multi(results) = result else {
        panic!("{result:?}")
    };
    assert_eq!(results[0], MultiOpResult::Deleted);
    assert!(matches!(&results[1], MultiOpResult::Created { path, .. } if path == "/n"));
    assert_eq!(d.tree.get_data("/n", &[]).unwrap().0, Some(&b"new"[..]));
    let result = d.result(TxnOp::Multi(vec![delete("/n", -1), delete("/n", -1)]));
    assert_eq!(
        result,
        TxnResult::Multi(vec![
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::NoNode)
        ])
    );
}

#[test]
fn a_multi_with_an_op_that_cannot_be_in_a_multi_is_a_marshalling_error() {
    let mut d = Driver::new();
    let result = d.result(TxnOp::Multi(vec![
        create("/a", b"", CreateMode::Persistent),
        TxnOp::CloseSession,
    ]));
    assert_eq!(result, err(ErrorCode::MarshallingError));
    assert!(d.tree.stat("/a").is_none());
    let result = d.result(TxnOp::Multi(vec![
        create("/a", b"", CreateMode::Persistent),
        TxnOp::Fail(ErrorCode::BadArguments),
    ]));
    assert_eq!(
        result,
        TxnResult::Multi(vec![
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::BadArguments)
        ])
    );
}

#[test]
fn an_empty_multi_succeeds_with_no_results() {
    let mut d = Driver::new();
    assert_eq!(d.result(TxnOp::Multi(vec![])), TxnResult::Multi(vec![]));
}

// ---- sessions --------------------------------------------------------------

#[test]
fn close_session_deletes_ephemerals_in_one_zxid() {
    let mut d = Driver::new();
    d.mk("/e");
    d.apply(create("/e/one", b"", CreateMode::Ephemeral));
    d.apply(create("/top", b"", CreateMode::EphemeralSequential));
    d.apply(create("/e/keep", b"", CreateMode::Persistent));
    assert_eq!(d.tree.ephemeral_count(), 2);
    let outcome = d.apply(TxnOp::CloseSession);
    assert_eq!(outcome.result, TxnResult::SessionClosed);
    let events: Vec<_> = outcome
        .triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        [
            ("/e/one", EventType::NodeDeleted),
            ("/e", EventType::NodeChildrenChanged),
            ("/top0000000001", EventType::NodeDeleted),
            ("/", EventType::NodeChildrenChanged),
        ]
    );
    assert_eq!(d.stat("/e").pzxid, outcome.zxid);
    assert_eq!(d.stat("/").pzxid, outcome.zxid);
    assert!(d.tree.stat("/e/keep").is_some());
    assert_eq!(d.tree.ephemeral_count(), 0);
    assert_eq!(d.tree.sessions().count(), 0);
}

#[test]
fn create_session_records_the_timeout() {
    let mut d = Driver::new();
    d.apply_as(7, vec![], TxnOp::CreateSession { timeout_ms: 4000 });
    assert_eq!(d.tree.session_timeout_ms(7), Some(4000));
    assert_eq!(
        d.tree.sessions().collect::<Vec<_>>(),
        vec![(7, 4000), (SESSION, 30_000)]
    );
}
