//! `zkCli.sh` (Apache ZooKeeper 3.8's shell, the Java client underneath) against Corral and
//! Apache ZooKeeper: scripts of shell commands are piped into `zkCli.sh -server host:port`
//! and the output must be the same, command by command, once normalised.
//!
//! How the output is made comparable:
//! - stdout and stderr are one stream (`2>&1`, zkCli prints errors on stderr);
//! - after every command the script sends the unknown command `__step__`, whose usage
//!   text (printed whether connected or not) marks where that command's output ends;
//! - `WATCHER::` blocks are printed by the client's event thread at any moment: their
//!   `WatchedEvent` lines are cut out and compared as one ordered list per script, and
//!   blank lines are dropped;
//! - zxids (`cZxid = 0x…`) become the distance from the first zxid of the script (`z+3`),
//!   times become `T`, session ids `s1`, `s2`…, `[a, b]` lists are sorted, and commands
//!   whose lines come in hash order (`ls -R`, `whoami`) have their lines sorted;
//! - log noise (SLF4J, "JLine support is disabled", "Connecting to …") is dropped.
//!
//! Both servers run with `enforceQuota=true` so hard quotas are enforced.
//! Needs Apache ZooKeeper (`zkCli.sh` from Debian's `zookeeper` package).

mod compat;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::{ApacheZk, CorralServer};

const EXTRA_CFG: &[&str] = &["enforceQuota=true"];

fn zkcli() -> PathBuf {
    let home = std::env::var("CORRAL_ZK_HOME").unwrap_or_else(|_| "/usr/share/zookeeper".into());
    PathBuf::from(home).join("bin").join("zkCli.sh")
}

/// The scripts, one JVM each. `%HOSTPORT%` is replaced by the server's address.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "nodes",
        r#"
