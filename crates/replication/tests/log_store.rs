//! The log store on real files: what survives a reopen, how segments roll, truncate and purge,
//! and how damage on disk is told apart (a torn tail is repaired, anything else stops).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;
use corral_replication::log_store::LogStore;
use corral_replication::log_store::LogStoreOptions;
use corral_replication::types::Entry;
use corral_replication::types::LogId;
use corral_replication::types::Payload;
use corral_replication::types::TypeConfig;
use corral_replication::types::Vote;
use corral_replication::LogStoreError;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;
use openraft::EntryPayload;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new_term_index(term, index),
        payload: EntryPayload::Normal(Payload(Bytes::from(format!(
            "payload-{term}-{index}-{}",
            "x".repeat(20)
        )))),
    }
}

/// Segments written as before preallocation (each file ends at its last record): how the
/// tests below damage a file's tail depends on it, and logs written by earlier builds look
/// like this. The tests of preallocated segments use [`prealloc_opts`].
fn opts(dir: &Path) -> LogStoreOptions {
    let mut o = LogStoreOptions::new(dir);
    o.preallocate = false;
    // Small segments, so a few dozen entries span many files.
    o.segment_max_bytes = 300;
    // A tiny cache, so reads go to disk.
    o.cache_entries_max = 2;
    o
}

async fn append_durably(store: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await
        .expect("callback called")
        .expect("flushed without error");
}

async fn read_all(store: &mut LogStore) -> Vec<Entry> {
    store
        .get_log_reader()
        .await
        .try_get_log_entries(0..u64::MAX)
        .await
        .expect("read")
}

fn close(store: LogStore) {
    let join = store.writer_join();
    drop(store);
    join.join_blocking();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test]
async fn appended_entries_are_readable_across_segments_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    for chunk in (0..60u64).collect::<Vec<_>>().chunks(7) {
        append_durably(&mut store, chunk.iter().map(|i| entry(1, *i)).collect()).await;
    }
    let all = read_all(&mut store).await;
    assert_eq!(indexes(&all), (0..60).collect::<Vec<_>>());
    assert!(
        segment_files(dir.path()).len() > 5,
        "small segments should roll"
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(LogId::new_term_index(1, 59))
    );
    close(store);

    let mut store = LogStore::open(opts(dir.path())).unwrap();
    let again = read_all(&mut store).await;
    assert_eq!(again.len(), 60);
    for (a, b) in all.iter().zip(again.iter()) {
        assert_eq!(a.log_id, b.log_id);
        assert_eq!(a.payload, b.payload);
    }
    // Appends continue where the log ends.
    append_durably(&mut store, vec![entry(1, 60)]).await;
    assert_eq!(read_all(&mut store).await.len(), 61);
    close(store);
}

#[tokio::test]
async fn an_append_that_would_leave_a_hole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, vec![entry(1, 0), entry(1, 1)]).await;
    let (tx, _rx) = TypeConfig::oneshot();
    let err = store
        .append(vec![entry(1, 3)], IOFlushed::signal(tx))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hole"), "{err}");
    close(store);
}

#[tokio::test]
async fn truncation_across_segment_boundaries_removes_the_suffix_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..40).map(|i| entry(1, i)).collect()).await;
    let files_before = segment_files(dir.path()).len();

    store
        .truncate_after(Some(LogId::new_term_index(1, 12)))
        .await
        .unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..=12).collect::<Vec<_>>()
    );
    assert!(
        segment_files(dir.path()).len() < files_before,
        "whole segments after the cut are deleted"
    );

    // A new leader's entries replace the old suffix.
    append_durably(&mut store, (13..20).map(|i| entry(2, i)).collect()).await;
    close(store);

    let mut store = LogStore::open(opts(dir.path())).unwrap();
    let all = read_all(&mut store).await;
    assert_eq!(indexes(&all), (0..20).collect::<Vec<_>>());
    assert!(all[..13].iter().all(|e| e.log_id.leader_id.term == 1));
    assert!(all[13..].iter().all(|e| e.log_id.leader_id.term == 2));

    // Truncating everything leaves an empty log that starts again at 0.
    store.truncate_after(None).await.unwrap();
    assert!(read_all(&mut store).await.is_empty());
    append_durably(&mut store, vec![entry(3, 0)]).await;
    close(store);
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    assert_eq!(indexes(&read_all(&mut store).await), vec![0]);
    close(store);
}

