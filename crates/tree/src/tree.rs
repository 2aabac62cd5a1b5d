//! `DataTree`: the in-memory znode tree, its indexes (ephemerals by session,
//! containers, TTL nodes, quota roots), the session table, and the read
//! path. Writes live in `apply.rs`, quotas in `quota.rs`, reaping in
//! `reap.rs`, snapshots in `snapshot.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use corral_proto::{perms, Acl, ErrorCode, Id, Stat};

use crate::acl::{check_acl, mask_digest_ids, AclTable};
use crate::node::{Node, NodeKind};
use crate::path::{canonical, join, utf16_len};
use crate::store::NodeStore;

/// Server settings that change what `apply` decides. Every server of an
/// ensemble must use the same values, or their trees diverge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeConfig {
    /// `zookeeper.extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `zookeeper.enforceQuota`: hard quota limits refuse writes.
    pub enforce_quota: bool,
    /// `authProvider.N=…SASLAuthenticationProvider`: `sasl` ids are valid in
    /// ACLs (and `auth` expands to a client's SASL identity).
    pub sasl_acls: bool,
    /// TLS is configured, so ZooKeeper's X509AuthenticationProvider is
    /// registered: `x509` ids (certificate subjects) are valid in ACLs.
    pub x509_acls: bool,
    /// `skipACL=yes`: no permission is checked (ACLs are still validated
    /// and stored), as ZooKeeper's `checkACL` returns at once then.
    pub skip_acl: bool,
}

impl TreeConfig {
    /// The optional authentication providers these settings register.
    pub(crate) fn providers(&self) -> crate::acl::Providers {
        crate::acl::Providers {
            sasl: self.sasl_acls,
            x509: self.x509_acls,
        }
    }
}

/// The znode tree: Corral's replicated state machine.
///
/// Nodes live in a [`NodeStore`] indexed by full path (the root under `/`,
/// also found as `""`); each node keeps its children's names, so listing is
/// direct and the index never needs scanning. Cloning a tree is cheap (the
/// nodes are shared until written), which is what lets a snapshot capture
/// it without stopping writes.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTree {
    pub(crate) config: TreeConfig,
    pub(crate) nodes: NodeStore,
    pub(crate) acls: AclTable,
    /// Session id → negotiated timeout in ms.
    pub(crate) sessions: BTreeMap<i64, i32>,
    /// Server id holding each session's connection, as the log decided it
    /// (the server sets it; the tree keeps it so snapshots carry it).
    pub(crate) session_owners: BTreeMap<i64, u64>,
    /// Normal ephemerals by owning session.
    pub(crate) ephemerals: BTreeMap<i64, BTreeSet<Box<str>>>,
    pub(crate) containers: BTreeSet<Box<str>>,
    pub(crate) ttls: BTreeSet<Box<str>>,
    /// Quota roots, normalised as `/a/b` (ZooKeeper's `PathTrie`).
    pub(crate) quota_roots: BTreeSet<Box<str>>,
    /// Σ UTF-16 path length + data length over nodes.
    pub(crate) data_size: i64,
    pub(crate) last_zxid: i64,
}

