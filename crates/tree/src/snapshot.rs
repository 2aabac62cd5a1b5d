//! Snapshot encoding of a whole `DataTree`: written and read as a stream of
//! records, one node at a time, so neither side holds a second copy of the
//! tree. The replication layer stores the bytes in a file with its own
//! checksum; this module knows nothing of files.
//!
//! Layout: 8 magic bytes, then records, each a little-endian `u32` length
//! and a postcard-encoded [`Record`]: a header with the counts, the
//! sessions, the quota roots, the distinct ACL lists (sorted), every node
//! in pre-order with children sorted (so a parent always precedes its
//! children), and an end marker. Equal trees give equal bytes.
//!
//! Indexes (ephemerals by session, containers, TTL nodes), ACL reference
//! counts and the data size are rebuilt on load, as ZooKeeper does.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::sync::Arc;

use corral_proto::Acl;
use serde::{Deserialize, Serialize};

use crate::children;
use crate::node::Node;
use crate::path::validate_path;
use crate::store::CapturedNodes;
use crate::tree::{DataTree, TreeConfig};

const MAGIC: &[u8; 8] = b"CRLTREE\n";
/// 2: node data may be null (`NodeRecord::data` is an `Option`).
const FORMAT: u32 = 2;
/// No record is near this; a larger length means a corrupt stream.
const RECORD_BYTES_MAX: u32 = 1 << 30;

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the tree snapshot: {0}")]
    Io(#[from] io::Error),
    #[error("not a Corral tree snapshot (bad magic bytes)")]
    BadMagic,
    #[error("tree snapshot format {0} is not supported (this build reads format {FORMAT})")]
    UnsupportedFormat(u32),
    #[error("tree snapshot record {index} does not decode: {source}")]
    Decode { index: u64, source: postcard::Error },
    #[error("tree snapshot is corrupt at record {index}: {what}")]
    Corrupt { index: u64, what: String },
}

#[derive(Debug, Serialize, Deserialize)]
enum Record<'a> {
    Header {
        format: u32,
        last_zxid: i64,
        sessions: u64,
        quota_roots: u64,
        acls: u64,
        nodes: u64,
    },
    Session {
        id: i64,
        timeout_ms: i32,
    },
    QuotaRoot {
        path: &'a str,
    },
    Acl {
        entries: Cow<'a, [Acl]>,
    },
    Node(#[serde(borrow)] NodeRecord<'a>),
    End,
    /// The server that holds a session's connection (for SessionMoved);
    /// written after the nodes, before `End`. Appended last so that the
    /// other variants keep their tags and older snapshots still read.
    SessionOwner {
        id: i64,
        owner: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeRecord<'a> {
    /// Borrowed from the read buffer when loading (`&str` and `&[u8]` are
    /// encoded exactly as the `String`/`Vec<u8>` of earlier builds: a length
    /// then the bytes), so a million nodes load without two temporary
    /// allocations each.
    path: &'a str,
    /// `None` for null data. Written as bytes (the same postcard bytes as a
    /// sequence of `u8`, without a serde call per byte).
    #[serde(borrow, with = "serde_bytes")]
    data: Option<&'a [u8]>,
    /// Index into the ACL records.
    acl: u32,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    ephemeral_owner: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
}

struct RecordWriter<'w, W: Write + ?Sized> {
    out: &'w mut W,
    buf: Vec<u8>,
}

impl<W: Write + ?Sized> RecordWriter<'_, W> {
    fn write(&mut self, record: &Record<'_>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        // `to_io` appends with `extend_from_slice`; `to_extend` pushed a
        // node's data byte by byte.
        postcard::to_io(record, &mut buf).map_err(io::Error::other)?;
        let len = u32::try_from(buf.len() - 4)
            .ok()
            .filter(|len| *len <= RECORD_BYTES_MAX)
            .ok_or_else(|| io::Error::other("a snapshot record exceeds 1 GiB"))?;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&buf)?;
        self.buf = buf;
        Ok(())
    }
}

