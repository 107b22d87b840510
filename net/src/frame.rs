//! Length-prefixed, versioned postcard frames with a hard size limit.
//!
//! Wire format of one frame:
//!
//! ```text
//! [u32 big-endian length L][u8 FRAME_VERSION][postcard body, L-1 bytes]
//! ```
//!
//! `L` counts the version byte and the body, and must be in
//! `1..=frame_bytes_max`; a larger `L` is refused before any buffer is
//! allocated. A frame whose body does not decode to exactly one message
//! (bad bytes, or bytes left over) is an error.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default limit of one frame (version byte + body).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 4 << 20;
/// Version tag of the frame format; bumped on any incompatible change.
pub const FRAME_VERSION: u8 = 1;
const PREFIX_BYTES: usize = 4;

/// A frame that could not be encoded, read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("empty frame (no version byte)")]
    Empty,
    #[error("frame version {got}, expected {FRAME_VERSION}")]
    Version { got: u8 },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
    #[error("length prefix says {prefix} bytes, buffer holds {actual}")]
    LengthMismatch { prefix: usize, actual: usize },
    #[error("decoding: {0}")]
    Decode(postcard::Error),
    #[error("encoding: {0}")]
    Encode(postcard::Error),
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one complete frame (prefix included).
pub fn encode<M: Serialize>(msg: &M, frame_bytes_max: usize) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::new();
    encode_into(msg, frame_bytes_max, &mut buf)?;
    Ok(buf.freeze())
}

