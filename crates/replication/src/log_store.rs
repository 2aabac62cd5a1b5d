//! The Raft log on disk: segmented files (`segment.rs`), one writer thread with group commit,
//! and the vote/commit/purge metadata file. This is openraft's `RaftLogStorage`; it sits
//! between the Raft core (which appends, truncates and purges) and the apply path and the
//! replication streams (which read through `LogReader`).
//!
//! Write path: `append` checks that indexes continue the log, puts the entries in the in-memory
//! tail cache (so they are readable at once, as openraft requires) and queues them to the
//! writer thread through a bounded channel. The writer drains every append waiting in the
//! queue, writes them, issues ONE `fdatasync` for the batch and only then calls each append's
//! `IOFlushed` callback. Openraft counts an entry towards commit only after that callback, so
//! nothing is applied, and nothing is acknowledged to a client, before it is on disk.
//!
//! Every write I/O (appends, truncation, purge, vote) goes through the same queue, so they
//! reach the disk in the order openraft issued them.
//!
//! Reads: entries in the cache are served from memory; older ones through an in-memory index
//! (index -> segment and byte offset) and a positional read that re-checks the record's CRC.

use std::collections::VecDeque;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::EntryPayload;
use openraft::OptionalSend;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::durable;
use crate::error::LogStoreError;
use crate::segment;
use crate::types::next_index;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Default size at which a segment is closed and a new one started.
pub const SEGMENT_MAX_BYTES_DEFAULT: u64 = 64 << 20;
/// Commands the writer thread can have queued before `append` waits (back-pressure).
const WRITER_QUEUE_COMMANDS_MAX: usize = 256;
/// At most this many bytes of appends go into one fdatasync batch.
const BATCH_BYTES_MAX: usize = 64 << 20;
/// The committed log id is persisted at most this often (it is an optimisation for restart,
/// never needed for safety: see `save_committed`).
const COMMITTED_PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// Name of the metadata file (vote, committed, purged).
const META_FILE_NAME: &str = "log.meta";
const META_MAGIC: [u8; 8] = *b"CRLMETA1";

/// How to open a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// Directory of the segments and the metadata file; created if missing.
    pub dir: PathBuf,
    /// Size at which a segment is closed and a new one started.
    pub segment_max_bytes: u64,
    /// Create every segment at its full size, filled with zeros and fsynced, before appending
    /// to it (the next one is prepared in the background while the current one fills), so that
    /// a group-commit `fdatasync` never has to write the inode for a grown file. ZooKeeper
    /// preallocates its log files the same way (`preAllocSize`, 64 MiB).
    pub preallocate: bool,
    /// Number of already-durable entries kept in memory for reads (entries not yet durable are
    /// always kept).
    pub cache_entries_max: usize,
    /// Bytes of already-durable entries kept in memory for reads.
    pub cache_bytes_max: usize,
    /// Segments are deleted only when all their entries are purged AND at or below this index:
    /// the replica sets it to the last index of the oldest snapshot it keeps, so that the log
    /// needed to recover from any kept snapshot stays on disk. `u64::MAX` means no limit.
    pub deletion_floor: Arc<AtomicU64>,
}

impl LogStoreOptions {
    /// Defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogStoreOptions {
            dir: dir.into(),
            segment_max_bytes: SEGMENT_MAX_BYTES_DEFAULT,
            preallocate: true,
            cache_entries_max: 8192,
            cache_bytes_max: 32 << 20,
            deletion_floor: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

/// Counters of the log store, for status commands.
#[derive(Debug, Default)]
pub struct LogStoreStats {
    /// Batches written, i.e. `fdatasync` calls made for appends.
    pub fsyncs: AtomicU64,
    /// Entries written.
    pub entries_written: AtomicU64,
    /// Bytes of records written.
    pub bytes_written: AtomicU64,
    /// Total time spent in append `fdatasync`, in microseconds.
    pub fsync_micros_total: AtomicU64,
    /// Longest append `fdatasync`, in microseconds.
    pub fsync_micros_max: AtomicU64,
}

/// What the metadata file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LogMeta {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// One segment as seen by readers: where each record starts.
struct SegmentIndex {
    first_index: u64,
    path: PathBuf,
    file: Arc<File>,
    offsets: Vec<u64>,
    /// Where the next record of this segment goes (header + records).
    end_offset: u64,
}

impl SegmentIndex {
    fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }
}

