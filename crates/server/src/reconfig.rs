//! Dynamic reconfiguration (ZooKeeper's `reconfig`, opcode 16, behind
//! `reconfigEnabled`).
//!
//! The server holding the client's connection queues the reply slot and
//! hands the request to the leader (directly, or as a peer message). The
//! leader checks it in ZooKeeper's order (reconfig in progress, config
//! version, the new member list, the voter count, a synced quorum of the new
//! voters, WRITE on `/zookeeper/config`), changes the Raft membership in one
//! joint-consensus step, then proposes a log entry that sets
//! `/zookeeper/config` — or, when a check failed, an error entry. Either
//! entry carries the origin connection, so the reply comes from the apply
//! step like every other write's.
//!
//! Each member's `server.N` line travels in the Raft membership itself, so
//! the membership alone says what `/zookeeper/config` must hold. A leader
//! that finds the two apart (its predecessor committed a membership change
//! and died before the config entry) writes the config entry itself
//! ([`reconcile`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_proto::{perms, ErrorCode, Id};
use corral_replication::Member;
use corral_tree::TxnOp;
use serde::{Deserialize, Serialize};

use crate::config::{parse_members, render_members, PeerRole, PeerSpec};
use crate::core::{Pending, ReplyShape, Shared};
use crate::entry::LogEntry;
use crate::write_path::stamp;

/// The node that holds the dynamic configuration.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// The server reads the config node as the super user: no ACL applies to it.
fn server_itself() -> [Id; 1] {
    [Id::new("super", "")]
}

/// `/zookeeper/config`'s text and Stat, as the server holds them.
pub fn config_node(tree: &corral_tree::DataTree) -> Option<(String, corral_proto::Stat)> {
    tree.get_data(CONFIG_NODE, &server_itself())
        .ok()
        .map(|(d, stat)| {
            (
                String::from_utf8_lossy(d.unwrap_or_default()).into_owned(),
                stat,
            )
        })
}

/// A reconfig request on its way to the leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconfigCall {
    pub origin: u64,
    pub conn: u64,
    pub xid: i32,
    pub session_id: i64,
    /// The connection's identities, for the ACL check on the leader.
    pub auth: Vec<Id>,
    pub joining: Option<String>,
    pub leaving: Option<String>,
    pub new_members: Option<String>,
    pub cur_config_id: i64,
}

/// What one server sends the leader outside the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Sessions whose clients were heard from since the last report.
    Touches(Vec<i64>),
    Reconfig(ReconfigCall),
}

impl PeerMessage {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// No server can take a reconfig now (no replica yet, or no leader known).
#[derive(Debug, thiserror::Error)]
#[error("no leader to hand a reconfig to")]
pub struct NoLeader;

/// Hands a reconfig to the leader. `Err` when there is no way to reach it;
/// the caller closes the connection, as for a write the log refused.
pub fn submit(shared: &Arc<Shared>, call: ReconfigCall) -> Result<(), NoLeader> {
    let Some(replica) = shared.replica.get() else {
        return Err(NoLeader);
    };
    watch_for_lost_answer(shared, call.conn, call.xid);
    if replica.is_leader() {
        let shared = shared.clone();
        tokio::spawn(async move { lead(shared, call).await });
        return Ok(());
    }
    replica
        .send_to_leader(PeerMessage::Reconfig(call).encode().into())
        .map_err(|e| {
            tracing::warn!("cannot hand a reconfig to the leader: {e}");
            NoLeader
        })
}

/// On the leader: a reconfig handed over by another server.
pub fn received(shared: &Arc<Shared>, call: ReconfigCall) {
    let leader = shared.replica.get().is_some_and(|r| r.is_leader());
    if !leader {
        // Leadership moved while the message travelled; the origin's
        // watchdog closes the connection and the client retries.
        tracing::info!(
            origin = call.origin,
            "reconfig reached a server that no longer leads"
        );
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move { lead(shared, call).await });
}

/// If the leader never answers (it died, the message was lost), close the
/// connection so the client learns it must retry, as ZooKeeper's followers
/// drop their clients when the leader goes.
fn watch_for_lost_answer(shared: &Arc<Shared>, conn_id: u64, xid: i32) {
    let config = &shared.config;
    let limit = Duration::from_millis(
        u64::from(config.tick_time_ms) * u64::from(config.init_limit.max(1)) + 10_000,
    );
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        let mut core = shared.core.lock();
        let waiting = core.conns.get(&conn_id).is_some_and(|c| {
            c.pending.iter().any(|p| {
                matches!(p, Pending::Write { xid: x, shape: ReplyShape::Reconfig, .. } if *x == xid)
            })
        });
        if waiting {
            tracing::warn!(
                conn_id,
                xid,
                "no answer to a reconfig; closing the connection"
            );
            core.drop_conn(conn_id);
        }
    });
}

