//! The watch registry of one server: which connection watches which path, in
//! which mode. Turns the tree's triggers into the set of connections to notify,
//! exactly as ZooKeeper's `WatchManager` does (two tables, one-shot watches
//! removed on firing, persistent watches kept, recursive watches matching every
//! descendant but never NodeChildrenChanged).

use std::collections::{HashMap, HashSet};

use corral_proto::EventType;

/// The tables' hasher. Every watch event looks up its path and then each
/// watching connection twice (the watch and the connection's own list); with
/// 1000 watchers on one node SipHash made that 400 µs of the fan-out, foldhash
/// (seeded per process) a fraction of it.
type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
type Set<T> = HashSet<T, Hasher>;
/// The connections an event goes to.
pub type ConnSet = Set<ConnId>;

/// Identifies one client connection on this server.
pub type ConnId = u64;

/// How a watch behaves when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Fires once, then is gone (getData/exists/getChildren with watch=true).
    Standard,
    /// addWatch mode 0: stays; the path's own events plus its children list.
    Persistent,
    /// addWatch mode 1: stays; events of the path and every descendant.
    PersistentRecursive,
}

/// Which table a watch lives in (ZooKeeper's `dataWatches` / `childWatches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchTable {
    Data,
    Child,
}

#[derive(Default)]
struct Table {
    by_path: Map<Box<str>, Map<ConnId, WatchMode>>,
    by_conn: Map<ConnId, Set<Box<str>>>,
    recursive_count: usize,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId, mode: WatchMode) {
        let watchers = self.by_path.entry(path.into()).or_default();
        // One mode per (connection, path): the latest registration wins.
        if let Some(old) = watchers.insert(conn, mode) {
            if old == WatchMode::PersistentRecursive {
                self.recursive_count -= 1;
            }
        }
        if mode == WatchMode::PersistentRecursive {
            self.recursive_count += 1;
        }
        self.by_conn.entry(conn).or_default().insert(path.into());
    }

    fn remove(&mut self, path: &str, conn: ConnId) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = watchers.remove(&conn) else {
            return false;
        };
        if mode == WatchMode::PersistentRecursive {
            self.recursive_count -= 1;
        }
        if watchers.is_empty() {
            self.by_path.remove(path);
        }
        self.forget_conn_path(conn, path);
        true
    }

    /// Drops `path` from `conn`'s own list (its side of a removed watch).
    fn forget_conn_path(&mut self, conn: ConnId, path: &str) {
        if let Some(paths) = self.by_conn.get_mut(&conn) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    fn contains(&self, path: &str, conn: ConnId) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|w| w.contains_key(&conn))
    }

    fn remove_conn(&mut self, conn: ConnId) {
        let Some(paths) = self.by_conn.remove(&conn) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if watchers.remove(&conn) == Some(WatchMode::PersistentRecursive) {
                    self.recursive_count -= 1;
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// ZooKeeper's `WatchManager.triggerWatch`: walks the path and, when any
    /// recursive watch exists, its ancestors.
    fn trigger(
        &mut self,
        path: &str,
        event: EventType,
        suppress: &Set<ConnId>,
        out: &mut Set<ConnId>,
    ) {
        let mut fired_once: Vec<ConnId> = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            out.reserve(watchers.len());
            for (&conn, &mode) in watchers.iter() {
                match mode {
                    WatchMode::PersistentRecursive => {
                        if event != EventType::NodeChildrenChanged {
                            out.insert(conn);
                        }
                    }
                    WatchMode::Persistent => {
                        out.insert(conn);
                    }
                    WatchMode::Standard => {
                        out.insert(conn);
                        fired_once.push(conn);
                    }
                }
            }
            // One-time watches are gone once fired: one pass over the path's
            // watchers, not a lookup of the path per watcher.
            if !fired_once.is_empty() {
                watchers.retain(|_, mode| *mode != WatchMode::Standard);
                if watchers.is_empty() {
                    self.by_path.remove(path);
                }
            }
        }
        for conn in fired_once {
            self.forget_conn_path(conn, path);
        }
        if self.recursive_count > 0 && event != EventType::NodeChildrenChanged {
            for ancestor in ancestors(path) {
                if let Some(watchers) = self.by_path.get(ancestor) {
                    for (&conn, &mode) in watchers {
                        if mode == WatchMode::PersistentRecursive {
                            out.insert(conn);
                        }
                    }
                }
            }
        }
        if !suppress.is_empty() {
            out.retain(|c| !suppress.contains(c));
        }
    }
}

/// `/a/b/c` → `/a/b`, `/a`, `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut current = path;
    std::iter::from_fn(move || {
        if current == "/" || current.is_empty() {
            return None;
        }
        let cut = current.rfind('/')?;
        current = if cut == 0 { "/" } else { &current[..cut] };
        Some(current)
    })
}

/// All watches held on this server.
#[derive(Default)]
pub struct WatchRegistry {
    data: Table,
    child: Table,
}

