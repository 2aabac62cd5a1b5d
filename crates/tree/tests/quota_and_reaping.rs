//! Quotas (ZOOKEEPER-BEHAVIOUR.md §12) and container/TTL reaping (§13).

mod common;

use common::*;
use corral_proto::{CreateMode, ErrorCode, EventType};
use corral_tree::{MultiOpResult, StatsTrack, TreeConfig, TxnOp, TxnResult};

fn data_of(d: &Driver, path: &str) -> String {
    let data = d
        .tree
        .get_data(path, &[])
        .unwrap()
        .0
        .expect("data, not null");
    String::from_utf8(data.to_vec()).unwrap()
}

/// `/a` holding `/a/x` (5 bytes), with a quota whose limits text is `limits`.
fn with_quota_on_a(config: TreeConfig, limits: &str) -> Driver {
    let mut d = Driver::with_config(config);
    d.mk("/a");
    d.apply(create("/a/x", b"12345", CreateMode::Persistent));
    d.mk("/zookeeper/quota/a");
    d.apply(create(
        "/zookeeper/quota/a/zookeeper_limits",
        limits.as_bytes(),
        CreateMode::Persistent,
    ));
    d.apply(create(
        "/zookeeper/quota/a/zookeeper_stats",
        b"count=0,bytes=0",
        CreateMode::Persistent,
    ));
    d
}

#[test]
fn creating_the_stats_node_overwrites_it_with_the_subtree_usage() {
    let d = with_quota_on_a(TreeConfig::default(), "count=10,bytes=-1");
    assert_eq!(d.tree.quota_roots().collect::<Vec<_>>(), ["/a"]);
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/zookeeper_stats"),
        "count=2,bytes=5"
    );
}

#[test]
fn quota_usage_follows_creates_deletes_and_set_data_without_touching_the_stats_nodes_version() {
    let mut d = with_quota_on_a(TreeConfig::default(), "count=10,bytes=-1");
    let stats_path = "/zookeeper/quota/a/zookeeper_stats";
    let before = d.stat(stats_path);
    d.apply(create("/a/y", b"abc", CreateMode::Persistent));
    assert_eq!(data_of(&d, stats_path), "count=3,bytes=8");
    d.apply(set_data("/a/y", b"abcdef", -1));
    assert_eq!(data_of(&d, stats_path), "count=3,bytes=11");
    d.apply(set_data_null("/a/y", -1));
    assert_eq!(
        data_of(&d, stats_path),
        "count=3,bytes=5",
        "null counts as 0 bytes"
    );
    d.apply(delete("/a/y", -1));
    assert_eq!(data_of(&d, stats_path), "count=2,bytes=5");
    d.apply(create_null("/a/z"));
    assert_eq!(data_of(&d, stats_path), "count=3,bytes=5");
    d.apply(delete("/a/z", -1));
    let after = d.stat(stats_path);
    assert_eq!(
        (after.version, after.mzxid, after.mtime),
        (before.version, before.mzxid, before.mtime)
    );
    d.mk("/ab");
    assert_eq!(
        data_of(&d, stats_path),
        "count=2,bytes=5",
        "quota roots match whole components"
    );
}

#[test]
fn usage_goes_to_the_longest_matching_quota_root() {
    let mut d = with_quota_on_a(TreeConfig::default(), "count=10,bytes=-1");
    d.mk("/zookeeper/quota/a/x");
    d.apply(create(
        "/zookeeper/quota/a/x/zookeeper_limits",
        b"count=5,bytes=-1",
        CreateMode::Persistent,
    ));
    d.apply(create(
        "/zookeeper/quota/a/x/zookeeper_stats",
        b"",
        CreateMode::Persistent,
    ));
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/x/zookeeper_stats"),
        "count=1,bytes=5"
    );
    d.apply(create("/a/x/deep", b"zz", CreateMode::Persistent));
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/x/zookeeper_stats"),
        "count=2,bytes=7"
    );
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/zookeeper_stats"),
        "count=2,bytes=5"
    );
}

