//! One znode as stored in memory, and how its internal `ephemeralOwner`
//! encodes the node's kind (ephemeral, container, TTL).
//!
//! The stored `cversion` is ZooKeeper's internal create counter (children
//! ever created); clients see `2 × cversion − numChildren`. The stored
//! ephemeral owner marks containers and TTL nodes; clients see 0 for those.

use std::sync::Arc;

use corral_proto::{Acl, Stat};

pub(crate) use crate::children::Children;

/// Internal owner of a container (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
pub(crate) const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte marking an extended type in the owner; TTL nodes use feature 0.
const EXTENDED_MASK: u64 = 0xFF00_0000_0000_0000;
const EXTENDED_FEATURE_MASK: u64 = 0x00FF_FF00_0000_0000;
/// Largest TTL (40 bits of milliseconds), `EphemeralType.TTL.maxValue()`.
pub(crate) const TTL_MAX_MS: i64 = 0xFF_FFFF_FFFF;

/// What a node's internal owner says it is (`EphemeralType.get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Persistent,
    /// A normal ephemeral owned by this session.
    Ephemeral(i64),
    Container,
    /// A TTL node with its ttl in ms.
    Ttl(i64),
}

impl NodeKind {
    /// As ZooKeeper: TTL owners are recognised only while extended types are
    /// enabled; otherwise such an owner reads as a normal ephemeral.
    pub(crate) fn of_owner(owner: i64, extended_types_enabled: bool) -> NodeKind {
        let bits = owner as u64;
        if extended_types_enabled
            && bits & EXTENDED_MASK == EXTENDED_MASK
            && bits & EXTENDED_FEATURE_MASK == 0
        {
            return NodeKind::Ttl(owner & TTL_MAX_MS);
        }
        match owner {
            CONTAINER_OWNER => NodeKind::Container,
            0 => NodeKind::Persistent,
            session => NodeKind::Ephemeral(session),
        }
    }
}

/// The internal owner of a TTL node.
pub(crate) fn ttl_owner(ttl_ms: i64) -> i64 {
    (EXTENDED_MASK | (ttl_ms & TTL_MAX_MS) as u64) as i64
}

/// A znode. The path is the key of the tree's map, not stored here.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// `None` when the node was created or last set with null data (jute
    /// length -1): ZooKeeper keeps null apart from empty, and getData answers
    /// null for it. `Box<[u8]>` is non-null, so the `Option` costs nothing.
    pub(crate) data: Option<Box<[u8]>>,
    /// Interned through the tree's `AclTable`.
    pub(crate) acl: Arc<Vec<Acl>>,
    /// Child names (not paths), sorted, with the slot each child is stored
    /// in.
    pub(crate) children: Children,
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    /// Internal: session id, [`CONTAINER_OWNER`], a TTL owner, or 0.
    pub(crate) ephemeral_owner: i64,
    pub(crate) version: i32,
    pub(crate) aversion: i32,
    // pzxid and the create counter (cversion) live in `children`: only
    // children change them, and most nodes never have any.
}

impl Node {
    /// A node created by a transaction at `zxid`, `time_ms`.
    pub(crate) fn new(
        data: Option<&[u8]>,
        acl: Arc<Vec<Acl>>,
        ephemeral_owner: i64,
        zxid: i64,
        time_ms: i64,
    ) -> Node {
        Node {
            data: data.map(Box::from),
            acl,
            children: Children::default(),
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            ephemeral_owner,
            version: 0,
            aversion: 0,
        }
    }

    /// The zxid of the last change to the node's children (its czxid until
    /// one).
    pub(crate) fn pzxid(&self) -> i64 {
        self.children.pzxid().unwrap_or(self.czxid)
    }

    pub(crate) fn set_pzxid(&mut self, pzxid: i64) {
        if pzxid != self.pzxid() {
            self.children.set_pzxid(pzxid);
        }
    }

    /// Internal create counter: +1 per child created, never lowered.
    pub(crate) fn cversion(&self) -> i32 {
        self.children.cversion()
    }

    pub(crate) fn set_cversion(&mut self, cversion: i32) {
        if cversion != self.cversion() {
            self.children.set_cversion(cversion);
        }
    }

    /// The data, `None` when it is null.
    pub(crate) fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// The data as bytes, null read as empty (quota and stats nodes).
    pub(crate) fn data_bytes(&self) -> &[u8] {
        self.data().unwrap_or_default()
    }

