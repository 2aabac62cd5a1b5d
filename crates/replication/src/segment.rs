//! One log segment file and its on-disk format; the only place that knows how records are laid
//! out. The log store (`log_store.rs`) decides when segments are created, rolled, truncated and
//! deleted.
//!
//! ```text
//! segment = header record*
//! header  = "CRLLOG01" first_index:u64le                      (16 bytes)
//! record  = len:u32le crc32c:u32le index:u64le payload[len]   (16 + len bytes)
//! ```
//!
//! `crc32c` covers `index` and `payload`; `len` is bounded by [`RECORD_PAYLOAD_MAX_BYTES`] and a
//! wrong `len` makes the CRC fail. The payload is the postcard encoding of the openraft entry.
//! Files are named `<first_index, 20 digits>.log`, so a directory listing sorts them.
//!
//! A segment is preallocated: created at its full size filled with zeros (ZooKeeper
//! preallocates its log files too), so that appending overwrites blocks that already exist and
//! a group-commit `fdatasync` writes data only, not the inode's size and block map. A scan
//! therefore ends at the first position where every remaining byte is zero: that is the unused
//! tail, not damage. Anything else after the last valid record is damage, as before.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::durable;
use crate::error::LogStoreError;

/// Magic bytes at the start of every segment (the trailing digits are the format version).
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"CRLLOG01";
/// Size of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 16;
/// Size of a record header (`len`, `crc32c`, `index`).
pub(crate) const RECORD_HEADER_BYTES: usize = 16;
/// Upper bound of one record's payload; larger lengths are treated as corruption.
pub(crate) const RECORD_PAYLOAD_MAX_BYTES: usize = 256 << 20;
/// Extension of segment files.
const SEGMENT_SUFFIX: &str = ".log";

/// File name of the segment whose first record has `first_index`.
pub(crate) fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}{SEGMENT_SUFFIX}")
}

/// The first index encoded in a segment file name, or `None` for other files.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The 16-byte header of a segment starting at `first_index`.
pub(crate) fn segment_header(first_index: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first_index.to_le_bytes());
    h
}

/// CRC32C of a record: covers the index and the payload.
pub(crate) fn record_crc(index: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_le_bytes()), payload)
}

/// Append the record `(index, payload)` to `out`.
pub(crate) fn encode_record(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= RECORD_PAYLOAD_MAX_BYTES);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(index, payload).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Outcome of checking the bytes at one position as a record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordCheck {
    /// A valid record with this index and payload length.
    Valid { index: u64, payload_len: usize },
    /// The bytes end before the record does.
    Truncated,
    /// The bytes are not a valid record.
    Bad(String),
}

/// Check `buf` (starting at a record boundary) as the record of `expected_index`.
pub(crate) fn check_record(buf: &[u8], expected_index: Option<u64>) -> RecordCheck {
    if buf.len() < RECORD_HEADER_BYTES {
        return RecordCheck::Truncated;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut index_bytes = [0u8; 8];
    index_bytes.copy_from_slice(&buf[8..16]);
    let index = u64::from_le_bytes(index_bytes);
    if len > RECORD_PAYLOAD_MAX_BYTES {
        return RecordCheck::Bad(format!(
            "record length {len} exceeds the maximum {RECORD_PAYLOAD_MAX_BYTES}"
        ));
    }
    if buf.len() < RECORD_HEADER_BYTES + len {
        return RecordCheck::Truncated;
    }
    let payload = &buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
    let actual = record_crc(index, payload);
    if actual != crc {
        return RecordCheck::Bad(format!(
            "crc32c mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    if let Some(expected) = expected_index {
        if index != expected {
            return RecordCheck::Bad(format!("record holds index {index}"));
        }
    }
    RecordCheck::Valid {
        index,
        payload_len: len,
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug)]
pub(crate) struct Damage {
    /// Byte offset of the first bad byte (a record boundary, or 0 for a bad header).
    pub(crate) offset: u64,
    /// The index the bad record should have had.
    pub(crate) index: u64,
    /// What check failed.
    pub(crate) reason: String,
    /// Whether a valid record with a later-or-equal index appears after the damage: then the
    /// damage is not a torn tail.
    pub(crate) valid_record_follows: bool,
}

/// What a segment file holds, as found by [`scan_segment`].
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    /// Byte offset of each valid record, in index order.
    pub(crate) offsets: Vec<u64>,
    /// Bytes of the header and all valid records: where the next record goes.
    pub(crate) valid_len: u64,
    /// Payload of the last valid record, to recover the last log id.
    pub(crate) last_payload: Option<Vec<u8>>,
    /// Set when the file does not end right after the last valid record.
    pub(crate) damage: Option<Damage>,
}

/// Bytes of zeros written per call while preallocating.
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

/// Fill `file` with zeros from `from` up to `to` (exclusive) and make it durable, so that later
/// writes in that range change no metadata. The caller names the file in errors.
///
/// Each chunk is written out to the disk before the next is written ([`durable::write_out`]),
/// rather than all of them by the `sync_all` at the end: a whole segment of zeros queued at
/// once held the log's group commits back by 20–40 ms each time a segment was prepared.
pub(crate) fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZEROS_CHUNK_BYTES];
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(ZEROS_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..n], pos)?;
        durable::write_out(file, pos, n as u64)?;
        pos += n as u64;
    }
    file.sync_all()
}

