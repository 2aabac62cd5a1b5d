//! Jute, ZooKeeper's binary encoding: the primitive reader and writer every
//! record in `records` is built from.
//!
//! Encoding (`org.apache.jute.BinaryInputArchive` / `BinaryOutputArchive`):
//! `int` = i32 big-endian, `long` = i64 big-endian, `boolean` = 1 byte,
//! `buffer` = i32 length + bytes, `ustring` = i32 length + UTF-8, `vector` =
//! i32 count + items. A length or count of -1 means null.
//!
//! The reader never panics and never allocates more than the input can fill:
//! every string and buffer length is checked against a per-field limit (in
//! ZooKeeper, `jute.maxbuffer` + `zookeeper.jute.maxbuffer.extrasize`), and a
//! vector's capacity is bounded by the bytes left.

use bytes::BufMut;
use thiserror::Error;

/// ZooKeeper's default `jute.maxbuffer`: the largest frame (and, with the
/// extra size, the largest string or buffer) the server accepts.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 0xF_FFFF;

/// The per-field length limit ZooKeeper applies when decoding: `jute.maxbuffer`
/// plus `zookeeper.jute.maxbuffer.extrasize`, whose default is `jute.maxbuffer`
/// itself and which is never below 1024.
pub fn default_field_len_max(max_buffer_bytes: usize) -> usize {
    max_buffer_bytes.saturating_add(max_buffer_bytes.max(1024))
}

/// Why a record could not be decoded. The server answers a request whose body
/// fails to decode with `MarshallingError`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} bytes, only {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("negative length or count {0} (only -1, meaning null, is allowed)")]
    NegativeLength(i32),
    #[error("length {len} exceeds the limit of {max} bytes (jute.maxbuffer + extrasize)")]
    TooLong { len: usize, max: usize },
    #[error("string is not valid UTF-8")]
    BadUtf8,
    #[error("{0} bytes left over after the record")]
    TrailingBytes(usize),
    #[error("operation type {0} is not allowed here")]
    BadOpType(i32),
    #[error("unknown error code {0}")]
    UnknownErrorCode(i32),
}

/// Reads jute primitives from a borrowed byte slice.
///
/// Strings and buffers are returned as borrowed slices where possible, so a
/// caller that only inspects a path does not allocate.
#[derive(Debug, Clone)]
pub struct JuteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    field_len_max: usize,
}

impl<'a> JuteReader<'a> {
    /// A reader over `buf` that rejects any string or buffer longer than
    /// `field_len_max` bytes.
    pub fn new(buf: &'a [u8], field_len_max: usize) -> JuteReader<'a> {
        JuteReader {
            buf,
            pos: 0,
            field_len_max,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn field_len_max(&self) -> usize {
        self.field_len_max
    }

    /// Fails with `TrailingBytes` unless every byte has been read.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::Truncated {
                needed: n,
                remaining,
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        self.take_array().map(i32::from_be_bytes)
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        self.take_array().map(i64::from_be_bytes)
    }

    /// Any non-zero byte is true, as in Java's `DataInput.readBoolean`.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        self.take_array::<1>().map(|[b]| b != 0)
    }

    /// Reads a length prefix: `None` for -1 (null), an error for any other
    /// negative value or one above the field limit.
    fn read_len(&mut self) -> Result<Option<usize>, DecodeError> {
        match self.read_i32()? {
            -1 => Ok(None),
            len if len < 0 => Err(DecodeError::NegativeLength(len)),
            len => {
                let len = len as usize;
                if len > self.field_len_max {
                    return Err(DecodeError::TooLong {
                        len,
                        max: self.field_len_max,
                    });
                }
                Ok(Some(len))
            }
        }
    }

    /// A `buffer`; `None` when it was sent as null (length -1).
    pub fn read_opt_buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.read_len()? {
            None => Ok(None),
            Some(len) => self.take(len).map(Some),
        }
    }

    /// A `buffer`, with null read as empty.
    pub fn read_buffer_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        Ok(self.read_opt_buffer()?.unwrap_or_default())
    }

    /// A `buffer` copied out, with null read as empty.
    pub fn read_buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.read_buffer_ref().map(<[u8]>::to_vec)
    }

    /// A `ustring`; `None` when it was sent as null (length -1).
    pub fn read_opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        match self.read_opt_buffer()? {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| DecodeError::BadUtf8),
        }
    }

    /// A `ustring`, with null read as empty.
    pub fn read_str(&mut self) -> Result<&'a str, DecodeError> {
        Ok(self.read_opt_str()?.unwrap_or_default())
    }

    /// A `ustring` copied out, with null read as empty.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        self.read_str().map(str::to_owned)
    }

    /// A `ustring` copied out; `None` when it was sent as null.
    pub fn read_opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(self.read_opt_str()?.map(str::to_owned))
    }

    /// A `vector` whose items are read by `item`; `None` when it was sent as
    /// null (count -1).
    ///
    /// The capacity reserved up front is bounded by the bytes left (every
    /// jute item takes at least one byte), so a huge count cannot make the
    /// reader allocate more than the input holds.
    pub fn read_opt_vec<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let count = match self.read_i32()? {
            -1 => return Ok(None),
            n if n < 0 => return Err(DecodeError::NegativeLength(n)),
            n => n as usize,
        };
        let mut items = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            items.push(item(self)?);
        }
        Ok(Some(items))
    }

    /// A `vector`, with null read as empty.
    pub fn read_vec<T>(
        &mut self,
        item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        Ok(self.read_opt_vec(item)?.unwrap_or_default())
    }

    /// A `vector<ustring>`, with null read as empty.
    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(Self::read_string)
    }
}

