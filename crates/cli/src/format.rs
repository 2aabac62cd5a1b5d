//! Text exactly as zkCli prints it: Stat blocks (`StatPrinter`), ACL
//! entries (jute's CSV `Id.toString()`), watch events
//! (`WatchedEvent.toString()`), Java list syntax, and the error messages of
//! `CliWrapperException` / `KeeperException.getMessage()`.

use corral_client::{Acl, Error, ErrorCode, EventType, Id, KeeperState, Stat};

use crate::javadate;

/// The eleven `StatPrinter` lines, each ending in a newline.
pub fn stat(stat: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        javadate::format(stat.ctime),
        stat.mzxid,
        javadate::format(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children
    )
}

/// One `getAcl` entry: `'scheme,'id` then `: perms` on the next line.
pub fn acl(acl: &Acl) -> String {
    format!("{}\n: {}", id(&acl.id), perms(acl.perms))
}

/// jute's CSV rendering of an `Id` (without its trailing newline).
pub fn id(id: &Id) -> String {
    format!("{},{}", csv_string(&id.scheme), csv_string(&id.id))
}

/// jute `Utils.toCSVString`: a leading quote and a few characters escaped.
fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// `GetAclCommand.getPermString`: the letters in the order `cdrwa`.
pub fn perms(perms: i32) -> String {
    use corral_client::perms::{ADMIN, CREATE, DELETE, READ, WRITE};
    [
        (CREATE, 'c'),
        (DELETE, 'd'),
        (READ, 'r'),
        (WRITE, 'w'),
        (ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| perms & bit != 0)
    .map(|(_, letter)| *letter)
    .collect()
}

/// `AbstractCollection.toString()`: `[a, b]`.
pub fn java_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}

/// `WatchedEvent.toString()`; session events have no path (`path:null`).
pub fn event(state: KeeperState, event_type: EventType, path: Option<&str>) -> String {
    format!(
        "WatchedEvent state:{} type:{} path:{}",
        keeper_state_name(state),
        event_type_name(event_type),
        path.unwrap_or("null")
    )
}

/// What the shell's watcher prints for an event: `printMessage("WATCHER::")`
/// then `printMessage(event)`, each with a blank line before it.
pub fn watcher_block(state: KeeperState, event_type: EventType, path: Option<&str>) -> String {
    format!("\nWATCHER::\n\n{}\n", event(state, event_type, path))
}

fn keeper_state_name(state: KeeperState) -> &'static str {
    match state {
        KeeperState::Disconnected => "Disconnected",
        KeeperState::SyncConnected => "SyncConnected",
        KeeperState::AuthFailed => "AuthFailed",
        KeeperState::ConnectedReadOnly => "ConnectedReadOnly",
        KeeperState::SaslAuthenticated => "SaslAuthenticated",
        KeeperState::Expired => "Expired",
        KeeperState::Closed => "Closed",
    }
}

fn event_type_name(event_type: EventType) -> &'static str {
    match event_type {
        EventType::None => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
        EventType::DataWatchRemoved => "DataWatchRemoved",
        EventType::ChildWatchRemoved => "ChildWatchRemoved",
        EventType::PersistentWatchRemoved => "PersistentWatchRemoved",
    }
}

/// `KeeperException.getCodeMessage`.
fn code_message(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        Ok => "ok",
        SystemError => "SystemError",
        RuntimeInconsistency => "RuntimeInconsistency",
        DataInconsistency => "DataInconsistency",
        ConnectionLoss => "ConnectionLoss",
        MarshallingError => "MarshallingError",
        NewConfigNoQuorum => "NewConfigNoQuorum",
        ReconfigInProgress => "ReconfigInProgress",
        Unimplemented => "Unimplemented",
        OperationTimeout => "OperationTimeout",
        BadArguments => "BadArguments",
        ApiError => "APIError",
        NoNode => "NoNode",
        NoAuth => "NoAuth",
        BadVersion => "BadVersion",
        NoChildrenForEphemerals => "NoChildrenForEphemerals",
        NodeExists => "NodeExists",
        InvalidAcl => "InvalidACL",
        AuthFailed => "AuthFailed",
        NotEmpty => "Directory not empty",
        SessionExpired => "Session expired",
        InvalidCallback => "Invalid callback",
        SessionMoved => "Session moved",
        NotReadOnly => "Not a read-only call",
        EphemeralOnLocalSession => "Ephemeral node on local session",
        NoWatcher => "No such watcher",
        ReconfigDisabled => "Reconfig is disabled",
        SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
        QuotaExceeded => "Quota has exceeded",
        ThrottledOp => "Op throttled due to high load",
        UnknownSession => "Unknown error UNKNOWNSESSION",
        RequestTimeout => "Unknown error REQUESTTIMEOUT",
    }
}

