use std::process::ExitCode;

use paxlog_storage::Index;

use super::args::ClientArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Trim every index up to and including this one: at most the last
    /// chosen index and the newest published snapshot (`paxlog snapshot
    /// list`); anything above is refused and nothing is trimmed.
    #[arg(long)]
    pub upto: Index,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.client.connect()?;
    let index = client.trim(args.upto).await?;
    outln!("trim up to {} chosen at index {index}", args.upto);
    Ok(ExitCode::SUCCESS)
}
