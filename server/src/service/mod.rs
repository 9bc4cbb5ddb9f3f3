//! The thin gRPC layer: decode, delegate to the engine or coordinator, encode.

mod cluster_coordinator;
pub mod convert;
mod coordinator;
mod hand_framed;
pub mod leader;
mod node_client;
mod parameter;
mod parameter_routes;
mod shard_control;
pub mod status;

pub use self::cluster_coordinator::ClusterCoordinatorService;
pub use self::coordinator::{map_to_pb, CoordinatorService};
pub use self::node_client::GrpcNodeControl;
pub use self::parameter::ParameterService;
pub use self::parameter_routes::parameter_routes;
pub use self::shard_control::{shard_control_routes, ShardControlService};
