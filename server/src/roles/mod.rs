//! Process runners of the cluster roles: `strata-server coordinator` and `strata-server shard`,
//! and shard nodes that share the coordinator's process ([`local`]).
//!
//! Each takes already-bound listeners and a shutdown future, so tests can bind port 0.

mod coordinator;
mod error;
pub mod leading;
pub mod local;
pub mod membership;
pub mod serve;
mod shard;

pub use self::coordinator::{run_coordinator, CoordinatorRoleConfig, EtcdSettings};
pub use self::error::RoleError;
pub use self::shard::{run_shard, ShardRoleConfig};