/// State shared by the store, its readers and the writer thread.
struct State {
    segments: Vec<SegmentIndex>,
    /// The newest entries, contiguous, ending at `last_log_id`; holds every entry not yet
    /// durable plus some durable ones for cheap reads.
    cache: VecDeque<Entry>,
    cache_bytes: usize,
    /// Entries below this index are durable in the current version of the log.
    durable_next: u64,
    last_purged: Option<LogId>,
    last_log_id: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    failed: Option<String>,
    cache_entries_max: usize,
    cache_bytes_max: usize,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    stats: Arc<LogStoreStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a way reads
        // would misinterpret worse than stopping: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum WriterCmd {
    Append {
        entries: Vec<Entry>,
        callback: IOFlushed<TypeConfig>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveCommitted {
        committed: Option<LogId>,
    },
    Truncate {
        from_index: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
    SetPurgeMark {
        to: Option<LogId>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// Joins the writer thread once every [`LogStore`] handle is gone.
#[derive(Clone)]
pub struct WriterJoin(Arc<Mutex<Option<std::thread::JoinHandle<()>>>>);

impl WriterJoin {
    /// Wait (blocking) for the writer thread to finish its queue and exit. Call after the Raft
    /// core, which owns the [`LogStore`], has stopped.
    pub fn join_blocking(&self) {
        let handle = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

/// The Raft log store; see the module documentation.
pub struct LogStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<WriterCmd>,
    join: WriterJoin,
}

/// A read handle on the log, used by replication streams and the apply path.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

fn entry_size_estimate(entry: &Entry) -> usize {
    64 + match &entry.payload {
        EntryPayload::Normal(p) => p.0.len(),
        EntryPayload::Membership(_) => 256,
        EntryPayload::Blank => 0,
    }
}

fn writer_gone() -> io::Error {
    io::Error::other("the log writer thread has stopped")
}

impl LogStore {
    /// Open (or create) the log in `opts.dir`: scan every segment, verify every record's CRC,
    /// truncate a torn tail of the last segment, and refuse to start on corruption elsewhere or
    /// on a gap in the indexes.
    pub fn open(opts: LogStoreOptions) -> Result<LogStore, LogStoreError> {
        let dir = opts.dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| LogStoreError::io("create log directory", &dir, e))?;
        durable::remove_tmp_files(&dir)
            .map_err(|e| LogStoreError::io("clean log directory", &dir, e))?;

        let meta = read_meta(&dir)?;
        let purged_next = next_index(meta.last_purged.as_ref());

        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(&dir).map_err(|e| LogStoreError::io("list log directory", &dir, e))?
        {
            let entry = entry.map_err(|e| LogStoreError::io("list log directory", &dir, e))?;
            if let Some(first) =
                segment::parse_segment_file_name(&entry.file_name().to_string_lossy())
            {
                files.push((first, entry.path()));
            }
        }
        files.sort();

        let mut segments: Vec<SegmentIndex> = Vec::new();
        let mut last_entry: Option<Entry> = None;
        let file_count = files.len();
        for (i, (first, path)) in files.into_iter().enumerate() {
            let is_last = i + 1 == file_count;
            let scanned = segment::scan_segment(&path, first)?;
            if let Some(d) = &scanned.damage {
                if !is_last {
                    return Err(LogStoreError::CorruptSegment {
                        path,
                        offset: d.offset,
                        index: d.index,
                        reason: d.reason.clone(),
                    });
                }
                if d.valid_record_follows {
                    return Err(LogStoreError::CorruptMidLog {
                        path,
                        offset: d.offset,
                        index: d.index,
                        reason: d.reason.clone(),
                    });
                }
                if d.offset == 0 {
                    tracing::warn!(path = %path.display(), reason = %d.reason,
                        "the last log segment has a torn header (crash while creating it); removing it");
                    std::fs::remove_file(&path)
                        .map_err(|e| LogStoreError::io("remove torn log segment", &path, e))?;
                    durable::fsync_dir(&dir)
                        .map_err(|e| LogStoreError::io("fsync log directory", &dir, e))?;
                    continue;
                }
                tracing::warn!(path = %path.display(), offset = d.offset, index = d.index, reason = %d.reason,
                    "torn write at the tail of the log (crash during an unacknowledged write); truncating it");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| LogStoreError::io("open log segment", &path, e))?;
                f.set_len(scanned.valid_len)
                    .map_err(|e| LogStoreError::io("truncate torn log segment", &path, e))?;
                f.sync_all()
                    .map_err(|e| LogStoreError::io("fsync log segment", &path, e))?;
            }

            if let Some(payload) = &scanned.last_payload {
                let entry: Entry =
                    postcard::from_bytes(payload).map_err(|e| LogStoreError::CorruptSegment {
                        path: path.clone(),
                        offset: scanned.offsets.last().copied().unwrap_or(0),
                        index: first + scanned.offsets.len() as u64 - 1,
                        reason: format!("record passes its CRC but is not a log entry: {e}"),
                    })?;
                last_entry = Some(entry);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| LogStoreError::io("open log segment", &path, e))?;
            if is_last && opts.preallocate {
                // Appends continue here: make sure they land in preallocated space (a segment
                // written without preallocation, or cut back to its last valid record above).
                let len = file
                    .metadata()
                    .map_err(|e| LogStoreError::io("stat log segment", &path, e))?
                    .len();
                let target = opts.segment_max_bytes.max(scanned.valid_len);
                if len < target {
                    segment::write_zeros(&file, len, target)
                        .map_err(|e| LogStoreError::io("preallocate log segment", &path, e))?;
                }
            }
            segments.push(SegmentIndex {
                first_index: first,
                path,
                file: Arc::new(file),
                offsets: scanned.offsets,
                end_offset: scanned.valid_len,
            });
        }

        // The live log is (last_purged, last_log_id]; every index in it must be on disk.
        let physical_next = segments.last().map(|s| s.next_index()).unwrap_or(0);
        let last_log_id = match &last_entry {
            Some(e) if e.index() >= purged_next => Some(e.log_id()),
            _ => meta.last_purged,
        };
        // Segments wholly below the live log may be separated by gaps (they are kept only so
        // that an older snapshot can be replayed); from the segment holding the first live
        // index on, indexes must be contiguous.
        if let Some(i) = segments.iter().position(|s| s.next_index() > purged_next) {
            if segments[i].first_index > purged_next {
                return Err(LogStoreError::Gap {
                    path: segments[i].path.clone(),
                    expected: purged_next,
                    found: segments[i].first_index,
                });
            }
            for pair in segments[i..].windows(2) {
                if pair[1].first_index != pair[0].next_index() {
                    return Err(LogStoreError::Gap {
                        path: pair[1].path.clone(),
                        expected: pair[0].next_index(),
                        found: pair[1].first_index,
                    });
                }
            }
        }
        if meta.committed.as_ref().map(|c| c.index) > last_log_id.as_ref().map(|l| l.index) {
            return Err(LogStoreError::CorruptMeta {
                path: dir.join(META_FILE_NAME),
                reason: format!(
                    "committed index {:?} is beyond the last entry on disk {:?}: committed entries are missing",
                    meta.committed.as_ref().map(|c| c.index),
                    last_log_id.as_ref().map(|l| l.index)
                ),
            });
        }

        tracing::info!(dir = %dir.display(), segments = segments.len(),
            last_purged = ?meta.last_purged.as_ref().map(|l| l.index),
            last_log = ?last_log_id.as_ref().map(|l| l.index),
            committed = ?meta.committed.as_ref().map(|l| l.index),
            "opened the replication log");

        let active = segments.last().map(|s| Active {
            first_index: s.first_index,
            file: s.file.clone(),
            write_pos: s.end_offset,
            next_index: s.next_index(),
        });
        let stats = Arc::new(LogStoreStats::default());
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            stats: stats.clone(),
            state: Mutex::new(State {
                segments,
                cache: VecDeque::new(),
                cache_bytes: 0,
                durable_next: physical_next,
                last_purged: meta.last_purged,
                last_log_id,
                vote: meta.vote,
                committed: meta.committed,
                failed: None,
                cache_entries_max: opts.cache_entries_max,
                cache_bytes_max: opts.cache_bytes_max,
            }),
        });

        let (tx, rx) = mpsc::channel(WRITER_QUEUE_COMMANDS_MAX);
        let mut writer = Writer {
            shared: shared.clone(),
            dir: dir.clone(),
            segment_max_bytes: opts
                .segment_max_bytes
                .max(segment::SEGMENT_HEADER_BYTES + 1),
            preallocate: opts.preallocate,
            prepared: None,
            deletion_floor: opts.deletion_floor,
            active,
            meta,
            committed_dirty: false,
            meta_written_at: Instant::now(),
            failed: None,
            buf: Vec::new(),
            stats,
        };
        // The next segment is ready before the first append needs it.
        writer.start_preparing();
        let handle = std::thread::Builder::new()
            .name("corral-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogStoreError::io("start the log writer thread for", &dir, e))?;
        Ok(LogStore {
            shared,
            tx,
            join: WriterJoin(Arc::new(Mutex::new(Some(handle)))),
        })
    }

    /// A handle to wait for the writer thread at shutdown.
    pub fn writer_join(&self) -> WriterJoin {
        self.join.clone()
    }

    /// The store's counters.
    pub fn stats(&self) -> Arc<LogStoreStats> {
        self.shared.stats.clone()
    }

    /// A reader sharing this store's state.
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// The last purged log id.
    pub fn last_purged(&self) -> Option<LogId> {
        self.shared.lock().last_purged
    }

    /// Move the purge mark back to `to` when the entries after it are still on disk. Used at
    /// start when the newest snapshot is unreadable and the replica falls back to an older one:
    /// the log must then be replayed from that older snapshot. Returns false when the needed
    /// entries are already deleted.
    pub async fn lower_purge_mark(&mut self, to: Option<LogId>) -> Result<bool, LogStoreError> {
        let from = next_index(to.as_ref());
        {
            let st = self.shared.lock();
            if to >= st.last_purged {
                return Ok(true);
            }
            let purged_next = next_index(st.last_purged.as_ref());
            // Every index in [from, purged_next) must be on disk, contiguous with the live log.
            let mut want = from;
            for s in st.segments.iter() {
                if s.first_index <= want && want < s.next_index() {
                    want = s.next_index();
                }
            }
            if want < purged_next {
                return Ok(false);
            }
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::SetPurgeMark { to, done })
            .await
            .map_err(|_| LogStoreError::Failed("the log writer thread has stopped".into()))?;
        rx.await
            .map_err(|_| LogStoreError::Failed("the log writer thread has stopped".into()))?
            .map_err(|e| {
                LogStoreError::io(
                    "write log metadata",
                    self.shared.dir.join(META_FILE_NAME),
                    e,
                )
            })?;
        let mut st = self.shared.lock();
        st.last_purged = to;
        Ok(true)
    }
}

impl LogReader {
    /// The id of the last entry appended (what this server's vote requests carry).
    pub fn last_log_id(&self) -> Option<LogId> {
        self.shared.lock().last_log_id
    }

    fn read_range(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        let st = self.shared.lock();
        if let Some(f) = &st.failed {
            return Err(io::Error::other(format!("log store failed: {f}")));
        }
        let lo = start.max(next_index(st.last_purged.as_ref()));
        let hi = end.min(next_index(st.last_log_id.as_ref()));
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((hi - lo).min(4096) as usize);
        let cache_first = st.cache.front().map(|e| e.index()).unwrap_or(u64::MAX);
        for index in lo..hi {
            if index >= cache_first {
                let e = &st.cache[(index - cache_first) as usize];
                debug_assert_eq!(e.index(), index);
                out.push(e.clone());
            } else {
                out.push(read_from_disk(&st, index)?);
            }
        }
        Ok(out)
    }
}

fn read_from_disk(st: &State, index: u64) -> io::Result<Entry> {
    let pos = st.segments.partition_point(|s| s.first_index <= index);
    let seg = pos
        .checked_sub(1)
        .map(|p| &st.segments[p])
        .filter(|s| index < s.next_index())
        .ok_or_else(|| {
            io::Error::other(format!("log entry {index} is missing from the segments"))
        })?;
    let offset = seg.offsets[(index - seg.first_index) as usize];
    let payload = segment::read_record(&seg.file, offset, index).map_err(|reason| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("log segment {}: {reason}", seg.path.display()),
        )
    })?;
    let entry: Entry = postcard::from_bytes(&payload).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "log segment {}: record {index} is not a log entry: {e}",
                seg.path.display()
            ),
        )
    })?;
    Ok(entry)
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        self.read_range(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.lock().vote)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        // Bound one read so that a lagging follower does not make us load the whole log.
        let end = end.min(start.saturating_add(4096));
        self.read_range(start, end)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        self.reader().read_range(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let st = self.shared.lock();
        Ok(LogState {
            last_purged_log_id: st.last_purged,
            last_log_id: st.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::SaveVote { vote: *vote, done })
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())??;
        self.shared.lock().vote = Some(*vote);
        Ok(())
    }

    /// Recorded in memory at once and persisted by the writer after the entries it covers are
    /// durable, at most every 100 ms and at shutdown. A crash may lose
    /// the latest value: the replica then re-applies less at start and catches up when the
    /// leader (itself, when standalone) commits again. It is never ahead of the durable log.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.shared.lock().committed = committed;
        self.tx
            .send(WriterCmd::SaveCommitted { committed })
            .await
            .map_err(|_| writer_gone())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        {
            let mut st = self.shared.lock();
            if let Some(f) = &st.failed {
                return Err(io::Error::other(format!("log store failed: {f}")));
            }
            let first_expected = next_index(st.last_log_id.as_ref());
            for (expected, e) in (first_expected..).zip(entries.iter()) {
                if e.index() != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "append of index {} would leave a hole or overwrite: the log's next index is {expected}",
                            e.index()
                        ),
                    ));
                }
            }
            for e in &entries {
                st.cache_bytes += entry_size_estimate(e);
                st.cache.push_back(e.clone());
            }
            st.last_log_id = entries.last().map(|e| e.log_id());
        }
        self.tx
            .send(WriterCmd::Append { entries, callback })
            .await
            .map_err(|_| writer_gone())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from_index = next_index(last_log_id.as_ref());
        {
            let mut st = self.shared.lock();
            if let Some(f) = &st.failed {
                return Err(io::Error::other(format!("log store failed: {f}")));
            }
            if from_index < next_index(st.last_purged.as_ref()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot truncate from index {from_index}: entries up to it are purged"),
                ));
            }
            if from_index >= next_index(st.last_log_id.as_ref()) {
                return Ok(());
            }
            while st.cache.back().is_some_and(|e| e.index() >= from_index) {
                if let Some(e) = st.cache.pop_back() {
                    st.cache_bytes = st.cache_bytes.saturating_sub(entry_size_estimate(&e));
                }
            }
            st.last_log_id = last_log_id.or(st.last_purged);
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Truncate { from_index, done })
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        {
            let mut st = self.shared.lock();
            if let Some(f) = &st.failed {
                return Err(io::Error::other(format!("log store failed: {f}")));
            }
            if st.last_purged.as_ref() >= Some(&upto) {
                return Ok(());
            }
            st.last_purged = Some(upto);
            if st.last_log_id.as_ref() < Some(&upto) {
                st.last_log_id = Some(upto);
            }
            while st.cache.front().is_some_and(|e| e.index() <= upto.index) {
                if let Some(e) = st.cache.pop_front() {
                    st.cache_bytes = st.cache_bytes.saturating_sub(entry_size_estimate(&e));
                }
            }
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(WriterCmd::Purge { upto, done })
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }
}

