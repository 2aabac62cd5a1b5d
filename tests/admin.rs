//! The admin HTTP server (`admin.serverPort`) side by side with Apache ZooKeeper's
//! AdminServer: the same commands under the same names and aliases, the same fields in
//! each answer, the same errors; and a port that cannot be bound does not stop Corral.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};

use serde_json::Value;
use support::{admin_command as command, free_port, http, ApacheZk, CorralServer};
use zookeeper_client as zk;

/// Every key of an answer, nested objects' keys as `outer.inner` (first element of arrays).
fn shape(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = format!("{prefix}{k}");
                out.insert(key.clone());
                // Maps keyed by data (session ids, paths, times) have no fixed keys.
                if ![
                    "expiry_time_to_session_ids",
                    "session_id_to_ephemeral_paths",
                ]
                .contains(&k.as_str())
                    && !k.ends_with("_to_watched_paths")
                    && !k.ends_with("_to_session_ids")
                {
                    shape(v, &format!("{key}."), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                shape(first, &format!("{prefix}[]."), out);
            }
        }
        _ => {}
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(value, "", &mut out);
    out
}

/// A session with a data watch on /admin-watched (kept while the watcher lives: the
/// client removes a dropped one) and an ephemeral /admin-eph.
async fn watcher(addr: SocketAddr) -> (zk::Client, zk::OneshotWatcher, i64) {
    let client = support::connect(addr).await;
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client
        .create("/admin-watched", b"x", &opts)
        .await
        .expect("create");
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client
        .create("/admin-eph", b"x", &eph)
        .await
        .expect("create ephemeral");
    let (_, _, watch) = client
        .get_and_watch_data("/admin-watched")
        .await
        .expect("watch");
    let session = client.session_id().0;
    (client, watch, session)
}

fn admin_lines(port: u16) -> Vec<String> {
    vec![
        "admin.enableServer=true".into(),
        "admin.serverAddress=127.0.0.1".into(),
        format!("admin.serverPort={port}"),
    ]
}

