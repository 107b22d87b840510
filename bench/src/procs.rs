//! Node processes of a benchmarked cluster: spawned with `kill_on_drop`,
//! output to files, stopped with SIGTERM and then SIGKILL after a bound.

use std::path::Path;
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
    children: Vec<Child>,
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
        self.children.push(child);
        Ok(pid)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// The first node (1-based) whose process already exited, with its status.
    pub fn exited(&mut self) -> anyhow::Result<Option<(usize, std::process::ExitStatus)>> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                return Ok(Some((i + 1, status)));
            }
        }
        Ok(None)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        for child in &self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // Already gone is fine: the wait below reports it.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for child in &mut self.children {
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
