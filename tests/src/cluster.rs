//! Cluster harness: a coordinator process and shard-server processes on 127.0.0.1, each
//! reporting its bound address on stdout; readiness is polled through `Status` with
//! deadlines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strata_proto::v1 as pb;

use crate::{binary, stderr_to};

/// How long a process may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The line a server prints with its status page address (`--http-listen`).
pub const STATUS_PAGE_LINE: &str = "status page listening on ";
/// How long a cluster may take to settle (nodes registered, maps applied).
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// A running `strata-server` role process; killed when dropped.
pub struct RoleProcess {
    child: Child,
    /// gRPC address (`127.0.0.1:PORT`).
    pub address: String,
    /// Status page address, when asked for with `--http-listen`.
    pub http_address: Option<String>,
    /// `/metrics` address, when started with `--metrics-listen`.
    pub metrics_address: Option<String>,
    /// Data dir of the process.
    pub data_dir: PathBuf,
}

impl RoleProcess {
    /// Starts `strata-server ROLE --listen LISTEN --data-dir DIR EXTRA...` and waits for
    /// its `strata-server ROLE listening on ADDR` line (and its `status page listening on
    /// ADDR` line with `--http-listen`, its `metrics listening on ADDR` line with
    /// `--metrics-listen`); stderr is appended to `log` when given.
    fn start(
        role: &str,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("strata-server"))
            .arg(role)
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr_to(log)?)
            .spawn()
            .context("spawning strata-server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let prefix = format!("strata-server {role} listening on ");
        let wants_page = extra.contains(&"--http-listen");
        let wants_metrics = extra.contains(&"--metrics-listen");
        let deadline = Instant::now() + START_DEADLINE;
        let (mut address, mut http_address, mut metrics_address) = (None, None, None);
        while address.is_none()
            || (wants_page && http_address.is_none())
            || (wants_metrics && metrics_address.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix(&prefix) {
                        address = Some(a.trim().to_string());
                    } else if let Some(a) = line.strip_prefix(STATUS_PAGE_LINE) {
                        http_address = Some(a.trim().to_string());
                    } else if let Some(a) = line.strip_prefix("metrics listening on ") {
                        metrics_address = Some(a.trim().to_string());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "strata-server {role} did not report its addresses within {START_DEADLINE:?}"
                    );
                }
            }
        }
        Ok(Self {
            child,
            address: address.context("address")?,
            http_address,
            metrics_address,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `strata-server coordinator` process.
pub struct CoordinatorProcess(pub RoleProcess);

impl CoordinatorProcess {
    /// Starts a coordinator on `listen` (`127.0.0.1:0` for a free port).
    pub fn start(listen: &str, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        RoleProcess::start("coordinator", listen, data_dir, extra, None).map(Self)
    }

    /// As [`CoordinatorProcess::start`], with stderr appended to `log`.
    pub fn start_logged(
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        log: &Path,
    ) -> anyhow::Result<Self> {
        RoleProcess::start("coordinator", listen, data_dir, extra, Some(log)).map(Self)
    }

    /// Its gRPC address.
    pub fn address(&self) -> &str {
        &self.0.address
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// A `strata-server shard` process.
pub struct ShardProcess(pub RoleProcess);

impl ShardProcess {
    /// Starts a shard server on a free port that registers with `coordinator`.
    pub fn start(coordinator: &str, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(coordinator, data_dir, extra, None)
    }

    /// As [`ShardProcess::start`], with stderr appended to `log` when given.
    pub fn launch(
        coordinator: &str,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--coordinator", coordinator];
        args.extend_from_slice(extra);
        RoleProcess::start("shard", "127.0.0.1:0", data_dir, &args, log).map(Self)
    }

    /// Its gRPC address.
    pub fn address(&self) -> &str {
        &self.0.address
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// Polls the coordinator's `Status` until `ready` holds (bounded by `deadline`).
pub async fn wait_status(
    coordinator: &str,
    deadline: Duration,
    what: &str,
    ready: impl Fn(&pb::StatusResponse) -> bool,
) -> anyhow::Result<pb::StatusResponse> {
    let end = Instant::now() + deadline;
    loop {
        let last = match status(coordinator).await {
            Ok(s) if ready(&s) => return Ok(s),
            Ok(s) => format!("{s:?}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() > end {
            bail!("cluster not {what} within {deadline:?}; last status: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(coordinator: &str) -> anyhow::Result<pb::StatusResponse> {
    let mut client =
        pb::coordinator_client::CoordinatorClient::connect(format!("http://{coordinator}")).await?;
    Ok(client.status(pb::StatusRequest {}).await?.into_inner())
}

/// How many nodes the status shows up.
pub fn up_count(s: &pb::StatusResponse) -> usize {
    s.nodes
        .iter()
        .filter(|n| n.node.as_ref().is_some_and(|x| x.state == "up"))
        .count()
}

/// Whether `n` nodes are up, each serving shards at the current epoch.
pub fn settled(s: &pb::StatusResponse, n: usize) -> bool {
    let up: Vec<_> = s
        .nodes
        .iter()
        .filter(|x| x.node.as_ref().is_some_and(|node| node.state == "up"))
        .collect();
    up.len() == n
        && s.nodes.len() == n
        && up
            .iter()
            .all(|x| x.shards > 0 && x.applied_epoch == s.epoch)
}

/// One coordinator and `n` shard servers, settled.
pub struct Cluster {
    /// The coordinator.
    pub coordinator: CoordinatorProcess,
    /// The shard servers, in start order.
    pub shards: Vec<ShardProcess>,
    /// Root of the data dirs (`coordinator/`, `shard-<i>/`).
    pub root: PathBuf,
}

impl Cluster {
    /// Starts a coordinator (with `coordinator_extra`) and `n` shard servers under `root`,
    /// and waits until every node is up and serves its shards.
    pub async fn start(root: &Path, n: usize, coordinator_extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(root, n, coordinator_extra, &[]).await
    }

    /// As [`Cluster::start`], with `shard_extra` flags for every shard server.
    pub async fn start_with(
        root: &Path,
        n: usize,
        coordinator_extra: &[&str],
        shard_extra: &[&str],
    ) -> anyhow::Result<Self> {
        let coordinator =
            CoordinatorProcess::start("127.0.0.1:0", &root.join("coordinator"), coordinator_extra)?;
        let mut shards = Vec::new();
        for i in 0..n {
            shards.push(ShardProcess::start(
                coordinator.address(),
                &root.join(format!("shard-{i}")),
                shard_extra,
            )?);
        }
        wait_status(coordinator.address(), SETTLE_DEADLINE, "settled", |s| {
            settled(s, n)
        })
        .await?;
        Ok(Self {
            coordinator,
            shards,
            root: root.to_path_buf(),
        })
    }

    /// Connects a client to the coordinator.
    pub async fn client(&self) -> anyhow::Result<strata_client::Client> {
        Ok(strata_client::Client::connect(self.coordinator.address()).await?)
    }

    /// Index in `shards` of the process that the status knows as node `id`.
    pub fn process_of(&self, status: &pb::StatusResponse, id: &str) -> Option<usize> {
        let address = status
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .find(|n| n.id == id)
            .map(|n| n.address.clone())?;
        self.shards.iter().position(|p| p.address() == address)
    }

    /// Kills the coordinator, restarts it on the same address with `restart`, and checks
    /// that map, tables and data survive and that a client connected before carries on (a
    /// table `e` with 200 pushed rows, one more SGD step after, a new table). Returns the
    /// status after the restart.
    pub async fn check_coordinator_restart(
        &mut self,
        restart: impl FnOnce(&str) -> anyhow::Result<CoordinatorProcess>,
    ) -> anyhow::Result<pb::StatusResponse> {
        let client = self.client().await?;
        client
            .create_table(crate::table_spec("e", 4, "sgd", 0.5))
            .await?;
        let ids: Vec<u64> = (0..200).collect();
        client.push("e", &ids, &vec![1.0; ids.len() * 4]).await?;
        let before_rows = client.pull("e", &ids).await?;
        let before = client.status().await?;

        let address = self.coordinator.address().to_string();
        self.coordinator.kill();
        // The data path does not need the coordinator.
        let during = client.pull("e", &ids).await?;
        anyhow::ensure!(
            during == before_rows,
            "rows changed while the coordinator was down"
        );

        self.coordinator = restart(&address)?;
        let after = wait_status(&address, SETTLE_DEADLINE, "settled after restart", |s| {
            settled(s, 3) && s.tables.first().is_some_and(|t| t.rows == 200)
        })
        .await?;
        anyhow::ensure!(layout(&after) == layout(&before), "placement changed");
        anyhow::ensure!(after.epoch >= before.epoch, "the epoch went back");
        let names: Vec<_> = after
            .tables
            .iter()
            .filter_map(|t| t.spec.as_ref().map(|s| s.name.clone()))
            .collect();
        anyhow::ensure!(
            names == vec!["e".to_string()],
            "tables after restart: {names:?}"
        );

        // The same client carries on: data and control plane.
        client.push("e", &ids, &vec![1.0; ids.len() * 4]).await?;
        let rows = client.pull("e", &ids).await?;
        for (a, b) in rows.iter().zip(&before_rows) {
            anyhow::ensure!(
                *a == b - 0.5,
                "not one more SGD step of lr 0.5: {a} after {b}"
            );
        }
        client
            .create_table(crate::table_spec("f", 2, "adagrad", 0.1))
            .await?;
        anyhow::ensure!(client.pull("f", &[1, 2]).await?.len() == 4, "pull of f");
        Ok(after)
    }
}

/// Shard ranges and primaries (the live row counts in status are not part of placement).
pub fn layout(s: &pb::StatusResponse) -> Vec<(u32, u32, u32, String)> {
    s.shards
        .iter()
        .map(|sh| (sh.id, sh.slot_start, sh.slot_end, sh.primary.clone()))
        .collect()
}

/// Waits until plan `id` is no longer running (bounded) and returns the last status.
pub async fn wait_plan(
    coordinator: &str,
    id: &str,
    deadline: Duration,
) -> anyhow::Result<pb::StatusResponse> {
    wait_status(coordinator, deadline, &format!("done with {id}"), |s| {
        s.plan
            .as_ref()
            .is_some_and(|p| p.id == id && p.state != "running")
    })
    .await
}

/// Starts a plan (made by the coordinator for the current layout) and returns its id.
pub async fn apply(
    client: &strata_client::Client,
    plan_json: String,
    rate: u64,
) -> anyhow::Result<String> {
    let started = client
        .apply_plan(pb::ApplyPlanRequest {
            plan_json,
            max_bytes_per_s: rate,
            max_parallel: 2,
        })
        .await?;
    Ok(started.plan_id)
}

/// Resizes to `count` shards and waits for the plan; fails unless it is done.
pub async fn resize(
    client: &strata_client::Client,
    coordinator: &str,
    count: u32,
) -> anyhow::Result<pb::StatusResponse> {
    let r = client
        .resize_shards(pb::ResizeShardsRequest {
            count,
            dry_run: false,
            ..Default::default()
        })
        .await?;
    finished(coordinator, &r.plan_id).await
}

/// Waits for plan `id` and fails unless it is done.
pub async fn finished(coordinator: &str, id: &str) -> anyhow::Result<pb::StatusResponse> {
    let s = wait_plan(coordinator, id, Duration::from_secs(120)).await?;
    let plan = s.plan.clone().unwrap_or_default();
    anyhow::ensure!(
        plan.state == "done",
        "plan {id} ended {}: {}",
        plan.state,
        plan.error
    );
    Ok(s)
}
