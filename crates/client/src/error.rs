//! The client's error type: every ZooKeeper result code a request can come
//! back with (`KeeperException.Code`), plus the few failures that happen on
//! this side of the wire (bad path, bad connect string, client closed, a
//! reply we cannot read).
//!
//! Server codes arrive as `corral_proto::ErrorCode` in the reply header;
//! [`Error::from_code`] turns them into this enum at the one place replies
//! are matched to requests (the session task).

use corral_proto::ErrorCode;
use thiserror::Error;

/// Why a client call failed.
///
/// The variants up to [`Error::Throttled`] mirror ZooKeeper's result codes
/// one to one ([`Error::code`] gives the wire value back); the rest are
/// client-side conditions with no wire code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("system error on the server")]
    SystemError,
    #[error("runtime inconsistency (an earlier op of the same multi failed)")]
    RuntimeInconsistency,
    #[error("data inconsistency")]
    DataInconsistency,
    /// The connection dropped before the reply arrived. The request may or
    /// may not have been applied; the session is still alive if the client
    /// reconnects within the session timeout.
    #[error("connection to the server lost before the reply arrived")]
    ConnectionLoss,
    #[error("the server could not decode the request (marshalling error)")]
    MarshallingError,
    #[error("operation not implemented by the server")]
    Unimplemented,
    #[error("operation timed out")]
    OperationTimeout,
    #[error("bad arguments")]
    BadArguments,
    #[error("unknown session")]
    UnknownSession,
    #[error("new configuration has no quorum")]
    NewConfigNoQuorum,
    #[error("reconfiguration in progress")]
    ReconfigInProgress,
    #[error("API error")]
    ApiError,
    #[error("node does not exist")]
    NoNode,
    #[error("not authorized (ACL check failed)")]
    NoAuth,
    #[error("version does not match")]
    BadVersion,
    #[error("ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    #[error("node already exists")]
    NodeExists,
    #[error("node has children")]
    NotEmpty,
    /// The session is gone: its ephemerals are deleted and its watches
    /// lost. Terminal for this client; make a new one.
    #[error("session expired")]
    SessionExpired,
    #[error("invalid callback")]
    InvalidCallback,
    #[error("invalid ACL")]
    InvalidAcl,
    /// Authentication was refused. Terminal for this client.
    #[error("authentication failed")]
    AuthFailed,
    #[error("session moved to another server")]
    SessionMoved,
    #[error("server is read-only")]
    NotReadOnly,
    #[error("ephemeral node on a local session")]
    EphemeralOnLocalSession,
    #[error("no such watcher")]
    NoWatcher,
    #[error("request timed out")]
    RequestTimeout,
    #[error("reconfiguration disabled")]
    ReconfigDisabled,
    #[error("session closed: SASL authentication required")]
    SessionClosedRequireSaslAuth,
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("request throttled by the server")]
    Throttled,

    /// One op of a multi failed, so none was applied. `index` is the
    /// position of the failing op in the builder; `error` is its code.
    #[error("multi op #{index} failed: {error}")]
    MultiFailed { index: usize, error: Box<Error> },
    /// A path the server would reject; nothing was sent.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The connect string could not be parsed.
    #[error("invalid connect string {input:?}: {reason}")]
    InvalidConnectString { input: String, reason: String },
    /// A request larger than the packet limit (`jute.maxbuffer`); nothing
    /// was sent, because the server would drop the connection.
    #[error(
        "request of {len_bytes} bytes exceeds the packet limit of {max_bytes} bytes \
         (jute.maxbuffer); raise it on both client and server if intended"
    )]
    PacketTooLarge { len_bytes: usize, max_bytes: usize },
    /// The client was closed (by [`crate::Client::close`]) or its
    /// background task has ended.
    #[error("client is closed")]
    ClientClosed,
    /// No server of the connect string could be reached in time for a new
    /// session.
    #[error("could not connect to any of {hosts}: {last_error}")]
    ConnectFailed { hosts: String, last_error: String },
    /// The server sent something this client cannot make sense of.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A result code this client does not know.
    #[error("unknown result code {0}")]
    UnknownCode(i32),
}

impl Error {
    /// The error for a non-zero result code from the wire.
    pub fn from_code(code: i32) -> Error {
        match ErrorCode::from_code(code) {
            Some(code) => Error::from(code),
            None => Error::UnknownCode(code),
        }
    }