/// Runs one reconfig on the leader and logs its outcome.
async fn lead(shared: Arc<Shared>, call: ReconfigCall) {
    let owns_busy = shared
        .reconfig_busy
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    let outcome = if owns_busy {
        decide_and_change(&shared, &call).await
    } else {
        Err(ErrorCode::ReconfigInProgress)
    };
    let op = match outcome {
        Ok(members) => TxnOp::SetConfig { members },
        Err(code) => {
            tracing::info!(code = ?code, "reconfig refused");
            TxnOp::Fail(code)
        }
    };
    let entry = LogEntry {
        origin: call.origin,
        conn: call.conn,
        xid: call.xid,
        txn: stamp(call.session_id, &call.auth, op),
    };
    if shared.propose(entry.encode()).await.is_err() {
        tracing::warn!("the outcome of a reconfig could not be logged");
    }
    if owns_busy {
        shared.reconfig_busy.store(false, Ordering::Release);
    }
}

async fn decide_and_change(shared: &Arc<Shared>, call: &ReconfigCall) -> Result<String, ErrorCode> {
    let replica = shared.replica.get().ok_or(ErrorCode::ConnectionLoss)?;
    let next = plan(shared, call)?;
    let target: BTreeMap<u64, Member> = next.iter().map(|p| (p.id, member_of(p))).collect();
    replica.change_members(&target).await.map_err(|e| {
        tracing::warn!("reconfig: membership change failed: {e}");
        match e {
            corral_replication::ReplicationError::Membership(_) => ErrorCode::ReconfigInProgress,
            _ => ErrorCode::NewConfigNoQuorum,
        }
    })?;
    tracing::info!(members = ?target.keys().collect::<Vec<_>>(), "reconfig committed");
    Ok(render_members(&next))
}

/// The checks ZooKeeper's leader makes before it logs a reconfig, in its
/// order; the new member list when they pass.
fn plan(shared: &Shared, call: &ReconfigCall) -> Result<Vec<PeerSpec>, ErrorCode> {
    let replica = shared.replica.get().ok_or(ErrorCode::ConnectionLoss)?;
    let metrics = replica.metrics();
    if metrics.membership_changing {
        return Err(ErrorCode::ReconfigInProgress);
    }
    // Whether the caller may write /zookeeper/config; refused below, in
    // ZooKeeper's order (after the quorum checks).
    let (current_text, may_write) = {
        let core = shared.core.lock();
        let text = config_node(&core.tree).map(|(t, _)| t).unwrap_or_default();
        let acl = core
            .tree
            .get_acl(CONFIG_NODE, &server_itself())
            .map(|(a, _)| a)
            .unwrap_or_default();
        (text, core.tree.permits(&acl, &call.auth, perms::WRITE))
    };
    let version = config_version(&current_text);
    if call.cur_config_id != -1 && call.cur_config_id != version {
        return Err(ErrorCode::BadVersion);
    }
    let current = parse_members(&current_text).map_err(|_| ErrorCode::BadArguments)?;
    let next = match &call.new_members {
        Some(members) => parse_members(members).map_err(|e| {
            tracing::info!("reconfig: bad member list: {e}");
            ErrorCode::BadArguments
        })?,
        None => incremental(current, call.joining.as_deref(), call.leaving.as_deref())?,
    };
    let voters: Vec<u64> = next
        .iter()
        .filter(|p| p.role == PeerRole::Participant)
        .map(|p| p.id)
        .collect();
    let least = if shared.config.standalone_enabled {
        2
    } else {
        1
    };
    if voters.len() < least {
        tracing::info!(
            "Reconfig failed - new configuration must include at least {least} follower(s)"
        );
        return Err(ErrorCode::BadArguments);
    }
    let synced = voters
        .iter()
        .filter(|id| **id == replica.node_id() || metrics.synced_members.contains(id))
        .count();
    if synced * 2 <= voters.len() {
        tracing::info!(
            "Reconfig failed - there must be a connected and synced quorum in new configuration"
        );
        return Err(ErrorCode::NewConfigNoQuorum);
    }
    if !may_write {
        return Err(ErrorCode::NoAuth);
    }
    Ok(next)
}

