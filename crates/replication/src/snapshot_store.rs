//! Snapshot files: the state machine's serialized state, one file per snapshot, with a header
//! naming what it covers and a CRC32C over everything. Written tmp + fsync + rename + fsync
//! dir; the newest `retain` are kept, and the last index of the oldest kept one becomes the
//! log's deletion floor so that every kept snapshot can still be replayed forward.
//!
//! ```text
//! file (v2) = "CRLSNAP2" meta_len:u32le meta[meta_len] data[..] data_len:u64le crc32c:u32le
//! file (v1) = "CRLSNAP1" meta_len:u32le meta[meta_len] data_len:u64le data[data_len] crc32c:u32le
//! ```
//!
//! `meta` is the postcard encoding of openraft's `SnapshotMeta` (last log id, membership) and
//! the CRC covers every byte before it. v2 puts the data length after the data so the state
//! machine can stream its bytes straight into the file; v1 files (older builds) are still read.
//! Files are named `snapshot.<N>` with N, 20 digits, the number of log indexes the snapshot
//! covers (last included index + 1), so names sort by age.
//!
//! A snapshot is handled as a [`SnapshotFile`]: an open file plus where its data lies. The
//! leader streams a follower the whole file, chunk by chunk, straight from disk; the follower
//! writes the chunks to a temporary file, verifies it like any snapshot file and renames it into
//! place. The state machine's bytes are held in memory only while `restore` reads them.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::BufWriter;
use std::io::Read;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::os::unix::fs::FileExt;
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

const SNAPSHOT_MAGIC_V1: [u8; 8] = *b"CRLSNAP1";
const SNAPSHOT_MAGIC_V2: [u8; 8] = *b"CRLSNAP2";
const SNAPSHOT_PREFIX: &str = "snapshot.";
const CORRUPT_SUFFIX: &str = ".corrupt";
/// Suffix of a snapshot being received from the leader (a `.tmp` file: removed on open).
const RECEIVING_SUFFIX: &str = ".recv.tmp";
/// ZooKeeper's autopurge.snapRetainCount never goes below 3; neither do we.
pub const SNAP_RETAIN_COUNT_MIN: usize = 3;
/// Largest metadata block accepted when reading a file.
const META_BYTES_MAX: usize = 16 << 20;

/// Writes the state machine's bytes into a snapshot file. Produced by
/// [`crate::Applier::begin_snapshot`] on the apply task and run on a blocking thread.
pub type SnapshotWriter = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// A verified snapshot file: what the state machine's snapshot data is in this crate. Cheap to
/// clone (the file stays open, so it stays readable even after the store deletes it).
#[derive(Clone)]
pub struct SnapshotFile {
    /// Where the file was when it was opened.
    pub path: PathBuf,
    file: Arc<File>,
    /// Byte offset of the state machine's data.
    data_offset: u64,
    /// Length of the state machine's data.
    data_len: u64,
    /// Length of the whole file.
    file_len: u64,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SnapshotFile({}, {} data bytes)",
            self.path.display(),
            self.data_len
        )
    }
}

impl SnapshotFile {
    /// Bytes of state machine data.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Bytes of the whole file (what travels to a follower).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// A buffered reader of the state machine's data (for `restore_from`).
    pub fn data_reader(&self) -> impl Read + Send + 'static {
        std::io::BufReader::with_capacity(
            1 << 20,
            DataReader {
                file: Arc::clone(&self.file),
                at: self.data_offset,
                end: self.data_offset + self.data_len,
            },
        )
    }

    /// Read up to `buf.len()` bytes of the whole file at `offset` (for streaming it).
    pub fn read_file_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = buf.len().min(self.file_len.saturating_sub(offset) as usize);
        self.file.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }
}

/// Reads `at..end` of a shared file with positioned reads (other readers of the same file
/// do not move its offset).
struct DataReader {
    file: Arc<File>,
    at: u64,
    end: u64,
}

impl Read for DataReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.end.saturating_sub(self.at) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// The directory of snapshot files.
pub struct SnapshotStore {
    dir: PathBuf,
    retain: usize,
    deletion_floor: Arc<AtomicU64>,
    /// Serializes writers (a snapshot being built and one being installed).
    write_lock: Mutex<()>,
    /// Numbers temporary files of concurrent receptions.
    receive_seq: AtomicU64,
    /// The file [`SnapshotStore::load_newest`] last checked (path, length): at start it is
    /// loaded twice (the purge check, then openraft's), and a CRC pass over a big
    /// snapshot costs a tenth of a restart.
    checked: Mutex<Option<(PathBuf, u64)>>,
}

/// A snapshot read back from disk.
pub struct StoredSnapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The verified file.
    pub file: SnapshotFile,
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

/// Bytes written to a snapshot file before they are written out to the disk.
const SNAPSHOT_WRITE_OUT_EVERY_BYTES: u64 = 1 << 20;

