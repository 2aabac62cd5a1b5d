//! Exclusive and shared locks: Curator's `InterProcessMutex` and
//! `InterProcessReadWriteLock`, node for node.
//!
//! A contender creates an ephemeral sequential node
//! `<path>/_c_<uuid>-lock-<seq>` and holds the lock when its node sorts
//! first. Otherwise it watches only the node just before its own (with
//! getData, which leaves no watch behind once that node is gone), so a
//! release wakes exactly one waiter: no herd effect. The session's end
//! deletes the node, which releases the lock of a crashed holder.

use std::time::Duration;

use corral_proto::CreateMode;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{create_protected, delete_in_background, delete_quietly, join, node_name, retry};
use super::{session_ended, sort_lock_nodes};
use crate::{Client, Error, SessionState};

/// Curator's `InterProcessMutex` lock name.
pub const LOCK_NAME: &str = "lock-";
/// Curator's read-lock name in `InterProcessReadWriteLock`.
pub const READ_LOCK_NAME: &str = "__READ__";
/// Curator's write-lock name in `InterProcessReadWriteLock`.
pub const WRITE_LOCK_NAME: &str = "__WRIT__";

/// How many times a contender starts over when its own node vanished
/// while it waited (deleted by someone else).
const NODE_VANISHED_RETRIES_MAX: u32 = 3;

/// Who gets the lock among the sorted contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// The first `max_leases` nodes hold it (Curator's standard driver).
    Standard { max_leases: usize },
    /// A reader holds it when no writer is ahead of it.
    Read,
}

/// What a contender does next.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Holds,
    /// Wait until this node (a sibling name) is gone.
    WaitFor(String),
    /// Our node is not among the children.
    Missing,
}

/// The contention loop shared by every lock-like recipe (`LockInternals`).
#[derive(Debug, Clone)]
pub(crate) struct LockInternals {
    client: Client,
    base: String,
    lock_name: &'static str,
    /// Names that delimit the sequence part for sorting.
    sort_names: &'static [&'static str],
    rule: Rule,
    data: Vec<u8>,
}

