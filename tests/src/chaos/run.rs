//! The chaos driver: runs seeded schedules against a deployment under pushes and, after
//! each, checks the rows against the oracle, every failure a client saw against the
//! documented statuses, and every process for exits and panics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use strata_client::Client;

use super::deployment::Deployment;
use super::faults::{fill, newest_checkpoint, truncate_checkpoint, Stopped};
use super::oracle::{check_pusher, Outcome, Rows};
use super::pushers::{PushLog, PusherSpec, Pushers};
use super::schedule::{first_steps, schedule, Shape, Step};
use super::statuses::{self, seen, Seen};
use super::{ChaosConfig, Rng};

/// The table every pusher pushes to (SGD, lr 1, zeros).
const TABLE: &str = "chaos";
/// Its row width.
const DIM: usize = 4;
/// Rows each pusher owns.
const POOL: usize = 64;
/// Slots of the cluster (the coordinator's default).
const NUM_SLOTS: u64 = 4096;
/// Longest wait for something a step expects (a push acknowledged, a call answered).
const STEP_DEADLINE: Duration = Duration::from_secs(20);

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Schedules run and checked.
    pub schedules: usize,
    /// Steps run, by kind.
    pub steps: BTreeMap<&'static str, usize>,
    /// Pushes acknowledged.
    pub acked: usize,
    /// Acknowledged pushes a crash took back, as the durability settings allow.
    pub rolled_back: usize,
    /// Documented failures clients saw.
    pub failures: usize,
}

/// A checkpoint acknowledged during a schedule.
struct Acked {
    /// Pushes each pusher had finished when it was asked for.
    floor: Vec<usize>,
    /// Each node's newest checkpoint dir once it was acknowledged.
    dirs: Vec<Option<PathBuf>>,
}

/// The crash that ended a schedule.
struct Crash {
    node: usize,
    /// The checkpoint dir truncated while the node was down.
    truncated: Option<PathBuf>,
}

/// The fixed parts of a run.
struct Run<'a> {
    name: &'a str,
    client: Client,
    spec: PusherSpec,
    pools: Vec<Vec<u64>>,
    /// The node each pusher's rows live on.
    owners: Vec<usize>,
}

/// Runs schedules against `dep` until `config`'s budget is spent; fails on the first
/// schedule whose check fails, naming the seed, the schedule and its steps.
pub async fn run(name: &str, mut dep: Deployment, config: ChaosConfig) -> anyhow::Result<Summary> {
    eprintln!(
        "chaos {name}: seed {} (replay with STRATA_CHAOS_SEED={} STRATA_CHAOS_SECONDS={})",
        config.seed,
        config.seed,
        config.budget.as_secs()
    );
    let client = Client::connect(dep.address()).await?;
    client
        .create_table(crate::table_spec(TABLE, DIM as u32, "sgd", 1.0))
        .await?;
    let pushers = if dep.is_cluster() { 6 } else { 4 };
    let (pools, owners) = pools(&dep, &client, pushers).await?;
    let run = Run {
        name,
        client,
        spec: PusherSpec {
            table: TABLE.into(),
            dim: DIM,
            batch: 8,
            pause: Duration::from_millis(5),
            call_timeout: Duration::from_secs(60),
            max_time: Duration::from_secs(300),
            max_steps: 1_000_000,
        },
        pools,
        owners,
    };
    let mut base: Rows = run
        .pools
        .iter()
        .flatten()
        .map(|&id| (id, vec![0.0; DIM]))
        .collect();
    let mut rng = Rng::new(config.seed);
    let shape = Shape {
        nodes: dep.nodes(),
        disk_nodes: dep.disk_nodes(),
    };
    let first = first_steps(shape, &mut rng);
    let began = Instant::now();
    let mut summary = Summary::default();
    for index in 0..config.max_schedules {
        // The coverage schedules always run; random ones while the budget lasts.
        if index >= first.len() && began.elapsed() > config.budget {
            break;
        }
        let steps = schedule(index, shape, &mut rng, &first);
        eprintln!("chaos {name} schedule {index}: {steps:?}");
        if let Err(e) = run
            .schedule(&mut dep, &steps, &mut base, &mut rng, &mut summary)
            .await
        {
            bail!(
                "chaos {name}, seed {}, schedule {index} {steps:?}: {e:#}\n{}",
                config.seed,
                dep.log_tails(30)
            );
        }
        summary.schedules += 1;
    }
    eprintln!(
        "chaos {name}: {} schedules in {:?}: {summary:?}",
        summary.schedules,
        began.elapsed()
    );
    Ok(summary)
}

