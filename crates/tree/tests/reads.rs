//! The read path and ACL checks on reads (ZOOKEEPER-BEHAVIOUR.md §7, §11).

mod common;

use common::*;
use corral_proto::{perms, CreateMode, ErrorCode, Id};
use corral_tree::{check_acl, digest_id, TreeConfig, TxnOp};

#[test]
fn reads_report_no_node_before_no_auth() {
    let mut d = Driver::new();
    d.apply(create_acl(
        "/secret",
        vec![acl(perms::ADMIN, "digest", "bob:h")],
    ));
    let anon: &[Id] = &[Id::new("ip", "1.2.3.4")];
    assert_eq!(d.tree.get_data("/missing", anon), Err(ErrorCode::NoNode));
    assert_eq!(d.tree.get_data("/secret", anon), Err(ErrorCode::NoAuth));
    assert_eq!(d.tree.get_children("/secret", anon), Err(ErrorCode::NoAuth));
    assert_eq!(
        d.tree.get_all_children_number("/secret", anon),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(d.tree.get_acl("/secret", anon), Err(ErrorCode::NoAuth));
    assert!(
        d.tree.stat("/secret").is_some(),
        "exists checks no ACL on 3.8.0"
    );
    let bob: &[Id] = &[Id::new("digest", "bob:h")];
    assert_eq!(
        d.tree.get_data("/secret", bob),
        Err(ErrorCode::NoAuth),
        "ADMIN is not READ"
    );
    assert!(
        d.tree.get_acl("/secret", bob).is_ok(),
        "getACL takes READ or ADMIN"
    );
    assert!(d.tree.get_data("/secret", &[Id::new("super", "")]).is_ok());
}

#[test]
fn reads_do_not_validate_paths_so_malformed_paths_are_no_node() {
    let mut d = Driver::new();
    d.mk("/p");
    assert_eq!(d.tree.get_data("/p/", &[]), Err(ErrorCode::NoNode));
    assert_eq!(d.tree.get_children("p", &[]), Err(ErrorCode::NoNode));
    assert!(d.tree.stat("/p/").is_none());
}

#[test]
fn get_children_lists_names_and_the_stat() {
    let mut d = Driver::new();
    d.mk("/p");
    d.mk("/p/b");
    d.mk("/p/a");
    let (children, stat) = d.tree.get_children("/p", &[]).unwrap();
    assert_eq!(children, ["a", "b"]);
    assert_eq!(stat.num_children, 2);
    let (root_children, _) = d.tree.get_children("/", &[]).unwrap();
    assert_eq!(root_children, ["p", "zookeeper"]);
}

#[test]
fn get_acl_masks_digest_ids_for_callers_without_admin() {
    let mut d = Driver::new();
    let bob = digest_id("bob:secret");
    let node_acl = vec![
        acl(perms::READ, "world", "anyone"),
        acl(perms::ALL, "digest", &bob),
    ];
    d.apply(create_acl("/n", node_acl.clone()));
    let (shown, _) = d.tree.get_acl("/n", &[]).unwrap();
    assert_eq!(
        shown,
        vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", "bob:x")
        ]
    );
    let (shown, _) = d
        .tree
        .get_acl("/n", &[Id::new("digest", bob.as_str())])
        .unwrap();
    assert_eq!(shown, node_acl);
}

