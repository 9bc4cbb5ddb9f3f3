//! Coordinator restart with the file store: the map, tables and data survive, and a client
//! connected before the restart carries on.

use strata_tests::cluster::{Cluster, CoordinatorProcess};

#[tokio::test]
async fn coordinator_restart_keeps_map_tables_and_data() {
    let root = tempfile::tempdir().expect("tempdir");
    let args = ["--heartbeat-timeout", "2s"];
    let mut cluster = Cluster::start(root.path(), 3, &args)
        .await
        .expect("cluster");
    let data_dir = root.path().join("coordinator");
    cluster
        .check_coordinator_restart(|address| CoordinatorProcess::start(address, &data_dir, &args))
        .await
        .expect("the restart keeps map, tables and data");
}
