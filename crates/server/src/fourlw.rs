//! Four-letter words (`ruok`, `srvr`, `mntr`…) answered on the client port in
//! ZooKeeper's output format, which kazoo, zktop and monitoring scripts parse.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use corral_proto::fourlw::FourLetterWord;

use crate::core::Shared;

/// The ZooKeeper release whose protocol Corral speaks, then Corral's own
/// version. Clients read the leading x.y.z to decide which features to use.
pub fn version_string() -> String {
    format!(
        "3.8.4-corral-{}, built on 2026-11-22 00:00 UTC",
        env!("CARGO_PKG_VERSION")
    )
}

/// Runs one word and returns its whole output.
pub fn execute(shared: &Shared, word: FourLetterWord) -> String {
    let name = word.as_str();
    if word == FourLetterWord::TelnetClose {
        return String::new();
    }
    if !shared.config.four_letter_whitelist.allows(name) {
        return format!("{name} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    let needs_quorum = !matches!(
        word,
        FourLetterWord::Ruok | FourLetterWord::Isro | FourLetterWord::Conf | FourLetterWord::Envi
    );
    if needs_quorum && !shared.is_serving() {
        return "This ZooKeeper instance is not currently serving requests\n".to_string();
    }
    match word {
        FourLetterWord::Ruok => out.push_str("imok"),
        FourLetterWord::Isro => out.push_str("rw"),
        FourLetterWord::Srvr => server_summary(shared, &mut out, false),
        FourLetterWord::Stat => server_summary(shared, &mut out, true),
        FourLetterWord::Mntr => monitor(shared, &mut out),
        FourLetterWord::Conf => conf(shared, &mut out),
        FourLetterWord::Envi => environment(&mut out),
        FourLetterWord::Cons => connections(shared, &mut out, true),
        FourLetterWord::Crst => {
            let mut core = shared.core.lock();
            for conn in core.conns.values_mut() {
                conn.packets_received = 0;
                conn.packets_sent = 0;
                conn.latency_count = 0;
                conn.latency_total_ms = 0;
                conn.latency_max_ms = 0;
                conn.latency_min_ms = 0;
            }
            out.push_str("Connection stats reset.\n");
        }
        FourLetterWord::Srst => {
            shared.stats.reset();
            out.push_str("Server stats reset.\n");
        }
        FourLetterWord::Dirs => {
            let data = dir_size(&shared.config.data_dir);
            let log = dir_size(&shared.config.data_log_dir);
            let _ = writeln!(out, "datadir_size: {data}");
            let _ = writeln!(out, "logdir_size: {log}");
        }
        FourLetterWord::Wchs => {
            let core = shared.core.lock();
            let (conns, paths, watches) = core.watches.summary();
            let _ = writeln!(out, "{conns} connections watching {paths} paths");
            let _ = writeln!(out, "Total watches:{watches}");
        }
        FourLetterWord::Wchc => {
            let core = shared.core.lock();
            for (conn_id, paths) in core.watches.by_connection() {
                let sid = core.conns.get(&conn_id).map(|c| c.session_id).unwrap_or(0);
                let _ = writeln!(out, "0x{sid:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
        }
        FourLetterWord::Wchp => {
            let core = shared.core.lock();
            for (path, conns) in core.watches.by_path() {
                let _ = writeln!(out, "{path}");
                for conn_id in conns {
                    let sid = core.conns.get(&conn_id).map(|c| c.session_id).unwrap_or(0);
                    let _ = writeln!(out, "\t0x{sid:x}");
                }
            }
            out.push('\n');
        }
        FourLetterWord::Dump => {
            let core = shared.core.lock();
            out.push_str("SessionTracker dump:\n");
            let mut sessions: Vec<(i64, i32)> = core
                .sessions
                .iter()
                .map(|(id, s)| (*id, s.timeout_ms))
                .collect();
            sessions.sort_unstable();
            let _ = writeln!(out, "Session Sets ({}):", sessions.len());
            for (id, timeout) in &sessions {
                let _ = writeln!(out, "\t0x{id:x}\t{timeout}ms");
            }
            out.push_str("ephemeral nodes dump:\n");
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", sessions.len());
            for (id, _) in &sessions {
                let _ = writeln!(out, "0x{id:x}:");
                let mut eph = core.tree.get_ephemerals(*id, "/");
                eph.sort();
                for p in eph {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        FourLetterWord::Gtmk | FourLetterWord::Stmk => out.push_str("0\n"),
        FourLetterWord::Hash => out.push_str("Digest in every 128 txns: \n"),
        FourLetterWord::TelnetClose => {}
    }
    out
}

fn server_summary(shared: &Shared, out: &mut String, with_clients: bool) {
    let _ = writeln!(out, "Zookeeper version: {}", version_string());
    if with_clients {
        out.push_str("Clients:\n");
        connections(shared, out, false);
    }
    let (min, avg, max) = shared.stats.latency();
    let core = shared.core.lock();
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:?}/{max}");
    let _ = writeln!(
        out,
        "Received: {}",
        shared.stats.packets_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "Sent: {}",
        shared.stats.packets_sent.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "Connections: {}", core.conns.len());
    let _ = writeln!(out, "Outstanding: {}", outstanding(&core));
    let _ = writeln!(out, "Zxid: 0x{:x}", core.tree.last_zxid());
    let _ = writeln!(out, "Mode: {}", shared.mode());
    let _ = writeln!(out, "Node count: {}", core.tree.node_count());
}

fn outstanding(core: &crate::core::Core) -> usize {
    core.conns.values().map(|c| c.pending.len()).sum()
}

fn connections(shared: &Shared, out: &mut String, detailed: bool) {
    let core = shared.core.lock();
    let mut conns: Vec<_> = core.conns.iter().collect();
    conns.sort_by_key(|(id, _)| **id);
    for (_, c) in conns {
        let _ = write!(
            out,
            " /{}[1](queued={},recved={},sent={}",
            c.addr,
            c.pending.len(),
            c.packets_received,
            c.packets_sent
        );
        if detailed {
            let avg = if c.latency_count > 0 {
                c.latency_total_ms / c.latency_count
            } else {
                0
            };
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp=0,llat=0,minlat={},avglat={},maxlat={}",
                c.session_id,
                c.last_op,
                crate::write_path::wall_clock_ms() - c.established.elapsed().as_millis() as i64,
                c.timeout_ms,
                c.last_xid,
                c.last_zxid,
                c.latency_min_ms,
                avg,
                c.latency_max_ms
            );
        }
        out.push_str(")\n");
    }
    out.push('\n');
}

fn monitor(shared: &Shared, out: &mut String) {
    let (min, avg, max) = shared.stats.latency();
    let core = shared.core.lock();
    let (_, _, data_watches) = core.watches.summary();
    let _ = data_watches;
    let lines: Vec<(&str, String)> = vec![
        ("zk_version", version_string()),
        ("zk_server_state", shared.mode().to_string()),
        ("zk_avg_latency", format!("{avg:?}")),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        (
            "zk_packets_received",
            shared
                .stats
                .packets_received
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "zk_packets_sent",
            shared
                .stats
                .packets_sent
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        ("zk_num_alive_connections", core.conns.len().to_string()),
        ("zk_outstanding_requests", outstanding(&core).to_string()),
        ("zk_znode_count", core.tree.node_count().to_string()),
        ("zk_watch_count", core.watches.watch_count().to_string()),
        (
            "zk_ephemerals_count",
            core.tree.ephemeral_count().to_string(),
        ),
        (
            "zk_approximate_data_size",
            core.tree.approximate_data_size().to_string(),
        ),
        ("zk_open_file_descriptor_count", open_fds().to_string()),
        ("zk_max_file_descriptor_count", max_fds().to_string()),
        (
            "zk_uptime",
            shared.stats.started.elapsed().as_millis().to_string(),
        ),
        ("zk_global_sessions", core.sessions.len().to_string()),
        ("zk_local_sessions", "0".to_string()),
        ("zk_connection_drop_probability", "0.0".to_string()),
        ("zk_outstanding_tls_handshake", "0".to_string()),
        (
            "zk_auth_failed_count",
            shared.stats.auth_failed.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_last_client_response_size", "-1".to_string()),
        ("zk_max_client_response_size", "-1".to_string()),
        ("zk_min_client_response_size", "-1".to_string()),
        ("zk_non_mtls_remote_conn_count", "0".to_string()),
        ("zk_non_mtls_local_conn_count", "0".to_string()),
        ("corral_rss_bytes", rss_bytes().to_string()),
    ];
    let mut lines = lines;
    if let Some(m) = shared.replica.get().map(|r| r.metrics()) {
        if shared.mode() == "leader" {
            lines.push(("zk_learners", m.learners_count.to_string()));
            lines.push(("zk_synced_observers", m.synced_learners.to_string()));
            lines.push(("zk_followers", m.followers.to_string()));
            lines.push(("zk_synced_followers", m.synced_followers.to_string()));
            lines.push(("zk_pending_syncs", "0".to_string()));
        }
        lines.push(("corral_raft_term", m.current_term.to_string()));
        lines.push(("corral_log_fsyncs", m.log_fsyncs.to_string()));
        lines.push((
            "corral_log_entries_written",
            m.log_entries_written.to_string(),
        ));
        lines.push((
            "corral_log_fsync_micros_avg",
            m.log_fsync_micros_avg.to_string(),
        ));
    }
    for (k, v) in lines {
        let _ = writeln!(out, "{k}\t{v}");
    }
}

fn conf(shared: &Shared, out: &mut String) {
    let c = &shared.config;
    let data_dir = c.data_dir.join("version-2");
    let log_dir = c.data_log_dir.join("version-2");
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", data_dir.display());
    let _ = writeln!(out, "dataDirSize={}", dir_size(&c.data_dir));
    let _ = writeln!(out, "dataLogDir={}", log_dir.display());
    let _ = writeln!(out, "dataLogSize={}", dir_size(&c.data_log_dir));
    let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms);
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(out, "serverId={}", shared.server_id);
}

fn environment(out: &mut String) {
    out.push_str("Environment:\n");
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let lines = [
        ("zookeeper.version", version_string()),
        ("host.name", host.trim().to_string()),
        ("corral.version", env!("CARGO_PKG_VERSION").to_string()),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        ("os.version", kernel.trim().to_string()),
        ("user.name", user),
        ("user.home", home),
        ("user.dir", cwd),
        ("os.memory.free", "0MB".to_string()),
        ("os.memory.max", "0MB".to_string()),
        (
            "os.memory.total",
            format!("{}MB", rss_bytes() / (1024 * 1024)),
        ),
    ];
    for (k, v) in lines {
        let _ = writeln!(out, "{k}={v}");
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident set size of this process, from /proc.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Sends a four-letter word to a server and returns its answer (used by
/// `corral status`).
pub fn query(addr: &str, word: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(word.as_bytes())?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}