#[test]
fn get_all_children_number_counts_every_descendant() {
    let mut d = Driver::new();
    for path in ["/a", "/a/b", "/a/b/c", "/a/d"] {
        d.mk(path);
    }
    assert_eq!(d.tree.get_all_children_number("/a", &[]), Ok(3));
    assert_eq!(d.tree.get_all_children_number("/a/d", &[]), Ok(0));
    assert_eq!(
        d.tree.get_all_children_number("/", &[]),
        Ok(7),
        "4 user nodes + 3 system nodes"
    );
    assert_eq!(
        d.tree.get_all_children_number("/missing", &[]),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn get_ephemerals_filters_by_string_prefix_and_skips_containers_and_ttl_nodes() {
    let mut d = Driver::with_config(TreeConfig {
        extended_types_enabled: true,
        enforce_quota: false,
        sasl_acls: false,
        x509_acls: false,
        skip_acl: false,
    });
    d.apply(create("/e", b"", CreateMode::Ephemeral));
    d.apply(create("/es-", b"", CreateMode::EphemeralSequential));
    d.apply(create("/other", b"", CreateMode::Ephemeral));
    d.apply(create("/c", b"", CreateMode::Container));
    d.apply(create_ttl("/t", CreateMode::PersistentWithTtl, 100));
    assert_eq!(
        d.tree.get_ephemerals(SESSION, "/e"),
        ["/e", "/es-0000000001"]
    );
    for everything in ["", "  ", "/", " / "] {
        assert_eq!(
            d.tree.get_ephemerals(SESSION, everything),
            ["/e", "/es-0000000001", "/other"],
            "{everything:?}"
        );
    }
    assert!(d.tree.get_ephemerals(0x5, "/").is_empty());
    assert_eq!(d.tree.session_ephemerals(SESSION).count(), 3);
}

#[test]
fn node_count_and_data_size_follow_writes() {
    let mut d = Driver::new();
    let (count, size) = (d.tree.node_count(), d.tree.approximate_data_size());
    d.apply(create("/abc", b"12345", CreateMode::Persistent));
    assert_eq!(d.tree.node_count(), count + 1);
    assert_eq!(d.tree.approximate_data_size(), size + 4 + 5);
    d.apply(set_data("/abc", b"1", -1));
    assert_eq!(d.tree.approximate_data_size(), size + 4 + 1);
    d.apply(delete("/abc", -1));
    assert_eq!(
        (d.tree.node_count(), d.tree.approximate_data_size()),
        (count, size)
    );
}

#[test]
fn null_data_counts_as_zero_bytes_in_the_data_size() {
    let mut d = Driver::new();
    let size = d.tree.approximate_data_size();
    d.apply(create_null("/abc"));
    assert_eq!(d.tree.approximate_data_size(), size + 4);
    d.apply(set_data("/abc", b"12", -1));
    d.apply(set_data_null("/abc", -1));
    assert_eq!(d.tree.approximate_data_size(), size + 4);
    d.apply(delete("/abc", -1));
    assert_eq!(d.tree.approximate_data_size(), size);
}

#[test]
fn check_acl_is_usable_for_watch_filtering() {
    let open = vec![acl(perms::ALL, "world", "anyone")];
    assert!(check_acl(&open, &[], perms::READ));
    let only_bob = vec![acl(perms::READ, "digest", "bob:h")];
    assert!(!check_acl(
        &only_bob,
        &[Id::new("ip", "127.0.0.1")],
        perms::READ
    ));
    assert!(check_acl(
        &only_bob,
        &[Id::new("digest", "bob:h")],
        perms::READ
    ));
}

#[test]
fn set_acl_to_an_ip_range_admits_only_that_range() {
    let mut d = Driver::new();
    d.mk("/n");
    let result = d.result(TxnOp::SetAcl {
        path: "/n".into(),
        acl: vec![acl(perms::ALL, "ip", "10.0.0.0/8")],
        version: -1,
    });
    assert!(
        matches!(result, corral_tree::TxnResult::AclSet { .. }),
        "{result:?}"
    );
    assert!(d
        .tree
        .get_data("/n", &[Id::new("ip", "10.20.30.40")])
        .is_ok());
    assert_eq!(
        d.tree.get_data("/n", &[Id::new("ip", "11.0.0.1")]),
        Err(ErrorCode::NoAuth)
    );
    let result = d.result(TxnOp::SetAcl {
        path: "/n".into(),
        acl: vec![acl(perms::ALL, "ip", "::1")],
        version: -1,
    });
    assert_eq!(result, err(ErrorCode::InvalidAcl));
}
