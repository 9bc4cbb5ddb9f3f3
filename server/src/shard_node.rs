//! A shard server's own state: its engine, its checkpoints, its node id, and how it
//! follows the coordinator's catalog and map.
//!
//! On start the node restores its newest good checkpoint from its data dir and serves no
//! slot until a map from the coordinator says which are its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use thiserror::Error;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::durable_file;
use crate::migration::background::Background;
use crate::migration::destination::Incoming;
use crate::migration::{self, source, MigrationCounters, MigrationError};
use strata_cluster::cluster::{
    Catalog, HeartbeatReport, MigrateOut, MoveProgress, NodeCheckpoint, RangeLoad, TableUsage,
};
use strata_cluster::report::{ProcessIdentity, TrafficSample};
use strata_cluster::ClusterMap;
use strata_engine::checkpoint::NodeSnapshot;
use strata_engine::checkpoint::{
    CheckpointError, CheckpointInfo, CheckpointState, CheckpointStore,
};
use strata_engine::wal::{self, Wal, WalBase, WalError, WAL_DIR};
use strata_engine::{ChainMark, Engine, EngineError, Table};

/// File in the data dir that keeps the node id across restarts.
const NODE_ID_FILE: &str = "node-id";

/// Why a shard-node operation failed.
#[derive(Debug, Error)]
pub enum ShardNodeError {
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The node id file could not be read or written.
    #[error("node id file {path}: {source}")]
    NodeId {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint was asked for at another epoch than the node's.
    #[error("checkpoint asked at epoch {asked} but this node is at epoch {current}")]
    WrongEpoch {
        /// Epoch asked for.
        asked: u64,
        /// Node's epoch.
        current: u64,
    },
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
    /// A migration step failed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// The data dir holds checkpoints and none of them verifies: starting would silently
    /// replace the trained rows with fresh ones.
    #[error(
        "every checkpoint in {} fails verification ({}); refusing to start with fresh rows over them. \
         Put a good copy back, or start with --accept-data-loss to begin with empty tables \
         (the corrupt checkpoints are kept)",
        dir.display(), corrupt.join(", ")
    )]
    NoGoodCheckpoint {
        /// The checkpoints directory.
        dir: PathBuf,
        /// The checkpoints that failed.
        corrupt: Vec<String>,
    },
    /// A move request is malformed.
    #[error("{reason}")]
    BadMove {
        /// What is wrong with it.
        reason: String,
    },
    /// A move asked for slots this node does not wholly serve.
    #[error("this node does not serve every slot of {start}..{end}")]
    NotServed {
        /// First slot.
        start: u32,
        /// One past the last slot.
        end: u32,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The write-ahead log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The data dir holds a write-ahead log but the node was started without `--wal`:
    /// starting would drop the changes it holds.
    #[error(
        "{} holds a write-ahead log with changes newer than the last checkpoint; start with \
         --wal to replay them (or remove the directory to drop them)",
        dir.display()
    )]
    WalNotEnabled {
        /// The log's directory.
        dir: PathBuf,
    },
    /// The checkpoint the write-ahead log applies on cannot be read.
    #[error(
        "the write-ahead log in {} applies on checkpoint {checkpoint}, which cannot be read \
         ({reason}); put a good copy back, or start with --accept-data-loss to replay nothing \
         and begin from the newest good checkpoint",
        dir.display()
    )]
    WalBaseMissing {
        /// The log's directory.
        dir: PathBuf,
        /// The checkpoint named by the log's base.
        checkpoint: String,
        /// Why it cannot be read.
        reason: String,
    },
}

/// The usage of one of this node's tables, as the coordinator sums it.
pub fn table_usage(table: &Table) -> TableUsage {
    let stats = table.stats();
    TableUsage {
        name: table.spec().name.clone(),
        rows: stats.rows,
        bytes: stats.bytes,
        tiers: table
            .breakdown()
            .into_iter()
            .map(|part| (part.tier.to_string(), part.stats))
            .collect(),
        cache: table.cache_stats(),
    }
}

/// One of this node's checkpoints as the coordinator sees it.
pub fn node_checkpoint(info: &CheckpointInfo) -> NodeCheckpoint {
    NodeCheckpoint {
        id: info.id.clone(),
        created_unix_ms: info.created_unix_ms,
        bytes: info.bytes,
        tables: info.tables,
        rows: info.rows,
        corrupt: match &info.state {
            CheckpointState::Ok => None,
            CheckpointState::Corrupt { reason } => Some(reason.clone()),
        },
    }
}

