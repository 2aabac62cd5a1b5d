//! Multi-process Corral ensembles on loopback: real `corral server zoo.cfg` processes,
//! each with its own zoo.cfg (ZooKeeper-style `server.N=127.0.0.1:quorum:election[:observer]`
//! lines) and a `myid` file in its dataDir. The quorum port carries Corral's Raft RPCs; the
//! election port is allocated but unused, as in the zoo.cfg of a real ZooKeeper ensemble.
//!
//! Each server logs to `<dir>/n<id>.log` (appended to across restarts, with a marker line
//! per start). When the test fails, the ensemble's directory is kept and its path printed.
//! Every server is killed with SIGKILL when the [`Ensemble`] is dropped.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{four_letter, free_ports};

/// What a server is in the ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Votes and may lead (`server.N=host:q:e`).
    Participant,
    /// Replicates and serves clients, never votes (`server.N=host:q:e:observer`, plus
    /// `peerType=observer` in its own zoo.cfg).
    Observer,
}

/// One server of an [`Ensemble`].
pub struct Node {
    /// Its `myid` (1-based).
    pub id: u64,
    pub role: Role,
    pub client_addr: SocketAddr,
    pub quorum_port: u16,
    pub cfg: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A four-letter word's output, or "" when the server does not answer.
    pub fn four_letter(&self, word: &str) -> String {
        four_letter(self.client_addr, word).unwrap_or_default()
    }

    /// The `Mode:` line of `srvr` (`leader`, `follower`, `observer`), or `None` when the
    /// server does not answer or is not serving.
    pub fn mode(&self) -> Option<String> {
        self.four_letter("srvr")
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
    }

    /// `mntr` as key → value.
    pub fn mntr(&self) -> std::collections::BTreeMap<String, String> {
        self.four_letter("mntr")
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The `Zxid: 0x…` line of `srvr`.
    pub fn zxid(&self) -> Option<i64> {
        self.four_letter("srvr").lines().find_map(|l| {
            l.strip_prefix("Zxid: 0x")
                .and_then(|h| i64::from_str_radix(h.trim(), 16).ok())
        })
    }

    fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "server {} is already running",
            self.id
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let _ = writeln!(log, "===== test harness: starting server {} =====", self.id);
        let err = log.try_clone().expect("clone log handle");
        // CORRAL_BIN runs another build (e.g. target/release/corral) under the same tests.
        let bin = std::env::var_os("CORRAL_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_corral")));
        let mut cmd = Command::new(bin);
        cmd.arg("server")
            .arg(&self.cfg)
            .current_dir(&self.data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        if std::env::var_os("CORRAL_LOG").is_none() {
            cmd.env("CORRAL_LOG", "info");
        }
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start corral server {}: {e}", self.id)),
        );
    }

    /// SIGKILL: no shutdown, no flush; what is not fsynced is gone.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as an operator stops a server, and waits for it to exit (SIGKILL after 20 s).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: the process stays, but stops answering (a hung server).
    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }
}

