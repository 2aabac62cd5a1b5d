//! The ZooKeeper C client (`cli_mt` from Debian's `zookeeper-bin`, the multi-threaded C
//! library underneath) against Corral and Apache ZooKeeper: the same command script is
//! typed into both (one command every 200 ms, so the completion thread's output lands in
//! order) and the output must match once normalised.
//!
//! Normalised: `time = … msec` lines dropped; session ids, ctime/mtime, czxid/mzxid (as the
//! distance from the first zxid seen) replaced; runs of child names (`\tname` lines) sorted,
//! because the server lists children in hash order.
//!
//! Skipped with a notice when `cli_mt` is not installed (outside CI).

mod compat;
mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{ApacheZk, CorralServer};

const SCRIPT: &str = r#"
create /cm
create +e /cm/e
create +s /cm/s-
create +es /cm/es-
create2 /cm/c2
create +c /cm/cont
create +t=100000 /cm/ttl
create /cm
create /cm/missing/x
set /cm data1
get /cm
set /cm data2
ls /cm
ls2 /cm
create /cm/child
exists /cm
exists /cm/missing
wexists /cm/w
create /cm/w
get /cm/missing
set /cm/missing x
delete /cm
delete /cm/c2
delete /cm/missing
sync /cm
aget /cm
aexists /cm/e
config
quit
"#;

fn cli_mt() -> PathBuf {
    PathBuf::from(
        std::env::var("CORRAL_CLI_MT").unwrap_or_else(|_| "/usr/lib/zookeeper/bin/cli_mt".into()),
    )
}

/// Types the script into `cli_mt host:port`, one line every 200 ms, and returns its output.
fn run(addr: std::net::SocketAddr) -> String {
    use std::os::unix::process::CommandExt;
    // cli_mt prints results on stdout and errors/events on stderr: one stream keeps them
    // in order
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec '{}' {addr} 2>&1", cli_mt().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start cli_mt");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    // cli_mt connects in the background: give it a moment before the first command
    std::thread::sleep(Duration::from_millis(500));
    for line in SCRIPT.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = err_t.join();
    out_t.join().unwrap_or_default()
}

fn normalise(out: &str) -> Vec<String> {
    let mut zxid_base: Option<i64> = None;
    let mut sessions: Vec<String> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        if line.starts_with("time = ") {
            continue;
        }
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        let norm = if let Some(sid) = line.strip_prefix("Got a new session id: ") {
            format!(
                "Got a new session id: {}",
                session_name(&mut sessions, sid.trim_start_matches("0x"))
            )
        } else if let Some(sid) = line.strip_prefix("session Id = ") {
            format!("session Id = {}", session_name(&mut sessions, sid))
        } else if t.starts_with("ctime = ") || t.starts_with("mtime=") {
            format!("{indent}{}T", &t[..t.find('=').unwrap() + 1])
        } else if let Some(hex) = t
            .strip_prefix("czxid=")
            .or_else(|| t.strip_prefix("mzxid="))
        {
            let z = i64::from_str_radix(hex, 16).unwrap_or(-1);
            let v = if z == 0 {
                "0".to_string()
            } else {
                format!("z{:+}", z - *zxid_base.get_or_insert(z))
            };
            format!("{indent}{}{v}", &t[..6])
        } else if let Some(owner) = t.strip_prefix("ephemeralOwner = ") {
            if owner == "0" {
                line.to_string()
            } else {
                format!(
                    "{indent}ephemeralOwner = {}",
                    session_name(&mut sessions, owner)
                )
            }
        } else {
            line.to_string()
        };
        lines.push(norm);
    }
    // sort runs of child-name lines (`\tname`, no `=`)
    let mut out = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with('\t') && !l.contains('=') {
            run.push(l);
        } else {
            run.sort();
            out.append(&mut run);
            out.push(l);
        }
    }
    run.sort();
    out.append(&mut run);
    out
}

fn session_name(sessions: &mut Vec<String>, sid: &str) -> String {
    let sid = sid.trim().trim_start_matches("0x").to_string();
    let i = match sessions.iter().position(|s| *s == sid) {
        Some(i) => i,
        None => {
            sessions.push(sid);
            sessions.len() - 1
        }
    };
    format!("S{}", i + 1)
}

/// create (+e +s +c +t, create2), set/get (with the data watch `get` leaves), ls/ls2,
/// exists/wexists (a watch on a missing node), errors, sync, async get/exists, config.
#[test]
fn cli_mt_matches_zookeeper() {
    if !compat::require(
        "cli_mt (the ZooKeeper C client shell)",
        cli_mt().is_file(),
        "install Debian's `zookeeper-bin` (see .ci/run)",
    ) {
        return;
    }
    let Some(zk) = ApacheZk::start() else { return };
    let corral = CorralServer::start();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(zk.addr()));
        let b = s.spawn(|| run(corral.addr()));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (na, nb) = (normalise(&a), normalise(&b));
    assert!(
        na.iter().any(|l| l.contains("CONNECTED_STATE")),
        "cli_mt never connected to ZooKeeper (the harness is broken):\n{a}"
    );
    if na != nb {
        let mut msg = String::from("cli_mt output differs (`zk` = ZooKeeper, `co` = Corral):\n");
        for i in 0..na.len().max(nb.len()) {
            let x = na.get(i).map(String::as_str).unwrap_or("<missing>");
            let y = nb.get(i).map(String::as_str).unwrap_or("<missing>");
            if x == y {
                msg.push_str(&format!("   =  {x}\n"));
            } else {
                msg.push_str(&format!(">> zk {x}\n>> co {y}\n"));
            }
        }
        msg.push_str(&format!(
            "\nCorral server.log warnings/errors (tail):\n{}\n",
            compat::interesting_log_lines(&corral.log(), 30)
        ));
        panic!("{msg}");
    }
}