/// The id stored in `data_dir`, if any.
pub fn stored_node_id(data_dir: &Path) -> Result<Option<String>, ShardNodeError> {
    let path = data_dir.join(NODE_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ShardNodeError::NodeId { path, source }),
    }
}

/// Stores `id` in `data_dir` (temp file, fsync, rename).
pub fn store_node_id(data_dir: &Path, id: &str) -> Result<(), ShardNodeError> {
    durable_file::write(data_dir, NODE_ID_FILE, &format!("{id}\n")).map_err(|source| {
        ShardNodeError::NodeId {
            path: data_dir.join(NODE_ID_FILE),
            source,
        }
    })
}

/// Opens the node's write-ahead log, replays what it holds after the restored checkpoint
/// (`base_id`, whose records end below `from`) and attaches it to `engine`.
fn open_wal(
    engine: &Arc<Engine>,
    dir: &Path,
    config: wal::WalConfig,
    base_id: Option<String>,
    from: u64,
) -> Result<(), ShardNodeError> {
    let started = std::time::Instant::now();
    let (log, stats) = Wal::open(dir, config, from, |_, record| {
        engine.replay(record).map_err(|e| e.to_string())
    })?;
    log.set_base(&WalBase {
        checkpoint: base_id.clone(),
        lsn: from,
    })?;
    tracing::info!(
        checkpoint = base_id.as_deref().unwrap_or("none"),
        records = stats.records,
        bytes = stats.bytes,
        refused = stats.refused,
        torn_bytes = stats.torn_bytes,
        ms = started.elapsed().as_millis() as u64,
        sync = %config.sync,
        "write-ahead log replayed"
    );
    engine.attach_wal(Arc::new(log))?;
    Ok(())
}

/// The newest checkpoint of the node's chain: the next delta's parent.
#[derive(Debug, Clone)]
struct ChainHead {
    /// The checkpoint's id.
    id: String,
    /// Deltas from its base to it.
    depth: u32,
    /// Where the engine's tables stood at it.
    mark: ChainMark,
}

impl ChainHead {
    fn new(info: &CheckpointInfo, mark: ChainMark) -> Self {
        ChainHead {
            id: info.id.clone(),
            depth: info.depth,
            mark,
        }
    }
}

/// One shard server's engine, checkpoints and view of the cluster.
pub struct ShardNode {
    engine: Arc<Engine>,
    checkpoints: CheckpointStore,
    keep_checkpoints: usize,
    node_id: Mutex<String>,
    identity: Mutex<Option<ProcessIdentity>>,
    catalog_version: AtomicU64,
    catalog: Mutex<()>,
    last_checkpoint: Mutex<Option<CheckpointInfo>>,
    /// The newest checkpoint written or restored, which the next delta continues.
    chain: Mutex<Option<ChainHead>>,
    saved_changes: AtomicU64,
    durability: tokio::sync::Mutex<()>,
    shard_ranges: Mutex<Vec<(u32, u32)>>,
    maps: Mutex<()>,
    stopped: std::sync::atomic::AtomicBool,
    incoming: Arc<Incoming>,
    counters: Arc<MigrationCounters>,
    background: Background,
    /// TLS of the migration streams to other nodes (`None`: plaintext).
    client_tls: Mutex<Option<strata_proto::tls::ClientTls>>,
}