#[tokio::test]
async fn admin_commands_answer_with_zookeepers_fields_names_and_errors() {
    if !support::zookeeper_admin_available() {
        return;
    }
    let (zk_admin, corral_admin) = (free_port(), free_port());
    let zk_lines = admin_lines(zk_admin);
    let corral_lines = admin_lines(corral_admin);
    let zk_server =
        ApacheZk::try_start_with(&zk_lines.iter().map(String::as_str).collect::<Vec<_>>())
            .expect("zookeeper");
    let corral =
        CorralServer::start_with(&corral_lines.iter().map(String::as_str).collect::<Vec<_>>());
    let zk_http: SocketAddr = ([127, 0, 0, 1], zk_admin).into();
    let corral_http: SocketAddr = ([127, 0, 0, 1], corral_admin).into();
    let (_zk_client, _zk_watch, zk_session) = watcher(zk_server.addr()).await;
    let (_corral_client, _corral_watch, corral_session) = watcher(corral.addr()).await;

    // The command list: the same commands.
    let links = |addr| {
        let (status, page) = http(addr, "GET", "/commands");
        assert_eq!(status, 200, "{page}");
        page.split("href=\"/commands/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_string)
            .collect::<BTreeSet<String>>()
    };
    let names = links(zk_http);
    assert!(names.len() > 20, "ZooKeeper lists {names:?}");
    assert_eq!(links(corral_http), names, "the command lists differ");

    for name in &names {
        let (z, c) = (command(zk_http, name), command(corral_http, name));
        assert_eq!(c["command"], z["command"], "{name}");
        assert_eq!(
            c["error"], z["error"],
            "{name}: error\n{c:#}\nZooKeeper:\n{z:#}"
        );
        let (zk_keys, corral_keys) = (keys(&z), keys(&c));
        match name.as_str() {
            // Java's properties and ZooKeeper's ~500 metrics: Corral has fewer, none new
            // (but its own `corral_*` figures).
            "environment" | "system_properties" | "monitor" => {
                let extra: Vec<&String> = corral_keys
                    .difference(&zk_keys)
                    .filter(|k| !k.starts_with("corral"))
                    .collect();
                assert!(
                    extra.is_empty(),
                    "{name}: fields ZooKeeper lacks: {extra:?}"
                );
            }
            _ => assert_eq!(
                corral_keys, zk_keys,
                "{name}: fields\n{c:#}\nZooKeeper:\n{z:#}"
            ),
        }
    }

    // The same figures where both servers hold the same state.
    for (addr, session, who) in [
        (zk_http, zk_session, "ZooKeeper"),
        (corral_http, corral_session, "Corral"),
    ] {
        let watches = command(addr, "watches_by_path");
        assert_eq!(
            watches["path_to_session_ids"]["/admin-watched"],
            serde_json::json!([session]),
            "{who}: {watches:#}"
        );
        let dump = command(addr, "dump");
        assert_eq!(
            dump["session_id_to_ephemeral_paths"][session.to_string()],
            serde_json::json!(["/admin-eph"]),
            "{who}: {dump:#}"
        );
        let summary = command(addr, "watch_summary");
        assert_eq!(summary["num_total_watches"], 1, "{who}: {summary:#}");
        let isro = command(addr, "is_read_only");
        assert_eq!(isro["read_only"], false, "{who}");
        let monitor = command(addr, "monitor");
        assert_eq!(monitor["server_state"], "standalone", "{who}");
        assert_eq!(monitor["ephemerals_count"], 1, "{who}");
        assert_eq!(monitor["num_alive_connections"], 1, "{who}: {monitor:#}");
        let cons = command(addr, "connections");
        let listed: Vec<i64> = cons["connections"]
            .as_array()
            .expect("connections")
            .iter()
            .filter_map(|c| c["session_id"].as_i64())
            .collect();
        assert_eq!(listed, vec![session], "{who}: {cons:#}");
    }

    // Aliases answer as the primary name; errors read as ZooKeeper's.
    for (alias, primary) in [
        ("mntr", "monitor"),
        ("srvr", "server_stats"),
        ("stat", "stats"),
        ("conf", "configuration"),
        ("wchs", "watch_summary"),
        ("isro", "is_read_only"),
    ] {
        for addr in [zk_http, corral_http] {
            assert_eq!(
                command(addr, alias)["command"],
                primary,
                "{alias} at {addr}"
            );
        }
    }
    for request in [
        "nosuch",
        "set_trace_mask",
        "set_trace_mask?traceMask=many",
        "set_trace_mask?traceMask=5",
    ] {
        let (z, c) = (command(zk_http, request), command(corral_http, request));
        assert_eq!(c, z, "{request}");
    }
    // Only GET; nothing outside the command URL.
    for addr in [zk_http, corral_http] {
        assert_eq!(http(addr, "POST", "/commands/ruok").0, 405, "{addr}");
        assert_eq!(http(addr, "GET", "/elsewhere").0, 404, "{addr}");
    }
}

#[tokio::test]
async fn a_taken_admin_port_is_logged_and_clients_are_served() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let lines = admin_lines(port);
    let corral = CorralServer::start_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let client = support::connect(corral.addr()).await;
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/served", b"", &opts).await.expect("create");
    let log = corral.log();
    assert!(
        log.contains("admin server not started") && log.contains(&port.to_string()),
        "the log should say why there is no admin server:\n{log}"
    );
    drop(taken);
}

/// `metricsProvider.className=…PrometheusMetricsProvider` serves `GET /metrics` on
/// `metricsProvider.httpPort`, with `mntr`'s figures under ZooKeeper's Prometheus names.
/// (Debian ships no Prometheus client for Java, so there is no ZooKeeper to compare with.)
#[tokio::test]
async fn prometheus_metrics_carry_the_monitor_figures() {
    let port = free_port();
    let lines = [
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider".to_string(),
        "metricsProvider.httpHost=127.0.0.1".to_string(),
        format!("metricsProvider.httpPort={port}"),
    ];
    let corral = CorralServer::start_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let client = support::connect(corral.addr()).await;
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for i in 0..3 {
        client
            .create(&format!("/metric-{i}"), b"", &opts)
            .await
            .expect("create");
    }
    let metrics: SocketAddr = ([127, 0, 0, 1], port).into();
    let (status, text) = http(metrics, "GET", "/metrics");
    assert_eq!(status, 200, "{text}");
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert!(text.contains("# TYPE znode_count gauge"), "{text}");
    // The root, /zookeeper, its config and quota nodes, and the three made here.
    let mntr = support::four_letter(corral.addr(), "mntr").expect("mntr");
    let znodes: f64 = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_znode_count\t"))
        .and_then(|v| v.parse().ok())
        .expect("zk_znode_count");
    assert_eq!(sample("znode_count"), znodes);
    assert!(znodes >= 3.0 + 4.0, "{mntr}");
    assert_eq!(sample("num_alive_connections"), 1.0);
    assert!(
        !text.contains("server_state"),
        "text figures have no place: {text}"
    );
    assert_eq!(http(metrics, "GET", "/elsewhere").0, 404);
}
