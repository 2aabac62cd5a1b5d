//! Where the znodes live in memory, laid out so that a snapshot can capture
//! all of them in microseconds while writes go on.
//!
//! Each node sits in a numbered slot as an `Arc<Node>`; slots are grouped in
//! fixed-size chunks, themselves shared through an `Arc`. A capture
//! ([`NodeStore::capture`]) copies only the chunk pointers (one per
//! [`CHUNK_SLOTS`] nodes). A write after a capture copies the one chunk of
//! pointers it touches and then the one node it changes (`Arc::make_mut`),
//! each at most once per capture, and the capture keeps seeing the old
//! versions: an exact picture of the tree at the moment it was taken, with
//! no lock held while it is serialized.
//!
//! There is no index of full paths: a path is found by walking from the root
//! through each node's child list (names → slots, [`crate::node::Children`]).
//! An index cost ~100 bytes per znode (the table plus a second copy of every
//! path) — a fifth of the memory with a million znodes — and a hash of the
//! whole path per lookup, while a walk is a few short sorted-map lookups
//! (ZooKeeper's paths are shallow). The snapshot walks a capture the same way.

use std::sync::Arc;

use crate::node::Node;
use crate::path::split_parent;

/// Slots per chunk. A capture costs one pointer copy per chunk (~4,000 for
/// 1M nodes); the first write to a chunk after a capture copies its 254
/// pointers (2 KiB). Measured with `examples/snapbench.rs`. 254, not 256:
/// with the `Arc`'s two counts a chunk is then exactly 2048 bytes, one
/// jemalloc size class, where 256 slots took a 2560-byte one.
pub(crate) const CHUNK_SLOTS: usize = 254;

type Chunk = [Option<Arc<Node>>; CHUNK_SLOTS];

fn empty_chunk() -> Arc<Chunk> {
    Arc::new(std::array::from_fn(|_| None))
}

/// The tree's nodes: slots in shared chunks, reachable from the root.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeStore {
    chunks: Vec<Arc<Chunk>>,
    /// Empty slots, reused before a new chunk is added; popped from the end,
    /// so a new chunk's slots are pushed in reverse and used in order.
    free: Vec<u32>,
    /// The root's slot (`None` only while a tree is being built).
    root: Option<u32>,
    len: usize,
}

impl NodeStore {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains_key(&self, path: &str) -> bool {
        self.slot_of(path).is_some()
    }

