//! Quotas (§12): which subtrees have a quota, their usage kept in
//! `/zookeeper/quota/<path>/zookeeper_stats`, and the hard-limit check a
//! create or setData makes when `enforce_quota` is on.
//!
//! Mirrors ZooKeeper's `DataTree` quota code, including its string-based
//! quirks (a quota root is registered by any `zookeeper_limits` child of a
//! path starting with `/zookeeper/quota`, and path components that are blank
//! are ignored as `PathTrie` does).

use std::collections::BTreeMap;
use std::fmt;

use corral_proto::ErrorCode;

use crate::path::canonical;
use crate::tree::DataTree;

pub(crate) const QUOTA_ROOT: &str = "/zookeeper/quota";
pub(crate) const LIMIT_NODE: &str = "zookeeper_limits";
pub(crate) const STAT_NODE: &str = "zookeeper_stats";

/// The text stored in limits and stats nodes (`StatsTrack`):
/// `count=<n>,bytes=<n>`, and when other keys are present
/// `count=<n>,bytes=<n>=;<key>=<n>…` with the keys sorted. -1 means unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    const COUNT: &'static str = "count";
    const BYTES: &'static str = "bytes";
    const COUNT_HARD_LIMIT: &'static str = "countHardLimit";
    const BYTE_HARD_LIMIT: &'static str = "byteHardLimit";

    /// Parses like ZooKeeper: split on runs of `,` or `;`, then each piece on
    /// `=`. Pieces ZooKeeper would throw on (no `=`, not a number) are
    /// skipped here instead.
    pub fn parse(text: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(text);
        let mut values = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|pair| !pair.is_empty()) {
            let mut kv = pair.split('=');
            let key = kv.next().unwrap_or_default();
            let Some(value) = kv.next() else {
                continue;
            };
            let value = if value.is_empty() {
                Ok(-1)
            } else {
                value.parse::<i64>()
            };
            if let Ok(value) = value {
                values.insert(key.to_owned(), value);
            }
        }
        StatsTrack { values }
    }

    fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn count(&self) -> i64 {
        self.get(Self::COUNT)
    }

    pub fn bytes(&self) -> i64 {
        self.get(Self::BYTES)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(Self::COUNT_HARD_LIMIT)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(Self::BYTE_HARD_LIMIT)
    }

    pub fn set_count(&mut self, count: i64) {
        self.values.insert(Self::COUNT.to_owned(), count);
    }

    pub fn set_bytes(&mut self, bytes: i64) {
        self.values.insert(Self::BYTES.to_owned(), bytes);
    }

    pub fn set_count_hard_limit(&mut self, count: i64) {
        self.values.insert(Self::COUNT_HARD_LIMIT.to_owned(), count);
    }

    pub fn set_byte_hard_limit(&mut self, bytes: i64) {
        self.values.insert(Self::BYTE_HARD_LIMIT.to_owned(), bytes);
    }
}

impl fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={},{}={}",
            Self::COUNT,
            self.count(),
            Self::BYTES,
            self.bytes()
        )?;
        let mut extra = self
            .values
            .iter()
            .filter(|(key, _)| *key != Self::COUNT && *key != Self::BYTES)
            .peekable();
        if extra.peek().is_some() {
            // The stray `=` makes pre-3.5 parsers ignore the new keys.
            f.write_str("=")?;
            for (key, value) in extra {
                write!(f, ";{key}={value}")?;
            }
        }
        Ok(())
    }
}

/// `PathTrie.split`: the components of a path, blank ones (Java `trim()`
/// empty) dropped.
fn trie_components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter(|component| !component.chars().all(|c| c <= ' '))
}

/// A quota path as the trie stores it: `/a/b`, or `None` when it has no
/// component (ZooKeeper either throws or marks the trie root, which never
/// matches).
fn normalized_quota_root(path: &str) -> Option<String> {
    let mut root = String::with_capacity(path.len() + 1);
    for component in trie_components(path) {
        root.push('/');
        root.push_str(component);
    }
    (!root.is_empty()).then_some(root)
}

