//! `strata-bench sim`: the topology planner ([`strata_cluster::plan::plan_topology`]) on a
//! synthetic datacenter, against hash placement.
//!
//! The datacenter: `nodes` shard nodes split evenly, in id order, over `racks` racks, and
//! racks over `zones` zones (labels `zone`, `rack`, `host`), each with the same memory
//! budget, `headroom` × the mean bytes per node. `shards` shards of one slot each, of
//! 32–96 MiB (64 MiB mean), placed round robin over the nodes in id order: what
//! [`strata_cluster::placement::spread`] does with equal budgets, and as good as a hash,
//! since nothing below depends on a shard's position.
//!
//! The traffic (default `node_traffic` 200 MB/s per node in all, pull:push 2:1): shard
//! popularity is Zipf (`zipf`, default 1.0) over a random ranking of the shards. Every rack
//! has trainers (labels `zone`, `rack`); each shard has a home rack, drawn uniformly, whose
//! trainers send `locality` (default 0.8) of its traffic, the rest coming evenly from
//! `other_racks` (default 3) racks drawn uniformly: trainers in a rack work on their own
//! subset of the shards.
//!
//! Reported: the planner's wall time, the cross-rack fraction of the traffic under hash
//! placement and under the plan, the nodes over their memory budget after the plan, and
//! max/mean of the load (bytes per budget, or traffic served, whichever is worse).

use std::time::Instant;

use serde::Serialize;
use strata_cluster::plan::{
    plan_topology, Placement, PlanNode, ShardLoad, ShardTraffic, TopoNode, TopologyParams,
};
use strata_cluster::topology::{Location, Topology};
use thiserror::Error;

use crate::rng::SplitMix64;

const MIB: u64 = 1 << 20;

/// The synthetic datacenter and traffic of one simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Shard nodes.
    pub nodes: u32,
    /// Racks (nodes split evenly over them).
    pub racks: u32,
    /// Zones (racks split evenly over them).
    pub zones: u32,
    /// Shards (one slot each).
    pub shards: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// Zipf exponent of shard popularity (0: uniform).
    pub zipf: f64,
    /// Share of a shard's traffic from its home rack.
    pub locality: f64,
    /// Other racks reading each shard.
    pub other_racks: u32,
    /// Traffic per node, bytes/s, on average.
    pub node_traffic: f64,
    /// Memory budget over mean bytes per node.
    pub headroom: f64,
    /// The planner's bounds.
    pub params: TopologyParams,
}

impl Default for SimConfig {
    /// 10,000 nodes, 250 racks, 4 zones, 100,000 shards, seed 1, the model's defaults.
    fn default() -> Self {
        Self {
            nodes: 10_000,
            racks: 250,
            zones: 4,
            shards: 100_000,
            seed: 1,
            zipf: 1.0,
            locality: 0.8,
            other_racks: 3,
            node_traffic: 200e6,
            headroom: 1.5,
            params: TopologyParams::default(),
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, Error)]
pub enum SimError {
    /// A parameter out of range.
    #[error("sim: {0}")]
    Config(String),
    /// The planner refused the datacenter.
    #[error("sim: the planner failed: {0}")]
    Plan(#[from] strata_cluster::plan::PlanError),
}

/// One figure under hash placement and under the plan.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HashPlanned {
    /// Hash placement.
    pub hash: f64,
    /// After the plan.
    pub planned: f64,
}

/// What a simulation reports (the `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Shard nodes.
    pub nodes: u32,
    /// Racks.
    pub racks: u32,
    /// Zones.
    pub zones: u32,
    /// Shards.
    pub shards: u32,
    /// Seed.
    pub seed: u64,
    /// Wall time of the planner, seconds.
    pub plan_seconds: f64,
    /// Share of the traffic crossing racks.
    pub cross_rack_fraction: HashPlanned,
    /// Share of the traffic crossing zones.
    pub cross_zone_fraction: HashPlanned,
    /// Nodes over their memory budget after the plan.
    pub budget_violations: u32,
    /// max/mean of the worse load after the plan.
    pub max_over_mean_load: f64,
    /// max/mean of the worse load under hash placement.
    pub max_over_mean_load_hash: f64,
    /// max/mean of bytes held (budgets are equal).
    pub max_over_mean_bytes: HashPlanned,
    /// max/mean of traffic served.
    pub max_over_mean_traffic: HashPlanned,
    /// The hottest shard's traffic over the mean traffic per node: the least max/mean of
    /// traffic any whole-shard layout can reach.
    pub hottest_shard_over_mean_traffic: f64,
    /// Shards the plan moves.
    pub moves: usize,
    /// Bytes the plan moves.
    pub bytes_to_move: u64,
}

