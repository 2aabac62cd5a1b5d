//! Coordination recipes on top of [`Client`]: locks, leader election,
//! caches, service discovery, barriers, queues, counters and groups.
//!
//! Every recipe keeps Apache Curator's node layout where Curator defines
//! one, so a Corral process and a Curator (or `zookeeper-client`) process
//! can share a lock, a latch or a service registry:
//!
//! | recipe | Curator class | nodes |
//! |---|---|---|
//! | [`lock::Mutex`] | `InterProcessMutex` | `<path>/_c_<uuid>-lock-<seq>` (ephemeral sequential) |
//! | [`lock::ReadWriteLock`] | `InterProcessReadWriteLock` | `<path>/_c_<uuid>-__READ__<seq>`, `…-__WRIT__<seq>` |
//! | [`semaphore::Semaphore`] | `InterProcessSemaphoreV2` | `<path>/locks/…-lock-<seq>`, `<path>/leases/_c_<uuid>-lease-<seq>` |
//! | [`leader::LeaderLatch`] | `LeaderLatch` | `<path>/_c_<uuid>-latch-<seq>`, data = participant id |
//! | [`leader::LeaderSelector`] | `LeaderSelector` | the mutex layout, data = participant id |
//! | [`cache::NodeCache`], [`cache::ChildrenCache`], [`cache::TreeCache`] | `CuratorCache` | (reads only) |
//! | [`discovery::ServiceDiscovery`] | `ServiceDiscovery` (curator-x-discovery) | `<base>/<service>/<id>`, JSON `ServiceInstance` |
//! | [`barrier::DoubleBarrier`] | `DistributedDoubleBarrier` | `<path>/<uuid>` (ephemeral), `<path>/ready` |
//! | [`queue::Queue`] | `SimpleDistributedQueue` | `<path>/qn-<seq>` (persistent sequential) |
//! | [`counter::SharedCount`] | `SharedCount` | `<path>`, data = 4-byte big-endian `int` |
//! | [`group::GroupMember`] | `GroupMember` | `<path>/<member id>` (ephemeral) |
//! | [`id::IdGenerator`] | — | `<path>/id-<seq>` (ephemeral sequential, deleted at once) |
//!
//! # Failures
//!
//! Recipes retry reads and idempotent deletes after [`Error::ConnectionLoss`]
//! (the client queues them until it has reconnected), and find their own
//! sequential node again after a lost create reply by its `_c_<uuid>-`
//! prefix, as Curator's "protection" does. Everything an ephemeral node
//! stands for (a held lock, leadership, a registration, a membership) ends
//! with the session. On a client built with
//! [`crate::ClientBuilder::renew_session_on_expiry`] (Curator's behaviour)
//! the client gets a new session and the recipes re-join it: group
//! members, service registrations and leader latches create their nodes
//! again, leader selectors with auto-requeue queue again, and caches add
//! their watches again and rebuild. What cannot be re-established is
//! reported instead: a held lock or semaphore lease is lost
//! ([`lock::LockGuard::lost`] resolves, and `is_lost` says so), a leader
//! loses leadership. On a client without renewal, an expiry ends every
//! recipe built on it with [`Error::SessionExpired`]. While the client is
//! disconnected a lock holder cannot know whether it still holds the lock;
//! [`lock::LockGuard::lost`] and the leader recipes report that
//! conservatively.
//!
//! All recipes create their nodes with `world:anyone` ACLs.

pub mod barrier;
pub mod cache;
pub mod counter;
pub mod discovery;
pub mod group;
pub mod id;
pub mod leader;
pub mod lock;
pub mod queue;
pub mod semaphore;

use std::future::Future;
use std::time::Duration;

use corral_proto::{Acl, CreateMode};
use rand::RngCore;

use crate::{Client, Error, SessionState};

/// Curator's prefix of "protected" node names: `_c_<uuid>-<name><seq>`.
pub const PROTECTED_PREFIX: &str = "_c_";

/// How often an idempotent step is retried after a connection loss before
/// the error is handed to the caller.
const CONNECTION_LOSS_RETRIES_MAX: u32 = 8;

/// A random (version 4) UUID in its usual text form, as Java's
/// `UUID.randomUUID().toString()` writes it.
pub fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `parent` + `/` + `child`, without doubling the root's slash.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The last component of `path`.
pub(crate) fn node_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The parent of `path` (`/` for top-level nodes).
pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Curator's `StandardLockInternalsDriver.standardFixForSorting`: the part
/// of `name` after the last `lock_name`, which is the sequence number for
/// lock nodes (so nodes sort by sequence, whatever their UUID prefix).
pub(crate) fn fix_for_sorting<'a>(name: &'a str, lock_name: &str) -> &'a str {
    match name.rfind(lock_name) {
        Some(i) => &name[i + lock_name.len()..],
        None => name,
    }
}

