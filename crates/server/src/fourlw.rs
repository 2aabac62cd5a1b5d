//! Four-letter words (`ruok`, `srvr`, `mntr`…) answered on the client port in
//! ZooKeeper's output format, which kazoo, zktop and monitoring scripts parse.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
/// `asker` is the connection that sent the word: ZooKeeper counts and
/// lists it among the connections.
pub fn execute(shared: &Shared, word: FourLetterWord, asker: SocketAddr) -> String {
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
        // ZooKeeper's answers: "null" while it serves nobody.
        FourLetterWord::Isro if shared.is_serving() => out.push_str("rw"),
        FourLetterWord::Isro if shared.is_read_only() => out.push_str("ro"),
        FourLetterWord::Isro => out.push_str("null"),
        FourLetterWord::Srvr => server_summary(shared, &mut out, false, asker),
        FourLetterWord::Stat => server_summary(shared, &mut out, true, asker),
        FourLetterWord::Mntr => monitor(shared, &mut out),
        FourLetterWord::Conf => conf(shared, &mut out),
        FourLetterWord::Envi => environment(&mut out),
        FourLetterWord::Cons => connections(shared, &mut out, true, asker),
        FourLetterWord::Crst => {
            reset_connection_stats(shared);
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
        FourLetterWord::Dump => dump(shared, &mut out),
        // ZooKeeper's default trace mask.
        FourLetterWord::Gtmk | FourLetterWord::Stmk => out.push_str("306\n"),
        FourLetterWord::Hash => out.push_str("Digest in every 128 txns: \n"),
        FourLetterWord::TelnetClose => {}
    }
    out
}

/// `crst`: every connection's counters back to a new connection's.
pub(crate) fn reset_connection_stats(shared: &Shared) {
    let mut core = shared.core.lock();
    for conn in core.conns.values_mut() {
        conn.packets_received = 0;
        conn.packets_sent = 0;
        conn.latency_count = 0;
        conn.last_op = "NA";
        conn.last_xid = -1;
        conn.last_zxid = -1;
        conn.latency_total_ms = 0;
        conn.latency_max_ms = 0;
        conn.latency_min_ms = 0;
    }
}

fn server_summary(shared: &Shared, out: &mut String, with_clients: bool, asker: SocketAddr) {
    let _ = writeln!(out, "Zookeeper version: {}", version_string());
    if with_clients {
        out.push_str("Clients:\n");
        connections(shared, out, false, asker);
    }
    let (min, avg, max) = shared.stats.latency();
    let core = shared.core.lock();
    let _ = writeln!(
        out,
        "Latency min/avg/max: {min}/{}/{max}",
        java_double_4(avg)
    );
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
    let _ = writeln!(out, "Connections: {}", core.conns.len() + 1);
    let _ = writeln!(out, "Outstanding: {}", outstanding(&core));
    let _ = writeln!(out, "Zxid: 0x{:x}", core.tree.last_zxid());
    let _ = writeln!(out, "Mode: {}", shared.mode());
    let _ = writeln!(out, "Node count: {}", core.tree.node_count());
}

pub(crate) fn outstanding(core: &crate::core::Core) -> usize {
    core.conns.values().map(|c| c.pending.len()).sum()
}

fn connections(shared: &Shared, out: &mut String, detailed: bool, asker: SocketAddr) {
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
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp=0,llat=0,minlat={},avglat={},maxlat={}",
                c.session_id,
                c.last_op,
                c.established_wall_ms(),
                c.timeout_ms,
                c.last_xid,
                c.last_zxid,
                c.latency_min_ms,
                c.latency_avg_ms(),
                c.latency_max_ms
            );
        }
        out.push_str(")\n");
    }
    let _ = writeln!(out, " /{asker}[0](queued=0,recved=1,sent=0)");
    out.push('\n');
}

/// A double as ZooKeeper prints averages: rounded to 4 decimals, in Java's
/// `Double.toString` form (`0.0`, `0.5556`).
fn java_double_4(value: f64) -> String {
    format!("{:?}", round_4(value))
}

/// An average as ZooKeeper reports it: rounded to 4 decimals.
pub(crate) fn round_4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

