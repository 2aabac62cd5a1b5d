//! Leader election, two ways, both with Curator's layouts:
//!
//! - [`LeaderLatch`] (Curator's `LeaderLatch`): join the group and be told
//!   when this process is or stops being the leader, until it leaves. Node
//!   `<path>/_c_<uuid>-latch-<seq>` holding the participant id; the lowest
//!   sequence leads; each participant watches only the one before it.
//! - [`LeaderSelector`] (Curator's `LeaderSelector`): run a function while
//!   leader; leadership ends when the function returns (then, with
//!   auto-requeue, the process queues again). Built on the
//!   [`super::lock::Mutex`] layout with the participant id as node data.
//!
//! Leadership is given up as soon as the connection drops (Curator's
//! `SUSPENDED`): a disconnected leader cannot know whether its session and
//! so its node survive. A latch whose session survives the disconnection
//! keeps its place in the queue and leads again at once if it still sorts
//! first; one whose session expired is finished (build a new client).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::CreateMode;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::lock::{Mutex, LOCK_NAME};
use super::{
    create_protected, delete_quietly, ended_error, is_final, join, node_name, retry,
    sort_lock_nodes,
};
use crate::{Client, Error, OneshotWatch, SessionState};

/// Curator's `LeaderLatch` node name.
pub const LATCH_NAME: &str = "latch-";

/// Leadership events a subscriber may fall behind before it gets `Lagged`.
pub const EVENTS_CAPACITY: usize = 64;

/// A change of leadership, in order, none coalesced (see
/// [`LeaderLatch::subscribe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipEvent {
    /// This process became the leader.
    Gained,
    /// This process stopped being the leader (or may have: disconnected).
    Lost,
}

/// Publishes leadership: the current value, and every change as an event.
#[derive(Debug)]
struct LeadershipSignal {
    state: watch::Sender<bool>,
    events: broadcast::Sender<LeadershipEvent>,
}

impl LeadershipSignal {
    fn set(&self, leading: bool) {
        let changed = self.state.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
        if changed {
            let event = if leading {
                LeadershipEvent::Gained
            } else {
                LeadershipEvent::Lost
            };
            // No subscriber is fine.
            let _ = self.events.send(event);
        }
    }
}

/// Pause before trying again after an error that may pass.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// One contender of an election, as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The participant id (the node's data, UTF-8).
    pub id: String,
    /// The contender's node.
    pub node_path: String,
    /// True for the first in line.
    pub is_leader: bool,
}