/// Sorts lock nodes the way Curator does: by the part after the last of
/// `lock_names` found in each name.
pub(crate) fn sort_lock_nodes(children: &mut [String], lock_names: &[&str]) {
    let key = |name: &str| -> String {
        let mut s = name;
        for lock_name in lock_names {
            s = fix_for_sorting(s, lock_name);
        }
        s.to_owned()
    };
    children.sort_by_cached_key(|c| key(c));
}

/// Runs `op` again while it fails with a connection loss (the client holds
/// the retried request until it has reconnected, or fails it once the
/// session is gone). Only for steps that are safe to repeat.
pub(crate) async fn retry<T, F, Fut>(op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    retry_on(None, op).await
}

/// [`retry`], and also after an expiry when `client` renews sessions.
pub(crate) async fn retry_renewing<T, F, Fut>(client: &Client, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    retry_on(Some(client), op).await
}

async fn retry_on<T, F, Fut>(client: Option<&Client>, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let client_renews = client.is_some_and(Client::renews_expired_sessions);
    let mut attempts = 0;
    loop {
        match op().await {
            Err(Error::ConnectionLoss) if attempts < CONNECTION_LOSS_RETRIES_MAX => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempts))).await;
            }
            // In flight when the session expired; a renewing client sends
            // it again on the new session.
            Err(Error::SessionExpired)
                if client_renews && attempts < CONNECTION_LOSS_RETRIES_MAX =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempts))).await;
            }
            other => return other,
        }
    }
}

