//! The catalog: tables and dense tensors are created and dropped on every node together,
//! and taken back everywhere when a node refuses them for good.

use futures::future::join_all;

use super::{bounded, ClusterCoordinator};
use crate::node_control::NodeError;
use crate::plan_record::PlanState;
use crate::record::ClusterRecord;
use crate::CoordinatorError;
use strata_storage::spec::{DenseSpec, TableSpec};

impl ClusterCoordinator {
    /// Changes the catalog with `change`, saves it, and pushes it to every up node.
    async fn change_catalog(
        &self,
        change: impl FnOnce(&mut ClusterRecord) -> Result<(), CoordinatorError>,
    ) -> Result<(), CoordinatorError> {
        let _serial = self.ops.lock().await;
        let before = {
            let mut guard = self.state.lock();
            refuse_while_planning(&guard.0)?;
            let before = guard.0.clone();
            let mut next = before.clone();
            change(&mut next)?;
            next.catalog_version += 1;
            self.store.save_record(&next)?;
            guard.0 = next;
            before
        };
        let Some((node, address, source)) = self.push_catalog().await else {
            return Ok(());
        };
        // A node refused the change for good (a GPU table on a node without a GPU, a table
        // over its budget): take it back everywhere rather than leave a catalog that node
        // can never hold.
        {
            let mut guard = self.state.lock();
            let mut next = guard.0.clone();
            next.tables = before.tables;
            next.dense = before.dense;
            next.catalog_version += 1;
            self.store.save_record(&next)?;
            guard.0 = next;
        }
        self.push_catalog().await;
        Err(CoordinatorError::NodeCall {
            op: "ApplyCatalog",
            node,
            address,
            source,
        })
    }

    /// Sends the current catalog to every up node (nodes that miss it catch up by
    /// heartbeat). Returns the first node that refused it for good, with its error.
    pub(super) async fn push_catalog(&self) -> Option<(String, String, NodeError)> {
        let catalog = self.catalog();
        let nodes = self.up_nodes();
        let results = join_all(
            nodes
                .iter()
                .map(|(_, address)| bounded(self.nodes.apply_catalog(address, &catalog))),
        )
        .await;
        let mut refused = None;
        for ((id, address), r) in nodes.into_iter().zip(results) {
            match r {
                Ok(()) => {}
                Err(error) if error.kind.is_retryable() => {
                    // The catalog is stored; the node gets it with its next heartbeat answer.
                    tracing::warn!(node = %id, %address, %error, "catalog not applied yet");
                }
                Err(error) => {
                    tracing::warn!(node = %id, %address, %error, "the node refused the catalog");
                    refused.get_or_insert((id, address, error));
                }
            }
        }
        refused
    }

    /// Creates a table on every node.
    pub async fn create_table(&self, spec: TableSpec) -> Result<TableSpec, CoordinatorError> {
        spec.validate()?;
        let created = spec.clone();
        self.change_catalog(move |r| {
            if r.tables.iter().any(|t| t.name == spec.name) {
                return Err(CoordinatorError::TableExists { name: spec.name });
            }
            r.tables.push(spec);
            Ok(())
        })
        .await?;
        Ok(created)
    }

    /// Drops a table on every node.
    pub async fn drop_table(&self, name: &str) -> Result<(), CoordinatorError> {
        self.change_catalog(|r| {
            if !r.tables.iter().any(|t| t.name == name) {
                return Err(CoordinatorError::TableNotFound { name: name.into() });
            }
            r.tables.retain(|t| t.name != name);
            Ok(())
        })
        .await
    }

    /// Creates a dense tensor on every node.
    pub async fn create_dense(&self, spec: DenseSpec) -> Result<DenseSpec, CoordinatorError> {
        spec.validate()?;
        let created = spec.clone();
        self.change_catalog(move |r| {
            if r.dense.iter().any(|d| d.name == spec.name) {
                return Err(CoordinatorError::DenseExists { name: spec.name });
            }
            r.dense.push(spec);
            Ok(())
        })
        .await?;
        Ok(created)
    }

    /// Drops a dense tensor on every node.
    pub async fn drop_dense(&self, name: &str) -> Result<(), CoordinatorError> {
        self.change_catalog(|r| {
            if !r.dense.iter().any(|d| d.name == name) {
                return Err(CoordinatorError::DenseNotFound { name: name.into() });
            }
            r.dense.retain(|d| d.name != name);
            Ok(())
        })
        .await
    }
}

/// Refuses catalog changes and checkpoints while a plan moves data.
pub(crate) fn refuse_while_planning(record: &ClusterRecord) -> Result<(), CoordinatorError> {
    match &record.plan {
        Some(p) if p.state == PlanState::Running => {
            Err(CoordinatorError::PlanRunning { id: p.id.clone() })
        }
        _ => Ok(()),
    }
}