#[test]
fn deleting_the_limits_node_removes_the_quota() {
    let mut d = with_quota_on_a(TreeConfig::default(), "count=10,bytes=-1");
    d.apply(delete("/zookeeper/quota/a/zookeeper_limits", -1));
    assert_eq!(d.tree.quota_roots().count(), 0);
    d.apply(create("/a/y", b"abc", CreateMode::Persistent));
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/zookeeper_stats"),
        "count=2,bytes=5"
    );
}

#[test]
fn no_quota_can_sit_on_the_root() {
    let mut d = Driver::new();
    d.apply(create(
        "/zookeeper/quota/zookeeper_limits",
        b"count=1,bytes=-1",
        CreateMode::Persistent,
    ));
    assert_eq!(d.tree.quota_roots().count(), 0);
}

#[test]
fn hard_count_limit_refuses_creates_only_when_enforced() {
    let limits = "count=-1,bytes=-1=;countHardLimit=3";
    let mut d = with_quota_on_a(TreeConfig::default(), limits);
    d.mk("/a/y");
    assert!(matches!(
        d.result(create("/a/z", b"", CreateMode::Persistent)),
        TxnResult::Created { .. }
    ));

    let mut d = with_quota_on_a(
        TreeConfig {
            extended_types_enabled: false,
            enforce_quota: true,
            sasl_acls: false,
            x509_acls: false,
            skip_acl: false,
        },
        limits,
    );
    d.mk("/a/y");
    assert_eq!(
        d.result(create("/a/z", b"", CreateMode::Persistent)),
        err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(
        d.result(create("/a", b"", CreateMode::Persistent)),
        err(ErrorCode::NodeExists),
        "NodeExists first"
    );
    assert!(d.tree.stat("/a/z").is_none());
    assert!(
        matches!(
            d.result(set_data("/a/y", b"more", -1)),
            TxnResult::DataSet { .. }
        ),
        "setData adds no count"
    );
}

#[test]
fn soft_limits_never_refuse() {
    let mut d = with_quota_on_a(
        TreeConfig {
            extended_types_enabled: false,
            enforce_quota: true,
            sasl_acls: false,
            x509_acls: false,
            skip_acl: false,
        },
        "count=1,bytes=1",
    );
    assert!(matches!(
        d.result(create("/a/y", b"abc", CreateMode::Persistent)),
        TxnResult::Created { .. }
    ));
}

#[test]
fn hard_byte_limit_refuses_growth_before_the_version_check() {
    let limits = "count=-1,bytes=-1=;byteHardLimit=8";
    let mut d = with_quota_on_a(
        TreeConfig {
            extended_types_enabled: false,
            enforce_quota: true,
            sasl_acls: false,
            x509_acls: false,
            skip_acl: false,
        },
        limits,
    );
    assert_eq!(
        d.result(set_data("/a/x", b"123456789", 99)),
        err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(
        d.result(set_data("/a/x", b"12345678", 99)),
        err(ErrorCode::BadVersion)
    );
    assert!(matches!(
        d.result(set_data("/a/x", b"12345678", -1)),
        TxnResult::DataSet { .. }
    ));
    assert_eq!(
        d.result(create("/a/y", b"1", CreateMode::Persistent)),
        err(ErrorCode::QuotaExceeded)
    );
    assert!(matches!(
        d.result(create("/a/y", b"", CreateMode::Persistent)),
        TxnResult::Created { .. }
    ));
}

#[test]
fn quota_checks_in_a_multi_read_the_applied_tree_as_zookeeper_does() {
    let limits = "count=-1,bytes=-1=;countHardLimit=3";
    let mut d = with_quota_on_a(
        TreeConfig {
            extended_types_enabled: false,
            enforce_quota: true,
            sasl_acls: false,
            x509_acls: false,
            skip_acl: false,
        },
        limits,
    );
    let result = d.result(TxnOp::Multi(vec![
        create("/a/y", b"", CreateMode::Persistent),
        create("/a/z", b"", CreateMode::Persistent),
    ]));
    let TxnResult::Multi(results) = result else {
        panic!()
    };
    assert!(results
        .iter()
        .all(|r| matches!(r, MultiOpResult::Created { .. })));
    assert_eq!(
        data_of(&d, "/zookeeper/quota/a/zookeeper_stats"),
        "count=4,bytes=5"
    );
}

#[test]
fn stats_track_round_trips_zookeepers_text() {
    let text = "count=4,bytes=9=;byteHardLimit=15;countHardLimit=4";
    assert_eq!(StatsTrack::parse(text.as_bytes()).to_string(), text);
}

// ---- reaping ---------------------------------------------------------------

#[test]
fn a_container_is_reapable_once_it_had_a_child_and_is_empty_again() {
    let mut d = Driver::new();
    d.apply(create("/c", b"", CreateMode::Container));
    assert!(
        d.tree.reapable_nodes(i64::MAX, 0).is_empty(),
        "never used, no max interval"
    );
    d.mk("/c/k");
    assert!(d.tree.reapable_nodes(i64::MAX, 0).is_empty(), "not empty");
    d.apply(delete("/c/k", -1));
    assert_eq!(d.tree.reapable_nodes(0, 0), ["/c"]);
    let outcome = d.apply_as(0, vec![], TxnOp::DeleteContainer { path: "/c".into() });
    assert_eq!(outcome.result, TxnResult::Deleted);
    let events: Vec<_> = outcome
        .triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        [
            ("/c", EventType::NodeDeleted),
            ("/", EventType::NodeChildrenChanged)
        ]
    );
}

#[test]
fn a_never_used_container_is_reapable_after_the_max_never_used_interval() {
    let mut d = Driver::new();
    let outcome = d.apply(create("/c", b"", CreateMode::Container));
    let mtime = outcome.zxid * 1000;
    assert!(
        d.tree.reapable_nodes(mtime + 500, 500).is_empty(),
        "strictly greater"
    );
    assert_eq!(d.tree.reapable_nodes(mtime + 501, 500), ["/c"]);
}

#[test]
fn delete_container_refuses_non_empty_nodes_and_normal_ephemerals() {
    let mut d = Driver::new();
    d.apply(create("/c", b"", CreateMode::Container));
    d.mk("/c/k");
    d.apply(create("/e", b"", CreateMode::Ephemeral));
    d.mk("/plain");
    let mut reap = |path: &str| {
        d.apply_as(0, vec![], TxnOp::DeleteContainer { path: path.into() })
            .result
    };
    assert_eq!(reap("/c"), err(ErrorCode::NotEmpty));
    assert_eq!(reap("/e"), err(ErrorCode::BadVersion));
    assert_eq!(reap("/missing"), err(ErrorCode::NoNode));
    assert_eq!(reap("/zookeeper"), err(ErrorCode::BadArguments));
    assert_eq!(
        reap("/plain"),
        TxnResult::Deleted,
        "anything else is a normal delete"
    );
}

#[test]
fn a_ttl_node_is_reapable_when_empty_and_older_than_its_ttl_since_the_last_set_data() {
    let mut d = Driver::with_config(TreeConfig {
        extended_types_enabled: true,
        enforce_quota: false,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    });
    let outcome = d.apply(create_ttl("/t", CreateMode::PersistentWithTtl, 2000));
    let created = outcome.zxid * 1000;
    assert!(
        d.tree.reapable_nodes(created + 2000, 0).is_empty(),
        "strictly greater"
    );
    assert_eq!(d.tree.reapable_nodes(created + 2001, 0), ["/t"]);
    let outcome = d.apply(set_data("/t", b"renew", -1));
    let renewed = outcome.zxid * 1000;
    assert!(d.tree.reapable_nodes(renewed + 2000, 0).is_empty());
    d.mk("/t/child");
    assert!(d.tree.reapable_nodes(i64::MAX, 0).is_empty());
}
