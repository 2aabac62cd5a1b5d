//! Group membership (Curator's `GroupMember`): each member is an
//! ephemeral node `<path>/<member id>` holding its payload, and the
//! membership is read from a [`ChildrenCache`] of `<path>`. A member whose
//! node is deleted while its session lives puts it back, and so does a
//! member whose client renewed an expired session; a member whose process
//! dies leaves the group with its session.

use std::collections::BTreeMap;

use corral_proto::{Acl, CreateMode};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::cache::{CacheEvent, ChildrenCache};
use super::{create_parents, delete_quietly, is_final, join, retry, retry_renewing};
use crate::{Client, Error};

/// This process's membership in a group, and a view of the whole group.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::group::GroupMember;
/// let me = GroupMember::join(client, "/groups/workers", "worker-7", b"10.0.0.7").await?;
/// for (id, payload) in me.members() {
///     println!("{id}: {}", String::from_utf8_lossy(&payload));
/// }
/// me.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    client: Client,
    id: String,
    node_path: String,
    payload: watch::Sender<Vec<u8>>,
    /// `None` only after `leave`.
    cache: Option<ChildrenCache>,
    keeper: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Joins the group at `path` as `id` with `payload`. Fails with
    /// [`Error::NodeExists`] when another session is already member `id`.
    pub async fn join(
        client: &Client,
        path: &str,
        id: &str,
        payload: &[u8],
    ) -> Result<GroupMember, Error> {
        let node_path = join(path, id);
        create_member(client, &node_path, payload).await?;
        let cache = ChildrenCache::start(client, path).await?;
        let (payload_tx, payload_rx) = watch::channel(payload.to_vec());
        let keeper = tokio::spawn(keep_node(client.clone(), node_path.clone(), payload_rx));
        Ok(GroupMember {
            client: client.clone(),
            id: id.to_owned(),
            node_path,
            payload: payload_tx,
            cache: Some(cache),
            keeper: Some(keeper),
        })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The members now: id → payload (from the cache, no round trip).
    pub fn members(&self) -> BTreeMap<String, Vec<u8>> {
        self.cache
            .as_ref()
            .map(ChildrenCache::children)
            .unwrap_or_default()
            .into_iter()
            .map(|(id, child)| (id, child.data))
            .collect()
    }

    /// Membership changes (Created: joined, Deleted: left, Changed: new
    /// payload).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        match &self.cache {
            Some(cache) => cache.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Replaces this member's payload.
    pub async fn set_payload(&self, payload: &[u8]) -> Result<(), Error> {
        self.payload.send_replace(payload.to_vec());
        retry(|| self.client.set_data(&self.node_path, payload, None)).await?;
        Ok(())
    }

    /// Leaves the group: deletes this member's node.
    pub async fn leave(mut self) -> Result<(), Error> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        let result = delete_quietly(&self.client, &self.node_path).await;
        if let Some(cache) = self.cache.take() {
            cache.close().await;
        }
        result
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
            super::delete_in_background(&self.client, self.node_path.clone());
        }
    }
}

async fn create_member(client: &Client, node_path: &str, payload: &[u8]) -> Result<(), Error> {
    let acl = Acl::open_unsafe();
    let mut parents_made = false;
    loop {
        let created = retry_renewing(client, || {
            client.create(node_path, payload, &acl, CreateMode::Ephemeral)
        })
        .await;
        match created {
            Ok(_) => return Ok(()),
            Err(Error::NoNode) if !parents_made => {
                create_parents(client, node_path, false).await?;
                parents_made = true;
            }
            Err(Error::NodeExists) => {
                // Ours when an earlier create's reply was lost.
                return match retry(|| client.exists(node_path)).await? {
                    Some(stat) if stat.ephemeral_owner == client.session_id() => Ok(()),
                    Some(_) => Err(Error::NodeExists),
                    None => continue,
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Puts the member node back whenever it is deleted (Curator's
/// `PersistentNode`), until the client is finished: also after an expiry,
/// on the new session of a renewing client.
async fn keep_node(client: Client, node_path: String, payload: watch::Receiver<Vec<u8>>) {
    loop {
        let watch = match retry(|| client.exists_watch(&node_path)).await {
            Ok((Some(_), watch)) => watch,
            Ok((None, _)) => {
                let data = payload.borrow().clone();
                match create_member(&client, &node_path, &data).await {
                    Ok(()) => continue,
                    Err(e) if is_final(&client, &e) => return,
                    Err(e) => {
                        tracing::warn!(path = %node_path, error = %e, "group member node not restored");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            Err(e) if is_final(&client, &e) => return,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        // Fires on a change of the node, or with the session's end; a
        // renewing client then has a new session, where the node is put
        // back on the next turn (the old one went with the old session).
        let _ = watch.await;
        if client.is_finished() {
            return;
        }
    }
}