struct RecordReader<'r, R: Read> {
    input: &'r mut R,
    buf: Vec<u8>,
    index: u64,
}

impl<R: Read> RecordReader<'_, R> {
    /// The next record, borrowing its names and data from the read buffer.
    fn next(&mut self) -> Result<Record<'_>, SnapshotError> {
        let mut len = [0; 4];
        self.input.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len > RECORD_BYTES_MAX {
            return Err(corrupt(
                self.index,
                format!("record length {len} is implausible"),
            ));
        }
        self.buf.clear();
        // `take` grows the buffer as bytes arrive: a corrupt length cannot
        // make us allocate a gigabyte up front.
        (&mut *self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.buf)?;
        if self.buf.len() != len as usize {
            return Err(SnapshotError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        let index = self.index;
        self.index += 1;
        postcard::from_bytes::<Record<'_>>(&self.buf)
            .map_err(|source| SnapshotError::Decode { index, source })
    }
}

fn corrupt(index: u64, what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt {
        index,
        what: what.into(),
    }
}

/// An exact picture of a tree's whole state at one moment, taken in
/// microseconds by [`DataTree::capture`] (the nodes are shared, not copied)
/// and serialized later, on any thread, while the tree goes on changing.
/// The server captures under its lock and writes the snapshot file without
/// it.
#[derive(Debug, Clone)]
pub struct TreeCapture {
    nodes: CapturedNodes,
    acl_lists: Vec<Arc<Vec<Acl>>>,
    sessions: BTreeMap<i64, i32>,
    session_owners: BTreeMap<i64, u64>,
    quota_roots: BTreeSet<Box<str>>,
    last_zxid: i64,
}

impl DataTree {
    /// Captures the whole state for [`TreeCapture::write`]. Costs one
    /// pointer copy per 256 nodes plus a copy of the session table, quota
    /// roots and distinct ACL lists; the writes that follow copy each node
    /// (and each chunk of 256 node pointers) they change once, while the
    /// capture is alive.
    pub fn capture(&self) -> TreeCapture {
        TreeCapture {
            nodes: self.nodes.capture(),
            acl_lists: self.acls.lists().cloned().collect(),
            sessions: self.sessions.clone(),
            session_owners: self.session_owners.clone(),
            quota_roots: self.quota_roots.clone(),
            last_zxid: self.last_zxid,
        }
    }

    /// Writes the whole state (see [`TreeCapture::write`]).
    pub fn write_snapshot(&self, out: &mut impl Write) -> io::Result<()> {
        self.capture().write(out)
    }
}

