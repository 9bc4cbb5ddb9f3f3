//! Errors of the coordinator layer.

use thiserror::Error;

use super::meta_store::MetaStoreError;
use super::node_control::NodeError;
use strata_storage::spec::{shown_name, SpecError};

/// Why a coordinator operation failed.
#[derive(Debug, Error)]
pub enum CoordinatorError {
    /// A table or dense spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No table of that name in the catalog.
    #[error("table {} not found", shown_name(.name))]
    TableNotFound {
        /// The name asked for.
        name: String,
    },
    /// A table of that name is in the catalog already.
    #[error("table {} already exists", shown_name(.name))]
    TableExists {
        /// The name asked for.
        name: String,
    },
    /// No dense tensor of that name in the catalog.
    #[error("dense tensor {} not found", shown_name(.name))]
    DenseNotFound {
        /// The name asked for.
        name: String,
    },
    /// A dense tensor of that name is in the catalog already.
    #[error("dense tensor {} already exists", shown_name(.name))]
    DenseExists {
        /// The name asked for.
        name: String,
    },
    /// Cluster metadata could not be read or written.
    #[error(transparent)]
    MetaStore(#[from] MetaStoreError),
    /// No checkpoint with that id.
    #[error("no checkpoint {id:?}")]
    NoSuchCheckpoint {
        /// The id asked for.
        id: String,
    },
    /// A cluster checkpoint cannot be restored as a whole.
    #[error("checkpoint {id} cannot be restored: {reason}")]
    NotRestorable {
        /// The checkpoint.
        id: String,
        /// Why not.
        reason: String,
    },
    /// A node lacks its part of a cluster checkpoint.
    #[error("checkpoint {id} cannot be restored: node {node} ({address}) does not hold its part {part}; nothing was changed")]
    CheckpointPartMissing {
        /// The cluster checkpoint.
        id: String,
        /// The node.
        node: String,
        /// Its address.
        address: String,
        /// The node checkpoint it should hold.
        part: String,
    },
    /// A node's part of a cluster checkpoint failed verification.
    #[error("checkpoint {id} cannot be restored: the part {part} on node {node} is corrupt ({reason}); nothing was changed")]
    CheckpointPartCorrupt {
        /// The cluster checkpoint.
        id: String,
        /// The node.
        node: String,
        /// The node checkpoint.
        part: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data dir was made for another slot count.
    #[error("data dir holds a cluster of {stored} slots, configured {configured}")]
    SlotMismatch {
        /// Slots in the data dir.
        stored: u32,
        /// Slots configured now.
        configured: u32,
    },
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
    /// A node's registration is malformed or over a limit.
    #[error("registration refused: {0}")]
    BadRegistration(String),
    /// A node registers under a known id with another data dir than the one that held its
    /// shards' rows (wiped, replaced, or another node's): serving would replace trained rows
    /// with fresh ones.
    #[error(
        "node {node} registers with data dir incarnation {} but held the rows of shards {shards:?} \
         with incarnation {known}: its data dir is empty or not its own. Start it with its own \
         data dir, or with --accept-data-loss to serve those shards with fresh rows",
        if .incarnation.is_empty() { "(none)" } else { .incarnation.as_str() }
    )]
    ForeignDataDir {
        /// Node id.
        node: String,
        /// Shards it is primary of.
        shards: Vec<u32>,
        /// Incarnation the record holds.
        known: String,
        /// Incarnation it registered with ("" when it sent none).
        incarnation: String,
    },
    /// No node with that id is registered.
    #[error("unknown node {id:?}: register first")]
    UnknownNode {
        /// The id asked for.
        id: String,
    },
    /// A node that must take part is down.
    #[error("node {node} ({address}) is down; its shards {shards:?} are unavailable")]
    NodeDown {
        /// Node id.
        node: String,
        /// Last known address.
        address: String,
        /// Shards it is primary of.
        shards: Vec<u32>,
    },
    /// A call to a node failed.
    #[error("{op} on node {node} ({address}) failed: {source}")]
    NodeCall {
        /// What was asked of the node.
        op: &'static str,
        /// Node id.
        node: String,
        /// Node address.
        address: String,
        /// What went wrong, by kind.
        #[source]
        source: NodeError,
    },
    /// The cluster map changed while an operation needed it stable.
    #[error("the cluster map changed from epoch {from} to {to} during the operation; retry")]
    EpochChanged {
        /// Epoch at the start.
        from: u64,
        /// Epoch seen later.
        to: u64,
    },
    /// A plan is running; the operation must wait.
    #[error("plan {id} is running; wait for it or cancel it (`strata migration cancel`)")]
    PlanRunning {
        /// The running plan.
        id: String,
    },
    /// A plan no longer fits the cluster (it changed since the plan was made).
    #[error("the plan does not fit the cluster any more ({0}); plan again")]
    StalePlan(String),
    /// A plan could not be made.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A plan sent by a client could not be read.
    #[error("cannot read the plan: {0}")]
    BadPlan(String),
    /// There is no running plan to cancel.
    #[error("no plan is running")]
    NoPlanRunning,
}