impl SimReport {
    /// One line for people.
    pub fn human(&self) -> String {
        let reduction = if self.cross_rack_fraction.hash > 0.0 {
            100.0 * (1.0 - self.cross_rack_fraction.planned / self.cross_rack_fraction.hash)
        } else {
            0.0
        };
        format!(
            "sim: {} nodes / {} racks / {} zones, {} shards: plan in {:.2} s, {} moves \
             ({:.1} GiB); cross-rack traffic {:.1}% (hash) -> {:.1}% (planned), {:.0}% less; \
             {} budget violations; max/mean bytes {:.2} (hash {:.2}), traffic {:.1} (hash \
             {:.1}, hottest shard alone {:.1})",
            self.nodes,
            self.racks,
            self.zones,
            self.shards,
            self.plan_seconds,
            self.moves,
            self.bytes_to_move as f64 / (1u64 << 30) as f64,
            100.0 * self.cross_rack_fraction.hash,
            100.0 * self.cross_rack_fraction.planned,
            reduction,
            self.budget_violations,
            self.max_over_mean_bytes.planned,
            self.max_over_mean_bytes.hash,
            self.max_over_mean_traffic.planned,
            self.max_over_mean_traffic.hash,
            self.hottest_shard_over_mean_traffic,
        )
    }
}

/// The datacenter of a simulation, before planning.
struct World {
    nodes: Vec<TopoNode>,
    /// Rack of each node.
    node_rack: Vec<u32>,
    current: Vec<ShardLoad>,
    traffic: Vec<ShardTraffic>,
    /// Rack of each traffic entry's trainers.
    traffic_rack: Vec<u32>,
    budget: u64,
}

/// Builds the datacenter, plans it, and measures both layouts.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimError> {
    check(cfg)?;
    let world = build(cfg);
    let started = Instant::now();
    let plan = plan_topology(
        &world.current,
        &world.nodes,
        &world.traffic,
        &Topology::default(),
        &cfg.params,
    )?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let hash: Vec<u32> = world
        .current
        .iter()
        .map(|s| node_of(&s.placement))
        .collect();
    let planned: Vec<u32> = plan.plan.target.iter().map(node_of).collect();
    let (rack_h, zone_h) = crossings(cfg, &world, &hash);
    let (rack_p, zone_p) = crossings(cfg, &world, &planned);
    let (violations_h, bytes_h, traffic_h) = loads(&world, &hash);
    let (violations, bytes_p, traffic_p) = loads(&world, &planned);
    if violations_h > 0 {
        return Err(SimError::Config(format!(
            "hash placement breaks {violations_h} budgets; raise the headroom"
        )));
    }
    Ok(SimReport {
        nodes: cfg.nodes,
        racks: cfg.racks,
        zones: cfg.zones,
        shards: cfg.shards,
        seed: cfg.seed,
        plan_seconds,
        cross_rack_fraction: HashPlanned {
            hash: rack_h,
            planned: rack_p,
        },
        cross_zone_fraction: HashPlanned {
            hash: zone_h,
            planned: zone_p,
        },
        budget_violations: violations,
        max_over_mean_load: bytes_p.max(traffic_p),
        max_over_mean_load_hash: bytes_h.max(traffic_h),
        max_over_mean_bytes: HashPlanned {
            hash: bytes_h,
            planned: bytes_p,
        },
        max_over_mean_traffic: HashPlanned {
            hash: traffic_h,
            planned: traffic_p,
        },
        hottest_shard_over_mean_traffic: hottest(&world),
        moves: plan.ranked.len(),
        bytes_to_move: plan.plan.bytes,
    })
}