/// Appends `msg` as one complete frame to `buf`; on an error `buf` is as it was.
fn encode_into<M: Serialize>(
    msg: &M,
    frame_bytes_max: usize,
    buf: &mut BytesMut,
) -> Result<(), FrameError> {
    let body_len = postcard::experimental::serialized_size(msg).map_err(FrameError::Encode)?;
    let len = body_len + 1;
    if len > frame_bytes_max || len > u32::MAX as usize {
        return Err(FrameError::TooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    let start = buf.len();
    buf.reserve(PREFIX_BYTES + len);
    buf.put_u32(len as u32);
    buf.put_u8(FRAME_VERSION);
    let written = postcard::to_io(msg, (&mut *buf).writer()).map(drop);
    if let Err(e) = written {
        buf.truncate(start);
        return Err(FrameError::Encode(e));
    }
    assert_eq!(
        buf.len() - start,
        PREFIX_BYTES + len,
        "serialized_size disagrees with to_io"
    );
    Ok(())
}

/// Decodes one complete frame (prefix included); pure, for tests and fuzzing.
pub fn decode<M: DeserializeOwned>(buf: &[u8], frame_bytes_max: usize) -> Result<M, FrameError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<PREFIX_BYTES>() else {
        return Err(FrameError::Truncated);
    };
    let len = check_len(u32::from_be_bytes(*prefix), frame_bytes_max)?;
    if rest.len() != len {
        return Err(FrameError::LengthMismatch {
            prefix: len,
            actual: rest.len(),
        });
    }
    decode_payload(rest)
}

/// Validates a length prefix against the limit.
fn check_len(prefix: u32, frame_bytes_max: usize) -> Result<usize, FrameError> {
    let len = prefix as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > frame_bytes_max {
        return Err(FrameError::TooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    Ok(len)
}

/// Decodes the version byte + body of a frame.
fn decode_payload<M: DeserializeOwned>(payload: &[u8]) -> Result<M, FrameError> {
    let Some((&version, body)) = payload.split_first() else {
        return Err(FrameError::Empty);
    };
    if version != FRAME_VERSION {
        return Err(FrameError::Version { got: version });
    }
    let (msg, rest) = postcard::take_from_bytes(body).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Reads frames of `M` from a stream (a quinn `RecvStream` by default).
#[derive(Debug)]
pub struct FrameReader<M, R = quinn::RecvStream> {
    inner: R,
    frame_bytes_max: usize,
    /// Reused between frames. Invariant: `buf.capacity()` never exceeds
    /// `frame_bytes_max` (it is sized only from a checked length).
    buf: Vec<u8>,
    /// Progress of the frame being read, kept across cancelled calls.
    /// Invariant: `body_filled <= buf.len()`, and `body_filled > 0` only
    /// once `prefix_filled == PREFIX_BYTES`.
    prefix: [u8; PREFIX_BYTES],
    prefix_filled: usize,
    body_filled: usize,
    _msg: PhantomData<fn() -> M>,
}

impl<M: DeserializeOwned, R: AsyncRead + Unpin> FrameReader<M, R> {
    pub fn new(inner: R, frame_bytes_max: usize) -> Self {
        Self {
            inner,
            frame_bytes_max,
            buf: Vec::new(),
            prefix: [0; PREFIX_BYTES],
            prefix_filled: 0,
            body_filled: 0,
            _msg: PhantomData,
        }
    }

    /// The next message; `Ok(None)` when the stream ended cleanly between frames.
    ///
    /// Cancel-safe: every byte taken from the stream is kept in `self`, so a
    /// call dropped by `select!` mid-frame resumes exactly where it stopped.
    /// (Without this, a cancelled read lost a partial frame and desynchronized
    /// the stream: large frames then failed to decode and the server closed
    /// the client's stream, which showed up as 100 ms to 2 s tail latencies.)
    pub async fn read(&mut self) -> Result<Option<M>, FrameError> {
        let result = self.read_frame().await;
        if result.is_err() {
            // A broken stream is not resumed; leave no half state behind.
            self.prefix_filled = 0;
            self.body_filled = 0;
        }
        result
    }

    async fn read_frame(&mut self) -> Result<Option<M>, FrameError> {
        while self.prefix_filled < PREFIX_BYTES {
            let n = self
                .inner
                .read(&mut self.prefix[self.prefix_filled..])
                .await?;
            if n == 0 {
                return if self.prefix_filled == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            self.prefix_filled += n;
            if self.prefix_filled == PREFIX_BYTES {
                let len = check_len(u32::from_be_bytes(self.prefix), self.frame_bytes_max)?;
                self.buf.clear();
                // Exact, not amortized doubling, so the buffer never exceeds the limit.
                self.buf.reserve_exact(len);
                self.buf.resize(len, 0);
                self.body_filled = 0;
                assert!(self.buf.capacity() <= self.frame_bytes_max);
            }
        }
        while self.body_filled < self.buf.len() {
            let n = self.inner.read(&mut self.buf[self.body_filled..]).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
            self.body_filled += n;
        }
        self.prefix_filled = 0;
        self.body_filled = 0;
        let msg = decode_payload(&self.buf);
        // Do not pin a large buffer after one big frame.
        if self.buf.capacity() > 64 << 10 {
            self.buf = Vec::new();
        }
        msg.map(Some)
    }

    /// Bytes currently reserved for the frame buffer (at most `frame_bytes_max`).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes frames of `M` to a stream (a quinn `SendStream` by default).
///
/// Frames can be queued and written together: each write to a quinn stream
/// takes the connection's lock and wakes its driver, so answers that are
/// ready at once go out in one write (and mostly one packet), not one each.
#[derive(Debug)]
pub struct FrameWriter<M, W = quinn::SendStream> {
    inner: W,
    frame_bytes_max: usize,
    /// Encoded frames not yet written.
    /// Invariant: whole frames only; emptied by every write.
    queued: BytesMut,
    /// Invariant: the number of frames in `queued`.
    queued_frames: usize,
    _msg: PhantomData<fn(&M)>,
}

/// A queue that held more than this after a write is given back, so one
/// burst of large frames does not pin its buffer.
const QUEUE_KEPT_BYTES_MAX: usize = 64 << 10;
/// Frames one batch takes at most, and the bytes after which it takes no
/// more (checked before each, so a batch may end one frame past it).
pub const WRITE_BATCH_FRAMES_MAX: usize = 64;
pub const WRITE_BATCH_BYTES_MAX: usize = 256 << 10;

impl<M: Serialize, W: AsyncWrite + Unpin> FrameWriter<M, W> {
    pub fn new(inner: W, frame_bytes_max: usize) -> Self {
        Self {
            inner,
            frame_bytes_max,
            queued: BytesMut::new(),
            queued_frames: 0,
            _msg: PhantomData,
        }
    }

    /// Encodes and writes one frame (after any queued ones); a too-large
    /// message is refused and nothing is written.
    pub async fn write(&mut self, msg: &M) -> Result<(), FrameError> {
        self.queue(msg)?;
        self.write_queued().await
    }

    /// Encodes one frame behind those already queued, without writing; a
    /// too-large message is refused and the queue is as it was.
    pub fn queue(&mut self, msg: &M) -> Result<(), FrameError> {
        encode_into(msg, self.frame_bytes_max, &mut self.queued)?;
        self.queued_frames += 1;
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.len()
    }

    /// Whether the queue holds a full batch ([`WRITE_BATCH_FRAMES_MAX`]
    /// frames or [`WRITE_BATCH_BYTES_MAX`] bytes): time to write it.
    pub fn batch_full(&self) -> bool {
        self.queued_frames >= WRITE_BATCH_FRAMES_MAX || self.queued.len() >= WRITE_BATCH_BYTES_MAX
    }

    /// Writes every queued frame, in the order queued, with one write.
    pub async fn write_queued(&mut self) -> Result<(), FrameError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let written = self.inner.write_all(&self.queued).await;
        self.queued.clear();
        self.queued_frames = 0;
        if self.queued.capacity() > QUEUE_KEPT_BYTES_MAX {
            self.queued = BytesMut::new();
        }
        written?;
        Ok(())
    }

    /// Writes what is queued, then ends the stream cleanly (the reader then
    /// sees `Ok(None)`).
    pub async fn finish(&mut self) -> Result<(), FrameError> {
        self.write_queued().await?;
        self.inner.shutdown().await?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        assert!(self.queued.is_empty(), "frames queued and never written");
        self.inner
    }
}

/// Opens a bidi stream on `conn` and frames it: requests out, responses in.
pub async fn framed_bi<Req: Serialize, Resp: DeserializeOwned>(
    conn: &quinn::Connection,
    frame_bytes_max: usize,
) -> Result<(FrameWriter<Req>, FrameReader<Resp>), quinn::ConnectionError> {
    let (send, recv) = conn.open_bi().await?;
    Ok((
        FrameWriter::new(send, frame_bytes_max),
        FrameReader::new(recv, frame_bytes_max),
    ))
}

/// Accepts the next bidi stream on `conn` and frames it: requests in,
/// responses out. `None` when the connection closed.
pub async fn accept_framed_bi<Req: DeserializeOwned, Resp: Serialize>(
    conn: &quinn::Connection,
    frame_bytes_max: usize,
) -> Option<(FrameReader<Req>, FrameWriter<Resp>)> {
    let (send, recv) = conn.accept_bi().await.ok()?;
    Some((
        FrameReader::new(recv, frame_bytes_max),
        FrameWriter::new(send, frame_bytes_max),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msg = (7u64, "hello".to_string(), vec![1u8, 2, 3]);
        let frame = encode(&msg, 1024).expect("fits");
        assert_eq!(frame[4], FRAME_VERSION);
        let back: (u64, String, Vec<u8>) = decode(&frame, 1024).expect("decodes");
        assert_eq!(back, msg);
    }

    #[test]
    fn oversized_is_refused_both_ways() {
        let msg = vec![0u8; 100];
        assert!(matches!(encode(&msg, 50), Err(FrameError::TooLarge { .. })));
        let frame = encode(&msg, 1024).expect("fits");
        assert!(matches!(
            decode::<Vec<u8>>(&frame, 50),
            Err(FrameError::TooLarge { len: 102, max: 50 })
        ));
    }

    #[test]
    fn bad_version_and_trailing_bytes() {
        let mut frame = encode(&5u32, 64).expect("fits").to_vec();
        frame[4] = 9;
        assert!(matches!(
            decode::<u32>(&frame, 64),
            Err(FrameError::Version { got: 9 })
        ));
        let mut frame = encode(&5u8, 64).expect("fits").to_vec();
        frame.push(0);
        frame[3] += 1;
        assert!(matches!(
            decode::<u8>(&frame, 64),
            Err(FrameError::TrailingBytes(1))
        ));
    }

    #[tokio::test]
    async fn reader_tells_clean_end_from_truncation() {
        let frame = encode(&"abc".to_string(), 64).expect("fits");
        let mut two = frame.to_vec();
        two.extend_from_slice(&frame);
        let mut r = FrameReader::<String, _>::new(&two[..], 64);
        assert_eq!(r.read().await.expect("first").as_deref(), Some("abc"));
        assert_eq!(r.read().await.expect("second").as_deref(), Some("abc"));
        assert!(r.read().await.expect("clean end").is_none());

        for cut in [2, 4, frame.len() - 1] {
            let mut r = FrameReader::<String, _>::new(&frame[..cut], 64);
            assert!(
                matches!(r.read().await, Err(FrameError::Truncated)),
                "cut {cut}"
            );
        }
    }

    /// A writer that counts the writes it is given.
    struct Counting {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_frames_go_in_one_write_in_order_and_a_refused_one_leaves_no_trace() {
        let mut w = FrameWriter::<String, _>::new(
            Counting {
                bytes: Vec::new(),
                writes: 0,
            },
            64,
        );
        w.queue(&"one".to_string()).expect("fits");
        let before = w.queued_bytes();
        assert!(matches!(
            w.queue(&"x".repeat(100)),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(w.queued_bytes(), before, "a refused frame is not queued");
        w.queue(&"two".to_string()).expect("fits");
        w.write_queued().await.expect("written");
        assert_eq!(w.queued_bytes(), 0);
        w.write_queued().await.expect("nothing to write");
        let inner = w.into_inner();
        assert_eq!(inner.writes, 1, "both frames in one write");
        let mut r = FrameReader::<String, _>::new(&inner.bytes[..], 64);
        assert_eq!(r.read().await.expect("first").as_deref(), Some("one"));
        assert_eq!(r.read().await.expect("second").as_deref(), Some("two"));
        assert!(r.read().await.expect("clean end").is_none());
    }

    #[tokio::test]
    async fn a_batch_is_full_at_its_frame_bound_and_empty_after_a_write() {
        let mut w = FrameWriter::<u8, _>::new(
            Counting {
                bytes: Vec::new(),
                writes: 0,
            },
            64,
        );
        for n in 0..WRITE_BATCH_FRAMES_MAX {
            assert!(!w.batch_full(), "full after {n} frames");
            w.queue(&1).expect("fits");
        }
        assert!(w.batch_full());
        w.write_queued().await.expect("written");
        assert!(!w.batch_full());
    }
}