impl ShardNode {
    /// Opens the data dir and restores the newest good checkpoint; serves no slot yet.
    /// Migrations run on threads at `migration_nice`. A data dir whose checkpoints all fail
    /// verification is refused unless `accept_data_loss` (then the node starts empty).
    pub fn open(
        data_dir: &Path,
        engine: Arc<Engine>,
        keep_checkpoints: usize,
        migration_nice: i32,
        accept_data_loss: bool,
    ) -> Result<Self, ShardNodeError> {
        let checkpoints = CheckpointStore::open(data_dir)?;
        engine.ownership().update(0, Some(&[]));
        let wal_dir = data_dir.join(WAL_DIR);
        if engine.config().wal.is_none() && wal::has_segments(&wal_dir)? {
            return Err(ShardNodeError::WalNotEnabled { dir: wal_dir });
        }
        let mut base = match engine.config().wal {
            Some(_) => wal::read_base(&wal_dir)?,
            None => None,
        };
        let base_checkpoint = base.as_ref().and_then(|b| b.checkpoint.clone());
        let latest = match base_checkpoint.as_deref() {
            Some(id) => match checkpoints.load_with_info(id) {
                Ok(loaded) => Some(loaded),
                Err(e) if accept_data_loss => {
                    tracing::error!(
                        checkpoint = id, error = %e,
                        "the write-ahead log's checkpoint cannot be read; starting from the newest good checkpoint without replaying the log, as --accept-data-loss asks"
                    );
                    fs::remove_dir_all(&wal_dir).map_err(|source| WalError::Io {
                        op: "remove",
                        path: wal_dir.clone(),
                        source,
                    })?;
                    base = None;
                    checkpoints.load_latest_good()?
                }
                Err(e) => {
                    return Err(ShardNodeError::WalBaseMissing {
                        dir: wal_dir,
                        checkpoint: id.to_string(),
                        reason: e.to_string(),
                    })
                }
            },
            None => checkpoints.load_latest_good()?,
        };
        let base_lsn = match (&base, &latest) {
            (Some(b), _) => b.lsn,
            (_, Some((_, snaps))) => snaps.last().map_or(0, |s| s.wal_lsn),
            _ => 0,
        };
        let base_id = latest.as_ref().map(|(info, _)| info.id.clone());
        let mut chain = None;
        let last_checkpoint = match latest {
            Some((info, snaps)) => {
                let mark = engine.restore_chain(&snaps)?;
                tracing::info!(
                    dir = %data_dir.display(), id = %info.id, kind = info.kind.as_str(),
                    deltas = info.depth, epoch = info.epoch,
                    tables = info.tables, rows = info.rows, "restored checkpoint"
                );
                chain = Some(ChainHead::new(&info, mark));
                Some(info)
            }
            None => {
                let corrupt = checkpoints.corrupt_ids();
                if !corrupt.is_empty() {
                    if !accept_data_loss {
                        return Err(ShardNodeError::NoGoodCheckpoint {
                            dir: checkpoints.root().to_path_buf(),
                            corrupt,
                        });
                    }
                    tracing::error!(
                        dir = %checkpoints.root().display(), ?corrupt,
                        "every checkpoint fails verification; starting with empty tables as --accept-data-loss asks (the corrupt checkpoints are kept)"
                    );
                } else {
                    tracing::info!(dir = %data_dir.display(), "no checkpoint in the data dir: starting with empty tables");
                }
                None
            }
        };
        // Read before the log is replayed: replayed changes are not in a checkpoint yet.
        let saved_changes = engine.changes();
        if let Some(config) = engine.config().wal {
            open_wal(&engine, &wal_dir, config, base_id, base_lsn)?;
        }
        Ok(Self {
            engine,
            checkpoints,
            keep_checkpoints: keep_checkpoints.max(1),
            node_id: Mutex::new(String::new()),
            identity: Mutex::new(None),
            catalog_version: AtomicU64::new(0),
            catalog: Mutex::new(()),
            last_checkpoint: Mutex::new(last_checkpoint),
            chain: Mutex::new(chain),
            saved_changes: AtomicU64::new(saved_changes),
            durability: tokio::sync::Mutex::new(()),
            shard_ranges: Mutex::new(Vec::new()),
            maps: Mutex::new(()),
            stopped: std::sync::atomic::AtomicBool::new(false),
            incoming: Arc::new(Incoming::new()),
            counters: Arc::new(MigrationCounters::default()),
            background: Background::start(migration_nice).map_err(|e| {
                ShardNodeError::Task(format!("cannot start the migration runtime: {e}"))
            })?,
            client_tls: Mutex::new(None),
        })
    }

    /// Sends this node's migration streams through TLS with `tls` (`None`: plaintext).
    pub fn set_client_tls(&self, tls: Option<strata_proto::tls::ClientTls>) {
        *self.client_tls.lock() = tls;
    }

    /// The node's engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The node id the coordinator knows this node by (empty before registration).
    pub fn node_id(&self) -> String {
        self.node_id.lock().clone()
    }

    /// Sets the node id after registration.
    pub fn set_node_id(&self, id: &str) {
        *self.node_id.lock() = id.to_string();
    }

    /// What runs on this node, as it reports it (`None`: not set).
    pub fn identity(&self) -> Option<ProcessIdentity> {
        self.identity.lock().clone()
    }

    /// Sets what this node reports as running on it (its process's identity).
    pub fn set_identity(&self, identity: ProcessIdentity) {
        *self.identity.lock() = Some(identity);
    }

