//! The floor's nodes as threads of the test process: commit order, the
//! majority rule, frame rejection, flag validation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;

use super::*;

const PAYLOAD_MAX: usize = 64;
const LIMITS: BatchLimits = BatchLimits {
    count_max: 8,
    bytes_max: 256,
};
const BODY_MAX: usize = wire::BATCH_HEADER_BYTES + 8 * wire::LEN_BYTES + 256;

/// Starts two followers and a leader as threads; returns the client address.
fn spawn_floor(dir: &Path) -> SocketAddr {
    let addrs = free_addrs(3).expect("free ports");
    for (id, &listen) in [2u64, 3].iter().zip(&addrs[1..]) {
        let log = open_log(&dir.join(format!("node-{id}.wal"))).expect("follower log");
        std::thread::spawn(move || {
            follower::run(follower::FollowerConfig {
                listen,
                log,
                batch_body_bytes_max: BODY_MAX,
            })
        });
    }
    let log = open_log(&dir.join("node-1.wal")).expect("leader log");
    let cfg = leader::LeaderConfig {
        listen: addrs[0],
        followers: addrs[1..].to_vec(),
        log,
        payload_bytes_max: PAYLOAD_MAX,
        batch: LIMITS,
        connections_max: 64,
    };
    std::thread::spawn(move || leader::run(cfg));
    addrs[0]
}

/// Connects once the leader listens (it binds after reaching its followers).
fn connect(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "leader never listened: {e}");
                // Polls threads that are starting up.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn append(conn: &mut TcpStream, payload: &[u8]) -> std::io::Result<u64> {
    let mut frame = Vec::new();
    wire::encode_frame_into(&mut frame, payload);
    conn.write_all(&frame)?;
    let mut index = [0u8; 8];
    conn.read_exact(&mut index)?;
    Ok(u64::from_be_bytes(index))
}

/// Every entry in a log file, in order, as (index, payload).
fn read_log(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read log");
    let mut r = &bytes[..];
    let mut buf = Vec::new();
    let mut entries = Vec::new();
    loop {
        match wire::read_frame_into(&mut r, &mut buf, BODY_MAX) {
            Ok(()) => {}
            Err(wire::FrameError::Closed) => return entries,
            Err(e) => panic!("torn log {}: {e}", path.display()),
        }
        let span = wire::decode_batch(&buf[wire::LEN_BYTES..]).expect("valid record");
        let mut rest = &buf[wire::LEN_BYTES + wire::BATCH_HEADER_BYTES..];
        for index in span.first..=span.last {
            let payload = wire::read_frame(&mut rest, BODY_MAX).expect("entry");
            entries.push((index, payload));
        }
    }
}

#[test]
fn concurrent_appends_commit_in_order_on_a_majority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = spawn_floor(dir.path());
    const CLIENTS: usize = 6;
    const APPENDS: usize = 25;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                let mut got = Vec::new();
                for i in 0..APPENDS {
                    let payload = format!("c{c}-{i}").into_bytes();
                    let index = append(&mut conn, &payload).expect("append");
                    got.push((index, payload));
                }
                got
            })
        })
        .collect();
    let mut acked: Vec<(u64, Vec<u8>)> = clients
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    acked.sort();
    let indices: Vec<u64> = acked.iter().map(|(i, _)| *i).collect();
    let expected: Vec<u64> = (1..=(CLIENTS * APPENDS) as u64).collect();
    assert_eq!(
        indices, expected,
        "every append gets its own index, no gaps"
    );

    // Acknowledged means synced on the leader and on at least one follower.
    assert_eq!(read_log(&dir.path().join("node-1.wal")), acked);
    let followers: Vec<_> = [2, 3]
        .iter()
        .map(|id| read_log(&dir.path().join(format!("node-{id}.wal"))))
        .collect();
    assert!(
        followers.contains(&acked),
        "no follower holds every acknowledged entry"
    );
    for f in &followers {
        assert_eq!(
            f[..],
            acked[..f.len()],
            "a follower's log is a prefix of the leader's"
        );
    }
}

#[test]
fn oversized_frame_closes_only_its_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = spawn_floor(dir.path());
    let mut good = connect(addr);
    assert_eq!(append(&mut good, b"before").expect("first append"), 1);

    let mut bad = connect(addr);
    let err = append(&mut bad, &[0u8; PAYLOAD_MAX + 1]);
    assert!(
        err.is_err(),
        "an oversized frame must not be acknowledged: {err:?}"
    );

    let mut at_limit = connect(addr);
    assert_eq!(
        append(&mut at_limit, &[1u8; PAYLOAD_MAX]).expect("at the limit"),
        2
    );
    assert_eq!(
        append(&mut good, b"after").expect("good connection lives"),
        3
    );
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn parse(args: &str) -> NodeArgs {
    let argv = std::iter::once("floor-node").chain(args.split_whitespace());
    Cli::try_parse_from(argv).expect("flags parse").node
}

#[test]
fn node_flags_are_validated() {
    let leader = "--id 1 --listen 127.0.0.1:1 --log x --followers 127.0.0.1:2,127.0.0.1:3";
    assert_eq!(parse(leader).validate(), Ok(()));
    assert_eq!(
        parse("--id 2 --listen 127.0.0.1:1 --log x").validate(),
        Ok(())
    );
    assert_eq!(
        parse("--id 4 --listen 127.0.0.1:1 --log x").validate(),
        Err(ConfigError::BadId(4))
    );
    assert_eq!(
        parse("--id 1 --listen 127.0.0.1:1 --log x --followers 127.0.0.1:2").validate(),
        Err(ConfigError::FollowerCount(1))
    );
    assert_eq!(
        parse("--id 3 --listen 127.0.0.1:1 --log x --followers 127.0.0.1:2").validate(),
        Err(ConfigError::FollowersOnFollower)
    );
    assert_eq!(
        parse(&format!("{leader} --batch-count-max 0")).validate(),
        Err(ConfigError::ZeroBound)
    );
    assert_eq!(
        parse(&format!(
            "{leader} --payload-bytes-max 10 --batch-bytes-max 9"
        ))
        .validate(),
        Err(ConfigError::BatchBelowPayload {
            batch: 9,
            payload: 10
        })
    );
    assert!(matches!(
        parse(&format!(
            "{leader} --payload-bytes-max 1 --batch-bytes-max 4294967295"
        ))
        .validate(),
        Err(ConfigError::BatchTooLarge(_))
    ));
}
