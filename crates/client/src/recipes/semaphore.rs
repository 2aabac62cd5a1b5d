//! A counting semaphore across processes: Curator's
//! `InterProcessSemaphoreV2` layout and algorithm.
//!
//! Under `<path>` there are two children: `locks`, an [`Mutex`] that
//! serialises acquirers, and `leases`, one ephemeral sequential node
//! `_c_<uuid>-lease-<seq>` per lease held. An acquirer takes the mutex,
//! creates its lease node and, while there are more lease nodes than
//! leases, waits on a children watch of `leases` (only the mutex holder
//! waits there, so a returned lease wakes one process); then it releases
//! the mutex. Leases of a crashed process vanish with its session.

use std::time::Duration;

use corral_proto::CreateMode;
use tokio::time::Instant;

use super::lock::{current_states, LockGuard, Mutex};
use super::{create_protected, join, node_name, retry, session_ended};
use crate::{Client, Error};

/// Curator's child for the acquirers' mutex.
pub const LOCK_PARENT: &str = "locks";
/// Curator's child for the lease nodes.
pub const LEASE_PARENT: &str = "leases";
/// Curator's lease node name.
pub const LEASE_BASE_NAME: &str = "lease-";

/// A held lease: give it back with [`LockGuard::release`] (or drop it).
pub type Lease = LockGuard;

/// At most `max_leases` holders at a time.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::semaphore::Semaphore;
/// let slots = Semaphore::new(client, "/semaphores/downloads", 3);
/// let lease = slots.acquire().await?; // at most 3 processes past this line
/// lease.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    client: Client,
    leases_path: String,
    mutex: Mutex,
    max_leases: usize,
    data: Vec<u8>,
}

impl Semaphore {
    /// A semaphore on `path` with `max_leases` leases. Every process using
    /// the path must agree on `max_leases` (nothing checks it, as in
    /// Curator).
    pub fn new(client: &Client, path: &str, max_leases: usize) -> Semaphore {
        Semaphore {
            client: client.clone(),
            leases_path: join(path, LEASE_PARENT),
            mutex: Mutex::new(client, &join(path, LOCK_PARENT)),
            max_leases: max_leases.max(1),
            data: Vec::new(),
        }
    }

    /// Data stored in this process's lease nodes (Curator's `setNodeData`).
    pub fn with_node_data(mut self, data: Vec<u8>) -> Semaphore {
        self.data = data;
        self
    }

    /// Waits for a lease.
    pub async fn acquire(&self) -> Result<Lease, Error> {
        self.acquire_until(None)
            .await?
            .ok_or(Error::OperationTimeout)
    }

    /// Waits at most `timeout` for a lease; `None` when none was had.
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// The lease nodes' names (Curator's `getParticipantNodes`).
    pub async fn participants(&self) -> Result<Vec<String>, Error> {
        match retry(|| self.client.get_children(&self.leases_path)).await {
            Ok(children) => Ok(children),
            Err(Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<Lease>, Error> {
        tokio::select! {
            lease = self.acquire_inner(deadline) => lease,
            _ = session_ended(&self.client) => Err(super::ended_error(&self.client)),
        }
    }

    async fn acquire_inner(&self, deadline: Option<Instant>) -> Result<Option<Lease>, Error> {
        let mutex = match deadline {
            None => self.mutex.acquire().await?,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.mutex.try_acquire(left).await? {
                    Some(guard) => guard,
                    None => return Ok(None),
                }
            }
        };
        let result = self.take_lease(deadline).await;
        mutex.release().await?;
        result
    }

    /// With the acquirers' mutex held: adds a lease node and waits until it
    /// is among the first `max_leases`.
    async fn take_lease(&self, deadline: Option<Instant>) -> Result<Option<Lease>, Error> {
        let path = create_protected(
            &self.client,
            &self.leases_path,
            LEASE_BASE_NAME,
            &self.data,
            CreateMode::EphemeralSequential,
            false,
        )
        .await?;
        let ours = node_name(&path).to_owned();
        // Deletes the lease node if we fail or are cancelled.
        let mut lease = LockGuard::with_states(&self.client, path, current_states(&self.client));
        loop {
            let (children, watch) =
                retry(|| self.client.get_children_watch(&self.leases_path)).await?;
            if !children.contains(&ours) {
                // Our node vanished (deleted by someone else).
                return Err(Error::NoNode);
            }
            if children.len() <= self.max_leases {
                lease.renew_states();
                return Ok(Some(lease));
            }
            match deadline {
                None => {
                    watch.await;
                }
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, watch).await.is_err() {
                        lease.release().await?;
                        return Ok(None);
                    }
                }
            }
        }
    }
}
