//! A replica process killed with SIGKILL loses nothing it had applied (applied means committed,
//! and committed means fsynced first). The test binary re-runs itself as the child.

mod common;

use std::io::BufRead;
use std::io::BufReader;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use corral_replication::Applier;
use corral_replication::Replica;
use corral_replication::ReplicaConfig;

const CHILD_DIR_ENV: &str = "CORRAL_REPLICATION_CRASH_CHILD_DIR";
const CHILD_ROUND_ENV: &str = "CORRAL_REPLICATION_CRASH_CHILD_ROUND";

fn config(dir: &std::path::Path) -> ReplicaConfig {
    let mut cfg = ReplicaConfig::standalone(1, dir.join("data"), dir.join("datalog"));
    cfg.segment_max_bytes = 8192;
    cfg.snap_count = 300;
    cfg.logs_kept_after_snapshot = 50;
    cfg
}

/// Prints every applied payload on stdout: what the parent sees was applied, hence committed.
struct PrintingApplier(common::VecApplier);

impl Applier for PrintingApplier {
    fn apply(&self, term: u64, index: u64, payload: &[u8]) {
        self.0.apply(term, index, payload);
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "applied {}", String::from_utf8_lossy(payload));
        let _ = out.flush();
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.snapshot()
    }

    fn restore(&self, data: &[u8]) -> Result<(), String> {
        self.0.restore(data)?;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for p in self.0.payloads() {
            let _ = writeln!(out, "applied {}", String::from_utf8_lossy(&p));
        }
        let _ = out.flush();
        Ok(())
    }
}

/// The child: proposes forever until killed (or gives up after a while).
#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return; // Only meaningful as the child of the test below.
    };
    let round: u64 = std::env::var(CHILD_ROUND_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let applier = Arc::new(PrintingApplier(common::VecApplier::default()));
        let replica = Replica::open(config(std::path::Path::new(&dir)), applier)
            .await
            .unwrap();
        let started = Instant::now();
        let mut i = 0u64;
        while started.elapsed() < Duration::from_secs(30) {
            replica
                .propose(Bytes::from(format!("r{round}-{i}")))
                .await
                .unwrap();
            i += 1;
            if i & 15 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_entries_survive_sigkill_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen: Vec<String> = Vec::new();
    for (round, kill_after) in [(0u64, 150usize), (1, 500), (2, 1200)] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut applied = Vec::new();
        let start_of_round = seen.len();
        while let Some(Ok(line)) = lines.next() {
            // libtest prints "test crash_child_process ... " without a newline first.
            if let Some(pos) = line.find("applied ") {
                applied.push(line[pos + "applied ".len()..].to_string());
                if applied.len() >= start_of_round + kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        // The child first replayed everything from earlier rounds.
        assert!(
            applied.len() > start_of_round,
            "round {round}: the child applied nothing"
        );
        assert_eq!(
            &applied[..start_of_round],
            &seen[..],
            "round {round}: replay differs"
        );
        seen = applied;

        let applier = Arc::new(common::VecApplier::default());
        let replica = Replica::open(config(dir.path()), applier.clone())
            .await
            .unwrap();
        let recovered: Vec<String> = applier
            .payloads()
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert!(
            recovered.len() >= seen.len(),
            "round {round}: {} entries were applied before the kill but only {} recovered",
            seen.len(),
            recovered.len()
        );
        assert_eq!(
            &recovered[..seen.len()],
            &seen[..],
            "round {round}: recovered log differs; first recovered entries: {:?}",
            &applier.entries()[..3]
        );
        // What was committed but not yet seen by us is kept too: it is the new baseline.
        seen = recovered;
        replica.shutdown().await.unwrap();
    }
}