impl TreeCapture {
    /// The zxid of the last transaction the capture includes.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Writes the captured state (nodes with their stats and internal
    /// counters, ACLs, sessions, quota roots, last zxid) to `out`, node by
    /// node. Give it a buffered writer. Equal trees give equal bytes.
    pub fn write(&self, out: &mut (impl Write + ?Sized)) -> io::Result<()> {
        out.write_all(MAGIC)?;
        let mut writer = RecordWriter {
            out,
            buf: Vec::new(),
        };
        let mut acl_lists: Vec<&Arc<Vec<Acl>>> = self.acl_lists.iter().collect();
        acl_lists.sort();
        // Interned lists are shared Arcs: index them by address, not by
        // hashing their content once per node.
        let acl_index: HashMap<*const Vec<Acl>, u32> = acl_lists
            .iter()
            .zip(0u32..)
            .map(|(list, index)| (Arc::as_ptr(list), index))
            .collect();
        writer.write(&Record::Header {
            format: FORMAT,
            last_zxid: self.last_zxid,
            sessions: self.sessions.len() as u64,
            quota_roots: self.quota_roots.len() as u64,
            acls: acl_lists.len() as u64,
            nodes: self.nodes.len() as u64,
        })?;
        for (&id, &timeout_ms) in &self.sessions {
            writer.write(&Record::Session { id, timeout_ms })?;
        }
        for root in &self.quota_roots {
            writer.write(&Record::QuotaRoot { path: root })?;
        }
        for list in &acl_lists {
            writer.write(&Record::Acl {
                entries: Cow::Borrowed(list.as_slice()),
            })?;
        }
        // Pre-order, children by name, following the children's slots (no
        // path lookups), with one child iterator per level open (not a list
        // of every sibling still to write: a directory of a million children
        // is not copied). One path buffer: every node written between a
        // node and its next sibling is a descendant of their parent, so
        // the buffer still starts with the parent's path when the sibling
        // is reached, and is cut back to it (`prefix_len`).
        let root = self
            .nodes
            .root()
            .ok_or_else(|| io::Error::other("the tree has no root"))?;
        let mut path = String::from("/");
        let mut levels: Vec<(usize, children::Iter<'_>)> = Vec::new();
        let mut next = Some(root);
        let mut written = 0usize;
        // Nearly every node shares one ACL list: ask the index only when the
        // list changes from the previous node's.
        let mut last_acl: Option<(*const Vec<Acl>, u32)> = None;
        while let Some(slot) = next.take() {
            let node = self
                .nodes
                .get(slot)
                .ok_or_else(|| io::Error::other(format!("{path} is listed but missing")))?;
            let acl_ptr = Arc::as_ptr(&node.acl);
            let acl = match last_acl {
                Some((ptr, index)) if ptr == acl_ptr => index,
                _ => {
                    let index = *acl_index.get(&acl_ptr).ok_or_else(|| {
                        io::Error::other(format!("the ACL of {path} is not interned"))
                    })?;
                    last_acl = Some((acl_ptr, index));
                    index
                }
            };
            writer.write(&Record::Node(NodeRecord {
                path: &path,
                data: node.data(),
                acl,
                czxid: node.czxid,
                mzxid: node.mzxid,
                pzxid: node.pzxid(),
                ctime: node.ctime,
                mtime: node.mtime,
                ephemeral_owner: node.ephemeral_owner,
                version: node.version,
                cversion: node.cversion(),
                aversion: node.aversion,
            }))?;
            written += 1;
            if !node.children.is_empty() {
                // The root's children are `/name`, not `//name`.
                let prefix_len = if slot == root { 0 } else { path.len() };
                levels.push((prefix_len, node.children.iter()));
            }
            // The next node: the next child of the deepest level with one left.
            while let Some((prefix_len, children)) = levels.last_mut() {
                match children.next() {
                    Some((name, child)) => {
                        path.truncate(*prefix_len);
                        path.push('/');
                        path.push_str(name);
                        next = Some(child);
                        break;
                    }
                    None => {
                        levels.pop();
                    }
                }
            }
        }
        if written != self.nodes.len() {
            return Err(io::Error::other(format!(
                "{} nodes are listed but {written} are reachable from the root",
                self.nodes.len()
            )));
        }
        for (&id, &owner) in &self.session_owners {
            writer.write(&Record::SessionOwner { id, owner })?;
        }
        writer.write(&Record::End)?;
        Ok(())
    }
}

impl DataTree {
    /// Loads a tree written by [`DataTree::write_snapshot`]. `config` must be
    /// the server's current settings (it decides how node owners read).
    pub fn read_snapshot(
        input: &mut impl Read,
        config: TreeConfig,
    ) -> Result<DataTree, SnapshotError> {
        let mut magic = [0; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let mut reader = RecordReader {
            input,
            buf: Vec::new(),
            index: 0,
        };
        // Each record borrows the reader's buffer until the next one is read,
        // so errors name the record by the index noted before reading it.
        let at = reader.index;
        let Record::Header {
            format,
            last_zxid,
            sessions,
            quota_roots,
            acls,
            nodes,
        } = reader.next()?
        else {
            return Err(corrupt(at, "the first record is not a header"));
        };
        if format != FORMAT {
            return Err(SnapshotError::UnsupportedFormat(format));
        }
        let mut tree = DataTree::empty(config);
        tree.last_zxid = last_zxid;
        for _ in 0..sessions {
            let at = reader.index;
            let Record::Session { id, timeout_ms } = reader.next()? else {
                return Err(corrupt(at, "expected a session"));
            };
            tree.sessions.insert(id, timeout_ms);
        }
        for _ in 0..quota_roots {
            let at = reader.index;
            let Record::QuotaRoot { path } = reader.next()? else {
                return Err(corrupt(at, "expected a quota root"));
            };
            tree.quota_roots.insert(path.into());
        }
        let mut acl_lists = Vec::new();
        for _ in 0..acls {
            let at = reader.index;
            let Record::Acl { entries } = reader.next()? else {
                return Err(corrupt(at, "expected an ACL list"));
            };
            acl_lists.push(Arc::new(entries.into_owned()));
        }
        // Size the node map once from the header instead of growing it
        // (a quarter of restart time went to rehashing); bounded so that a
        // corrupt count cannot ask for absurd memory up front.
        tree.nodes
            .reserve(usize::try_from(nodes).unwrap_or(0).min(1 << 26));
        // (parent path, its slot) of the last node loaded under a parent.
        let mut last_parent: Option<(String, u32)> = None;
        // Nodes using each ACL list, counted into the table after the loop.
        let mut acl_uses = vec![0u64; acl_lists.len()];
        for index in 0..nodes {
            let at = reader.index;
            let Record::Node(record) = reader.next()? else {
                return Err(corrupt(at, "expected a node"));
            };
            let is_root = record.path == "/";
            if (index == 0) != is_root || (!is_root && !validate_path(record.path)) {
                return Err(corrupt(
                    at,
                    format!("unexpected node path {:?}", record.path),
                ));
            }
            if let Some(uses) = acl_uses.get_mut(record.acl as usize) {
                *uses += 1;
            }
            let acl = acl_lists.get(record.acl as usize).ok_or_else(|| {
                corrupt(
                    at,
                    format!("{} names unknown ACL {}", record.path, record.acl),
                )
            })?;
            let mut node = Node {
                data: record.data.map(Box::from),
                acl: Arc::clone(acl),
                children: Default::default(),
                czxid: record.czxid,
                mzxid: record.mzxid,
                ctime: record.ctime,
                mtime: record.mtime,
                ephemeral_owner: record.ephemeral_owner,
                version: record.version,
                aversion: record.aversion,
            };
            node.set_pzxid(record.pzxid);
            node.set_cversion(record.cversion);
            // Snapshots list a parent's children one after another: look
            // the parent up once per run of siblings, not once per node.
            let parent_path = crate::path::split_parent(record.path).map(|(parent, _)| parent);
            let parent = match (&last_parent, parent_path) {
                (Some((last, slot)), Some(parent)) if last == parent => Some(Some(*slot)),
                _ => tree.nodes.parent_slot_for(record.path),
            };
            let inserted =
                parent.is_some_and(|parent| tree.insert_loaded_under(parent, record.path, node));
            if let (true, Some(parent_path), Some(Some(slot))) = (inserted, parent_path, parent) {
                if last_parent
                    .as_ref()
                    .is_none_or(|(last, _)| last != parent_path)
                {
                    last_parent = Some((parent_path.to_owned(), slot));
                }
            }
            if !inserted {
                return Err(corrupt(
                    at,
                    format!("{} has no parent or appears twice", record.path),
                ));
            }
        }
        for (acl, uses) in acl_lists.iter().zip(acl_uses) {
            if uses > 0 {
                tree.acls.acquire_many(acl, uses);
            }
        }
        loop {
            let at = reader.index;
            match reader.next()? {
                Record::End => break,
                Record::SessionOwner { id, owner } => {
                    tree.session_owners.insert(id, owner);
                }
                _ => return Err(corrupt(at, "expected the end marker")),
            }
        }
        Ok(tree)
    }
}
