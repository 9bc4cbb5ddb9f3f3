//! The faults of a chaos schedule, done to real processes and files: signals, a tmpfs data
//! dir (mounted by the test, unmounted on drop), ballast that fills it, truncated checkpoint
//! files; and the scan of server logs for panics.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Sends `signal` (e.g. `STOP`, `CONT`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let out = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .context("running kill")?;
    if !out.status.success() {
        bail!(
            "kill -{signal} {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A process stopped with SIGSTOP; SIGCONT on drop (also when the test fails meanwhile).
pub struct Stopped(u32);

impl Stopped {
    /// Stops `pid`.
    pub fn stop(pid: u32) -> anyhow::Result<Self> {
        signal(pid, "STOP")?;
        Ok(Self(pid))
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Err(e) = signal(self.0, "CONT") {
            eprintln!("chaos: {e}");
        }
    }
}

/// A tmpfs mounted on a directory; unmounted on drop.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16m`) on `dir` (created); `None`, said on stderr,
    /// when mounting is not allowed here.
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!(
                "chaos: cannot create {}: {e}; disk-full steps skipped",
                dir.display()
            );
            return None;
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "chaos: cannot mount a tmpfs on {} ({}); disk-full steps skipped",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("chaos: cannot run mount ({e}); disk-full steps skipped");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process that has not exited yet): detach it now.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Most ballast written to fill a disk.
const MAX_BALLAST: u64 = 1 << 30;

/// Fills the file system of `dir` with a ballast file until a write fails for lack of
/// space; returns the file. Fails if the disk does not fill within [`MAX_BALLAST`].
pub fn fill(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("chaos-ballast");
    let mut f = std::fs::File::create(&path).context("creating ballast")?;
    let chunk = vec![0x5Au8; 64 << 10];
    let mut written = 0u64;
    while written < MAX_BALLAST {
        // A write that runs out of room is cut short; the next one fails with ENOSPC.
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => return Err(e).context("writing ballast"),
        }
    }
    if written >= MAX_BALLAST {
        bail!("{} did not fill within {MAX_BALLAST} bytes", dir.display());
    }
    Ok(path)
}

/// The newest committed node checkpoint under `data_dir` (`checkpoints/ckpt-N`).
pub fn newest_checkpoint(data_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data_dir.join("checkpoints"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ckpt-") && !n.contains('.'))
        })
        .max()
}

/// Truncates one file of checkpoint `dir` (a data file or the manifest, chosen by
/// `choice`) to half its length; returns which.
pub fn truncate_checkpoint(dir: &Path, choice: u64) -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no files", dir.display());
    }
    let file = &files[(choice % files.len() as u64) as usize];
    let len = std::fs::metadata(file)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)?
        .set_len(len / 2)?;
    Ok(format!(
        "{} cut from {len} to {} bytes",
        file.display(),
        len / 2
    ))
}

/// Lines of `log` that report a panic.
pub fn panics_in(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("panicked"))
        .map(str::to_string)
        .collect()
}
