//! Length-prefixed framing: the only place that knows about the 4-byte
//! big-endian length in front of every ZooKeeper packet.
//!
//! The connection reader appends socket bytes to a `BytesMut` and calls
//! [`decode_frame`] until it returns `None`; each frame then goes to
//! `request::decode_request` (or, for the first frame of a connection, to
//! `ConnectRequest::read`). Writers use [`write_frame`] so the prefix is
//! always patched in after the body is known.

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

/// Size of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The most capacity [`decode_frame`] reserves at once for a frame that has
/// not fully arrived: a peer announcing a large frame must send the bytes
/// before it makes us hold memory for them.
pub const FRAME_RESERVE_CHUNK_BYTES: usize = 64 * 1024;

/// A frame length ZooKeeper refuses. The server closes the connection without
/// replying.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error(
        "frame length {len} exceeds jute.maxbuffer ({max} bytes); raise jute.maxbuffer on both \
         client and server if such packets are intended"
    )]
    TooLarge { len: usize, max: usize },
}

/// Reads the length prefix at the start of `buf` without consuming it:
/// `None` until 4 bytes are there.
pub fn peek_frame_len(buf: &[u8]) -> Option<i32> {
    let prefix: [u8; LENGTH_PREFIX_BYTES] = buf.get(..LENGTH_PREFIX_BYTES)?.try_into().ok()?;
    Some(i32::from_be_bytes(prefix))
}

/// Splits one complete frame (without its length prefix) off the front of
/// `buf`, or returns `Ok(None)` when more bytes are needed.
///
/// A length below 0 or above `max_frame_len` is an error (ZooKeeper checks
/// against `jute.maxbuffer`; a length equal to it is accepted). While a frame
/// is incomplete, `buf` grows towards its size at most
/// [`FRAME_RESERVE_CHUNK_BYTES`] at a time.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_len: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let Some(len) = peek_frame_len(buf) else {
        return Ok(None);
    };
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    let len = len as usize;
    if len > max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_len,
        });
    }
    let total = LENGTH_PREFIX_BYTES + len;
    if buf.len() < total {
        let missing = total - buf.len();
        buf.reserve(missing.min(FRAME_RESERVE_CHUNK_BYTES));
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_BYTES);
    Ok(Some(buf.split_to(len)))
}

/// Appends a frame to `buf`: a length prefix, then whatever `body` writes,
/// with the prefix set to the body's length afterwards.
///
/// # Panics
/// When the body exceeds `i32::MAX` bytes, which no ZooKeeper peer accepts;
/// every record we write is bounded far below that by `jute.maxbuffer`.
pub fn write_frame(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_i32(0);
    body(buf);
    let len = crate::jute::wire_len(buf.len() - start - LENGTH_PREFIX_BYTES);
    buf[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: i32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(len);
        b.put_slice(body);
        b
    }

    #[test]
    fn a_frame_of_exactly_max_length_is_accepted() {
        let mut buf = framed(10, &[7; 10]);
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&[7u8; 10][..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_one_byte_over_max_is_rejected_before_its_body_arrives() {
        let mut buf = framed(11, &[]);
        assert_eq!(
            decode_frame(&mut buf, 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn a_negative_length_is_rejected() {
        let mut buf = framed(-1, &[]);
        assert_eq!(decode_frame(&mut buf, 10), Err(FrameError::Negative(-1)));
    }

    #[test]
    fn ruok_after_the_handshake_is_a_too_large_length() {
        let mut buf = BytesMut::from(&b"ruok"[..]);
        assert!(matches!(
            decode_frame(&mut buf, crate::jute::DEFAULT_MAX_BUFFER_BYTES),
            Err(FrameError::TooLarge {
                len: 0x7275_6F6B,
                ..
            })
        ));
    }

    #[test]
    fn partial_input_waits_for_more_and_keeps_the_bytes() {
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(decode_frame(&mut buf, 10), Ok(None));
        buf.put_slice(&[0, 3, 1, 2]);
        assert_eq!(decode_frame(&mut buf, 10), Ok(None));
        assert_eq!(buf.len(), 6);
        buf.put_slice(&[3, 9]);
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(&buf[..], &[9]);
    }

    #[test]
    fn back_to_back_frames_come_out_one_at_a_time() {
        let mut buf = framed(1, &[1]);
        buf.put_slice(&framed(0, &[]));
        buf.put_slice(&framed(2, &[2, 2]));
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&[1u8][..])
        );
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&[][..])
        );
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&[2u8, 2][..])
        );
        assert_eq!(decode_frame(&mut buf, 10), Ok(None));
    }

    #[test]
    fn an_announced_large_frame_does_not_reserve_its_whole_length() {
        let max = 64 * 1024 * 1024;
        let mut buf = framed(max as i32, &[]);
        assert_eq!(decode_frame(&mut buf, max), Ok(None));
        assert!(
            buf.capacity() < 4 * FRAME_RESERVE_CHUNK_BYTES,
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn write_frame_patches_the_length_after_the_body() {
        let mut buf = BytesMut::from(&b"xx"[..]);
        write_frame(&mut buf, |b| b.put_slice(b"hello"));
        assert_eq!(&buf[..], b"xx\0\0\0\x05hello");
    }
}