pub(crate) fn stat_path(quota_root: &str) -> String {
    format!("{QUOTA_ROOT}{quota_root}/{STAT_NODE}")
}

pub(crate) fn limit_path(quota_root: &str) -> String {
    format!("{QUOTA_ROOT}{quota_root}/{LIMIT_NODE}")
}

impl DataTree {
    /// `getMaxPrefixWithQuota`: the deepest registered quota root that is a
    /// component-wise prefix of `path`.
    pub(crate) fn max_prefix_with_quota(&self, path: &str) -> Option<String> {
        if self.quota_roots.is_empty() {
            return None;
        }
        let mut candidate = String::with_capacity(path.len());
        let mut deepest = None;
        for component in trie_components(path) {
            candidate.push('/');
            candidate.push_str(component);
            if self.quota_roots.contains(candidate.as_str()) {
                deepest = Some(candidate.len());
            }
        }
        deepest.map(|len| candidate[..len].to_owned())
    }

    /// `checkQuota`: with enforcement on, a create (`count_diff` 1) or
    /// setData (`count_diff` 0) under a quota root fails when it would take
    /// the usage over a **hard** limit. Reads the applied tree, as ZooKeeper
    /// does (so a multi's earlier ops are not counted).
    pub(crate) fn check_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
    ) -> Result<(), ErrorCode> {
        if !self.config.enforce_quota {
            return Ok(());
        }
        let Some(root) = self.max_prefix_with_quota(path) else {
            return Ok(());
        };
        let Some(limits) = self.node(&limit_path(&root)) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(limits.data_bytes());
        let check_count =
            count_diff != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
        let check_bytes = bytes_diff != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(usage) = self.node(&stat_path(&root)) else {
            return Ok(());
        };
        let usage = StatsTrack::parse(usage.data_bytes());
        // Soft limits only log in ZooKeeper; only hard limits refuse.
        if check_count
            && limits.count_hard_limit() > -1
            && usage.count().saturating_add(count_diff) > limits.count_hard_limit()
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        if check_bytes
            && limits.byte_hard_limit() > -1
            && usage.bytes().saturating_add(bytes_diff) > limits.byte_hard_limit()
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        Ok(())
    }

    /// Quota bookkeeping after a node was created (`createNode`'s tail).
    pub(crate) fn quota_after_create(
        &mut self,
        path: &str,
        parent: &str,
        name: &str,
        data_len: usize,
    ) {
        if let Some(quota_path) = parent.strip_prefix(QUOTA_ROOT) {
            if name == LIMIT_NODE {
                if let Some(root) = normalized_quota_root(quota_path) {
                    self.quota_roots.insert(root.into());
                }
            }
            if name == STAT_NODE {
                self.recount_quota(quota_path);
            }
        }
        if let Some(root) = self.max_prefix_with_quota(path) {
            self.add_quota_usage(&root, len_i64(data_len), 1);
        }
    }

    /// Quota bookkeeping after a node was deleted (`deleteNode`'s tail).
    pub(crate) fn quota_after_delete(
        &mut self,
        path: &str,
        parent: &str,
        name: &str,
        data_len: usize,
    ) {
        if name == LIMIT_NODE && parent.starts_with("/zookeeper") {
            // ZooKeeper cuts `/zookeeper/quota`'s 16 UTF-16 units off whatever
            // parent starts with `/zookeeper`; shorter parents made it throw.
            if let Some((at, _)) = parent.char_indices().nth(QUOTA_ROOT.len()) {
                if let Some(root) = normalized_quota_root(&parent[at..]) {
                    self.quota_roots.remove(root.as_str());
                }
            }
        }
        if let Some(root) = self.max_prefix_with_quota(path) {
            self.add_quota_usage(&root, -len_i64(data_len), -1);
        }
    }

    /// Quota bookkeeping after setData changed a node's data length.
    pub(crate) fn quota_after_set_data(&mut self, path: &str, old_len: usize, new_len: usize) {
        if let Some(root) = self.max_prefix_with_quota(path) {
            self.add_quota_usage(&root, len_i64(new_len) - len_i64(old_len), 0);
        }
    }

    /// `updateQuotaStat`: adds to the usage in the root's stats node, if any.
    fn add_quota_usage(&mut self, root: &str, bytes_diff: i64, count_diff: i64) {
        let stat_path = stat_path(root);
        let Some(node) = self.node(&stat_path) else {
            return;
        };
        let mut usage = StatsTrack::parse(node.data_bytes());
        usage.set_count(usage.count().saturating_add(count_diff));
        usage.set_bytes(usage.bytes().saturating_add(bytes_diff));
        self.overwrite_data_quietly(&stat_path, usage.to_string().into_bytes());
    }

    /// `updateQuotaForPath`: the stats node of `quota_path` gets the node
    /// count and data bytes of the subtree at `quota_path` (looked up as is:
    /// `""` is the root).
    fn recount_quota(&mut self, quota_path: &str) {
        let (count, bytes) = self.subtree_usage(quota_path);
        let mut usage = StatsTrack::default();
        usage.set_count(count);
        usage.set_bytes(bytes);
        let stat_path = format!("{QUOTA_ROOT}{quota_path}/{STAT_NODE}");
        self.overwrite_data_quietly(&stat_path, usage.to_string().into_bytes());
    }

    /// Node count (the node itself included) and data bytes under `path`.
    fn subtree_usage(&self, path: &str) -> (i64, i64) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if self.node(path).is_none() {
            return (0, 0);
        }
        let mut pending = vec![canonical(path).to_owned()];
        while let Some(path) = pending.pop() {
            let Some(node) = self.node(&path) else {
                continue;
            };
            count += 1;
            bytes = bytes.saturating_add(len_i64(node.data_len()));
            pending.extend(
                node.children
                    .names()
                    .map(|child| crate::path::join(&path, child)),
            );
        }
        (count, bytes)
    }

    /// Replaces a node's data without touching version, mzxid or mtime (the
    /// way ZooKeeper rewrites stats nodes).
    fn overwrite_data_quietly(&mut self, path: &str, data: Vec<u8>) {
        let Some(node) = self.nodes.get_mut(canonical(path)) else {
            return;
        };
        let old_len = node.data_len();
        node.data = Some(data.into_boxed_slice());
        self.data_size = self.data_size - len_i64(old_len) + len_i64(node.data_len());
    }

    /// The registered quota roots, as the trie normalises them (`/a/b`).
    pub fn quota_roots(&self) -> impl Iterator<Item = &str> {
        self.quota_roots.iter().map(|root| &**root)
    }
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_text_has_count_then_bytes_then_sorted_extras() {
        let mut track = StatsTrack::default();
        track.set_count(4);
        track.set_count_hard_limit(4);
        track.set_bytes(9);
        track.set_byte_hard_limit(15);
        assert_eq!(
            track.to_string(),
            "count=4,bytes=9=;byteHardLimit=15;countHardLimit=4"
        );
        assert_eq!(StatsTrack::default().to_string(), "count=-1,bytes=-1");
    }

    #[test]
    fn quota_text_parses_runs_of_separators_and_the_stray_equals() {
        let track = StatsTrack::parse(b"count=4,bytes=9=;byteHardLimit=15;;countHardLimit=4");
        assert_eq!((track.count(), track.bytes()), (4, 9));
        assert_eq!((track.count_hard_limit(), track.byte_hard_limit()), (4, 15));
        let unset = StatsTrack::parse(b"count=,bytes=-1");
        assert_eq!((unset.count(), unset.bytes()), (-1, -1));
        let junk = StatsTrack::parse(b"garbage,count=x,bytes=3");
        assert_eq!((junk.count(), junk.bytes()), (-1, 3));
    }

    #[test]
    fn quota_roots_ignore_blank_components() {
        assert_eq!(normalized_quota_root("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalized_quota_root("X/foo").as_deref(), Some("/X/foo"));
        assert_eq!(normalized_quota_root("/a/ /b").as_deref(), Some("/a/b"));
        assert_eq!(normalized_quota_root(""), None);
        assert_eq!(normalized_quota_root("/ "), None);
    }
}
