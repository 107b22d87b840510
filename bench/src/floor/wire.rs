//! The floor's byte formats. A client frame is a u32 BE length and that many
//! payload bytes; the reply is the entry's u64 BE log index. A replicated
//! batch is one frame too, whose body is the log record the leader and both
//! followers append verbatim: u64 BE first index, u32 BE count, then `count`
//! entries of u32 BE length + bytes.

use std::io::{self, Read};

pub const LEN_BYTES: usize = 4;
/// u64 first index + u32 entry count.
pub const BATCH_HEADER_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    #[error("frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed inside a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch record of {len} bytes is shorter than its header")]
    ShortHeader { len: usize },
    #[error("batch record holds no entry")]
    Empty,
    #[error("batch first index {first} with {count} entries overflows u64")]
    IndexOverflow { first: u64, count: u32 },
    #[error("batch entries do not fill the record exactly")]
    BadEntries,
}

/// The first and last log index of a validated batch record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpan {
    pub first: u64,
    pub last: u64,
}

/// Replaces `buf` with the frame of one client payload (sent with one write).
pub fn encode_frame_into(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&frame_len(payload.len()).to_be_bytes());
    buf.extend_from_slice(payload);
}

fn frame_len(len: usize) -> u32 {
    // Every caller bounds its frames far below 4 GiB (`NodeArgs::validate`,
    // the appender's payload check).
    u32::try_from(len).expect("frame longer than u32::MAX")
}

/// Reads one frame's length and checks it against `max`; `Closed` at a clean
/// end of stream.
fn read_len(r: &mut impl Read, max: usize) -> Result<usize, FrameError> {
    let mut len = [0u8; LEN_BYTES];
    let mut got = 0;
    while got < LEN_BYTES {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

fn read_body(r: &mut impl Read, body: &mut [u8]) -> Result<(), FrameError> {
    r.read_exact(body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })
}

/// Reads one frame's body into a fresh buffer (a client payload, which then
/// waits in the leader's queue). Nothing beyond the 4 length bytes is read
/// from a frame over `max`.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let len = read_len(r, max)?;
    let mut body = vec![0u8; len];
    read_body(r, &mut body)?;
    Ok(body)
}

