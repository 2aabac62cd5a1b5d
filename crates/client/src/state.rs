//! The session's state as the application sees it, published by the session
//! task through a `tokio::sync::watch` channel
//! ([`crate::Client::state_watcher`]).

use corral_proto::KeeperState;

/// Where the client's session stands.
///
/// ```text
/// Connecting ──► Connected ◄──► Disconnected ──► Expired
///  ▲   │          │    ▲                 │         │
///  │   │          ▼    │                 │         │ (renewing client)
///  └───┼──────────┼────┼─────────────────┼─────────┘
///      │          │    │                 └─────► Closed / AuthFailed
///      └──────► Closed, AuthFailed, Expired (terminal)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Establishing the first connection of a new session (also of the
    /// new session after an expiry, for a renewing client).
    Connecting,
    /// Connected; requests flow.
    Connected,
    /// Connected to a read-only server (only when the builder allowed it):
    /// reads work, writes fail with `NotReadOnly`.
    ConnectedReadOnly,
    /// The connection dropped; the client is trying the next server. The
    /// session (ephemerals, watches) survives if it reconnects within the
    /// session timeout. Requests wait in the queue meanwhile.
    Disconnected,
    /// The session is gone (the server said so, or no server could be
    /// reached within the session timeout). Terminal, unless the client
    /// renews expired sessions: then `Connecting` follows, for a new
    /// session.
    Expired,
    /// The server refused the credentials. Terminal.
    AuthFailed,
    /// [`crate::Client::close`] was called or every handle was dropped.
    /// Terminal.
    Closed,
}

impl SessionState {
    /// True for the states that end a session. `Expired` is final only
    /// for a client that does not renew sessions; see
    /// [`crate::Client::is_finished`].
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Expired | SessionState::AuthFailed | SessionState::Closed
        )
    }

    /// True while requests can be sent right away.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            SessionState::Connected | SessionState::ConnectedReadOnly
        )
    }

    /// The `Watcher.Event.KeeperState` a ZooKeeper client reports for this
    /// state (`Connecting` reports as `Disconnected`).
    pub fn keeper_state(self) -> KeeperState {
        match self {
            SessionState::Connecting | SessionState::Disconnected => KeeperState::Disconnected,
            SessionState::Connected => KeeperState::SyncConnected,
            SessionState::ConnectedReadOnly => KeeperState::ConnectedReadOnly,
            SessionState::Expired => KeeperState::Expired,
            SessionState::AuthFailed => KeeperState::AuthFailed,
            SessionState::Closed => KeeperState::Closed,
        }
    }
}
