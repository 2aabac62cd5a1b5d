//! The Corral server: reads zoo.cfg, opens the replicated log, applies it to
//! the tree, and serves ZooKeeper clients on the client port.
//!
//! Request path (see docs/ARCHITECTURE.md): `listener` accepts, `connection`
//! frames and decodes, `read_path` answers reads from the local tree,
//! `write_path` turns writes into log entries, `replicate` commits them and
//! `apply` applies them on every server, firing watches and replying.

pub mod admin;
pub mod apply;
pub mod config;
pub mod connection;
pub mod core;
pub mod entry;
pub mod fourlw;
pub mod housekeeping;
pub mod read_path;
pub mod reconfig;
pub mod replicate;
pub mod sasl;
pub mod session;
pub mod stats;
pub mod tls;
pub mod watch;
pub mod write_path;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use corral_tree::{DataTree, TreeConfig};
use parking_lot::Mutex;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::core::{Core, Shared};
use crate::session::{initial_session_id, SessionTracker};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("replication: {0}")]
    Replication(String),
    #[error("secureClientPort: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("SASL: {0}")]
    Sasl(#[from] sasl::SaslConfigError),
}

impl Shared {
    /// `standalone`, `leader`, `follower` or `observer`.
    pub fn mode(&self) -> &'static str {
        replicate::mode_of(self)
    }

    /// Whether clients may be served: this server is in a working quorum
    /// (a leader acknowledged by a quorum, or a member that hears from its
    /// leader; always true standalone once started).
    pub fn is_serving(&self) -> bool {
        self.replica.get().is_some_and(|r| r.in_quorum())
            && (self.config.servers.is_empty() || replicate::joined(self))
    }

    /// Cut off from its quorum with `readonlymode.enabled`: the server takes
    /// read-only clients (ZooKeeper runs its ReadOnlyZooKeeperServer then).
    pub fn is_read_only(&self) -> bool {
        !self.is_serving() && self.config.readonly_mode_enabled && !self.config.servers.is_empty()
    }

    /// Only the leader expires sessions and reaps containers.
    pub fn is_leader(&self) -> bool {
        self.replica.get().is_some_and(|r| r.is_leader())
    }
}

/// A running server: its client address and a handle to stop it.
pub struct RunningServer {
    pub client_addr: SocketAddr,
    /// Where TLS clients connect (`secureClientPort`), when configured.
    pub secure_client_addr: Option<SocketAddr>,
    /// Where the admin HTTP server listens, when it is on and got its port.
    pub admin_addr: Option<SocketAddr>,
    /// Where Prometheus metrics are served (`metricsProvider.*`), when on.
    pub metrics_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    replica: replicate::ReplicaHandle,
}

impl RunningServer {
    /// Stops accepting, stops timers and shuts the log down cleanly.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.replica.shutdown().await;
    }
}

/// Starts a server and returns once it listens.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    for dir in [&config.data_dir, &config.data_log_dir] {
        std::fs::create_dir_all(dir).map_err(|source| ServerError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    // Stores are read (and refused, with the reason) before anything is served.
    let secure = match &config.secure_client {
        Some(secure) => Some((secure, tls::acceptor(secure)?)),
        None => None,
    };
    let server_id = config.my_id.unwrap_or(0);
    let tree = DataTree::new(TreeConfig {
        extended_types_enabled: config.extended_types_enabled,
        enforce_quota: config.enforce_quota,
        sasl_acls: config.sasl_acls,
        x509_acls: config.secure_client.is_some(),
        skip_acl: config.skip_acl,
    });
    let tracker = SessionTracker::new(Duration::from_millis(config.tick_time_ms as u64));
    let core = Core::new(
        tree,
        tracker,
        initial_session_id(server_id, write_path::wall_clock_ms()),
    );
    let sasl = match &config.jaas_config {
        Some(path) => sasl::SaslAccounts::load(path, &config.sasl_section)?,
        None => None,
    };
    let shared = Arc::new(Shared::new(config.clone(), server_id, core, sasl));

    let replica = replicate::open(shared.clone()).await?;
    {
        // Sessions recovered from the log get a full timeout to reconnect.
        let mut core = shared.core.lock();
        install_config_node(&config, &mut core);
        let recovered: Vec<(i64, i32)> = core.tree.sessions().collect();
        for (id, timeout) in recovered {
            if core.sessions.get(id).is_none() {
                core.sessions.add(id, timeout, None);
            }
        }
    }

    let (listener, client_addr) = bind(SocketAddr::new(
        config.client_port_address,
        config.client_port,
    ))
    .await?;
    // Both ports listen before either is announced: a client told the server serves finds
    // the TLS port open too.
    let secure_listener = match secure {
        Some((secure, acceptor)) => {
            let (listener, bound) = bind(SocketAddr::new(secure.address, secure.port)).await?;
            tracing::info!(secure_client_addr = %bound, client_auth = ?secure.client_auth, "serving TLS clients");
            Some((listener, bound, acceptor))
        }
        None => None,
    };
    tracing::info!(
        client_addr = %client_addr,
        data_dir = %config.data_dir.display(),
        data_log_dir = %config.data_log_dir.display(),
        mode = shared.mode(),
        zxid = format_args!("{:#x}", shared.core.lock().tree.last_zxid()),
        "corral serving"
    );
    // maxClientCnxns counts a client address's connections on both ports.
    let per_ip: ConnectionCounts = Arc::default();
    let mut tasks = vec![
        tokio::spawn(accept_loop(shared.clone(), listener, None, per_ip.clone())),
        tokio::spawn(housekeeping::expire_sessions(shared.clone())),
        tokio::spawn(housekeeping::reap_containers(shared.clone())),
    ];
    let mut admin_addr = None;
    if let Some((bound, task)) = admin::start(shared.clone()).await {
        admin_addr = Some(bound);
        tasks.push(task);
    }
    let mut metrics_addr = None;
    if let Some((bound, task)) = admin::start_prometheus(shared.clone()).await {
        metrics_addr = Some(bound);
        tasks.push(task);
    }
    let mut secure_client_addr = None;
    if let Some((listener, bound, acceptor)) = secure_listener {
        secure_client_addr = Some(bound);
        tasks.push(tokio::spawn(accept_loop(
            shared.clone(),
            listener,
            Some(acceptor),
            per_ip,
        )));
    }
    Ok(RunningServer {
        secure_client_addr,
        admin_addr,
        metrics_addr,
        client_addr,
        shared,
        tasks,
        replica,
    })
}

