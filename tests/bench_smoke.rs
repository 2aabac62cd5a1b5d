//! `corral bench` keeps working: a real `corral server` process on a free
//! loopback port, and `corral bench … --json` against it for about a second
//! per operation. Checks that the JSON parses and operations completed; no
//! timing assertions (the machine is shared).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corral_bench::RunReport;

mod support;

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                 maxClientCnxns=0\n4lw.commands.whitelist=*\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("server")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("corral server starts");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "corral server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Runs `corral bench --hosts <addr> <args> --json --server-pid <pid>`.
    fn bench(&self, args: &[&str]) -> RunReport {
        let pid = self.child.id().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("bench")
            .args(["--hosts", &self.addr, "--json", "--server-pid", &pid])
            .args(args)
            .output()
            .expect("corral bench runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "corral bench {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        RunReport::from_json(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
    }

    /// `zk_znode_count` from the server's `mntr`.
    fn znode_count(&self) -> u64 {
        let addr = self.addr.parse().expect("a socket address");
        let text = support::four_letter(addr, "mntr").expect("mntr");
        text.lines()
            .find_map(|line| line.strip_prefix("zk_znode_count\t"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no zk_znode_count in {text:?}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SHORT: [&str; 8] = [
    "--sessions",
    "2",
    "--inflight",
    "4",
    "--duration",
    "1",
    "--warmup",
    "0.2",
];

#[test]
fn bench_reports_throughput_latency_and_server_cpu_as_json() {
    let server = Server::start();
    for op in ["get", "create", "set", "mixed"] {
        let r = server.bench(&[&["--op", op][..], &SHORT[..]].concat());
        assert_eq!(r.op, op);
        assert!(r.ops > 0, "{op}: no operation completed: {r:?}");
        assert!(r.throughput_ops_s > 0.0);
        let l = r.latency_us.expect("latency percentiles");
        assert!(l.p50 <= l.p99 && l.p99 <= l.max);
        let s = r.server.expect("server usage");
        assert!(s.rss_bytes > 0);
    }
}

#[test]
fn bench_delete_removes_nodes_it_created_first() {
    let server = Server::start();
    // Enough nodes that the warm-up cannot delete them all on a fast machine.
    let r = server.bench(&[&["--op", "delete", "--count", "5000"][..], &SHORT[..]].concat());
    assert!(r.ops > 0 && r.errors == 0, "{r:?}");
    assert!(r.ops <= 5000);
}

#[test]
fn create_and_delete_runs_leave_the_tree_as_they_found_it_unless_asked_to_keep_their_nodes() {
    let server = Server::start();
    // The first run makes /corral-bench itself, which stays.
    server.bench(&[&["--op", "get"][..], &SHORT[..]].concat());
    let before = server.znode_count();
    let created = server.bench(&[&["--op", "create"][..], &SHORT[..]].concat());
    assert!(created.ops > 0, "{created:?}");
    let deleted = server.bench(&[&["--op", "delete", "--count", "20000"][..], &SHORT[..]].concat());
    assert!(deleted.ops > 0, "{deleted:?}");
    assert_eq!(
        server.znode_count(),
        before,
        "create and delete cleaned up after themselves"
    );

    let kept = server.bench(&[&["--op", "create", "--keep-nodes"][..], &SHORT[..]].concat());
    assert!(kept.ops > 0 && kept.cleanup_s == 0.0, "{kept:?}");
    assert!(
        server.znode_count() > before + kept.ops,
        "--keep-nodes keeps them"
    );
}

#[test]
fn bench_watch_fanout_notifies_every_watcher_and_probe_reads() {
    let server = Server::start();
    let r = server.bench(&["--op", "watch-fanout", "--sessions", "20", "--rounds", "2"]);
    let f = r.fanout.expect("fan-out figures");
    assert_eq!(f.rounds_ms.len(), 2);
    assert_eq!(f.missed, 0);
    assert_eq!(r.ops, 40);

    let fill = server.bench(&["--op", "fill", "--count", "50", "--sessions", "2"]);
    assert_eq!(fill.ops, 50);
    let probe = server.bench(&["--op", "probe", "--path", "/corral-bench/fill/p0/n49"]);
    assert!(probe.probe_ms.is_some());
}
