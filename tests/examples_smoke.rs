//! Smoke test of the runnable examples in `examples/`: an in-process Corral
//! server, and each example binary run against it (as a user would run
//! `cargo run --example NAME -- host:port`), which must finish on its own,
//! successfully, within a minute, printing its closing `done:` line.
//!
//! `cargo test` builds the examples next to the test binaries
//! (`target/<profile>/examples/`); when one is missing or older than its
//! source (e.g. `cargo test --test examples_smoke` alone), this test builds
//! them with `cargo build --examples` first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

const EXAMPLES: &[&str] = &[
    "config_push",
    "service_discovery",
    "master_election",
    "locks",
    "id_generator",
    "kafka_brokers",
    "dubbo_registry",
];

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// `target/<profile>/examples`, from this test binary's own path
/// (`target/<profile>/deps/examples_smoke-…`).
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    profile_dir.join("examples")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// True when `name`'s binary is missing or older than its source.
fn stale(dir: &Path, name: &str) -> bool {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    match (modified(&dir.join(name)), modified(&source)) {
        (Some(binary), Some(source)) => binary < source,
        _ => true,
    }
}

async fn build_examples(profile_is_release: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = tokio::process::Command::new(cargo);
    cmd.args(["build", "--examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if profile_is_release {
        cmd.arg("--release");
    }
    eprintln!("building the examples: {cmd:?}");
    let status = tokio::time::timeout(BUILD_TIMEOUT, cmd.status())
        .await
        .expect("cargo build --examples finishes")
        .expect("cargo runs");
    assert!(status.success(), "cargo build --examples failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_to_completion_against_corral() {
    let dir = examples_dir();
    if EXAMPLES.iter().any(|name| stale(&dir, name)) {
        let release = dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|p| p == "release");
        build_examples(release).await;
    }

    let data = tempfile::tempdir().expect("tempdir");
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    props.insert("tickTime".into(), "500".into());
    props.insert("dataDir".into(), data.path().display().to_string());
    props.insert("clientPort".into(), "0".into());
    props.insert("clientPortAddress".into(), "127.0.0.1".into());
    props.insert("admin.enableServer".into(), "false".into());
    let config = corral_server::config::ServerConfig::from_properties(&props).expect("config");
    let server = corral_server::start(config).await.expect("server starts");
    let addr = server.client_addr.to_string();

    let mut failures = Vec::new();
    for name in EXAMPLES {
        let binary = dir.join(name);
        let started = std::time::Instant::now();
        let run = tokio::process::Command::new(&binary)
            .arg(&addr)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let outcome = match tokio::time::timeout(RUN_TIMEOUT, run).await {
            Err(_) => Err(format!("did not finish within {RUN_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("cannot run {}: {e}", binary.display())),
            Ok(Ok(out)) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                if !out.status.success() {
                    Err(format!("exited with {}\n{stdout}\n{stderr}", out.status))
                } else if !stdout.lines().any(|l| l.starts_with("done:")) {
                    Err(format!("no `done:` line\n{stdout}\n{stderr}"))
                } else {
                    Ok(())
                }
            }
        };
        eprintln!(
            "example {name}: {} in {:.1}s",
            if outcome.is_ok() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if let Err(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
    }
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "examples failed:\n{}",
        failures.join("\n\n")
    );
}
