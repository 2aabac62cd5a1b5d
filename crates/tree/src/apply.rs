//! The write path: `DataTree::apply`, which every server runs on every log
//! entry in the same order.
//!
//! Each write is checked first (ZooKeeper's `PrepRequestProcessor`, in its
//! exact error order) against a view of the tree, giving a [`Plan`]; the plan
//! is then carried out (ZooKeeper's `DataTree.processTxn`). A multi checks
//! every op against the view left by the ops before it (an overlay of
//! pending changes, like ZooKeeper's outstanding change records) and carries
//! out its plans only when all of them passed, so a failed multi changes
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

use corral_proto::{perms, Acl, CreateMode, ErrorCode, EventType, Id, Stat};

/// The node holding the ensemble's dynamic configuration.
const CONFIG_NODE: &str = "/zookeeper/config";

use crate::acl::fixup_acl;
use crate::node::{ttl_owner, Node, NodeKind, CONTAINER_OWNER, TTL_MAX_MS};
use crate::path::{
    canonical, event_path, is_system_path, sequential_suffix, split_parent, validate_path,
};
use crate::tree::{node_size, DataTree};
use crate::txn::{ApplyOutcome, MultiOpResult, Txn, TxnOp, TxnResult, WatchTrigger};

/// Who asked, and when: the parts of a [`Txn`] besides its op.
struct Ctx<'a> {
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    auth: &'a [Id],
}

/// What a node looks like to a check: the applied node, or its state after
/// the earlier ops of the same multi.
#[derive(Clone)]
struct NodeView {
    acl: Arc<Vec<Acl>>,
    version: i32,
    /// Internal create counter.
    cversion: i32,
    aversion: i32,
    num_children: i32,
    ephemeral_owner: i64,
    data_len: usize,
}

impl NodeView {
    fn of(node: &Node) -> NodeView {
        NodeView {
            acl: Arc::clone(&node.acl),
            version: node.version,
            cversion: node.cversion(),
            aversion: node.aversion,
            num_children: node.num_children(),
            ephemeral_owner: node.ephemeral_owner,
            data_len: node.data_len(),
        }
    }
}

/// Pending changes of a multi's checked ops: path → new view, or `None`
/// for deleted.
#[derive(Default)]
struct Overlay {
    changes: HashMap<String, Option<NodeView>>,
}

/// A checked write, ready to carry out. Carrying it out cannot fail.
enum Plan<'a> {
    Create {
        path: String,
        data: Option<&'a [u8]>,
        acl: Arc<Vec<Acl>>,
        ephemeral_owner: i64,
    },
    Delete {
        path: &'a str,
    },
    SetData {
        path: &'a str,
        data: Option<&'a [u8]>,
        version: i32,
    },
    SetAcl {
        path: &'a str,
        acl: Arc<Vec<Acl>>,
        aversion: i32,
    },
    Check,
}

/// What carrying out a plan gave.
enum Done {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
}

/// `checkAndIncVersion`: -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// `getParentPathAndValidate` (delete, deleteContainer): a `/`, no NUL, not
/// a system node.
fn parent_for_delete(path: &str) -> Result<&str, ErrorCode> {
    match split_parent(path) {
        Some((parent, _)) if !path.contains('\0') && !is_system_path(path) => Ok(parent),
        _ => Err(ErrorCode::BadArguments),
    }
}