/// Whether `bytes` are all zero: the preallocated, never written tail of a segment.
fn is_unused_tail(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// Read and verify a whole segment.
pub(crate) fn scan_segment(path: &Path, first_index: u64) -> Result<ScannedSegment, LogStoreError> {
    let bytes = std::fs::read(path).map_err(|e| LogStoreError::io("read log segment", path, e))?;
    Ok(scan_bytes(&bytes, first_index))
}

fn scan_bytes(bytes: &[u8], first_index: u64) -> ScannedSegment {
    let mut scanned = ScannedSegment {
        offsets: Vec::new(),
        valid_len: 0,
        last_payload: None,
        damage: None,
    };

    let header_len = SEGMENT_HEADER_BYTES as usize;
    let header_problem = if bytes.len() < header_len {
        Some(format!(
            "file is {} bytes, shorter than the segment header",
            bytes.len()
        ))
    } else if bytes[..8] != SEGMENT_MAGIC {
        Some("bad magic in segment header".to_string())
    } else if bytes[8..16] != first_index.to_le_bytes() {
        Some("segment header names another first index than the file name".to_string())
    } else {
        None
    };
    if let Some(reason) = header_problem {
        scanned.damage = Some(Damage {
            offset: 0,
            index: first_index,
            valid_record_follows: valid_record_after(bytes, 0, first_index),
            reason,
        });
        return scanned;
    }

    let mut pos = header_len;
    let mut expected = first_index;
    while pos < bytes.len() {
        if bytes[pos] == 0 && is_unused_tail(&bytes[pos..]) {
            // The preallocated tail: the log ends here. (No record starts with a zero byte
            // followed only by zeros: its CRC would not match.)
            break;
        }
        match check_record(&bytes[pos..], Some(expected)) {
            RecordCheck::Valid { payload_len, .. } => {
                scanned.offsets.push(pos as u64);
                let start = pos + RECORD_HEADER_BYTES;
                let end = start + payload_len;
                scanned.last_payload = Some(bytes[start..end].to_vec());
                pos = end;
                expected += 1;
            }
            RecordCheck::Truncated => {
                scanned.damage = Some(Damage {
                    offset: pos as u64,
                    index: expected,
                    reason: format!(
                        "record is cut short ({} bytes left in the file)",
                        bytes.len() - pos
                    ),
                    valid_record_follows: false,
                });
                break;
            }
            RecordCheck::Bad(reason) => {
                scanned.damage = Some(Damage {
                    offset: pos as u64,
                    index: expected,
                    reason,
                    valid_record_follows: valid_record_after(bytes, pos + 1, expected),
                });
                break;
            }
        }
    }
    // Either the end of the file or where the damage starts: everything before is valid.
    scanned.valid_len = pos as u64;
    scanned
}

/// Whether a record that passes its CRC, with an index at or after `expected`, starts anywhere
/// at or after `from`. Garbage passes a CRC32C by chance with probability 2^-32 per position,
/// and the index filter makes it rarer still.
fn valid_record_after(bytes: &[u8], from: usize, expected: u64) -> bool {
    let max_plausible = expected + (bytes.len() / RECORD_HEADER_BYTES) as u64;
    let mut pos = from;
    while pos + RECORD_HEADER_BYTES <= bytes.len() {
        let mut index_bytes = [0u8; 8];
        index_bytes.copy_from_slice(&bytes[pos + 8..pos + 16]);
        let index = u64::from_le_bytes(index_bytes);
        if (expected..=max_plausible).contains(&index) {
            if let RecordCheck::Valid { .. } = check_record(&bytes[pos..], None) {
                return true;
            }
        }
        pos += 1;
    }
    false
}

/// Read and verify the record of `index` stored at `offset` in `file`; returns its payload.
pub(crate) fn read_record(file: &File, offset: u64, index: u64) -> Result<Vec<u8>, String> {
    let mut header = [0u8; RECORD_HEADER_BYTES];
    file.read_exact_at(&mut header, offset)
        .map_err(|e| format!("cannot read record header at byte {offset}: {e}"))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > RECORD_PAYLOAD_MAX_BYTES {
        return Err(format!(
            "record at byte {offset} has length {len}, over the maximum"
        ));
    }
    let mut record = vec![0u8; RECORD_HEADER_BYTES + len];
    record[..RECORD_HEADER_BYTES].copy_from_slice(&header);
    file.read_exact_at(
        &mut record[RECORD_HEADER_BYTES..],
        offset + RECORD_HEADER_BYTES as u64,
    )
    .map_err(|e| format!("cannot read record payload at byte {offset}: {e}"))?;
    match check_record(&record, Some(index)) {
        RecordCheck::Valid { .. } => {
            record.drain(..RECORD_HEADER_BYTES);
            Ok(record)
        }
        RecordCheck::Truncated => Err(format!("record at byte {offset} is cut short")),
        RecordCheck::Bad(reason) => Err(format!("record at byte {offset}: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = segment_header(first).to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(first + i as u64, p, &mut out);
        }
        out
    }

    #[test]
    fn file_names_sort_by_first_index_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("log.meta"), None);
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn a_clean_segment_scans_every_record() {
        let bytes = segment(7, &[b"a", b"bb", b""]);
        let s = scan_bytes(&bytes, 7);
        assert!(s.damage.is_none());
        assert_eq!(s.offsets, vec![16, 16 + 17, 16 + 17 + 18]);
        assert_eq!(s.valid_len, bytes.len() as u64);
        assert_eq!(s.last_payload.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn a_record_cut_short_is_a_torn_tail() {
        let mut bytes = segment(1, &[b"hello", b"world"]);
        bytes.truncate(bytes.len() - 2);
        let s = scan_bytes(&bytes, 1);
        let d = s.damage.expect("damage");
        assert_eq!(d.index, 2);
        assert!(!d.valid_record_follows);
        assert_eq!(s.offsets.len(), 1);
        assert_eq!(s.valid_len, d.offset);
    }

    #[test]
    fn a_flipped_bit_followed_by_valid_records_is_mid_log_corruption() {
        let mut bytes = segment(1, &[b"hello", b"world", b"again"]);
        let second = 16 + 16 + 5;
        bytes[second + 16] ^= 0x40;
        let s = scan_bytes(&bytes, 1);
        let d = s.damage.expect("damage");
        assert_eq!(d.index, 2);
        assert!(d.valid_record_follows);
        assert!(d.reason.contains("crc32c"), "{}", d.reason);
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let mut bytes = segment(1, &[b"hello"]);
        bytes.extend_from_slice(&[0xAB; 100]);
        let s = scan_bytes(&bytes, 1);
        let d = s.damage.expect("damage");
        assert!(!d.valid_record_follows);
        assert_eq!(s.offsets.len(), 1);
    }

    #[test]
    fn a_zero_filled_tail_is_the_end_of_the_log_not_damage() {
        let mut bytes = segment(3, &[b"hello", b"world"]);
        let end = bytes.len() as u64;
        bytes.resize(4096, 0);
        let s = scan_bytes(&bytes, 3);
        assert!(s.damage.is_none(), "{:?}", s.damage);
        assert_eq!(s.offsets.len(), 2);
        assert_eq!(s.valid_len, end);
        let empty = scan_bytes(
            &{
                let mut b = segment(3, &[]);
                b.resize(4096, 0);
                b
            },
            3,
        );
        assert!(empty.damage.is_none());
        assert_eq!(empty.valid_len, SEGMENT_HEADER_BYTES);
    }

    #[test]
    fn an_all_zero_record_header_is_not_a_record() {
        assert!(matches!(check_record(&[0; 16], None), RecordCheck::Bad(_)));
        assert!(matches!(
            check_record(&[0; 16], Some(0)),
            RecordCheck::Bad(_)
        ));
    }

    #[test]
    fn a_zero_byte_then_garbage_is_damage() {
        let mut bytes = segment(1, &[b"hello"]);
        bytes.extend_from_slice(&[0; 20]);
        bytes.extend_from_slice(&[0xAB; 3]);
        bytes.extend_from_slice(&[0; 50]);
        let s = scan_bytes(&bytes, 1);
        assert!(s.damage.is_some());
        assert_eq!(s.offsets.len(), 1);
    }

    #[test]
    fn a_header_naming_another_index_is_damage_at_offset_zero() {
        let bytes = segment(5, &[b"x"]);
        let s = scan_bytes(&bytes, 6);
        let d = s.damage.expect("damage");
        assert_eq!(d.offset, 0);
        assert_eq!(s.valid_len, 0);
    }
}
