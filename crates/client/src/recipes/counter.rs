//! A shared counter with compare-and-set: Curator's `SharedCount` (a node
//! whose data is a 4-byte big-endian `int`), updated with versioned
//! setData so that concurrent writers never lose an update.

use corral_proto::CreateMode;
use tokio::sync::broadcast;

use super::cache::{CacheEvent, NodeCache};
use super::{ensure_node, retry};
use crate::{Client, Error};

/// A value and the node version it was read at, for
/// [`SharedCount::try_set`] (Curator's `VersionedValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionedValue {
    pub value: i32,
    pub version: i32,
}

/// A counter shared by processes.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::counter::SharedCount;
/// let hits = SharedCount::new(client, "/counters/hits", 0).await?;
/// let now = hits.add(1).await?; // compare-and-set loop
/// let seen = hits.get().await?;
/// if hits.try_set(seen, seen.value * 2).await? {
///     println!("doubled from {}", seen.value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SharedCount {
    client: Client,
    path: String,
}

impl SharedCount {
    /// The counter at `path`, created with `seed` if it does not exist.
    pub async fn new(client: &Client, path: &str, seed: i32) -> Result<SharedCount, Error> {
        ensure_node(client, path, &seed.to_be_bytes(), CreateMode::Persistent).await?;
        Ok(SharedCount {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// The current value and its version.
    pub async fn get(&self) -> Result<VersionedValue, Error> {
        let (data, stat) = retry(|| self.client.get_data(&self.path)).await?;
        Ok(VersionedValue {
            value: decode(&self.path, &data)?,
            version: stat.version,
        })
    }

    /// Sets `value` if the counter is still at `seen`'s version; false when
    /// someone else changed it first (read again and retry).
    pub async fn try_set(&self, seen: VersionedValue, value: i32) -> Result<bool, Error> {
        let written = self
            .client
            .set_data(&self.path, &value.to_be_bytes(), Some(seen.version))
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(Error::BadVersion) => Ok(false),
            // Unknown outcome: tell by reading whether our write landed.
            Err(Error::ConnectionLoss) => {
                let now = self.get().await?;
                Ok(now.version == seen.version + 1 && now.value == value)
            }
            Err(e) => Err(e),
        }
    }

    /// Sets `value` whatever the current one.
    pub async fn set(&self, value: i32) -> Result<(), Error> {
        let bytes = value.to_be_bytes();
        retry(|| self.client.set_data(&self.path, &bytes, None)).await?;
        Ok(())
    }

    /// Adds `delta` atomically (compare-and-set until it sticks) and
    /// returns the new value. Wraps on overflow, like Java's `int`.
    pub async fn add(&self, delta: i32) -> Result<i32, Error> {
        loop {
            let seen = self.get().await?;
            let next = seen.value.wrapping_add(delta);
            if self.try_set(seen, next).await? {
                return Ok(next);
            }
        }
    }

    /// Follows the counter: a node cache whose events tell every change
    /// (decode the data with [`decode_count`]).
    pub async fn watch(&self) -> Result<(NodeCache, broadcast::Receiver<CacheEvent>), Error> {
        let cache = NodeCache::start(&self.client, &self.path).await?;
        let events = cache.subscribe();
        Ok((cache, events))
    }
}

/// Reads a `SharedCount` value (4 bytes, big-endian).
pub fn decode_count(data: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = data.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

fn decode(path: &str, data: &[u8]) -> Result<i32, Error> {
    decode_count(data).ok_or_else(|| {
        Error::Protocol(format!(
            "{path} holds {} bytes, not a 4-byte SharedCount",
            data.len()
        ))
    })
}