version
create /zn
create /zn/a hello
create /zn/a again
create /zn/missing/x
create -s /zn/s- seqdata
create -s /zn/s-
create /zn/s-
create -e /zn/e eph
create -e -s /zn/es-
create -c /zn/cont
create /zn/cont/kid k
create -t 100000 /zn/ttl ttldata
create -t 100000 -s /zn/ttls-
create -t 0 /zn/ttl0
create -c -t 10 /zn/ct
create -e -t 10 /zn/et
create /zn/e/child
create
create /zn/trailing/
create zn/relative
create /zn/unicode-ü ☃
create /zn/spaces "a b c"
ls /zn
ls -s /zn
ls -R /zn
ls /zn/missing
ls -R /zn/missing
get /zn/a
get -s /zn/a
get /zn/unicode-ü
get /zn/missing
stat /zn/a
stat /zn/missing
stat /zn/e
set /zn/a world
set -s /zn/a world2
set -v 1 /zn/a stale
set -v 2 /zn/a fresh
set /zn/missing x
get -s /zn/a
delete /zn/missing
delete /zn
delete -v 9 /zn/a
delete -v 3 /zn/a
delete /zn/cont
deleteall /zn/cont
deleteall -b 2 /zn/ttls-0000000008
ls /zn
sync /zn
sync /zn/missing
sync zn
getAllChildrenNumber /zn
getAllChildrenNumber /
getAllChildrenNumber /zn/missing
getEphemerals
getEphemerals /zn/e
getEphemerals /nothing
get /zookeeper/config
config
get -s /zookeeper/config
ls /zookeeper
stat /
delete /zookeeper
delete /zookeeper/quota
create /zookeeper/mine x
"#,
    ),
    (
        "acl",
        r#"
create /za
create /za/open o
getAcl /za/open
getAcl -s /za/open
setAcl /za/open world:anyone:r
getAcl /za/open
set /za/open denied
setAcl /za/open world:anyone:cdrwa
setAcl -v 0 /za/open world:anyone:cdrwa
setAcl -v 2 /za/open world:anyone:cdrwa
setAcl -s /za/open world:anyone:rw
create /za/ip x ip:127.0.0.1:cdrwa
getAcl /za/ip
get /za/ip
create /za/ip8 x ip:10.0.0.0/8:cdrwa
get /za/ip8
create /za/badip x ip:1.2.3.4/40:cdrwa
create /za/baddigest x digest:nope:cdrwa
create /za/badscheme x nosuch:x:cdrwa
create /za/authnoauth x auth::cdrwa
whoami
addauth digest alice:secret
whoami
create /za/alice x auth::cdrwa
getAcl /za/alice
create /za/bob x digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa
get /za/bob
getAcl /za/bob
create /za/tree
create /za/tree/a
create /za/tree/a/b
setAcl -R /za/tree world:anyone:rw
getAcl /za/tree/a/b
create /za/tree/a/b/c
addauth digest super:su-pw
whoami
get /za/bob
create /za/co x world:anyone:c
create /za/co/kid
delete /za/co/kid
"#,
    ),
    (
        "watches",
        r#"
create /zw
create /zw/a 1
get -w /zw/a
set /zw/a 2
set /zw/a 3
ls -w /zw
create /zw/b
create /zw/c
stat -w /zw/later
create /zw/later
get -w /zw/missing
ls -w /zw/missing
create /zw/missing
addWatch /zw/p
create /zw/p
create /zw/p/kid
set /zw/p x
create /zw/p/kid/deep
delete /zw/p/kid/deep
delete /zw/p/kid
addWatch -m PERSISTENT_RECURSIVE /zw/r
create /zw/r
create /zw/r/a
create /zw/r/a/b
set /zw/r/a/b x
delete /zw/r/a/b
addWatch -m NOSUCHMODE /zw/r
removewatches /zw/p
removewatches /zw/p
removewatches /zw/r -a
get -w /zw/a
removewatches /zw/a -d
removewatches /zw/a -c
ls -w /zw
removewatches /zw -c
set /zw/a after-remove
printwatches
printwatches off
printwatches
get -w /zw/a
set /zw/a silent
"#,
    ),
    (
        "quota",
        r#"
create /zq
create /zq/n
setquota -n 2 /zq/n
listquota /zq/n
create /zq/n/1
create /zq/n/2
create /zq/n/3
listquota /zq/n
create /zq/h
setquota -N 3 /zq/h
create /zq/h/1
create /zq/h/2
create /zq/h/3
listquota /zq/h
setquota -B 10 /zq/h/1
setquota -B 10 /zq/b
create /zq/b
setquota -B 10 /zq/b
set /zq/b 1234567890
set /zq/b 12345678901
listquota /zq/b
setquota -b 5 /zq/b
listquota /zq/b
setquota -n 1 /zq
delquota -N /zq/h
create /zq/h/3
listquota /zq/h
delquota /zq/h
delquota /zq/h
listquota /zq/h
setquota -n 5 /zookeeper
setquota -n 5 /
setquota -N 5 -B 10 /zq/n
get /zookeeper/quota/zq/n/zookeeper_limits
get /zookeeper/quota/zq/n/zookeeper_stats
get -s /zookeeper/quota/zq/b/zookeeper_stats
ls -R /zookeeper/quota
delete /zq/n/3
listquota /zq/n
deleteall /zq/n
listquota /zq/n
ls -R /zookeeper/quota
"#,
    ),
    (
        "session",
        r#"
create /zs
create -e /zs/eph
getEphemerals
history
redo 2
redo 99
close
ls /zs
whoami
connect %HOSTPORT%
whoami
getEphemerals
ls /zs
"#,
    ),
    (
        "auth_without_credential",
        r#"
create /zx
addauth digest
ls /zx
"#,
    ),
];

struct Run {
    /// script name → list of (command, normalised output lines)
    steps: BTreeMap<String, Vec<(String, Vec<String>)>>,
    /// script name → watcher events in arrival order
    events: BTreeMap<String, Vec<String>>,
    raw: BTreeMap<String, String>,
    server_log: String,
}

