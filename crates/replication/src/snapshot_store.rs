//! Snapshot files: the state machine's serialized state, one file per snapshot, with a header
//! naming what it covers and a CRC32C over everything. Written tmp + fsync + rename + fsync
//! dir; the newest `retain` are kept, and the last index of the oldest kept one becomes the
//! log's deletion floor so that every kept snapshot can still be replayed forward.
//!
//! ```text
//! file = "CRLSNAP1" meta_len:u32le meta[meta_len] data_len:u64le data[data_len] crc32c:u32le
//! ```
//!
//! `meta` is the postcard encoding of openraft's `SnapshotMeta` (last log id, membership) and
//! the CRC covers every byte before it. Files are named `snapshot.<N>` with N, 20 digits, the
//! number of log indexes the snapshot covers (last included index + 1), so names sort by age.

use std::fs::File;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use crate::durable;
use crate::error::SnapshotError;
use crate::types::next_index;
use crate::types::SnapshotMeta;

const SNAPSHOT_MAGIC: [u8; 8] = *b"CRLSNAP1";
const SNAPSHOT_PREFIX: &str = "snapshot.";
const CORRUPT_SUFFIX: &str = ".corrupt";
/// ZooKeeper's autopurge.snapRetainCount never goes below 3; neither do we.
pub const SNAP_RETAIN_COUNT_MIN: usize = 3;

/// The directory of snapshot files.
pub struct SnapshotStore {
    dir: PathBuf,
    retain: usize,
    deletion_floor: Arc<AtomicU64>,
    /// Serializes writers (a snapshot being built and one being installed).
    write_lock: Mutex<()>,
}

/// A snapshot read back from disk.
pub struct StoredSnapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The state machine's bytes.
    pub data: Vec<u8>,
    /// The file it came from.
    pub path: PathBuf,
}

