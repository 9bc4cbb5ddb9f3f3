//! The checkpoint directory: staging, atomic commit, listing, verification, loading, pruning.
//!
//! Layout under `<data_dir>/checkpoints/`:
//! ```text
//! LAST_ID                 highest id ever handed out (ids are never reused)
//! ckpt-00000042/          a committed checkpoint: MANIFEST.json, table-NNNN.bin, dense-NNNN.bin
//! ckpt-00000043.staging/  being written (removed by `open` after a crash)
//! ckpt-00000040.trash/    being deleted by `prune` (removed by `open` after a crash)
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::CheckpointError;
use super::format::{self, Expect};
use super::manifest::{
    dense_file, table_file, DenseEntry, FileEntry, FileKind, Manifest, TableEntry, FORMAT_VERSION,
};
use super::{DenseSnapshot, NodeSnapshot, TableSnapshot};

/// Subdirectory of the data dir holding checkpoints.
const CHECKPOINTS_DIR: &str = "checkpoints";
/// File recording the highest id ever handed out.
const LAST_ID_FILE: &str = "LAST_ID";
/// Suffix of a checkpoint being written.
const STAGING_SUFFIX: &str = ".staging";
/// Suffix of a checkpoint being deleted.
const TRASH_SUFFIX: &str = ".trash";
/// Prefix of checkpoint ids.
const ID_PREFIX: &str = "ckpt-";

/// Whether a checkpoint passed full verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointState {
    /// Manifest and every data file verified.
    Ok,
    /// Verification failed; the checkpoint must not be loaded.
    Corrupt {
        /// The failing file and what is wrong with it.
        reason: String,
    },
}

/// Summary of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Id, e.g. `ckpt-00000042`; ids sort by creation and are never reused.
    pub id: String,
    /// Wall-clock creation time, ms since the Unix epoch (0 if the manifest is unreadable).
    pub created_unix_ms: u64,
    /// Bytes on disk (manifest + data files, as recorded).
    pub bytes: u64,
    /// Number of tables.
    pub tables: u32,
    /// Number of dense tensors.
    pub dense: u32,
    /// Total table rows.
    pub rows: u64,
    /// Cluster-map epoch of the snapshot.
    pub epoch: u64,
    /// Verification result.
    pub state: CheckpointState,
}

impl CheckpointInfo {
    pub(crate) fn from_manifest(m: &Manifest, manifest_bytes: u64, state: CheckpointState) -> Self {
        CheckpointInfo {
            id: m.id.clone(),
            created_unix_ms: m.created_unix_ms,
            bytes: manifest_bytes + m.data_bytes(),
            tables: u32::try_from(m.tables.len()).unwrap_or(u32::MAX),
            dense: u32::try_from(m.dense.len()).unwrap_or(u32::MAX),
            rows: m.rows(),
            epoch: m.epoch,
            state,
        }
    }

    fn unreadable(id: &str, reason: String) -> Self {
        CheckpointInfo {
            id: id.to_owned(),
            created_unix_ms: 0,
            bytes: 0,
            tables: 0,
            dense: 0,
            rows: 0,
            epoch: 0,
            state: CheckpointState::Corrupt { reason },
        }
    }
}

/// Formats the id of checkpoint number `n`.
fn format_id(n: u64) -> String {
    format!("{ID_PREFIX}{n:08}")
}

/// Parses a canonical checkpoint id (`ckpt-` + at least 8 digits, no extra leading zeros).
fn parse_id(s: &str) -> Option<u64> {
    let digits = s.strip_prefix(ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (format_id(n) == s).then_some(n)
}

fn fsync_dir(path: &Path) -> Result<(), CheckpointError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| CheckpointError::io("fsync dir", path, e))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checkpoints under `<data_dir>/checkpoints/`.
#[derive(Debug)]
pub struct CheckpointStore {
    /// `<data_dir>/checkpoints`.
    root: PathBuf,
    /// Highest id handed out so far (persisted in `LAST_ID` before use).
    last_id: Mutex<u64>,
    /// Checkpoints seen to fail verification: retention keeps them (they may be the only
    /// copy of older data) and they are never loaded.
    corrupt: Mutex<BTreeSet<String>>,
}

/// A fully written, fsynced checkpoint under its staging name; [`commit`](Self::commit) publishes it.
///
/// Dropping it without committing removes the staging directory.
#[derive(Debug)]
pub struct StagedCheckpoint {
    root: PathBuf,
    staging: PathBuf,
    info: CheckpointInfo,
    done: bool,
}

