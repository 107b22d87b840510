//! `FrameReader::read` must be cancel-safe: the node's client loop races it
//! against replies in `select!`, which drops an unfinished read. A frame that
//! arrives in pieces across such cancellations must still decode intact.

use std::time::Duration;

use paxlog_net::{encode, FrameReader};
use tokio::io::AsyncWriteExt;

const FRAME_BYTES_MAX: usize = 1 << 20;
const FRAMES: usize = 200;

#[tokio::test]
async fn a_read_cancelled_mid_frame_resumes_where_it_stopped() {
    let (mut tx, rx) = tokio::io::duplex(64);
    let sender = tokio::spawn(async move {
        for i in 0..FRAMES {
            // Big enough that every frame crosses many 64-byte duplex chunks.
            let msg: Vec<u8> = (0..4096).map(|b| (b + i) as u8).collect();
            let frame = encode(&msg, FRAME_BYTES_MAX).expect("encode");
            for chunk in frame.chunks(37) {
                tx.write_all(chunk).await.expect("write");
                tokio::task::yield_now().await;
            }
        }
    });
    let mut reader = FrameReader::<Vec<u8>, _>::new(rx, FRAME_BYTES_MAX);
    let mut cancelled = 0u64;
    let mut got = 0usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1));
    while got < FRAMES {
        tokio::select! {
            biased;
            _ = tick.tick() => cancelled += 1,
            frame = reader.read() => {
                let msg = frame.expect("a frame decodes").expect("not the end");
                let expected: Vec<u8> = (0..4096).map(|b| (b + got) as u8).collect();
                assert_eq!(msg, expected, "frame {got} corrupted by a cancelled read");
                got += 1;
            }
        }
    }
    sender.await.expect("sender");
    println!("{FRAMES} frames intact across {cancelled} cancelled reads");
    assert!(
        cancelled > FRAMES as u64,
        "too few reads were cancelled to test anything"
    );
}