#[tokio::test]
async fn purge_deletes_whole_old_segments_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..50).map(|i| entry(1, i)).collect()).await;
    let first_files = segment_files(dir.path());

    store.purge(LogId::new_term_index(1, 25)).await.unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (26..50).collect::<Vec<_>>()
    );
    let after = segment_files(dir.path());
    assert!(after.len() < first_files.len());
    // The segment holding 26 is kept even though it starts before it.
    let first_kept: u64 = after[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .parse()
        .unwrap();
    assert!(first_kept <= 26);
    close(store);

    let mut store = LogStore::open(opts(dir.path())).unwrap();
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(LogId::new_term_index(1, 25)));
    assert_eq!(st.last_log_id, Some(LogId::new_term_index(1, 49)));
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (26..50).collect::<Vec<_>>()
    );

    // Purging past the end (after installing a snapshot) empties the log; it continues after.
    store.purge(LogId::new_term_index(2, 100)).await.unwrap();
    assert!(read_all(&mut store).await.is_empty());
    append_durably(&mut store, vec![entry(2, 101), entry(2, 102)]).await;
    close(store);
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    assert_eq!(indexes(&read_all(&mut store).await), vec![101, 102]);
    close(store);
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..20).map(|i| entry(1, i)).collect()).await;
    close(store);

    // Crash in the middle of writing the last record, then garbage where the rest would be.
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new().append(true).open(&last).unwrap();
    f.write_all(&[0x5A; 37]).unwrap();
    drop(f);

    let mut store = LogStore::open(opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..19).collect::<Vec<_>>()
    );
    append_durably(&mut store, vec![entry(1, 19), entry(1, 20)]).await;
    close(store);
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..21).collect::<Vec<_>>()
    );
    close(store);
}

#[tokio::test]
async fn a_bad_crc_followed_by_valid_records_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..40).map(|i| entry(1, i)).collect()).await;
    close(store);

    // Flip a payload byte of the first record of the LAST segment, which has more after it.
    let mut files = segment_files(dir.path());
    let last = files.pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    assert!(
        bytes.len() > 16 + 2 * 40,
        "the last segment should hold several records"
    );
    bytes[16 + 16 + 3] ^= 0x01;
    fs::write(&last, &bytes).unwrap();

    match LogStore::open(opts(dir.path())) {
        Err(e @ LogStoreError::CorruptMidLog { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&last.display().to_string()),
                "message names the file: {msg}"
            );
        }
        Err(e) => panic!("expected CorruptMidLog, got {e}"),
        Ok(_) => panic!("expected CorruptMidLog, the store opened"),
    }
}

#[tokio::test]
async fn damage_in_a_segment_that_is_not_the_last_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..40).map(|i| entry(1, i)).collect()).await;
    close(store);

    let files = segment_files(dir.path());
    let second = &files[1];
    let len = fs::metadata(second).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(second)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    match LogStore::open(opts(dir.path())) {
        Err(LogStoreError::CorruptSegment { path, .. }) => assert_eq!(&path, second),
        Err(e) => panic!("expected CorruptSegment, got {e}"),
        Ok(_) => panic!("expected CorruptSegment, the store opened"),
    }
}

#[tokio::test]
async fn a_missing_segment_is_a_gap_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..40).map(|i| entry(1, i)).collect()).await;
    close(store);
    let files = segment_files(dir.path());
    fs::remove_file(&files[2]).unwrap();
    match LogStore::open(opts(dir.path())) {
        Err(LogStoreError::Gap { path, .. }) => assert_eq!(path, files[3]),
        Err(e) => panic!("expected Gap, got {e}"),
        Ok(_) => panic!("expected Gap, the store opened"),
    }
}

#[tokio::test]
async fn vote_and_committed_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(opts(dir.path())).unwrap();
    append_durably(&mut store, (0..5).map(|i| entry(3, i)).collect()).await;
    let vote = Vote::new_committed(3, 7);
    store.save_vote(&vote).await.unwrap();
    store
        .save_committed(Some(LogId::new_term_index(3, 4)))
        .await
        .unwrap();
    close(store);

    let mut store = LogStore::open(opts(dir.path())).unwrap();
    assert_eq!(
        store.get_log_reader().await.read_vote().await.unwrap(),
        Some(vote)
    );
    assert_eq!(
        store.read_committed().await.unwrap(),
        Some(LogId::new_term_index(3, 4))
    );
    close(store);
}

#[tokio::test]
async fn many_concurrent_appends_share_few_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.segment_max_bytes = 1 << 20;
    let mut store = LogStore::open(o).unwrap();
    let stats = store.stats();
    // Queue 500 single-entry appends without waiting for their flushes, then wait for all.
    let mut waits = Vec::new();
    for i in 0..500 {
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(vec![entry(1, i)], IOFlushed::signal(tx))
            .await
            .unwrap();
        waits.push(rx);
    }
    for rx in waits {
        rx.await.unwrap().unwrap();
    }
    let fsyncs = stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        fsyncs < 500,
        "group commit should batch appends: {fsyncs} fsyncs for 500 appends"
    );
    assert_eq!(read_all(&mut store).await.len(), 500);
    close(store);
}

// ---- preallocated segments ----------------------------------------------------------------

const PREALLOC_SEGMENT_BYTES: u64 = 4096;

/// The default (preallocated) layout, with segments small enough to hold a few dozen entries.
fn prealloc_opts(dir: &Path) -> LogStoreOptions {
    let mut o = LogStoreOptions::new(dir);
    assert!(o.preallocate, "segments are preallocated by default");
    o.segment_max_bytes = PREALLOC_SEGMENT_BYTES;
    o.cache_entries_max = 2;
    o
}