/// ZooKeeper's incremental form: remove the leaving ids, then add or
/// replace the joining `server.N=…` specs (each with a client port).
fn incremental(
    mut servers: Vec<PeerSpec>,
    joining: Option<&str>,
    leaving: Option<&str>,
) -> Result<Vec<PeerSpec>, ErrorCode> {
    for id in leaving.into_iter().flat_map(|l| l.split(',')) {
        let id = id.trim();
        if id.is_empty() {
            continue;
        }
        let id: u64 = id.parse().map_err(|_| ErrorCode::BadArguments)?;
        servers.retain(|p| p.id != id);
    }
    for joiner in joining.into_iter().flat_map(|j| j.split(',')) {
        let joiner = joiner.trim();
        if joiner.is_empty() {
            continue;
        }
        let Some((key, value)) = joiner.split_once('=') else {
            return Err(ErrorCode::BadArguments);
        };
        let spec = PeerSpec::parse(key.trim(), value.trim()).map_err(|e| {
            tracing::info!("reconfig: wrong format of server string: {e}");
            ErrorCode::BadArguments
        })?;
        if spec.client_addr.is_none() {
            // ZooKeeper: "each server should have at least 3 ports specified".
            return Err(ErrorCode::BadArguments);
        }
        let clash = servers.iter().any(|p| {
            p.id != spec.id
                && p.host == spec.host
                && (p.quorum_port == spec.quorum_port || p.election_port == spec.election_port)
        });
        if clash {
            return Err(ErrorCode::BadArguments);
        }
        servers.retain(|p| p.id != spec.id);
        servers.push(spec);
    }
    servers.sort_by_key(|p| p.id);
    Ok(servers)
}

