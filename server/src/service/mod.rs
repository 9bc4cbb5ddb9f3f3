//! The thin gRPC layer: decode, delegate to the engine or coordinator, encode.

pub mod convert;
mod coordinator;
mod hand_framed;
pub mod leader;
mod node_client;
mod parameter;
mod parameter_routes;
mod shard_control;
pub mod status;

pub use self::convert::map_to_pb;
pub use self::coordinator::CoordinatorService;
pub use self::node_client::GrpcNodeControl;
pub use self::parameter::ParameterService;
pub use self::parameter_routes::parameter_routes;
pub use self::shard_control::{shard_control_routes, ShardControlService};
