//! A double barrier (the ZooKeeper recipe, with Curator's
//! `DistributedDoubleBarrier` layout): processes enter and start together
//! once `member_qty` have arrived, and leave only when all have finished.
//!
//! Each member is an ephemeral node `<path>/<uuid>`; `<path>/ready`
//! appears once enough members are in. Leaving follows the recipe: the
//! member whose node sorts lowest waits for the highest to go, the others
//! delete their node and wait for the lowest, so a member that crashes (its
//! node vanishes with its session) does not block the others.

use std::time::Duration;

use corral_proto::CreateMode;
use tokio::time::Instant;

use super::{ensure_node, join, new_uuid, retry};
use crate::{Client, Error};

/// Curator's name of the node that opens the barrier.
pub const READY_NODE: &str = "ready";

/// A double barrier for `member_qty` processes.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::barrier::DoubleBarrier;
/// let barrier = DoubleBarrier::new(client, "/barriers/batch-42", 3);
/// barrier.enter().await?; // returns when 3 processes have entered
/// // … compute …
/// barrier.leave().await?; // returns when all 3 have left
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    member_qty: usize,
    our_path: String,
    ready_path: String,
}

impl DoubleBarrier {
    /// A barrier at `path` for `member_qty` members (a threshold, not a
    /// limit: more may enter).
    pub fn new(client: &Client, path: &str, member_qty: usize) -> DoubleBarrier {
        DoubleBarrier {
            client: client.clone(),
            path: path.to_owned(),
            member_qty: member_qty.max(1),
            our_path: join(path, &new_uuid()),
            ready_path: join(path, READY_NODE),
        }
    }

    /// This member's node.
    pub fn node_path(&self) -> &str {
        &self.our_path
    }

    /// Enters and waits until `member_qty` members have entered.
    pub async fn enter(&self) -> Result<(), Error> {
        self.enter_until(None).await.map(|_| ())
    }

    /// Enters and waits at most `timeout`; false when the barrier did not
    /// open in time (this member stays entered: call `leave`).
    pub async fn enter_for(&self, timeout: Duration) -> Result<bool, Error> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        let (ready, mut watch) = retry(|| self.client.exists_watch(&self.ready_path)).await?;
        ensure_node(&self.client, &self.our_path, b"", CreateMode::Ephemeral).await?;
        if ready.is_some() {
            return Ok(true);
        }
        loop {
            let members = self.members().await?;
            if members.len() >= self.member_qty {
                ensure_node(&self.client, &self.ready_path, b"", CreateMode::Persistent).await?;
                return Ok(true);
            }
            match deadline {
                None => {
                    watch.await;
                }
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, watch).await.is_err() {
                        return Ok(false);
                    }
                }
            }
            let (ready, next) = retry(|| self.client.exists_watch(&self.ready_path)).await?;
            if ready.is_some() {
                return Ok(true);
            }
            watch = next;
        }
    }

    /// Leaves and waits until every member has left.
    pub async fn leave(&self) -> Result<(), Error> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves and waits at most `timeout`; false when others were still in
    /// the barrier then (this member's node is deleted either way, unless
    /// it is the lowest, which keeps it until the others are gone).
    pub async fn leave_for(&self, timeout: Duration) -> Result<bool, Error> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        let ours = super::node_name(&self.our_path).to_owned();
        loop {
            let mut members = self.members().await?;
            members.sort();
            if members.is_empty() {
                break;
            }
            let watch_path = if members.len() == 1 {
                if members[0] == ours {
                    super::delete_quietly(&self.client, &self.our_path).await?;
                }
                break;
            } else if members[0] == ours {
                // Lowest: wait for the highest to go.
                join(&self.path, &members[members.len() - 1])
            } else {
                if members.contains(&ours) {
                    super::delete_quietly(&self.client, &self.our_path).await?;
                }
                join(&self.path, &members[0])
            };
            let (exists, watch) = retry(|| self.client.exists_watch(&watch_path)).await?;
            if exists.is_none() {
                continue;
            }
            match deadline {
                None => {
                    watch.await;
                }
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, watch).await.is_err() {
                        return Ok(false);
                    }
                }
            }
        }
        match retry(|| self.client.delete(&self.ready_path, None)).await {
            Ok(()) | Err(Error::NoNode) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The members' node names (without `ready`).
    async fn members(&self) -> Result<Vec<String>, Error> {
        let mut children = match retry(|| self.client.get_children(&self.path)).await {
            Ok(children) => children,
            Err(Error::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        children.retain(|c| c != READY_NODE);
        Ok(children)
    }
}
