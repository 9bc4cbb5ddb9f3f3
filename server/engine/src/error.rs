//! Errors of the engine layer: what was wrong with a request, with its context.

use thiserror::Error;

use strata_storage::spec::{shown_name, SpecError};
use strata_storage::StorageError;

/// Why the engine refused a request. A refused request changed nothing.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// A table or tensor name is empty.
    #[error("{what} name must not be empty")]
    EmptyName {
        /// "table" or "dense tensor".
        what: &'static str,
    },
    /// A table or dense spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Gradients do not match the ids and the table's dim.
    #[error("grads hold {got} floats but {ids} ids × dim {dim} need {expected}")]
    GradsLength {
        /// Floats received.
        got: usize,
        /// Ids received.
        ids: usize,
        /// The table's dim.
        dim: usize,
        /// Floats expected.
        expected: usize,
    },
    /// A dense gradient does not match the tensor's size.
    #[error("dense gradient for {} has {got} floats, tensor has {expected}", shown_name(.name))]
    DenseLength {
        /// Tensor name.
        name: String,
        /// Floats received.
        got: usize,
        /// Floats expected.
        expected: usize,
    },
    /// A dense push whose step would leave a value or optimizer state NaN or infinite.
    #[error(
        "push to dense tensor {} refused: the optimizer step would leave {count} value(s) or \
         optimizer state word(s) non-finite (first at index {index}); nothing was applied",
        shown_name(.name)
    )]
    DenseNonFiniteResult {
        /// Tensor name.
        name: String,
        /// Flat index (in values, then state) of the first non-finite word.
        index: usize,
        /// Non-finite words in all.
        count: usize,
    },
    /// A gradient value is NaN or infinite.
    #[error("gradient value at index {index} is not finite ({value})")]
    NonFinite {
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A request carries more rows than the configured limit.
    #[error("batch of {rows} rows exceeds the limit of {limit} rows per request")]
    BatchTooLarge {
        /// Rows in the request.
        rows: usize,
        /// The limit.
        limit: usize,
    },
    /// No table of that name.
    #[error("table {} not found", shown_name(.name))]
    TableNotFound {
        /// The name asked for.
        name: String,
    },
    /// A table of that name exists already.
    #[error("table {} already exists", shown_name(.name))]
    TableExists {
        /// The name asked for.
        name: String,
    },
    /// No dense tensor of that name.
    #[error("dense tensor {} not found", shown_name(.name))]
    DenseNotFound {
        /// The name asked for.
        name: String,
    },
    /// A dense tensor's values would not fit one message.
    #[error("dense tensor {} holds {bytes} bytes of values, more than one message carries ({max} bytes; see --max-message-size)", shown_name(.name))]
    DenseTooLarge {
        /// The tensor.
        name: String,
        /// Bytes of its values.
        bytes: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A dense tensor of that name exists already.
    #[error("dense tensor {} already exists", shown_name(.name))]
    DenseExists {
        /// The name asked for.
        name: String,
    },
    /// The table asks for a tier this node cannot provide.
    #[error("no CUDA device on node {node}: table {table:?} asks for tier gpu ({reason})")]
    NoGpu {
        /// This node.
        node: String,
        /// The table.
        table: String,
        /// Why no device could be used.
        reason: String,
    },
    /// The node's GPU memory budget cannot hold the table's device hash table.
    #[error("GPU memory budget exhausted: table {table:?}: {reason}")]
    GpuMemory {
        /// The table.
        table: String,
        /// What did not fit.
        reason: String,
    },
    /// The request was routed with a stale map to a node that does not own the slot.
    #[error("slot {slot} is not owned by this node at epoch {current_epoch} (request epoch {request_epoch})")]
    WrongOwner {
        /// A slot of the request this node does not own.
        slot: u32,
        /// The request's epoch.
        request_epoch: u64,
        /// This node's current epoch.
        current_epoch: u64,
    },
    /// The storage tier refused (memory budget).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A numbered push is being applied now; a copy of it must wait for its outcome.
    #[error("push {seq} of client {client:?} is being applied; its outcome is not known yet")]
    PushInFlight {
        /// The client.
        client: String,
        /// The push's sequence number.
        seq: u64,
    },
    /// A copy of a numbered push whose first copy may have been applied and lost in a
    /// restart of this node (it keeps no log): its outcome cannot be known.
    #[error(
        "push {seq} of client {client:?} was first sent before this node restarted without a \
         write-ahead log: whether it was applied cannot be known"
    )]
    PushOutcomeLost {
        /// The client.
        client: String,
        /// The push's sequence number.
        seq: u64,
    },
    /// A copy of a numbered push the client had already declared settled (late).
    #[error("push {seq} of client {client:?} arrived after the client declared it settled")]
    PushSettled {
        /// The client.
        client: String,
        /// The push's sequence number.
        seq: u64,
    },
    /// A client id is too long.
    #[error("client id of {len} bytes is longer than {max}")]
    BadClientId {
        /// Its length.
        len: usize,
        /// The longest accepted.
        max: usize,
    },
    /// The change was applied in memory but the write-ahead log could not record it: it
    /// is not acknowledged, and may not survive a restart.
    #[error("the change was applied but the write-ahead log could not record it: {reason}")]
    WalWrite {
        /// The log's error.
        reason: String,
    },
    /// A chain of checkpoints (a base and its deltas) does not fit together.
    #[error("checkpoint chain cannot be applied: {reason}")]
    BrokenChain {
        /// What does not fit.
        reason: String,
    },
}