/// The contenders under `path`, leader first (Curator's
/// `LeaderSelector.getParticipants`).
async fn participants_of(
    client: &Client,
    path: &str,
    lock_name: &str,
) -> Result<Vec<Participant>, Error> {
    let mut children = match retry(|| client.get_children(path)).await {
        Ok(children) => children,
        Err(Error::NoNode) => Vec::new(),
        Err(e) => return Err(e),
    };
    children.retain(|c| c.contains(lock_name));
    sort_lock_nodes(&mut children, &[lock_name]);
    let mut out = Vec::with_capacity(children.len());
    for child in children {
        let node_path = join(path, &child);
        match retry(|| client.get_data(&node_path)).await {
            Ok((data, _)) => out.push(Participant {
                id: String::from_utf8_lossy(&data).into_owned(),
                is_leader: out.is_empty(),
                node_path,
            }),
            Err(Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Membership in a leader election that reports whether this process
/// leads, until [`LeaderLatch::close`].
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::leader::LeaderLatch;
/// use corral_client::recipes::leader::LeadershipEvent;
/// let latch = LeaderLatch::start(client, "/election/scheduler", "host-1").await?;
/// let mut events = latch.subscribe();
/// tokio::spawn(async move {
///     while let Ok(event) = events.recv().await {
///         match event {
///             LeadershipEvent::Gained => println!("leading"),
///             LeadershipEvent::Lost => println!("not leading"),
///         }
///     }
/// });
/// latch.wait_leadership().await?; // returns once this process leads
/// latch.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderLatch {
    client: Client,
    path: String,
    id: String,
    leader: watch::Receiver<bool>,
    events: broadcast::Sender<LeadershipEvent>,
    close: watch::Sender<bool>,
    our_path: Arc<std::sync::Mutex<Option<String>>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderLatch {
    /// Joins the election at `path` as `id` (stored in the latch node, as
    /// Curator does). Returns once this process's node exists; leadership
    /// is then tracked in the background.
    pub async fn start(client: &Client, path: &str, id: &str) -> Result<LeaderLatch, Error> {
        let ours = create_protected(
            client,
            path,
            LATCH_NAME,
            id.as_bytes(),
            CreateMode::EphemeralSequential,
            false,
        )
        .await?;
        let our_path = Arc::new(std::sync::Mutex::new(Some(ours)));
        let (leader_tx, leader) = watch::channel(false);
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let (close, close_rx) = watch::channel(false);
        let task = LatchTask {
            client: client.clone(),
            path: path.to_owned(),
            id: id.to_owned(),
            leader: LeadershipSignal {
                state: leader_tx,
                events: events.clone(),
            },
            close: close_rx,
            our_path: our_path.clone(),
        };
        Ok(LeaderLatch {
            client: client.clone(),
            path: path.to_owned(),
            id: id.to_owned(),
            leader,
            events,
            close,
            our_path,
            task: Some(tokio::spawn(task.run())),
        })
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True while this process leads (as last seen; no round trip).
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The leadership as a value that changes (true: leading). A quick
    /// loss and regain may be seen as its final value only; use
    /// [`LeaderLatch::subscribe`] to see every change.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Every gain and loss of leadership from now on, in order (Curator's
    /// `LeaderLatchListener.isLeader` / `notLeader`). A subscriber more
    /// than [`EVENTS_CAPACITY`] events behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<LeadershipEvent> {
        self.events.subscribe()
    }

    /// Waits until this process leads. Fails once the latch can never lead
    /// again (closed, or the session ended).
    pub async fn wait_leadership(&self) -> Result<(), Error> {
        let mut rx = self.leader.clone();
        let led = rx.wait_for(|leading| *leading).await.is_ok();
        if led {
            Ok(())
        } else {
            Err(ended_error(&self.client))
        }
    }

    /// Like [`LeaderLatch::wait_leadership`], for at most `timeout`: true
    /// when this process leads.
    pub async fn wait_leadership_for(&self, timeout: Duration) -> Result<bool, Error> {
        match tokio::time::timeout(timeout, self.wait_leadership()).await {
            Ok(result) => result.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// This process's latch node, if it has one right now.
    pub fn node_path(&self) -> Option<String> {
        self.our_path.lock().ok().and_then(|p| p.clone())
    }

    /// Every participant, leader first (reads the server).
    pub async fn participants(&self) -> Result<Vec<Participant>, Error> {
        participants_of(&self.client, &self.path, LATCH_NAME).await
    }

    /// The current leader, if any (reads the server).
    pub async fn leader(&self) -> Result<Option<Participant>, Error> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Leaves the election: gives up leadership and deletes this process's
    /// node.
    pub async fn close(mut self) -> Result<(), Error> {
        self.close.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        // The task notices, deletes the node and ends.
        self.close.send_replace(true);
    }
}

/// The background half of a [`LeaderLatch`].
struct LatchTask {
    client: Client,
    path: String,
    id: String,
    leader: LeadershipSignal,
    close: watch::Receiver<bool>,
    our_path: Arc<std::sync::Mutex<Option<String>>>,
}

/// What the latch waits for next.
enum Standing {
    /// Leading: watch our own node (in case someone deletes it).
    Leader(OneshotWatch),
    /// Waiting: watch the node just before ours.
    Follower(OneshotWatch),
    /// Our node is gone: create a new one.
    Missing,
}

impl LatchTask {
    fn ours(&self) -> Option<String> {
        self.our_path.lock().ok().and_then(|p| p.clone())
    }

    fn set_ours(&self, path: Option<String>) {
        if let Ok(mut ours) = self.our_path.lock() {
            *ours = path;
        }
    }

    fn set_leader(&self, leading: bool) {
        self.leader.set(leading);
    }

    async fn run(mut self) {
        let mut states = self.client.state_watcher();
        loop {
            if *self.close.borrow() {
                break;
            }
            // Changes from here on mean the connection dropped after the
            // check below began (see the select).
            states.borrow_and_update();
            let standing = match self.check().await {
                Ok(standing) => standing,
                Err(e) if is_final(&self.client, &e) => break,
                Err(e) => {
                    tracing::debug!(path = %self.path, error = %e, "leader latch: will retry");
                    self.set_leader(false);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => continue,
                        _ = self.close.changed() => break,
                    }
                }
            };
            let watch = match standing {
                Standing::Missing => {
                    self.set_leader(false);
                    self.set_ours(None);
                    continue;
                }
                Standing::Leader(watch) => {
                    self.set_leader(true);
                    watch
                }
                Standing::Follower(watch) => {
                    self.set_leader(false);
                    watch
                }
            };
            let interrupted = tokio::select! {
                _ = watch => false,
                _ = self.close.changed() => break,
                // Any change from Connected passes through Disconnected or
                // an end, even when the client has reconnected by now.
                changed = states.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    true
                }
            };
            if interrupted {
                // Disconnected or ended: leadership cannot be trusted.
                // After an expiry a renewing client comes back with a new
                // session, where `check` finds our node gone and joins
                // the election again.
                self.set_leader(false);
                let client = self.client.clone();
                let back = tokio::select! {
                    state = states.wait_for(|s| s.is_connected() || client.is_final(*s)) => {
                        state.is_ok_and(|s| !client.is_final(*s))
                    }
                    _ = self.close.changed() => false,
                };
                if !back {
                    break;
                }
            }
        }
        self.set_leader(false);
        if let Some(ours) = self.ours() {
            if self.client.state().is_connected() {
                if let Err(e) = delete_quietly(&self.client, &ours).await {
                    tracing::debug!(path = %ours, error = %e, "leader latch: node not deleted");
                }
            } else if !self.client.state().is_terminal() {
                // Deleted once the client has reconnected.
                super::delete_in_background(&self.client, ours);
            }
            self.set_ours(None);
        }
    }

    /// Makes sure we have a node, then finds our place in line.
    async fn check(&self) -> Result<Standing, Error> {
        let ours = match self.ours() {
            Some(ours) => ours,
            None => {
                let created = create_protected(
                    &self.client,
                    &self.path,
                    LATCH_NAME,
                    self.id.as_bytes(),
                    CreateMode::EphemeralSequential,
                    false,
                )
                .await?;
                self.set_ours(Some(created.clone()));
                created
            }
        };
        let mut children = retry(|| self.client.get_children(&self.path)).await?;
        children.retain(|c| c.contains(LATCH_NAME));
        sort_lock_nodes(&mut children, &[LATCH_NAME]);
        let Some(index) = children.iter().position(|c| c == node_name(&ours)) else {
            return Ok(Standing::Missing);
        };
        if index == 0 {
            return match retry(|| self.client.exists_watch(&ours)).await? {
                (Some(_), watch) => Ok(Standing::Leader(watch)),
                (None, _) => Ok(Standing::Missing),
            };
        }
        let before = join(&self.path, &children[index - 1]);
        match retry(|| self.client.get_data_watch(&before)).await {
            Ok((_, _, watch)) => Ok(Standing::Follower(watch)),
            // Gone meanwhile: check again (a never-firing watch would do,
            // but a fresh look is simpler).
            Err(Error::NoNode) => Box::pin(self.check()).await,
            Err(e) => Err(e),
        }
    }
}

/// What the function run by a [`LeaderSelector`] gets while it leads.
#[derive(Debug, Clone)]
pub struct Leadership {
    /// The client the selector runs on.
    pub client: Client,
    /// This participant's id.
    pub id: String,
    /// The lock node that makes this process the leader.
    pub node_path: String,
}

/// Runs a function whenever this process is elected (Curator's
/// `LeaderSelector` with `takeLeadership`). Leadership lasts until the
/// function returns; it is also cut short, by dropping the function's
/// future, when the connection drops or the lock node disappears.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::leader::LeaderSelector;
/// let selector = LeaderSelector::start(client, "/election/master", "host-1", true, |lead| async move {
///     println!("{} is master; working until done", lead.id);
///     tokio::time::sleep(std::time::Duration::from_secs(5)).await;
///     // returning gives leadership up; with auto-requeue we queue again
/// });
/// // … later:
/// selector.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderSelector {
    client: Client,
    path: String,
    leader: watch::Receiver<bool>,
    events: broadcast::Sender<LeadershipEvent>,
    close: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LeaderSelector {
    /// Starts contending at `path` as `id`. With `auto_requeue` the process
    /// queues again each time its leadership ends; without, it contends
    /// once. Must be called within a tokio runtime.
    pub fn start<F, Fut>(
        client: &Client,
        path: &str,
        id: &str,
        auto_requeue: bool,
        take_leadership: F,
    ) -> LeaderSelector
    where
        F: FnMut(Leadership) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (leader_tx, leader) = watch::channel(false);
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let (close, close_rx) = watch::channel(false);
        let mutex = Mutex::with_data(client, path, id.as_bytes().to_vec());
        let task = tokio::spawn(run_selector(
            client.clone(),
            mutex,
            id.to_owned(),
            auto_requeue,
            take_leadership,
            LeadershipSignal {
                state: leader_tx,
                events: events.clone(),
            },
            close_rx,
        ));
        LeaderSelector {
            client: client.clone(),
            path: path.to_owned(),
            leader,
            events,
            close,
            task: Some(task),
        }
    }

    /// True while this process runs its leadership function.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The leadership as a value that changes (true: the function runs).
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Every gain and loss of leadership from now on, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<LeadershipEvent> {
        self.events.subscribe()
    }

    /// Every contender, leader first (reads the server).
    pub async fn participants(&self) -> Result<Vec<Participant>, Error> {
        participants_of(&self.client, &self.path, LOCK_NAME).await
    }

    /// The current leader, if any (reads the server).
    pub async fn leader(&self) -> Result<Option<Participant>, Error> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Stops contending: a running leadership function is cancelled and
    /// the lock node deleted. Waits until that is done.
    pub async fn close(mut self) {
        self.close.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderSelector {
    fn drop(&mut self) {
        self.close.send_replace(true);
    }
}

async fn run_selector<F, Fut>(
    client: Client,
    mutex: Mutex,
    id: String,
    auto_requeue: bool,
    mut take_leadership: F,
    leader: LeadershipSignal,
    mut close: watch::Receiver<bool>,
) where
    F: FnMut(Leadership) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        if *close.borrow() {
            break;
        }
        let acquired = tokio::select! {
            acquired = mutex.acquire() => acquired,
            _ = close.changed() => break,
        };
        let guard = match acquired {
            Ok(guard) => guard,
            Err(e) if is_final(&client, &e) => break,
            Err(e) => {
                tracing::debug!(error = %e, "leader selector: will retry");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => continue,
                    _ = close.changed() => break,
                }
            }
        };
        leader.set(true);
        let lead = Leadership {
            client: client.clone(),
            id: id.clone(),
            node_path: guard.node_path().to_owned(),
        };
        let mut closing = false;
        tokio::select! {
            _ = take_leadership(lead) => {}
            _ = guard.lost() => {
                tracing::info!(node = guard.node_path(), "leadership lost: connection dropped or node deleted");
            }
            _ = close.changed() => closing = true,
        }
        leader.set(false);
        // After an expiry the node is already gone (a renewing client's
        // delete finds nothing on the new session).
        if !client.is_finished() && client.state() != SessionState::Expired {
            if let Err(e) = guard.release().await {
                tracing::debug!(error = %e, "leader selector: lock node not deleted");
            }
        }
        if closing || !auto_requeue || client.is_finished() {
            break;
        }
    }
    leader.set(false);
}
