//! Domain errors → gRPC status codes, in exactly one place.

use strata_proto::wire::payload::PayloadError;
use tonic::{Code, Status};

use super::convert::ConvertError;
use crate::migration::MigrationError;
use crate::shard_node::ShardNodeError;
use strata_cluster::cluster::{NodeError, NodeErrorKind};
use strata_cluster::meta_store::MetaStoreError;
use strata_cluster::plan::PlanError;
use strata_cluster::CoordinatorError;
use strata_engine::checkpoint::CheckpointError;
use strata_engine::EngineError;
use strata_storage::StorageError;

pub use strata_proto::transport::EPOCH_METADATA;

/// The status code DESIGN.md names for each engine error.
pub fn engine_code(err: &EngineError) -> Code {
    match err {
        EngineError::EmptyName { .. }
        | EngineError::Spec(_)
        | EngineError::GradsLength { .. }
        | EngineError::DenseLength { .. }
        | EngineError::DenseNonFiniteResult { .. }
        | EngineError::NonFinite { .. } => Code::InvalidArgument,
        EngineError::BatchTooLarge { .. }
        | EngineError::GpuMemory { .. }
        | EngineError::DenseTooLarge { .. } => Code::ResourceExhausted,
        EngineError::TableNotFound { .. } | EngineError::DenseNotFound { .. } => Code::NotFound,
        EngineError::TableExists { .. } | EngineError::DenseExists { .. } => Code::AlreadyExists,
        EngineError::NoGpu { .. } | EngineError::WrongOwner { .. } => Code::FailedPrecondition,
        EngineError::Storage(StorageError::MemoryBudget { .. }) => Code::ResourceExhausted,
        EngineError::Storage(StorageError::NonFiniteResult { .. }) => Code::InvalidArgument,
        EngineError::Storage(StorageError::BadBlock { .. } | StorageError::Device(_)) => {
            Code::Internal
        }
        // Applied but not made durable: the caller cannot know what a restart keeps.
        EngineError::WalWrite { .. } | EngineError::PushInFlight { .. } => Code::Unavailable,
        EngineError::BadClientId { .. } => Code::InvalidArgument,
        EngineError::BrokenChain { .. } => Code::DataLoss,
        EngineError::PushOutcomeLost { .. } | EngineError::PushSettled { .. } => Code::Aborted,
    }
}

/// `INTERNAL` for one of strata's own faults, logged with its context: the code is kept for
/// those (a request the sender got wrong has a code of its own).
pub fn internal(err: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %err, "internal error answered to a request");
    Status::internal(err.to_string())
}

/// A status for an engine error; stale routing carries the current epoch in metadata.
pub fn from_engine(err: EngineError) -> Status {
    let code = engine_code(&err);
    if code == Code::Internal {
        return internal(&err);
    }
    let mut status = Status::new(code, err.to_string());
    if let EngineError::WrongOwner { current_epoch, .. } = err {
        if let Ok(v) = current_epoch.to_string().parse() {
            status.metadata_mut().insert(EPOCH_METADATA, v);
        }
    }
    status
}

/// Why a data-path request was refused: its payload could not be decoded, or the engine
/// refused it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A packed payload has the wrong length.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A status for a refused data-path request.
pub fn from_request(err: RequestError) -> Status {
    match err {
        RequestError::Payload(e) => from_payload(e),
        RequestError::Engine(e) => from_engine(e),
    }
}

/// A status for a payload that cannot be decoded.
pub fn from_payload(err: PayloadError) -> Status {
    Status::invalid_argument(err.to_string())
}

/// A status for a malformed message.
pub fn from_convert(err: ConvertError) -> Status {
    Status::invalid_argument(err.to_string())
}

/// The status for a coordinator error.
pub fn from_coordinator(err: CoordinatorError) -> Status {
    match err {
        CoordinatorError::Spec(_) | CoordinatorError::BadRegistration(_) => {
            Status::invalid_argument(err.to_string())
        }
        CoordinatorError::TableNotFound { .. } | CoordinatorError::DenseNotFound { .. } => {
            Status::not_found(err.to_string())
        }
        CoordinatorError::TableExists { .. } | CoordinatorError::DenseExists { .. } => {
            Status::already_exists(err.to_string())
        }
        CoordinatorError::NoSuchCheckpoint { .. } | CoordinatorError::UnknownNode { .. } => {
            Status::not_found(err.to_string())
        }
        CoordinatorError::NodeDown { .. } => Status::unavailable(err.to_string()),
        CoordinatorError::NodeCall { ref source, .. } => {
            Status::new(node_error_code(source.kind), err.to_string())
        }
        CoordinatorError::CheckpointPartMissing { .. } => Status::not_found(err.to_string()),
        CoordinatorError::CheckpointPartCorrupt { .. } => Status::data_loss(err.to_string()),
        CoordinatorError::NotRestorable { .. } | CoordinatorError::ForeignDataDir { .. } => {
            Status::failed_precondition(err.to_string())
        }
        CoordinatorError::EpochChanged { .. } => Status::aborted(err.to_string()),
        CoordinatorError::PlanRunning { .. }
        | CoordinatorError::StalePlan(_)
        | CoordinatorError::NoPlanRunning => Status::failed_precondition(err.to_string()),
        CoordinatorError::Plan(PlanError::NoRoom { .. }) => {
            Status::resource_exhausted(err.to_string())
        }
        CoordinatorError::Plan(PlanError::UnknownNode { .. }) => Status::not_found(err.to_string()),
        CoordinatorError::Plan(PlanError::NoNodes) => Status::failed_precondition(err.to_string()),
        CoordinatorError::Plan(_) | CoordinatorError::BadPlan(_) => {
            Status::invalid_argument(err.to_string())
        }
        CoordinatorError::MetaStore(MetaStoreError::Fenced { .. }) => {
            super::leader::not_leader(err.to_string(), "")
        }
        CoordinatorError::MetaStore(ref e) if e.is_out_of_space() => {
            Status::resource_exhausted(err.to_string())
        }
        CoordinatorError::MetaStore(_)
        | CoordinatorError::SlotMismatch { .. }
        | CoordinatorError::Task(_) => internal(&err),
    }
}