impl LockInternals {
    pub(crate) fn new(
        client: &Client,
        base: &str,
        lock_name: &'static str,
        sort_names: &'static [&'static str],
        rule: Rule,
        data: Vec<u8>,
    ) -> LockInternals {
        LockInternals {
            client: client.clone(),
            base: base.to_owned(),
            lock_name,
            sort_names,
            rule,
            data,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Contends until the lock is held or `deadline` passes (`None`; our
    /// node is deleted again).
    pub(crate) async fn acquire(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<LockGuard>, Error> {
        let mut restarts = 0;
        loop {
            let ours = create_protected(
                &self.client,
                &self.base,
                self.lock_name,
                &self.data,
                CreateMode::EphemeralSequential,
                true,
            )
            .await?;
            // Deletes our node if this future is dropped (cancelled) or fails.
            let mut pending = NodeGuard::new(&self.client, ours);
            match self.wait(pending.path(), deadline).await {
                Ok(Some(states)) => {
                    let path = pending.disarm();
                    return Ok(Some(LockGuard::with_states(&self.client, path, states)));
                }
                Ok(None) => {
                    pending.delete().await?;
                    return Ok(None);
                }
                Err(Error::NoNode) if restarts < NODE_VANISHED_RETRIES_MAX => {
                    pending.disarm();
                    restarts += 1;
                }
                Err(e) => {
                    if !e.is_terminal() {
                        let _ = pending.delete().await;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The contenders, sorted: first is the holder.
    pub(crate) async fn sorted_children(&self) -> Result<Vec<String>, Error> {
        let mut children = match retry(|| self.client.get_children(&self.base)).await {
            Ok(children) => children,
            Err(Error::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        children.retain(|c| self.sort_names.iter().any(|n| c.contains(n)));
        sort_lock_nodes(&mut children, self.sort_names);
        Ok(children)
    }

    /// Waits until our node holds the lock: then the session states as
    /// seen right after the deciding listing, so that the guard notices any
    /// disconnection after it. `None` when `deadline` passed.
    async fn wait(
        &self,
        ours: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<watch::Receiver<SessionState>>, Error> {
        let our_name = node_name(ours);
        loop {
            let children = self.sorted_children().await?;
            let predecessor = match verdict(&children, our_name, self.rule) {
                // From here on, a disconnection means the lock may be lost.
                Verdict::Holds => return Ok(Some(current_states(&self.client))),
                Verdict::Missing => return Err(Error::NoNode),
                Verdict::WaitFor(name) => join(&self.base, &name),
            };
            let watch = match retry(|| self.client.get_data_watch(&predecessor)).await {
                Ok((_, _, watch)) => watch,
                // Gone between the listing and the watch: look again.
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            tracing::trace!(ours, predecessor, "waiting for the predecessor");
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, watch).await.is_err() {
                        return Ok(None);
                    }
                }
                None => {
                    watch.await;
                }
            }
        }
    }
}

/// The client's session states with everything so far marked seen (a new
/// `state_watcher` reports every change since the client was built).
pub(crate) fn current_states(client: &Client) -> watch::Receiver<SessionState> {
    let mut states = client.state_watcher();
    states.borrow_and_update();
    states
}

/// Curator's `getsTheLock` for the standard and the read-lock drivers.
fn verdict(sorted: &[String], ours: &str, rule: Rule) -> Verdict {
    let Some(our_index) = sorted.iter().position(|c| c == ours) else {
        return Verdict::Missing;
    };
    match rule {
        Rule::Standard { max_leases } => {
            if our_index < max_leases {
                Verdict::Holds
            } else {
                Verdict::WaitFor(sorted[our_index - max_leases].clone())
            }
        }
        Rule::Read => {
            // Wait for the last writer ahead of us; readers share.
            match sorted[..our_index]
                .iter()
                .rev()
                .find(|c| c.contains(WRITE_LOCK_NAME))
            {
                Some(writer) => Verdict::WaitFor(writer.clone()),
                None => Verdict::Holds,
            }
        }
    }
}

/// An ephemeral node that is deleted when this guard is dropped, unless
/// disarmed.
#[derive(Debug)]
pub(crate) struct NodeGuard {
    client: Client,
    path: Option<String>,
}

impl NodeGuard {
    pub(crate) fn new(client: &Client, path: String) -> NodeGuard {
        NodeGuard {
            client: client.clone(),
            path: Some(path),
        }
    }

    pub(crate) fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }

    pub(crate) fn disarm(&mut self) -> String {
        self.path.take().unwrap_or_default()
    }

    pub(crate) async fn delete(&mut self) -> Result<(), Error> {
        match self.path.take() {
            Some(path) => delete_quietly(&self.client, &path).await,
            None => Ok(()),
        }
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            delete_in_background(&self.client, path);
        }
    }
}

/// A held lock (or semaphore lease): release it with
/// [`LockGuard::release`]. Dropping the guard releases it too, from a
/// background task. The session's end releases it on the server.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    node: NodeGuard,
    /// The session's states since (just before) the lock was known held.
    states: watch::Receiver<SessionState>,
}

impl LockGuard {
    /// A guard for `path`, known held as of `states`' last seen value.
    pub(crate) fn with_states(
        client: &Client,
        path: String,
        states: watch::Receiver<SessionState>,
    ) -> LockGuard {
        LockGuard {
            node: NodeGuard::new(client, path),
            states,
        }
    }

    /// Takes the session's states from now on as the reference for
    /// [`LockGuard::lost`] (while still contending).
    pub(crate) fn renew_states(&mut self) {
        self.states = current_states(&self.node.client);
    }

    /// The lock node this guard stands for (`…/_c_<uuid>-lock-<seq>`).
    pub fn node_path(&self) -> &str {
        self.node.path()
    }

    /// Releases the lock: deletes the node, retrying across a connection
    /// loss. A node already gone (session expired) is not an error.
    pub async fn release(mut self) -> Result<(), Error> {
        self.node.delete().await
    }

    /// True when the session gives the holder no reason to trust the lock
    /// any more: it was disconnected since the lock was known held (and
    /// may have expired; a renewing client's new session holds nothing),
    /// or has ended. Asks nothing of the server, so a node deleted by
    /// someone else is only seen by [`LockGuard::lost`].
    pub fn is_lost(&self) -> bool {
        self.states.has_changed().unwrap_or(true) || !self.states.borrow().is_connected()
    }

    /// Resolves when the lock can no longer be trusted: the session is
    /// disconnected (another client may get the lock if the session then
    /// expires), has ended, or the lock node was deleted by someone else.
    /// A holder doing work that must not overlap should stop when this
    /// resolves.
    pub async fn lost(&self) {
        let client = &self.node.client;
        let path = self.node.path().to_owned();
        // Any state change from Connected passes through Disconnected (or
        // an end), so one change since the lock was known held is enough,
        // even if the client has reconnected since (`changed`, not
        // `wait_for`, which could miss a quick blip).
        let mut states = self.states.clone();
        if states.has_changed().unwrap_or(true) || !states.borrow_and_update().is_connected() {
            return;
        }
        loop {
            let watch = match client.exists_watch(&path).await {
                Ok((Some(_), watch)) => watch,
                // Gone, or the session cannot answer: not trusted.
                Ok((None, _)) | Err(_) => return,
            };
            tokio::select! {
                _ = watch => {}
                _ = states.changed() => return,
            }
        }
    }
}

/// An exclusive lock across processes: Curator's `InterProcessMutex`
/// layout and algorithm (fair: first come, first served). Not reentrant: a
/// second `acquire` from the same process queues behind the first.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::lock::Mutex;
/// let mutex = Mutex::new(client, "/locks/orders");
/// let guard = mutex.acquire().await?;
/// // … only one process at a time runs here …
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Mutex {
    internals: LockInternals,
}

impl Mutex {
    /// A mutex on `path` (created on first use, as a container).
    pub fn new(client: &Client, path: &str) -> Mutex {
        Mutex::with_data(client, path, Vec::new())
    }

    /// A mutex whose lock nodes carry `data` (Curator's `getLockNodeBytes`;
    /// `LeaderSelector` stores the participant id there).
    pub fn with_data(client: &Client, path: &str, data: Vec<u8>) -> Mutex {
        Mutex {
            internals: LockInternals::new(
                client,
                path,
                LOCK_NAME,
                &[LOCK_NAME],
                Rule::Standard { max_leases: 1 },
                data,
            ),
        }
    }

    /// Waits until the lock is held. Cancelling the future (dropping it)
    /// withdraws from the queue.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        self.acquire_until(None)
            .await?
            .ok_or(Error::OperationTimeout)
    }

    /// Waits at most `timeout`; `None` when the lock was not had in time.
    pub async fn try_acquire(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<LockGuard>, Error> {
        let client = self.internals.client().clone();
        tokio::select! {
            acquired = self.internals.acquire(deadline) => acquired,
            _ = session_ended(&client) => Err(super::ended_error(&client)),
        }
    }

    /// The contenders' node paths, holder first.
    pub async fn participants(&self) -> Result<Vec<String>, Error> {
        let children = self.internals.sorted_children().await?;
        Ok(children
            .iter()
            .map(|c| join(&self.internals.base, c))
            .collect())
    }
}

/// A shared read / exclusive write lock: Curator's
/// `InterProcessReadWriteLock` layout (`…-__READ__<seq>` and
/// `…-__WRIT__<seq>` under one path). Readers share the lock while no
/// writer is ahead of them in the queue; a writer waits for everyone ahead.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::lock::ReadWriteLock;
/// let rw = ReadWriteLock::new(client, "/locks/catalog");
/// let read = rw.acquire_read().await?; // many readers at once
/// read.release().await?;
/// let write = rw.acquire_write().await?; // alone
/// write.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReadWriteLock {
    read: LockInternals,
    write: LockInternals,
}

impl ReadWriteLock {
    /// A read/write lock on `path`.
    pub fn new(client: &Client, path: &str) -> ReadWriteLock {
        const NAMES: &[&str] = &[READ_LOCK_NAME, WRITE_LOCK_NAME];
        ReadWriteLock {
            read: LockInternals::new(client, path, READ_LOCK_NAME, NAMES, Rule::Read, Vec::new()),
            write: LockInternals::new(
                client,
                path,
                WRITE_LOCK_NAME,
                NAMES,
                Rule::Standard { max_leases: 1 },
                Vec::new(),
            ),
        }
    }

    /// Waits for a read lock.
    pub async fn acquire_read(&self) -> Result<LockGuard, Error> {
        Self::acquire_until(&self.read, None)
            .await?
            .ok_or(Error::OperationTimeout)
    }

    /// Waits for the write lock.
    pub async fn acquire_write(&self) -> Result<LockGuard, Error> {
        Self::acquire_until(&self.write, None)
            .await?
            .ok_or(Error::OperationTimeout)
    }

    /// Waits at most `timeout` for a read lock.
    pub async fn try_acquire_read(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        Self::acquire_until(&self.read, Some(Instant::now() + timeout)).await
    }

    /// Waits at most `timeout` for the write lock.
    pub async fn try_acquire_write(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        Self::acquire_until(&self.write, Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(
        internals: &LockInternals,
        deadline: Option<Instant>,
    ) -> Result<Option<LockGuard>, Error> {
        let client = internals.client().clone();
        tokio::select! {
            acquired = internals.acquire(deadline) => acquired,
            _ = session_ended(&client) => Err(super::ended_error(&client)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_waiter_watches_only_its_predecessor() {
        let sorted = names(&["a-lock-1", "b-lock-2", "c-lock-3"]);
        let rule = Rule::Standard { max_leases: 1 };
        assert_eq!(verdict(&sorted, "a-lock-1", rule), Verdict::Holds);
        assert_eq!(
            verdict(&sorted, "c-lock-3", rule),
            Verdict::WaitFor("b-lock-2".into())
        );
        assert_eq!(verdict(&sorted, "x", rule), Verdict::Missing);
    }

    #[test]
    fn readers_wait_only_for_a_writer_ahead() {
        let sorted = names(&["r1__READ__1", "w1__WRIT__2", "r2__READ__3", "r3__READ__4"]);
        assert_eq!(verdict(&sorted, "r1__READ__1", Rule::Read), Verdict::Holds);
        assert_eq!(
            verdict(&sorted, "r3__READ__4", Rule::Read),
            Verdict::WaitFor("w1__WRIT__2".into())
        );
        let rule = Rule::Standard { max_leases: 1 };
        assert_eq!(
            verdict(&sorted, "w1__WRIT__2", rule),
            Verdict::WaitFor("r1__READ__1".into())
        );
    }
}
