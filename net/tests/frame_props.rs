//! Property tests of the frame decoder on hostile input.

use paxlog_net::{decode, encode, FrameError, FrameReader};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Ping(u64),
    Text(String),
    Blob(Vec<u8>),
    Many(Vec<(u32, Vec<u16>)>),
}

const MAX: usize = 1024;

fn frames(prefix: u32, body: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

proptest! {
    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<Msg>(&bytes, MAX);
    }

    #[test]
    fn decode_random_prefix_and_body(prefix in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let buf = frames(prefix, &body);
        match decode::<Msg>(&buf, MAX) {
            Err(FrameError::TooLarge { len, max }) => prop_assert!(len > max),
            Ok(_) => prop_assert!(prefix as usize <= MAX && prefix as usize == body.len()),
            Err(_) => {}
        }
    }

    #[test]
    fn reader_never_buffers_past_the_limit(
        prefix in prop_oneof![0u32..2048, any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let buf = frames(prefix, &body);
        rt.block_on(async {
            let mut reader = FrameReader::<Msg, _>::new(&buf[..], MAX);
            for _ in 0..8 {
                let r = reader.read().await;
                prop_assert!(reader.buffer_capacity() <= MAX);
                if let Err(FrameError::TooLarge { .. }) = r {
                    prop_assert!(prefix as usize > MAX);
                }
                if !matches!(r, Ok(Some(_))) {
                    break;
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn encoded_frames_round_trip(msg in prop_oneof![
        any::<u64>().prop_map(Msg::Ping),
        ".{0,64}".prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Msg::Blob),
    ]) {
        match encode(&msg, MAX) {
            Ok(frame) => {
                prop_assert!(frame.len() <= MAX + 4);
                prop_assert_eq!(decode::<Msg>(&frame, MAX).expect("own frame decodes"), msg);
            }
            Err(FrameError::TooLarge { len, max }) => prop_assert!(len > max),
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}
