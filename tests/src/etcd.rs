//! An `etcd` server for tests: loopback ports, a temp data dir, killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long etcd may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running `etcd` process.
pub struct EtcdProcess {
    child: Child,
    /// Client URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

/// Whether an `etcd` binary is on the PATH.
pub fn etcd_installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port (bound, then released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts etcd with its data under `dir` on free loopback ports; `None` (with a printed
    /// note) when etcd is not installed.
    pub fn start(dir: &Path) -> anyhow::Result<Option<Self>> {
        if !etcd_installed() {
            eprintln!("SKIPPED: `etcd` is not installed (apt-get install etcd-server, or run scripts/install-deps.sh)");
            return Ok(None);
        }
        // Parallel tests may be handed the same just-released port; the etcd that loses the
        // bind exits, so try again on fresh ports.
        let mut last = None;
        for _attempt in 0..5 {
            match Self::try_start(dir) {
                Ok(etcd) => return Ok(Some(etcd)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn try_start(dir: &Path) -> anyhow::Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        let url = format!("http://127.0.0.1:{client}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir)
            .args(["--name", "strata-test"])
            .args(["--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("strata-test=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning etcd")?;
        let mut etcd = Self { child, url };
        let deadline = Instant::now() + READY_DEADLINE;
        while TcpStream::connect(("127.0.0.1", client)).is_err() {
            if Instant::now() > deadline {
                etcd.kill();
                bail!(
                    "etcd did not listen on {} within {READY_DEADLINE:?}",
                    etcd.url
                );
            }
            if let Ok(Some(status)) = etcd.child.try_wait() {
                bail!("etcd exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(status)) = etcd.child.try_wait() {
            bail!("etcd exited at start (port taken?): {status}");
        }
        Ok(etcd)
    }

    /// Kills etcd and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