    /// The node stored under exactly `path` (the root is `/`).
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        slot_in(&self.chunks, self.slot_of(path)?)
    }

    /// The node in `slot`, if any.
    pub(crate) fn at(&self, slot: u32) -> Option<&Node> {
        slot_in(&self.chunks, slot)
    }

    /// The slot of the node under exactly `path` (the root is `/`; a path
    /// with an empty component, such as `/a/`, names nothing).
    pub(crate) fn slot_of(&self, path: &str) -> Option<u32> {
        let root = self.root?;
        if path == "/" {
            return Some(root);
        }
        let mut slot = root;
        for name in path.strip_prefix('/')?.split('/') {
            slot = slot_in(&self.chunks, slot)?.children.get(name)?;
        }
        Some(slot)
    }

    /// The node in `slot`, for writing (see [`NodeStore::get_mut`]).
    pub(crate) fn at_mut(&mut self, slot: u32) -> Option<&mut Node> {
        let slot = slot as usize;
        let chunk = Arc::make_mut(self.chunks.get_mut(slot / CHUNK_SLOTS)?);
        chunk[slot % CHUNK_SLOTS].as_mut().map(Arc::make_mut)
    }

    /// The node under `path`, for writing: first unshares its chunk and the
    /// node itself from any capture still being serialized.
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.at_mut(self.slot_of(path)?)
    }

    /// Stores a node under a path that is not present yet, adding it to its
    /// parent's child list, and returns its slot. `None`, storing nothing, if
    /// the path is present or its parent is not (the root, `/`, has none).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, path: &str, node: Node) -> Option<u32> {
        self.insert_under(self.parent_slot_for(path)?, path, node)
    }

    /// [`NodeStore::insert`] with the parent's slot already known (`None` for
    /// the root), as from [`NodeStore::parent_slot_for`]; loading a snapshot
    /// inserts siblings one after another under the same parent.
    pub(crate) fn insert_under(
        &mut self,
        parent: Option<u32>,
        path: &str,
        node: Node,
    ) -> Option<u32> {
        match parent {
            None => {
                if path != "/" || self.root.is_some() {
                    return None;
                }
                let slot = self.allocate(node);
                self.root = Some(slot);
                Some(slot)
            }
            Some(parent) => {
                let (_, name) = split_parent(path)?;
                if name.is_empty() {
                    return None;
                }
                // One search of the child list, not a lookup and then an
                // insert: list the slot `allocate` is about to hand out.
                let slot = self.next_slot();
                if !self.at_mut(parent)?.children.insert(name, slot) {
                    return None;
                }
                let allocated = self.allocate(node);
                debug_assert_eq!(allocated, slot, "allocate handed out another slot");
                Some(slot)
            }
        }
    }

    /// The slot of `path`'s parent: `Some(None)` for the root, `None` if the
    /// parent is missing or the path has no parent.
    pub(crate) fn parent_slot_for(&self, path: &str) -> Option<Option<u32>> {
        if path == "/" {
            return Some(None);
        }
        let (parent, _) = split_parent(path)?;
        let parent = if parent.is_empty() { "/" } else { parent };
        self.slot_of(parent).map(Some)
    }

    /// The slot the next [`NodeStore::allocate`] will use.
    fn next_slot(&self) -> u32 {
        match self.free.last() {
            Some(&slot) => slot,
            None => u32::try_from(self.chunks.len() * CHUNK_SLOTS).unwrap_or(u32::MAX),
        }
    }

    fn allocate(&mut self, node: Node) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let first = u32::try_from(self.chunks.len() * CHUNK_SLOTS)
                    .ok()
                    .filter(|first| first.checked_add(CHUNK_SLOTS as u32).is_some())
                    .unwrap_or_else(|| panic!("more than 2^32 znodes"));
                self.chunks.push(empty_chunk());
                self.free
                    .extend((first + 1..first + CHUNK_SLOTS as u32).rev());
                first
            }
        };
        let index = slot as usize;
        let chunk = Arc::make_mut(&mut self.chunks[index / CHUNK_SLOTS]);
        chunk[index % CHUNK_SLOTS] = Some(Arc::new(node));
        self.len += 1;
        slot
    }

    /// Takes the node under `path` out of its parent's child list; its slot
    /// becomes free. A capture that still holds it keeps it alive. The root
    /// is never removed, nor a node that still has children (they would be
    /// unreachable).
    pub(crate) fn remove(&mut self, path: &str) -> Option<Arc<Node>> {
        let Some(parent) = self.parent_slot_for(path)? else {
            return None; // the root
        };
        let (_, name) = split_parent(path)?;
        let slot = self.at(parent)?.children.get(name)?;
        if !self.at(slot)?.children.is_empty() {
            return None;
        }
        self.at_mut(parent)?.children.remove(name)?;
        let index = slot as usize;
        let chunk = Arc::make_mut(self.chunks.get_mut(index / CHUNK_SLOTS)?);
        let node = chunk[index % CHUNK_SLOTS].take();
        self.free.push(slot);
        self.len -= 1;
        node
    }

    /// Every (path, node), parents before their children.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (String, &Node)> {
        let mut stack: Vec<(String, u32)> =
            self.root.map(|r| ("/".to_owned(), r)).into_iter().collect();
        std::iter::from_fn(move || {
            let (path, slot) = stack.pop()?;
            let node = slot_in(&self.chunks, slot)?;
            for (name, child) in node.children.iter() {
                let child_path = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                stack.push((child_path, child));
            }
            Some((path, node))
        })
    }

    /// Room for `additional` more nodes.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.chunks.reserve(additional / CHUNK_SLOTS + 1);
    }

    /// An exact, immutable picture of every node as they are now. Costs one
    /// pointer copy per chunk; later writes do not show through it.
    pub(crate) fn capture(&self) -> CapturedNodes {
        CapturedNodes {
            chunks: self.chunks.clone(),
            root: self.root,
            len: self.len,
        }
    }
}

impl PartialEq for NodeStore {
    /// Same paths with equal nodes; where the nodes happen to be stored
    /// (their slots) does not matter.
    fn eq(&self, other: &NodeStore) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(path, node)| other.get(&path) == Some(node))
    }
}

fn slot_in(chunks: &[Arc<Chunk>], slot: u32) -> Option<&Node> {
    let slot = slot as usize;
    chunks.get(slot / CHUNK_SLOTS)?[slot % CHUNK_SLOTS].as_deref()
}

/// The nodes as [`NodeStore::capture`] saw them, reachable from the root
/// through the children's slots.
#[derive(Debug, Clone)]
pub(crate) struct CapturedNodes {
    chunks: Vec<Arc<Chunk>>,
    root: Option<u32>,
    len: usize,
}

