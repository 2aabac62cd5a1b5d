//! Shared code of the real-client compatibility tests (`tests/compat_*.rs`): run an
//! external client program (kazoo, Curator, zkCli.sh, cli_mt) against Apache ZooKeeper and
//! against Corral, split its normalised trace into sections and compare them.
//!
//! A scenario prints one step a line: `<section> TAB <json>`, and `<section> TAB END` when
//! the section is complete. Each `#[test]` of a compat file compares one section, so a
//! section that exposes a Corral bug can be `#[ignore]`d alone while the rest stay on.
//! The scenario itself runs once per test binary (a `OnceLock`), against both servers in
//! parallel.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directory holding the scenario sources (`tests/compat`).
pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("compat")
}

/// Whether an optional tool is usable. Outside CI a missing tool skips the test with a
/// notice; under CI (env `CI` set) it fails, because `.ci/run` installs everything.
pub fn require(what: &str, ok: bool, install_hint: &str) -> bool {
    if ok {
        return true;
    }
    let why = format!("{what} is not available; {install_hint}");
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// True when `cmd args…` runs and exits 0.
pub fn runs_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What a finished client program produced.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Runs `cmd` (stdin from `input`), kills it after `timeout`, returns its output.
pub fn run_captured(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut timed_out = false;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code();
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            break child.wait().ok().and_then(|s| s.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        status,
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// One server's trace, by section, plus what is needed to explain a difference.
pub struct Trace {
    pub server: &'static str,
    pub sections: BTreeMap<String, Vec<String>>,
    /// Sections that printed their END line.
    pub complete: Vec<String>,
    pub stderr: String,
    pub server_log: String,
    pub timed_out: bool,
}

impl Trace {
    pub fn parse(server: &'static str, out: &Output, server_log: String) -> Trace {
        let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut complete = Vec::new();
        for line in out.stdout.lines() {
            let Some((section, item)) = line.split_once('\t') else {
                continue;
            };
            if item == "END" {
                complete.push(section.to_string());
                sections.entry(section.to_string()).or_default();
            } else {
                sections
                    .entry(section.to_string())
                    .or_default()
                    .push(item.to_string());
            }
        }
        Trace {
            server,
            sections,
            complete,
            stderr: out.stderr.clone(),
            server_log,
            timed_out: out.timed_out,
        }
    }
}

/// Lines of a server log worth showing next to a difference (warnings and errors).
pub fn interesting_log_lines(log: &str, max: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            let u = l.to_ascii_uppercase();
            u.contains("WARN") || u.contains("ERROR") || u.contains("PANIC")
        })
        .collect();
    let skip = lines.len().saturating_sub(max);
    lines[skip..].join("\n")
}

/// Compares one section of the reference (ZooKeeper) trace with Corral's. Panics with a
/// readable, step-by-step difference when they differ.
pub fn assert_section(client: &str, section: &str, zk: &Trace, corral: &Trace) {
    let empty = Vec::new();
    let a = zk.sections.get(section).unwrap_or(&empty);
    let b = corral.sections.get(section).unwrap_or(&empty);
    assert!(
        zk.complete.iter().any(|s| s == section),
        "{client}: section {section} did not complete against Apache ZooKeeper (timed out: {}); \
         the scenario is broken, not Corral.\nsteps: {a:#?}\nstderr:\n{}",
        zk.timed_out,
        tail(&zk.stderr, 60)
    );
    let corral_complete = corral.complete.iter().any(|s| s == section);
    if a == b && corral_complete {
        return;
    }
    let mut msg = format!(
        "{client}: section `{section}` differs between Apache ZooKeeper and Corral \
         (`zk` = reference, `co` = Corral; first difference marked)\n"
    );
    let n = a.len().max(b.len());
    let mut first = true;
    for i in 0..n {
        let x = a.get(i).map(String::as_str).unwrap_or("<missing>");
        let y = b.get(i).map(String::as_str).unwrap_or("<missing>");
        if x == y {
            msg.push_str(&format!("   =  {x}\n"));
        } else {
            let mark = if first { ">>" } else { "  " };
            first = false;
            msg.push_str(&format!("{mark} zk {x}\n{mark} co {y}\n"));
        }
    }
    if !corral_complete {
        msg.push_str(&format!(
            "\nthe section did not complete against Corral (timed out: {})\n",
            corral.timed_out
        ));
    }
    msg.push_str(&format!(
        "\nclient stderr against Corral (tail):\n{}\n",
        tail(&corral.stderr, 40)
    ));
    msg.push_str(&format!(
        "\nCorral server.log warnings/errors (tail):\n{}\n",
        interesting_log_lines(&corral.server_log, 40)
    ));
    panic!("{msg}");
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Checks that every section the reference printed is one a test looks at, so a new
/// section can't be added to a scenario and silently never compared.
pub fn assert_sections_known(client: &str, zk: &Trace, known: &[&str]) {
    for s in zk.sections.keys() {
        assert!(
            known.contains(&s.as_str()),
            "{client}: the scenario printed section `{s}` but no test compares it"
        );
    }
    for k in known {
        assert!(
            zk.sections.contains_key(*k),
            "{client}: no section `{k}` in the reference trace; stderr:\n{}",
            tail(&zk.stderr, 60)
        );
    }
}