/// The status for a shard-node error.
pub fn from_shard_node(err: ShardNodeError) -> Status {
    match err {
        ShardNodeError::Engine(e) => from_engine(e),
        ShardNodeError::WrongEpoch { .. } | ShardNodeError::NotServed { .. } => {
            Status::failed_precondition(err.to_string())
        }
        ShardNodeError::BadMove { .. } => Status::invalid_argument(err.to_string()),
        ShardNodeError::NoGoodCheckpoint { .. } => Status::data_loss(err.to_string()),
        ShardNodeError::ShuttingDown => Status::unavailable(err.to_string()),
        ShardNodeError::Checkpoint(CheckpointError::NotFound { .. }) => {
            Status::not_found(err.to_string())
        }
        ShardNodeError::Checkpoint(CheckpointError::Corrupt { .. }) => {
            Status::data_loss(err.to_string())
        }
        ShardNodeError::Checkpoint(CheckpointError::InvalidId { .. }) => {
            Status::invalid_argument(err.to_string())
        }
        ShardNodeError::Checkpoint(ref e) if e.is_out_of_space() => {
            Status::resource_exhausted(err.to_string())
        }
        ShardNodeError::Checkpoint(_) | ShardNodeError::NodeId { .. } | ShardNodeError::Task(_) => {
            internal(&err)
        }
        ShardNodeError::Migration(e) => from_migration(e),
        ShardNodeError::Wal(_)
        | ShardNodeError::WalNotEnabled { .. }
        | ShardNodeError::WalBaseMissing { .. } => internal(&err),
    }
}

/// The status for a migration error.
pub fn from_migration(err: MigrationError) -> Status {
    match err {
        MigrationError::Engine(e) => from_engine(e),
        MigrationError::Storage(e) => from_engine(e.into()),
        MigrationError::Ownership(_) | MigrationError::AlreadyServed { .. } => {
            Status::failed_precondition(err.to_string())
        }
        MigrationError::Destination { .. } => Status::unavailable(err.to_string()),
        MigrationError::Aborted { .. } | MigrationError::CatalogChanged { .. } => {
            Status::aborted(err.to_string())
        }
        MigrationError::BadStream(_) | MigrationError::Payload(_) => {
            Status::invalid_argument(err.to_string())
        }
        MigrationError::ProgressClosed => Status::cancelled(err.to_string()),
        MigrationError::Task(_) => internal(&err),
    }
}

/// The status code a node failure of `kind` is passed on with.
pub fn node_error_code(kind: NodeErrorKind) -> Code {
    match kind {
        NodeErrorKind::InvalidArgument => Code::InvalidArgument,
        NodeErrorKind::NotFound => Code::NotFound,
        NodeErrorKind::FailedPrecondition => Code::FailedPrecondition,
        NodeErrorKind::ResourceExhausted => Code::ResourceExhausted,
        NodeErrorKind::Aborted => Code::Aborted,
        NodeErrorKind::Cancelled => Code::Cancelled,
        NodeErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        NodeErrorKind::Unavailable => Code::Unavailable,
        NodeErrorKind::DataLoss => Code::DataLoss,
        NodeErrorKind::Internal => Code::Internal,
    }
}

/// The node failure a status from a node (or its transport) stands for.
pub fn node_error(status: &Status) -> NodeError {
    let kind = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => NodeErrorKind::InvalidArgument,
        Code::NotFound => NodeErrorKind::NotFound,
        Code::FailedPrecondition | Code::AlreadyExists => NodeErrorKind::FailedPrecondition,
        Code::ResourceExhausted => NodeErrorKind::ResourceExhausted,
        Code::Aborted => NodeErrorKind::Aborted,
        Code::Cancelled => NodeErrorKind::Cancelled,
        Code::DeadlineExceeded => NodeErrorKind::DeadlineExceeded,
        Code::Unavailable => NodeErrorKind::Unavailable,
        Code::DataLoss => NodeErrorKind::DataLoss,
        Code::Ok
        | Code::Unknown
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented
        | Code::Internal => NodeErrorKind::Internal,
    };
    NodeError::new(kind, status.message())
}

/// The node failure a shard-node error stands for, for a node in the coordinator's own
/// process (the same kind a remote call would report).
pub fn node_error_of(err: ShardNodeError) -> NodeError {
    node_error(&from_shard_node(err))
}
