//! Apache Curator 5 and the ZooKeeper 3.8 Java client against Corral and Apache ZooKeeper:
//! `tests/compat/CuratorScenario.java` is compiled with `javac` into a temp dir, run against
//! both servers, and every section of its normalised trace must be equal.
//!
//! Needs a JDK (`javac`), Debian's Curator (`apt-get install libcurator-framework-java
//! libcurator-recipes-java libcurator-client-java`) and Apache ZooKeeper. Outside CI a
//! missing piece skips the tests with a notice; `.ci/run` installs them. Two runs: the main
//! scenario (one JVM per server, in parallel, ~35 s) and a `reaping` run on a second pair of
//! servers started with `znode.container.checkIntervalMs=500` (~10 s).
//!
//! `CORRAL_COMPAT_KEEP=<dir>`: also write the raw traces there.

mod compat;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use compat::{assert_section, assert_sections_known, require, run_captured, Trace};
use support::{ApacheZk, CorralServer};

const SECTIONS: &[&str] = &[
    "crud",
    "java",
    "txn",
    "locks",
    "leader",
    "caches",
    "persistent",
    "atomic",
    "watches",
    "session",
    "wrong_password",
    "auth_credentials",
];

/// Jars of the client side: Curator, the ZooKeeper client and what they need. Their
/// manifests add the rest (the ZooKeeper jar lists its own dependencies).
const JARS: &[&str] = &[
    "curator-framework.jar",
    "curator-recipes.jar",
    "curator-client.jar",
    "guava.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-nop.jar",
];

fn java_dir() -> PathBuf {
    PathBuf::from(std::env::var("CORRAL_JAVA_LIB").unwrap_or_else(|_| "/usr/share/java".into()))
}

fn classpath(classes: &Path) -> String {
    let mut cp = classes.display().to_string();
    for j in JARS {
        cp.push(':');
        cp.push_str(&java_dir().join(j).display().to_string());
    }
    cp
}

/// Compiles the scenario once per test binary; `None` when a tool is missing (skip).
fn compiled() -> Option<&'static Path> {
    static CLASSES: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    CLASSES
        .get_or_init(|| {
            let missing: Vec<&str> = JARS
                .iter()
                .copied()
                .filter(|j| !java_dir().join(j).is_file())
                .collect();
            if !require(
                "Curator and the ZooKeeper client jars",
                missing.is_empty(),
                &format!(
                    "missing {missing:?} in {}; install them with `apt-get install -y \
                     libcurator-framework-java libcurator-recipes-java libcurator-client-java \
                     zookeeper libslf4j-java` (see .ci/run)",
                    java_dir().display()
                ),
            ) {
                return None;
            }
            if !require(
                "javac",
                compat::runs_ok("javac", &["-version"]),
                "install a JDK (`apt-get install -y default-jdk-headless`)",
            ) {
                return None;
            }
            let dir = tempfile::Builder::new()
                .prefix("corral-curator-")
                .tempdir()
                .expect("tempdir");
            let mut cmd = Command::new("javac");
            cmd.args(["-nowarn", "-encoding", "UTF-8", "-d"])
                .arg(dir.path())
                .arg("-cp")
                .arg(classpath(dir.path()))
                .arg(compat::compat_dir().join("CuratorScenario.java"));
            let out = run_captured(cmd, None, Duration::from_secs(120));
            assert_eq!(
                out.status,
                Some(0),
                "javac CuratorScenario.java failed:\n{}\n{}",
                out.stdout,
                out.stderr
            );
            Some(dir)
        })
        .as_ref()
        .map(|d| d.path())
}

fn run_scenario(classes: &Path, addr: std::net::SocketAddr, only: Option<&str>) -> compat::Output {
    let mut cmd = Command::new("java");
    cmd.args([
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
    ])
    .arg(classpath(classes))
    .arg("CuratorScenario")
    .arg(addr.to_string());
    if let Some(only) = only {
        cmd.arg(only);
    }
    run_captured(cmd, None, Duration::from_secs(180))
}

struct Runs {
    zk: Trace,
    corral: Trace,
}

/// Starts a ZooKeeper and a Corral with `extra_cfg`, runs the scenario (`only` = a
/// comma-separated section list, or all but `reaping`) against both in parallel.
fn run_pair(extra_cfg: &[&str], only: Option<&str>, tag: &str) -> Option<Runs> {
    let classes = compiled()?;
    let zk = ApacheZk::try_start_with(extra_cfg)?;
    let corral = CorralServer::start_with(extra_cfg);
    let (zk_out, co_out) = std::thread::scope(|s| {
        let a = s.spawn(|| run_scenario(classes, zk.addr(), only));
        let b = s.spawn(|| run_scenario(classes, corral.addr(), only));
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!(
        "curator scenario ({tag}): {:.1}s against ZooKeeper, {:.1}s against Corral",
        zk_out.elapsed.as_secs_f64(),
        co_out.elapsed.as_secs_f64()
    );
    if let Ok(dir) = std::env::var("CORRAL_COMPAT_KEEP") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(format!("{dir}/curator-{tag}-zookeeper.txt"), &zk_out.stdout);
        let _ = std::fs::write(format!("{dir}/curator-{tag}-corral.txt"), &co_out.stdout);
        let _ = std::fs::write(
            format!("{dir}/curator-{tag}-corral-server.log"),
            corral.log(),
        );
    }
    Some(Runs {
        zk: Trace::parse("zookeeper", &zk_out, zk.log()),
        corral: Trace::parse("corral", &co_out, corral.log()),
    })
}

fn main_runs() -> Option<&'static Runs> {
    static RUNS: OnceLock<Option<Runs>> = OnceLock::new();
    RUNS.get_or_init(|| run_pair(&[], None, "main")).as_ref()
}

