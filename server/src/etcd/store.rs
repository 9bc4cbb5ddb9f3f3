//! Cluster metadata in etcd: map, catalog, node records and checkpoints under a key prefix,
//! written in transactions fenced by the writer's election key.
//!
//! Layout under `<prefix>` (e.g. `/strata/<cluster>`): `map`, `catalog`, `checkpoints`,
//! `nodes/<id>`; the election lives under `leader/`. Every write compares the create
//! revision of the leader's election key: once its lease has expired (or another leader
//! was elected) the key is gone and a deposed leader's writes fail with
//! [`MetaStoreError::Fenced`].
//!
//! The store's calls are synchronous like the file store's: they run on a small runtime of
//! their own and the caller waits for the answer (bounded by [`CALL_TIMEOUT`]).

use std::sync::mpsc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use strata_cluster::cluster::{ClusterCheckpoint, ClusterRecord, NodeRecord, PlanRecord};
use strata_cluster::cluster_map::ShardEntry;
use strata_cluster::meta_store::{MetaStoreError, RecordStore};
use strata_storage::spec::{DenseSpec, TableSpec};

/// Longest wait for one etcd call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The election key that proves leadership: writes succeed only while it exists with
/// this create revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderFence {
    /// The leader's election key.
    pub key: Vec<u8>,
    /// Its create revision.
    pub rev: i64,
}

/// The map part of the record (`<prefix>/map`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MapPart {
    epoch: u64,
    num_slots: u32,
    shards: Vec<ShardEntry>,
    next_node: u64,
    placement_frozen: bool,
    /// Node ids in registration order.
    node_order: Vec<String>,
    /// The running or last plan (saved with the shards: a move commits in one write).
    #[serde(default)]
    plan: Option<PlanRecord>,
    #[serde(default)]
    plans_started: u64,
}

/// The catalog part of the record (`<prefix>/catalog`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CatalogPart {
    version: u64,
    tables: Vec<TableSpec>,
    dense: Vec<DenseSpec>,
}

/// Cluster metadata in etcd under a prefix, fenced by the leader's election key.
pub struct EtcdMetaStore {
    prefix: String,
    fence: LeaderFence,
    client: Client,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EtcdMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetaStore")
            .field("prefix", &self.prefix)
            .field("fence", &self.fence)
            .finish()
    }
}

fn etcd_error(op: &'static str) -> impl FnOnce(etcd_client::Error) -> MetaStoreError {
    move |e| MetaStoreError::Etcd {
        op,
        message: e.to_string(),
    }
}

fn corrupt(key: &str) -> impl FnOnce(serde_json::Error) -> MetaStoreError + '_ {
    move |source| MetaStoreError::CorruptKey {
        key: key.to_string(),
        source,
    }
}

