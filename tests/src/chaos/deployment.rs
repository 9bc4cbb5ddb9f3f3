//! What a chaos run faults: one dev server, or a coordinator with three shard servers,
//! each node with its data dir (a tmpfs where the test could mount one) and a log file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strata_proto::v1 as pb;

use super::faults::{panics_in, Tmpfs};
use crate::cluster::{settled, wait_status, CoordinatorProcess, ShardProcess, SETTLE_DEADLINE};
use crate::DevServer;

/// Size of a tmpfs data dir: room for the run's checkpoints, small enough to fill fast.
const TMPFS_SIZE: &str = "16m";
/// Flags that keep a node's start cheap (no row memory reserve, no re-execution).
const NODE_FLAGS: &[&str] = &["--memory-reserve", "0", "--huge-pages", "false"];
/// Shard servers of the cluster.
pub const CLUSTER_NODES: usize = 3;

/// The processes under test.
enum Processes {
    Dev(DevServer),
    Cluster {
        coordinator: CoordinatorProcess,
        shards: Vec<ShardProcess>,
    },
}

/// A dev server or a cluster, with the directories and mounts it lives in.
pub struct Deployment {
    // Fields drop in order: processes, then mounts, then the directories.
    processes: Processes,
    address: String,
    data_dirs: Vec<PathBuf>,
    logs: Vec<PathBuf>,
    tmpfs: Vec<Option<Tmpfs>>,
    _root: tempfile::TempDir,
}