impl DataTree {
    /// NoAuth unless [`DataTree::permits`].
    fn require(&self, acl: &[Acl], auth: &[Id], perm: i32) -> Result<(), ErrorCode> {
        if self.permits(acl, auth, perm) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// Applies one committed transaction at `zxid` and reports its result
    /// and the watch triggers it fires, in ZooKeeper's order.
    ///
    /// Never fails as a Rust call: protocol errors are `TxnResult::Error`
    /// (or a multi's per-op errors), and a failed write still uses its zxid.
    ///
    /// # Panics
    /// If `zxid` is not above [`DataTree::last_zxid`]: applying out of order
    /// would corrupt the state every server must agree on.
    pub fn apply(&mut self, zxid: i64, txn: &Txn) -> ApplyOutcome {
        assert!(
            zxid > self.last_zxid,
            "zxid {zxid:#x} applied after {:#x}: the log went backwards",
            self.last_zxid
        );
        let ctx = Ctx {
            zxid,
            time_ms: txn.time_ms,
            session_id: txn.session_id,
            auth: &txn.auth,
        };
        let mut triggers = Vec::new();
        let result = match &txn.op {
            TxnOp::CreateSession { timeout_ms } => {
                self.sessions.insert(txn.session_id, *timeout_ms);
                TxnResult::SessionCreated
            }
            TxnOp::CloseSession => {
                self.close_session(&ctx, &mut triggers);
                TxnResult::SessionClosed
            }
            TxnOp::Multi(ops) => self.apply_multi(&ctx, ops, &mut triggers),
            TxnOp::SetConfig { members } => self.apply_config(&ctx, members, &mut triggers),
            TxnOp::MoveSession { .. } => TxnResult::SessionCreated,
            TxnOp::DeleteContainer { path } => match self.check_delete_container(path) {
                Ok(plan) => self.carry_out(&ctx, plan, &mut triggers).into_result(),
                Err(code) => TxnResult::Error(code),
            },
            op => match self.check_op(&ctx, &Overlay::default(), op) {
                Ok(plan) => self.carry_out(&ctx, plan, &mut triggers).into_result(),
                Err(code) => TxnResult::Error(code),
            },
        };
        self.last_zxid = zxid;
        ApplyOutcome {
            zxid,
            result,
            triggers,
        }
    }

    /// Checks and applies a multi atomically: on the first failing op
    /// nothing is applied and the results are `Ok` for the ops before it,
    /// its code, then `RuntimeInconsistency`.
    fn apply_multi(
        &mut self,
        ctx: &Ctx<'_>,
        ops: &[TxnOp],
        triggers: &mut Vec<WatchTrigger>,
    ) -> TxnResult {
        let allowed = |op: &TxnOp| {
            matches!(
                op,
                TxnOp::Create { .. }
                    | TxnOp::Delete { .. }
                    | TxnOp::SetData { .. }
                    | TxnOp::Check { .. }
                    | TxnOp::Fail(_)
            )
        };
        if !ops.iter().all(allowed) {
            // The wire decoder accepts no other op in a multi; ZooKeeper
            // answers an undecodable multi with MarshallingError.
            return TxnResult::Error(ErrorCode::MarshallingError);
        }
        let mut overlay = Overlay::default();
        let mut plans = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match self.check_op(ctx, &overlay, op) {
                Ok(plan) => {
                    self.record(&mut overlay, &plan);
                    plans.push(plan);
                }
                // ZooKeeper's prep stage throws a non-Keeper exception for
                // such an op (a TTL create under a non-TTL opcode): the
                // whole request fails, not just this op.
                Err(ErrorCode::MarshallingError) if matches!(op, TxnOp::Fail(_)) => {
                    return TxnResult::Error(ErrorCode::MarshallingError);
                }
                Err(code) => {
                    let results = (0..ops.len())
                        .map(|i| {
                            MultiOpResult::Error(match i.cmp(&index) {
                                std::cmp::Ordering::Less => ErrorCode::Ok,
                                std::cmp::Ordering::Equal => code,
                                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                            })
                        })
                        .collect();
                    return TxnResult::Multi(results);
                }
            }
        }
        let results = plans
            .into_iter()
            .map(|plan| self.carry_out(ctx, plan, triggers).into_multi_result())
            .collect();
        TxnResult::Multi(results)
    }

