//! Process runners of the cluster roles: `strata-server coordinator` and `strata-server shard`,
//! shard nodes that share the coordinator's process ([`local`]), and the checkpoints a
//! process writes on its own ([`durability`]: on exit, on an interval).
//!
//! Each takes already-bound listeners and a shutdown future, so tests can bind port 0.

mod coordinator;
pub mod durability;
mod error;
pub mod leading;
pub mod local;
pub mod membership;
pub mod serve;
mod shard;

pub use self::coordinator::{run_coordinator, CoordinatorRoleConfig, EtcdSettings};
pub use self::error::RoleError;
pub use self::shard::{run_shard, ShardRoleConfig};
