//! What a member does when it leaves its quorum, against real `corral server` processes:
//! a leader stopped by its operator (SIGTERM) hands leadership over before it exits, and one
//! killed (SIGKILL) is replaced as soon as the others find its port closed, so neither makes
//! the others sit out an election timeout; and with `readonlymode.enabled`, a member cut
//! off from its quorum serves clients that allow it read-only (ZooKeeper's read-only mode:
//! reads answered, writes NotReadOnly, the session closed when the quorum is back).

mod support;

use std::time::{Duration, Instant};

use support::ensemble::Ensemble;
use support::raw::{self, op, Enc, RawSession};

const OK: i32 = 0;
const NOT_READ_ONLY: i32 = -119;

fn create(s: &mut RawSession, path: &str, data: &[u8]) -> i32 {
    s.create(
        op::CREATE,
        path,
        data,
        &[raw::Acl::new(31, "world", "anyone")],
        0,
        None,
    )
    .map(|r| r.err)
    .expect("create reply")
}

fn get_data(s: &mut RawSession, path: &str) -> (i32, Vec<u8>) {
    let mut body = Enc::new();
    body.str(path).bool(false);
    let reply = s.request(op::GET_DATA, &body.0).expect("getData reply");
    if reply.err != OK {
        return (reply.err, Vec::new());
    }
    let data = reply.dec().buf().ok().flatten().unwrap_or_default();
    (OK, data)
}