/// The ZooKeeper code zkCli would have seen for a client error. Conditions
/// that only exist on this side of the wire read as the Java client's
/// nearest outcome (a closed or unreachable client is a ConnectionLoss).
fn keeper_code(err: &Error) -> Option<ErrorCode> {
    match err {
        Error::ClientClosed | Error::ConnectFailed { .. } => Some(ErrorCode::ConnectionLoss),
        other => other.code(),
    }
}

/// `KeeperException.getMessage()`: `KeeperErrorCode = NoNode for /a`.
pub fn keeper_message(err: &Error, path: Option<&str>) -> String {
    let Some(code) = keeper_code(err) else {
        return err.to_string();
    };
    // KeeperException.getMessage leaves out " for <path>" when the path is
    // null or empty (reconfig's errors carry an empty one).
    match path {
        Some(path) if !path.is_empty() => {
            format!("KeeperErrorCode = {} for {path}", code_message(code))
        }
        _ => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// `CliWrapperException`'s message for a failed request on `path`
/// (`None` where the Java exception carries no path: `null` in messages).
pub fn wrapper_message(err: &Error, path: Option<&str>) -> String {
    if let Error::InvalidPath { reason, .. } = err {
        return (*reason).to_owned();
    }
    let Some(code) = keeper_code(err) else {
        return err.to_string();
    };
    let p = path.unwrap_or("null");
    match code {
        ErrorCode::NoNode => format!("Node does not exist: {p}"),
        ErrorCode::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        ErrorCode::NodeExists => format!("Node already exists: {p}"),
        ErrorCode::NotEmpty => format!("Node not empty: {p}"),
        ErrorCode::NotReadOnly => format!("Not a read-only call: {p}"),
        ErrorCode::InvalidAcl => format!("Acl is not valid : {p}"),
        ErrorCode::NoAuth => format!("Insufficient permission : {p}"),
        ErrorCode::BadArguments => format!("Arguments are not valid : {p}"),
        ErrorCode::BadVersion => format!("version No is not valid : {p}"),
        ErrorCode::ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_owned()
        }
        ErrorCode::NewConfigNoQuorum => {
            "No quorum of new config is connected and up-to-date with the leader of last \
             committed config - try invoking reconfiguration after new servers are connected \
             and synced"
                .to_owned()
        }
        ErrorCode::QuotaExceeded => format!("Quota has exceeded : {p}"),
        _ => keeper_message(err, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_client::perms;

    #[test]
    fn acl_entries_use_jute_csv() {
        let entry = Acl {
            perms: perms::ALL,
            id: Id::anyone(),
        };
        assert_eq!(acl(&entry), "'world,'anyone\n: cdrwa");
        let odd = Acl {
            perms: perms::READ | perms::WRITE,
            id: Id::new("x", "a,b%}"),
        };
        assert_eq!(acl(&odd), "'x,'a%2Cb%25%7D\n: rw");
        assert_eq!(perms(0), "");
    }

    #[test]
    fn events_read_like_java() {
        assert_eq!(
            watcher_block(KeeperState::SyncConnected, EventType::None, None),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
        );
        assert_eq!(
            event(
                KeeperState::SyncConnected,
                EventType::NodeDataChanged,
                Some("/a")
            ),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
        );
    }

    #[test]
    fn errors_read_like_cli_wrapper_exception() {
        assert_eq!(
            wrapper_message(&Error::NoNode, Some("/x")),
            "Node does not exist: /x"
        );
        assert_eq!(
            wrapper_message(&Error::BadVersion, Some("/a")),
            "version No is not valid : /a"
        );
        assert_eq!(
            wrapper_message(&Error::InvalidAcl, None),
            "Acl is not valid : null"
        );
        assert_eq!(
            wrapper_message(&Error::NoWatcher, Some("/w")),
            "KeeperErrorCode = No such watcher for /w"
        );
        assert_eq!(
            keeper_message(&Error::NotEmpty, Some("/a")),
            "KeeperErrorCode = Directory not empty for /a"
        );
        assert_eq!(
            wrapper_message(&Error::ClientClosed, Some("/")),
            "KeeperErrorCode = ConnectionLoss for /"
        );
        assert_eq!(java_list(&["a", "b"]), "[a, b]");
        assert_eq!(java_list::<&str>(&[]), "[]");
    }
}
