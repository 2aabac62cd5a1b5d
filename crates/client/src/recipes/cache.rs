//! Local copies of a part of the tree, kept current by a persistent watch,
//! in the manner of Curator's `CuratorCache`: an initial load, then one
//! event per change, and a rebuild (with the differences reported as
//! events) after every reconnection, because changes made while the
//! client was disconnected are not replayed to persistent watches.
//!
//! - [`NodeCache`]: one node (a configuration value): data and Stat, or
//!   absent.
//! - [`ChildrenCache`]: the children of a node with their data.
//! - [`TreeCache`]: a node and every descendant.
//!
//! Events go out on a bounded broadcast channel: a subscriber that falls
//! more than [`EVENTS_CAPACITY`] events behind gets `Lagged` and should
//! read the snapshot again. The snapshot itself is always current.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use corral_proto::{AddWatchMode, EventType, KeeperState, Stat};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::{is_final, join, retry};
use crate::{Client, Error, WatchStream, WatchedEvent};

/// Events a subscriber may fall behind before it gets `Lagged`.
pub const EVENTS_CAPACITY: usize = 1024;

/// Pause before re-adding a watch after an error that may pass.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A cached node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildData {
    /// Full path (relative to the client's chroot).
    pub path: String,
    pub data: Vec<u8>,
    pub stat: Stat,
}

/// A change seen by a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// A node appeared.
    Created(ChildData),
    /// A node's data (or Stat) changed.
    Changed { old: ChildData, new: ChildData },
    /// A node went away; its last known state.
    Deleted(ChildData),
    /// The cache reloaded everything after a reconnection (the changes it
    /// found were sent before this, as Created / Changed / Deleted).
    Rebuilt,
}

impl CacheEvent {
    /// The path the event is about (empty for `Rebuilt`).
    pub fn path(&self) -> &str {
        match self {
            CacheEvent::Created(d) | CacheEvent::Deleted(d) => &d.path,
            CacheEvent::Changed { new, .. } => &new.path,
            CacheEvent::Rebuilt => "",
        }
    }
}

/// The engine behind the three caches: the root, how deep to go, the
/// snapshot, the event channel and the background task.
#[derive(Debug)]
struct Cache {
    nodes: Arc<RwLock<BTreeMap<String, ChildData>>>,
    events: broadcast::Sender<CacheEvent>,
    close: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Cache {
    async fn start(client: &Client, root: &str, max_depth: Option<usize>) -> Result<Cache, Error> {
        let mode = if max_depth == Some(0) {
            AddWatchMode::Persistent
        } else {
            AddWatchMode::PersistentRecursive
        };
        let stream = retry(|| client.add_watch(root, mode)).await?;
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let (close, close_rx) = watch::channel(false);
        let worker = Worker {
            client: client.clone(),
            root: root.to_owned(),
            max_depth,
            mode,
            nodes: Arc::new(RwLock::new(BTreeMap::new())),
            events: events.clone(),
        };
        let initial = worker.load().await?;
        worker.replace(initial, false);
        let nodes = worker.nodes.clone();
        let task = tokio::spawn(worker.run(stream, close_rx));
        Ok(Cache {
            nodes,
            events,
            close,
            task: Some(task),
        })
    }

    fn get(&self, path: &str) -> Option<ChildData> {
        self.nodes.read().ok()?.get(path).cloned()
    }

    fn snapshot(&self) -> BTreeMap<String, ChildData> {
        self.nodes.read().map(|n| n.clone()).unwrap_or_default()
    }

    fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.events.subscribe()
    }

    async fn close(&mut self) {
        self.close.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.close.send_replace(true);
    }
}

struct Worker {
    client: Client,
    root: String,
    max_depth: Option<usize>,
    mode: AddWatchMode,
    nodes: Arc<RwLock<BTreeMap<String, ChildData>>>,
    events: broadcast::Sender<CacheEvent>,
}

impl Worker {
    /// How far below the root `path` is (`None` when not under it).
    fn depth(&self, path: &str) -> Option<usize> {
        if path == self.root {
            return Some(0);
        }
        let rest = if self.root == "/" {
            path.strip_prefix('/')?
        } else {
            path.strip_prefix(self.root.as_str())?.strip_prefix('/')?
        };
        Some(rest.split('/').count())
    }