/// Refuses parameters the model cannot build.
fn check(cfg: &SimConfig) -> Result<(), SimError> {
    let bad = |what: &str| Err(SimError::Config(what.to_string()));
    if cfg.nodes == 0 || cfg.shards == 0 {
        return bad("--nodes and --shards must be >= 1");
    }
    if cfg.racks == 0 || cfg.racks > cfg.nodes {
        return bad("--racks must be in 1..=nodes");
    }
    if cfg.zones == 0 || cfg.zones > cfg.racks {
        return bad("--zones must be in 1..=racks");
    }
    if !(cfg.zipf.is_finite() && cfg.zipf >= 0.0) {
        return bad("--zipf must be finite and >= 0");
    }
    if !(0.0..=1.0).contains(&cfg.locality) {
        return bad("--locality must be in 0..=1");
    }
    if !(cfg.node_traffic.is_finite() && cfg.node_traffic >= 0.0) {
        return bad("--node-traffic must be finite and >= 0");
    }
    if !(cfg.headroom.is_finite() && cfg.headroom >= 1.0) {
        return bad("--headroom must be finite and >= 1");
    }
    Ok(())
}

/// The node index of a placement's node id (`n{index}`).
fn node_of(p: &Placement) -> u32 {
    p.node[1..].parse().unwrap_or(u32::MAX)
}

/// The zone of rack `r`.
fn zone_of(cfg: &SimConfig, r: u32) -> u32 {
    (u64::from(r) * u64::from(cfg.zones) / u64::from(cfg.racks)) as u32
}

/// The nodes, shards and traffic of the model (module doc).
fn build(cfg: &SimConfig) -> World {
    let width = cfg.nodes.saturating_sub(1).to_string().len();
    let rack_label = |r: u32| -> Location {
        [
            ("zone", format!("z{}", zone_of(cfg, r))),
            ("rack", format!("r{r}")),
        ]
        .into_iter()
        .collect()
    };
    let node_rack: Vec<u32> = (0..cfg.nodes)
        .map(|i| (u64::from(i) * u64::from(cfg.racks) / u64::from(cfg.nodes)) as u32)
        .collect();
    let mut sizes = SplitMix64::stream(cfg.seed, 0);
    let bytes: Vec<u64> = (0..cfg.shards)
        .map(|_| 32 * MIB + (sizes.uniform() * (64 * MIB) as f64) as u64)
        .collect();
    let total_bytes: u64 = bytes.iter().sum();
    let budget = (total_bytes as f64 / f64::from(cfg.nodes) * cfg.headroom).ceil() as u64;
    let nodes: Vec<TopoNode> = (0..cfg.nodes)
        .map(|i| {
            let mut location = rack_label(node_rack[i as usize]);
            location.0.insert("host".into(), format!("h{i}"));
            TopoNode {
                node: PlanNode {
                    id: format!("n{i:0width$}"),
                    memory_budget: budget,
                    accepts: true,
                },
                location,
            }
        })
        .collect();
    let current: Vec<ShardLoad> = (0..cfg.shards)
        .map(|j| ShardLoad {
            placement: Placement {
                slot_start: j,
                slot_end: j + 1,
                node: nodes[(j % cfg.nodes) as usize].node.id.clone(),
            },
            rows: bytes[j as usize] / 512,
            bytes: bytes[j as usize],
        })
        .collect();
    // Popularity: Zipf over a random ranking.
    let mut draws = SplitMix64::stream(cfg.seed, 1);
    let mut rank: Vec<u32> = (0..cfg.shards).collect();
    for i in (1..rank.len()).rev() {
        let j = (draws.next_u64() % (i as u64 + 1)) as usize;
        rank.swap(i, j);
    }
    let weight: Vec<f64> = rank
        .iter()
        .map(|&r| f64::from(r + 1).powf(-cfg.zipf))
        .collect();
    let scale = cfg.node_traffic * f64::from(cfg.nodes) / weight.iter().sum::<f64>();
    let racks: Vec<Location> = (0..cfg.racks).map(rack_label).collect();
    let (mut traffic, mut traffic_rack) = (Vec::new(), Vec::new());
    let mut push = |shard: &ShardLoad, r: u32, rate: f64| {
        traffic.push(ShardTraffic {
            slot_start: shard.placement.slot_start,
            slot_end: shard.placement.slot_end,
            location: racks[r as usize].clone(),
            pull_bytes_per_s: rate * 2.0 / 3.0,
            push_bytes_per_s: rate / 3.0,
        });
        traffic_rack.push(r);
    };
    let rack = |d: &mut SplitMix64| (d.next_u64() % u64::from(cfg.racks)) as u32;
    for (shard, w) in current.iter().zip(&weight) {
        let rate = w * scale;
        push(shard, rack(&mut draws), rate * cfg.locality);
        for _ in 0..cfg.other_racks {
            let share = rate * (1.0 - cfg.locality) / f64::from(cfg.other_racks);
            push(shard, rack(&mut draws), share);
        }
    }
    World {
        nodes,
        node_rack,
        current,
        traffic,
        traffic_rack,
        budget,
    }
}

