//! kazoo (the Python client) against Corral and Apache ZooKeeper: the same scenario
//! (`tests/compat/kazoo_scenario.py`) runs against both servers and every section of its
//! normalised trace must be equal. See that file for what each section does and how the
//! trace is normalised.
//!
//! Needs `python3` with kazoo (`pip install kazoo`) and Apache ZooKeeper; outside CI a
//! missing piece skips the tests with a notice. The scenario runs once per test binary (both
//! servers in parallel, ~30 s); each test compares one section.
//!
//! `CORRAL_COMPAT_KEEP=<dir>`: also write both raw traces there.

mod compat;
mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use compat::{assert_section, assert_sections_known, require, run_captured, Trace};
use support::{ApacheZk, CorralServer};

const SECTIONS: &[&str] = &[
    "crud",
    "seq_eph",
    "watches",
    "txn",
    "acl",
    "lock",
    "election",
    "barrier",
    "queue",
    "counter",
    "party",
    "cache",
    "reconnect",
    "expiry",
    "fourlw",
    "fourlw_details",
    "big",
    "auth_failure",
];

struct Runs {
    zk: Trace,
    corral: Trace,
}

fn kazoo_available() -> bool {
    require(
        "python3 with kazoo",
        compat::runs_ok("python3", &["-c", "import kazoo"]),
        "install it with `pip install kazoo` (see .ci/run)",
    )
}

fn run_scenario(addr: std::net::SocketAddr) -> compat::Output {
    let mut cmd = Command::new("python3");
    cmd.arg(compat::compat_dir().join("kazoo_scenario.py"))
        .arg(addr.to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_captured(cmd, None, Duration::from_secs(180))
}

fn runs() -> Option<&'static Runs> {
    static RUNS: OnceLock<Option<Runs>> = OnceLock::new();
    RUNS.get_or_init(|| {
        if !kazoo_available() {
            return None;
        }
        let zk = ApacheZk::start()?;
        let corral = CorralServer::start();
        let (zk_out, co_out) = std::thread::scope(|s| {
            let a = s.spawn(|| run_scenario(zk.addr()));
            let b = s.spawn(|| run_scenario(corral.addr()));
            (a.join().unwrap(), b.join().unwrap())
        });
        eprintln!(
            "kazoo scenario: {:.1}s against ZooKeeper, {:.1}s against Corral",
            zk_out.elapsed.as_secs_f64(),
            co_out.elapsed.as_secs_f64()
        );
        if let Ok(dir) = std::env::var("CORRAL_COMPAT_KEEP") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(format!("{dir}/kazoo-zookeeper.txt"), &zk_out.stdout);
            let _ = std::fs::write(format!("{dir}/kazoo-corral.txt"), &co_out.stdout);
            let _ = std::fs::write(format!("{dir}/kazoo-corral-server.log"), corral.log());
        }
        Some(Runs {
            zk: Trace::parse("zookeeper", &zk_out, zk.log()),
            corral: Trace::parse("corral", &co_out, corral.log()),
        })
    })
    .as_ref()
}

fn check(section: &str) {
    let Some(r) = runs() else { return };
    assert_section("kazoo", section, &r.zk, &r.corral);
}

#[test]
fn kazoo_scenario_sections_are_all_compared() {
    let Some(r) = runs() else { return };
    assert_sections_known("kazoo", &r.zk, SECTIONS);
}

/// create/get/set/delete, ensure_path, makepath, recursive delete, version checks,
/// include_data (create2), odd paths, system nodes, values around jute.maxbuffer.
#[test]
fn kazoo_crud() {
    check("crud");
}

/// Sequential suffixes (after deletes too), ephemerals, ephemeral+sequential, children of
/// ephemerals, ephemerals removed when the session closes.
#[test]
fn kazoo_sequential_and_ephemeral() {
    check("seq_eph");
}