    fn wanted(&self, path: &str) -> bool {
        match (self.depth(path), self.max_depth) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(depth), Some(max)) => depth <= max,
        }
    }

    fn emit(&self, event: CacheEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    async fn run(mut self, mut stream: WatchStream, mut close: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = close.changed() => return,
            };
            match event {
                Some(event) => {
                    if !self.handle(event).await {
                        return;
                    }
                }
                None => {
                    // The stream ended: the session ended (a renewing
                    // client goes on with a new one), or we lagged.
                    if self.client.is_finished() {
                        return;
                    }
                    match self.rewatch(&mut close).await {
                        Some(new_stream) => stream = new_stream,
                        None => return,
                    }
                }
            }
        }
    }

    /// Adds the watch again and reloads; `None` when the cache must stop.
    async fn rewatch(&mut self, close: &mut watch::Receiver<bool>) -> Option<WatchStream> {
        loop {
            match self.client.add_watch(&self.root, self.mode).await {
                Ok(stream) => {
                    self.rebuild().await;
                    return Some(stream);
                }
                Err(e) if is_final(&self.client, &e) => return None,
                Err(e) => {
                    tracing::debug!(root = %self.root, error = %e, "cache: re-adding the watch");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                        _ = close.changed() => return None,
                    }
                }
            }
        }
    }

    /// Applies one watch event; false when the cache must stop.
    async fn handle(&mut self, event: WatchedEvent) -> bool {
        match event.event_type {
            EventType::None => match event.keeper_state {
                KeeperState::SyncConnected | KeeperState::ConnectedReadOnly => {
                    self.rebuild().await;
                    true
                }
                KeeperState::Disconnected => true,
                // The watch went with the session; the stream ends next
                // and `run` adds it again on the new session.
                KeeperState::Expired => self.client.renews_expired_sessions(),
                _ => false,
            },
            EventType::NodeCreated | EventType::NodeDataChanged => {
                if self.wanted(&event.path) {
                    self.refresh(&event.path).await;
                }
                true
            }
            EventType::NodeDeleted => {
                self.remove_subtree(&event.path);
                true
            }
            // The persistent (non-recursive) watch of a NodeCache also
            // reports its children; a NodeCache does not cache them.
            _ => true,
        }
    }

    /// Reads `path` again and records what is there.
    async fn refresh(&mut self, path: &str) {
        match retry(|| self.client.get_data(path)).await {
            Ok((data, stat)) => self.upsert(ChildData {
                path: path.to_owned(),
                data,
                stat,
            }),
            Err(Error::NoNode) => self.remove_subtree(path),
            // A connection loss is followed by SyncConnected: rebuilt then.
            Err(e) => tracing::debug!(%path, error = %e, "cache: refresh failed"),
        }
    }

    fn upsert(&self, new: ChildData) {
        let old = {
            let Ok(mut nodes) = self.nodes.write() else {
                return;
            };
            if let Some(old) = nodes.get(&new.path) {
                // Same version, or an older read: nothing new.
                if old.stat.mzxid >= new.stat.mzxid {
                    return;
                }
            }
            nodes.insert(new.path.clone(), new.clone())
        };
        match old {
            None => self.emit(CacheEvent::Created(new)),
            Some(old) => self.emit(CacheEvent::Changed { old, new }),
        }
    }

    fn remove_subtree(&self, path: &str) {
        let removed: Vec<ChildData> = {
            let Ok(mut nodes) = self.nodes.write() else {
                return;
            };
            let prefix = format!("{}/", path.trim_end_matches('/'));
            let doomed: Vec<String> = nodes
                .range(path.to_owned()..)
                .take_while(|(p, _)| p.as_str() == path || p.starts_with(&prefix))
                .map(|(p, _)| p.clone())
                .collect();
            doomed.iter().filter_map(|p| nodes.remove(p)).collect()
        };
        // Children before parents, as the server would delete them.
        for data in removed.into_iter().rev() {
            self.emit(CacheEvent::Deleted(data));
        }
    }

    /// Everything under the root down to `max_depth`, read fresh.
    async fn load(&self) -> Result<BTreeMap<String, ChildData>, Error> {
        let mut out = BTreeMap::new();
        let mut pending = vec![(self.root.clone(), 0usize)];
        while let Some((path, depth)) = pending.pop() {
            let (data, stat) = match retry(|| self.client.get_data(&path)).await {
                Ok(found) => found,
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            };
            let descend = self.max_depth.is_none_or(|max| depth < max);
            if descend && stat.num_children > 0 {
                match retry(|| self.client.get_children(&path)).await {
                    Ok(children) => {
                        for child in children {
                            pending.push((join(&path, &child), depth + 1));
                        }
                    }
                    Err(Error::NoNode) => continue,
                    Err(e) => return Err(e),
                }
            }
            out.insert(path.clone(), ChildData { path, data, stat });
        }
        Ok(out)
    }

    /// Reloads and reports the differences (after a reconnection).
    async fn rebuild(&mut self) {
        match self.load().await {
            Ok(fresh) => {
                self.replace(fresh, true);
                self.emit(CacheEvent::Rebuilt);
            }
            Err(e) => tracing::debug!(root = %self.root, error = %e, "cache: rebuild failed"),
        }
    }

    /// Swaps in `fresh`, emitting one event per difference when `report`.
    fn replace(&self, fresh: BTreeMap<String, ChildData>, report: bool) {
        let old = match self.nodes.write() {
            Ok(mut nodes) => std::mem::replace(&mut *nodes, fresh.clone()),
            Err(_) => return,
        };
        if !report {
            return;
        }
        for (path, data) in old.iter().rev() {
            if !fresh.contains_key(path) {
                self.emit(CacheEvent::Deleted(data.clone()));
            }
        }
        for (path, new) in &fresh {
            match old.get(path) {
                None => self.emit(CacheEvent::Created(new.clone())),
                Some(old) if old.stat.mzxid != new.stat.mzxid => self.emit(CacheEvent::Changed {
                    old: old.clone(),
                    new: new.clone(),
                }),
                Some(_) => {}
            }
        }
    }
}

