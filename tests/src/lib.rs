//! Harness for integration tests: starts real `strata-server` processes on 127.0.0.1 with
//! ephemeral ports and temporary data dirs, and runs the `strata` CLI; or a whole cluster
//! in the test's own process ([`inproc`]).
//!
//! The binaries come from the same target dir as the test (cargo builds them for the
//! packages' own CLI tests).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod browser;
pub mod chaos;
pub mod cluster;
pub mod etcd;
pub mod inproc;
pub mod trainers;

/// How long a server may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A `strata-server dev` process; killed when dropped.
pub struct DevServer {
    child: Child,
    /// gRPC address (`127.0.0.1:PORT`).
    pub address: String,
    /// Metrics address, when asked for.
    pub metrics_address: Option<String>,
    /// Status page address, when asked for with `--http-listen`.
    pub http_address: Option<String>,
    /// Data dir of the process.
    pub data_dir: PathBuf,
}

impl DevServer {
    /// Starts a dev server on an ephemeral port with `data_dir` and extra flags, and
    /// waits until it prints its bound address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch("127.0.0.1:0", data_dir, extra, None)
    }

    /// As [`DevServer::start`], listening on `listen` (e.g. the address of a server that
    /// was killed, so clients find it again), with stderr appended to `log` when given.
    pub fn launch(
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary("strata-server"));
        cmd.arg("dev")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr_to(log)?);
        let mut child = cmd.spawn().context("spawning strata-server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_DEADLINE;
        let mut address = None;
        let mut metrics_address = None;
        let mut http_address = None;
        let wants_metrics = extra.contains(&"--metrics-listen");
        let wants_page = extra.contains(&"--http-listen");
        while address.is_none()
            || (wants_metrics && metrics_address.is_none())
            || (wants_page && http_address.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    bail!("strata-server did not report its address within {START_DEADLINE:?}");
                }
            };
            if let Some(a) = line.strip_prefix("strata-server dev listening on ") {
                address = Some(a.trim().to_string());
            } else if let Some(a) = line.strip_prefix("metrics listening on ") {
                metrics_address = Some(a.trim().to_string());
            } else if let Some(a) = line.strip_prefix(cluster::STATUS_PAGE_LINE) {
                http_address = Some(a.trim().to_string());
            }
        }
        let address = address.context("address")?;
        Ok(Self {
            child,
            address,
            metrics_address,
            http_address,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, if it has (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// A plain gRPC channel to the server, once it answers (for generated clients).
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        self.client().await?;
        Ok(
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))?
                .connect()
                .await?,
        )
    }

    /// Connects a client, retrying until the server answers (bounded).
    pub async fn client(&self) -> anyhow::Result<strata_client::Client> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match strata_client::Client::connect(&self.address).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where a server's stderr goes: appended to `log`, or the test's own stderr.
pub(crate) fn stderr_to(log: Option<&Path>) -> anyhow::Result<Stdio> {
    Ok(match log {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening log {}", path.display()))?
            .into(),
        None => Stdio::inherit(),
    })
}

/// Runs the `strata` CLI against `address`; returns its output.
pub fn cli(address: &str, args: &[&str]) -> Output {
    Command::new(binary("strata"))
        .arg("--coordinator")
        .arg(address)
        .args(args)
        .output()
        .expect("running strata")
}

/// The last line of stdout parsed as JSON.
pub fn last_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Packs ids as little-endian u64 bytes.
pub fn ids_bytes(ids: &[u64]) -> bytes::Bytes {
    ids.iter()
        .flat_map(|i| i.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// Packs f32 values as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> bytes::Bytes {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// Unpacks little-endian f32 bytes.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A table spec with the given optimizer kind and lr, zero-initialized.
pub fn table_spec(name: &str, dim: u32, optimizer: &str, lr: f32) -> strata_proto::v1::TableSpec {
    strata_proto::v1::TableSpec {
        name: name.into(),
        dim,
        optimizer: Some(strata_proto::v1::OptimizerSpec {
            kind: optimizer.into(),
            lr: Some(lr),
            ..Default::default()
        }),
        initializer: Some(strata_proto::v1::InitializerSpec {
            kind: "zeros".into(),
            scale: 0.0,
        }),
        seed: 1,
        tier: "host".into(),
    }
}
