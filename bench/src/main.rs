//! paxlog-bench: paxlog against Raft implementations, side by side, on one
//! machine, in one run, with fsync before every acknowledgement.
//!
//! `cargo run --release -p paxlog-bench -- --quick --out DIR` starts each
//! system as three processes on loopback, drives it with the load generator
//! (`load.rs`) and writes `DIR/results.{json,md}` and SVG plots.

mod etcd;
mod floor;
mod limits;
mod load;
mod paxlog_embedded;
mod paxlog_sys;
mod procs;
mod procstat;
mod raft;
mod report;
mod run;
mod system;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "paxlog-bench",
    about = "Benchmark paxlog against openraft, etcd and the hardware floor",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    node: Option<NodeCmd>,
    #[command(flatten)]
    run: run::RunArgs,
}

/// Node roles the benchmark runs as separate processes of its own binary.
#[derive(Debug, Subcommand)]
enum NodeCmd {
    #[command(hide = true)]
    RaftNode(raft::NodeArgs),
    #[command(hide = true)]
    FloorNode(floor::NodeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.node {
        Some(NodeCmd::RaftNode(args)) => raft::node_main(args),
        Some(NodeCmd::FloorNode(args)) => floor::node_main(args),
        None => run::main(cli.run),
    }
}
