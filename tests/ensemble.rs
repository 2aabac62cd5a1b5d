//! Multi-process ensembles on loopback: real `corral server` processes, each
//! with its own zoo.cfg (`server.N` lines) and `myid`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    id: u64,
    client_port: u16,
    cfg: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_corral"))
                .arg("server")
                .arg(&self.cfg)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("corral starts"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn srvr(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(self.addr()) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"srvr");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn mode(&self) -> Option<String> {
        self.srvr()
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Ensemble {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Ensemble {
    /// `roles[i]` is "participant" or "observer"; server ids are 1..=n.
    fn new(roles: &[&str]) -> Ensemble {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = roles
            .iter()
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let mut servers = String::new();
        for (i, ((_, quorum, election), role)) in ports.iter().zip(roles).enumerate() {
            let suffix = if *role == "observer" { ":observer" } else { "" };
            servers.push_str(&format!(
                "server.{}=127.0.0.1:{quorum}:{election}{suffix}\n",
                i + 1
            ));
        }
        let mut nodes = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data = dir.path().join(format!("n{id}"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
            let cfg = dir.path().join(format!("zoo{id}.cfg"));
            let peer_type = if roles[i] == "observer" {
                "peerType=observer\n"
            } else {
                ""
            };
            std::fs::write(
                &cfg,
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                     clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{peer_type}{servers}",
                    data.display()
                ),
            )
            .unwrap();
            nodes.push(Node {
                id,
                client_port: *client,
                cfg,
                log: dir.path().join(format!("n{id}.log")),
                child: None,
            });
        }
        Ensemble { nodes, dir }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!("--- server {} ---\n", n.id));
            out.push_str(&std::fs::read_to_string(&n.log).unwrap_or_default());
        }
        out
    }

    /// Waits until exactly one running node says leader and every other
    /// running node says follower or observer.
    fn wait_for_quorum(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let modes: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|n| n.child.as_ref().and_then(|_| n.mode()))
                .collect();
            let running = self.nodes.iter().filter(|n| n.child.is_some()).count();
            let leaders: Vec<usize> = modes
                .iter()
                .enumerate()
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(i, _)| i)
                .collect();
            let serving = modes.iter().filter(|m| m.is_some()).count();
            if leaders.len() == 1 && serving == running {
                return leaders[0];
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no leader within 30 s; logs:\n{}", self.logs());
    }
}

async fn connect(addr: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_ensemble_forms_and_replicates_writes_from_any_server() {
    let mut e = Ensemble::new(&["participant", "participant", "participant"]);
    // Any start order works.
    for i in [2, 0, 1] {
        e.nodes[i].start();
        std::thread::sleep(Duration::from_millis(150));
    }
    let leader = tokio::task::block_in_place(|| e.wait_for_quorum());
    let follower = (leader + 1) % 3;
    let via_follower = connect(&e.nodes[follower].addr()).await;
    via_follower
        .create("/from-follower", b"f", &persistent())
        .await
        .unwrap();
    let via_leader = connect(&e.nodes[leader].addr()).await;
    via_leader
        .create("/from-leader", b"l", &persistent())
        .await
        .unwrap();
    for node in &e.nodes {
        let c = connect(&node.addr()).await;
        c.sync("/").await.unwrap();
        assert_eq!(c.get_data("/from-follower").await.unwrap().0, b"f");
        assert_eq!(c.get_data("/from-leader").await.unwrap().0, b"l");
    }
    let modes: Vec<String> = e.nodes.iter().filter_map(|n| n.mode()).collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| *m == "follower").count(),
        2,
        "{modes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write_and_keeps_live_ephemerals() {
    let mut e = Ensemble::new(&["participant", "participant", "participant"]);
    for n in e.nodes.iter_mut() {
        n.start();
    }
    let leader = tokio::task::block_in_place(|| e.wait_for_quorum());
    let survivor = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A session on a surviving server holds an ephemeral.
    let holder = connect(&e.nodes[survivor].addr()).await;
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    holder.create("/alive", b"", &eph).await.unwrap();
    let writer = connect(&e.nodes[other].addr()).await;
    let mut acked = Vec::new();
    for i in 0..50 {
        let path = format!("/w{i}");
        writer.create(&path, b"x", &persistent()).await.unwrap();
        acked.push(path);
    }
    let killed_at = Instant::now();
    e.nodes[leader].kill();
    let new_leader = tokio::task::block_in_place(|| e.wait_for_quorum());
    assert_ne!(new_leader, leader);
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "failover took {:?}",
        killed_at.elapsed()
    );
    let check = connect(&e.nodes[new_leader].addr()).await;
    for path in &acked {
        assert!(
            check.check_stat(path).await.unwrap().is_some(),
            "lost {path}\n{}",
            e.logs()
        );
    }
    assert!(
        check.check_stat("/alive").await.unwrap().is_some(),
        "live ephemeral lost"
    );
    // The killed server comes back and catches up.
    e.nodes[leader].start();
    tokio::task::block_in_place(|| e.wait_for_quorum());
    let back = connect(&e.nodes[leader].addr()).await;
    back.sync("/").await.unwrap();
    for path in &acked {
        assert!(
            back.check_stat(path).await.unwrap().is_some(),
            "restarted server lacks {path}"
        );
    }
    drop(holder);
}