fn commands(script: &str) -> Vec<&str> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The text piped into zkCli: each command followed by its end marker.
fn script_input(script: &str, hostport: &str) -> String {
    let mut s = String::new();
    for cmd in commands(script) {
        s.push_str(&cmd.replace("%HOSTPORT%", hostport));
        s.push('\n');
        s.push_str("__step__\n");
    }
    s.push_str("quit\n");
    s
}

fn run_script(addr: std::net::SocketAddr, script: &str) -> compat::Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec '{}' -server {addr} 2>&1", zkcli().display()))
        .env(
            "CLIENT_JVMFLAGS",
            "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .env("ZOO_LOG_DIR", std::env::temp_dir());
    let input = script_input(script, &addr.to_string());
    compat::run_captured(cmd, Some(input.as_bytes()), Duration::from_secs(60))
}

/// Splits zkCli's output into per-command blocks and watcher events, normalised.
fn normalise(script: &str, output: &str) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let cmds = commands(script);
    let mut zxid_base: Option<i64> = None;
    let mut sessions: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let lines = output.lines();
    let mut in_usage = false;
    for line in lines {
        if line.starts_with("SLF4J:")
            || line == "JLine support is disabled"
            || line == "Welcome to ZooKeeper!"
            || line.starts_with("Connecting to ")
        {
            continue;
        }
        // the event thread prints "\nWATCHER::\n\nWatchedEvent …" at any moment, even
        // between two lines of a command's output: take the event lines out wherever they
        // are, and drop blank lines (so an empty value prints as nothing)
        if line == "WATCHER::" || line.is_empty() {
            continue;
        }
        // `state:Closed` is queued by the client itself when `quit` closes the session;
        // whether zkCli prints it before the JVM exits is a race in the client, not
        // something the server decides (ClientCnxn queues it at the end of its send loop)
        if line == "WatchedEvent state:Closed type:None path:null" {
            continue;
        }
        if line.starts_with("WatchedEvent ") {
            events.push(line.to_string());
            continue;
        }
        // the rest of the usage text: tab-indented lines, then "Command not found"
        if in_usage && line.starts_with('\t') {
            continue;
        }
        if in_usage && line.starts_with("Command not found") {
            in_usage = false;
            continue;
        }
        if line.starts_with(USAGE_FIRST_LINE) {
            in_usage = true;
            let cmd = cmds.get(blocks.len()).copied().unwrap_or("?").to_string();
            let mut block = std::mem::take(&mut cur);
            if sorts_lines(&cmd) {
                block.sort();
            }
            blocks.push((cmd, block));
            continue;
        }
        cur.push(normalise_line(line, &mut zxid_base, &mut sessions));
    }
    if !cur.is_empty() {
        blocks.push(("<after the last command>".into(), cur));
    }
    (blocks, events)
}

/// zkCli prints its usage for an unknown command, connected or not: the script sends
/// `__step__` after every command and this first usage line marks the end of its output.
const USAGE_FIRST_LINE: &str = "ZooKeeper -server host:port";

/// Commands whose output lines come in hash order.
fn sorts_lines(cmd: &str) -> bool {
    cmd.starts_with("ls -R") || cmd.starts_with("whoami") || cmd.starts_with("getAcl")
}

fn normalise_line(line: &str, zxid_base: &mut Option<i64>, sessions: &mut Vec<String>) -> String {
    for key in ["cZxid = ", "mZxid = ", "pZxid = "] {
        if let Some(hex) = line.strip_prefix(key) {
            if let Ok(z) = i64::from_str_radix(hex.trim().trim_start_matches("0x"), 16) {
                if z == 0 {
                    return format!("{key}0");
                }
                let base = *zxid_base.get_or_insert(z);
                return format!("{key}z{:+}", z - base);
            }
        }
    }
    for key in ["ctime = ", "mtime = "] {
        if line.starts_with(key) {
            return format!("{key}T");
        }
    }
    if let Some(owner) = line.strip_prefix("ephemeralOwner = ") {
        if owner == "0x0" {
            return line.to_string();
        }
        let idx = match sessions.iter().position(|s| s == owner) {
            Some(i) => i,
            None => {
                sessions.push(owner.to_string());
                sessions.len() - 1
            }
        };
        return format!("ephemeralOwner = s{}", idx + 1);
    }
    // `[b, a]` lists (ls, getEphemerals): hash order on the server
    if line.starts_with('[') && line.ends_with(']') {
        let mut items: Vec<&str> = line[1..line.len() - 1]
            .split(", ")
            .filter(|s| !s.is_empty())
            .collect();
        items.sort();
        return format!("[{}]", items.join(", "));
    }
    line.to_string()
}

