//! A node's disk that a power cut really empties of unsynced writes: an ext4
//! image on a loop device, mounted with a long journal commit interval and
//! `data=writeback`, so what a process wrote without syncing sits in the
//! page cache and not on the device. The cut is a copy of the backing file
//! at that instant (what the device holds); the node restarts on the copy.
//! Unmounted and detached when dropped, also when a test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestCluster;

const IMAGE_BYTES: u64 = 256 << 20;
/// Long enough that no journal commit happens during a test on its own.
const MOUNT_OPTIONS: &str = "data=writeback,commit=600";

pub struct LoopDisk {
    image: PathBuf,
    mount: PathBuf,
    dev: Option<String>,
}

/// Why this machine cannot run the power-loss tests, if it cannot: they
/// need root, loop devices and ext4 tools. Under `CI` a missing capability
/// fails the test instead of skipping it.
pub fn unavailable() -> Option<String> {
    let reason = if !is_root() {
        Some("not root (loop devices and mounts need it)".to_string())
    } else if !Path::new("/dev/loop-control").exists() {
        Some("no /dev/loop-control".to_string())
    } else {
        ["losetup", "mkfs.ext4", "mount", "umount"]
            .into_iter()
            .find(|tool| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .map_or(true, |o| !o.status.success())
            })
            .map(|tool| format!("{tool} is not installed"))
    };
    if let (Some(why), true) = (&reason, std::env::var_os("CI").is_some()) {
        panic!("the power-loss test cannot run here: {why}");
    }
    reason
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

impl LoopDisk {
    /// A fresh ext4 filesystem in `image`, mounted at `mount`.
    pub fn create(image: PathBuf, mount: PathBuf) -> LoopDisk {
        LoopDisk::create_sized(image, mount, IMAGE_BYTES)
    }

    /// As [`LoopDisk::create`], `bytes` large (a small one fills up).
    pub fn create_sized(image: PathBuf, mount: PathBuf, bytes: u64) -> LoopDisk {
        let file = std::fs::File::create(&image).expect("create the image");
        file.set_len(bytes).expect("size the image");
        drop(file);
        run("mkfs.ext4", &["-q", "-F", path(&image)]);
        std::fs::create_dir_all(&mount).expect("create the mount point");
        let mut disk = LoopDisk {
            image,
            mount,
            dev: None,
        };
        disk.attach_and_mount();
        disk
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    fn attach_and_mount(&mut self) {
        assert!(self.dev.is_none(), "already attached");
        let dev = run("losetup", &["--find", "--show", path(&self.image)]);
        self.dev = Some(dev.clone());
        run(
            "mount",
            &["-t", "ext4", "-o", MOUNT_OPTIONS, &dev, path(&self.mount)],
        );
    }

    /// The power cut: `to` becomes what the device holds right now.
    /// Whatever the filesystem has not written back (unsynced data, and
    /// metadata not yet committed to the journal) is not in it.
    pub fn cut(&self, to: &Path) {
        run("cp", &["--sparse=always", path(&self.image), path(to)]);
    }

    /// After the node's process is gone: detach, put the cut image in place
    /// of the disk, and mount it (ext4 replays its journal, as after a real
    /// power loss).
    pub fn restore(&mut self, cut: &Path) {
        self.unmount();
        std::fs::rename(cut, &self.image).expect("put the cut image in place");
        self.attach_and_mount();
    }

    /// A healthy, larger disk with the same files: the full one grown to
    /// `bytes` (the node's process must be gone).
    pub fn grow(&mut self, bytes: u64) {
        self.unmount();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .expect("open the image");
        file.set_len(bytes).expect("grow the image");
        drop(file);
        // 1 means it corrected something: still a usable filesystem.
        let fsck = Command::new("e2fsck")
            .args(["-f", "-y", path(&self.image)])
            .output()
            .expect("run e2fsck");
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck failed: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        run("resize2fs", &[path(&self.image)]);
        self.attach_and_mount();
    }

    fn unmount(&mut self) {
        if let Some(dev) = self.dev.take() {
            run("umount", &[path(&self.mount)]);
            run("losetup", &["-d", &dev]);
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if let Some(dev) = self.dev.take() {
            // Lazy: a process still holding a file must not leave the
            // mount behind; errors are ignored, there is nothing else to do.
            let _ = Command::new("umount")
                .args(["-l", path(&self.mount)])
                .status();
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
    }
}

/// A power cut of the nodes `ids`: the disk of each (where `disks` has
/// one) is copied into `dir` as its device holds it, then the nodes are
/// SIGKILLed and restarted on the copies. Stop the nodes first if they may
/// still be answering (a node must not answer for a write the copy lacks).
pub fn power_cut(
    cluster: &mut TestCluster,
    disks: &mut BTreeMap<u64, LoopDisk>,
    dir: &Path,
    ids: &[u64],
) {
    power_cut_then(cluster, disks, dir, ids, |_, _| {});
}

/// [`power_cut`], with `inspect(id, mount point)` called for each cut disk
/// once it holds what survived and before its node restarts.
pub fn power_cut_then(
    cluster: &mut TestCluster,
    disks: &mut BTreeMap<u64, LoopDisk>,
    dir: &Path,
    ids: &[u64],
    mut inspect: impl FnMut(u64, &Path),
) {
    let cuts: Vec<(u64, PathBuf)> = ids
        .iter()
        .filter_map(|&id| {
            let disk = disks.get(&id)?;
            let to = dir.join(format!("node-{id}.cut"));
            disk.cut(&to);
            Some((id, to))
        })
        .collect();
    for &id in ids {
        cluster.kill_node(id);
    }
    for (id, cut) in &cuts {
        let disk = disks.get_mut(id).expect("disk");
        disk.restore(cut);
        inspect(*id, disk.mount_point());
    }
    for &id in ids {
        cluster.start_node(id);
    }
}