impl CapturedNodes {
    /// The root's slot (`None` only for a tree being loaded).
    pub(crate) fn root(&self) -> Option<u32> {
        self.root
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Node> {
        slot_in(&self.chunks, slot)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use corral_proto::Acl;

    use super::*;

    fn node(version: i32) -> Node {
        let mut node = Node::new(Some(b"x"), Arc::new(Acl::open_unsafe()), 0, 1, 0);
        node.version = version;
        node
    }

    #[test]
    fn a_capture_keeps_the_nodes_as_they_were_when_taken() {
        let mut store = NodeStore::default();
        let root = store.insert("/", node(0)).unwrap();
        let mut slots = Vec::new();
        for i in 0..(CHUNK_SLOTS * 2 + 3) {
            slots.push(store.insert(&format!("/n{i}"), node(1)).unwrap());
        }
        let capture = store.capture();
        if let Some(n) = store.get_mut("/n5") {
            n.version = 7;
        }
        store.remove("/n6");
        assert_eq!(store.insert("/n5", node(3)), None, "a path is stored once");
        let reused = store.insert("/new", node(9)).unwrap();
        assert_eq!(reused, slots[6], "a freed slot is used again");
        assert_eq!(capture.root(), Some(root));
        assert_eq!(capture.len(), slots.len() + 1);
        assert_eq!(capture.get(slots[5]).map(|n| n.version), Some(1));
        assert_eq!(capture.get(slots[6]).map(|n| n.version), Some(1));
        assert_eq!(store.get("/n5").map(|n| n.version), Some(7));
        assert_eq!(store.get("/new").map(|n| n.version), Some(9));
        assert!(store.get("/n6").is_none());
        assert_eq!(store.len(), slots.len() + 1);
    }

    #[test]
    fn paths_are_found_by_walking_from_the_root() {
        let mut store = NodeStore::default();
        assert_eq!(store.insert("/a", node(1)), None, "no root yet");
        store.insert("/", node(0));
        assert_eq!(store.insert("/a/b", node(2)), None, "no parent");
        assert_eq!(store.insert("/", node(0)), None, "one root");
        let a = store.insert("/a", node(1));
        let b = store.insert("/a/b", node(2));
        assert!(a.is_some() && b.is_some());
        assert_eq!(store.slot_of("/a/b"), b);
        assert_eq!(store.insert("/a/", node(3)), None, "an empty name");
        for missing in ["/a/", "//a", "/a//b", "a", "/a/b/c", "/b"] {
            assert_eq!(store.slot_of(missing), None, "{missing}");
        }
        assert_eq!(store.remove("/a"), None, "/a still has a child");
        let paths: Vec<String> = store.iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["/", "/a", "/a/b"]);
        assert!(store.remove("/a/b").is_some());
        assert!(store.remove("/a").is_some());
        assert_eq!(store.len(), 1);
        assert_eq!(store.remove("/"), None, "the root stays");
    }

    #[test]
    fn stores_with_the_same_nodes_in_other_slots_are_equal() {
        let mut a = NodeStore::default();
        let mut b = NodeStore::default();
        a.insert("/", node(0));
        b.insert("/", node(0));
        a.insert("/x", node(1));
        a.insert("/y", node(2));
        b.insert("/y", node(2));
        b.insert("/x", node(1));
        assert_eq!(a, b);
        if let Some(n) = b.get_mut("/x") {
            n.version = 3;
        }
        assert_ne!(a, b);
    }

    proptest::proptest! {
        /// Random creates and deletes on a small tree of short names (so
        /// that parents, siblings and re-used slots collide often), checked
        /// after every step against a set of full paths: lookups, counts,
        /// the walk from the root, and a capture taken midway.
        #[test]
        fn walking_the_child_lists_finds_what_a_path_set_holds(
            ops in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(0u8..3, 1..4)), 0..400)
        ) {
            use std::collections::BTreeSet;
            let mut store = NodeStore::default();
            store.insert("/", node(0));
            let mut model: BTreeSet<String> = BTreeSet::from(["/".to_owned()]);
            let mut capture = None;
            for (step, (create, names)) in ops.iter().enumerate() {
                let path: String = names.iter().map(|n| format!("/n{n}")).collect();
                let parent = match path.rfind('/') {
                    Some(0) => "/".to_owned(),
                    Some(i) => path[..i].to_owned(),
                    None => unreachable!(),
                };
                let has_children = model.iter().any(|p| p.starts_with(&format!("{path}/")));
                if *create {
                    let expected = model.contains(&parent) && !model.contains(&path);
                    proptest::prop_assert_eq!(store.insert(&path, node(step as i32)).is_some(), expected);
                    if expected {
                        model.insert(path.clone());
                    }
                } else {
                    let expected = model.contains(&path) && !has_children;
                    proptest::prop_assert_eq!(store.remove(&path).is_some(), expected);
                    if expected {
                        model.remove(&path);
                    }
                }
                proptest::prop_assert_eq!(store.len(), model.len());
                proptest::prop_assert_eq!(store.contains_key(&path), model.contains(&path));
                if step == ops.len() / 2 {
                    capture = Some((store.capture(), model.len()));
                }
            }
            let walked: BTreeSet<String> = store.iter().map(|(p, _)| p).collect();
            proptest::prop_assert_eq!(&walked, &model);
            for path in &model {
                proptest::prop_assert!(store.get(path).is_some(), "{} is missing", path);
            }
            if let Some((capture, len)) = capture {
                proptest::prop_assert_eq!(capture.len(), len);
            }
        }
    }
}