fn reaping_runs() -> Option<&'static Runs> {
    static RUNS: OnceLock<Option<Runs>> = OnceLock::new();
    RUNS.get_or_init(|| {
        run_pair(
            &["znode.container.checkIntervalMs=500"],
            Some("reaping"),
            "reaping",
        )
    })
    .as_ref()
}

fn check(section: &str) {
    let Some(r) = main_runs() else { return };
    assert_section("curator", section, &r.zk, &r.corral);
}

#[test]
fn curator_scenario_sections_are_all_compared() {
    let Some(r) = main_runs() else { return };
    assert_sections_known("curator", &r.zk, SECTIONS);
}

/// CuratorFramework create (parents, sequential, withProtection, parent containers,
/// containers, TTL, orSetData, storingStatIn), getData/setData/delete variants (quietly,
/// guaranteed, deletingChildrenIfNeeded), ACLs, sync and background callbacks, getConfig,
/// reconfig in standalone, namespaces.
#[test]
fn curator_crud() {
    check("crud");
}

/// The plain Java client: create2/TTL/container, getEphemerals, getAllChildrenNumber,
/// whoAmI, multiRead, multi (success, failure results), one-shot watches, removeWatches,
/// session-timeout negotiation, getConfig, sync, setACL versions.
#[test]
fn curator_java_client_api() {
    check("java");
}

/// `transaction().forOperations(...)`: results, failures, TTL and container creates.
#[test]
fn curator_transactions() {
    check("txn");
}

/// InterProcessMutex contention (reentrancy, each waiter watches only its predecessor,
/// hand-over when the holder's client closes), InterProcessReadWriteLock,
/// InterProcessSemaphoreV2, InterProcessSemaphoreMutex, InterProcessMultiLock.
#[test]
fn curator_locks() {
    check("locks");
}

/// LeaderLatch and LeaderSelector fail-over when the leader's client closes.
#[test]
fn curator_leader_election() {
    check("leader");
}

/// NodeCache, PathChildrenCache, TreeCache and CuratorCache events, step by step.
#[test]
fn curator_caches() {
    check("caches");
}

/// PersistentNode (re-created after deletion, protected sequential), PersistentTtlNode,
/// PersistentWatcher (a persistent recursive watch).
#[test]
fn curator_persistent_nodes() {
    check("persistent");
}

/// DistributedAtomicLong (optimistic and promoted to a lock, contended), SharedCount.
#[test]
fn curator_atomics() {
    check("atomic");
}

/// addWatch persistent and persistent-recursive (events, a one-shot watch on the same path,
/// removal), and every kind of watch across a reconnect (setWatches/setWatches2 catch-up).
#[test]
fn curator_watches() {
    check("watches");
}

/// Connection states through cut/reconnect, session expiry caused by a second client
/// closing the session (LOST, new session, PersistentNode re-created), the Java client's
/// Expired state, Curator `authorization()` with CREATOR_ALL_ACL.
#[test]
fn curator_session() {
    check("session");
}

/// Corral differs: when a client connects with an existing session id and a *wrong*
/// password, ZooKeeper 3.8 answers "expired" to it **and also closes the connection of the
/// session's legitimate holder** (it registers the new connection under the session id
/// before checking the password); Corral leaves the holder alone. Corral's behaviour is
/// arguably the better one (ZooKeeper's lets anyone who knows a session id disconnect it).
#[test]
#[ignore = "deliberate difference: a reattach with a wrong password does not disconnect the session's holder (ZooKeeper lets anyone who knows a session id kick its owner)"]
fn curator_wrong_password_reattach() {
    check("wrong_password");
}

/// Corral bugs in digest authentication with the Java client's `addAuthInfo`:
/// - a **null** credential (`addAuthInfo("digest", null)`, what `zkCli.sh addauth digest`
///   sends): ZooKeeper answers AuthFailed and closes the connection (the next request fails
///   with AUTHFAILED, state AuthFailed); Corral decodes the null buffer as empty, answers OK
///   and adds the identity `digest:` + base64(sha1(""));
/// - a credential that is **not UTF-8**: ZooKeeper decodes it with replacement characters
///   (`u\u{fffd}`) and accepts it; Corral answers AuthFailed and closes the connection.
#[test]
fn curator_auth_credentials() {
    check("auth_credentials");
}

/// Container and TTL reaping (servers with a 500 ms check interval): used containers,
/// Curator's lock parents, TTL nodes (also sequential, with children, renewed by setData),
/// never-used containers kept, NodeDeleted / NodeChildrenChanged on reaping.
#[test]
fn curator_container_and_ttl_reaping() {
    let Some(r) = reaping_runs() else { return };
    assert_section("curator", "reaping", &r.zk, &r.corral);
}
