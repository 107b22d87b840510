use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;

use super::args::ClientArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Values to append; with none, reads one value per line from stdin.
    pub values: Vec<String>,
    /// Appends in flight at once when reading stdin.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let values: Vec<Bytes> = if args.values.is_empty() {
        let stdin = std::io::stdin();
        let mut values = Vec::new();
        for line in stdin.lock().lines() {
            values.push(Bytes::from(line.context("reading stdin")?));
        }
        values
    } else {
        args.values.into_iter().map(Bytes::from).collect()
    };
    let client = args.client.connect()?;
    let results = client.append_all(values, args.window).await;
    let mut failed = 0usize;
    for result in results {
        match result {
            Ok(index) => outln!("{index}"),
            Err(error) => {
                failed += 1;
                outln!("error");
                eprintln!("append failed: {error}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} value(s) were not acknowledged");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
