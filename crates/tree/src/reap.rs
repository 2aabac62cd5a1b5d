//! Which containers and TTL nodes the reaper may delete now (§13,
//! `ContainerManager.getCandidates`). The server's timer asks, then proposes
//! one `TxnOp::DeleteContainer` per path; `apply` re-checks each, since a
//! child may have appeared in between.

use crate::node::NodeKind;
use crate::tree::DataTree;

impl DataTree {
    /// Empty containers that had a child once (internal create counter > 0),
    /// or never had one and are older than `max_never_used_interval_ms`
    /// (0 = never reap those); then, with extended types enabled, empty TTL
    /// nodes whose `now − mtime` exceeds their ttl. Containers first, each
    /// group sorted by path.
    pub fn reapable_nodes(&self, now_ms: i64, max_never_used_interval_ms: i64) -> Vec<String> {
        let mut reapable = Vec::new();
        for path in &self.containers {
            let Some(node) = self.node(path) else {
                continue;
            };
            if !node.children.is_empty() {
                continue;
            }
            let used = node.cversion() > 0;
            let expired = max_never_used_interval_ms != 0
                && now_ms.saturating_sub(node.mtime) > max_never_used_interval_ms;
            if used || expired {
                reapable.push(path.to_string());
            }
        }
        for path in &self.ttls {
            let Some(node) = self.node(path) else {
                continue;
            };
            if !node.children.is_empty() {
                continue;
            }
            if let NodeKind::Ttl(ttl_ms) = node.kind(self.config.extended_types_enabled) {
                if ttl_ms != 0 && now_ms.saturating_sub(node.mtime) > ttl_ms {
                    reapable.push(path.to_string());
                }
            }
        }
        reapable
    }
}