/// `pushers` pools of [`POOL`] ids, pusher `t`'s on node `t mod nodes`, and the owners.
async fn pools(
    dep: &Deployment,
    client: &Client,
    pushers: usize,
) -> anyhow::Result<(Vec<Vec<u64>>, Vec<usize>)> {
    let status = client.status().await?;
    let owner = |id: u64| {
        let slot = (strata_client::routing::splitmix64(id) % NUM_SLOTS) as u32;
        let shard = status
            .shards
            .iter()
            .find(|s| s.slot_start <= slot && slot < s.slot_end)?;
        dep.node_index(&status, &shard.primary)
    };
    let mut pools = Vec::new();
    let mut owners = Vec::new();
    for t in 0..pushers {
        let node = t % dep.nodes();
        let pool: Vec<u64> = (0..(POOL * 64) as u64)
            .map(|k| ((t as u64) << 32) | k)
            .filter(|&id| owner(id) == Some(node))
            .take(POOL)
            .collect();
        ensure!(pool.len() == POOL, "too few ids on node {node}");
        pools.push(pool);
        owners.push(node);
    }
    Ok((pools, owners))
}

/// Each node's newest checkpoint dir.
fn newest_dirs(dep: &Deployment) -> Vec<Option<PathBuf>> {
    (0..dep.nodes())
        .map(|n| newest_checkpoint(dep.data_dir(n)))
        .collect()
}

/// The fewest pushes of pusher `t` a node restarted after `crash` must still hold: those
/// finished before the newest acknowledged checkpoint it can fall back to was asked for.
fn floor_after(acked: &[Acked], crash: &Crash, t: usize) -> usize {
    acked
        .iter()
        .rev()
        .find(|a| match &crash.truncated {
            None => true,
            Some(cut) => a.dirs[crash.node].as_ref().is_some_and(|d| d < cut),
        })
        .map_or(0, |a| a.floor[t])
}

/// A ballast file, removed on drop.
struct Ballast(PathBuf);

