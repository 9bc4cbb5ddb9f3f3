//! Data dirs of `strata-server dev` from before it ran the cluster coordinator kept their
//! catalog in `cluster.json`. Opened for the first time, that catalog becomes the first
//! cluster record, so its tables (and the rows of their checkpoints) survive the upgrade.

use std::path::Path;

use serde::Deserialize;

use crate::meta_store::FileMetaStore;
use crate::record::{new_record, ClusterRecord};
use crate::CoordinatorError;
use strata_storage::spec::{DenseSpec, TableSpec};

/// The file the single-node catalog was kept in.
const LEGACY_FILE: &str = "cluster.json";

/// The single-node catalog as it was stored.
#[derive(Deserialize)]
struct DevState {
    epoch: u64,
    num_slots: u32,
    shard_count: u32,
    tables: Vec<TableSpec>,
    dense: Vec<DenseSpec>,
}

/// The cluster record a single-node catalog in `data_dir` stands for, if there is one.
pub fn carry_over(
    data_dir: &Path,
    num_slots: u32,
) -> Result<Option<ClusterRecord>, CoordinatorError> {
    let store = FileMetaStore::open_file(data_dir, LEGACY_FILE)?;
    let Some(state) = store.load_json::<DevState>()? else {
        return Ok(None);
    };
    if state.num_slots != num_slots {
        return Err(CoordinatorError::SlotMismatch {
            stored: state.num_slots,
            configured: num_slots,
        });
    }
    let mut record = new_record(state.shard_count.max(1), state.num_slots);
    record.epoch = state.epoch;
    record.tables = state.tables;
    record.dense = state.dense;
    tracing::info!(
        tables = record.tables.len(),
        "carried the catalog of a single-node data dir into the cluster record"
    );
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_catalog_becomes_the_first_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(carry_over(dir.path(), 4096).expect("none").is_none());
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            br#"{"epoch":5,"num_slots":4096,"shard_count":4,"tables":[],"dense":[]}"#,
        )
        .expect("write");
        let record = carry_over(dir.path(), 4096)
            .expect("read")
            .expect("a record");
        assert_eq!((record.epoch, record.shards.len()), (5, 4));
        assert!(record.shards.iter().all(|s| s.primary.is_empty()));
        assert!(matches!(
            carry_over(dir.path(), 1024),
            Err(CoordinatorError::SlotMismatch { .. })
        ));
    }
}