impl StagedCheckpoint {
    /// The id this checkpoint will have once committed.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Renames the staging directory to its final name and fsyncs the parent directory.
    pub fn commit(mut self) -> Result<CheckpointInfo, CheckpointError> {
        let dest = self.root.join(&self.info.id);
        fs::rename(&self.staging, &dest).map_err(|e| CheckpointError::io("rename", &dest, e))?;
        self.done = true;
        fsync_dir(&self.root)?;
        tracing::info!(id = %self.info.id, bytes = self.info.bytes, rows = self.info.rows, "checkpoint committed");
        Ok(self.info.clone())
    }
}

impl Drop for StagedCheckpoint {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = fs::remove_dir_all(&self.staging) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.staging.display(), error = %e, "cannot remove abandoned staging checkpoint");
                }
            }
        }
    }
}

impl CheckpointStore {
    /// Opens (creating) `<data_dir>/checkpoints/` and removes leftovers of interrupted writes.
    pub fn open(data_dir: &Path) -> Result<Self, CheckpointError> {
        let root = data_dir.join(CHECKPOINTS_DIR);
        if !root.is_dir() {
            fs::create_dir_all(&root).map_err(|e| CheckpointError::io("create dir", &root, e))?;
            fsync_dir(data_dir)?;
        }
        let mut max_id = 0u64;
        let mut cleaned = false;
        for entry in fs::read_dir(&root).map_err(|e| CheckpointError::io("read dir", &root, e))? {
            let entry = entry.map_err(|e| CheckpointError::io("read dir", &root, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            let leftover = name
                .strip_suffix(STAGING_SUFFIX)
                .or_else(|| name.strip_suffix(TRASH_SUFFIX));
            if let Some(base) = leftover {
                if let Some(n) = parse_id(base) {
                    max_id = max_id.max(n);
                }
                tracing::warn!(path = %path.display(), "removing leftover of an interrupted checkpoint write/prune");
                fs::remove_dir_all(&path)
                    .map_err(|e| CheckpointError::io("remove dir", &path, e))?;
                cleaned = true;
            } else if name == format!("{LAST_ID_FILE}.tmp") {
                fs::remove_file(&path).map_err(|e| CheckpointError::io("remove", &path, e))?;
                cleaned = true;
            } else if let Some(n) = parse_id(name) {
                max_id = max_id.max(n);
            }
        }
        if cleaned {
            fsync_dir(&root)?;
        }
        let last_path = root.join(LAST_ID_FILE);
        match fs::read_to_string(&last_path) {
            Ok(s) => match s.trim().parse::<u64>() {
                Ok(n) => max_id = max_id.max(n),
                Err(_) => {
                    tracing::warn!(path = %last_path.display(), "unreadable LAST_ID; using the highest id on disk")
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(CheckpointError::io("read", &last_path, e)),
        }
        Ok(CheckpointStore {
            root,
            last_id: Mutex::new(max_id),
            corrupt: Mutex::new(BTreeSet::new()),
        })
    }

    /// The checkpoints directory (`<data_dir>/checkpoints`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `snap` as a new checkpoint and commits it: `stage(snap)?.commit()`.
    pub fn write(&self, snap: &NodeSnapshot) -> Result<CheckpointInfo, CheckpointError> {
        self.stage(snap)?.commit()
    }

    /// Hands out the next id, persisting it first so it is never reused.
    fn next_id(&self) -> Result<u64, CheckpointError> {
        let mut last = self.last_id.lock();
        let n = *last + 1;
        let tmp = self.root.join(format!("{LAST_ID_FILE}.tmp"));
        let dest = self.root.join(LAST_ID_FILE);
        let mut f = fs::File::create(&tmp).map_err(|e| CheckpointError::io("create", &tmp, e))?;
        f.write_all(format!("{n}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| CheckpointError::io("write", &tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| CheckpointError::io("rename", &dest, e))?;
        fsync_dir(&self.root)?;
        *last = n;
        Ok(n)
    }

    /// Writes `snap` under a staging name, every file fsynced, the manifest last.
    pub fn stage(&self, snap: &NodeSnapshot) -> Result<StagedCheckpoint, CheckpointError> {
        // Validate before consuming an id or touching the disk.
        let mut table_rows = Vec::with_capacity(snap.tables.len());
        for t in &snap.tables {
            table_rows.push(format::table_rows(t)?);
        }
        let id = format_id(self.next_id()?);
        let staging = self.root.join(format!("{id}{STAGING_SUFFIX}"));
        fs::create_dir(&staging).map_err(|e| CheckpointError::io("create dir", &staging, e))?;
        let mut staged = StagedCheckpoint {
            root: self.root.clone(),
            staging,
            info: CheckpointInfo::unreadable(&id, String::new()),
            done: false,
        };
        // From here on, an early return drops `staged`, which removes the staging dir.
        let mut tables = Vec::with_capacity(snap.tables.len());
        for (i, (t, rows)) in snap.tables.iter().zip(table_rows).enumerate() {
            tables.push(self.stage_table(&staged.staging, i, t, rows)?);
        }
        let mut dense = Vec::with_capacity(snap.dense.len());
        for (i, d) in snap.dense.iter().enumerate() {
            dense.push(self.stage_dense(&staged.staging, i, d)?);
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            id: id.clone(),
            created_unix_ms: now_unix_ms(),
            epoch: snap.epoch,
            wal_lsn: snap.wal_lsn,
            ledger: snap.ledger.clone(),
            tables,
            dense,
        };
        let manifest_bytes = manifest.write(&staged.staging)?;
        fsync_dir(&staged.staging)?;
        staged.info = CheckpointInfo::from_manifest(&manifest, manifest_bytes, CheckpointState::Ok);
        Ok(staged)
    }

    fn stage_table(
        &self,
        dir: &Path,
        index: usize,
        t: &TableSnapshot,
        rows: u64,
    ) -> Result<TableEntry, CheckpointError> {
        let file = table_file(index);
        let w = format::write_table(&dir.join(&file), t)?;
        Ok(TableEntry {
            spec: t.spec.clone(),
            row_floats: t.row_floats,
            rows,
            blocks: t.blocks.len() as u64,
            data: FileEntry {
                file,
                kind: FileKind::Table,
                name: t.spec.name.clone(),
                bytes: w.bytes,
                crc32: w.crc32,
            },
        })
    }

    fn stage_dense(
        &self,
        dir: &Path,
        index: usize,
        d: &DenseSnapshot,
    ) -> Result<DenseEntry, CheckpointError> {
        let file = dense_file(index);
        let w = format::write_dense(&dir.join(&file), d)?;
        Ok(DenseEntry {
            spec: d.spec.clone(),
            words: d.data.len() as u64,
            data: FileEntry {
                file,
                kind: FileKind::Dense,
                name: d.spec.name.clone(),
                bytes: w.bytes,
                crc32: w.crc32,
            },
        })
    }

    /// Ids of committed checkpoints, newest first.
    fn committed_ids(&self) -> Result<Vec<(u64, String)>, CheckpointError> {
        let mut ids = Vec::new();
        let rd =
            fs::read_dir(&self.root).map_err(|e| CheckpointError::io("read dir", &self.root, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| CheckpointError::io("read dir", &self.root, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = parse_id(name) {
                if entry.path().is_dir() {
                    ids.push((n, name.to_owned()));
                }
            }
        }
        ids.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        Ok(ids)
    }

    /// Reads checkpoint `id`, verifying every checksum; decodes the data only when `load`.
    fn read(&self, id: &str, load: bool) -> Result<(Manifest, u64, NodeSnapshot), CheckpointError> {
        let dir = self.root.join(id);
        let (m, manifest_bytes) = Manifest::read(&dir, id)?;
        let mut scratch = Vec::new();
        let mut snap = NodeSnapshot {
            epoch: m.epoch,
            wal_lsn: m.wal_lsn,
            ledger: if load { m.ledger.clone() } else { Vec::new() },
            tables: Vec::with_capacity(if load { m.tables.len() } else { 0 }),
            dense: Vec::with_capacity(if load { m.dense.len() } else { 0 }),
        };
        for t in &m.tables {
            let exp = Expect {
                id,
                file: &t.data.file,
                kind: FileKind::Table,
                row_floats: t.row_floats,
                rows: t.rows,
                blocks: t.blocks,
                bytes: t.data.bytes,
                crc32: t.data.crc32,
            };
            let blocks = format::read_table(&dir.join(&t.data.file), exp, load, &mut scratch)?;
            if load {
                snap.tables.push(TableSnapshot {
                    spec: t.spec.clone(),
                    row_floats: t.row_floats,
                    blocks,
                });
            }
        }
        for d in &m.dense {
            let exp = Expect {
                id,
                file: &d.data.file,
                kind: FileKind::Dense,
                row_floats: 1,
                rows: d.words,
                blocks: 0,
                bytes: d.data.bytes,
                crc32: d.data.crc32,
            };
            let data = format::read_dense(&dir.join(&d.data.file), exp, load, &mut scratch)?;
            if load {
                snap.dense.push(DenseSnapshot {
                    spec: d.spec.clone(),
                    data,
                });
            }
        }
        Ok((m, manifest_bytes, snap))
    }

    /// Fully verifies checkpoint `id` (manifest and every data file's length and crc32).
    pub fn verify(&self, id: &str) -> Result<CheckpointInfo, CheckpointError> {
        self.check_id(id)?;
        match self.read(id, false) {
            Ok((m, mb, _)) => Ok(CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok)),
            Err(CheckpointError::Corrupt { file, reason, .. }) => {
                self.corrupt.lock().insert(id.to_owned());
                let reason = format!("{file}: {reason}");
                // Report what the manifest says when it is readable.
                let dir = self.root.join(id);
                Ok(match Manifest::read(&dir, id) {
                    Ok((m, mb)) => {
                        CheckpointInfo::from_manifest(&m, mb, CheckpointState::Corrupt { reason })
                    }
                    Err(_) => CheckpointInfo::unreadable(id, reason),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// All committed checkpoints, newest first, each fully verified.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>, CheckpointError> {
        let mut out = Vec::new();
        for (_, id) in self.committed_ids()? {
            match self.verify(&id) {
                Ok(info) => out.push(info),
                // Pruned concurrently.
                Err(CheckpointError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Checks that `id` is a well-formed id of an existing committed checkpoint.
    fn check_id(&self, id: &str) -> Result<(), CheckpointError> {
        if parse_id(id).is_none() {
            return Err(CheckpointError::InvalidId { id: id.to_owned() });
        }
        if !self.root.join(id).is_dir() {
            return Err(CheckpointError::NotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Loads checkpoint `id`, verifying every length and checksum before returning data.
    pub fn load(&self, id: &str) -> Result<NodeSnapshot, CheckpointError> {
        Ok(self.load_with_info(id)?.1)
    }

    /// [`CheckpointStore::load`] with the checkpoint's summary, from the same verified read.
    pub fn load_with_info(
        &self,
        id: &str,
    ) -> Result<(CheckpointInfo, NodeSnapshot), CheckpointError> {
        self.check_id(id)?;
        let (m, mb, snap) = self.read(id, true)?;
        Ok((
            CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok),
            snap,
        ))
    }

    /// Loads the newest checkpoint that verifies; newer corrupt ones are logged, skipped and
    /// remembered (see [`CheckpointStore::corrupt_ids`]).
    pub fn load_latest_good(
        &self,
    ) -> Result<Option<(CheckpointInfo, NodeSnapshot)>, CheckpointError> {
        for (_, id) in self.committed_ids()? {
            match self.read(&id, true) {
                Ok((m, mb, snap)) => {
                    let info = CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok);
                    return Ok(Some((info, snap)));
                }
                Err(CheckpointError::Corrupt { file, reason, .. }) => {
                    tracing::error!(%id, %file, %reason, "corrupt checkpoint skipped; trying an older one");
                    self.corrupt.lock().insert(id);
                }
                Err(CheckpointError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The checkpoints seen to fail verification so far, oldest first.
    pub fn corrupt_ids(&self) -> Vec<String> {
        self.corrupt.lock().iter().cloned().collect()
    }

    /// Keeps the newest `keep` good checkpoints and deletes the checkpoints older than them,
    /// except those seen to be corrupt: they may be the only copy of older data, and stay for
    /// inspection (an operator deletes them). Returns how many were deleted.
    ///
    /// `keep == 0` deletes every good checkpoint. Ids are never reused afterwards.
    pub fn prune(&self, keep: usize) -> Result<usize, CheckpointError> {
        let mut good = 0usize;
        let mut deleted = 0usize;
        for (_, id) in self.committed_ids()? {
            if good < keep {
                if self.verify(&id)?.state == CheckpointState::Ok {
                    good += 1;
                }
                continue;
            }
            if self.corrupt.lock().contains(&id) {
                tracing::warn!(%id, "corrupt checkpoint kept for inspection; delete it by hand once it is not needed");
                continue;
            }
            // Rename first so a crash mid-delete never leaves a half-deleted "committed" dir.
            let dir = self.root.join(&id);
            let trash = self.root.join(format!("{id}{TRASH_SUFFIX}"));
            fs::rename(&dir, &trash).map_err(|e| CheckpointError::io("rename", &dir, e))?;
            fsync_dir(&self.root)?;
            fs::remove_dir_all(&trash).map_err(|e| CheckpointError::io("remove dir", &trash, e))?;
            tracing::info!(%id, "checkpoint pruned");
            deleted += 1;
        }
        if deleted > 0 {
            fsync_dir(&self.root)?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn checkpoint_ids_parse_canonical_only() {
        assert_eq!(parse_id("ckpt-00000042"), Some(42));
        assert_eq!(format_id(42), "ckpt-00000042");
        assert_eq!(parse_id("ckpt-123456789"), Some(123_456_789));
        assert_eq!(parse_id("ckpt-42"), None);
        assert_eq!(parse_id("ckpt-00000042.staging"), None);
        assert_eq!(parse_id("../ckpt-00000042"), None);
        assert_eq!(parse_id("ckpt-+0000042"), None);
    }
}