/// Where the records of a preallocated segment end: after the last non-zero byte.
fn written_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn segments_are_preallocated_and_the_log_ends_at_its_last_record_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    for chunk in (0..250u64).collect::<Vec<_>>().chunks(9) {
        append_durably(&mut store, chunk.iter().map(|i| entry(1, *i)).collect()).await;
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 2, "segments should roll: {files:?}");
    for file in &files {
        assert_eq!(
            fs::metadata(file).unwrap().len(),
            PREALLOC_SEGMENT_BYTES,
            "{} is created at its full size",
            file.display()
        );
    }
    close(store);

    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..250).collect::<Vec<_>>()
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(LogId::new_term_index(1, 249)),
        "the zero-filled tail is not read as records"
    );
    append_durably(&mut store, (250..280).map(|i| entry(1, i)).collect()).await;
    close(store);
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..280).collect::<Vec<_>>()
    );
    close(store);
    assert!(
        fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "an unused preallocated file is removed when the store closes"
    );
}

#[tokio::test]
async fn a_log_written_without_preallocation_is_read_and_continued_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.segment_max_bytes = PREALLOC_SEGMENT_BYTES;
    let mut store = LogStore::open(o).unwrap();
    append_durably(&mut store, (0..10).map(|i| entry(1, i)).collect()).await;
    close(store);
    let last = segment_files(dir.path()).pop().unwrap();
    assert!(fs::metadata(&last).unwrap().len() < PREALLOC_SEGMENT_BYTES);

    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        PREALLOC_SEGMENT_BYTES,
        "the segment appends continue in is padded at open"
    );
    append_durably(&mut store, (10..20).map(|i| entry(1, i)).collect()).await;
    close(store);
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..20).collect::<Vec<_>>()
    );
    close(store);
}

#[tokio::test]
async fn a_torn_write_into_preallocated_space_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    append_durably(&mut store, (0..20).map(|i| entry(1, i)).collect()).await;
    close(store);

    // The last record's final bytes never reached the disk (still zeros), and a later,
    // unacknowledged write left garbage further on in the preallocated space.
    let last = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let end = written_len(&bytes);
    bytes[end - 10..end].fill(0);
    bytes[end + 100..end + 137].fill(0x5A);
    fs::write(&last, &bytes).unwrap();

    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..19).collect::<Vec<_>>()
    );
    append_durably(&mut store, vec![entry(1, 19), entry(1, 20)]).await;
    close(store);
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..21).collect::<Vec<_>>()
    );
    close(store);
}

#[tokio::test]
async fn a_crash_mid_segment_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    for chunk in (0..45u64).collect::<Vec<_>>().chunks(4) {
        append_durably(&mut store, chunk.iter().map(|i| entry(1, *i)).collect()).await;
    }
    // The process dies here: its files are what the copy holds (the writer is still running,
    // the active segment is half full and the next one may be half preallocated).
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    close(store);

    let mut store = LogStore::open(prealloc_opts(crashed.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..45).collect::<Vec<_>>()
    );
    append_durably(&mut store, (45..60).map(|i| entry(1, i)).collect()).await;
    close(store);
    let mut store = LogStore::open(prealloc_opts(crashed.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..60).collect::<Vec<_>>()
    );
    close(store);
}

#[tokio::test]
async fn zeros_followed_by_valid_records_are_damage_not_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    append_durably(&mut store, (0..10).map(|i| entry(1, i)).collect()).await;
    close(store);

    // Zero a whole record in the middle: what follows is still valid, so this is not the
    // unused tail, and the open must not quietly drop the records after it.
    let last = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let record = (written_len(&bytes) - 16) / 10;
    bytes[16 + 3 * record..16 + 4 * record].fill(0);
    fs::write(&last, &bytes).unwrap();
    match LogStore::open(prealloc_opts(dir.path())) {
        Err(LogStoreError::CorruptMidLog { index, .. }) => assert_eq!(index, 3),
        Err(e) => panic!("expected CorruptMidLog, got {e}"),
        Ok(_) => panic!("expected CorruptMidLog, the store opened"),
    }
}

#[tokio::test]
async fn a_truncated_suffix_of_a_preallocated_segment_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    append_durably(&mut store, (0..30).map(|i| entry(1, i)).collect()).await;
    store
        .truncate_after(Some(LogId::new_term_index(1, 24)))
        .await
        .unwrap();
    // The new leader's entries are shorter than the ones they replace.
    append_durably(
        &mut store,
        vec![Entry {
            log_id: LogId::new_term_index(2, 25),
            payload: EntryPayload::Blank,
        }],
    )
    .await;
    close(store);

    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    let all = read_all(&mut store).await;
    assert_eq!(indexes(&all), (0..26).collect::<Vec<_>>());
    assert_eq!(all[25].log_id.leader_id.term, 2);
    append_durably(&mut store, (26..28).map(|i| entry(2, i)).collect()).await;
    close(store);
    let mut store = LogStore::open(prealloc_opts(dir.path())).unwrap();
    assert_eq!(
        indexes(&read_all(&mut store).await),
        (0..28).collect::<Vec<_>>()
    );
    close(store);
}