/// Opens a session on server `i`, retrying while it still refuses clients.
fn connect_retrying(e: &Ensemble, i: usize, secs: u64) -> RawSession {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match RawSession::connect(e.addr(i), 10_000) {
            Ok(s) => return s,
            Err(err) if Instant::now() >= deadline => {
                panic!(
                    "server {} serves no session: {err}\n{}",
                    i + 1,
                    e.log_tails(20)
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Pings until the server closes the session's connection; panics with `why` after `secs`.
fn wait_until_closed(e: &Ensemble, s: &mut RawSession, secs: u64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while s.ping().is_ok() {
        assert!(Instant::now() < deadline, "{why}\n{}", e.log_tails(20));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three servers at tickTime=3000, so that no election can start before two ticks (6 s): a
/// write through a survivor, then `take_away` the leader. Checks that another server leads
/// within 4 s, that the logs say `logged`, and that writes go on and see the earlier one.
/// Returns the ensemble, the old leader and the new one.
fn leader_replaced_quickly(
    take_away: fn(&mut Ensemble, usize),
    logged: &str,
) -> (Ensemble, usize, usize) {
    let mut e = Ensemble::participants(3, &["tickTime=3000"]);
    let old = e.start_all();
    let survivor = (old + 1) % 3;
    let mut s = connect_retrying(&e, survivor, 20);
    assert_eq!(create(&mut s, "/before", b"1"), OK);
    drop(s);

    let taken_at = Instant::now();
    take_away(&mut e, old);
    let new = e.wait_for_leader(Duration::from_secs(30));
    let took = taken_at.elapsed();
    assert_ne!(new, old);
    assert!(
        took < Duration::from_secs(4),
        "a new leader after {took:?}: as long as an election timeout\n{}",
        e.log_tails(20)
    );
    assert!(
        e.logs().contains(logged),
        "no server's log says {logged:?}\n{}",
        e.log_tails(20)
    );
    let mut s = connect_retrying(&e, survivor, 20);
    assert_eq!(create(&mut s, "/after", b"2"), OK);
    assert_eq!(get_data(&mut s, "/before"), (OK, b"1".to_vec()));
    (e, old, new)
}

#[test]
fn a_stopped_leader_hands_over_before_an_election_would_start() {
    leader_replaced_quickly(Ensemble::stop, "leadership handed over");
}

#[test]
fn a_killed_leader_is_replaced_before_an_election_would_start() {
    // A killed leader hands nothing over; the survivors find nothing listening at its port.
    let (mut e, old, new) =
        leader_replaced_quickly(Ensemble::kill, "nothing listens at its port: it is down");

    // The old leader comes back as a follower of the new one, with everything written.
    e.start(old);
    let mut back = connect_retrying(&e, old, 30);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_data(&mut back, "/after") != (OK, b"2".to_vec()) {
        assert!(
            Instant::now() < deadline,
            "the restarted leader never caught up\n{}",
            e.log_tails(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(e.leader(), Some(new));
}

#[test]
fn a_member_without_quorum_serves_read_only_clients() {
    let mut e = Ensemble::participants(
        3,
        &[
            "readonlymode.enabled=true",
            "admin.enableServer=true",
            "admin.serverPort=0",
        ],
    );
    let leader = e.start_all();
    let survivor = (leader + 1) % 3;
    // Written through the survivor: its reply comes once the survivor has applied it.
    let mut s = connect_retrying(&e, survivor, 20);
    assert_eq!(create(&mut s, "/kept", b"before the split"), OK);
    drop(s);
    for i in (0..3).filter(|i| *i != survivor) {
        e.kill(i);
    }

    // Once the survivor knows it has no quorum, it takes read-only clients.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ro = loop {
        if let Ok(s) = RawSession::connect_read_only(e.addr(survivor), 10_000) {
            if s.read_only {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no read-only session on the survivor\n{}",
            e.log_tails(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(ro.session_id, 0);
    assert_eq!(
        get_data(&mut ro, "/kept"),
        (OK, b"before the split".to_vec())
    );
    assert_eq!(ro.ping().expect("ping").err, OK);
    assert_eq!(create(&mut ro, "/refused", b"x"), NOT_READ_ONLY);
    let mut body = Enc::new();
    body.str("/kept");
    assert_eq!(
        ro.request(op::SYNC, &body.0).expect("sync").err,
        NOT_READ_ONLY
    );
    assert_eq!(
        get_data(&mut ro, "/refused").0,
        -101,
        "the refused create left nothing"
    );
    // A client that does not allow read-only is still refused.
    assert!(RawSession::connect(e.addr(survivor), 10_000).is_err());
    // `isro` and the admin server say so, as ZooKeeper's read-only server does.
    assert_eq!(e.nodes[survivor].four_letter("isro"), "ro");
    let admin = support::admin_addr_in_log(&e.log(survivor)).expect("admin address in the log");
    assert_eq!(support::admin_command(admin, "isro")["read_only"], true);

    // The quorum comes back: the read-only session ends, read-write sessions open.
    for i in (0..3).filter(|i| *i != survivor) {
        e.start(i);
    }
    wait_until_closed(
        &e,
        &mut ro,
        30,
        "the read-only connection outlived the quorum's return",
    );
    let mut rw = connect_retrying(&e, survivor, 30);
    assert!(!rw.read_only);
    assert_eq!(create(&mut rw, "/after", b"y"), OK);
    assert_eq!(e.nodes[survivor].four_letter("isro"), "rw");
    assert_eq!(support::admin_command(admin, "isro")["read_only"], false);
}

#[test]
fn a_leader_retries_a_stopped_follower_at_a_pace() {
    let mut e = Ensemble::participants(3, &[]);
    let leader = e.start_all();
    let down = (leader + 1) % 3;
    e.kill(down);
    let before = e.log(leader).matches("cannot connect to").count();
    std::thread::sleep(Duration::from_secs(3));
    let attempts = e.log(leader).matches("cannot connect to").count() - before;
    // Paced at up to 0.5 s per attempt per task (replication, heartbeat): a few dozen in 3 s.
    // Unpaced, a replication task retried tens of thousands of times a second.
    assert!(
        attempts < 300,
        "{attempts} failed connection attempts to a stopped follower in 3 s\n{}",
        e.log_tails(10)
    );
    let mut s = connect_retrying(&e, leader, 20);
    assert_eq!(create(&mut s, "/two-of-three", b"ok"), OK);
}

#[test]
fn a_member_that_loses_its_quorum_closes_its_clients_and_their_sessions_live_on() {
    let mut e = Ensemble::participants(3, &[]);
    let leader = e.start_all();
    let survivor = (leader + 1) % 3;
    let mut s = connect_retrying(&e, survivor, 20);
    assert_eq!(create(&mut s, "/before-the-split", b"x"), OK);
    for i in (0..3).filter(|i| *i != survivor) {
        e.kill(i);
    }
    // As ZooKeeper's peers do, the survivor shuts its clients out: a client of a cut-off
    // minority learns it is disconnected instead of carrying on as if nothing happened.
    wait_until_closed(
        &e,
        &mut s,
        20,
        "the client of a server without quorum kept its connection",
    );
    assert!(
        e.log(survivor)
            .contains("out of quorum: closing the client connections"),
        "the survivor's log does not say why it closed its clients\n{}",
        e.log(survivor)
    );
    // Once the quorum is back the session is still there to reattach to.
    for i in (0..3).filter(|i| *i != survivor) {
        e.start(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut back = loop {
        match RawSession::connect_as(e.addr(survivor), 10_000, s.session_id, &s.passwd, 0) {
            Ok(back) => break back,
            Err(err) => assert!(
                Instant::now() < deadline,
                "session not reattached: {err}\n{}",
                e.log_tails(20)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(back.session_id, s.session_id);
    assert_eq!(
        get_data(&mut back, "/before-the-split"),
        (OK, b"x".to_vec())
    );
}