    /// Catalog version applied.
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version.load(Ordering::Acquire)
    }

    /// Map epoch applied.
    pub fn epoch(&self) -> u64 {
        self.engine.ownership().epoch()
    }

    /// The newest checkpoint written or restored.
    pub fn last_checkpoint(&self) -> Option<CheckpointInfo> {
        self.last_checkpoint.lock().clone()
    }

    /// Creates and drops tables and dense tensors to hold exactly the catalog's (a table
    /// whose spec changed is recreated). Older catalogs than the applied one are ignored.
    pub fn apply_catalog(&self, catalog: &Catalog) -> Result<(), EngineError> {
        let _one = self.catalog.lock();
        if catalog.version < self.catalog_version() {
            return Ok(());
        }
        for t in self.engine.tables() {
            if !catalog.tables.contains(t.spec()) {
                self.engine.drop_table(&t.spec().name)?;
            }
        }
        for d in self.engine.dense_tensors() {
            if !catalog.dense.contains(d.spec()) {
                self.engine.drop_dense(&d.spec().name)?;
            }
        }
        for spec in &catalog.tables {
            if self.engine.table(&spec.name).is_err() {
                self.engine.create_table(spec.clone())?;
            }
        }
        for spec in &catalog.dense {
            if self.engine.dense(&spec.name).is_err() {
                self.engine.create_dense(spec.clone())?;
            }
        }
        self.catalog_version
            .store(catalog.version, Ordering::Release);
        Ok(())
    }

    /// Serves the slot ranges the map gives this node (older maps are ignored, also when
    /// two arrive at once). Ranges handed off to another node (the map committed their
    /// move) are dropped here, and so are rows of ranges the node does not serve and does
    /// not receive (left by a checkpoint restored after the node lost them).
    pub fn apply_map(&self, map: &ClusterMap) -> Result<(), ShardNodeError> {
        let _one = self.maps.lock();
        let id = self.node_id();
        let ownership = self.engine.ownership();
        if id.is_empty() || self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        let ranges: Vec<(u32, u32)> = map
            .shards
            .iter()
            .filter(|s| s.primary == id)
            .map(|s| (s.slot_start, s.slot_end))
            .collect();
        if !ownership.update_if_newer(map.epoch, &ranges) {
            return Ok(());
        }
        *self.shard_ranges.lock() = ranges;
        for moved in ownership.captures_moved_away() {
            if let Some((start, end)) = ownership.end_capture(&moved) {
                let rows = migration::destination::erase(&self.engine, start, end)?;
                tracing::info!(id = %moved, start, end, rows, "handed-off range dropped");
            }
        }
        self.incoming.settle(&self.engine);
        self.drop_strays()?;
        Ok(())
    }

    /// Erases rows of slots this node neither serves nor receives.
    fn drop_strays(&self) -> Result<(), ShardNodeError> {
        let ownership = self.engine.ownership();
        let mut keep = ownership.served_ranges();
        keep.extend(self.incoming.ranges());
        keep.extend(ownership.capture_ranges());
        keep.sort_unstable();
        let mut strays = Vec::new();
        let mut next = 0u32;
        for (start, end) in keep {
            if start > next {
                strays.push((next, start));
            }
            next = next.max(end);
        }
        if next < ownership.num_slots() {
            strays.push((next, ownership.num_slots()));
        }
        if strays.is_empty() {
            return Ok(());
        }
        for t in self.engine.tables() {
            if t.count_slots(&strays).iter().any(|&n| n > 0) {
                let rows = t.erase_slots(&strays)?;
                tracing::info!(table = %t.spec().name, rows, "dropped rows of slots not served here");
            }
        }
        Ok(())
    }

    /// Ids of the migrations under way on this node, as source or destination.
    pub fn migration_ids(&self) -> Vec<String> {
        let mut ids = self.engine.ownership().capture_ids();
        ids.extend(self.incoming.ids());
        ids
    }

    /// Rolls migration `id` back on this node, as source or destination (idempotent).
    pub fn abort_migration(&self, id: &str) -> Result<(), ShardNodeError> {
        if let Some((start, end)) = self.engine.ownership().end_capture(id) {
            tracing::info!(%id, start, end, "migration rolled back: range served again");
        }
        if self.incoming.abort(&self.engine, id)? {
            tracing::info!(%id, "migration rolled back: imported rows dropped");
        }
        Ok(())
    }

    /// Where migration streams run (lower CPU priority); `None` after shutdown began.
    pub fn background(&self) -> Option<tokio::runtime::Handle> {
        self.background.handle()
    }

    /// Moves this node is receiving.
    pub fn incoming(&self) -> &Arc<Incoming> {
        &self.incoming
    }

    /// Migration counters of this node.
    pub fn migration_counters(&self) -> &Arc<MigrationCounters> {
        &self.counters
    }

    /// Rows and bytes per slot range of this node's shards.
    pub fn range_usage(&self) -> Vec<RangeLoad> {
        let ranges = self.shard_ranges.lock().clone();
        ranges
            .iter()
            .zip(self.engine.range_usage(&ranges))
            .map(|(&(start, end), u)| RangeLoad {
                start,
                end,
                rows: u.rows,
                bytes: u.bytes,
            })
            .collect()
    }

    /// What this node tells the coordinator in a heartbeat: usage per table and per slot
    /// range, the epoch and catalog it applied, its newest checkpoint, its migrations.
    /// `address` is where clients reach it now (empty: unchanged).
    pub fn report(&self, address: &str) -> HeartbeatReport {
        let forgotten = self.engine.expire_clients();
        if forgotten > 0 {
            tracing::info!(clients = forgotten, "forgot idle clients' push numbers");
        }
        let traffic = self.engine.traffic_report();
        HeartbeatReport {
            node_id: self.node_id(),
            address: address.to_string(),
            epoch: self.epoch(),
            catalog_version: self.catalog_version(),
            tables: self
                .engine
                .tables()
                .iter()
                .map(|t| table_usage(t))
                .collect(),
            last_checkpoint: self.last_checkpoint().as_ref().map(node_checkpoint),
            ranges: self.range_usage(),
            migrations: self.migration_ids(),
            pull_rows_per_s: traffic.pull_rows_per_s,
            push_rows_per_s: traffic.push_rows_per_s,
            traffic: traffic
                .rates
                .into_iter()
                .map(|r| TrafficSample {
                    table: r.table,
                    slot_start: r.slot_start,
                    slot_end: r.slot_end,
                    location: r.location,
                    pull_bytes_per_s: r.pull_bytes_per_s,
                    push_bytes_per_s: r.push_bytes_per_s,
                })
                .collect(),
            unsaved_changes: self.has_unsaved_changes(),
            identity: self.identity(),
        }
    }

    /// Starts the source side of move `request` on the migration runtime; its reports go
    /// to `progress`. Refuses at once what cannot start: a malformed request, a range this
    /// node does not wholly serve, a node shutting down.
    pub fn migrate_out(
        &self,
        request: &MigrateOut,
        progress: mpsc::Sender<MoveProgress>,
    ) -> Result<JoinHandle<Result<(), MigrationError>>, ShardNodeError> {
        let num_slots = self.engine.ownership().num_slots();
        if request.id.is_empty()
            || request.destination.is_empty()
            || request.slot_start >= request.slot_end
            || request.slot_end > num_slots
        {
            return Err(ShardNodeError::BadMove {
                reason: format!(
                    "a move needs an id, a destination and a non-empty slot range within 0..{num_slots}"
                ),
            });
        }
        if !self
            .engine
            .ownership()
            .serves_all(request.slot_start, request.slot_end)
        {
            return Err(ShardNodeError::NotServed {
                start: request.slot_start,
                end: request.slot_end,
            });
        }
        let background = self.background().ok_or(ShardNodeError::ShuttingDown)?;
        let req = source::SourceRequest {
            id: request.id.clone(),
            start: request.slot_start,
            end: request.slot_end,
            destination: request.destination.clone(),
            max_bytes_per_s: request.max_bytes_per_s,
            tls: self.client_tls.lock().clone(),
        };
        Ok(background.spawn(source::migrate_out(
            self.engine.clone(),
            req,
            self.counters.clone(),
            progress,
        )))
    }

    /// This node's checkpoints, newest first, each fully verified.
    pub async fn checkpoints(self: &Arc<Self>) -> Result<Vec<CheckpointInfo>, ShardNodeError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || Ok(this.checkpoints.list()?))
            .await
            .map_err(|e| ShardNodeError::Task(e.to_string()))?
    }

    /// Fully verifies checkpoint `id` (its state says whether it is corrupt).
    pub async fn verify_checkpoint(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<CheckpointInfo, ShardNodeError> {
        let (this, id) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || Ok(this.checkpoints.verify(&id)?))
            .await
            .map_err(|e| ShardNodeError::Task(e.to_string()))?
    }

    /// Replaces every table and dense tensor with checkpoint `id` (verified while it is
    /// read, once; a corrupt one changes nothing). The slots served stay as they are until the
    /// coordinator's next map.
    pub async fn restore(self: &Arc<Self>, id: &str) -> Result<CheckpointInfo, ShardNodeError> {
        let _serial = self.durability.lock().await;
        let (this, id) = (self.clone(), id.to_string());
        let info = tokio::task::spawn_blocking(move || {
            let (info, snaps): (CheckpointInfo, Vec<NodeSnapshot>) =
                this.checkpoints.load_with_info(&id)?;
            let mark = this.engine.restore_checkpoint(&info.id, &snaps)?;
            *this.chain.lock() = Some(ChainHead::new(&info, mark));
            this.saved_changes
                .store(this.engine.changes(), Ordering::Release);
            tracing::info!(id = %info.id, rows = info.rows, "restored checkpoint on request");
            Ok::<_, ShardNodeError>(info)
        })
        .await
        .map_err(|e| ShardNodeError::Task(e.to_string()))??;
        *self.last_checkpoint.lock() = Some(info.clone());
        Ok(info)
    }

    /// Stops serving for good, at the current epoch: waits for the requests already admitted,
    /// then refuses every later one (as a node that owns no slot) and ignores later maps.
    /// For an exit whose connections did not drain in time.
    pub fn stop_serving(&self) {
        let _one = self.maps.lock();
        self.stopped.store(true, Ordering::Release);
        let ownership = self.engine.ownership();
        ownership.update(ownership.epoch(), Some(&[]));
    }

    /// Whether the tables, dense tensors or rows changed since the newest checkpoint written
    /// or restored (or since the start, without one).
    pub fn has_unsaved_changes(&self) -> bool {
        self.engine.changes() != self.saved_changes.load(Ordering::Acquire)
    }

    /// Writes a checkpoint at the node's current epoch unless nothing changed since the
    /// newest one (`None`); a map applied meanwhile is retried at its epoch.
    pub async fn checkpoint_if_changed(
        self: &Arc<Self>,
    ) -> Result<Option<CheckpointInfo>, ShardNodeError> {
        const TRIES: usize = 3;
        let mut tries = 0;
        loop {
            if !self.has_unsaved_changes() {
                return Ok(None);
            }
            tries += 1;
            match self.checkpoint(self.epoch()).await {
                Err(ShardNodeError::WrongEpoch { .. }) if tries < TRIES => continue,
                r => return r.map(Some),
            }
        }
    }

    /// Writes a checkpoint of everything this node holds, taken at map epoch `epoch`.
    pub async fn checkpoint(
        self: &Arc<Self>,
        epoch: u64,
    ) -> Result<CheckpointInfo, ShardNodeError> {
        let _serial = self.durability.lock().await;
        let this = self.clone();
        let info = tokio::task::spawn_blocking(move || {
            let current = this.epoch();
            if current != epoch {
                return Err(ShardNodeError::WrongEpoch {
                    asked: epoch,
                    current,
                });
            }
            // Read before the snapshot: a change counted after this is either in the
            // snapshot or still unsaved, never taken for saved when it is not.
            let changes = this.engine.changes();
            // A delta continues the chain unless it is due for a new base; a parent gone
            // from the disk (deleted by hand) starts a new base too.
            let full_every = this.engine.config().checkpoint_full_every;
            let parent = this.chain.lock().clone().filter(|head| {
                head.depth < full_every && this.checkpoints.root().join(&head.id).is_dir()
            });
            let (snap, mark) = this
                .engine
                .snapshot_since(parent.as_ref().map(|head| &head.mark))?;
            if snap.epoch != epoch {
                return Err(ShardNodeError::WrongEpoch {
                    asked: epoch,
                    current: snap.epoch,
                });
            }
            let info = match &parent {
                Some(head) => this.checkpoints.write_delta(&snap, &head.id)?,
                None => this.checkpoints.write(&snap)?,
            };
            *this.chain.lock() = Some(ChainHead::new(&info, mark));
            if let Some(wal) = this.engine.wal() {
                // The log now applies on this checkpoint; what it covers is deleted.
                wal.set_base(&WalBase {
                    checkpoint: Some(info.id.clone()),
                    lsn: snap.wal_lsn,
                })?;
            }
            this.saved_changes.store(changes, Ordering::Release);
            this.checkpoints.prune(this.keep_checkpoints)?;
            Ok(info)
        })
        .await
        .map_err(|e| ShardNodeError::Task(e.to_string()))??;
        *self.last_checkpoint.lock() = Some(info.clone());
        Ok(info)
    }
}
