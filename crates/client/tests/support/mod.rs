//! Test harness for the client: every scenario runs against Apache ZooKeeper
//! 3.8 (Debian's `zookeeper` package, started in the foreground on a free
//! loopback port and killed on drop) and against an in-process Corral
//! server, and can put a cuttable TCP proxy between client and server.
//!
//! When ZooKeeper is not installed, the ZooKeeper half is skipped with a
//! notice, unless `CI` is set, where that is a failure.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{Client, SessionState};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// ZooKeeper ticks fast here so that session timeouts (2..20 ticks) are
/// short: 500 ms ticks allow 1 s..10 s sessions.
const TICK_MS: &str = "500";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials of a `super` user configured on both servers:
/// `superDigest = super:base64(sha1("super:su-pw"))`.
pub const SUPER_AUTH: &[u8] = b"super:su-pw";
const SUPER_DIGEST: &str = "super:hOlT89HEpwJu2c0asxrUJLQeP6c=";

/// A server to run a scenario against.
pub struct TestServer {
    pub name: &'static str,
    pub addr: SocketAddr,
    kind: Kind,
}

enum Kind {
    Zk(ApacheZk),
    Corral {
        server: Option<corral_server::RunningServer>,
        _dir: tempfile::TempDir,
    },
}

impl TestServer {
    /// `host:port` for a connect string.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// A client with a short session timeout (3 s).
    pub async fn client(&self) -> Client {
        self.client_with(Client::builder(), "").await
    }

    /// A client built from `builder`, with `suffix` (e.g. a chroot) after
    /// the address.
    pub async fn client_with(&self, builder: corral_client::ClientBuilder, suffix: &str) -> Client {
        let cs = format!("{}{suffix}", self.addr);
        builder
            .session_timeout(Duration::from_secs(3))
            .connect(&cs)
            .await
            .unwrap_or_else(|e| panic!("[{}] connect to {cs}: {e}", self.name))
    }

    /// The server's log so far (ZooKeeper only).
    pub fn log(&self) -> String {
        match &self.kind {
            Kind::Zk(zk) => zk.log_text(),
            Kind::Corral { .. } => String::new(),
        }
    }

    pub async fn stop(mut self) {
        if let Kind::Corral { server, .. } = &mut self.kind {
            if let Some(server) = server.take() {
                server.shutdown().await;
            }
        }
    }
}

/// Apache ZooKeeper (when available) and Corral, both fresh, in that order.
pub async fn servers() -> Vec<TestServer> {
    servers_with(&[]).await
}

/// Like [`servers`], with extra zoo.cfg settings for both.
pub async fn servers_with(extra: &[(&str, &str)]) -> Vec<TestServer> {
    let owned: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let zk = tokio::task::spawn_blocking(move || ApacheZk::try_start(&owned));
    let corral = start_corral(extra).await;
    let mut out = Vec::new();
    if let Some(zk) = zk.await.expect("zookeeper start task") {
        out.push(TestServer {
            name: "zookeeper",
            addr: zk.addr,
            kind: Kind::Zk(zk),
        });
    }
    out.push(corral);
    out
}

/// Apache ZooKeeper (when available) running as participant 1 of a quorum
/// of one with `extra` settings: the set-up reconfig needs.
pub async fn zookeeper_quorum_of_one(extra: &[(&str, &str)]) -> Option<TestServer> {
    let owned: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let zk = tokio::task::spawn_blocking(move || ApacheZk::try_start_as(&owned, Some(1)))
        .await
        .expect("zookeeper start task")?;
    Some(TestServer {
        name: "zookeeper",
        addr: zk.addr,
        kind: Kind::Zk(zk),
    })
}

/// Corral with `extra` zoo.cfg settings.
pub async fn corral_with(extra: &[(&str, &str)]) -> TestServer {
    start_corral(extra).await
}

/// Corral as member 1 of a one-member ensemble (a `server.1` line and
/// `myid`, as [`zookeeper_quorum_of_one`] runs ZooKeeper), with `extra`.
pub async fn corral_quorum_of_one(extra: &[(&str, &str)]) -> TestServer {
    let port = free_port();
    let member = format!(
        "127.0.0.1:{}:{}:participant;127.0.0.1:{port}",
        free_port(),
        free_port()
    );
    let port = port.to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("server.1", member.as_str()),
        ("clientPort", port.as_str()),
        ("admin.enableServer", "false"),
        ("standaloneEnabled", "false"),
        ("initLimit", "10"),
        ("syncLimit", "5"),
    ];
    all.extend_from_slice(extra);
    start_corral_as(&all, Some(1)).await
}

async fn start_corral(extra: &[(&str, &str)]) -> TestServer {
    start_corral_as(extra, None).await
}

async fn start_corral_as(extra: &[(&str, &str)], myid: Option<u32>) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    props.insert("tickTime".into(), TICK_MS.into());
    props.insert("dataDir".into(), dir.path().display().to_string());
    props.insert("clientPort".into(), "0".into());
    props.insert("clientPortAddress".into(), "127.0.0.1".into());
    props.insert("admin.enableServer".into(), "false".into());
    props.insert("4lw.commands.whitelist".into(), "*".into());
    props.insert("extendedTypesEnabled".into(), "true".into());
    props.insert("superDigest".into(), SUPER_DIGEST.into());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    let mut config = corral_server::config::ServerConfig::from_properties(&props).expect("config");
    // What `ServerConfig::load` reads from dataDir/myid.
    config.my_id = myid.map(u64::from);
    let server = corral_server::start(config).await.expect("corral starts");
    TestServer {
        name: "corral",
        addr: server.client_addr,
        kind: Kind::Corral {
            server: Some(server),
            _dir: dir,
        },
    }
}