/// Creates every missing ancestor of `path` (not `path` itself), as
/// containers (deleted by the server once empty, like Curator's
/// `creatingParentContainersIfNeeded`) or as persistent nodes.
pub(crate) async fn create_parents(
    client: &Client,
    path: &str,
    container: bool,
) -> Result<(), Error> {
    let mode = if container {
        CreateMode::Container
    } else {
        CreateMode::Persistent
    };
    let acl = Acl::open_unsafe();
    let mut prefix = String::new();
    let parent = parent_of(path);
    if parent == "/" {
        return Ok(());
    }
    for component in parent[1..].split('/') {
        prefix.push('/');
        prefix.push_str(component);
        let created = retry(|| client.create(&prefix, b"", &acl, mode)).await;
        match created {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` if it does not exist, with `data`, and its missing
/// ancestors as containers (Curator's `creatingParentContainersIfNeeded`).
/// True when this call created it.
pub(crate) async fn ensure_node(
    client: &Client,
    path: &str,
    data: &[u8],
    mode: CreateMode,
) -> Result<bool, Error> {
    if path == "/" {
        return Ok(false);
    }
    let acl = Acl::open_unsafe();
    let mut parents_made = false;
    loop {
        match retry(|| client.create(path, data, &acl, mode)).await {
            Ok(_) => return Ok(true),
            Err(Error::NodeExists) => return Ok(false),
            Err(Error::NoNode) if !parents_made => {
                create_parents(client, path, true).await?;
                parents_made = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates a protected sequential node `<dir>/_c_<uuid>-<name><seq>` (see
/// Curator's `withProtection`), making missing parents. After a lost reply
/// it looks for its node by the UUID prefix before creating again, so a
/// retried create never leaves a stray node behind.
pub(crate) async fn create_protected(
    client: &Client,
    dir: &str,
    name: &str,
    data: &[u8],
    mode: CreateMode,
    container_parents: bool,
) -> Result<String, Error> {
    debug_assert!(mode.is_sequential());
    let prefix = format!("{PROTECTED_PREFIX}{}-", new_uuid());
    let path = join(dir, &format!("{prefix}{name}"));
    // If this future is dropped while a create is on its way (an acquire
    // given up), the node may still be made: find it by its prefix and
    // delete it, or it would stand in line until the session ends.
    let mut cleanup = ProtectedCleanup {
        client,
        dir,
        prefix: &prefix,
        armed: true,
    };
    let mut parents_made = false;
    let mut attempts = 0;
    loop {
        match client.create(&path, data, &Acl::open_unsafe(), mode).await {
            Ok((created, _)) => {
                cleanup.armed = false;
                return Ok(created);
            }
            Err(Error::NoNode) if !parents_made => {
                create_parents(client, &path, container_parents).await?;
                parents_made = true;
            }
            Err(Error::ConnectionLoss) if attempts < CONNECTION_LOSS_RETRIES_MAX => {
                attempts += 1;
                let children = match retry(|| client.get_children(dir)).await {
                    Ok(children) => children,
                    Err(Error::NoNode) => Vec::new(),
                    Err(e) => return Err(e),
                };
                if let Some(found) = children.iter().find(|c| c.starts_with(&prefix)) {
                    cleanup.armed = false;
                    return Ok(join(dir, found));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the protected node of an unfinished [`create_protected`] when
/// dropped armed (Curator's protected-mode cleanup).
struct ProtectedCleanup<'a> {
    client: &'a Client,
    dir: &'a str,
    prefix: &'a str,
    armed: bool,
}

impl Drop for ProtectedCleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, dir, prefix) = (
            self.client.clone(),
            self.dir.to_owned(),
            self.prefix.to_owned(),
        );
        runtime.spawn(async move {
            // Sent after the create on the same session, so answered after
            // it was applied.
            let children = match retry(|| client.get_children(&dir)).await {
                Ok(children) => children,
                Err(_) => return,
            };
            for child in children.iter().filter(|c| c.starts_with(&prefix)) {
                let path = join(&dir, child);
                if let Err(e) = delete_quietly(&client, &path).await {
                    tracing::debug!(%path, error = %e, "abandoned protected node not deleted");
                }
            }
        });
    }
}

/// Deletes `path`, retrying after connection losses; a node that is
/// already gone counts as deleted (Curator's `guaranteed()` delete).
pub(crate) async fn delete_quietly(client: &Client, path: &str) -> Result<(), Error> {
    match retry(|| client.delete(path, None)).await {
        Ok(()) | Err(Error::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes `path` from a background task: for guards dropped without an
/// explicit release. Does nothing outside a tokio runtime (the session's
/// end removes ephemeral nodes anyway).
pub(crate) fn delete_in_background(client: &Client, path: String) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let client = client.clone();
        handle.spawn(async move {
            if let Err(e) = delete_quietly(&client, &path).await {
                tracing::debug!(%path, error = %e, "background delete of a recipe node failed");
            }
        });
    }
}

/// Resolves once the session this call started under has ended: closed,
/// auth failed, or expired (also when a renewing client already has a new
/// one: what the caller set up on the old session is gone either way).
pub(crate) async fn session_ended(client: &Client) {
    let expired_before = client.expired_sessions();
    let mut states = client.state_watcher();
    let _ = states
        .wait_for(|s| s.is_terminal() || client.expired_sessions() != expired_before)
        .await;
}

/// The error to report when the session is over.
pub(crate) fn ended_error(client: &Client) -> Error {
    match client.state() {
        SessionState::AuthFailed => Error::AuthFailed,
        SessionState::Closed => Error::ClientClosed,
        _ => Error::SessionExpired,
    }
}

/// True when `error` means the recipe must stop for good: the client is
/// closed or refused, or its session expired and it will not get another.
pub(crate) fn is_final(client: &Client, error: &Error) -> bool {
    match error {
        Error::SessionExpired => !client.renews_expired_sessions(),
        Error::AuthFailed | Error::ClientClosed => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_javas() {
        let id = new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(new_uuid(), id);
    }

    #[test]
    fn lock_nodes_sort_by_sequence_not_by_uuid() {
        let mut nodes = vec![
            "_c_ffff-lock-0000000003".to_owned(),
            "_c_0000-lock-0000000005".to_owned(),
            "_c_aaaa-lock-0000000001".to_owned(),
        ];
        sort_lock_nodes(&mut nodes, &["lock-"]);
        assert_eq!(
            nodes,
            [
                "_c_aaaa-lock-0000000001",
                "_c_ffff-lock-0000000003",
                "_c_0000-lock-0000000005"
            ]
        );
        let mut rw = vec![
            "_c_1-__WRIT__0000000002".to_owned(),
            "_c_2-__READ__0000000001".to_owned(),
        ];
        sort_lock_nodes(&mut rw, &["__READ__", "__WRIT__"]);
        assert_eq!(rw[0], "_c_2-__READ__0000000001");
    }

    #[test]
    fn path_helpers() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b/c"), "/a/b");
        assert_eq!(node_name("/a/b"), "b");
    }
}