impl EtcdMetaStore {
    /// Connects to etcd at `endpoints`; records live under `prefix`, written only while
    /// `fence` holds. Blocks the calling thread until connected (bounded).
    pub fn connect(
        endpoints: &[String],
        prefix: &str,
        fence: LeaderFence,
    ) -> Result<Self, MetaStoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-store")
            .enable_all()
            .build()
            .map_err(|source| MetaStoreError::Io {
                op: "start runtime for",
                path: "etcd".into(),
                source,
            })?;
        let endpoints = endpoints.to_vec();
        let connect: BoxFuture<'static, Result<Client, MetaStoreError>> = Box::pin(async move {
            Client::connect(endpoints, None)
                .await
                .map_err(etcd_error("connect"))
        });
        let client = call(&runtime, connect)?;
        Ok(Self {
            prefix: prefix.trim_end_matches('/').to_string(),
            fence,
            client,
            runtime: Some(runtime),
        })
    }

    /// The key of record part `name`.
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// The stored record, if any was saved.
    pub fn load(&self) -> Result<Option<ClusterRecord>, MetaStoreError> {
        let mut client = self.client.clone();
        let prefix = format!("{}/", self.prefix);
        let get: BoxFuture<'static, _> = Box::pin(async move {
            client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(etcd_error("get"))
        });
        let resp = call(self.runtime()?, get)?;
        let (map_key, catalog_key) = (self.key("map"), self.key("catalog"));
        let (checkpoints_key, nodes_prefix) = (self.key("checkpoints"), self.key("nodes/"));
        let (mut map, mut catalog, mut checkpoints) = (None, None, Vec::new());
        let mut nodes = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).to_string();
            if key == map_key {
                map = Some(serde_json::from_slice::<MapPart>(kv.value()).map_err(corrupt(&key))?);
            } else if key == catalog_key {
                catalog =
                    Some(serde_json::from_slice::<CatalogPart>(kv.value()).map_err(corrupt(&key))?);
            } else if key == checkpoints_key {
                checkpoints = serde_json::from_slice::<Vec<ClusterCheckpoint>>(kv.value())
                    .map_err(corrupt(&key))?;
            } else if key.starts_with(&nodes_prefix) {
                nodes
                    .push(serde_json::from_slice::<NodeRecord>(kv.value()).map_err(corrupt(&key))?);
            }
        }
        let Some(map) = map else {
            return Ok(None);
        };
        let catalog = catalog.unwrap_or(CatalogPart {
            version: 1,
            tables: Vec::new(),
            dense: Vec::new(),
        });
        let rank = |id: &str| {
            map.node_order
                .iter()
                .position(|n| n == id)
                .unwrap_or(usize::MAX)
        };
        nodes.sort_by(|a, b| rank(&a.id).cmp(&rank(&b.id)).then(a.id.cmp(&b.id)));
        Ok(Some(ClusterRecord {
            epoch: map.epoch,
            num_slots: map.num_slots,
            catalog_version: catalog.version,
            tables: catalog.tables,
            dense: catalog.dense,
            nodes,
            shards: map.shards,
            next_node: map.next_node,
            checkpoints,
            placement_frozen: map.placement_frozen,
            plan: map.plan,
            plans_started: map.plans_started,
        }))
    }

    /// Saves `record` in one transaction that succeeds only while the fence holds.
    pub fn save(&self, record: &ClusterRecord) -> Result<(), MetaStoreError> {
        let json = |key: &str, value: serde_json::Result<Vec<u8>>| value.map_err(corrupt(key));
        let map = MapPart {
            epoch: record.epoch,
            num_slots: record.num_slots,
            shards: record.shards.clone(),
            next_node: record.next_node,
            placement_frozen: record.placement_frozen,
            node_order: record.nodes.iter().map(|n| n.id.clone()).collect(),
            plan: record.plan.clone(),
            plans_started: record.plans_started,
        };
        let catalog = CatalogPart {
            version: record.catalog_version,
            tables: record.tables.clone(),
            dense: record.dense.clone(),
        };
        let mut puts = vec![
            TxnOp::put(
                self.key("map"),
                json("map", serde_json::to_vec(&map))?,
                None,
            ),
            TxnOp::put(
                self.key("catalog"),
                json("catalog", serde_json::to_vec(&catalog))?,
                None,
            ),
            TxnOp::put(
                self.key("checkpoints"),
                json("checkpoints", serde_json::to_vec(&record.checkpoints))?,
                None,
            ),
        ];
        for n in &record.nodes {
            let key = self.key(&format!("nodes/{}", n.id));
            let value = json(&key, serde_json::to_vec(n))?;
            puts.push(TxnOp::put(key, value, None));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.fence.key.clone(),
                CompareOp::Equal,
                self.fence.rev,
            )])
            .and_then(puts);
        let mut client = self.client.clone();
        let commit: BoxFuture<'static, _> =
            Box::pin(async move { client.txn(txn).await.map_err(etcd_error("txn")) });
        let resp = call(self.runtime()?, commit)?;
        if !resp.succeeded() {
            return Err(MetaStoreError::Fenced {
                key: String::from_utf8_lossy(&self.fence.key).to_string(),
            });
        }
        Ok(())
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, MetaStoreError> {
        self.runtime.as_ref().ok_or(MetaStoreError::Etcd {
            op: "call",
            message: "store is closed".into(),
        })
    }
}

impl Drop for EtcdMetaStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `fut` on the store's runtime and waits for it (any thread, bounded).
fn call<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    fut: BoxFuture<'static, Result<T, MetaStoreError>>,
) -> Result<T, MetaStoreError> {
    let (tx, rx) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let r = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(MetaStoreError::Etcd {
                op: "call",
                message: format!("no answer within {CALL_TIMEOUT:?}"),
            }),
        };
        let _ = tx.send(r);
    });
    rx.recv_timeout(CALL_TIMEOUT + Duration::from_secs(1))
        .map_err(|_| MetaStoreError::Etcd {
            op: "call",
            message: format!("no answer within {CALL_TIMEOUT:?}"),
        })?
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

impl RecordStore for EtcdMetaStore {
    fn load_record(&self) -> Result<Option<ClusterRecord>, MetaStoreError> {
        self.load()
    }

    fn save_record(&self, record: &ClusterRecord) -> Result<(), MetaStoreError> {
        self.save(record)
    }
}