    /// The ZooKeeper result code, for errors that mirror one.
    pub fn code(&self) -> Option<ErrorCode> {
        use Error::*;
        Some(match self {
            SystemError => ErrorCode::SystemError,
            RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            DataInconsistency => ErrorCode::DataInconsistency,
            ConnectionLoss => ErrorCode::ConnectionLoss,
            MarshallingError => ErrorCode::MarshallingError,
            Unimplemented => ErrorCode::Unimplemented,
            OperationTimeout => ErrorCode::OperationTimeout,
            BadArguments => ErrorCode::BadArguments,
            UnknownSession => ErrorCode::UnknownSession,
            NewConfigNoQuorum => ErrorCode::NewConfigNoQuorum,
            ReconfigInProgress => ErrorCode::ReconfigInProgress,
            ApiError => ErrorCode::ApiError,
            NoNode => ErrorCode::NoNode,
            NoAuth => ErrorCode::NoAuth,
            BadVersion => ErrorCode::BadVersion,
            NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            NodeExists => ErrorCode::NodeExists,
            NotEmpty => ErrorCode::NotEmpty,
            SessionExpired => ErrorCode::SessionExpired,
            InvalidCallback => ErrorCode::InvalidCallback,
            InvalidAcl => ErrorCode::InvalidAcl,
            AuthFailed => ErrorCode::AuthFailed,
            SessionMoved => ErrorCode::SessionMoved,
            NotReadOnly => ErrorCode::NotReadOnly,
            EphemeralOnLocalSession => ErrorCode::EphemeralOnLocalSession,
            NoWatcher => ErrorCode::NoWatcher,
            RequestTimeout => ErrorCode::RequestTimeout,
            ReconfigDisabled => ErrorCode::ReconfigDisabled,
            SessionClosedRequireSaslAuth => ErrorCode::SessionClosedRequireSaslAuth,
            QuotaExceeded => ErrorCode::QuotaExceeded,
            Throttled => ErrorCode::ThrottledOp,
            MultiFailed { error, .. } => return error.code(),
            InvalidPath { .. } => ErrorCode::BadArguments,
            PacketTooLarge { .. } => ErrorCode::BadArguments,
            InvalidConnectString { .. }
            | ClientClosed
            | ConnectFailed { .. }
            | Protocol(_)
            | UnknownCode(_) => return None,
        })
    }

    /// True when the outcome of the request is unknown because the
    /// connection dropped: it may have been applied. Retrying is the
    /// caller's choice (safe for reads and versioned writes).
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, Error::ConnectionLoss)
    }

    /// True for the errors after which this client can do nothing more
    /// (session expired, authentication failed, client closed).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired | Error::AuthFailed | Error::ClientClosed
        )
    }
}

impl From<ErrorCode> for Error {
    /// Maps a wire code to its variant. `ErrorCode::Ok` is not an error;
    /// it maps to [`Error::Protocol`] so that a bug cannot pass silently.
    fn from(code: ErrorCode) -> Error {
        use Error::*;
        match code {
            ErrorCode::Ok => Protocol("result code 0 reported as an error".into()),
            ErrorCode::SystemError => SystemError,
            ErrorCode::RuntimeInconsistency => RuntimeInconsistency,
            ErrorCode::DataInconsistency => DataInconsistency,
            ErrorCode::ConnectionLoss => ConnectionLoss,
            ErrorCode::MarshallingError => MarshallingError,
            ErrorCode::Unimplemented => Unimplemented,
            ErrorCode::OperationTimeout => OperationTimeout,
            ErrorCode::BadArguments => BadArguments,
            ErrorCode::NewConfigNoQuorum => NewConfigNoQuorum,
            ErrorCode::ReconfigInProgress => ReconfigInProgress,
            ErrorCode::UnknownSession => UnknownSession,
            ErrorCode::ApiError => ApiError,
            ErrorCode::NoNode => NoNode,
            ErrorCode::NoAuth => NoAuth,
            ErrorCode::BadVersion => BadVersion,
            ErrorCode::NoChildrenForEphemerals => NoChildrenForEphemerals,
            ErrorCode::NodeExists => NodeExists,
            ErrorCode::NotEmpty => NotEmpty,
            ErrorCode::SessionExpired => SessionExpired,
            ErrorCode::InvalidCallback => InvalidCallback,
            ErrorCode::InvalidAcl => InvalidAcl,
            ErrorCode::AuthFailed => AuthFailed,
            ErrorCode::SessionMoved => SessionMoved,
            ErrorCode::NotReadOnly => NotReadOnly,
            ErrorCode::EphemeralOnLocalSession => EphemeralOnLocalSession,
            ErrorCode::NoWatcher => NoWatcher,
            ErrorCode::RequestTimeout => RequestTimeout,
            ErrorCode::ReconfigDisabled => ReconfigDisabled,
            ErrorCode::SessionClosedRequireSaslAuth => SessionClosedRequireSaslAuth,
            ErrorCode::QuotaExceeded => QuotaExceeded,
            ErrorCode::ThrottledOp => Throttled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_code_round_trips_through_the_enum() {
        for code in -130..=0 {
            let Some(known) = ErrorCode::from_code(code) else {
                assert_eq!(Error::from_code(code), Error::UnknownCode(code));
                continue;
            };
            if known == ErrorCode::Ok {
                continue;
            }
            assert_eq!(Error::from_code(code).code(), Some(known), "code {code}");
        }
    }

    #[test]
    fn a_multi_failure_reports_the_failing_ops_code() {
        let err = Error::MultiFailed {
            index: 1,
            error: Box::new(Error::NoNode),
        };
        assert_eq!(err.code(), Some(ErrorCode::NoNode));
        assert_eq!(err.to_string(), "multi op #1 failed: node does not exist");
    }
}