/// One node, kept current: for configuration values that several
/// processes watch (Curator's `NodeCache`).
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::cache::NodeCache;
/// let config = NodeCache::start(client, "/config/feature-flags").await?;
/// println!("now: {:?}", config.get().map(|n| n.data));
/// let mut changes = config.subscribe();
/// while let Ok(event) = changes.recv().await {
///     println!("changed: {:?}", config.get().map(|n| n.data));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NodeCache {
    path: String,
    cache: Cache,
}

impl NodeCache {
    /// Loads `path` (which need not exist yet) and keeps it current.
    pub async fn start(client: &Client, path: &str) -> Result<NodeCache, Error> {
        Ok(NodeCache {
            path: path.to_owned(),
            cache: Cache::start(client, path, Some(0)).await?,
        })
    }

    /// The node's data and Stat, `None` while it does not exist.
    pub fn get(&self) -> Option<ChildData> {
        self.cache.get(&self.path)
    }

    /// Events for the node (Created, Changed, Deleted, Rebuilt).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.cache.subscribe()
    }

    /// Stops following the node.
    pub async fn close(mut self) {
        self.cache.close().await;
    }
}

/// The children of a node with their data, kept current (Curator's
/// `PathChildrenCache`, built like `CuratorCache`). It follows the node
/// with a recursive watch, so changes deeper down reach this client too
/// (and are ignored): use it on nodes whose children are leaves.
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::cache::ChildrenCache;
/// let workers = ChildrenCache::start(client, "/workers").await?;
/// for (name, child) in workers.children() {
///     println!("{name}: {} bytes", child.data.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChildrenCache {
    path: String,
    cache: Cache,
}

impl ChildrenCache {
    /// Loads the children of `path` (which need not exist yet) and keeps
    /// them current.
    pub async fn start(client: &Client, path: &str) -> Result<ChildrenCache, Error> {
        Ok(ChildrenCache {
            path: path.to_owned(),
            cache: Cache::start(client, path, Some(1)).await?,
        })
    }

    /// The children by name (not the full path), with data and Stat.
    pub fn children(&self) -> BTreeMap<String, ChildData> {
        self.cache
            .snapshot()
            .into_iter()
            .filter(|(p, _)| p != &self.path)
            .map(|(p, d)| (super::node_name(&p).to_owned(), d))
            .collect()
    }

    /// One child by name.
    pub fn get(&self, name: &str) -> Option<ChildData> {
        self.cache.get(&join(&self.path, name))
    }

    /// Events for the children (and for the parent node itself).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.cache.subscribe()
    }

    /// Stops following the children.
    pub async fn close(mut self) {
        self.cache.close().await;
    }
}

/// A node and all its descendants, kept current (Curator's `TreeCache` /
/// `CuratorCache`).
///
/// ```no_run
/// # async fn demo(client: &corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::cache::{CacheEvent, TreeCache};
/// let tree = TreeCache::start(client, "/app").await?;
/// let mut events = tree.subscribe();
/// while let Ok(event) = events.recv().await {
///     if let CacheEvent::Created(node) = event {
///         println!("new node {}", node.path);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TreeCache {
    cache: Cache,
}

impl TreeCache {
    /// Loads everything under `path` (which need not exist yet) and keeps
    /// it current.
    pub async fn start(client: &Client, path: &str) -> Result<TreeCache, Error> {
        Ok(TreeCache {
            cache: Cache::start(client, path, None).await?,
        })
    }

    /// Like [`TreeCache::start`], at most `max_depth` levels below `path`.
    pub async fn start_with_depth(
        client: &Client,
        path: &str,
        max_depth: usize,
    ) -> Result<TreeCache, Error> {
        Ok(TreeCache {
            cache: Cache::start(client, path, Some(max_depth)).await?,
        })
    }

    /// One node by full path.
    pub fn get(&self, path: &str) -> Option<ChildData> {
        self.cache.get(path)
    }

    /// Every cached node by full path.
    pub fn snapshot(&self) -> BTreeMap<String, ChildData> {
        self.cache.snapshot()
    }

    /// Events for every node.
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.cache.subscribe()
    }

    /// Stops following the tree.
    pub async fn close(mut self) {
        self.cache.close().await;
    }
}
