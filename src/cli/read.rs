use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;
use paxlog_storage::Index;

use paxlog::client::Delivery;
use paxlog::proto::Entry;

use super::args::{render_value, ClientArgs};

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// First index to print.
    #[arg(long, default_value_t = 1)]
    pub from: Index,
    /// Last index to print (default: the chosen index).
    #[arg(long)]
    pub to: Option<Index>,
    /// Print values as hex.
    #[arg(long)]
    pub hex: bool,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// First index to print (default: after the linearizable tail, i.e. only new entries
    /// with --follow, or the last entry without it).
    #[arg(long)]
    pub from: Option<Index>,
    /// Keep printing entries as they are chosen, until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Print values as hex.
    #[arg(long)]
    pub hex: bool,
}

pub async fn run_read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let entries = client.read(args.from, args.to).await?;
    print_entries(&entries, args.hex)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let from = match args.from {
        Some(from) => from,
        None => {
            let (tail, _) = client.tail().await?;
            if args.follow {
                tail + 1
            } else {
                tail.max(1)
            }
        }
    };
    if !args.follow {
        let entries = client.read(from, None).await?;
        print_entries(&entries, args.hex)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stream = client.subscribe(from);
    tokio::pin!(stream);
    let stop = super::serve::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            item = stream.next() => match item {
                Some(Ok(Delivery::Entry(entry))) => print_entries(&[entry], args.hex)?,
                // The trimmed prefix is in a snapshot: say where it is, go on after it.
                Some(Ok(Delivery::Snapshot(meta))) => eprintln!(
                    "entries up to {} are trimmed; they are in the snapshot at index {} \
                     ({} bytes; `paxlog snapshot get`)",
                    meta.index, meta.index, meta.size_bytes
                ),
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(ExitCode::SUCCESS),
            }
        }
    }
}

fn print_entries(entries: &[Entry], hex: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for entry in entries {
        writeln!(
            out,
            "{}\t{}",
            entry.index,
            render_value(&entry.payload, hex)
        )?;
    }
    out.flush()
}