/// The segment the writer appends to (always the last one).
struct Active {
    first_index: u64,
    file: Arc<File>,
    write_pos: u64,
    next_index: u64,
}

/// Offsets of records written in the current batch, published to readers after the fsync.
struct Written {
    segment_first: u64,
    offsets: Vec<u64>,
    end_offset: u64,
}

/// A zero-filled, fsynced file of `segment_max_bytes` under a temporary name, ready to become
/// the next segment.
struct Prepared {
    path: PathBuf,
    file: File,
}

struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    segment_max_bytes: u64,
    preallocate: bool,
    /// The next segment being preallocated on a helper thread.
    prepared: Option<std::thread::JoinHandle<io::Result<Prepared>>>,
    deletion_floor: Arc<AtomicU64>,
    active: Option<Active>,
    meta: LogMeta,
    committed_dirty: bool,
    meta_written_at: Instant,
    failed: Option<String>,
    buf: Vec<u8>,
    stats: Arc<LogStoreStats>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<WriterCmd>) {
        let mut batch: Vec<(Vec<Entry>, IOFlushed<TypeConfig>)> = Vec::new();
        let mut pending: Option<WriterCmd> = None;
        loop {
            let cmd = match pending.take() {
                Some(c) => c,
                None => match rx.blocking_recv() {
                    Some(c) => c,
                    None => break,
                },
            };
            match cmd {
                WriterCmd::Append { entries, callback } => {
                    let mut bytes: usize = entries.iter().map(entry_size_estimate).sum();
                    batch.push((entries, callback));
                    // Group commit: take every append already waiting, up to a byte bound.
                    while bytes < BATCH_BYTES_MAX {
                        match rx.try_recv() {
                            Ok(WriterCmd::Append { entries, callback }) => {
                                bytes += entries.iter().map(entry_size_estimate).sum::<usize>();
                                batch.push((entries, callback));
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_batch(&mut batch);
                }
                WriterCmd::SaveVote { vote, done } => {
                    let res = self.checked(|w| {
                        w.meta.vote = Some(vote);
                        w.write_meta()
                    });
                    let _ = done.send(res);
                }
                WriterCmd::SaveCommitted { committed } => {
                    self.meta.committed = committed;
                    self.committed_dirty = true;
                }
                WriterCmd::Truncate { from_index, done } => {
                    let res = self.checked(|w| w.truncate(from_index));
                    let _ = done.send(res);
                }
                WriterCmd::Purge { upto, done } => {
                    let res = self.checked(|w| w.purge(upto));
                    let _ = done.send(res);
                }
                WriterCmd::SetPurgeMark { to, done } => {
                    let res = self.checked(|w| {
                        w.meta.last_purged = to;
                        w.write_meta()
                    });
                    let _ = done.send(res);
                }
            }
            if self.committed_dirty && self.meta_written_at.elapsed() >= COMMITTED_PERSIST_INTERVAL
            {
                let _ = self.checked(|w| w.write_meta());
            }
        }
        if self.committed_dirty {
            let _ = self.checked(|w| w.write_meta());
        }
        if let Some(Ok(prepared)) = self.prepared.take().and_then(|h| h.join().ok()) {
            // Unused: remove it now rather than at the next open.
            let _ = std::fs::remove_file(&prepared.path);
        }
        tracing::debug!(dir = %self.dir.display(), "log writer stopped");
    }

    /// Run `f` unless an earlier failure stopped the writer; remember a new failure.
    fn checked(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if let Some(msg) = &self.failed {
            return Err(io::Error::other(msg.clone()));
        }
        let res = f(self);
        if let Err(e) = &res {
            self.fail(e);
        }
        res
    }

    fn fail(&mut self, e: &io::Error) {
        let msg = format!("{e} (log directory {})", self.dir.display());
        tracing::error!(error = %msg, "log store write failed; refusing further writes");
        self.failed = Some(msg.clone());
        self.shared.lock().failed = Some(msg);
    }

    fn write_batch(&mut self, batch: &mut Vec<(Vec<Entry>, IOFlushed<TypeConfig>)>) {
        let res = self.checked(|w| w.write_entries(batch));
        for (_, callback) in batch.drain(..) {
            match &res {
                Ok(()) => callback.io_completed(Ok(())),
                Err(e) => callback.io_completed(Err(io::Error::new(e.kind(), e.to_string()))),
            }
        }
    }

    fn write_entries(&mut self, batch: &[(Vec<Entry>, IOFlushed<TypeConfig>)]) -> io::Result<()> {
        let mut written: Vec<Written> = Vec::new();
        let mut created: Vec<SegmentIndex> = Vec::new();
        let mut last_index = None;
        let mut entries_count = 0u64;
        let mut bytes_count = 0u64;
        self.buf.clear();
        let mut payload = Vec::new();
        for entry in batch.iter().flat_map(|(entries, _)| entries.iter()) {
            let index = entry.index();
            payload.clear();
            // `to_io` appends with `extend_from_slice`, not byte by byte.
            postcard::to_io(entry, &mut payload).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cannot encode log entry {index}: {e}"),
                )
            })?;
            if payload.len() > segment::RECORD_PAYLOAD_MAX_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "log entry {index} is {} bytes, over the record limit",
                        payload.len()
                    ),
                ));
            }
            let record_len = (segment::RECORD_HEADER_BYTES + payload.len()) as u64;
            let roll = match &self.active {
                None => true,
                Some(a) if a.next_index != index => {
                    if a.next_index > index {
                        return Err(io::Error::other(format!(
                            "writer asked to append index {index} but the segment continues at {}",
                            a.next_index
                        )));
                    }
                    // The log was purged past its end: continue in a new segment.
                    true
                }
                Some(a) => {
                    let used = a.write_pos + self.buf.len() as u64;
                    used > segment::SEGMENT_HEADER_BYTES
                        && used + record_len > self.segment_max_bytes
                }
            };
            if roll {
                self.flush_buf(true)?;
                let seg = self.create_segment(index)?;
                created.push(seg);
            }
            let Some(a) = self.active.as_mut() else {
                return Err(io::Error::other("no active log segment after creating one"));
            };
            let offset = a.write_pos + self.buf.len() as u64;
            match written.last_mut() {
                Some(w) if w.segment_first == a.first_index => w.offsets.push(offset),
                _ => written.push(Written {
                    segment_first: a.first_index,
                    offsets: vec![offset],
                    end_offset: 0,
                }),
            }
            segment::encode_record(index, &payload, &mut self.buf);
            a.next_index = index + 1;
            if let Some(w) = written.last_mut() {
                w.end_offset = offset + record_len;
            }
            last_index = Some(index);
            entries_count += 1;
            bytes_count += record_len;
        }
        let started = Instant::now();
        self.flush_buf(true)?;
        let fsync_micros = started.elapsed().as_micros() as u64;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .entries_written
            .fetch_add(entries_count, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(bytes_count, Ordering::Relaxed);
        self.stats
            .fsync_micros_total
            .fetch_add(fsync_micros, Ordering::Relaxed);
        self.stats
            .fsync_micros_max
            .fetch_max(fsync_micros, Ordering::Relaxed);

        // Publish: readers may now find these entries on disk and the cache may drop them.
        let mut st = self.shared.lock();
        st.segments.extend(created);
        for w in written {
            if let Some(seg) = st
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.first_index == w.segment_first)
            {
                seg.offsets.extend_from_slice(&w.offsets);
                seg.end_offset = w.end_offset;
            }
        }
        if let Some(last) = last_index {
            st.durable_next = last + 1;
        }
        evict_cache(&mut st);
        Ok(())
    }

    /// Write the buffered records to the active segment; `sync` makes them durable.
    fn flush_buf(&mut self, sync: bool) -> io::Result<()> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if !self.buf.is_empty() {
            a.file.write_all_at(&self.buf, a.write_pos)?;
            a.write_pos += self.buf.len() as u64;
            self.buf.clear();
            if sync {
                a.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Start preallocating the next segment on a helper thread, unless one is being prepared.
    fn start_preparing(&mut self) {
        if !self.preallocate || self.prepared.is_some() {
            return;
        }
        let path = self.dir.join(format!("next.log{}", durable::TMP_SUFFIX));
        let len = self.segment_max_bytes;
        let spawned = std::thread::Builder::new()
            .name("corral-log-prealloc".into())
            .spawn(move || prepare_segment(path, len));
        match spawned {
            Ok(handle) => self.prepared = Some(handle),
            Err(e) => tracing::warn!("cannot start a thread to preallocate log segments: {e}"),
        }
    }

    /// The prepared next segment, waiting for it if it is not ready yet (only when segments
    /// fill faster than zeros can be written); `None` if preparing it failed.
    fn take_prepared(&mut self) -> Option<Prepared> {
        let handle = self.prepared.take()?;
        match handle.join() {
            Ok(Ok(prepared)) => Some(prepared),
            Ok(Err(e)) => {
                tracing::warn!(dir = %self.dir.display(),
                    "cannot preallocate a log segment ({e}); this one grows as it is written");
                None
            }
            Err(_) => {
                tracing::warn!(dir = %self.dir.display(),
                    "the log preallocation thread panicked; this segment grows as it is written");
                None
            }
        }
    }

    fn create_segment(&mut self, first_index: u64) -> io::Result<SegmentIndex> {
        let path = self.dir.join(segment::segment_file_name(first_index));
        if self.preallocate && self.prepared.is_none() {
            // Not started, or used up by a roll that came first: prepare it here.
            self.start_preparing();
        }
        let file = match self.take_prepared() {
            Some(prepared) => {
                // Header first and durable, then the name: a segment file always has its header.
                prepared
                    .file
                    .write_all_at(&segment::segment_header(first_index), 0)
                    .map_err(|e| annotate(e, "write log segment header", &prepared.path))?;
                prepared
                    .file
                    .sync_data()
                    .map_err(|e| annotate(e, "fsync log segment", &prepared.path))?;
                std::fs::rename(&prepared.path, &path)
                    .map_err(|e| annotate(e, "rename preallocated log segment", &path))?;
                prepared.file
            }
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| annotate(e, "create log segment", &path))?;
                file.write_all_at(&segment::segment_header(first_index), 0)
                    .map_err(|e| annotate(e, "write log segment header", &path))?;
                file.sync_all()
                    .map_err(|e| annotate(e, "fsync log segment", &path))?;
                file
            }
        };
        durable::fsync_dir(&self.dir).map_err(|e| annotate(e, "fsync log directory", &self.dir))?;
        // The one after this is prepared while this one fills.
        self.start_preparing();
        let file = Arc::new(file);
        self.active = Some(Active {
            first_index,
            file: file.clone(),
            write_pos: segment::SEGMENT_HEADER_BYTES,
            next_index: first_index,
        });
        tracing::debug!(path = %path.display(), "started a new log segment");
        Ok(SegmentIndex {
            first_index,
            path,
            file,
            offsets: Vec::new(),
            end_offset: segment::SEGMENT_HEADER_BYTES,
        })
    }

    /// Remove every entry at or after `from_index`.
    fn truncate(&mut self, from_index: u64) -> io::Result<()> {
        let mut st_segments: Vec<(u64, PathBuf, Arc<File>, Option<u64>)> = {
            let st = self.shared.lock();
            st.segments
                .iter()
                .map(|s| {
                    let cut = if s.first_index < from_index && from_index < s.next_index() {
                        Some(s.offsets[(from_index - s.first_index) as usize])
                    } else {
                        None
                    };
                    (s.first_index, s.path.clone(), s.file.clone(), cut)
                })
                .collect()
        };
        let mut removed_any = false;
        while let Some((first, path, file, cut)) = st_segments.pop() {
            if first >= from_index {
                std::fs::remove_file(&path)
                    .map_err(|e| annotate(e, "remove log segment", &path))?;
                removed_any = true;
                continue;
            }
            if let Some(offset) = cut {
                // Cutting the file (not zeroing the records) is atomic: a crash cannot leave a
                // stale record behind the cut to be read back as part of the log.
                file.set_len(offset)
                    .map_err(|e| annotate(e, "truncate log segment", &path))?;
                if self.preallocate && offset < self.segment_max_bytes {
                    // Give the size back as a hole (no data written, no stall here): appends
                    // then allocate blocks but no longer grow the inode's size.
                    file.set_len(self.segment_max_bytes)
                        .map_err(|e| annotate(e, "extend log segment", &path))?;
                }
                file.sync_all()
                    .map_err(|e| annotate(e, "fsync log segment", &path))?;
            }
            break;
        }
        if removed_any {
            durable::fsync_dir(&self.dir)
                .map_err(|e| annotate(e, "fsync log directory", &self.dir))?;
        }

        let mut st = self.shared.lock();
        st.segments.retain(|s| s.first_index < from_index);
        if let Some(s) = st.segments.last_mut() {
            if s.next_index() > from_index {
                let keep = (from_index - s.first_index) as usize;
                s.end_offset = s.offsets[keep];
                s.offsets.truncate(keep);
            }
        }
        st.durable_next = st.durable_next.min(from_index);
        self.active = st.segments.last().map(|s| Active {
            first_index: s.first_index,
            file: s.file.clone(),
            write_pos: s.end_offset,
            next_index: s.next_index(),
        });
        tracing::info!(from_index, "truncated the log");
        Ok(())
    }

    /// Record the purge mark durably, then delete the segments that are wholly purged and
    /// below the deletion floor.
    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        self.meta.last_purged = Some(upto);
        self.write_meta()?;
        let bound = upto.index.min(self.deletion_floor.load(Ordering::Acquire));
        let doomed: Vec<(u64, PathBuf)> = {
            let st = self.shared.lock();
            let count = st.segments.len();
            st.segments
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    let wholly_below =
                        s.next_index() > s.first_index && s.next_index() - 1 <= bound;
                    // An empty last segment is where appends continue; keep it.
                    wholly_below
                        || (s.next_index() == s.first_index
                            && *i + 1 < count
                            && s.first_index <= bound)
                })
                .map(|(_, s)| (s.first_index, s.path.clone()))
                .collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for (_, path) in &doomed {
            std::fs::remove_file(path)
                .map_err(|e| annotate(e, "remove purged log segment", path))?;
            tracing::info!(path = %path.display(), "deleted a purged log segment");
        }
        durable::fsync_dir(&self.dir).map_err(|e| annotate(e, "fsync log directory", &self.dir))?;
        let mut st = self.shared.lock();
        st.segments
            .retain(|s| !doomed.iter().any(|(first, _)| *first == s.first_index));
        if let Some(a) = &self.active {
            if doomed.iter().any(|(first, _)| *first == a.first_index) {
                self.active = None;
            }
        }
        Ok(())
    }

    fn write_meta(&mut self) -> io::Result<()> {
        let payload = postcard::to_allocvec(&self.meta).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot encode log metadata: {e}"),
            )
        })?;
        let mut bytes = Vec::with_capacity(16 + payload.len());
        bytes.extend_from_slice(&META_MAGIC);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        durable::write_atomic(&self.dir, META_FILE_NAME, &bytes)
            .map_err(|(path, e)| annotate(e, "write", &path))?;
        self.committed_dirty = false;
        self.meta_written_at = Instant::now();
        Ok(())
    }
}

