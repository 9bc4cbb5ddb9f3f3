//! Snapshots of the engine at one instant (whole, or the changes since a chain's last
//! checkpoint) and restores from a chain of them.
//!
//! Every table tracks which rows were written in which change epoch (storage's
//! [`FrozenTier::cut`](strata_storage::FrozenTier::cut)). A [`ChainMark`] remembers, for the
//! newest checkpoint of a chain, each table's incarnation and the epoch its rows were cut at;
//! the next snapshot taken against it holds only the rows written since, and the slot ranges
//! erased since. A table created (or dropped and created again) since the mark is copied
//! whole; a table absent from a snapshot is absent after a restore.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strata_storage::MemoryBudget;

use crate::checkpoint::{NodeSnapshot, TableChanges, TableSnapshot};
use crate::dense::DenseTensor;
use crate::wal::WalBase;
use crate::{wal_error, Engine, EngineError, Table};

/// Where a chain of checkpoints stands: per table, which incarnation of it the chain's newest
/// checkpoint holds and the change epoch its rows were cut at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainMark {
    tables: HashMap<String, TableMark>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableMark {
    incarnation: u64,
    epoch: u64,
}

impl ChainMark {
    /// The epoch since which `table`'s changes continue the chain (`None`: copy it whole).
    fn since(&self, table: &Table) -> Option<u64> {
        self.tables
            .get(&table.spec.name)
            .filter(|m| m.incarnation == table.incarnation)
            .map(|m| m.epoch)
    }
}

impl Engine {
    /// Copies every table and dense tensor out at one instant: all tables are frozen
    /// (writes held off) before the first row is copied, and thawed after the last.
    /// With a write-ahead log, the log is cut at the same instant: the snapshot holds
    /// exactly the records below its `wal_lsn`.
    pub fn snapshot(&self) -> Result<NodeSnapshot, EngineError> {
        Ok(self.snapshot_since(None)?.0)
    }

    /// [`Engine::snapshot`], holding of each table that `parent` marks only the rows written
    /// since, with the slot ranges erased since (a delta: [`TableSnapshot::changes`] is set);
    /// other tables, and every table without `parent`, whole. Returns the mark the next delta
    /// continues from, once this snapshot is safely written.
    pub fn snapshot_since(
        &self,
        parent: Option<&ChainMark>,
    ) -> Result<(NodeSnapshot, ChainMark), EngineError> {
        let cut = self.journal.exclusive();
        let tables = self.tables();
        let frozen: Vec<_> = tables.iter().map(|t| t.tier.freeze()).collect();
        let dense = self.dense_tensors().iter().map(|d| d.snapshot()).collect();
        let wal_lsn = match self.journal.wal() {
            Some(wal) => wal.cut().map_err(wal_error)?,
            None => 0,
        };
        let ledger = self.ledger.snapshot();
        drop(cut);
        let mut mark = ChainMark::default();
        let mut snaps = Vec::with_capacity(tables.len());
        for (t, f) in tables.iter().zip(&frozen) {
            let changed = match parent.and_then(|p| p.since(t)) {
                Some(since) => f.changed_since(since)?,
                None => None,
            };
            let (blocks, changes) = match changed {
                Some(c) => {
                    let changes = TableChanges {
                        erased: c.erased,
                        live_rows: t.tier.stats().rows,
                    };
                    (c.blocks, Some(changes))
                }
                None => (f.snapshot()?, None),
            };
            let epoch = f.cut();
            mark.tables.insert(
                t.spec.name.clone(),
                TableMark {
                    incarnation: t.incarnation,
                    epoch,
                },
            );
            snaps.push(TableSnapshot {
                spec: t.spec.clone(),
                row_floats: t.tier.layout().row_floats() as u32,
                blocks,
                changes,
            });
        }
        drop(frozen);
        let snap = NodeSnapshot {
            epoch: self.ownership.epoch(),
            wal_lsn,
            ledger,
            tables: snaps,
            dense,
        };
        Ok((snap, mark))
    }