impl Deployment {
    /// A dev server whose data dir is a tmpfs (when one can be mounted).
    pub fn dev() -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let data = root.path().join("dev-data");
        let tmpfs = Tmpfs::mount(&data, TMPFS_SIZE);
        let log = root.path().join("dev.log");
        let mut flags = NODE_FLAGS.to_vec();
        flags.extend(["--shards", "4"]);
        let server = DevServer::launch("127.0.0.1:0", &data, &flags, Some(&log))?;
        Ok(Self {
            address: server.address.clone(),
            processes: Processes::Dev(server),
            data_dirs: vec![data],
            logs: vec![log],
            tmpfs: vec![tmpfs],
            _root: root,
        })
    }

    /// A coordinator (heartbeat timeout 2 s) and [`CLUSTER_NODES`] shard servers, the
    /// first with a tmpfs data dir (when one can be mounted), settled.
    pub async fn cluster() -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let coordinator_log = root.path().join("coordinator.log");
        let coordinator = CoordinatorProcess::start_logged(
            "127.0.0.1:0",
            &root.path().join("coordinator"),
            &["--heartbeat-timeout", "2s", "--shards", "6"],
            &coordinator_log,
        )?;
        let mut logs = vec![coordinator_log];
        let mut data_dirs = Vec::new();
        let mut tmpfs = Vec::new();
        let mut shards = Vec::new();
        for i in 0..CLUSTER_NODES {
            let data = root.path().join(format!("shard-{i}"));
            tmpfs.push(if i == 0 {
                Tmpfs::mount(&data, TMPFS_SIZE)
            } else {
                None
            });
            let log = root.path().join(format!("shard-{i}.log"));
            shards.push(ShardProcess::launch(
                coordinator.address(),
                &data,
                NODE_FLAGS,
                Some(&log),
            )?);
            data_dirs.push(data);
            logs.push(log);
        }
        let address = coordinator.address().to_string();
        let dep = Self {
            processes: Processes::Cluster {
                coordinator,
                shards,
            },
            address,
            data_dirs,
            logs,
            tmpfs,
            _root: root,
        };
        dep.settle().await?;
        Ok(dep)
    }

    /// Whether this is the cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.processes, Processes::Cluster { .. })
    }

    /// The address clients connect to (the dev server or the coordinator).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Nodes that hold rows.
    pub fn nodes(&self) -> usize {
        self.data_dirs.len()
    }

    /// Nodes whose data dir is a tmpfs: the first `disk_nodes()` nodes.
    pub fn disk_nodes(&self) -> usize {
        self.tmpfs.iter().take_while(|t| t.is_some()).count()
    }

    /// Data dir of `node`.
    pub fn data_dir(&self, node: usize) -> &Path {
        &self.data_dirs[node]
    }

    /// Process id of `node`.
    pub fn pid(&self, node: usize) -> u32 {
        match &self.processes {
            Processes::Dev(s) => s.pid(),
            Processes::Cluster { shards, .. } => shards[node].0.pid(),
        }
    }

    /// SIGKILLs `node` and waits for it.
    pub fn kill(&mut self, node: usize) {
        match &mut self.processes {
            Processes::Dev(s) => s.kill(),
            Processes::Cluster { shards, .. } => shards[node].kill(),
        }
    }

    /// Starts `node` again from its data dir (a dev server on its old address, a shard
    /// server on a new port; it re-registers under the node id its data dir keeps).
    pub async fn restart(&mut self, node: usize) -> anyhow::Result<()> {
        let data = self.data_dirs[node].clone();
        let log_index = if self.is_cluster() { node + 1 } else { 0 };
        let log = self.logs[log_index].clone();
        match &mut self.processes {
            Processes::Dev(s) => {
                let mut flags = NODE_FLAGS.to_vec();
                flags.extend(["--shards", "4"]);
                // The old port may take a moment to be free again.
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    match DevServer::launch(&self.address, &data, &flags, Some(&log)) {
                        Ok(new) => {
                            *s = new;
                            break;
                        }
                        Err(e) if Instant::now() > deadline => return Err(e),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
            Processes::Cluster {
                coordinator,
                shards,
            } => {
                shards[node] =
                    ShardProcess::launch(coordinator.address(), &data, NODE_FLAGS, Some(&log))?;
            }
        }
        self.settle().await
    }

    /// Waits until every node is up and serves its shards at the current epoch.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let n = self.nodes();
        wait_status(&self.address, SETTLE_DEADLINE, "settled", |s| settled(s, n))
            .await
            .map(|_| ())
    }

    /// Index of the node whose process the status knows as node `id`.
    pub fn node_index(&self, status: &pb::StatusResponse, id: &str) -> Option<usize> {
        match &self.processes {
            Processes::Dev(_) => Some(0),
            Processes::Cluster { shards, .. } => {
                let address = status
                    .nodes
                    .iter()
                    .filter_map(|n| n.node.as_ref())
                    .find(|n| n.id == id)
                    .map(|n| n.address.clone())?;
                shards.iter().position(|p| p.address() == address)
            }
        }
    }

    /// Fails if a process has exited or a log reports a panic.
    pub fn check_health(&mut self) -> anyhow::Result<()> {
        let mut exited = Vec::new();
        match &mut self.processes {
            Processes::Dev(s) => exited.extend(s.exit_status().map(|e| format!("dev: {e}"))),
            Processes::Cluster {
                coordinator,
                shards,
            } => {
                exited.extend(
                    coordinator
                        .0
                        .exit_status()
                        .map(|e| format!("coordinator: {e}")),
                );
                for (i, s) in shards.iter_mut().enumerate() {
                    exited.extend(s.0.exit_status().map(|e| format!("shard {i}: {e}")));
                }
            }
        }
        let panics: Vec<String> = self
            .logs
            .iter()
            .flat_map(|l| {
                panics_in(l)
                    .into_iter()
                    .map(move |p| format!("{}: {p}", l.display()))
            })
            .collect();
        if !exited.is_empty() || !panics.is_empty() {
            bail!("processes exited: {exited:?}; panics: {panics:#?}");
        }
        Ok(())
    }

    /// The last `lines` lines of every log, for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log)
                .with_context(|| log.display().to_string())
                .unwrap_or_else(|e| e.to_string());
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ---\n", log.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}
