//! Where the znodes live in memory, laid out so that a snapshot can capture
//! all of them in microseconds while writes go on.
//!
//! Each node sits in a numbered slot as an `Arc<Node>`; slots are grouped in
//! fixed-size chunks, themselves shared through an `Arc`; a path index maps
//! every full path to its slot. A capture ([`NodeStore::capture`]) copies
//! only the chunk pointers (one per [`CHUNK_SLOTS`] nodes). A write after a
//! capture copies the one chunk of pointers it touches and then the one node
//! it changes (`Arc::make_mut`), each at most once per capture, and the
//! capture keeps seeing the old versions: an exact picture of the tree at the
//! moment it was taken, with no lock held while it is serialized.
//!
//! Nodes name their children's slots ([`crate::node::Children`]), so the
//! snapshot walks the capture without the path index, which is not captured.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::node::Node;

/// Slots per chunk. A capture costs one pointer copy per chunk (~4,000 for
/// 1M nodes); the first write to a chunk after a capture copies its 256
/// pointers (2 KiB). Measured with `examples/snapbench.rs`.
pub(crate) const CHUNK_SLOTS: usize = 256;

type Chunk = [Option<Arc<Node>>; CHUNK_SLOTS];

fn empty_chunk() -> Arc<Chunk> {
    Arc::new(std::array::from_fn(|_| None))
}

/// The tree's nodes: path → slot, slots in shared chunks.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeStore {
    /// Full path (the root as `/`) → slot. FxHash: fast on paths and the
    /// same on every server (nothing depends on its order anyway).
    index: FxHashMap<Box<str>, u32>,
    chunks: Vec<Arc<Chunk>>,
    /// Empty slots, reused before a new chunk is added; popped from the end,
    /// so a new chunk's slots are pushed in reverse and used in order.
    free: Vec<u32>,
}

impl NodeStore {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn contains_key(&self, path: &str) -> bool {
        self.index.contains_key(path)
    }

    /// The node stored under exactly `path` (the root is `/`).
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        slot_in(&self.chunks, *self.index.get(path)?)
    }

    /// The node in `slot`, if any.
    pub(crate) fn at(&self, slot: u32) -> Option<&Node> {
        slot_in(&self.chunks, slot)
    }

    /// The slot of the node under exactly `path`.
    pub(crate) fn slot_of(&self, path: &str) -> Option<u32> {
        self.index.get(path).copied()
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
        self.at_mut(*self.index.get(path)?)
    }

    /// Stores a node under a path that is not present yet and returns its
    /// slot (for the parent's child list); `None`, storing nothing, if the
    /// path is present.
    pub(crate) fn insert(&mut self, path: &str, node: Node) -> Option<u32> {
        let std::collections::hash_map::Entry::Vacant(entry) = self.index.entry(path.into()) else {
            return None;
        };
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
        entry.insert(slot);
        let index = slot as usize;
        let chunk = Arc::make_mut(&mut self.chunks[index / CHUNK_SLOTS]);
        chunk[index % CHUNK_SLOTS] = Some(Arc::new(node));
        Some(slot)
    }

    /// Takes the node under `path` out; its slot becomes free. A capture
    /// that still holds it keeps it alive.
    pub(crate) fn remove(&mut self, path: &str) -> Option<Arc<Node>> {
        let slot = self.index.remove(path)?;
        let index = slot as usize;
        let chunk = Arc::make_mut(self.chunks.get_mut(index / CHUNK_SLOTS)?);
        let node = chunk[index % CHUNK_SLOTS].take();
        self.free.push(slot);
        node
    }

    /// Every (path, node), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.index
            .iter()
            .filter_map(|(path, slot)| Some((&**path, slot_in(&self.chunks, *slot)?)))
    }

    /// Room for `additional` more nodes without growing the index.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.chunks.reserve(additional / CHUNK_SLOTS + 1);
    }

    /// An exact, immutable picture of every node as they are now. Costs one
    /// pointer copy per chunk; later writes do not show through it.
    pub(crate) fn capture(&self) -> CapturedNodes {
        CapturedNodes {
            chunks: self.chunks.clone(),
            root: self.index.get("/").copied(),
            len: self.index.len(),
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
                .all(|(path, node)| other.get(path) == Some(node))
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
    }

    #[test]
    fn stores_with_the_same_nodes_in_other_slots_are_equal() {
        let mut a = NodeStore::default();
        let mut b = NodeStore::default();
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
}