/// Converts a length to its i32 wire form.
///
/// # Panics
/// When `len` exceeds `i32::MAX`: no jute record can hold it, and every
/// length we write comes from data already bounded by `jute.maxbuffer`, so
/// this is a bug in the caller.
pub(crate) fn wire_len(len: usize) -> i32 {
    match i32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("jute length {len} does not fit in an i32"),
    }
}

/// Writes jute primitives. Implemented for every `BufMut` (`BytesMut`,
/// `Vec<u8>`); use `BufMut::put_i32` / `put_i64` for `int` and `long`.
pub trait JuteWrite: BufMut {
    fn put_bool(&mut self, value: bool) {
        self.put_u8(u8::from(value));
    }

    fn put_buffer(&mut self, bytes: &[u8]) {
        self.put_i32(wire_len(bytes.len()));
        self.put_slice(bytes);
    }

    /// Writes `None` as null (length -1).
    fn put_opt_buffer(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.put_buffer(bytes),
            None => self.put_i32(-1),
        }
    }

    fn put_string(&mut self, s: &str) {
        self.put_buffer(s.as_bytes());
    }

    /// Writes `None` as null (length -1).
    fn put_opt_string(&mut self, s: Option<&str>) {
        self.put_opt_buffer(s.map(str::as_bytes));
    }

    /// Writes a `vector`: the count, then each item with `item`.
    fn put_vec<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.put_i32(wire_len(items.len()));
        for it in items {
            item(self, it);
        }
    }

    /// Writes a `vector<ustring>`.
    fn put_string_vec<S: AsRef<str>>(&mut self, items: &[S]) {
        self.put_vec(items, |buf, s| buf.put_string(s.as_ref()));
    }
}

impl<B: BufMut + ?Sized> JuteWrite for B {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_of_minus_one_is_null() {
        let bytes = (-1i32).to_be_bytes();
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_opt_str(), Ok(None));
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_string(), Ok(String::new()));
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_opt_buffer(), Ok(None));
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_buffer(), Ok(Vec::new()));
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_opt_vec(JuteReader::read_i32), Ok(None));
        let mut r = JuteReader::new(&bytes, 100);
        assert_eq!(r.read_string_vec(), Ok(Vec::new()));
    }

    #[test]
    fn other_negative_lengths_are_rejected() {
        let bytes = (-2i32).to_be_bytes();
        assert_eq!(
            JuteReader::new(&bytes, 100).read_buffer(),
            Err(DecodeError::NegativeLength(-2))
        );
        assert_eq!(
            JuteReader::new(&bytes, 100).read_vec(JuteReader::read_i32),
            Err(DecodeError::NegativeLength(-2))
        );
    }

    #[test]
    fn a_field_longer_than_the_limit_is_rejected_before_reading_it() {
        let mut bytes = 11i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[b'a'; 11]);
        assert_eq!(
            JuteReader::new(&bytes, 10).read_string(),
            Err(DecodeError::TooLong { len: 11, max: 10 })
        );
        assert_eq!(
            JuteReader::new(&bytes, 11).read_string(),
            Ok("a".repeat(11))
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(matches!(
            JuteReader::new(&[0, 0], 10).read_i32(),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            JuteReader::new(&[0; 7], 10).read_i64(),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            JuteReader::new(&[], 10).read_bool(),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            JuteReader::new(&[0, 0, 0, 5, b'a'], 10).read_string(),
            Err(DecodeError::Truncated {
                needed: 5,
                remaining: 1
            })
        ));
    }

    #[test]
    fn a_huge_vector_count_does_not_allocate_ahead_of_the_input() {
        let bytes = i32::MAX.to_be_bytes();
        assert!(matches!(
            JuteReader::new(&bytes, 10).read_vec(JuteReader::read_i64),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let bytes = [0, 0, 0, 2, 0xC3, 0x28];
        assert_eq!(
            JuteReader::new(&bytes, 10).read_string(),
            Err(DecodeError::BadUtf8)
        );
    }

    #[test]
    fn any_non_zero_byte_reads_as_true() {
        assert_eq!(JuteReader::new(&[7], 10).read_bool(), Ok(true));
        assert_eq!(JuteReader::new(&[0], 10).read_bool(), Ok(false));
    }

    #[test]
    fn the_writer_produces_what_the_reader_reads() {
        let mut buf = bytes::BytesMut::new();
        buf.put_bool(true);
        buf.put_string("héllo");
        buf.put_opt_string(None);
        buf.put_buffer(&[1, 2, 3]);
        buf.put_opt_buffer(None);
        buf.put_string_vec(&["a", "bc"]);
        buf.put_i64(-5);
        let mut r = JuteReader::new(&buf, 100);
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.read_str(), Ok("héllo"));
        assert_eq!(r.read_opt_str(), Ok(None));
        assert_eq!(r.read_buffer_ref(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.read_opt_buffer(), Ok(None));
        assert_eq!(
            r.read_string_vec(),
            Ok(vec!["a".to_owned(), "bc".to_owned()])
        );
        assert_eq!(r.read_i64(), Ok(-5));
        assert_eq!(r.expect_end(), Ok(()));
    }

    #[test]
    fn the_default_field_limit_is_twice_maxbuffer_and_at_least_maxbuffer_plus_1024() {
        assert_eq!(
            default_field_len_max(DEFAULT_MAX_BUFFER_BYTES),
            2 * DEFAULT_MAX_BUFFER_BYTES
        );
        assert_eq!(default_field_len_max(10), 1034);
    }
}
