//! The cluster record in etcd and the election of one leading coordinator among several:
//! the etcd adapters of strata-cluster's [`RecordStore`](strata_cluster::meta_store::RecordStore)
//! seam (etcd's client speaks gRPC, so it lives on the network floor).

pub mod election;
pub mod store;