/// Reads one whole frame, length prefix included, into `buf` (reused across
/// batches; a follower appends it to its log verbatim).
pub fn read_frame_into(r: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> Result<(), FrameError> {
    let len = read_len(r, max)?;
    buf.clear();
    buf.extend_from_slice(&frame_len(len).to_be_bytes());
    buf.resize(LEN_BYTES + len, 0);
    read_body(r, &mut buf[LEN_BYTES..])
}

/// Replaces `buf` with the frame of a batch record holding `payloads` from
/// index `first` on.
pub fn encode_batch<'a>(buf: &mut Vec<u8>, first: u64, payloads: impl Iterator<Item = &'a [u8]>) {
    buf.clear();
    buf.extend_from_slice(&[0u8; LEN_BYTES]);
    buf.extend_from_slice(&first.to_be_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    let mut count: u32 = 0;
    for p in payloads {
        buf.extend_from_slice(&frame_len(p.len()).to_be_bytes());
        buf.extend_from_slice(p);
        count += 1;
    }
    let body_len = frame_len(buf.len() - LEN_BYTES);
    buf[..LEN_BYTES].copy_from_slice(&body_len.to_be_bytes());
    buf[LEN_BYTES + 8..LEN_BYTES + BATCH_HEADER_BYTES].copy_from_slice(&count.to_be_bytes());
}

/// The largest batch frame body for these bounds, the limit a follower reads with.
pub fn batch_body_bytes_max(count_max: usize, payload_bytes_total_max: usize) -> usize {
    BATCH_HEADER_BYTES + count_max * LEN_BYTES + payload_bytes_total_max
}

/// Validates a batch record (a frame body) and returns its index span.
pub fn decode_batch(body: &[u8]) -> Result<BatchSpan, BatchError> {
    let header = body
        .get(..BATCH_HEADER_BYTES)
        .ok_or(BatchError::ShortHeader { len: body.len() })?;
    let (first, count) = header.split_at(8);
    let first = u64::from_be_bytes(first.try_into().map_err(|_| BatchError::BadEntries)?);
    let count = u32::from_be_bytes(count.try_into().map_err(|_| BatchError::BadEntries)?);
    if count == 0 {
        return Err(BatchError::Empty);
    }
    let last = first
        .checked_add(u64::from(count) - 1)
        .ok_or(BatchError::IndexOverflow { first, count })?;
    let mut rest = &body[BATCH_HEADER_BYTES..];
    for _ in 0..count {
        let (len, tail) = rest
            .split_at_checked(LEN_BYTES)
            .ok_or(BatchError::BadEntries)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| BatchError::BadEntries)?) as usize;
        rest = tail.get(len..).ok_or(BatchError::BadEntries)?;
    }
    if !rest.is_empty() {
        return Err(BatchError::BadEntries);
    }
    Ok(BatchSpan { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![9u8; 3];
        encode_frame_into(&mut buf, payload);
        buf
    }

    #[test]
    fn frame_round_trips() {
        let bytes = encode_frame(b"hello");
        assert_eq!(&bytes[..4], &5u32.to_be_bytes());
        let got = read_frame(&mut &bytes[..], 5).expect("a frame at the limit is accepted");
        assert_eq!(got, b"hello");
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let bytes = encode_frame(b"");
        let got = read_frame(&mut &bytes[..], 0).expect("empty frame");
        assert!(got.is_empty());
    }

    #[test]
    fn oversized_frame_is_rejected_before_its_body() {
        let bytes = encode_frame(&[7u8; 6]);
        let mut r = &bytes[..];
        match read_frame(&mut r, 5) {
            Err(FrameError::TooLarge { len: 6, max: 5 }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(r.len(), 6, "the body must not be read");
    }

    #[test]
    fn clean_close_and_truncation_are_told_apart() {
        assert!(matches!(
            read_frame(&mut &[][..], 8),
            Err(FrameError::Closed)
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0][..], 8),
            Err(FrameError::Truncated)
        ));
        let mut cut = encode_frame(b"abcd");
        cut.truncate(6);
        assert!(matches!(
            read_frame(&mut &cut[..], 8),
            Err(FrameError::Truncated)
        ));
    }

    #[test]
    fn read_frame_into_keeps_the_prefix_and_reuses_the_buffer() {
        let mut stream = encode_frame(b"first, longer");
        stream.extend(encode_frame(b"2nd"));
        let mut r = &stream[..];
        let mut buf = Vec::new();
        read_frame_into(&mut r, &mut buf, 64).expect("first frame");
        assert_eq!(buf, encode_frame(b"first, longer"));
        read_frame_into(&mut r, &mut buf, 64).expect("second frame");
        assert_eq!(buf, encode_frame(b"2nd"));
        assert!(matches!(
            read_frame_into(&mut r, &mut buf, 64),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn batch_round_trips_and_fits_its_bound() {
        let payloads: [&[u8]; 3] = [b"a", b"", b"ccc"];
        let mut buf = Vec::new();
        encode_batch(&mut buf, 41, payloads.iter().copied());
        let body_len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(body_len, buf.len() - LEN_BYTES);
        assert!(body_len <= batch_body_bytes_max(3, 4));
        let span = decode_batch(&buf[LEN_BYTES..]).expect("valid batch");
        assert_eq!(
            span,
            BatchSpan {
                first: 41,
                last: 43
            }
        );
    }

    #[test]
    fn malformed_batches_are_rejected() {
        assert_eq!(
            decode_batch(&[0u8; 5]),
            Err(BatchError::ShortHeader { len: 5 })
        );
        let mut buf = Vec::new();
        encode_batch(&mut buf, 1, std::iter::empty());
        assert_eq!(decode_batch(&buf[LEN_BYTES..]), Err(BatchError::Empty));
        encode_batch(&mut buf, u64::MAX, [&b"x"[..], b"y"].into_iter());
        assert!(matches!(
            decode_batch(&buf[LEN_BYTES..]),
            Err(BatchError::IndexOverflow { .. })
        ));
        encode_batch(&mut buf, 1, [&b"xyz"[..]].into_iter());
        assert_eq!(
            decode_batch(&buf[LEN_BYTES..buf.len() - 1]),
            Err(BatchError::BadEntries)
        );
        buf.push(0);
        assert_eq!(decode_batch(&buf[LEN_BYTES..]), Err(BatchError::BadEntries));
    }
}
