//! Transport tunables.

use crate::frame::FRAME_BYTES_MAX_DEFAULT;

/// Limits and timers of a [`crate::NodeEndpoint`] or [`crate::ClientEndpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Largest frame (version byte + postcard body) sent or accepted.
    pub frame_bytes_max: usize,
    /// Frames queued per peer before `try_send` answers `Full`.
    pub peer_queue_capacity: usize,
    /// Messages from all peers waiting for `PeerReceiver::recv`; when full,
    /// readers stop and QUIC flow control pushes back on the senders.
    pub inbound_capacity: usize,
    /// Accepted client connections waiting for `accept_client`; beyond it a
    /// new client connection is refused.
    pub client_accept_capacity: usize,
    /// Concurrent bidi streams a client may open on one connection.
    pub client_streams_max: u32,
    /// A connection silent this long is dead.
    pub idle_timeout_ms: u64,
    /// Keep-alive ping interval; below `idle_timeout_ms` so idle links live.
    pub keep_alive_ms: u64,
    /// Round-trip estimate before the first sample. It sets how soon a lost
    /// handshake packet is sent again and how long closing a connection
    /// that never measured its RTT lingers: QUIC's 333 ms default (RFC 9002,
    /// meant for the open internet) made a peer dialled before it was bound
    /// wait ~1 s to connect, and a stopping node ~3 s to exit.
    pub initial_rtt_ms: u64,
    /// First reconnect delay of a peer link.
    pub reconnect_backoff_min_ms: u64,
    /// Cap of the exponential reconnect delay.
    pub reconnect_backoff_max_ms: u64,
    /// Frames written to a peer stream in one batch.
    pub write_batch_frames_max: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            peer_queue_capacity: 1024,
            inbound_capacity: 4096,
            client_accept_capacity: 256,
            client_streams_max: 256,
            idle_timeout_ms: 10_000,
            keep_alive_ms: 2_000,
            initial_rtt_ms: 50,
            reconnect_backoff_min_ms: 50,
            reconnect_backoff_max_ms: 2_000,
            write_batch_frames_max: 64,
        }
    }
}

impl NetConfig {
    /// Settings that notice a dead peer or client within ~3 s, so a client
    /// fails over quickly. A peer restarted meanwhile is noticed sooner, at
    /// its answer to our next packet: a stateless reset (see `NodeTls`).
    pub fn liveness() -> Self {
        Self {
            idle_timeout_ms: 3_000,
            keep_alive_ms: 500,
            ..Self::default()
        }
    }

    /// Rejects settings that would make a bound meaningless.
    pub fn validate(&self) -> Result<(), crate::NetError> {
        let bad = |what: &str| Err(crate::NetError::Config(what.to_string()));
        if self.frame_bytes_max < 2 || self.frame_bytes_max > u32::MAX as usize {
            return bad("frame_bytes_max must be in 2..=u32::MAX");
        }
        if self.peer_queue_capacity == 0
            || self.inbound_capacity == 0
            || self.client_accept_capacity == 0
            || self.write_batch_frames_max == 0
        {
            return bad("queue capacities must be at least 1");
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms {
            return bad("keep_alive_ms must be in 1..idle_timeout_ms");
        }
        if self.initial_rtt_ms == 0 || self.initial_rtt_ms >= self.idle_timeout_ms {
            return bad("initial_rtt_ms must be in 1..idle_timeout_ms");
        }
        if self.reconnect_backoff_min_ms == 0
            || self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms
        {
            return bad("reconnect backoff needs 0 < min <= max");
        }
        Ok(())
    }
}
