//! Crash-test child: writes synced batches forever (until `batches_max`),
//! printing `ACK n` after batch `n` is durable. The parent SIGKILLs it.
//!
//! Usage: `paxlog-storage-crashchild <dir> [batches_max]`

mod batch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use paxlog_storage::{RocksStore, Store};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: paxlog-storage-crashchild <dir> [batches_max]");
        return ExitCode::from(2);
    };
    let batches_max: u64 = match args.next().map(|s| s.parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("batches_max: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match RocksStore::open(&dir, batch::identity()) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("open {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    // Resume after the last durable batch.
    let next = store.metadata().chosen_index / batch::ENTRIES_PER_BATCH;
    let mut stdout = std::io::stdout().lock();
    for n in next..next.saturating_add(batches_max) {
        if let Err(e) = store.write(&batch::batch(n)) {
            eprintln!("write batch {n}: {e}");
            return ExitCode::FAILURE;
        }
        if writeln!(stdout, "ACK {n}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The parent went away; nothing left to tell.
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
