//! Dynamic reconfiguration (`reconfig`, opcode 16) against real `corral server`
//! processes: the refusals ZooKeeper gives (disabled, standalone, no auth, bad
//! version, too few voters, no synced quorum), removing and re-adding a
//! participant, and a brand-new server joining through `reconfig -add` — with
//! `/zookeeper/config` in ZooKeeper's format on every server, before and after
//! a restart.

mod support;

use std::time::{Duration, Instant};

use support::ensemble::{Ensemble, Role};
use support::raw::{self as raw, op, Dec, Enc, RawSession};

const RECONFIG: i32 = 16;
const OK: i32 = 0;
const UNIMPLEMENTED: i32 = -6;
const BAD_ARGUMENTS: i32 = -8;
const NEW_CONFIG_NO_QUORUM: i32 = -13;
const NO_AUTH: i32 = -102;
const BAD_VERSION: i32 = -103;
const RECONFIG_DISABLED: i32 = -123;

/// A reconfig request body: null strings for the parts not given.
fn reconfig_body(
    joining: Option<&str>,
    leaving: Option<&str>,
    members: Option<&str>,
    from: i64,
) -> Vec<u8> {
    let mut e = Enc::new();
    e.opt_buf(joining.map(str::as_bytes))
        .opt_buf(leaving.map(str::as_bytes))
        .opt_buf(members.map(str::as_bytes))
        .i64(from);
    e.0
}

/// Opens a session, retrying for up to 10 s: a server that has just been elected, or has
/// just joined, may still refuse clients for a moment (it closes the connection unanswered).
fn connect_retrying(addr: std::net::SocketAddr, what: &str) -> RawSession {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RawSession::connect(addr, 10_000) {
            Ok(s) => return s,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sends a reconfig; the error code and, on success, the new config text.
fn reconfig(
    s: &mut RawSession,
    joining: Option<&str>,
    leaving: Option<&str>,
    members: Option<&str>,
    from: i64,
) -> (i32, String) {
    let reply = s
        .request(RECONFIG, &reconfig_body(joining, leaving, members, from))
        .expect("reconfig reply");
    if reply.err != OK {
        return (reply.err, String::new());
    }
    let mut d = Dec::new(&reply.body);
    let data = d.buf().ok().flatten().unwrap_or_default();
    (OK, String::from_utf8_lossy(&data).into_owned())
}

/// `/zookeeper/config` as one server holds it (after a sync, so that it has
/// applied everything committed before).
fn config_on(e: &Ensemble, i: usize) -> String {
    let mut s = connect_retrying(e.addr(i), "connect");
    let mut body = Enc::new();
    body.str("/zookeeper/config");
    s.request(op::SYNC, &body.0).expect("sync");
    let mut body = Enc::new();
    body.str("/zookeeper/config").bool(false);
    let reply = s.request(op::GET_DATA, &body.0).expect("getData");
    assert_eq!(reply.err, OK, "getData /zookeeper/config on server {i}");
    let mut d = Dec::new(&reply.body);
    String::from_utf8_lossy(&d.buf().ok().flatten().unwrap_or_default()).into_owned()
}

fn server_ids(config: &str) -> Vec<u64> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix("server."))
        .filter_map(|l| l.split('=').next())
        .filter_map(|id| id.parse().ok())
        .collect()
}

fn version_of(config: &str) -> i64 {
    config
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .and_then(|v| i64::from_str_radix(v, 16).ok())
        .expect("a version= line")
}

/// The `server.N=…` line of node `i` as a reconfig joiner, with its client port.
fn joiner_line(e: &Ensemble, i: usize, role: &str) -> String {
    let cfg = std::fs::read_to_string(&e.nodes[i].cfg).expect("read zoo.cfg");
    let id = e.nodes[i].id;
    let line = cfg
        .lines()
        .find(|l| l.starts_with(&format!("server.{id}=")))
        .expect("the server's own line");
    let spec = line.split_once('=').map(|(_, v)| v).unwrap_or_default();
    let mut parts: Vec<&str> = spec.split(':').take(3).collect();
    parts.push(role);
    format!(
        "server.{id}={};127.0.0.1:{}",
        parts.join(":"),
        e.addr(i).port()
    )
}

/// Waits until `f` holds, for up to `secs` seconds.
fn eventually(secs: u64, what: &str, e: &Ensemble, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} within {secs} s\n{}",
            e.log_tails(15)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (10 s at most) until `leader`'s `mntr` counts `n` synced followers.
fn wait_for_synced_followers(e: &Ensemble, leader: usize, n: usize) {
    let want = n.to_string();
    eventually(
        10,
        &format!("the leader counts {n} synced follower(s)"),
        e,
        || e.nodes[leader].mntr().get("zk_synced_followers") == Some(&want),
    );
}