fn evict_cache(st: &mut State) {
    while st.cache.len() > st.cache_entries_max || st.cache_bytes > st.cache_bytes_max {
        match st.cache.front() {
            Some(e) if e.index() < st.durable_next => {
                let size = entry_size_estimate(e);
                st.cache.pop_front();
                st.cache_bytes = st.cache_bytes.saturating_sub(size);
            }
            _ => break,
        }
    }
}

/// Create `path` (a temporary name) as `len` bytes of zeros, durably. Runs on a helper thread.
fn prepare_segment(path: PathBuf, len: u64) -> io::Result<Prepared> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| annotate(e, "create preallocated log segment", &path))?;
    segment::write_zeros(&file, 0, len)
        .map_err(|e| annotate(e, "preallocate log segment", &path))?;
    Ok(Prepared { path, file })
}

fn annotate(e: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {action} {}: {e}", path.display()))
}

fn read_meta(dir: &Path) -> Result<LogMeta, LogStoreError> {
    let path = dir.join(META_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogMeta::default()),
        Err(e) => return Err(LogStoreError::io("read log metadata", &path, e)),
    };
    let corrupt = |reason: String| LogStoreError::CorruptMeta {
        path: path.clone(),
        reason,
    };
    if bytes.len() < 16 || bytes[..8] != META_MAGIC {
        return Err(corrupt("bad magic or short header".into()));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bytes.len() != 16 + len {
        return Err(corrupt(format!(
            "length {} does not match the header's {len}",
            bytes.len() - 16
        )));
    }
    let payload = &bytes[16..];
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt("crc32c mismatch".into()));
    }
    postcard::from_bytes(payload).map_err(|e| corrupt(format!("cannot decode: {e}")))
}
