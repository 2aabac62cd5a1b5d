//! Helpers shared by the recipe tests (`recipes_*.rs`): clients through a
//! cuttable proxy, forcing a session to expire, and the server's view of
//! who watches what (`wchp`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use corral_client::{Client, SessionState};

use crate::support::{wait_state, Proxy, TestServer};

pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connected through `proxy`.
pub async fn through(proxy: &Proxy) -> Client {
    Client::builder()
        .session_timeout(SESSION_TIMEOUT)
        .connect(&proxy.addr.to_string())
        .await
        .expect("connect through the proxy")
}

/// Ends `victim`'s session on the server while `victim` cannot reach it
/// (its proxy blocked), the way a long partition would; the victim sees
/// Expired once it can connect again.
pub async fn expire(server: &TestServer, victim: &Client, proxy: &Proxy) {
    proxy.set_blocked(true);
    proxy.cut();
    wait_state(victim, SessionState::Disconnected, EVENT_TIMEOUT).await;
    let twin = Client::builder()
        .session(victim.session_id(), &victim.session_password())
        .session_timeout(SESSION_TIMEOUT)
        .connect(&server.connect_string())
        .await
        .expect("reattach to the victim's session");
    twin.close().await.expect("close the twin");
    proxy.set_blocked(false);
    wait_state(victim, SessionState::Expired, EVENT_TIMEOUT).await;
}

/// A client connected through `proxy` that starts a new session after an
/// expiry.
pub async fn through_renewing(proxy: &Proxy) -> Client {
    Client::builder()
        .session_timeout(SESSION_TIMEOUT)
        .renew_session_on_expiry(true)
        .connect(&proxy.addr.to_string())
        .await
        .expect("connect through the proxy")
}

/// Like [`expire`], for a client that renews expired sessions: returns
/// once it is connected with its new session.
pub async fn expire_and_renew(server: &TestServer, victim: &Client, proxy: &Proxy) {
    let old_session = victim.session_id();
    let expired_before = victim.expired_sessions();
    proxy.set_blocked(true);
    proxy.cut();
    // Blocked: the client stays Disconnected until the proxy lets it in.
    wait_state(victim, SessionState::Disconnected, EVENT_TIMEOUT).await;
    let twin = Client::builder()
        .session(old_session, &victim.session_password())
        .session_timeout(SESSION_TIMEOUT)
        .connect(&server.connect_string())
        .await
        .expect("reattach to the victim's session");
    twin.close().await.expect("close the twin");
    proxy.set_blocked(false);
    eventually("a new session after the expiry", || async {
        victim.expired_sessions() == expired_before + 1 && victim.state().is_connected()
    })
    .await;
    assert_ne!(victim.session_id(), old_session);
}

/// Waits for `future` at most [`EVENT_TIMEOUT`], naming `what` on failure.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(EVENT_TIMEOUT, future).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not within {EVENT_TIMEOUT:?}"),
    }
}

/// Polls `check` until it is true (panics after [`EVENT_TIMEOUT`]).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {EVENT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn four_letter(addr: SocketAddr, word: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("4lw");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(word.as_bytes()).expect("4lw write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `wchp`: the sessions (as `0x…` hex) holding a data/exist watch, by path.
pub async fn watches_by_path(addr: SocketAddr) -> BTreeMap<String, Vec<i64>> {
    let text = tokio::task::spawn_blocking(move || four_letter(addr, "wchp"))
        .await
        .expect("wchp task");
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let hex = line.trim().trim_start_matches("0x");
            if let (Some(path), Ok(id)) = (&current, u64::from_str_radix(hex, 16)) {
                out.entry(String::clone(path)).or_default().push(id as i64);
            }
        } else {
            current = Some(line.trim().to_owned());
        }
    }
    out
}
