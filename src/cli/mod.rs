//! The `paxlog` command line: one file per subcommand.

/// `println!` that returns the error instead of panicking when stdout is
/// closed (`paxlog status | head`); `main` then ends quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod append;
mod args;
mod certs;
mod check;
mod dev;
mod hold;
mod members;
mod read;
pub mod serve;
mod snapshot;
mod status;
mod trim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "paxlog",
    version,
    about = "A Multi-Paxos replicated log over QUIC and RocksDB"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Generate a cluster CA, node certificates and client certificates.
    Certs(certs::Args),
    /// Run one node.
    Serve(serve::Args),
    /// Start a local cluster (certificates, nodes as child processes) and show it working.
    Dev(dev::Args),
    /// Append values (arguments, or one per line from stdin); prints each chosen index.
    Append(append::Args),
    /// Print chosen entries from --from to --to as INDEX<TAB>VALUE.
    Read(read::ReadArgs),
    /// Print chosen entries from --from on; with --follow, keep printing new ones.
    Tail(read::TailArgs),
    /// Show every node's role, ballot, chosen index, last index, trim point and peer lag.
    Status(status::Args),
    /// Trim the log up to and including an index, never past the newest snapshot (replicated).
    Trim(trim::Args),
    /// List and change the cluster's members (add, promote, remove, replace).
    Members(members::Args),
    /// The application's snapshots: list, get (fetch the newest), publish.
    Snapshot(snapshot::Args),
    /// Retention holds (set, release, list): keep the log above an index from being trimmed.
    Hold(hold::Args),
    /// Verdicts for scripts: `health` (reachable, one leader, lag, fsync) and `perf` (a short load).
    Check(check::Args),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Certs(args) => certs::run(args),
        Cmd::Serve(args) => serve::run(args).await,
        Cmd::Dev(args) => dev::run(args).await,
        Cmd::Append(args) => append::run(args).await,
        Cmd::Read(args) => read::run_read(args).await,
        Cmd::Tail(args) => read::run_tail(args).await,
        Cmd::Status(args) => status::run(args).await,
        Cmd::Trim(args) => trim::run(args).await,
        Cmd::Members(args) => members::run(args).await,
        Cmd::Snapshot(args) => snapshot::run(args).await,
        Cmd::Hold(args) => hold::run(args).await,
        Cmd::Check(args) => check::run(args).await,
    }
}