/// The shares of the traffic crossing racks and zones when shard `j` is on `layout[j]`.
fn crossings(cfg: &SimConfig, world: &World, layout: &[u32]) -> (f64, f64) {
    let (mut all, mut rack, mut zone) = (0.0, 0.0, 0.0);
    for (t, &r) in world.traffic.iter().zip(&world.traffic_rack) {
        let rate = t.pull_bytes_per_s + t.push_bytes_per_s;
        let node_rack = world.node_rack[layout[t.slot_start as usize] as usize];
        all += rate;
        if node_rack != r {
            rack += rate;
        }
        if zone_of(cfg, node_rack) != zone_of(cfg, r) {
            zone += rate;
        }
    }
    let share = |x: f64| if all > 0.0 { x / all } else { 0.0 };
    (share(rack), share(zone))
}

/// The hottest shard's traffic over the mean traffic per node.
fn hottest(world: &World) -> f64 {
    let mut per_shard = vec![0.0f64; world.current.len()];
    for t in &world.traffic {
        per_shard[t.slot_start as usize] += t.pull_bytes_per_s + t.push_bytes_per_s;
    }
    let total: f64 = per_shard.iter().sum();
    let max = per_shard.iter().copied().fold(0.0, f64::max);
    if total > 0.0 {
        max * world.nodes.len() as f64 / total
    } else {
        0.0
    }
}

/// Nodes over budget, and max/mean of bytes and of traffic, with shard `j` on `layout[j]`.
fn loads(world: &World, layout: &[u32]) -> (u32, f64, f64) {
    let n = world.nodes.len();
    let (mut bytes, mut traffic) = (vec![0u64; n], vec![0.0f64; n]);
    for (s, &node) in world.current.iter().zip(layout) {
        bytes[node as usize] += s.bytes;
    }
    for t in &world.traffic {
        traffic[layout[t.slot_start as usize] as usize] += t.pull_bytes_per_s + t.push_bytes_per_s;
    }
    let violations = bytes.iter().filter(|&&b| b > world.budget).count() as u32;
    let ratio = |max: f64, sum: f64| if sum > 0.0 { max * n as f64 / sum } else { 0.0 };
    let bytes_ratio = ratio(
        bytes.iter().copied().max().unwrap_or(0) as f64,
        bytes.iter().sum::<u64>() as f64,
    );
    let traffic_ratio = ratio(
        traffic.iter().copied().fold(0.0, f64::max),
        traffic.iter().sum(),
    );
    (violations, bytes_ratio, traffic_ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            nodes: 200,
            racks: 10,
            zones: 2,
            shards: 2000,
            ..SimConfig::default()
        }
    }

    #[test]
    fn a_small_datacenter_plans_less_cross_rack_traffic_within_budgets() {
        let r = run(&small()).expect("sim");
        assert_eq!((r.nodes, r.shards), (200, 2000));
        assert!(r.cross_rack_fraction.hash > 0.8, "{r:?}");
        assert!(
            r.cross_rack_fraction.planned <= 0.6 * r.cross_rack_fraction.hash,
            "{r:?}"
        );
        assert_eq!(r.budget_violations, 0);
        assert!(r.max_over_mean_bytes.planned <= 1.5 + 1e-9, "{r:?}");
        assert!(r.max_over_mean_load <= r.max_over_mean_load_hash.max(1.5) + 1e-9);
        assert!(r.max_over_mean_traffic.planned >= r.hottest_shard_over_mean_traffic - 1e-9);
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        let (a, b) = (run(&small()).expect("sim"), run(&small()).expect("sim"));
        assert_eq!(a.cross_rack_fraction.planned, b.cross_rack_fraction.planned);
        assert_eq!(a.bytes_to_move, b.bytes_to_move);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let cfg = SimConfig {
            racks: 0,
            ..small()
        };
        assert!(matches!(run(&cfg), Err(SimError::Config(_))));
    }
}