/// The `version=` of a dynamic configuration's text (hex), 0 when absent.
pub fn config_version(text: &str) -> i64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version="))
        .and_then(|v| i64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// A server line as a Raft member: replication goes to `host:quorumPort`.
pub fn member_of(p: &PeerSpec) -> Member {
    let addr = format!("{}:{}", p.host, p.quorum_port);
    let member = match p.role {
        PeerRole::Participant => Member::participant(addr),
        PeerRole::Observer => Member::observer(addr),
    };
    member.with_spec(p.line())
}

/// The `server.N` lines the Raft membership implies, when every member
/// carries its line (a member's role is the membership's, not its line's).
fn members_text(members: &BTreeMap<u64, Member>) -> Option<String> {
    let mut peers = Vec::with_capacity(members.len());
    for (id, m) in members {
        let (key, value) = m.spec.split_once('=')?;
        let mut spec = PeerSpec::parse(key, value).ok()?;
        if spec.id != *id {
            return None;
        }
        spec.role = if m.observer {
            PeerRole::Observer
        } else {
            PeerRole::Participant
        };
        peers.push(spec);
    }
    Some(render_members(&peers))
}

/// How long the membership and `/zookeeper/config` may disagree before the
/// leader writes the config entry itself.
const ORPHAN_AFTER: Duration = Duration::from_secs(3);

/// What [`reconcile`] remembers between ticks.
#[derive(Debug, Default)]
pub struct Reconciler {
    /// Membership index already matched by the config node.
    done: Option<u64>,
    apart_since: Option<Instant>,
}

/// On the leader, from housekeeping: if the committed membership and
/// `/zookeeper/config` disagree after a reconfig (the previous leader died
/// between the two), log the config entry the membership implies.
pub async fn reconcile(shared: &Arc<Shared>, state: &mut Reconciler) {
    let Some(replica) = shared.replica.get() else {
        return;
    };
    if !replica.is_leader() || shared.reconfig_busy.load(Ordering::Acquire) {
        return;
    }
    let metrics = replica.metrics();
    if metrics.membership_changing || metrics.membership_index == state.done {
        return;
    }
    let Some(implied) = members_text(&metrics.members) else {
        return;
    };
    let Some((current, stat)) = config_node(&shared.core.lock().tree) else {
        return;
    };
    let reconfigured = stat.mzxid != 0;
    let current_members = parse_members(&current)
        .map(|p| render_members(&p))
        .unwrap_or_default();
    // Until a first reconfig, the config node comes from zoo.cfg and the
    // membership may still be forming (observers join after the voters).
    let static_ids: Vec<u64> = shared.config.servers.iter().map(|p| p.id).collect();
    let grew_beyond_static = metrics.members.keys().any(|id| !static_ids.contains(id))
        || shared
            .config
            .servers
            .iter()
            .any(|p| p.role == PeerRole::Participant && !metrics.members.contains_key(&p.id));
    if implied == current_members || !(reconfigured || grew_beyond_static) {
        state.done = metrics.membership_index;
        state.apart_since = None;
        return;
    }
    // The config entry of a reconfig under way follows its membership
    // change within moments; only a lasting disagreement is an orphan.
    let since = *state.apart_since.get_or_insert_with(Instant::now);
    if since.elapsed() < ORPHAN_AFTER {
        return;
    }
    state.done = metrics.membership_index;
    state.apart_since = None;
    tracing::info!("the membership changed without its config entry; logging it now");
    let entry = LogEntry {
        origin: shared.server_id,
        conn: 0,
        xid: 0,
        txn: stamp(0, &[], TxnOp::SetConfig { members: implied }),
    };
    let _ = shared.propose(entry.encode()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(line: &str) -> PeerSpec {
        let (k, v) = line.split_once('=').unwrap();
        PeerSpec::parse(k, v).unwrap()
    }

    #[test]
    fn incremental_removes_then_adds() {
        let current = vec![
            spec("server.1=h:1:2:participant;3"),
            spec("server.2=h:4:5:participant;6"),
            spec("server.3=h:7:8:participant;9"),
        ];
        let next = incremental(current, Some("server.4=h:10:11:observer;12"), Some("3")).unwrap();
        let ids: Vec<u64> = next.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![1, 2, 4]);
        assert_eq!(next[2].role, PeerRole::Observer);
    }

    #[test]
    fn incremental_refuses_what_zookeeper_refuses() {
        let current = vec![spec("server.1=h:1:2:participant;3")];
        // No client port.
        assert_eq!(
            incremental(current.clone(), Some("server.2=h:4:5"), None),
            Err(ErrorCode::BadArguments)
        );
        // Not a number.
        assert_eq!(
            incremental(current.clone(), None, Some("x")),
            Err(ErrorCode::BadArguments)
        );
        // Another server's quorum port.
        assert_eq!(
            incremental(current, Some("server.2=h:1:5;7"), None),
            Err(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn the_version_is_the_hex_line() {
        assert_eq!(
            config_version("server.1=a:1:2:participant\nversion=100000003"),
            0x1_0000_0003
        );
        assert_eq!(config_version(""), 0);
    }

    #[test]
    fn membership_text_takes_the_role_from_the_membership() {
        let p = spec("server.2=h:4:5:participant;6");
        let members = BTreeMap::from([
            (2, member_of(&p).clone()),
            (1, {
                let mut m = member_of(&spec("server.1=h:1:2:participant;3"));
                m.observer = true;
                m
            }),
        ]);
        assert_eq!(
            members_text(&members).unwrap(),
            "server.1=h:1:2:observer;0.0.0.0:3\nserver.2=h:4:5:participant;0.0.0.0:6\n"
        );
    }
}