/// A Corral ensemble of separate processes. Server `i` (0-based index) has `myid` `i + 1`.
pub struct Ensemble {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Ensemble {
    /// Writes the configs of an ensemble (nothing started). `extra_cfg` lines go into every
    /// server's zoo.cfg. tickTime is 200 ms (elections within about a second), unless
    /// `extra_cfg` sets it.
    pub fn new(roles: &[Role], extra_cfg: &[&str]) -> Ensemble {
        let dir = tempfile::Builder::new()
            .prefix("corral-ensemble-")
            .tempdir()
            .expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = free_ports(3 * roles.len())
            .chunks(3)
            .map(|p| (p[0], p[1], p[2]))
            .collect();
        let mut servers = String::new();
        for (i, ((_, quorum, election), role)) in ports.iter().zip(roles).enumerate() {
            let suffix = if *role == Role::Observer {
                ":observer"
            } else {
                ""
            };
            servers.push_str(&format!(
                "server.{}=127.0.0.1:{quorum}:{election}{suffix}\n",
                i + 1
            ));
        }
        let sets_tick = extra_cfg.iter().any(|l| l.starts_with("tickTime="));
        let mut nodes = Vec::new();
        for (i, &(client, quorum, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = dir.path().join(format!("n{id}"));
            std::fs::create_dir_all(&data_dir).expect("create dataDir");
            std::fs::write(data_dir.join("myid"), format!("{id}\n")).expect("write myid");
            let mut cfg_text = String::new();
            if !sets_tick {
                cfg_text.push_str("tickTime=200\n");
            }
            cfg_text.push_str(&format!(
                "initLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n",
                data_dir.display()
            ));
            if roles[i] == Role::Observer {
                cfg_text.push_str("peerType=observer\n");
            }
            for l in extra_cfg {
                cfg_text.push_str(l);
                cfg_text.push('\n');
            }
            cfg_text.push_str(&servers);
            let cfg = dir.path().join(format!("zoo{id}.cfg"));
            std::fs::write(&cfg, cfg_text).expect("write zoo.cfg");
            nodes.push(Node {
                id,
                role: roles[i],
                client_addr: ([127, 0, 0, 1], client).into(),
                quorum_port: quorum,
                cfg,
                data_dir,
                log: dir.path().join(format!("n{id}.log")),
                child: None,
            });
        }
        Ensemble { nodes, dir }
    }

    /// `n` participants.
    pub fn participants(n: usize, extra_cfg: &[&str]) -> Ensemble {
        Ensemble::new(&vec![Role::Participant; n], extra_cfg)
    }

    /// Starts every server and waits for a leader; returns the leader's index.
    pub fn start_all(&mut self) -> usize {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
        self.wait_for_leader(Duration::from_secs(30))
    }

    pub fn start(&mut self, i: usize) {
        self.nodes[i].start();
    }

    /// SIGKILL server `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// SIGTERM server `i` and wait for it to exit.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// SIGSTOP server `i` (it keeps its sockets but answers nothing).
    pub fn pause(&self, i: usize) {
        self.nodes[i].signal("-STOP");
    }

    /// SIGCONT server `i`.
    pub fn resume(&self, i: usize) {
        self.nodes[i].signal("-CONT");
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].client_addr
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client_addr).collect()
    }

    /// `host:port,host:port,…` of the given servers, for a client that fails over.
    pub fn connect_string(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| self.addr(i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every server's address, comma separated.
    pub fn connect_string_all(&self) -> String {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.connect_string(&all)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }

    /// Modes of all servers (`None` for stopped or not serving).
    pub fn modes(&self) -> Vec<Option<String>> {
        self.nodes
            .iter()
            .map(|n| if n.is_running() { n.mode() } else { None })
            .collect()
    }

    /// Index of the server that says `Mode: leader`, if exactly one running server does.
    pub fn leader(&self) -> Option<usize> {
        let modes = self.modes();
        let leaders: Vec<usize> = (0..modes.len())
            .filter(|&i| modes[i].as_deref() == Some("leader"))
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Waits until exactly one running server says leader and every other running server
    /// is serving in its configured role (participants `follower`, observers `observer`).
    /// Panics with every server's log on timeout.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        self.try_wait_for_leader(timeout).unwrap_or_else(|| {
            panic!(
                "no single leader with every running server serving within {timeout:?} \
                 (modes {:?}); logs:\n{}",
                self.modes(),
                self.logs()
            )
        })
    }

    pub fn try_wait_for_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let modes = self.modes();
            let running = self.running();
            let leaders: Vec<usize> = running
                .iter()
                .copied()
                .filter(|&i| modes[i].as_deref() == Some("leader"))
                .collect();
            let in_role = |i: usize| {
                matches!(
                    (self.nodes[i].role, modes[i].as_deref()),
                    (Role::Participant, Some("leader" | "follower"))
                        | (Role::Observer, Some("observer"))
                )
            };
            if leaders.len() == 1 && running.iter().all(|&i| in_role(i)) {
                return Some(leaders[0]);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running server reports the same `srvr` zxid, at least `min`.
    pub fn wait_for_zxid(&self, min: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let z: Vec<Option<i64>> = self
                .running()
                .iter()
                .map(|&i| self.nodes[i].zxid())
                .collect();
            if z.iter().all(|z| z.is_some_and(|z| z >= min)) && z.windows(2).all(|w| w[0] == w[1]) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Every server's log, one after another.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!(
                "--- server {} ({}) ---\n{}",
                n.id,
                n.log.display(),
                self.log(i)
            ));
        }
        out
    }

    /// The last `n` lines of every server's log.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- server {} ({}) ---\n",
                node.id,
                node.log.display()
            ));
            for l in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "ensemble: test failed, keeping {} (zoo<N>.cfg, n<N>/ data, n<N>.log)",
                self.dir.path().display()
            );
        }
    }
}