    /// Data length in bytes; null counts as 0, as in ZooKeeper's Stat,
    /// quotas and data size.
    pub(crate) fn data_len(&self) -> usize {
        self.data_bytes().len()
    }

    pub(crate) fn num_children(&self) -> i32 {
        i32::try_from(self.children.len()).unwrap_or(i32::MAX)
    }

    pub(crate) fn kind(&self, extended_types_enabled: bool) -> NodeKind {
        NodeKind::of_owner(self.ephemeral_owner, extended_types_enabled)
    }

    /// The Stat clients see (`DataNode.copyStat`).
    pub(crate) fn stat(&self, extended_types_enabled: bool) -> Stat {
        let num_children = self.num_children();
        let ephemeral_owner = match self.kind(extended_types_enabled) {
            NodeKind::Ephemeral(session) => session,
            _ => 0,
        };
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion().wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            ephemeral_owner,
            data_length: i32::try_from(self.data_len()).unwrap_or(i32::MAX),
            num_children,
            pzxid: self.pzxid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_decode_to_kinds_like_ephemeral_type() {
        assert_eq!(NodeKind::of_owner(0, true), NodeKind::Persistent);
        assert_eq!(
            NodeKind::of_owner(0x1234, true),
            NodeKind::Ephemeral(0x1234)
        );
        assert_eq!(
            NodeKind::of_owner(CONTAINER_OWNER, false),
            NodeKind::Container
        );
        assert_eq!(
            NodeKind::of_owner(ttl_owner(5000), true),
            NodeKind::Ttl(5000)
        );
        assert_eq!(
            NodeKind::of_owner(ttl_owner(5000), false),
            NodeKind::Ephemeral(ttl_owner(5000))
        );
        assert_eq!(ttl_owner(1) as u64, 0xFF00_0000_0000_0001);
    }

    #[test]
    fn visible_cversion_counts_creates_and_deletes() {
        let mut node = Node::new(Some(b""), Arc::new(Acl::open_unsafe()), 0, 1, 0);
        node.set_cversion(2);
        node.children.insert("b", 0);
        // Two creates, one delete: clients see 3.
        assert_eq!(node.stat(false).cversion, 3);
    }

    #[test]
    fn null_data_stays_null_and_has_length_zero() {
        let null = Node::new(None, Arc::new(Acl::open_unsafe()), 0, 1, 0);
        assert_eq!(null.data(), None);
        assert_eq!(null.stat(false).data_length, 0);
        let empty = Node::new(Some(b""), Arc::new(Acl::open_unsafe()), 0, 1, 0);
        assert_eq!(empty.data(), Some(&b""[..]));
        assert_eq!(empty.stat(false).data_length, 0);
    }

    #[test]
    fn remembering_null_data_costs_no_bytes_per_node() {
        assert_eq!(
            std::mem::size_of::<Option<Box<[u8]>>>(),
            std::mem::size_of::<Box<[u8]>>()
        );
    }

    #[test]
    fn a_node_and_its_reference_counts_fit_a_96_byte_allocation() {
        // `Arc<Node>` adds two 8-byte counts; jemalloc's size classes are
        // 16 bytes apart up to 128 (no per-allocation header): 96 bytes or
        // less is the 96-byte class, 97 the 112-byte one.
        assert!(std::mem::size_of::<Node>() + 16 <= 96);
    }

    #[test]
    fn pzxid_and_the_create_counter_cost_a_leaf_nothing_until_it_has_children() {
        let mut node = Node::new(Some(b""), Arc::new(Acl::open_unsafe()), 0, 7, 0);
        assert_eq!((node.pzxid(), node.cversion()), (7, 0));
        node.set_pzxid(7);
        node.set_cversion(0);
        assert!(node.children.pzxid().is_none() && node.children.is_empty());
        node.children.insert("a", 1);
        node.set_cversion(1);
        node.set_pzxid(9);
        node.children.remove("a");
        assert_eq!(
            (node.pzxid(), node.cversion()),
            (9, 1),
            "kept after the child went"
        );
        assert_eq!(node.stat(false).cversion, 2);
    }

    #[test]
    fn containers_and_ttl_nodes_show_owner_zero() {
        let container = Node::new(
            Some(b""),
            Arc::new(Acl::open_unsafe()),
            CONTAINER_OWNER,
            1,
            0,
        );
        assert_eq!(container.stat(true).ephemeral_owner, 0);
        let ttl = Node::new(Some(b""), Arc::new(Acl::open_unsafe()), ttl_owner(10), 1, 0);
        assert_eq!(ttl.stat(true).ephemeral_owner, 0);
    }
}
