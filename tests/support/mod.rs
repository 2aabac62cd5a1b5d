//! Shared harness for integration tests: starts Apache ZooKeeper (the behavioural
//! reference, from Debian's `zookeeper` package) and Corral as real servers on free
//! loopback ports, and offers small clients to talk to them.
//!
//! Use it from a test file with `mod support;`. Every server lives in its own temp dir
//! (zoo.cfg, dataDir, captured stdout/stderr) and is killed when its handle is dropped.
//!
//! - [`ApacheZk`]: `java … QuorumPeerMain zoo.cfg` in the foreground (standalone).
//! - [`CorralServer`]: `corral server zoo.cfg`.
//! - [`Server`]: either of them behind one enum, picked by name (see [`Server::start_named`]).
//! - [`raw`]: a tiny blocking jute client that sends exactly the bytes a test asks for
//!   (invalid paths, raw createTTL, every multi result), which `zookeeper-client` cannot.
//! - [`connect`]: a `zookeeper-client` session, for tests that want a real client.
//! - [`ensemble`]: a multi-process Corral ensemble (`server.N` lines, `myid`), with kill,
//!   restart and mode queries.
#![allow(dead_code)]

pub mod ensemble;
pub mod raw;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to start answering `srvr`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Password of the `super` digest user configured on every server started here
/// (`superDigest=super:<base64 sha1("super:su-pw")>`); authenticating as
/// `super:su-pw` bypasses every ACL, which lets tests clean up.
pub const SUPER_AUTH: &str = "super:su-pw";
/// `DigestAuthenticationProvider.generateDigest("super:su-pw")`.
pub const SUPER_DIGEST: &str = "super:hOlT89HEpwJu2c0asxrUJLQeP6c=";

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release).
/// Never 2181, so a system ZooKeeper can't be hit by mistake.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if port != 2181 {
            return port;
        }
    }
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago: all held bound until the
/// last is picked, so the kernel cannot hand out one of them twice (as `free_port` called
/// `n` times may: a released port can come back at the next bind).
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        if listener.local_addr().expect("local_addr").port() != 2181 {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Sends a four-letter word (`srvr`, `ruok`, `mntr`, …) on a fresh connection and returns
/// everything the server writes before it closes the connection.
pub fn four_letter(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    assert_eq!(word.len(), 4, "four-letter words have four letters");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(word.as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Connects a `zookeeper-client` session to `addr` (session timeout 10 s).
pub async fn connect(addr: SocketAddr) -> zookeeper_client::Client {
    connect_with(addr, zookeeper_client::Client::connector()).await
}

/// Connects with a caller-configured connector (auth, timeouts, …).
pub async fn connect_with(
    addr: SocketAddr,
    connector: zookeeper_client::Connector,
) -> zookeeper_client::Client {
    connector
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(&addr.to_string())
        .await
        .unwrap_or_else(|e| panic!("zookeeper-client connect to {addr}: {e}"))
}

/// Where Debian's ZooKeeper lives: `CORRAL_ZK_HOME` (default `/usr/share/zookeeper`) and the
/// server jar `CORRAL_ZK_JAR` (default `/usr/share/java/zookeeper.jar`, whose manifest
/// lists its dependencies).
fn zk_jar() -> PathBuf {
    std::env::var_os("CORRAL_ZK_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/zookeeper.jar"))
}

/// True when Apache ZooKeeper can be started here. When it can't: under CI (env `CI` set)
/// this panics, because CI must run the differential tests; elsewhere it prints a notice
/// and returns false so the caller can skip.
pub fn zookeeper_available() -> bool {
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
         install it with `apt-get install -y zookeeper` (see .ci/run)",
        jar.display(),
        jar.is_file()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// What Apache ZooKeeper's AdminServer needs on the classpath (Debian's `libjetty9-java`,
/// `libservlet-api-java` and `libjackson2-databind-java`).
const ZK_ADMIN_JARS: &[&str] = &[
    "/usr/share/java/jetty9-server.jar",
    "/usr/share/java/jetty9-servlet.jar",
    "/usr/share/java/jetty9-security.jar",
    "/usr/share/java/jetty9-util.jar",
    "/usr/share/java/jetty9-http.jar",
    "/usr/share/java/jetty9-io.jar",
    "/usr/share/java/servlet-api.jar",
    "/usr/share/java/jackson-databind.jar",
    "/usr/share/java/jackson-core.jar",
    "/usr/share/java/jackson-annotations.jar",
];

/// Netty parts ZooKeeper's Netty connection factory needs beyond its manifest's
/// (Debian's `libnetty-java`, a dependency of its `zookeeper` package).
const ZK_NETTY_JARS: &[&str] = &[
    "/usr/share/java/netty-codec.jar",
    "/usr/share/java/netty-resolver.jar",
];

/// True when Apache ZooKeeper can run its AdminServer here (see [`ZK_ADMIN_JARS`]); as
/// [`zookeeper_available`], a panic under CI when it cannot.
pub fn zookeeper_admin_available() -> bool {
    if !zookeeper_available() {
        return false;
    }
    let missing: Vec<&str> = ZK_ADMIN_JARS
        .iter()
        .copied()
        .filter(|jar| !Path::new(jar).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "Apache ZooKeeper's AdminServer cannot run: missing {missing:?}; install \
         libjetty9-java, libservlet-api-java and libjackson2-databind-java (see .ci/run)"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Writes `zoo.cfg` into `dir` with the settings every test server shares, plus `extra`
/// lines (`key=value`), and returns its path.
fn write_zoo_cfg(dir: &Path, port: u16, extra: &[&str]) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create dataDir");
    let mut cfg = format!(
        "tickTime=2000\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n\
         4lw.commands.whitelist=*\n\
         admin.enableServer=false\n\
         extendedTypesEnabled=true\n\
         DigestAuthenticationProvider.superDigest={SUPER_DIGEST}\n",
        data.display()
    );
    for line in extra {
        cfg.push_str(line);
        cfg.push('\n');
    }
    let path = dir.join("zoo.cfg");
    std::fs::write(&path, cfg).expect("write zoo.cfg");
    path
}

/// Member 1 of a one-member ensemble, the set-up reconfig needs (a standalone
/// server cannot reconfigure): writes `myid` into the dataDir that
/// [`write_zoo_cfg`] uses and answers the zoo.cfg lines to add.
fn quorum_of_one_cfg(dir: &Path, client_port: u16) -> Vec<String> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create dataDir");
    std::fs::write(data.join("myid"), "1\n").expect("write myid");
    vec![
        "standaloneEnabled=false".into(),
        "initLimit=10".into(),
        "syncLimit=5".into(),
        format!(
            "server.1=127.0.0.1:{}:{}:participant;127.0.0.1:{client_port}",
            free_port(),
            free_port()
        ),
    ]
}

/// A child process in its own process group, killed (group and all) on drop.
struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = File::create(&log).expect("create server log");
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { child, name, log }
    }

    /// Waits until `srvr` on `addr` answers like a serving ZooKeeper. Panics with the
    /// server's log if it exits or does not answer in time.
    fn wait_serving(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited during start-up ({status}); its output:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if let Ok(out) = four_letter(addr, "srvr") {
                // ZooKeeper answers "This ZooKeeper instance is not currently serving
                // requests" while it loads; only the version line means ready.
                if out.starts_with("Zookeeper version:") {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer `srvr` on {addr} within {START_TIMEOUT:?}; its output:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<cannot read log: {e}>"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Kill the whole process group (the server and anything it started).
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A standalone Apache ZooKeeper 3.8 (Debian's package) on a free loopback port.
pub struct ApacheZk {
    proc_: Proc,
    addr: SocketAddr,
    cfg: PathBuf,
    dir: tempfile::TempDir,
}

impl ApacheZk {
    /// Starts ZooKeeper, or returns `None` when it is not installed and we are not under CI
    /// (a notice is printed; under CI this panics instead).
    pub fn try_start() -> Option<ApacheZk> {
        Self::try_start_with(&[])
    }

    pub fn try_start_with(extra_cfg: &[&str]) -> Option<ApacheZk> {
        Self::try_start_as(extra_cfg, false)
    }

    /// ZooKeeper as participant 1 of a quorum of one (`standaloneEnabled=false`,
    /// a `server.1` line and `myid`): a standalone server cannot reconfigure.
    pub fn try_start_quorum_of_one(extra_cfg: &[&str]) -> Option<ApacheZk> {
        Self::try_start_as(extra_cfg, true)
    }

    fn try_start_as(extra_cfg: &[&str], quorum_of_one: bool) -> Option<ApacheZk> {
        if !zookeeper_available() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("corral-zk-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut extra: Vec<String> = extra_cfg.iter().map(|l| l.to_string()).collect();
        if quorum_of_one {
            extra.extend(quorum_of_one_cfg(dir.path(), port));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let cfg = write_zoo_cfg(dir.path(), port, &extra);
        let mut classpath = zk_jar().display().to_string();
        // Debian ships slf4j-simple: with it ZooKeeper logs to the captured output instead
        // of printing "NOP logger" and nothing else.
        if Path::new("/usr/share/java/slf4j-simple.jar").is_file() {
            classpath.push_str(":/usr/share/java/slf4j-simple.jar");
        }
        // Its AdminServer runs on Jetty, which Debian's package leaves to the classpath
        // (loaded only when a test turns the admin server on); its Netty connection
        // factory (`serverCnxnFactory=…NettyServerCnxnFactory`, what TLS needs) wants
        // netty-codec, which the jar's manifest does not list.
        for jar in ZK_ADMIN_JARS.iter().chain(ZK_NETTY_JARS) {
            if Path::new(jar).is_file() {
                classpath.push(':');
                classpath.push_str(jar);
            }
        }
        let mut cmd = Command::new("java");
        // ZooKeeper reads some settings only as Java system properties, under names that
        // zoo.cfg can't reach (zoo.cfg `k=v` becomes `zookeeper.k`): pass `znode.*`,
        // `zookeeper.*`, `jute.*` and `java.security.*` (the JAAS file) lines from
        // `extra_cfg` as -D as well.
        for line in extra_cfg {
            if let Some((k, v)) = line.split_once('=') {
                let k = k.trim();
                if k.starts_with("znode.")
                    || k.starts_with("zookeeper.")
                    || k.starts_with("jute.")
                    || k.starts_with("java.security.")
                {
                    cmd.arg(format!("-D{k}={}", v.trim()));
                }
            }
        }
        cmd.args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            &format!("-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}"),
            "-cp",
            &classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(&cfg)
        .current_dir(dir.path());
        let mut proc_ = Proc::spawn("Apache ZooKeeper", cmd, dir.path().join("server.log"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        proc_.wait_serving(addr);
        Some(ApacheZk {
            proc_,
            addr,
            cfg,
            dir,
        })
    }

    /// Starts ZooKeeper; when it is not installed outside CI, prints a notice and returns
    /// `None` (callers `let Some(zk) = ApacheZk::start() else { return };`).
    pub fn start() -> Option<ApacheZk> {
        Self::try_start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cfg_path(&self) -> &Path {
        &self.cfg
    }

    /// Everything the server printed so far (slf4j-simple logs).
    pub fn log(&self) -> String {
        self.proc_.log_text()
    }
}

/// Corral (`corral server zoo.cfg`, the binary built from this package) on a free port.
pub struct CorralServer {
    proc_: Proc,
    addr: SocketAddr,
    cfg: PathBuf,
    dir: tempfile::TempDir,
}

impl CorralServer {
    pub fn start() -> CorralServer {
        Self::start_with(&[])
    }

    /// Starts Corral with extra `key=value` zoo.cfg lines. Panics (printing Corral's
    /// output) if it exits or does not answer `srvr` within 30 s. The binary is the one
    /// cargo built for this test, or `$CORRAL_BIN` when set.
    pub fn start_with(extra_cfg: &[&str]) -> CorralServer {
        Self::start_as(extra_cfg, false, &[])
    }

    /// As [`CorralServer::start_with`], with these environment variables set for the
    /// server (e.g. `TOKIO_WORKER_THREADS`).
    pub fn start_with_env(extra_cfg: &[&str], env: &[(&str, &str)]) -> CorralServer {
        Self::start_as(extra_cfg, false, env)
    }

    /// Corral as member 1 of a one-member ensemble (a `server.1` line and `myid`), as
    /// [`ApacheZk::try_start_quorum_of_one`] runs ZooKeeper.
    pub fn start_quorum_of_one(extra_cfg: &[&str]) -> CorralServer {
        Self::start_as(extra_cfg, true, &[])
    }

    fn start_as(extra_cfg: &[&str], quorum_of_one: bool, env: &[(&str, &str)]) -> CorralServer {
        let dir = tempfile::Builder::new()
            .prefix("corral-srv-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut extra: Vec<String> = extra_cfg.iter().map(|l| l.to_string()).collect();
        if quorum_of_one {
            extra.extend(quorum_of_one_cfg(dir.path(), port));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let cfg = write_zoo_cfg(dir.path(), port, &extra);
        // CORRAL_BIN runs another build (e.g. target/release/corral) under the same tests.
        let bin = std::env::var_os("CORRAL_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_corral")));
        let mut cmd = Command::new(bin);
        cmd.arg("server").arg(&cfg).current_dir(dir.path());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // The log goes to a file: no ANSI colours.
        cmd.env("NO_COLOR", "1");
        cmd.envs(env.iter().copied());
        let mut proc_ = Proc::spawn("corral server", cmd, dir.path().join("server.log"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        proc_.wait_serving(addr);
        CorralServer {
            proc_,
            addr,
            cfg,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cfg_path(&self) -> &Path {
        &self.cfg
    }

    /// Corral's stdout and stderr so far (print it when a test fails).
    pub fn log(&self) -> String {
        self.proc_.log_text()
    }
}

/// When a test fails (the thread is unwinding), keep the server's directory (zoo.cfg, data,
/// server.log) instead of deleting it, and say where it is.
fn keep_dir_if_panicking(name: &str, dir: &mut tempfile::TempDir) {
    if std::thread::panicking() {
        dir.disable_cleanup(true);
        eprintln!(
            "{name}: test failed, keeping {} (zoo.cfg, data/, server.log)",
            dir.path().display()
        );
    }
}

impl Drop for ApacheZk {
    fn drop(&mut self) {
        keep_dir_if_panicking("Apache ZooKeeper", &mut self.dir);
    }
}

impl Drop for CorralServer {
    fn drop(&mut self) {
        keep_dir_if_panicking("corral server", &mut self.dir);
    }
}

/// Either server, or a Corral ensemble, for tests that run the same thing against each.
pub enum Server {
    Zk(ApacheZk),
    Corral(CorralServer),
    /// Three Corral participants ([`ensemble::Ensemble`]), with the settings every test
    /// server shares.
    CorralEnsemble(ensemble::Ensemble),
}

impl Server {
    /// `"zookeeper"` → [`ApacheZk`], `"corral"` → [`CorralServer`], `"corral-ensemble"` →
    /// a 3-node [`ensemble::Ensemble`] with a leader elected. `None` when ZooKeeper is
    /// wanted but not installed outside CI (the test should then skip).
    pub fn start_named(name: &str, extra_cfg: &[&str]) -> Option<Server> {
        match name {
            "zookeeper" | "zk" => ApacheZk::try_start_with(extra_cfg).map(Server::Zk),
            "corral" => Some(Server::Corral(CorralServer::start_with(extra_cfg))),
            "corral-ensemble" => {
                // The lines write_zoo_cfg gives a single server, except tickTime: the
                // ensemble keeps its short tick (quick elections) and allows ZooKeeper's
                // default maximum session timeout, so sessions negotiate alike.
                let digest = format!("DigestAuthenticationProvider.superDigest={SUPER_DIGEST}");
                let mut cfg = vec![
                    "maxSessionTimeout=40000",
                    "extendedTypesEnabled=true",
                    digest.as_str(),
                ];
                cfg.extend_from_slice(extra_cfg);
                let mut e = ensemble::Ensemble::participants(3, &cfg);
                e.start_all();
                Some(Server::CorralEnsemble(e))
            }
            other => panic!(
                "unknown server kind {other:?} (want `zookeeper`, `corral` or `corral-ensemble`)"
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Server::Zk(_) => "zookeeper",
            Server::Corral(_) => "corral",
            Server::CorralEnsemble(_) => "corral-ensemble",
        }
    }

    /// The (first) server's client address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs()[0]
    }

    /// Every server's client address (one, except for an ensemble).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        match self {
            Server::Zk(s) => vec![s.addr()],
            Server::Corral(s) => vec![s.addr()],
            Server::CorralEnsemble(e) => e.addrs(),
        }
    }

    pub fn log(&self) -> String {
        match self {
            Server::Zk(s) => s.log(),
            Server::Corral(s) => s.log(),
            Server::CorralEnsemble(e) => e.logs(),
        }
    }

    /// The last `n` lines of the log (of each server's log, for an ensemble), headed by
    /// where the whole log is.
    pub fn log_tail(&self, n: usize) -> String {
        match self {
            Server::CorralEnsemble(e) => e.log_tails(n),
            _ => {
                let log = self.log();
                let lines: Vec<&str> = log.lines().collect();
                let mut out = format!("({})\n", self.dir().join("server.log").display());
                for l in &lines[lines.len().saturating_sub(n)..] {
                    out.push_str(l);
                    out.push('\n');
                }
                out
            }
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Server::Zk(s) => s.dir(),
            Server::Corral(s) => s.dir(),
            Server::CorralEnsemble(e) => e.dir(),
        }
    }
}

/// One HTTP/1.1 request; the status code and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// `GET /commands/<name>` of an admin server, as JSON.
pub fn admin_command(addr: SocketAddr, name: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", &format!("/commands/{name}"));
    assert_eq!(status, 200, "{name}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {body}"))
}

/// Where a server says its admin server listens (`admin.serverPort=0` picks a free port).
pub fn admin_addr_in_log(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|l| l.contains("admin server listening"))
        .find_map(|l| l.split("admin_addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}
