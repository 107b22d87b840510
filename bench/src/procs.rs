//! Node processes of a benchmarked cluster: spawned with `kill_on_drop`,
//! output to files, stopped with SIGTERM and then SIGKILL after a bound.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a node gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Procs {
    /// Each node's process and the file its output goes to.
    children: Vec<(Child, PathBuf)>,
}

impl Procs {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(&mut self, mut cmd: Command, log: &Path) -> anyhow::Result<u32> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
        let pid = child.id().context("a just-spawned child has no pid")?;
        self.children.push((child, log.to_path_buf()));
        Ok(pid)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|(c, _)| c.id()).collect()
    }

    /// Fails, quoting its log, if a node process already exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (child, log) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let output = std::fs::read_to_string(&*log).unwrap_or_default();
                anyhow::bail!("a node exited ({status}): {}", output.trim());
            }
        }
        Ok(())
    }

    /// Runs `probe` every `retry_every` until it gives `Some`, for at most
    /// `timeout` (the bound includes a probe that hangs). Fails at once when a
    /// node process exits: a node that died at start would otherwise look
    /// like a slow election. `Err` from the probe is final.
    pub async fn wait_ready<T, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        retry_every: Duration,
        mut probe: impl FnMut() -> Fut,
    ) -> anyhow::Result<T>
    where
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let attempts = async {
            loop {
                self.check_alive()?;
                if let Some(ready) = probe().await? {
                    return Ok::<T, anyhow::Error>(ready);
                }
                // Polls processes that are starting up; there is no event to wait on.
                tokio::time::sleep(retry_every).await;
            }
        };
        tokio::time::timeout(timeout, attempts)
            .await
            .map_err(|_| anyhow::anyhow!("{what} not ready within {timeout:?}"))?
            .with_context(|| format!("{what} did not start"))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        for (child, _) in &self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // Already gone is fine: the wait below reports it.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for (child, _) in &mut self.children {
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                child.kill().await?;
            }
        }
        Ok(())
    }
}

/// A probe's "not yet": logs why and asks `wait_ready` to try again.
pub fn not_yet<T>(what: &str, result: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
    match result {
        Ok(ready) => Ok(Some(ready)),
        Err(e) => {
            tracing::debug!("{what} not ready yet: {e:#}");
            Ok(None)
        }
    }
}
