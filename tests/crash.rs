//! Nothing acknowledged is ever lost: a `corral server` process is killed
//! with SIGKILL in the middle of a write load, restarted on the same data
//! directory, and every write that was acknowledged before the kill must be
//! there.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zookeeper_client as zk;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(cfg: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("server")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("corral starts")
}

fn wait_for_port(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("corral exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("corral did not listen on {addr}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    let log = dir.path().join("corral.log");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nsnapCount=500\nadmin.enableServer=false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();

    let mut acked_total: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut server = Killed(spawn_server(&cfg, &log));
        wait_for_port(addr, &mut server.0);
        let client = zk::Client::connect(&addr.to_string())
            .await
            .expect("connect");

        // Everything acknowledged in earlier rounds is still there.
        for path in &acked_total {
            assert!(
                client.check_stat(path).await.unwrap().is_some(),
                "acknowledged write {path} lost after SIGKILL; server log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if round == 0 {
            client
                .create(
                    "/crash",
                    b"",
                    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
                )
                .await
                .unwrap();
        }

        let acked = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for w in 0..8 {
            let client = client.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                for n in 0.. {
                    let path = format!("/crash/r{round}-w{w}-{n}");
                    match client.create(&path, b"payload-0123456789", &opts).await {
                        Ok(_) => acked.lock().push(path),
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        // SIGKILL mid-load.
        drop(server);
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(20), w).await;
        }
        let acked = std::mem::take(&mut *acked.lock());
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged before the kill"
        );
        acked_total.extend(acked);
    }

    let mut server = Killed(spawn_server(&cfg, &log));
    wait_for_port(addr, &mut server.0);
    let client = zk::Client::connect(&addr.to_string())
        .await
        .expect("connect");
    for path in &acked_total {
        assert!(
            client.check_stat(path).await.unwrap().is_some(),
            "acknowledged write {path} lost"
        );
    }
    let children = client.list_children("/crash").await.unwrap();
    assert!(children.len() >= acked_total.len());
}