fn monitor(shared: &Shared, out: &mut String) {
    for (k, v) in monitor_figures(shared, true) {
        match v {
            serde_json::Value::String(text) => {
                let _ = writeln!(out, "{k}\t{text}");
            }
            other => {
                let _ = writeln!(out, "{k}\t{other}");
            }
        }
    }
}

/// The figures `mntr` prints, by their `mntr` names (the admin server's
/// `monitor` drops the `zk_` prefix). Numbers stay numbers, so the admin
/// server's JSON has them typed; an average is a double as Java prints it.
/// `asked_on_client_port`: the asking connection is one of the connections
/// counted, as ZooKeeper counts the connection a four-letter word came on.
pub(crate) fn monitor_figures(
    shared: &Shared,
    asked_on_client_port: bool,
) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let (min, avg, max) = shared.stats.latency();
    let core = shared.core.lock();
    let stats = &shared.stats;
    let mut figures: Vec<(&str, serde_json::Value)> = vec![
        ("zk_version", json!(version_string())),
        ("zk_server_state", json!(shared.mode())),
        ("zk_avg_latency", json!(round_4(avg))),
        ("zk_max_latency", json!(max)),
        ("zk_min_latency", json!(min)),
        (
            "zk_packets_received",
            json!(stats.packets_received.load(Ordering::Relaxed)),
        ),
        (
            "zk_packets_sent",
            json!(stats.packets_sent.load(Ordering::Relaxed)),
        ),
        (
            "zk_num_alive_connections",
            json!(core.conns.len() + usize::from(asked_on_client_port)),
        ),
        ("zk_outstanding_requests", json!(outstanding(&core))),
        ("zk_znode_count", json!(core.tree.node_count())),
        ("zk_watch_count", json!(core.watches.watch_count())),
        ("zk_ephemerals_count", json!(core.tree.ephemeral_count())),
        (
            "zk_approximate_data_size",
            json!(core.tree.approximate_data_size()),
        ),
        ("zk_open_file_descriptor_count", json!(open_fds())),
        ("zk_max_file_descriptor_count", json!(max_fds())),
        (
            "zk_uptime",
            json!(stats.started.elapsed().as_millis() as u64),
        ),
        ("zk_global_sessions", json!(core.sessions.len())),
        ("zk_local_sessions", json!(0)),
        ("zk_connection_drop_probability", json!(0.0)),
        ("zk_outstanding_tls_handshake", json!(0)),
        (
            "zk_auth_failed_count",
            json!(stats.auth_failed.load(Ordering::Relaxed)),
        ),
        ("zk_last_client_response_size", json!(-1)),
        ("zk_max_client_response_size", json!(-1)),
        ("zk_min_client_response_size", json!(-1)),
        ("zk_non_mtls_remote_conn_count", json!(0)),
        ("zk_non_mtls_local_conn_count", json!(0)),
        ("corral_rss_bytes", json!(rss_bytes())),
    ];
    drop(core);
    if let Some(m) = shared.replica.get().map(|r| r.metrics()) {
        if shared.mode() == "leader" {
            figures.push(("zk_learners", json!(m.learners_count)));
            figures.push(("zk_synced_observers", json!(m.synced_learners)));
            figures.push(("zk_followers", json!(m.followers)));
            figures.push(("zk_synced_followers", json!(m.synced_followers)));
            figures.push(("zk_pending_syncs", json!(0)));
        }
        figures.push(("corral_raft_term", json!(m.current_term)));
        figures.push(("corral_log_fsyncs", json!(m.log_fsyncs)));
        figures.push(("corral_log_entries_written", json!(m.log_entries_written)));
        figures.push(("corral_log_fsync_micros_avg", json!(m.log_fsync_micros_avg)));
    }
    figures
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
    for (k, v) in environment_entries() {
        let _ = writeln!(out, "{k}={v}");
    }
}

/// What `envi` lists, by Java's names for them.
pub(crate) fn environment_entries() -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(account_name);
    let home = std::env::var("HOME").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    vec![
        ("zookeeper.version", version_string()),
        ("host.name", host.trim().to_string()),
        ("corral.version", env!("CARGO_PKG_VERSION").to_string()),
        // Java's names for these.
        ("os.name", "Linux".to_string()),
        ("os.arch", java_arch().to_string()),
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
    ]
}