fn run_all(addr: std::net::SocketAddr, log: impl Fn() -> String) -> Run {
    let mut run = Run {
        steps: BTreeMap::new(),
        events: BTreeMap::new(),
        raw: BTreeMap::new(),
        server_log: String::new(),
    };
    for (name, script) in SCRIPTS {
        let out = run_script(addr, script);
        assert!(
            !out.timed_out,
            "zkCli script {name} against {addr} timed out; output:\n{}",
            out.stdout
        );
        let (steps, events) = normalise(script, &out.stdout);
        run.steps.insert(name.to_string(), steps);
        run.events.insert(name.to_string(), events);
        run.raw.insert(name.to_string(), out.stdout);
    }
    run.server_log = log();
    run
}

/// One-shot mode: `zkCli.sh -server addr cmd args…`, output and exit code.
fn one_shot(addr: std::net::SocketAddr, args: &str) -> OneShot {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "exec '{}' -server {addr} {args} 2>&1",
            zkcli().display()
        ))
        .env(
            "CLIENT_JVMFLAGS",
            "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .env("ZOO_LOG_DIR", std::env::temp_dir());
    let out = compat::run_captured(cmd, None, Duration::from_secs(60));
    let (blocks, events) = normalise("", &out.stdout);
    let mut text: Vec<String> = blocks.into_iter().flat_map(|(_, b)| b).collect();
    // zkCli's own "connected" notification races the JVM's exit in one-shot mode: whether
    // it is printed depends on thread timing, for either server (seen once in CI).
    text.extend(
        events
            .into_iter()
            .filter(|e| e != "WatchedEvent state:SyncConnected type:None path:null")
            .map(|e| format!("event: {e}")),
    );
    (text.join("\n"), out.status)
}

/// Output and exit status of a one-shot `zkCli.sh … <command>`.
type OneShot = (String, Option<i32>);

struct Runs {
    zk: Run,
    corral: Run,
    one_shots: Vec<(String, OneShot, OneShot)>,
}

const ONE_SHOTS: &[&str] = &["get /za/open", "get /zn/missing", "ls /zn", "getAcl /za/ip"];

fn runs() -> Option<&'static Runs> {
    static RUNS: OnceLock<Option<Runs>> = OnceLock::new();
    RUNS.get_or_init(|| {
        if !compat::require(
            "zkCli.sh",
            zkcli().is_file(),
            "install Debian's `zookeeper` package (see .ci/run)",
        ) {
            return None;
        }
        let zk = ApacheZk::try_start_with(EXTRA_CFG)?;
        let corral = CorralServer::start_with(EXTRA_CFG);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run_all(zk.addr(), || zk.log()));
            let b = s.spawn(|| run_all(corral.addr(), || corral.log()));
            (a.join().unwrap(), b.join().unwrap())
        });
        let one_shots = ONE_SHOTS
            .iter()
            .map(|args| {
                let (x, y) = std::thread::scope(|s| {
                    let x = s.spawn(|| one_shot(zk.addr(), args));
                    let y = s.spawn(|| one_shot(corral.addr(), args));
                    (x.join().unwrap(), y.join().unwrap())
                });
                (args.to_string(), x, y)
            })
            .collect();
        if let Ok(dir) = std::env::var("CORRAL_COMPAT_KEEP") {
            let _ = std::fs::create_dir_all(&dir);
            for (name, raw) in &a.raw {
                let _ = std::fs::write(format!("{dir}/zkcli-{name}-zookeeper.txt"), raw);
            }
            for (name, raw) in &b.raw {
                let _ = std::fs::write(format!("{dir}/zkcli-{name}-corral.txt"), raw);
            }
        }
        Some(Runs {
            zk: a,
            corral: b,
            one_shots,
        })
    })
    .as_ref()
}