fn create(s: &mut RawSession, path: &str) -> i32 {
    s.create(
        op::CREATE,
        path,
        b"x",
        &[raw::Acl::new(31, "world", "anyone")],
        0,
        None,
    )
    .map(|r| r.err)
    .expect("create reply")
}

#[test]
fn reconfig_is_refused_when_disabled_and_in_standalone_mode() {
    let mut e = Ensemble::participants(3, &[]);
    e.start_all();
    let mut s = connect_retrying(e.addr(0), "connect");
    let (err, _) = reconfig(&mut s, None, Some("3"), None, -1);
    assert_eq!(err, RECONFIG_DISABLED);
    // The refusal keeps the session usable.
    assert_eq!(create(&mut s, "/after-refusal"), OK);

    let server = support::CorralServer::start_with(&["reconfigEnabled=true"]);
    let mut s = connect_retrying(server.addr(), "connect standalone");
    let (err, _) = reconfig(&mut s, None, Some("1"), None, -1);
    assert_eq!(
        err, UNIMPLEMENTED,
        "standalone ZooKeeper answers Unimplemented"
    );
    drop(server);
}

#[test]
fn a_participant_is_removed_and_added_back() {
    let mut e = Ensemble::participants(3, &["reconfigEnabled=true", "skipACL=yes"]);
    let leader = e.start_all();
    let before = config_on(&e, 0);
    assert_eq!(server_ids(&before), vec![1, 2, 3]);
    let leaving = (leader + 1) % 3;
    let leaving_id = e.nodes[leaving].id;
    let via = (leader + 2) % 3;
    let mut s = connect_retrying(e.addr(via), "connect");

    // A stale version is refused; so is a config with one voter left.
    let (err, _) = reconfig(&mut s, None, Some(&leaving_id.to_string()), None, 12345);
    assert_eq!(err, BAD_VERSION);
    let all_but_one: Vec<String> = e
        .nodes
        .iter()
        .map(|n| n.id.to_string())
        .filter(|id| *id != e.nodes[via].id.to_string())
        .collect();
    let (err, _) = reconfig(&mut s, None, Some(&all_but_one.join(",")), None, -1);
    assert_eq!(err, BAD_ARGUMENTS, "a configuration needs two voters");

    let (err, after) = reconfig(
        &mut s,
        None,
        Some(&leaving_id.to_string()),
        None,
        version_of(&before),
    );
    assert_eq!(err, OK, "{}", e.log_tails(15));
    let mut expected: Vec<u64> = vec![1, 2, 3];
    expected.retain(|id| *id != leaving_id);
    assert_eq!(server_ids(&after), expected);
    assert!(version_of(&after) > version_of(&before));
    for i in 0..3 {
        if i != leaving {
            assert_eq!(config_on(&e, i), after, "server {i} holds the new config");
        }
    }
    // The two left keep serving writes.
    assert_eq!(create(&mut s, "/two-left"), OK);
    eventually(10, "the leader counts one follower", &e, || {
        let l = e.leader().unwrap_or(leader);
        e.nodes[l].mntr().get("zk_followers").map(String::as_str) == Some("1")
    });

    // Back again, through the incremental form.
    let joiner = joiner_line(&e, leaving, "participant");
    let (err, back) = reconfig(&mut s, Some(&joiner), None, None, -1);
    assert_eq!(err, OK, "{}", e.log_tails(15));
    assert_eq!(server_ids(&back), vec![1, 2, 3]);
    assert!(back.contains(&joiner), "{back}");
    eventually(20, "the returning server serves the new config", &e, || {
        RawSession::connect(e.addr(leaving), 5_000).is_ok() && config_on(&e, leaving) == back
    });
    let mut r = connect_retrying(e.addr(leaving), "connect returned");
    assert_eq!(create(&mut r, "/through-the-returned"), OK);
}