impl Drop for Ballast {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Run<'_> {
    /// A checkpoint with nothing faulted; in a cluster, a node just back may still make it
    /// fail with a documented node-down status for a moment (retried, bounded).
    async fn quiet_checkpoint(&self, dep: &Deployment) -> anyhow::Result<()> {
        let mut last = None;
        for _ in 0..10 {
            match self.client.checkpoint().await {
                Ok(_) => return Ok(()),
                Err(e) if dep.is_cluster() => {
                    let s = [(e.to_string(), seen(&e))];
                    statuses::check("checkpoint", &s, statuses::CHECKPOINT_NODE_DOWN)
                        .map_err(|m| anyhow!(m))?;
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => bail!("checkpoint with nothing faulted failed: {e}"),
            }
        }
        bail!("no checkpoint succeeded in 10 tries: {last:?}")
    }

    /// Runs one schedule and checks what it left.
    async fn schedule(
        &self,
        dep: &mut Deployment,
        steps: &[Step],
        base: &mut Rows,
        rng: &mut Rng,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        // A quiet checkpoint first: the base rows are exactly its state.
        self.quiet_checkpoint(dep).await?;
        let base_dirs = newest_dirs(dep);
        let pushers = Pushers::start(&self.client, &self.spec, &self.pools, rng.next_u64());
        let mut acked: Vec<Acked> = Vec::new();
        let mut control: Vec<(String, Seen)> = Vec::new();
        let mut crash = None;
        let mut stopped = false;
        let mut running = Some(pushers);
        let mut logs = Vec::new();
        for step in steps {
            let Some(p) = running.as_ref() else {
                bail!("a step after the crash");
            };
            *summary.steps.entry(kind(step)).or_default() += 1;
            match *step {
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Checkpoint => {
                    let floor = p.completed();
                    match self.client.checkpoint().await {
                        Ok(_) => acked.push(Acked {
                            floor,
                            dirs: newest_dirs(dep),
                        }),
                        Err(e) if dep.is_cluster() && stopped => {
                            control.push((format!("checkpoint: {e}"), seen(&e)))
                        }
                        Err(e) => bail!("checkpoint with no node down failed: {e}"),
                    }
                }
                Step::Stop { node, for_ } => {
                    stopped = true;
                    self.stop(dep, p, node, for_, rng, &mut acked, &mut control)
                        .await?;
                }
                Step::DiskFull { node } => {
                    self.disk_full(dep, p, node, &mut acked).await?;
                }
                Step::Kill { node, truncate } => {
                    dep.kill(node);
                    // Pushes meet the dead node for a moment, then no new one starts.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let halted = running.take().expect("pushers run until the crash");
                    halted.halt();
                    // Calls to a shard server fail at once. Calls to a dead dev server
                    // wait for its coordinator (the client looks for one for 20 s) and
                    // end, unapplied, once it is back: wait for those after the restart.
                    let mut halted = Some(halted);
                    if dep.is_cluster() {
                        logs = halted.take().expect("halted").join().await;
                    }
                    let truncated = if truncate {
                        self.truncate(dep, node, &base_dirs[node], rng)?
                    } else {
                        None
                    };
                    dep.restart(node)
                        .await
                        .with_context(|| format!("restarting node {node}"))?;
                    if let Some(h) = halted {
                        logs = h.join().await;
                    }
                    crash = Some(Crash { node, truncated });
                }
            }
        }
        if let Some(p) = running.take() {
            logs = p.stop().await;
        }
        dep.settle().await?;
        self.check(steps, base, &logs, &acked, crash.as_ref(), summary)
            .await?;
        statuses::check("checkpoints", &control, statuses::CHECKPOINT_NODE_DOWN)
            .map_err(|m| anyhow!(m))?;
        summary.failures += control.len();
        dep.check_health()
    }

    /// SIGSTOPs `node` for `for_`, half the time asking for a checkpoint meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn stop(
        &self,
        dep: &Deployment,
        pushers: &Pushers,
        node: usize,
        for_: Duration,
        rng: &mut Rng,
        acked: &mut Vec<Acked>,
        control: &mut Vec<(String, Seen)>,
    ) -> anyhow::Result<()> {
        let stopped = Stopped::stop(dep.pid(node))?;
        let during = rng.chance(1, 2).then(|| {
            let client = self.client.clone();
            (
                pushers.completed(),
                tokio::spawn(async move { client.checkpoint().await }),
            )
        });
        tokio::time::sleep(for_).await;
        drop(stopped);
        let Some((floor, call)) = during else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(60), call).await {
            Ok(Ok(Ok(_))) => acked.push(Acked {
                floor,
                dirs: newest_dirs(dep),
            }),
            Ok(Ok(Err(e))) if dep.is_cluster() => control.push((
                format!("checkpoint while node {node} was stopped: {e}"),
                seen(&e),
            )),
            Ok(Ok(Err(e))) => bail!("checkpoint while the dev server was stopped: {e}"),
            Ok(Err(e)) => bail!("checkpoint task: {e}"),
            Err(_) => bail!("a checkpoint asked while node {node} was stopped hung after SIGCONT"),
        }
        Ok(())
    }

    /// Fills `node`'s disk: a checkpoint must fail with a documented status while pushes
    /// to it go on; once the space is freed a checkpoint must succeed.
    async fn disk_full(
        &self,
        dep: &Deployment,
        pushers: &Pushers,
        node: usize,
        acked: &mut Vec<Acked>,
    ) -> anyhow::Result<()> {
        if node >= dep.disk_nodes() {
            eprintln!(
                "chaos {}: node {node}'s data dir is not a tmpfs; disk-full step skipped",
                self.name
            );
            return Ok(());
        }
        // Every node up first, so the checkpoint meets the full disk, not a node down.
        dep.settle().await?;
        let ballast = Ballast(fill(dep.data_dir(node))?);
        match self.client.checkpoint().await {
            Ok(info) => bail!("a checkpoint into a full disk succeeded: {info:?}"),
            Err(e) => statuses::check(
                "checkpoint into a full disk",
                &[(e.to_string(), seen(&e))],
                statuses::CHECKPOINT_DISK_FULL,
            )
            .map_err(|m| anyhow!(m))?,
        }
        let mine: Vec<usize> = (0..self.owners.len())
            .filter(|&t| self.owners[t] == node)
            .collect();
        let before = pushers.acked(&mine);
        let deadline = Instant::now() + STEP_DEADLINE;
        while pushers.acked(&mine) <= before {
            ensure!(
                Instant::now() < deadline,
                "no push to node {node} acknowledged within {STEP_DEADLINE:?} while its disk was full"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(ballast);
        let floor = pushers.completed();
        self.client
            .checkpoint()
            .await
            .context("checkpoint once the disk had room again")?;
        acked.push(Acked {
            floor,
            dirs: newest_dirs(dep),
        });
        Ok(())
    }

    /// Truncates a file of `node`'s newest checkpoint unless that is the schedule's base
    /// checkpoint (then nothing of the schedule would be left to fall back from).
    fn truncate(
        &self,
        dep: &Deployment,
        node: usize,
        base_dir: &Option<PathBuf>,
        rng: &mut Rng,
    ) -> anyhow::Result<Option<PathBuf>> {
        let newest = newest_checkpoint(dep.data_dir(node));
        match newest {
            Some(dir) if Some(&dir) != base_dir.as_ref() => {
                let what = truncate_checkpoint(&dir, rng.next_u64())?;
                eprintln!("chaos {}: truncated {what}", self.name);
                Ok(Some(dir))
            }
            _ => {
                eprintln!(
                    "chaos {}: node {node} has no checkpoint newer than the schedule's first; truncation skipped",
                    self.name
                );
                Ok(None)
            }
        }
    }

    /// The checks after a schedule: rows against the oracle, failures against the
    /// documented statuses, the truncated checkpoint kept.
    #[allow(clippy::too_many_arguments)]
    async fn check(
        &self,
        steps: &[Step],
        base: &mut Rows,
        logs: &[Arc<PushLog>],
        acked: &[Acked],
        crash: Option<&Crash>,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.pools.iter().flatten().copied().collect();
        // A pull right after a shard server came back on a new port has been seen, under
        // load, to fail once with UNAVAILABLE for it; a few bounded tries, then fail.
        let mut tries = 0;
        let values = loop {
            match self.client.pull(TABLE, &ids).await {
                Ok(v) => break v,
                Err(e) if tries < 10 && seen(&e) == Seen::Code(tonic::Code::Unavailable) => {
                    eprintln!("chaos {}: pull after the schedule: {e}; again", self.name);
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e).context("pull"),
            }
        };
        let values: Rows = ids
            .iter()
            .zip(values.chunks_exact(DIM))
            .map(|(&id, v)| (id, v.to_vec()))
            .collect();
        for (t, log) in logs.iter().enumerate() {
            let attempts = log.attempts.lock().clone();
            let node = self.owners[t];
            let floor = match crash {
                Some(c) if c.node == node => floor_after(acked, c, t),
                _ => attempts.len(),
            };
            let cut = check_pusher(&self.pools[t], base, &attempts, floor, &values, DIM)
                .map_err(|e| anyhow!("pusher {t} (rows on node {node}, floor {floor}): {e}"))?;
            let ok = |a: &&super::oracle::Attempt| a.outcome == Outcome::Acked;
            summary.acked += attempts.iter().filter(ok).count();
            summary.rolled_back += attempts[cut.k..].iter().filter(ok).count();
        }
        let faulted = steps
            .iter()
            .any(|s| matches!(s, Step::Stop { .. } | Step::Kill { .. }));
        let seen: Vec<(String, Seen)> = logs
            .iter()
            .flat_map(|l| l.failures.lock().clone())
            .collect();
        let allowed = if faulted {
            statuses::DATA_PATH_UNDER_FAULTS
        } else {
            &[]
        };
        statuses::check("pushes and pulls", &seen, allowed).map_err(|m| anyhow!(m))?;
        summary.failures += seen.len();
        if let Some(Crash {
            truncated: Some(dir),
            ..
        }) = crash
        {
            ensure!(
                dir.is_dir(),
                "{} was deleted: retention keeps corrupt checkpoints",
                dir.display()
            );
        }
        *base = values;
        Ok(())
    }
}

/// A step's kind, for the summary.
fn kind(step: &Step) -> &'static str {
    match step {
        Step::Pause(_) => "pause",
        Step::Checkpoint => "checkpoint",
        Step::Stop { .. } => "sigstop",
        Step::DiskFull { .. } => "disk-full",
        Step::Kill {
            truncate: false, ..
        } => "kill-9",
        Step::Kill { truncate: true, .. } => "kill-9+truncate",
    }
}