    /// ZooKeeper's reconfig txn: a setData of `/zookeeper/config` whose
    /// version becomes -1 (the txn's version, as `DataTree.setData` stores
    /// it) and whose data ends with the new configuration's version, this
    /// zxid. Data watchers of the node hear NodeDataChanged.
    fn apply_config(
        &mut self,
        ctx: &Ctx<'_>,
        members: &str,
        triggers: &mut Vec<WatchTrigger>,
    ) -> TxnResult {
        let mut text = members.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("version={:x}", ctx.zxid));
        let extended = self.config.extended_types_enabled;
        let Some(node) = self.nodes.get_mut(CONFIG_NODE) else {
            return TxnResult::Error(ErrorCode::NoNode);
        };
        let old_len = node.data_len();
        node.data = Some(Box::from(text.as_bytes()));
        node.mzxid = ctx.zxid;
        node.mtime = ctx.time_ms;
        node.version = -1;
        let stat = node.stat(extended);
        let acl = Arc::clone(&node.acl);
        self.data_size += text.len() as i64 - old_len as i64;
        triggers.push(WatchTrigger {
            path: CONFIG_NODE.to_owned(),
            event: EventType::NodeDataChanged,
            acl,
        });
        TxnResult::DataSet { stat }
    }

    /// ZooKeeper's `killSession`: deletes the session's normal ephemerals
    /// (sorted by path) in this one zxid and forgets the session.
    fn close_session(&mut self, ctx: &Ctx<'_>, triggers: &mut Vec<WatchTrigger>) {
        let paths = self.ephemerals.remove(&ctx.session_id).unwrap_or_default();
        for path in paths {
            if self.nodes.contains_key(&path) {
                self.delete_node(ctx.zxid, &path, triggers);
            }
        }
        self.sessions.remove(&ctx.session_id);
        self.session_owners.remove(&ctx.session_id);
    }

    // ---- checks ---------------------------------------------------------

    fn view(&self, overlay: &Overlay, path: &str) -> Option<NodeView> {
        let path = canonical(path);
        match overlay.changes.get(path) {
            Some(change) => change.clone(),
            None => self.nodes.get(path).map(NodeView::of),
        }
    }

    fn check_op<'a>(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        op: &'a TxnOp,
    ) -> Result<Plan<'a>, ErrorCode> {
        match op {
            TxnOp::Create {
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => self.check_create(ctx, overlay, path, data.as_deref(), acl, *mode, *ttl_ms),
            TxnOp::Delete { path, version } => self.check_delete(ctx, overlay, path, *version),
            TxnOp::SetData {
                path,
                data,
                version,
            } => self.check_set_data(ctx, overlay, path, data.as_deref(), *version),
            TxnOp::SetAcl { path, acl, version } => {
                self.check_set_acl(ctx, overlay, path, acl, *version)
            }
            TxnOp::Check { path, version } => self.check_check(ctx, overlay, path, *version),
            // Rejected by the server before the log; still fails here, in order.
            TxnOp::Fail(code) => Err(*code),
            TxnOp::CreateSession { .. }
            | TxnOp::CloseSession
            | TxnOp::SetConfig { .. }
            | TxnOp::MoveSession { .. }
            | TxnOp::Multi(_)
            | TxnOp::DeleteContainer { .. } => Err(ErrorCode::MarshallingError),
        }
    }

    /// §5's order: TTL disabled, TTL value, (ephemeral on a closed session),
    /// path shape, ACL, parent, CREATE, full path, exists, ephemeral parent,
    /// quota.
    #[allow(clippy::too_many_arguments)]
    fn check_create<'a>(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        path: &'a str,
        data: Option<&'a [u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> Result<Plan<'a>, ErrorCode> {
        if mode.is_ttl() && !self.config.extended_types_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl_valid = if mode.is_ttl() {
            (1..=TTL_MAX_MS).contains(&ttl_ms)
        } else {
            ttl_ms < 0
        };
        if !ttl_valid {
            return Err(ErrorCode::BadArguments);
        }
        // ZooKeeper's session tracker refuses an ephemeral for a session that
        // is gone; here the session table is part of the state, so a create
        // ordered after the session's close cannot leave an orphan.
        if mode.is_ephemeral() && !self.sessions.contains_key(&ctx.session_id) {
            return Err(ErrorCode::SessionExpired);
        }
        let parent_path = match split_parent(path) {
            Some((parent, _)) if !path.contains('\0') => parent,
            _ => return Err(ErrorCode::BadArguments),
        };
        let acl = fixup_acl(acl, ctx.auth, self.config.providers())?;
        let parent = self.view(overlay, parent_path).ok_or(ErrorCode::NoNode)?;
        self.require(&parent.acl, ctx.auth, perms::CREATE)?;
        let path = if mode.is_sequential() {
            format!("{path}{}", sequential_suffix(parent.cversion))
        } else {
            path.to_owned()
        };
        if !validate_path(&path) {
            return Err(ErrorCode::BadArguments);
        }
        if self.view(overlay, &path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if let NodeKind::Ephemeral(_) =
            NodeKind::of_owner(parent.ephemeral_owner, self.config.extended_types_enabled)
        {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        self.check_quota(&path, data_len(data) as i64, 1)?;
        let ephemeral_owner = if mode.is_container() {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            ttl_owner(ttl_ms)
        } else if mode.is_ephemeral() {
            ctx.session_id
        } else {
            0
        };
        Ok(Plan::Create {
            path,
            data,
            acl: Arc::new(acl),
            ephemeral_owner,
        })
    }

    /// §6: path shape/system node, parent, DELETE on the parent, node,
    /// version, children (so BadVersion wins over NotEmpty).
    fn check_delete<'a>(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        path: &'a str,
        version: i32,
    ) -> Result<Plan<'a>, ErrorCode> {
        let parent_path = parent_for_delete(path)?;
        let parent = self.view(overlay, parent_path).ok_or(ErrorCode::NoNode)?;
        self.require(&parent.acl, ctx.auth, perms::DELETE)?;
        let node = self.view(overlay, path).ok_or(ErrorCode::NoNode)?;
        check_version(node.version, version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        Ok(Plan::Delete { path })
    }

    /// §6: PathUtils, node, WRITE, quota, version.
    fn check_set_data<'a>(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        path: &'a str,
        data: Option<&'a [u8]>,
        version: i32,
    ) -> Result<Plan<'a>, ErrorCode> {
        if !validate_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.view(overlay, path).ok_or(ErrorCode::NoNode)?;
        self.require(&node.acl, ctx.auth, perms::WRITE)?;
        self.check_quota(path, data_len(data) as i64 - node.data_len as i64, 0)?;
        let version = check_version(node.version, version)?;
        Ok(Plan::SetData {
            path,
            data,
            version,
        })
    }

    /// §6: PathUtils, fixupACL (before NoNode), node, ADMIN, aversion.
    fn check_set_acl<'a>(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        path: &'a str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Plan<'a>, ErrorCode> {
        if !validate_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let acl = fixup_acl(acl, ctx.auth, self.config.providers())?;
        let node = self.view(overlay, path).ok_or(ErrorCode::NoNode)?;
        self.require(&node.acl, ctx.auth, perms::ADMIN)?;
        let aversion = check_version(node.aversion, version)?;
        Ok(Plan::SetAcl {
            path,
            acl: Arc::new(acl),
            aversion,
        })
    }

    /// §6: PathUtils, node, READ, version.
    fn check_check(
        &self,
        ctx: &Ctx<'_>,
        overlay: &Overlay,
        path: &str,
        version: i32,
    ) -> Result<Plan<'static>, ErrorCode> {
        if !validate_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.view(overlay, path).ok_or(ErrorCode::NoNode)?;
        self.require(&node.acl, ctx.auth, perms::READ)?;
        check_version(node.version, version)?;
        Ok(Plan::Check)
    }

    /// §13: path shape/system node, node, NotEmpty, then a normal ephemeral
    /// is refused with BadVersion. No ACL check.
    fn check_delete_container<'a>(&self, path: &'a str) -> Result<Plan<'a>, ErrorCode> {
        let parent_path = parent_for_delete(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        if let NodeKind::Ephemeral(_) = node.kind(self.config.extended_types_enabled) {
            return Err(ErrorCode::BadVersion);
        }
        self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        Ok(Plan::Delete { path })
    }

    /// Makes a checked plan visible to the next ops of the same multi.
    fn record(&self, overlay: &mut Overlay, plan: &Plan<'_>) {
        match plan {
            Plan::Create {
                path,
                data,
                acl,
                ephemeral_owner,
            } => {
                if let Some((parent_path, _)) = split_parent(path) {
                    if let Some(mut parent) = self.view(overlay, parent_path) {
                        parent.cversion = parent.cversion.wrapping_add(1);
                        parent.num_children += 1;
                        overlay
                            .changes
                            .insert(canonical(parent_path).to_owned(), Some(parent));
                    }
                }
                let node = NodeView {
                    acl: Arc::clone(acl),
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    num_children: 0,
                    ephemeral_owner: *ephemeral_owner,
                    data_len: data_len(*data),
                };
                overlay.changes.insert(path.clone(), Some(node));
            }
            Plan::Delete { path } => {
                if let Some((parent_path, _)) = split_parent(path) {
                    if let Some(mut parent) = self.view(overlay, parent_path) {
                        parent.num_children -= 1;
                        overlay
                            .changes
                            .insert(canonical(parent_path).to_owned(), Some(parent));
                    }
                }
                overlay.changes.insert((*path).to_owned(), None);
            }
            Plan::SetData {
                path,
                data,
                version,
            } => {
                if let Some(mut node) = self.view(overlay, path) {
                    node.version = *version;
                    node.data_len = data_len(*data);
                    overlay.changes.insert((*path).to_owned(), Some(node));
                }
            }
            Plan::SetAcl {
                path,
                acl,
                aversion,
            } => {
                if let Some(mut node) = self.view(overlay, path) {
                    node.acl = Arc::clone(acl);
                    node.aversion = *aversion;
                    overlay.changes.insert((*path).to_owned(), Some(node));
                }
            }
            Plan::Check => {}
        }
    }

    // ---- carrying out ---------------------------------------------------

    fn carry_out(
        &mut self,
        ctx: &Ctx<'_>,
        plan: Plan<'_>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Done {
        match plan {
            Plan::Create {
                path,
                data,
                acl,
                ephemeral_owner,
            } => {
                let stat = self.create_node(ctx, &path, data, &acl, ephemeral_owner, triggers);
                Done::Created { path, stat }
            }
            Plan::Delete { path } => {
                self.delete_node(ctx.zxid, path, triggers);
                Done::Deleted
            }
            Plan::SetData {
                path,
                data,
                version,
            } => Done::DataSet {
                stat: self.set_node_data(ctx, path, data, version, triggers),
            },
            Plan::SetAcl {
                path,
                acl,
                aversion,
            } => Done::AclSet {
                stat: self.set_node_acl(path, &acl, aversion),
            },
            Plan::Check => Done::Checked,
        }
    }

    /// `DataTree.createNode`: the parent's create counter +1 and pzxid =
    /// zxid; NodeCreated(path) then NodeChildrenChanged(parent).
    fn create_node(
        &mut self,
        ctx: &Ctx<'_>,
        path: &str,
        data: Option<&[u8]>,
        acl: &Arc<Vec<Acl>>,
        ephemeral_owner: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Stat {
        let (parent_path, name) =
            split_parent(path).unwrap_or_else(|| broken(path, "has no parent"));
        let acl = self.acls.acquire(acl);
        let node = Node::new(
            data,
            Arc::clone(&acl),
            ephemeral_owner,
            ctx.zxid,
            ctx.time_ms,
        );
        let stat = node.stat(self.config.extended_types_enabled);
        let parent_slot = self
            .nodes
            .slot_of(canonical(parent_path))
            .unwrap_or_else(|| broken(path, "lost its parent"));
        self.nodes
            .insert_under(Some(parent_slot), path, node)
            .unwrap_or_else(|| broken(path, "was already there"));
        let parent = self
            .nodes
            .at_mut(parent_slot)
            .unwrap_or_else(|| broken(path, "lost its parent"));
        parent.set_cversion(parent.cversion().wrapping_add(1));
        parent.set_pzxid(parent.pzxid().max(ctx.zxid));
        let parent_acl = Arc::clone(&parent.acl);
        self.data_size += node_size(path, data_len(data));
        self.index_node(path, ephemeral_owner);
        self.quota_after_create(path, parent_path, name, data_len(data));
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeCreated,
            acl,
        });
        triggers.push(WatchTrigger {
            path: event_path(parent_path).to_owned(),
            event: EventType::NodeChildrenChanged,
            acl: parent_acl,
        });
        stat
    }

    /// `DataTree.deleteNode`: the parent's pzxid = zxid (its create counter
    /// stays); NodeDeleted(path) then NodeChildrenChanged(parent).
    pub(crate) fn delete_node(&mut self, zxid: i64, path: &str, triggers: &mut Vec<WatchTrigger>) {
        let (parent_path, name) =
            split_parent(path).unwrap_or_else(|| broken(path, "has no parent"));
        let node = self
            .nodes
            .remove(path)
            .unwrap_or_else(|| broken(path, "vanished before its delete"));
        debug_assert!(node.children.is_empty(), "deleting {path} with children");
        let parent = self
            .nodes
            .get_mut(canonical(parent_path))
            .unwrap_or_else(|| broken(path, "lost its parent"));
        parent.set_pzxid(parent.pzxid().max(zxid));
        let parent_acl = Arc::clone(&parent.acl);
        self.acls.release(&node.acl);
        self.data_size -= node_size(path, node.data_len());
        self.unindex_node(path, node.ephemeral_owner);
        self.quota_after_delete(path, parent_path, name, node.data_len());
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeDeleted,
            acl: Arc::clone(&node.acl),
        });
        triggers.push(WatchTrigger {
            path: event_path(parent_path).to_owned(),
            event: EventType::NodeChildrenChanged,
            acl: parent_acl,
        });
    }

    /// `DataTree.setData`: version, mzxid, mtime; NodeDataChanged(path).
    fn set_node_data(
        &mut self,
        ctx: &Ctx<'_>,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Stat {
        let extended = self.config.extended_types_enabled;
        let node = self
            .nodes
            .get_mut(canonical(path))
            .unwrap_or_else(|| broken(path, "vanished before setData"));
        let old_len = node.data_len();
        node.data = data.map(Box::from);
        node.version = version;
        node.mzxid = ctx.zxid;
        node.mtime = ctx.time_ms;
        let stat = node.stat(extended);
        let acl = Arc::clone(&node.acl);
        self.data_size += data_len(data) as i64 - old_len as i64;
        self.quota_after_set_data(path, old_len, data_len(data));
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeDataChanged,
            acl,
        });
        stat
    }

    /// `DataTree.setACL`: only the ACL and aversion change; no trigger.
    fn set_node_acl(&mut self, path: &str, acl: &Arc<Vec<Acl>>, aversion: i32) -> Stat {
        let acl = self.acls.acquire(acl);
        let extended = self.config.extended_types_enabled;
        let node = self
            .nodes
            .get_mut(canonical(path))
            .unwrap_or_else(|| broken(path, "vanished before setACL"));
        let old = std::mem::replace(&mut node.acl, acl);
        node.aversion = aversion;
        let stat = node.stat(extended);
        self.acls.release(&old);
        stat
    }
}