/// A reconfig sent the moment a new leader serves clients: ZooKeeper's new leader takes it
/// at once, so the client must not get ReconfigInProgress while the leader's first entry of
/// its term is still being committed.
#[test]
fn a_reconfig_right_after_an_election_is_carried_out() {
    let mut e = Ensemble::participants(3, &["reconfigEnabled=true", "skipACL=yes"]);
    let old_leader = e.start_all();
    let dead_id = e.nodes[old_leader].id;
    let before = config_on(&e, (old_leader + 1) % 3);
    e.kill(old_leader);
    // Ask the first survivor that opens a session, as soon as one does.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = 'found: loop {
        for i in (0..3).filter(|i| *i != old_leader) {
            if let Ok(s) = RawSession::connect(e.addr(i), 10_000) {
                break 'found s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no survivor served a session\n{}",
            e.log_tails(15)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let (err, after) = reconfig(&mut s, None, Some(&dead_id.to_string()), None, -1);
    assert_eq!(err, OK, "{}", e.log_tails(15));
    let mut expected: Vec<u64> = vec![1, 2, 3];
    expected.retain(|id| *id != dead_id);
    assert_eq!(server_ids(&after), expected);
    assert!(version_of(&after) > version_of(&before));
    assert_eq!(create(&mut s, "/after-the-election"), OK);
}

#[test]
fn a_reconfig_needs_write_permission_on_the_config_node_and_a_synced_quorum() {
    let digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="; // super:test
    let mut e = Ensemble::participants(
        3,
        &[
            "reconfigEnabled=true",
            &format!("DigestAuthenticationProvider.superDigest={digest}"),
        ],
    );
    let leader = e.start_all();
    // ZooKeeper checks the synced quorum before the ACL (NewConfigNoQuorum
    // wins over NoAuth), so the ACL check is only seen once both followers
    // count as synced, which a loaded machine can delay past the start.
    wait_for_synced_followers(&e, leader, 2);
    let mut s = connect_retrying(e.addr(leader), "connect");
    let (err, _) = reconfig(&mut s, None, Some("3"), None, -1);
    assert_eq!(err, NO_AUTH, "world:anyone may only read /zookeeper/config");

    let mut auth = Enc::new();
    auth.i32(0).str("digest").buf(b"super:test");
    let reply = s.request_with_xid(-4, op::AUTH, &auth.0).expect("auth");
    assert_eq!(reply.err, OK);

    // With a server down, a fourth voter that is not running would leave
    // the new configuration without a synced quorum.
    let down = (leader + 1) % 3;
    e.kill(down);
    // The leader notices a dead follower when its heartbeats go unanswered.
    wait_for_synced_followers(&e, leader, 1);
    let joiner = "server.9=127.0.0.1:1:2:participant;127.0.0.1:3";
    let (err, _) = reconfig(&mut s, Some(joiner), None, None, -1);
    assert_eq!(err, NEW_CONFIG_NO_QUORUM);
    assert_eq!(server_ids(&config_on(&e, leader)), vec![1, 2, 3]);
}

#[test]
fn a_new_server_joins_through_reconfig_and_the_config_survives_restarts() {
    let mut e = Ensemble::new(
        &[Role::Participant; 4],
        &["reconfigEnabled=true", "skipACL=yes"],
    );
    // Servers 1-3 do not know server 4; server 4's zoo.cfg names all four,
    // as ZooKeeper's documentation has a joining server's.
    for i in 0..3 {
        let cfg = std::fs::read_to_string(&e.nodes[i].cfg).expect("read zoo.cfg");
        let kept: Vec<&str> = cfg
            .lines()
            .filter(|l| !l.starts_with("server.4="))
            .collect();
        std::fs::write(&e.nodes[i].cfg, kept.join("\n") + "\n").expect("write zoo.cfg");
    }
    for i in 0..3 {
        e.start(i);
    }
    let leader = e.wait_for_leader(Duration::from_secs(30));
    e.start(3);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        RawSession::connect(e.addr(3), 2_000).is_err(),
        "a server outside the membership must not serve clients"
    );

    let mut s = connect_retrying(e.addr(leader), "connect");
    assert_eq!(create(&mut s, "/before-4"), OK);
    let joiner = joiner_line(&e, 3, "observer");
    let (err, config) = reconfig(&mut s, Some(&joiner), None, None, -1);
    assert_eq!(err, OK, "{}", e.log_tails(20));
    assert_eq!(server_ids(&config), vec![1, 2, 3, 4]);
    assert!(config.contains(":observer;"), "{config}");
    eventually(20, "the new observer serves clients", &e, || {
        RawSession::connect(e.addr(3), 5_000).is_ok()
    });
    eventually(10, "the new server says Mode: observer", &e, || {
        e.nodes[3].mode().as_deref() == Some("observer")
    });

    // Observer to participant, non-incrementally.
    let mut members: Vec<String> = config
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(str::to_owned)
        .collect();
    let last = members.len() - 1;
    members[last] = joiner_line(&e, 3, "participant");
    let (err, config) = reconfig(&mut s, None, None, Some(&members.join(",")), -1);
    assert_eq!(err, OK, "{}", e.log_tails(20));
    assert!(!config.contains(":observer;"), "{config}");
    eventually(10, "server 4 becomes a voter", &e, || {
        matches!(
            e.nodes[3].mode().as_deref(),
            Some("follower") | Some("leader")
        )
    });
    let mut four = connect_retrying(e.addr(3), "connect 4");
    assert_eq!(create(&mut four, "/through-4"), OK);

    // A restarted server keeps the reconfigured membership and config,
    // though its zoo.cfg still names three servers.
    let restarted = (leader + 1) % 3;
    e.kill(restarted);
    e.start(restarted);
    eventually(20, "the restarted server serves again", &e, || {
        RawSession::connect(e.addr(restarted), 5_000).is_ok()
    });
    eventually(10, "the restarted server holds the new config", &e, || {
        config_on(&e, restarted) == config
    });
}
