//! `skipACL=yes`, ZooKeeper's recovery switch: no permission is checked (reads, writes,
//! ACL changes, getACL's masking), while ACLs are still validated and stored. The same
//! requests against Apache ZooKeeper and Corral must get the same answers.

mod support;

use support::raw::{op, Acl, RawSession};
use support::Server;

/// What an anonymous session gets on a node only `bob` may touch: (request, error code,
/// what came back).
fn anonymous_on_bobs_node(server: &Server) -> Vec<(&'static str, i32, String)> {
    let mut bob = RawSession::connect(server.addr(), 10_000).expect("bob's session");
    assert_eq!(bob.auth("digest", b"bob:secret").expect("auth").err, 0);
    let bobs = [Acl::new(31, "digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")];
    let made = bob
        .create(op::CREATE, "/locked", b"bob's", &bobs, 0, None)
        .expect("create");
    assert_eq!(made.err, 0, "bob creates /locked");

    let mut anyone = RawSession::connect(server.addr(), 10_000).expect("anonymous session");
    let mut out = Vec::new();
    let reply = anyone.get_data("/locked", false).expect("getData");
    let data = reply.dec().buf().ok().flatten().unwrap_or_default();
    out.push((
        "getData",
        reply.err,
        String::from_utf8_lossy(&data).to_string(),
    ));
    let reply = anyone.get_acl("/locked").expect("getACL");
    let acl = reply.dec().acl().unwrap_or_default();
    out.push(("getACL", reply.err, format!("{acl:?}")));
    let reply = anyone.set_data("/locked", b"changed", -1).expect("setData");
    out.push(("setData", reply.err, String::new()));
    let world = [Acl::new(31, "world", "anyone")];
    let reply = anyone
        .create(op::CREATE, "/locked/kid", b"", &world, 0, None)
        .expect("create child");
    out.push(("create child", reply.err, String::new()));
    let reply = anyone.delete("/locked/kid", -1).expect("delete child");
    out.push(("delete child", reply.err, String::new()));
    let bad = [Acl::new(31, "digest", "no-colon")];
    let reply = anyone.set_acl("/locked", &bad, -1).expect("setACL invalid");
    out.push(("setACL with an invalid id", reply.err, String::new()));
    let reply = anyone.set_acl("/locked", &world, -1).expect("setACL");
    out.push(("setACL", reply.err, String::new()));
    out
}

#[test]
fn skip_acl_lets_every_request_by_as_zookeepers_does() {
    let Some(zk) = Server::start_named("zookeeper", &["skipACL=yes"]) else {
        return;
    };
    let corral = Server::start_named("corral", &["skipACL=yes"]).expect("corral");
    let want = anonymous_on_bobs_node(&zk);
    let got = anonymous_on_bobs_node(&corral);
    assert_eq!(
        got, want,
        "Corral's answers (left) against ZooKeeper's (right)"
    );
    let codes: Vec<i32> = want.iter().map(|(_, code, _)| *code).collect();
    assert_eq!(
        codes,
        [0, 0, 0, 0, 0, -114, 0],
        "with skipACL only the invalid ACL is refused: {want:?}"
    );
    assert!(
        want[1].2.contains("bob:fyVmFCwVbTJYrznoSu1koqYEYF0"),
        "getACL unmasked: {want:?}"
    );
}

#[test]
fn without_skip_acl_the_same_requests_are_refused_as_by_zookeeper() {
    let Some(zk) = Server::start_named("zookeeper", &[]) else {
        return;
    };
    let corral = Server::start_named("corral", &[]).expect("corral");
    let want = anonymous_on_bobs_node(&zk);
    assert_eq!(want[0].1, -102, "NoAuth for getData: {want:?}");
    assert_eq!(anonymous_on_bobs_node(&corral), want);
}
