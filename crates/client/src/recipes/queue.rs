//! A FIFO queue across processes: Curator's `SimpleDistributedQueue`
//! (itself the layout of ZooKeeper's own queue recipe), persistent
//! sequential nodes `<path>/qn-<seq>` taken in sequence order.
//!
//! A consumer lists the items, reads the first and deletes it with the
//! version it read; if another consumer deleted it first, it moves on to
//! the next. Each item goes to exactly one consumer. If the connection
//! drops during that delete and the item is gone afterwards, the consumer
//! cannot tell whether it took it: it treats it as taken by someone else
//! (at most once).

use std::time::Duration;

use corral_proto::{Acl, CreateMode};
use tokio::time::Instant;

use super::{create_parents, join, retry};
use crate::{Client, Error, OneshotWatch};

/// Curator's (and ZooKeeper's) queue item prefix.
pub const ITEM_PREFIX: &str = "qn-";

/// A distributed FIFO queue of byte strings.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::queue::Queue;
/// let jobs = Queue::new(client, "/queues/jobs");
/// jobs.offer(b"resize img-1").await?;
/// let job = jobs.take().await?; // waits for an item
/// assert_eq!(job, b"resize img-1");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    path: String,
}

impl Queue {
    /// The queue at `path` (created on first use).
    pub fn new(client: &Client, path: &str) -> Queue {
        Queue {
            client: client.clone(),
            path: path.to_owned(),
        }
    }

    /// Appends an item; returns its node path.
    pub async fn offer(&self, item: &[u8]) -> Result<String, Error> {
        let prefix = join(&self.path, ITEM_PREFIX);
        let mut parents_made = false;
        loop {
            let created = self
                .client
                .create(
                    &prefix,
                    item,
                    &Acl::open_unsafe(),
                    CreateMode::PersistentSequential,
                )
                .await;
            match created {
                Ok((path, _)) => return Ok(path),
                Err(Error::NoNode) if !parents_made => {
                    create_parents(&self.client, &prefix, false).await?;
                    parents_made = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes and returns the head, or `None` when the queue is empty.
    pub async fn poll(&self) -> Result<Option<Vec<u8>>, Error> {
        self.head(true, false).await.map(|(item, _)| item)
    }

    /// The head without removing it, or `None` when the queue is empty.
    pub async fn peek(&self) -> Result<Option<Vec<u8>>, Error> {
        self.head(false, false).await.map(|(item, _)| item)
    }

    /// Removes and returns the head, waiting for an item if need be.
    pub async fn take(&self) -> Result<Vec<u8>, Error> {
        loop {
            match self.head(true, true).await? {
                (Some(item), _) => return Ok(item),
                (None, Some(watch)) => {
                    watch.await;
                }
                (None, None) => {}
            }
        }
    }

    /// Like [`Queue::take`], waiting at most `timeout`.
    pub async fn take_for(&self, timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.head(true, true).await? {
                (Some(item), _) => return Ok(Some(item)),
                (None, Some(watch)) => {
                    if tokio::time::timeout_at(deadline, watch).await.is_err() {
                        return Ok(None);
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// The number of items (one round trip).
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(self.items(false).await?.0.len())
    }

    /// True when the queue has no item.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    async fn watch_children(&self) -> Result<(Vec<String>, OneshotWatch), Error> {
        loop {
            match retry(|| self.client.get_children_watch(&self.path)).await {
                Ok(found) => return Ok(found),
                Err(Error::NoNode) => {
                    create_parents(&self.client, &join(&self.path, ITEM_PREFIX), false).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The sorted item names, with a children watch when asked.
    async fn items(&self, watch: bool) -> Result<(Vec<String>, Option<OneshotWatch>), Error> {
        let (mut children, watch) = if watch {
            let (children, watch) = self.watch_children().await?;
            (children, Some(watch))
        } else {
            match retry(|| self.client.get_children(&self.path)).await {
                Ok(children) => (children, None),
                Err(Error::NoNode) => (Vec::new(), None),
                Err(e) => return Err(e),
            }
        };
        children.retain(|c| c.starts_with(ITEM_PREFIX));
        children.sort();
        Ok((children, watch))
    }

    async fn head(
        &self,
        remove: bool,
        watch: bool,
    ) -> Result<(Option<Vec<u8>>, Option<OneshotWatch>), Error> {
        let (items, watch) = self.items(watch).await?;
        for name in items {
            let path = join(&self.path, &name);
            let (data, stat) = match retry(|| self.client.get_data(&path)).await {
                Ok(found) => found,
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            if !remove {
                return Ok((Some(data), watch));
            }
            match self.client.delete(&path, Some(stat.version)).await {
                Ok(()) => return Ok((Some(data), watch)),
                // Another consumer took it: try the next.
                Err(Error::NoNode) | Err(Error::BadVersion) => continue,
                Err(Error::ConnectionLoss) => {
                    match retry(|| self.client.delete(&path, Some(stat.version))).await {
                        Ok(()) => return Ok((Some(data), watch)),
                        Err(Error::NoNode) | Err(Error::BadVersion) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok((None, watch))
    }
}