/// Puts the ensemble's membership into `/zookeeper/config`, as ZooKeeper
/// does from its configuration at start-up (no transaction, no zxid) —
/// unless a reconfig has written it since (the log or snapshot then holds
/// the newer configuration, which zoo.cfg does not).
pub fn install_config_node(config: &ServerConfig, core: &mut Core) {
    let reconfigured = core
        .tree
        .stat(reconfig::CONFIG_NODE)
        .is_some_and(|s| s.mzxid != 0);
    if !config.servers.is_empty() && !reconfigured {
        core.tree
            .set_config_node(config.dynamic_config_text(0).as_bytes());
    }
}

/// Runs a server until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let server = start(config).await?;
    let shared = server.shared.clone();
    let outcome = tokio::select! {
        _ = wait_for_signal() => Ok(()),
        // A log that can no longer be written (disk error, files removed
        // under us) stops the replica; serving on without it would refuse
        // every write, so stop loudly instead.
        _ = replica_stopped(&shared) => Err(ServerError::Replication(
            "the replicated log stopped after a fatal error (see the log above); \
             the server cannot accept writes and exits"
                .into(),
        )),
    };
    tracing::info!("shutting down");
    server.shutdown().await;
    outcome
}

async fn replica_stopped(shared: &Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped = shared
            .replica
            .get()
            .is_some_and(|r| r.metrics().role == corral_replication::Role::Shutdown);
        if stopped {
            return;
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Open client connections per address, for `maxClientCnxns`.
type ConnectionCounts = Arc<Mutex<HashMap<IpAddr, u32>>>;

/// Binds a client port; the listener and the address it got.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Accepts clients on one port, enforcing `maxCnxns` in all and
/// `maxClientCnxns` per client IP;
/// with `tls`, each completes a TLS handshake (within the time a
/// ConnectRequest is given) before it is served.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    per_ip: ConnectionCounts,
) {
    let limit = shared.config.max_client_cnxns;
    let total_limit = shared.config.max_cnxns;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(ok) => ok,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = addr.ip();
        {
            let mut counts = per_ip.lock();
            let total: u32 = counts.values().sum();
            if total_limit > 0 && total >= total_limit {
                tracing::warn!(%addr, total_limit, "too many connections (maxCnxns); closing");
                drop(stream);
                continue;
            }
            let count = counts.entry(ip).or_insert(0);
            if limit > 0 && *count >= limit {
                tracing::warn!(%ip, limit, "too many connections from one address (maxClientCnxns); closing");
                drop(stream);
                continue;
            }
            *count += 1;
        }
        let shared = shared.clone();
        let per_ip = per_ip.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::serve(shared, stream, addr).await,
                Some(acceptor) => {
                    let _ = stream.set_nodelay(true);
                    let limit = connection::handshake_timeout(&shared);
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let client_id = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|cert| match tls::subject_name(cert) {
                                    Ok(name) => Some(name),
                                    Err(e) => {
                                        tracing::warn!(%addr, "client certificate subject unreadable ({e}): no x509 identity");
                                        None
                                    }
                                });
                            connection::serve_stream(shared, tls_stream, addr, client_id).await
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%addr, "TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            tracing::info!(%addr, "TLS handshake not done within {limit:?}");
                        }
                    }
                }
            }
            let mut counts = per_ip.lock();
            if let Some(c) = counts.get_mut(&ip) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(&ip);
                }
            }
        });
    }
}