fn check(script: &str) {
    let Some(r) = runs() else { return };
    let a = &r.zk.steps[script];
    let b = &r.corral.steps[script];
    let cmds = commands(SCRIPTS.iter().find(|(n, _)| *n == script).unwrap().1);
    assert_eq!(
        a.len(),
        cmds.len(),
        "zkCli script {script}: ZooKeeper's output has {} command blocks for {} commands \
         (the harness is broken, not Corral):\n{}",
        a.len(),
        cmds.len(),
        r.zk.raw[script]
    );
    let mut msg = String::new();
    let n = a.len().max(b.len());
    for i in 0..n {
        let (cmd, x) = a.get(i).cloned().unwrap_or_default();
        let (cmd_b, y) = b.get(i).cloned().unwrap_or_default();
        if x != y || cmd != cmd_b {
            msg.push_str(&format!(
                ">> `{cmd}`\n   zookeeper: {x:?}\n   corral:    {y:?}\n"
            ));
        }
    }
    let (ea, eb) = (&r.zk.events[script], &r.corral.events[script]);
    if ea != eb {
        msg.push_str(&format!(
            ">> watcher events (in arrival order)\n   zookeeper: {ea:#?}\n   corral:    {eb:#?}\n"
        ));
    }
    if !msg.is_empty() {
        panic!(
            "zkCli script `{script}` differs between Apache ZooKeeper and Corral:\n{msg}\n\
             Corral server.log warnings/errors (tail):\n{}\n",
            compat::interesting_log_lines(&r.corral.server_log, 30)
        );
    }
}

/// create (-s -e -c -t, errors), ls (-s -R), get (-s), stat, set (-s -v), delete (-v),
/// deleteall (-b), sync, getAllChildrenNumber, getEphemerals, config, system nodes.
#[test]
fn zkcli_nodes() {
    check("nodes");
}

/// getAcl/setAcl (-s -v -R), ip/digest/auth ACLs, invalid ACLs, addauth, whoami, super.
#[test]
fn zkcli_acl() {
    check("acl");
}

/// get/ls/stat -w, addWatch (persistent, recursive), removewatches, printwatches; the
/// watcher events in order.
#[test]
fn zkcli_watches() {
    check("watches");
}

/// setquota (-n -b -N -B), listquota, delquota, hard quotas enforced (enforceQuota=true),
/// the /zookeeper/quota tree.
#[test]
fn zkcli_quota() {
    check("quota");
}

/// history/redo, close, connect (a new session), whoami and getEphemerals per session,
/// a failing addauth.
#[test]
fn zkcli_session() {
    check("session");
}

/// `zkCli.sh -server host:port <command>`: output and exit status.
#[test]
fn zkcli_one_shot_commands() {
    let Some(r) = runs() else { return };
    let mut msg = String::new();
    for (args, zk, co) in &r.one_shots {
        if zk != co {
            msg.push_str(&format!(
                ">> zkCli.sh {args}\n   zookeeper: {zk:?}\n   corral:    {co:?}\n"
            ));
        }
    }
    assert!(msg.is_empty(), "one-shot zkCli commands differ:\n{msg}");
}

/// Corral bug: `addauth digest` with no credential (the Java client sends a null auth
/// buffer, length -1) must fail: ZooKeeper's digest provider throws, the server answers
/// AuthFailed (-115) and closes the connection, so the pipelined `ls` fails with AuthFailed
/// and the client is in state AuthFailed. Corral treats the null buffer as an empty
/// credential, answers OK and adds the identity `digest:` + base64(sha1("")) instead.
#[ignore = "corral differs: after a refused addauth, zkCli reports `Not connected` against Corral where ZooKeeper gives `KeeperErrorCode = AuthFailed` (both refuse the credential and close the connection)"]
#[test]
fn zkcli_addauth_without_credential() {
    check("auth_without_credential");
}
