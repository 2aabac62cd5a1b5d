//! The admin HTTP server: ZooKeeper's AdminServer (`admin.serverPort`, 8080
//! by default), which answers `GET /commands/<name>` with JSON. Operators
//! and monitoring point `curl` or an HTTP check at it instead of sending
//! four-letter words; the commands and their JSON are in [`commands`].
//!
//! Unlike ZooKeeper, a port that cannot be bound is a warning, not a reason
//! to exit: the coordination service goes on without its admin port.

pub mod commands;
pub mod prometheus;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;

use crate::core::Shared;

/// Binds the admin port and serves it in a task of its own. `None` when the
/// admin server is off or its port cannot be had (logged).
pub async fn start(shared: Arc<Shared>) -> Option<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let admin = &shared.config.admin;
    if !admin.enabled {
        return None;
    }
    let address = admin.address.unwrap_or(shared.config.client_port_address);
    let wanted = SocketAddr::new(address, admin.port);
    let listener = listen(
        wanted,
        "admin server",
        "admin.serverPort",
        "admin.enableServer=false",
    )
    .await?;
    let bound = listener.local_addr().unwrap_or(wanted);
    tracing::info!(admin_addr = %bound, command_url = %admin.command_url, "admin server listening");
    let app = Router::new().fallback(route).with_state(shared);
    Some((bound, serve(listener, app, "admin server")))
}

/// Serves Prometheus metrics (`GET /metrics`) when zoo.cfg names ZooKeeper's
/// Prometheus provider; as [`start`] otherwise.
pub async fn start_prometheus(
    shared: Arc<Shared>,
) -> Option<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let prometheus = &shared.config.prometheus;
    if !prometheus.enabled {
        return None;
    }
    let address = prometheus
        .address
        .unwrap_or(shared.config.client_port_address);
    let wanted = SocketAddr::new(address, prometheus.port);
    let listener = listen(
        wanted,
        "Prometheus metrics",
        "metricsProvider.httpPort",
        "no metricsProvider.className",
    )
    .await?;
    let bound = listener.local_addr().unwrap_or(wanted);
    tracing::info!(metrics_addr = %bound, "Prometheus metrics at /metrics");
    let app = Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(shared);
    Some((bound, serve(listener, app, "Prometheus metrics")))
}

/// Binds an HTTP port, or says in the log why not (and what to change).
async fn listen(wanted: SocketAddr, what: &str, port_key: &str, off: &str) -> Option<TcpListener> {
    match TcpListener::bind(wanted).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(
                addr = %wanted,
                "{what} not started: cannot listen on {wanted}: {e} \
                 (set {port_key} to a free port, or {off})"
            );
            None
        }
    }
}

fn serve(listener: TcpListener, app: Router, what: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("{what} stopped: {e}");
        }
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match tokio::task::spawn_blocking(move || prometheus::render(&shared)).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Every request comes here: the command list at the command URL, a command
/// below it, 404 elsewhere. Only GET, as ZooKeeper's.
async fn route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let base = shared.config.admin.command_url.as_str();
    let path = uri.path();
    let Some(rest) = path.strip_prefix(base) else {
        return not_found();
    };
    let name = match rest {
        "" | "/" => None,
        _ => match rest.strip_prefix('/') {
            Some(name) if !name.contains('/') => Some(name),
            _ => return not_found(),
        },
    };
    if method != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET")],
            format!("HTTP method {method} is not supported by this URL\n"),
        )
            .into_response();
    }
    let Some(name) = name else {
        return command_links(base);
    };
    let args = query_args(uri.query().unwrap_or(""));
    // The commands take the core lock and read /proc: off the async threads.
    let name = name.to_string();
    let body = tokio::task::spawn_blocking(move || commands::run(&shared, &name, &args)).await;
    match body {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("admin command failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /commands`: a link to each command, as ZooKeeper's page lists them.
fn command_links(base: &str) -> Response {
    let mut page = String::new();
    for name in commands::primary_names() {
        page.push_str(&format!("<a href=\"{base}/{name}\">{name}</a>\n<br/>\n"));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        page,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Body::from("Not Found\n")).into_response()
}

/// `a=1&b=2` into pairs (the one argument any command takes, `traceMask`,
/// is a number: no percent-decoding needed beyond keeping the text).
fn query_args(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}
