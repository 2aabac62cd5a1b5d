//! The admin server's commands: ZooKeeper's names (`monitor`, `stats`…),
//! their short aliases (`mntr`, `stat`…, the four-letter words), and the
//! JSON each returns. Every answer carries `command` (the primary name) and
//! `error` (null, or why it could not run); the figures come from the same
//! places as the four-letter words'.

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use crate::core::Shared;
use crate::fourlw;

/// One command: its primary name, the other names it answers to, and
/// whether it needs a serving server (ZooKeeper's `isServerRequired`).
struct Command {
    name: &'static str,
    aliases: &'static [&'static str],
    needs_server: bool,
}

const COMMANDS: &[Command] = &[
    cmd("configuration", &["conf", "config"], true),
    cmd("connection_stat_reset", &["crst"], true),
    cmd("connections", &["cons"], true),
    cmd("dirs", &[], true),
    cmd("dump", &[], true),
    cmd("environment", &["env", "envi"], false),
    cmd("get_trace_mask", &["gtmk"], false),
    cmd("hash", &[], true),
    cmd("initial_configuration", &["icfg"], true),
    cmd("is_read_only", &["isro"], true),
    cmd("last_snapshot", &["lsnp"], true),
    cmd("leader", &["lead"], true),
    cmd("monitor", &["mntr"], false),
    cmd("observer_connection_stat_reset", &["orst"], true),
    cmd("observers", &["obsr"], true),
    cmd("ruok", &[], true),
    cmd("server_stats", &["srvr"], true),
    cmd("set_trace_mask", &["stmk"], false),
    cmd("stat_reset", &["srst"], true),
    cmd("stats", &["stat"], true),
    cmd("system_properties", &["sysp"], false),
    cmd("voting_view", &[], true),
    cmd("watch_summary", &["wchs"], true),
    cmd("watches", &["wchc"], true),
    cmd("watches_by_path", &["wchp"], true),
    cmd("zabstate", &[], false),
];

const fn cmd(name: &'static str, aliases: &'static [&'static str], needs_server: bool) -> Command {
    Command {
        name,
        aliases,
        needs_server,
    }
}

/// ZooKeeper's default trace mask; Corral has no trace levels to set.
const TRACE_MASK: i64 = 306;

/// The primary names, for the command list.
pub fn primary_names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.name)
}

/// Runs the command `name` (a primary name or an alias) with the query's
/// arguments; returns the JSON text of its answer.
pub fn run(shared: &Shared, name: &str, args: &[(String, String)]) -> String {
    let answer = match COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
    {
        None => failed(name, format!("Unknown command: {name}")),
        Some(c) if c.needs_server && !(shared.is_serving() || shared.is_read_only()) => failed(
            c.name,
            "This ZooKeeper instance is not currently serving requests".to_string(),
        ),
        Some(c) => {
            let mut out = Map::new();
            let error = answer(shared, c.name, args, &mut out).err();
            out.insert("command".into(), json!(c.name));
            out.insert("error".into(), json!(error));
            out
        }
    };
    serde_json::to_string_pretty(&Value::Object(answer)).unwrap_or_default()
}

fn failed(name: &str, error: String) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("command".into(), json!(name));
    out.insert("error".into(), json!(error));
    out
}