impl WatchRegistry {
    pub fn add(&mut self, table: WatchTable, path: &str, conn: ConnId, mode: WatchMode) {
        match table {
            WatchTable::Data => self.data.add(path, conn, mode),
            WatchTable::Child => self.child.add(path, conn, mode),
        }
    }

    /// addWatch puts the watch into both tables.
    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        let mode = if recursive {
            WatchMode::PersistentRecursive
        } else {
            WatchMode::Persistent
        };
        self.data.add(path, conn, mode);
        self.child.add(path, conn, mode);
    }

    /// removeWatches/checkWatches. `watch_type`: 1 children, 2 data, 3 any.
    /// Returns whether a watch was found (removing it when `remove`).
    pub fn remove(&mut self, path: &str, conn: ConnId, watch_type: i32, remove: bool) -> bool {
        let (in_child, in_data) = match watch_type {
            1 => (true, false),
            2 => (false, true),
            _ => (true, true),
        };
        let found_child = in_child && self.child.contains(path, conn);
        let found_data = in_data && self.data.contains(path, conn);
        if remove {
            if found_child {
                self.child.remove(path, conn);
            }
            if found_data {
                self.data.remove(path, conn);
            }
        }
        found_child || found_data
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        self.data.remove_conn(conn);
        self.child.remove_conn(conn);
    }

    /// The connections to notify of `event` on `path`, as ZooKeeper's
    /// DataTree computes them for create, delete, setData.
    pub fn trigger(&mut self, path: &str, event: EventType) -> ConnSet {
        let mut out = Set::default();
        let none = Set::default();
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.data.trigger(path, event, &none, &mut out)
            }
            EventType::NodeChildrenChanged => self.child.trigger(path, event, &none, &mut out),
            EventType::NodeDeleted => {
                self.data.trigger(path, event, &none, &mut out);
                let mut from_child = Set::default();
                self.child.trigger(path, event, &out, &mut from_child);
                out.extend(from_child);
            }
            _ => {}
        }
        out
    }

    /// `wchs`: connections and paths in the data table, and its watch count.
    pub fn summary(&self) -> (usize, usize, usize) {
        let watches = self.data.by_path.values().map(|w| w.len()).sum();
        (self.data.by_conn.len(), self.data.by_path.len(), watches)
    }

    /// Total watches in both tables (`mntr` zk_watch_count).
    pub fn watch_count(&self) -> usize {
        self.data.by_path.values().map(|w| w.len()).sum::<usize>()
            + self.child.by_path.values().map(|w| w.len()).sum::<usize>()
    }

    /// `wchc`: paths watched (data table) per connection.
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut out: Vec<(ConnId, Vec<String>)> = self
            .data
            .by_conn
            .iter()
            .map(|(c, paths)| {
                let mut p: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
                p.sort();
                (*c, p)
            })
            .collect();
        out.sort();
        out
    }

    /// `wchp`: connections watching each path (data table).
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut out: Vec<(String, Vec<ConnId>)> = self
            .data
            .by_path
            .iter()
            .map(|(p, w)| {
                let mut c: Vec<ConnId> = w.keys().copied().collect();
                c.sort();
                (p.to_string(), c)
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_time_watch_fires_once() {
        let mut w = WatchRegistry::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard);
        assert_eq!(
            w.trigger("/a", EventType::NodeDataChanged),
            ConnSet::from_iter([1])
        );
        assert!(w.trigger("/a", EventType::NodeDataChanged).is_empty());
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_lists() {
        let mut w = WatchRegistry::default();
        w.add_persistent("/a", 7, true);
        assert_eq!(
            w.trigger("/a/b/c", EventType::NodeCreated),
            ConnSet::from_iter([7])
        );
        assert!(w.trigger("/a", EventType::NodeChildrenChanged).is_empty());
        assert_eq!(
            w.trigger("/a/b", EventType::NodeDataChanged),
            ConnSet::from_iter([7])
        );
    }

    #[test]
    fn persistent_watches_see_their_children_list_and_stay() {
        let mut w = WatchRegistry::default();
        w.add_persistent("/a", 7, false);
        assert!(w.trigger("/a/b", EventType::NodeCreated).is_empty());
        assert_eq!(
            w.trigger("/a", EventType::NodeChildrenChanged),
            ConnSet::from_iter([7])
        );
        assert_eq!(
            w.trigger("/a", EventType::NodeChildrenChanged),
            ConnSet::from_iter([7])
        );
    }

    #[test]
    fn delete_notifies_a_connection_once_for_both_tables() {
        let mut w = WatchRegistry::default();
        w.add(WatchTable::Data, "/a", 1, WatchMode::Standard);
        w.add(WatchTable::Child, "/a", 1, WatchMode::Standard);
        assert_eq!(
            w.trigger("/a", EventType::NodeDeleted),
            ConnSet::from_iter([1])
        );
        // Both one-shot watches are consumed.
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn ancestors_walk_up_to_root() {
        assert_eq!(
            ancestors("/a/b/c").collect::<Vec<_>>(),
            vec!["/a/b", "/a", "/"]
        );
        assert_eq!(ancestors("/").count(), 0);
    }
}