/// DataWatch / ChildrenWatch callbacks, one-shot exists/get/get_children watches, no watch
/// left by reads of missing nodes, 50 watches fired by one multi, `wchp`.
#[test]
fn kazoo_watches() {
    check("watches");
}

/// Transactions: success results, failures (RolledBack / RuntimeInconsistency), atomicity.
#[test]
fn kazoo_transactions() {
    check("txn");
}

/// Digest ACLs and auth, `auth` scheme, invalid ACLs, ip ACLs, CREATE-only parents, super
/// user, multi with NoAuth, ACL-filtered watch delivery, bad auth.
#[test]
fn kazoo_acl_and_auth() {
    check("acl");
}

/// Lock with three contenders (each watches only its predecessor: no herd, checked with
/// `wchp`), lock handed over when the holder's session closes, ReadLock/WriteLock,
/// Semaphore.
#[test]
fn kazoo_lock() {
    check("lock");
}

/// Election: leader, contenders, fail-over when the leader's client stops, cancel.
#[test]
fn kazoo_election() {
    check("election");
}

/// Barrier and DoubleBarrier.
#[test]
fn kazoo_barrier() {
    check("barrier");
}

/// Queue (priorities) and LockingQueue (get/consume/release, blocking get).
#[test]
fn kazoo_queue() {
    check("queue");
}

/// Counter (int, float, Curator-compatible), 2 clients × 25 contended increments.
#[test]
fn kazoo_counter() {
    check("counter");
}

/// Party and ShallowParty membership, members leaving when their session closes.
#[test]
fn kazoo_party() {
    check("party");
}

/// TreeCache events for creates, updates, deep creates, recursive deletes.
#[test]
fn kazoo_tree_cache() {
    check("cache");
}

/// Connection cut (through a proxy) and reconnect to the same session: states, ephemerals
/// kept, DataWatch/ChildrenWatch catch up, a request queued while disconnected.
#[test]
fn kazoo_reconnect() {
    check("reconnect");
}

/// Session expiry by timeout (a partitioned client with a 4 s session): ephemerals removed,
/// watchers told, client sees SUSPENDED → LOST → CONNECTED with a new session; a session
/// closed by a second client attached to it; a reattach with a wrong password.
#[test]
fn kazoo_session_expiry() {
    check("expiry");
}

/// `server_version()`, `command()` with ruok/isro/mntr/srvr/stat/envi/conf/wchs/wchc/wchp/
/// cons/dirs and an unknown word, parsed the way monitoring tools parse them.
#[test]
fn kazoo_four_letter_words() {
    check("fourlw");
}

/// Corral differs (low impact, cosmetic) in four-letter-word details that monitoring tools
/// may parse:
/// - ZooKeeper counts the asking 4lw connection in `mntr` zk_num_alive_connections, `srvr`
///   Connections and `cons`; Corral does not;
/// - `envi` user.name is empty in Corral when $USER is unset (Java reads the OS account);
/// - `srvr`/`stat` average latency: ZooKeeper rounds to 4 decimals, Corral prints the full
///   f64 (`0.5555555555555556`);
/// - `crst` does not reset a connection's lop/lcxid/lzxid in Corral;
/// - `dump` has no expiry buckets ("N expire at <date>:") nor "Connections dump:" section,
///   and lists every session under "Sessions with Ephemerals", even those without any;
/// - `gtmk` answers 0 instead of ZooKeeper's default trace mask 306.
#[test]
fn kazoo_four_letter_word_details() {
    check("fourlw_details");
}

/// 3000 pipelined creates (replies in request order), a 3000-entry children list, multis of
/// 1000 operations (success and failure), 400 interleaved async writes and reads.
#[test]
fn kazoo_big_and_pipelined() {
    check("big");
}

/// Failed authentication: an unknown scheme (AuthFailed, the connection closed, kazoo LOST)
/// and a digest credential without a colon (accepted by ZooKeeper).
#[test]
fn kazoo_auth_failure() {
    check("auth_failure");
}