fn file_name(meta: &SnapshotMeta) -> String {
    format!(
        "{SNAPSHOT_PREFIX}{:020}",
        next_index(meta.last_log_id.as_ref())
    )
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SNAPSHOT_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// Open (or create) the snapshot directory. `retain` is raised to
    /// [`SNAP_RETAIN_COUNT_MIN`]. `deletion_floor` is updated whenever the set of kept snapshots
    /// changes.
    pub fn open(
        dir: impl Into<PathBuf>,
        retain: usize,
        deletion_floor: Arc<AtomicU64>,
    ) -> Result<Self, SnapshotError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SnapshotError::io("create snapshot directory", &dir, e))?;
        durable::remove_tmp_files(&dir)
            .map_err(|e| SnapshotError::io("clean snapshot directory", &dir, e))?;
        if retain < SNAP_RETAIN_COUNT_MIN {
            tracing::warn!(
                retain,
                "snap_retain_count below {SNAP_RETAIN_COUNT_MIN}; using {SNAP_RETAIN_COUNT_MIN}"
            );
        }
        let store = SnapshotStore {
            dir,
            retain: retain.max(SNAP_RETAIN_COUNT_MIN),
            deletion_floor,
            write_lock: Mutex::new(()),
        };
        store.update_floor()?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Snapshot files, newest first: (covered index count, path).
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| SnapshotError::io("list snapshot directory", &self.dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| SnapshotError::io("list snapshot directory", &self.dir, e))?;
            if let Some(n) = parse_file_name(&entry.file_name().to_string_lossy()) {
                out.push((n, entry.path()));
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.0));
        Ok(out)
    }

    /// Write a snapshot durably, then delete all but the newest `retain` snapshots.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<PathBuf, SnapshotError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let name = file_name(meta);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{}", durable::TMP_SUFFIX));
        let meta_bytes = postcard::to_allocvec(meta).map_err(|e| SnapshotError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode snapshot metadata: {e}"),
        })?;

        let write = || -> std::io::Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let mut crc = 0u32;
            let mut put = |w: &mut BufWriter<File>, bytes: &[u8]| -> std::io::Result<()> {
                crc = crc32c::crc32c_append(crc, bytes);
                w.write_all(bytes)
            };
            put(&mut w, &SNAPSHOT_MAGIC)?;
            put(&mut w, &(meta_bytes.len() as u32).to_le_bytes())?;
            put(&mut w, &meta_bytes)?;
            put(&mut w, &(data.len() as u64).to_le_bytes())?;
            put(&mut w, data)?;
            w.write_all(&crc.to_le_bytes())?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        };
        write().map_err(|e| SnapshotError::io("write snapshot", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| SnapshotError::io("rename snapshot into place", &path, e))?;
        durable::fsync_dir(&self.dir)
            .map_err(|e| SnapshotError::io("fsync snapshot directory", &self.dir, e))?;
        tracing::info!(path = %path.display(), bytes = data.len(), "wrote snapshot");
        self.retain_newest()?;
        Ok(path)
    }

    /// Whether a snapshot covering exactly `meta`'s log id is on disk.
    pub fn contains(&self, meta: &SnapshotMeta) -> bool {
        self.dir.join(file_name(meta)).exists()
    }

    /// Delete snapshots that cover more than `meta` (used when installing an older snapshot
    /// received from the leader, so that the newest file is the state machine's state).
    pub fn remove_newer_than(&self, meta: &SnapshotMeta) -> Result<(), SnapshotError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = next_index(meta.last_log_id.as_ref());
        let mut removed = false;
        for (m, path) in self.list()? {
            if m > n {
                std::fs::remove_file(&path)
                    .map_err(|e| SnapshotError::io("remove snapshot", &path, e))?;
                removed = true;
            }
        }
        if removed {
            durable::fsync_dir(&self.dir)
                .map_err(|e| SnapshotError::io("fsync snapshot directory", &self.dir, e))?;
            self.update_floor()?;
        }
        Ok(())
    }

    /// Load the newest snapshot that passes its checks. A corrupt one is renamed to
    /// `*.corrupt` (kept for inspection), logged, and the next older one is tried.
    pub fn load_newest(&self) -> Result<Option<StoredSnapshot>, SnapshotError> {
        for (_, path) in self.list()? {
            match read_snapshot(&path) {
                Ok(s) => return Ok(Some(s)),
                Err(SnapshotError::Corrupt { path, reason }) => {
                    tracing::error!(path = %path.display(), %reason, "snapshot is corrupt; falling back to an older one");
                    let aside = PathBuf::from(format!("{}{CORRUPT_SUFFIX}", path.display()));
                    std::fs::rename(&path, &aside)
                        .map_err(|e| SnapshotError::io("set aside corrupt snapshot", &path, e))?;
                    self.update_floor()?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn retain_newest(&self) -> Result<(), SnapshotError> {
        let all = self.list()?;
        let mut removed = false;
        for (_, path) in all.iter().skip(self.retain) {
            std::fs::remove_file(path)
                .map_err(|e| SnapshotError::io("remove old snapshot", path, e))?;
            tracing::info!(path = %path.display(), "deleted an old snapshot");
            removed = true;
        }
        if removed {
            durable::fsync_dir(&self.dir)
                .map_err(|e| SnapshotError::io("fsync snapshot directory", &self.dir, e))?;
        }
        self.update_floor()
    }

    /// Log entries up to the oldest kept snapshot's last index may be deleted; with no
    /// snapshot, none may.
    fn update_floor(&self) -> Result<(), SnapshotError> {
        let oldest = self.list()?.last().map(|(n, _)| *n);
        let floor = match oldest {
            Some(n) if n > 0 => n - 1,
            _ => 0,
        };
        // Index 0 is the first entry, so "floor 0 with no snapshot" would allow deleting a
        // segment holding only index 0: harmless, as openraft purges only after a snapshot.
        self.deletion_floor.store(floor, Ordering::Release);
        Ok(())
    }
}

/// Read and verify one snapshot file.
pub fn read_snapshot(path: &Path) -> Result<StoredSnapshot, SnapshotError> {
    let bytes = std::fs::read(path).map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 8 + 4 + 8 + 4 || bytes[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad magic or file too short".into()));
    }
    let body_len = bytes.len() - 4;
    let stored_crc = u32::from_le_bytes([
        bytes[body_len],
        bytes[body_len + 1],
        bytes[body_len + 2],
        bytes[body_len + 3],
    ]);
    let actual_crc = crc32c::crc32c(&bytes[..body_len]);
    if stored_crc != actual_crc {
        return Err(corrupt(format!(
            "crc32c mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
        )));
    }
    let meta_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let meta_end = 12 + meta_len;
    if meta_end + 8 > body_len {
        return Err(corrupt("metadata length runs past the end".into()));
    }
    let meta: SnapshotMeta = postcard::from_bytes(&bytes[12..meta_end])
        .map_err(|e| corrupt(format!("cannot decode metadata: {e}")))?;
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[meta_end..meta_end + 8]);
    let data_len = u64::from_le_bytes(len_bytes) as usize;
    let data_start = meta_end + 8;
    if data_start + data_len != body_len {
        return Err(corrupt(format!(
            "data length {data_len} does not match the file size"
        )));
    }
    let data = bytes[data_start..body_len].to_vec();
    Ok(StoredSnapshot {
        meta,
        data,
        path: path.to_path_buf(),
    })
}