/// A snapshot file written out to the disk every [`SNAPSHOT_WRITE_OUT_EVERY_BYTES`] while it
/// is written ([`durable::write_out`]). Without it the final fsync flushes the whole snapshot
/// (170 MB for 1M znodes) at once, and the log's group-commit `fdatasync` on the same disk
/// waits behind it: hundreds of milliseconds of write latency at every snapshot. (An
/// `fdatasync` every 8 MiB, before, still held the log back a few milliseconds each time.)
struct PacedSync {
    file: File,
    /// Bytes already written out.
    written_out: u64,
    /// Bytes written since.
    pending: u64,
}

impl PacedSync {
    fn new(file: File) -> Self {
        PacedSync {
            file,
            written_out: 0,
            pending: 0,
        }
    }
}

impl Write for PacedSync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pending += n as u64;
        if self.pending >= SNAPSHOT_WRITE_OUT_EVERY_BYTES {
            durable::write_out(&self.file, self.written_out, self.pending)?;
            self.written_out += self.pending;
            self.pending = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A writer that keeps a running CRC32C and byte count of what passes through it.
struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
    written: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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
            receive_seq: AtomicU64::new(0),
            checked: Mutex::new(None),
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

    /// Write a snapshot durably from bytes in memory, then delete all but the newest `retain`.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<PathBuf, SnapshotError> {
        self.save_with(meta, |w| w.write_all(data))
            .map(|f| f.path.clone())
    }

    /// Write a snapshot durably, its data produced by `write` straight into the file (no copy
    /// in memory), then delete all but the newest `retain` snapshots.
    pub fn save_with(
        &self,
        meta: &SnapshotMeta,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<SnapshotFile, SnapshotError> {
        let name = file_name(meta);
        let path = self.dir.join(&name);
        // Unique per call: two writers of the same snapshot must not share a temporary file.
        let seq = self.receive_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{name}.{seq}.build{}", durable::TMP_SUFFIX));
        let meta_bytes = postcard::to_allocvec(meta).map_err(|e| SnapshotError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode snapshot metadata: {e}"),
        })?;

        let write_file = || -> io::Result<u64> {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let mut w = CrcWriter {
                inner: BufWriter::with_capacity(1 << 20, PacedSync::new(file)),
                crc: 0,
                written: 0,
            };
            w.write_all(&SNAPSHOT_MAGIC_V2)?;
            w.write_all(&(meta_bytes.len() as u32).to_le_bytes())?;
            w.write_all(&meta_bytes)?;
            let data_start = w.written;
            write(&mut w)?;
            let data_len = w.written - data_start;
            w.write_all(&data_len.to_le_bytes())?;
            let crc = w.crc;
            let mut inner = w.inner;
            inner.write_all(&crc.to_le_bytes())?;
            let file = inner.into_inner().map_err(|e| e.into_error())?.file;
            file.sync_all()?;
            Ok(data_len)
        };
        let data_len = match write_file() {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(SnapshotError::io("write snapshot", &tmp, e));
            }
        };
        {
            let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            std::fs::rename(&tmp, &path)
                .map_err(|e| SnapshotError::io("rename snapshot into place", &path, e))?;
            durable::fsync_dir(&self.dir)
                .map_err(|e| SnapshotError::io("fsync snapshot directory", &self.dir, e))?;
        }
        tracing::info!(path = %path.display(), bytes = data_len, "wrote snapshot");
        self.retain_newest()?;
        // Its CRC was computed while writing it: reading 100+ MB back to check it again
        // would only read the page cache.
        let (_, file) = open_snapshot_checking(&path, false)?;
        Ok(file)
    }

    /// A new temporary file for a snapshot being received; removed on open if left over.
    pub fn receiving_path(&self) -> PathBuf {
        let seq = self.receive_seq.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{SNAPSHOT_PREFIX}incoming.{seq}{RECEIVING_SUFFIX}"))
    }

    /// Put a verified snapshot file in place as the snapshot covering `meta` (a received file
    /// is renamed, a file elsewhere is copied), fsync it, and return it from its new place.
    pub fn adopt(
        &self,
        meta: &SnapshotMeta,
        file: &SnapshotFile,
    ) -> Result<SnapshotFile, SnapshotError> {
        let name = file_name(meta);
        let path = self.dir.join(&name);
        if file.path == path {
            return Ok(file.clone());
        }
        if file.path.parent() == Some(self.dir.as_path())
            && file.path.to_string_lossy().ends_with(RECEIVING_SUFFIX)
        {
            file.file
                .sync_all()
                .map_err(|e| SnapshotError::io("fsync received snapshot", &file.path, e))?;
            {
                let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
                std::fs::rename(&file.path, &path)
                    .map_err(|e| SnapshotError::io("rename snapshot into place", &path, e))?;
                durable::fsync_dir(&self.dir)
                    .map_err(|e| SnapshotError::io("fsync snapshot directory", &self.dir, e))?;
            }
            self.retain_newest()?;
            let (_, f) = open_snapshot(&path)?;
            return Ok(f);
        }
        // Elsewhere (another store's file): copy its data through the normal writer.
        let src = file.clone();
        self.save_with(meta, move |w| {
            let mut buf = vec![0u8; 1 << 20];
            let mut off = src.data_offset;
            let end = src.data_offset + src.data_len;
            while off < end {
                let n = buf.len().min((end - off) as usize);
                src.file.read_exact_at(&mut buf[..n], off)?;
                w.write_all(&buf[..n])?;
                off += n as u64;
            }
            Ok(())
        })
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
            let len = std::fs::metadata(&path).map(|m| m.len()).ok();
            let checked = {
                let last = self.checked.lock().unwrap_or_else(|e| e.into_inner());
                matches!((&*last, len), (Some((p, l)), Some(len)) if *p == path && *l == len)
            };
            match open_snapshot_checking(&path, !checked) {
                Ok((meta, file)) => {
                    *self.checked.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((path.clone(), file.file_len));
                    return Ok(Some(StoredSnapshot { meta, file }));
                }
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
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
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

/// Open and verify a snapshot file: magic, CRC over the whole file, lengths, metadata.
pub fn open_snapshot(path: &Path) -> Result<(SnapshotMeta, SnapshotFile), SnapshotError> {
    open_snapshot_checking(path, true)
}

/// [`open_snapshot`], with the CRC pass over the whole file only if `check_crc` (not for a
/// file this process already checked: snapshot files never change once in place).
fn open_snapshot_checking(
    path: &Path,
    check_crc: bool,
) -> Result<(SnapshotMeta, SnapshotFile), SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = File::open(path).map_err(|e| SnapshotError::io("open snapshot", path, e))?;
    let file_len = f
        .metadata()
        .map_err(|e| SnapshotError::io("stat snapshot", path, e))?
        .len();
    if file_len < 8 + 4 + 8 + 4 {
        return Err(corrupt("file too short".into()));
    }
    // Stream the CRC over everything before the trailing 4 bytes.
    let body_len = file_len - 4;
    let mut head = vec![0u8; 12];
    f.read_exact_at(&mut head, 0)
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    if check_crc {
        check_file_crc(&mut f, path, body_len)?;
    }
    let v2 = head[..8] == SNAPSHOT_MAGIC_V2;
    if !v2 && head[..8] != SNAPSHOT_MAGIC_V1 {
        return Err(corrupt("bad magic".into()));
    }
    let meta_len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if meta_len > META_BYTES_MAX || 12 + meta_len as u64 + 8 > body_len {
        return Err(corrupt("metadata length runs past the end".into()));
    }
    let mut meta_bytes = vec![0u8; meta_len];
    f.read_exact_at(&mut meta_bytes, 12)
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    let meta: SnapshotMeta = postcard::from_bytes(&meta_bytes)
        .map_err(|e| corrupt(format!("cannot decode metadata: {e}")))?;
    let mut len_bytes = [0u8; 8];
    let (data_offset, len_at) = if v2 {
        (12 + meta_len as u64, body_len - 8)
    } else {
        (12 + meta_len as u64 + 8, 12 + meta_len as u64)
    };
    f.read_exact_at(&mut len_bytes, len_at)
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    let data_len = u64::from_le_bytes(len_bytes);
    let expected_end = if v2 {
        data_offset + data_len + 8
    } else {
        data_offset + data_len
    };
    if expected_end != body_len {
        return Err(corrupt(format!(
            "data length {data_len} does not match the file size"
        )));
    }
    f.seek(SeekFrom::Start(0))
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    Ok((
        meta,
        SnapshotFile {
            path: path.to_path_buf(),
            file: Arc::new(f),
            data_offset,
            data_len,
            file_len,
        },
    ))
}

/// Streams a CRC32C over the first `body_len` bytes and compares it with the 4 bytes after.
fn check_file_crc(f: &mut File, path: &Path, body_len: u64) -> Result<(), SnapshotError> {
    f.seek(SeekFrom::Start(0))
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    let mut crc = 0u32;
    let mut buf = vec![0u8; 1 << 20];
    let mut remaining = body_len;
    while remaining > 0 {
        let n = buf.len().min(remaining as usize);
        f.read_exact(&mut buf[..n])
            .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        remaining -= n as u64;
    }
    let mut crc_bytes = [0u8; 4];
    f.read_exact(&mut crc_bytes)
        .map_err(|e| SnapshotError::io("read snapshot", path, e))?;
    let stored_crc = u32::from_le_bytes(crc_bytes);
    if stored_crc != crc {
        return Err(SnapshotError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("crc32c mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"),
        });
    }
    Ok(())
}
