//! The floor's follower: accepts the leader, and for every batch appends the
//! record to its log, fdatasyncs, and acknowledges the batch's last index.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::Context;

use super::wire::{self, FrameError};

pub struct FollowerConfig {
    pub listen: SocketAddr,
    pub log: File,
    /// Largest batch record the leader may send.
    pub batch_body_bytes_max: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("batch starts at index {first}, expected {expected}")]
    Gap { first: u64, expected: u64 },
    #[error(transparent)]
    Batch(#[from] wire::BatchError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("log write failed: {0}")]
    Disk(std::io::Error),
}

pub fn run(mut cfg: FollowerConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cfg.listen).with_context(|| format!("bind {}", cfg.listen))?;
    // Invariant: the index the next batch must start at; the log holds 1..next.
    let mut next_index: u64 = 1;
    for stream in listener.incoming() {
        let stream = stream.context("accept the leader")?;
        match serve_leader(stream, &mut cfg, &mut next_index) {
            Ok(()) | Err(FollowerError::Frame(FrameError::Closed)) => {}
            // The log may now be torn: stop rather than append after it.
            Err(e @ FollowerError::Disk(_)) => return Err(e.into()),
            Err(e) => eprintln!("floor follower: dropping the leader's connection: {e}"),
        }
    }
    Ok(())
}

fn serve_leader(
    mut stream: TcpStream,
    cfg: &mut FollowerConfig,
    next_index: &mut u64,
) -> Result<(), FollowerError> {
    stream.set_nodelay(true).map_err(FrameError::Io)?;
    let mut buf = Vec::new();
    loop {
        wire::read_frame_into(&mut stream, &mut buf, cfg.batch_body_bytes_max)?;
        let span = wire::decode_batch(&buf[wire::LEN_BYTES..])?;
        if span.first != *next_index {
            return Err(FollowerError::Gap {
                first: span.first,
                expected: *next_index,
            });
        }
        cfg.log.write_all(&buf).map_err(FollowerError::Disk)?;
        cfg.log.sync_data().map_err(FollowerError::Disk)?;
        *next_index = span.last + 1;
        stream
            .write_all(&span.last.to_be_bytes())
            .map_err(FrameError::Io)?;
    }
}
