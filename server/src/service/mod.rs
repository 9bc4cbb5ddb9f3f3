//! The thin gRPC layer: decode, delegate to the engine or coordinator, encode.

pub mod convert;
mod coordinator;
mod parameter;
pub mod status;

pub use self::coordinator::{map_to_pb, CoordinatorService};
pub use self::parameter::ParameterService;