    /// Replaces every table and dense tensor with the state of checkpoint `id`, given as its
    /// chain (its base first, then each delta up to it); the write-ahead log, if any, starts
    /// over on it (the records before no longer apply). Returns the chain's mark.
    pub fn restore_checkpoint(
        &self,
        id: &str,
        chain: &[NodeSnapshot],
    ) -> Result<ChainMark, EngineError> {
        let _cut = self.journal.exclusive();
        let mark = self.restore_chain(chain)?;
        if let Some(wal) = self.journal.wal() {
            let lsn = wal.cut().map_err(wal_error)?;
            wal.set_base(&WalBase {
                checkpoint: Some(id.to_string()),
                lsn,
            })
            .map_err(wal_error)?;
        }
        Ok(mark)
    }

    /// Replaces every table and dense tensor with the snapshot's (not logged: on start, or
    /// through [`Engine::restore_checkpoint`]).
    pub fn restore(&self, snap: &NodeSnapshot) -> Result<(), EngineError> {
        self.restore_chain(std::slice::from_ref(snap)).map(|_| ())
    }

    /// Replaces every table and dense tensor with the state a chain of snapshots gives (the
    /// first whole, each later one applied on the one before: tables it lacks are dropped,
    /// tables it copies whole replace theirs, and a table's changes erase their slot ranges,
    /// then overwrite or add their rows). Nothing is logged, and nothing changes when the
    /// chain does not apply. Returns the mark a delta continues the chain from.
    pub fn restore_chain(&self, chain: &[NodeSnapshot]) -> Result<ChainMark, EngineError> {
        let Some(last) = chain.last() else {
            return Err(EngineError::BrokenChain {
                reason: "empty chain".into(),
            });
        };
        // The restored tables take their device memory from a fresh GPU budget, which replaces
        // the node's when they replace the current tables.
        let gpu_budget = Arc::new(MemoryBudget::new(self.config.gpu_memory_budget));
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for (link, snap) in chain.iter().enumerate() {
            let mut next = BTreeMap::new();
            for t in &snap.tables {
                let table = match &t.changes {
                    None => {
                        t.spec.validate()?;
                        let table = self.build_table(t.spec.clone(), &gpu_budget)?;
                        table.tier.restore(&t.blocks)?;
                        table
                    }
                    Some(changes) => {
                        let table = tables
                            .remove(&t.spec.name)
                            .filter(|old| old.spec == t.spec)
                            .ok_or_else(|| EngineError::BrokenChain {
                                reason: format!(
                                    "link {link} changes table {:?}, which the link before \
                                     lacks (or holds with another spec)",
                                    t.spec.name
                                ),
                            })?;
                        apply_changes(&table, t, changes)?;
                        table
                    }
                };
                next.insert(t.spec.name.clone(), table);
            }
            // Tables the link lacks were dropped before it was taken.
            tables = next;
        }
        let dense = last
            .dense
            .iter()
            .map(|d| DenseTensor::restore(d, &self.budget))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mark = ChainMark::default();
        for table in tables.values() {
            let epoch = table.tier.freeze().cut();
            mark.tables.insert(
                table.spec.name.clone(),
                TableMark {
                    incarnation: table.incarnation,
                    epoch,
                },
            );
        }
        self.tables.clear();
        *self.gpu_budget.lock() = gpu_budget;
        for (name, t) in tables {
            self.tables.insert(name, Arc::new(t));
        }
        self.ledger.restore(&last.ledger);
        self.dense.clear();
        for d in dense {
            self.dense.insert(d.spec().name.clone(), Arc::new(d));
        }
        self.journal.changed();
        Ok(mark)
    }
}

/// Applies a delta's changes of one table to the table restored so far (not yet serving).
fn apply_changes(
    table: &Table,
    t: &TableSnapshot,
    changes: &TableChanges,
) -> Result<(), EngineError> {
    if !changes.erased.is_empty() {
        table.tier.erase_slots(&changes.erased)?;
    }
    for block in t.blocks.iter().filter(|b| !b.ids.is_empty()) {
        table.tier.import_rows(block)?;
    }
    Ok(())
}