/// Fills `out` with the command's fields; `Err` is the text of its `error`.
fn answer(
    shared: &Shared,
    name: &str,
    args: &[(String, String)],
    out: &mut Map<String, Value>,
) -> Result<(), String> {
    let config = &shared.config;
    match name {
        "configuration" => {
            out.insert("client_port".into(), json!(config.client_port));
            if let Some(secure) = &config.secure_client {
                out.insert("secure_client_port".into(), json!(secure.port));
            }
            let data_dir = config.data_dir.join("version-2");
            let log_dir = config.data_log_dir.join("version-2");
            out.insert("data_dir".into(), json!(data_dir.display().to_string()));
            out.insert("data_log_dir".into(), json!(log_dir.display().to_string()));
            out.insert("tick_time".into(), json!(config.tick_time_ms));
            out.insert("max_client_cnxns".into(), json!(config.max_client_cnxns));
            out.insert(
                "min_session_timeout".into(),
                json!(config.min_session_timeout_ms),
            );
            out.insert(
                "max_session_timeout".into(),
                json!(config.max_session_timeout_ms),
            );
            out.insert("server_id".into(), json!(shared.server_id));
            out.insert("client_port_listen_backlog".into(), json!(-1));
        }
        "connection_stat_reset" => fourlw::reset_connection_stats(shared),
        "connections" => {
            let (plain, secure) = connections(shared, false);
            out.insert("connections".into(), plain);
            out.insert("secure_connections".into(), secure);
        }
        "dirs" => {
            out.insert(
                "datadir_size".into(),
                json!(fourlw::dir_size(&config.data_dir)),
            );
            out.insert(
                "logdir_size".into(),
                json!(fourlw::dir_size(&config.data_log_dir)),
            );
        }
        "dump" => {
            let core = shared.core.lock();
            let expiry: Map<String, Value> = fourlw::session_expiry_buckets(&core)
                .into_iter()
                .map(|(at, ids)| (at.to_string(), json!(ids)))
                .collect();
            let ephemerals: Map<String, Value> = fourlw::ephemerals_by_session(&core)
                .into_iter()
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            out.insert("expiry_time_to_session_ids".into(), Value::Object(expiry));
            out.insert(
                "session_id_to_ephemeral_paths".into(),
                Value::Object(ephemerals),
            );
        }
        "environment" => {
            for (k, v) in fourlw::environment_entries() {
                out.insert(k.into(), json!(v));
            }
        }
        "get_trace_mask" => {
            out.insert("tracemask".into(), json!(TRACE_MASK));
        }
        "hash" => {
            out.insert("digests".into(), json!([]));
        }
        "initial_configuration" => {
            out.insert(
                "initial_configuration".into(),
                json!(config.source_text.as_str()),
            );
        }
        "is_read_only" => {
            out.insert("read_only".into(), json!(shared.is_read_only()));
        }
        "last_snapshot" => {
            let (zxid, at) = shared.stats.last_snapshot().unwrap_or((-1, -1));
            out.insert("zxid".into(), json!(format!("{:x}", zxid as u64)));
            out.insert("timestamp".into(), json!(at));
        }
        "leader" => {
            if config.servers.is_empty() {
                return Err("server is not initialized".into());
            }
            let metrics = shared.replica.get().map(|r| r.metrics());
            let leader_id = metrics.as_ref().and_then(|m| m.leader_id);
            let leader_ip = leader_id
                .and_then(|id| config.servers.iter().find(|p| p.id == id))
                .map(|p| p.host.clone())
                .unwrap_or_default();
            out.insert("is_leader".into(), json!(shared.mode() == "leader"));
            out.insert(
                "leader_id".into(),
                json!(leader_id.map_or(-1, |id| id as i64)),
            );
            out.insert("leader_ip".into(), json!(leader_ip));
        }
        "monitor" => {
            for (k, v) in fourlw::monitor_figures(shared, false) {
                out.insert(k.strip_prefix("zk_").unwrap_or(k).into(), v);
            }
        }
        "observer_connection_stat_reset" => {}
        "observers" => {
            let observers: Vec<u64> = shared
                .replica
                .get()
                .filter(|_| shared.mode() == "leader")
                .map(|r| r.metrics())
                .map(|m| {
                    m.learners
                        .iter()
                        .copied()
                        .filter(|id| m.synced_members.contains(id))
                        .collect()
                })
                .unwrap_or_default();
            out.insert("synced_observers".into(), json!(observers.len()));
            let info: Vec<Value> = observers.iter().map(|id| json!({ "sid": id })).collect();
            out.insert("observers".into(), json!(info));
        }
        "ruok" => {}
        "server_stats" | "stats" => {
            server_stats(shared, out);
            if name == "stats" {
                let (plain, secure) = connections(shared, true);
                out.insert("connections".into(), plain);
                out.insert("secure_connections".into(), secure);
            }
        }
        "set_trace_mask" => {
            let Some((_, raw)) = args.iter().find(|(k, _)| k == "traceMask") else {
                return Err("setTraceMask requires long traceMask argument".into());
            };
            let mask: i64 = raw
                .parse()
                .map_err(|_| format!("setTraceMask requires long traceMask argument, got {raw}"))?;
            out.insert("tracemask".into(), json!(mask));
        }
        "stat_reset" => shared.stats.reset(),
        "system_properties" => {
            // The Java system properties that mean something here.
            let mut props: Vec<(String, String)> = fourlw::environment_entries()
                .into_iter()
                .filter(|(k, _)| {
                    k.starts_with("user.") || k.starts_with("os.") && !k.starts_with("os.memory")
                })
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            props.push(("file.separator".into(), "/".into()));
            props.push(("line.separator".into(), "\n".into()));
            props.push(("path.separator".into(), ":".into()));
            props.sort();
            for (k, v) in props {
                out.insert(k, json!(v));
            }
        }
        "voting_view" => {
            let members = shared
                .replica
                .get()
                .map(|r| r.metrics().members)
                .unwrap_or_default();
            let mut view = Map::new();
            if !config.servers.is_empty() {
                for (id, m) in members {
                    if m.observer {
                        continue;
                    }
                    // `host:quorumPort:electionPort:participant[;client]`, the
                    // `server.N` line's value.
                    let spec = m.spec.split_once('=').map_or(m.spec.as_str(), |(_, v)| v);
                    view.insert(id.to_string(), json!(spec));
                }
            }
            out.insert("current_config".into(), Value::Object(view));
        }
        "watch_summary" => {
            let core = shared.core.lock();
            let (conns, paths, watches) = core.watches.summary();
            out.insert("num_connections".into(), json!(conns));
            out.insert("num_paths".into(), json!(paths));
            out.insert("num_total_watches".into(), json!(watches));
        }
        "watches" => {
            let core = shared.core.lock();
            let mut by_session = Map::new();
            for (conn_id, paths) in core.watches.by_connection() {
                let sid = core.conns.get(&conn_id).map_or(0, |c| c.session_id);
                by_session.insert(sid.to_string(), json!(paths));
            }
            out.insert(
                "session_id_to_watched_paths".into(),
                Value::Object(by_session),
            );
        }
        "watches_by_path" => {
            let core = shared.core.lock();
            let mut by_path = Map::new();
            for (path, conns) in core.watches.by_path() {
                let sids: Vec<i64> = conns
                    .iter()
                    .map(|id| core.conns.get(id).map_or(0, |c| c.session_id))
                    .collect();
                by_path.insert(path, json!(sids));
            }
            out.insert("path_to_session_ids".into(), Value::Object(by_path));
        }
        "zabstate" => {
            let (voting, state) = if config.servers.is_empty() {
                (false, "")
            } else if shared.is_serving() {
                (shared.mode() != "observer", "broadcast")
            } else {
                (shared.mode() != "observer", "election")
            };
            out.insert("voting".into(), json!(voting));
            out.insert("zabstate".into(), json!(state));
        }
        other => return Err(format!("Unknown command: {other}")),
    }
    Ok(())
}