impl DataTree {
    /// The tree of a fresh ZooKeeper server: `/`, `/zookeeper`,
    /// `/zookeeper/quota` (world:anyone ALL) and `/zookeeper/config`
    /// (world:anyone READ, aversion -1 as ZooKeeper's constructor leaves it),
    /// every zxid and time 0.
    pub fn new(config: TreeConfig) -> DataTree {
        let mut tree = DataTree::empty(config);
        let open = Arc::new(Acl::open_unsafe());
        let read_only = Arc::new(vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }]);
        for (path, acl) in [
            ("/", &open),
            ("/zookeeper", &open),
            ("/zookeeper/quota", &open),
            ("/zookeeper/config", &read_only),
        ] {
            let acl = tree.acls.acquire(acl);
            let mut node = Node::new(Some(b""), acl, 0, 0, 0);
            if path == "/zookeeper/config" {
                node.aversion = -1;
            }
            tree.insert_loaded(path, node);
        }
        tree
    }

    /// A tree with no nodes at all, for snapshot loading.
    pub(crate) fn empty(config: TreeConfig) -> DataTree {
        DataTree {
            config,
            nodes: Default::default(),
            acls: AclTable::default(),
            sessions: BTreeMap::new(),
            session_owners: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            quota_roots: BTreeSet::new(),
            data_size: 0,
            last_zxid: 0,
        }
    }

    /// Adds a node whose parent is already present (or the root), keeping
    /// the indexes and data size; the node's ACL must already be acquired.
    /// Used to build fresh and loaded trees; writes go through `apply`.
    pub(crate) fn insert_loaded(&mut self, path: &str, node: Node) -> bool {
        let Some(parent) = self.nodes.parent_slot_for(path) else {
            return false;
        };
        self.insert_loaded_under(parent, path, node)
    }

    /// [`DataTree::insert_loaded`] with the parent's slot known (`None` for
    /// the root).
    pub(crate) fn insert_loaded_under(
        &mut self,
        parent: Option<u32>,
        path: &str,
        node: Node,
    ) -> bool {
        let (size, owner) = (node_size(path, node.data_len()), node.ephemeral_owner);
        if self.nodes.insert_under(parent, path, node).is_none() {
            return false;
        }
        self.data_size += size;
        self.index_node(path, owner);
        true
    }

    /// Adds `path` to the ephemeral/container/TTL index its owner says.
    pub(crate) fn index_node(&mut self, path: &str, owner: i64) {
        match NodeKind::of_owner(owner, self.config.extended_types_enabled) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.into());
            }
            NodeKind::Container => {
                self.containers.insert(path.into());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.into());
            }
        }
    }

    /// Removes `path` from the index its owner says.
    pub(crate) fn unindex_node(&mut self, path: &str, owner: i64) {
        match NodeKind::of_owner(owner, self.config.extended_types_enabled) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(session) => {
                if let Some(paths) = self.ephemerals.get_mut(&session) {
                    paths.remove(path);
                    if paths.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
    }

    /// The node at `path`; `""` is the root too.
    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(canonical(path))
    }

    pub fn config(&self) -> TreeConfig {
        self.config
    }

    /// The zxid of the last applied transaction (0 for a fresh tree).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    // ---- reads ----------------------------------------------------------

    /// exists: the node's Stat, with no ACL check (as Debian's 3.8.0). The
    /// path is not validated (the server rejects a NUL with BadArguments
    /// first); `""` finds the root.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.node(path)
            .map(|node| node.stat(self.config.extended_types_enabled))
    }

    /// getData: NoNode, then READ → NoAuth. The data is `None` when it is
    /// null (created or set with a null buffer); its Stat's dataLength is 0.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<&[u8]>, Stat), ErrorCode> {
        let node = self.readable(path, auth, perms::READ)?;
        Ok((node.data(), node.stat(self.config.extended_types_enabled)))
    }

    /// getChildren / getChildren2: child names (sorted; ZooKeeper's order is
    /// unspecified) and the node's Stat. NoNode, then READ → NoAuth.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<&str>, Stat), ErrorCode> {
        let node = self.readable(path, auth, perms::READ)?;
        let children = node.children.names().collect();
        Ok((children, node.stat(self.config.extended_types_enabled)))
    }

    /// getACL: needs READ or ADMIN; without ADMIN every digest id comes back
    /// masked as `user:x`.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let node = self.readable(path, auth, perms::READ | perms::ADMIN)?;
        let acl = if self.permits(&node.acl, auth, perms::ADMIN) {
            node.acl.to_vec()
        } else {
            mask_digest_ids(&node.acl)
        };
        Ok((acl, node.stat(self.config.extended_types_enabled)))
    }

    /// getAllChildrenNumber: every descendant, not the node itself. For `/`
    /// that includes the `/zookeeper` system nodes. NoNode, then READ.
    pub fn get_all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ErrorCode> {
        self.readable(path, auth, perms::READ)?;
        let count = match path {
            "/" => self.nodes.len() - 1,
            // ZooKeeper counts keys starting with `"" + "/"`: every node,
            // the root included.
            "" => self.nodes.len(),
            _ => self.descendant_count(path),
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    fn descendant_count(&self, path: &str) -> usize {
        let mut count = 0;
        let mut pending = vec![path.to_owned()];
        while let Some(path) = pending.pop() {
            if let Some(node) = self.node(&path) {
                count += node.children.len();
                pending.extend(
                    node.children
                        .names()
                        .map(|child| join(&path, child))
                        .filter(|child| self.node(child).is_some_and(|n| !n.children.is_empty())),
                );
            }
        }
        count
    }

    /// ZooKeeper's `checkACL`: whether `auth` holds one of `perm` on `acl`;
    /// with `skipACL=yes` everything is allowed.
    pub fn permits(&self, acl: &[Acl], auth: &[Id], perm: i32) -> bool {
        self.config.skip_acl || check_acl(acl, auth, perm)
    }

    /// The node at `path` if it exists (NoNode) and `auth` has one of `perm`
    /// (NoAuth), in ZooKeeper's order.
    fn readable(&self, path: &str, auth: &[Id], perm: i32) -> Result<&Node, ErrorCode> {
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if self.permits(&node.acl, auth, perm) {
            Ok(node)
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// getEphemerals: this session's normal ephemerals (not containers or
    /// TTL nodes) whose path starts with `prefix` as a string. An empty,
    /// blank or `/` prefix (the wire's null arrives as empty) returns all of
    /// them. Sorted.
    pub fn get_ephemerals(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let trimmed = prefix.trim_matches(|c: char| c <= ' ');
        let everything = trimmed.is_empty() || trimmed == "/";
        self.session_ephemerals(session_id)
            .filter(|path| everything || path.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// The normal ephemerals `session_id` owns, sorted.
    pub fn session_ephemerals(&self, session_id: i64) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session_id)
            .into_iter()
            .flat_map(|paths| paths.iter().map(|path| &**path))
    }

    // ---- figures for srvr / mntr ---------------------------------------

    /// ZooKeeper's "Node count" / `zk_znode_count`: the size of its node map,
    /// which holds the root twice (a fresh server says 5).
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Sets the content of `/zookeeper/config` (the ensemble membership, in
    /// ZooKeeper's dynamic-config format) outside the log, as ZooKeeper
    /// fills it from its configuration at start-up: no zxid, no version
    /// change, no watch. Every server of an ensemble sets the same text.
    pub fn set_config_node(&mut self, data: &[u8]) {
        let Some(node) = self.nodes.get_mut("/zookeeper/config") else {
            return;
        };
        let old_len = node.data_len();
        node.data = Some(Box::from(data));
        self.data_size += data.len() as i64 - old_len as i64;
    }

    /// `zk_approximate_data_size`: Σ (path length in UTF-16 units + data
    /// length) over all nodes.
    pub fn approximate_data_size(&self) -> i64 {
        self.data_size
    }

    /// `zk_ephemerals_count`: normal ephemerals of all sessions.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    // ---- sessions -------------------------------------------------------

    /// The server whose connection holds the session, when known.
    pub fn session_owner(&self, session_id: i64) -> Option<u64> {
        self.session_owners.get(&session_id).copied()
    }

    /// Records which server holds the session's connection. Called by the
    /// apply step, in log order, on every server alike; ignored for a
    /// session the tree does not know.
    pub fn set_session_owner(&mut self, session_id: i64, owner: u64) {
        if self.sessions.contains_key(&session_id) {
            self.session_owners.insert(session_id, owner);
        }
    }

    /// Open sessions and their timeouts in ms, by session id.
    pub fn sessions(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.sessions.iter().map(|(id, timeout)| (*id, *timeout))
    }

    /// The timeout of an open session, `None` if it is not open.
    pub fn session_timeout_ms(&self, session_id: i64) -> Option<i32> {
        self.sessions.get(&session_id).copied()
    }

    // ---- invariants -----------------------------------------------------

    /// Checks every structural invariant (children sets vs the map, indexes,
    /// ACL reference counts, data size) and panics with the first broken one.
    /// O(nodes): for tests and simulation, not the hot path.
    pub fn assert_invariants(&self) {
        assert!(self.nodes.contains_key("/"), "the root is missing");
        let mut size = 0;
        let mut acl_users: HashMap<&[Acl], u64> = HashMap::new();
        let mut ephemerals: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        let (mut containers, mut ttls) = (BTreeSet::<String>::new(), BTreeSet::<String>::new());
        for (owned_path, node) in self.nodes.iter() {
            let path = owned_path.as_str();
            size += node_size(path, node.data_len());
            *acl_users.entry(node.acl.as_slice()).or_default() += 1;
            assert_eq!(node.num_children() as usize, node.children.len());
            for (child, slot) in node.children.iter() {
                let child_path = join(path, child);
                assert!(
                    self.nodes.contains_key(child_path.as_str()),
                    "{path} lists missing child {child}"
                );
                assert!(
                    std::ptr::eq(
                        self.nodes
                            .at(slot)
                            .unwrap_or_else(|| panic!("{path}: empty slot for {child}")),
                        self.nodes
                            .get(&child_path)
                            .unwrap_or_else(|| panic!("{child_path} is missing")),
                    ),
                    "{path} names the wrong slot for {child}"
                );
            }
            if path != "/" {
                assert!(
                    crate::path::validate_path(path),
                    "stored path {path:?} is invalid"
                );
                let (parent, name) = crate::path::split_parent(path).unwrap_or_default();
                let parent = self
                    .node(parent)
                    .unwrap_or_else(|| panic!("{path} has no parent"));
                assert!(
                    parent.children.contains(name),
                    "{path} is not listed by its parent"
                );
                assert!(
                    parent.pzxid() >= node.czxid,
                    "{path}: parent pzxid below child czxid"
                );
            }
            assert!(
                node.mzxid <= self.last_zxid && node.pzxid() <= self.last_zxid,
                "{path}: zxid from the future"
            );
            match node.kind(self.config.extended_types_enabled) {
                NodeKind::Persistent => {}
                NodeKind::Ephemeral(session) => {
                    assert!(node.children.is_empty(), "ephemeral {path} has children");
                    ephemerals
                        .entry(session)
                        .or_default()
                        .insert(owned_path.clone());
                }
                NodeKind::Container => {
                    containers.insert(owned_path.clone());
                }
                NodeKind::Ttl(_) => {
                    ttls.insert(owned_path.clone());
                }
            }
        }
        assert_eq!(size, self.data_size, "data size drifted");
        assert_eq!(
            acl_users.len(),
            self.acls.len(),
            "ACL table holds unused lists"
        );
        for (acl, users) in acl_users {
            assert_eq!(
                self.acls.ref_count(acl),
                users,
                "ACL reference count of {acl:?}"
            );
        }
        let indexed: BTreeMap<i64, BTreeSet<String>> = self
            .ephemerals
            .iter()
            .map(|(s, paths)| (*s, paths.iter().map(|p| p.to_string()).collect()))
            .collect();
        assert_eq!(indexed, ephemerals, "ephemeral index");
        assert_eq!(
            self.containers
                .iter()
                .map(|p| p.to_string())
                .collect::<BTreeSet<_>>(),
            containers,
            "container index"
        );
        assert_eq!(
            self.ttls
                .iter()
                .map(|p| p.to_string())
                .collect::<BTreeSet<_>>(),
            ttls,
            "TTL index"
        );
    }
}

/// ZooKeeper's `getNodeSize`: path length in UTF-16 units + data length.
pub(crate) fn node_size(path: &str, data_len: usize) -> i64 {
    i64::try_from(utf16_len(path) + data_len).unwrap_or(i64::MAX)
}