pub(crate) fn dir_size(path: &std::path::Path) -> u64 {
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

pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

pub(crate) fn max_fds() -> u64 {
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

/// The name of the account running the server (Java's `user.name`), from
/// /etc/passwd by the process's real uid.
fn account_name() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(uid) = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
    else {
        return String::new();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid))
        .and_then(|l| l.split(':').next())
        .unwrap_or_default()
        .to_string()
}

fn java_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "aarch64",
        other => other,
    }
}

/// `dump`: sessions by expiry bucket, ephemerals by session, connections,
/// in ZooKeeper's layout.
fn dump(shared: &Shared, out: &mut String) {
    let core = shared.core.lock();
    let to_wall = wall_clock_of();
    let wall_now = to_wall(std::time::Instant::now());
    let buckets = session_expiry_buckets(&core);
    out.push_str("SessionTracker dump:\n");
    let _ = writeln!(
        out,
        "Session Sets ({})/({}):",
        buckets.len(),
        core.sessions.len()
    );
    for (at, ids) in &buckets {
        let _ = writeln!(out, "{} expire at {}:", ids.len(), java_date(*at));
        for id in ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let owners = ephemerals_by_session(&core);
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", owners.len());
    for (id, paths) in owners {
        let _ = writeln!(out, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out.push_str("Connections dump:\n");
    let mut conns: Vec<(i64, String, i64)> = core
        .conns
        .values()
        .map(|c| {
            let at = core
                .sessions
                .get(c.session_id)
                .map_or(wall_now, |s| to_wall(s.deadline));
            (at, c.addr.to_string(), c.session_id)
        })
        .collect();
    conns.sort();
    let mut conn_buckets: std::collections::BTreeMap<i64, Vec<(String, i64)>> = Default::default();
    for (at, addr, sid) in conns {
        conn_buckets.entry(at).or_default().push((addr, sid));
    }
    let _ = writeln!(
        out,
        "Connections Sets ({})/({}):",
        conn_buckets.len(),
        core.conns.len()
    );
    for (at, list) in &conn_buckets {
        let _ = writeln!(out, "{} expire at {}:", list.len(), java_date(*at));
        for (addr, sid) in list {
            let _ = writeln!(out, "\tip: /{addr} sessionId: 0x{sid:x}");
        }
    }
}

/// Turns a deadline on the monotonic clock into wall-clock ms, as ZooKeeper
/// reports expiry times.
fn wall_clock_of() -> impl Fn(std::time::Instant) -> i64 {
    let now = std::time::Instant::now();
    let wall_now = crate::write_path::wall_clock_ms();
    move |deadline| wall_now + deadline.saturating_duration_since(now).as_millis() as i64
}

/// Sessions by the wall-clock ms their expiry is due at (`dump`).
pub(crate) fn session_expiry_buckets(
    core: &crate::core::Core,
) -> std::collections::BTreeMap<i64, Vec<i64>> {
    let to_wall = wall_clock_of();
    let mut buckets: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (id, s) in core.sessions.iter() {
        buckets.entry(to_wall(s.deadline)).or_default().push(*id);
    }
    buckets
}

/// Each session that owns ephemerals, with their paths, both sorted (`dump`).
pub(crate) fn ephemerals_by_session(core: &crate::core::Core) -> Vec<(i64, Vec<String>)> {
    let mut owners: Vec<(i64, Vec<String>)> = core
        .sessions
        .iter()
        .map(|(id, _)| (*id, core.tree.get_ephemerals(*id, "/")))
        .filter(|(_, e)| !e.is_empty())
        .collect();
    for (_, paths) in &mut owners {
        paths.sort();
    }
    owners.sort();
    owners
}

/// Java's `Date.toString()` in UTC: `Sun Nov 22 06:31:14 UTC 2026`.
pub fn java_date(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!("{weekday} {month_name} {day:02} {h:02}:{m:02}:{s:02} UTC {year}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_matches_date_to_string_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_795_326_183_428), "Sun Nov 22 05:43:03 UTC 2026");
    }
}