/// Two distinct free loopback ports (a member's quorum and election ports).
pub fn free_port_pair() -> (u16, u16) {
    let first = free_port();
    loop {
        let second = free_port();
        if second != first {
            return (first, second);
        }
    }
}

/// A loopback port that was free a moment ago; never 2181.
pub fn free_port() -> u16 {
    loop {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if port != 2181 {
            return port;
        }
    }
}

fn four_letter(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut stream = StdStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(word.as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn zk_jar() -> PathBuf {
    std::env::var_os("CORRAL_ZK_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/zookeeper.jar"))
}

/// True when ZooKeeper can run here; otherwise a notice (or, under CI, a
/// panic).
fn zookeeper_available() -> bool {
    let jar = zk_jar();
    let java = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if jar.is_file() && java {
        return true;
    }
    let why = format!(
        "Apache ZooKeeper is not available (jar {} present: {}, java runs: {java}); \
         install it with `apt-get install -y zookeeper`",
        jar.display(),
        jar.is_file()
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("{why}");
    }
    eprintln!("SKIPPED the ZooKeeper half: {why}");
    false
}

/// A standalone ZooKeeper in its own process group, killed on drop.
pub struct ApacheZk {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl ApacheZk {
    fn try_start(extra: &[(String, String)]) -> Option<ApacheZk> {
        ApacheZk::try_start_as(extra, None)
    }

    /// With `quorum_of_one`, the server runs as participant 1 of a quorum
    /// (`standaloneEnabled=false`, a `server.1` line, `myid`), which is
    /// what reconfig needs: a standalone server cannot reconfigure.
    fn try_start_as(extra: &[(String, String)], quorum_of_one: Option<u32>) -> Option<ApacheZk> {
        use std::os::unix::process::CommandExt;
        if !zookeeper_available() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("corral-client-zk-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("dataDir");
        let mut extra = extra.to_vec();
        if let Some(id) = quorum_of_one {
            std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
            extra.push(("standaloneEnabled".into(), "false".into()));
            extra.push(("initLimit".into(), "10".into()));
            extra.push(("syncLimit".into(), "5".into()));
            extra.push((
                format!("server.{id}"),
                format!(
                    "127.0.0.1:{}:{}:participant;127.0.0.1:{port}",
                    free_port(),
                    free_port()
                ),
            ));
        }
        let mut cfg = format!(
            "tickTime={TICK_MS}\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n",
            data.display()
        );
        for (k, v) in &extra {
            cfg.push_str(&format!("{k}={v}\n"));
        }
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let mut classpath = zk_jar().display().to_string();
        if Path::new("/usr/share/java/slf4j-simple.jar").is_file() {
            classpath.push_str(":/usr/share/java/slf4j-simple.jar");
        }
        let log = dir.path().join("server.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log handle");
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            &format!("-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"),
            "-cp",
            &classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(&cfg_path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
        let child = cmd.spawn().expect("spawn java");
        let mut zk = ApacheZk {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            log,
            dir,
        };
        zk.wait_serving();
        Some(zk)
    }

    fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ZooKeeper exited at start ({status}):\n{}", self.log_text());
            }
            if four_letter(self.addr, "srvr").is_ok_and(|out| out.starts_with("Zookeeper version:"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not serve on {} within {START_TIMEOUT:?}:\n{}",
                self.addr,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ApacheZk {
    fn drop(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "ZooKeeper: test failed, keeping {}",
                self.dir.path().display()
            );
        }
    }
}

/// A TCP proxy in front of a server that a test can cut (close every
/// connection through it), freeze (keep the connections open but silent)
/// and block (refuse new connections).
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    blocked: bool,
    conns: Vec<(JoinHandle<()>, tokio::sync::watch::Sender<bool>)>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut st = accept_state.lock().unwrap();
                if st.blocked {
                    drop(inbound);
                    continue;
                }
                st.conns.retain(|(c, _)| !c.is_finished());
                let (frozen_tx, mut frozen) = tokio::sync::watch::channel(false);
                let conn = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let froze = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        _ = frozen.wait_for(|f| *f) => true,
                    };
                    if froze {
                        // Hold both sockets open, forwarding nothing.
                        std::future::pending::<()>().await;
                    }
                });
                st.conns.push((conn, frozen_tx));
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    /// Closes every connection through the proxy (both sides see EOF).
    pub fn cut(&self) {
        for (conn, _) in self.state.lock().unwrap().conns.drain(..) {
            conn.abort();
        }
    }

    /// Stops forwarding on the current connections, keeping them open (a
    /// hung server or a silent network); new connections work normally.
    pub fn freeze(&self) {
        for (_, frozen) in &self.state.lock().unwrap().conns {
            frozen.send_replace(true);
        }
    }

    /// While blocked, new connections are closed at once.
    pub fn set_blocked(&self, blocked: bool) {
        self.state.lock().unwrap().blocked = blocked;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Waits until `client` reaches `wanted` (panics after `timeout`).
pub async fn wait_state(client: &Client, wanted: SessionState, timeout: Duration) {
    let mut rx = client.state_watcher();
    let reached = tokio::time::timeout(timeout, rx.wait_for(|s| *s == wanted)).await;
    assert!(
        reached.is_ok(),
        "state {wanted:?} not reached within {timeout:?}; now {:?}",
        client.state()
    );
}