/// Length of znode data; null counts as 0 bytes (Stat, quotas, data size).
fn data_len(data: Option<&[u8]>) -> usize {
    data.map_or(0, <[u8]>::len)
}

/// A checked plan met a tree that disagrees with its check: a bug in this
/// crate. Stopping is better than applying half a write.
fn broken(path: &str, what: &str) -> ! {
    panic!("tree invariant broken: {path} {what}")
}

impl Done {
    fn into_result(self) -> TxnResult {
        match self {
            Done::Created { path, stat } => TxnResult::Created { path, stat },
            Done::Deleted => TxnResult::Deleted,
            Done::DataSet { stat } => TxnResult::DataSet { stat },
            Done::AclSet { stat } => TxnResult::AclSet { stat },
            Done::Checked => TxnResult::Checked,
        }
    }

    fn into_multi_result(self) -> MultiOpResult {
        match self {
            Done::Created { path, stat } => MultiOpResult::Created { path, stat },
            Done::Deleted => MultiOpResult::Deleted,
            Done::DataSet { stat } => MultiOpResult::DataSet { stat },
            // Not reachable: setACL is not allowed in a multi.
            Done::AclSet { .. } => MultiOpResult::Error(ErrorCode::MarshallingError),
            Done::Checked => MultiOpResult::Checked,
        }
    }
}