/// `server_stats` / `stats`: ZooKeeper's ServerStats object and friends.
fn server_stats(shared: &Shared, out: &mut Map<String, Value>) {
    let stats = &shared.stats;
    let (min, avg, max) = stats.latency();
    let core = shared.core.lock();
    let client_response = json!({
        "last_buffer_size": -1,
        "min_buffer_size": -1,
        "max_buffer_size": -1,
    });
    let server = json!({
        "packets_sent": stats.packets_sent.load(Ordering::Relaxed),
        "packets_received": stats.packets_received.load(Ordering::Relaxed),
        "fsync_threshold_exceed_count": 0,
        "client_response_stats": client_response,
        "data_dir_size": fourlw::dir_size(&shared.config.data_dir),
        "log_dir_size": fourlw::dir_size(&shared.config.data_log_dir),
        "provider_null": false,
        "server_state": shared.mode(),
        "last_processed_zxid": core.tree.last_zxid(),
        "outstanding_requests": fourlw::outstanding(&core),
        "avg_latency": fourlw::round_4(avg),
        "max_latency": max,
        "min_latency": min,
        "num_alive_client_connections": core.conns.len(),
        "uptime": stats.started.elapsed().as_millis() as u64,
        "auth_failed_count": stats.auth_failed.load(Ordering::Relaxed),
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
    });
    out.insert("version".into(), json!(fourlw::version_string()));
    out.insert("read_only".into(), json!(shared.is_read_only()));
    out.insert("server_stats".into(), server);
    out.insert("client_response".into(), client_response);
    out.insert("node_count".into(), json!(core.tree.node_count()));
}

/// Each client connection, plain and TLS apart; `brief` keeps the first
/// five fields, as `stats` lists them.
fn connections(shared: &Shared, brief: bool) -> (Value, Value) {
    let core = shared.core.lock();
    let mut conns: Vec<_> = core.conns.iter().collect();
    conns.sort_by_key(|(id, _)| **id);
    let (mut plain, mut secure) = (Vec::new(), Vec::new());
    for (_, c) in conns {
        let mut info = Map::new();
        info.insert("remote_socket_address".into(), json!(c.addr.to_string()));
        info.insert("interest_ops".into(), json!(1));
        info.insert("outstanding_requests".into(), json!(c.pending.len()));
        info.insert("packets_received".into(), json!(c.packets_received));
        info.insert("packets_sent".into(), json!(c.packets_sent));
        if !brief {
            info.insert("session_id".into(), json!(c.session_id));
            info.insert("last_operation".into(), json!(c.last_op));
            info.insert("established".into(), json!(c.established_wall_ms()));
            info.insert("session_timeout".into(), json!(c.timeout_ms));
            info.insert("last_cxid".into(), json!(c.last_xid));
            info.insert("last_zxid".into(), json!(c.last_zxid));
            info.insert("last_response_time".into(), json!(0));
            info.insert("last_latency".into(), json!(0));
            info.insert("min_latency".into(), json!(c.latency_min_ms));
            info.insert("avg_latency".into(), json!(c.latency_avg_ms()));
            info.insert("max_latency".into(), json!(c.latency_max_ms));
        }
        if c.secure {
            secure.push(Value::Object(info));
        } else {
            plain.push(Value::Object(info));
        }
    }
    (Value::Array(plain), Value::Array(secure))
}