#[cfg(test)]
mod tests {
    use corral_proto::{Acl, CreateMode};

    use super::*;
    use crate::tree::TreeConfig;

    fn create_seq(tree: &mut DataTree, zxid: i64, path: &str) -> TxnResult {
        let op = TxnOp::Create {
            path: path.into(),
            data: Some(vec![]),
            acl: Acl::open_unsafe(),
            mode: CreateMode::PersistentSequential,
            ttl_ms: -1,
        };
        tree.apply(
            zxid,
            &Txn {
                session_id: 1,
                time_ms: 0,
                auth: vec![],
                op,
            },
        )
        .result
    }

    #[test]
    fn sequential_suffix_wraps_to_negative_past_i32_max_like_java() {
        let mut tree = DataTree::new(TreeConfig::default());
        assert!(matches!(
            create_seq(&mut tree, 1, "/p"),
            TxnResult::Created { .. }
        ));
        let parent = tree.nodes.get_mut("/p0000000000").unwrap();
        parent.set_cversion(i32::MAX);
        let TxnResult::Created { path, .. } = create_seq(&mut tree, 2, "/p0000000000/s-") else {
            panic!()
        };
        assert_eq!(path, "/p0000000000/s-2147483647");
        let TxnResult::Created { path, .. } = create_seq(&mut tree, 3, "/p0000000000/s-") else {
            panic!()
        };
        assert_eq!(path, "/p0000000000/s--2147483648");
        let TxnResult::Created { path, .. } = create_seq(&mut tree, 4, "/p0000000000/s-") else {
            panic!()
        };
        assert_eq!(path, "/p0000000000/s--2147483647");
        tree.assert_invariants();
    }
}
