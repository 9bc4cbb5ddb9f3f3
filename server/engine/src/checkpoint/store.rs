//! The checkpoint directory: staging, atomic commit, listing, verification, loading, pruning.
//!
//! Layout under `<data_dir>/checkpoints/`:
//! ```text
//! LAST_ID                 highest id ever handed out (ids are never reused)
//! ckpt-00000042/          a committed checkpoint: MANIFEST.json, table-NNNN.bin, dense-NNNN.bin
//! ckpt-00000043.staging/  being written (removed by `open` after a crash)
//! ckpt-00000040.trash/    being deleted by `prune` (removed by `open` after a crash)
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::CheckpointError;
use super::format::{self, Expect};
use super::manifest::{
    dense_file, table_file, CheckpointKind, DenseEntry, FileEntry, FileKind, Manifest, TableEntry,
    DELTA_FORMAT_VERSION, FORMAT_VERSION,
};
use super::{DenseSnapshot, NodeSnapshot, TableSnapshot};

/// Subdirectory of the data dir holding checkpoints.
const CHECKPOINTS_DIR: &str = "checkpoints";
/// File recording the highest id ever handed out.
const LAST_ID_FILE: &str = "LAST_ID";
/// Suffix of a checkpoint being written.
const STAGING_SUFFIX: &str = ".staging";
/// Suffix of a checkpoint being deleted.
pub(crate) const TRASH_SUFFIX: &str = ".trash";
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
    /// Verification result (a delta is corrupt when a checkpoint of its chain is).
    pub state: CheckpointState,
    /// Base (every row) or delta (the changes since `parent`).
    #[serde(default)]
    pub kind: CheckpointKind,
    /// A delta's parent checkpoint.
    #[serde(default)]
    pub parent: Option<String>,
    /// A delta's base checkpoint, where its chain starts.
    #[serde(default)]
    pub base: Option<String>,
    /// Deltas from the base to this checkpoint (0 for a base).
    #[serde(default)]
    pub depth: u32,
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
            kind: m.kind,
            parent: m.parent.clone(),
            base: m.base.clone(),
            depth: m.depth,
        }
    }

    pub(crate) fn unreadable(id: &str, reason: String) -> Self {
        CheckpointInfo {
            id: id.to_owned(),
            created_unix_ms: 0,
            bytes: 0,
            tables: 0,
            dense: 0,
            rows: 0,
            epoch: 0,
            state: CheckpointState::Corrupt { reason },
            kind: CheckpointKind::Base,
            parent: None,
            base: None,
            depth: 0,
        }
    }
}

/// Formats the id of checkpoint number `n`.
fn format_id(n: u64) -> String {
    format!("{ID_PREFIX}{n:08}")
}

/// Parses a canonical checkpoint id (`ckpt-` + at least 8 digits, no extra leading zeros).
pub(crate) fn parse_id(s: &str) -> Option<u64> {
    let digits = s.strip_prefix(ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (format_id(n) == s).then_some(n)
}

pub(crate) fn fsync_dir(path: &Path) -> Result<(), CheckpointError> {
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
    pub(crate) root: PathBuf,
    /// Highest id handed out so far (persisted in `LAST_ID` before use).
    last_id: Mutex<u64>,
    /// Checkpoints seen to fail verification: retention keeps them (they may be the only
    /// copy of older data) and they are never loaded.
    pub(crate) corrupt: Mutex<BTreeSet<String>>,
    /// Checkpoints whose own files this store wrote or verified, with how their files looked
    /// then: retention does not read one again while its files look the same (listing,
    /// verifying and loading always read every byte).
    verified: Mutex<HashMap<String, Fingerprint>>,
}

/// The files of a checkpoint directory as the file system describes them: name, length and
/// modification time, sorted by name.
type Fingerprint = Vec<(std::ffi::OsString, u64, Option<SystemTime>)>;

/// Where a delta being written sits in its chain.
struct Link {
    parent: String,
    base: String,
    depth: u32,
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
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// How checkpoint `id`'s files look now (`None`: unreadable).
    fn fingerprint(&self, id: &str) -> Option<Fingerprint> {
        let mut files = Vec::new();
        for entry in fs::read_dir(self.root.join(id)).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            files.push((entry.file_name(), meta.len(), meta.modified().ok()));
        }
        files.sort();
        Some(files)
    }

    /// Remembers that checkpoint `id`'s own files verified (or were just written).
    pub(crate) fn mark_verified(&self, id: &str) {
        if let Some(fp) = self.fingerprint(id) {
            self.verified.lock().insert(id.to_owned(), fp);
        }
    }

    /// Forgets checkpoint `id`'s verification.
    pub(crate) fn forget_verified(&self, id: &str) {
        self.verified.lock().remove(id);
    }

    /// Whether checkpoint `id` verified before and its files look as they did then.
    pub(crate) fn still_verified(&self, id: &str) -> bool {
        let known = self.verified.lock().get(id).cloned();
        known.is_some() && known == self.fingerprint(id)
    }

    /// The checkpoints directory (`<data_dir>/checkpoints`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `snap` as a new base checkpoint and commits it: `stage(snap)?.commit()`.
    pub fn write(&self, snap: &NodeSnapshot) -> Result<CheckpointInfo, CheckpointError> {
        let info = self.stage(snap)?.commit()?;
        self.mark_verified(&info.id);
        Ok(info)
    }

    /// Writes `snap` (the changes since committed checkpoint `parent`) as a new delta
    /// checkpoint chained to `parent`, and commits it.
    pub fn write_delta(
        &self,
        snap: &NodeSnapshot,
        parent: &str,
    ) -> Result<CheckpointInfo, CheckpointError> {
        let info = self.stage_delta(snap, parent)?.commit()?;
        self.mark_verified(&info.id);
        Ok(info)
    }

    /// [`CheckpointStore::write_delta`] up to the commit.
    pub fn stage_delta(
        &self,
        snap: &NodeSnapshot,
        parent: &str,
    ) -> Result<StagedCheckpoint, CheckpointError> {
        self.check_id(parent)?;
        let (m, _) = Manifest::read(&self.root.join(parent), parent)?;
        let link = Link {
            parent: parent.to_owned(),
            base: m.base.unwrap_or(m.id),
            depth: m.depth.saturating_add(1),
        };
        self.stage_linked(snap, Some(link))
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

    /// Writes `snap` (every row: no table's changes) under a staging name as a base
    /// checkpoint, every file fsynced, the manifest last.
    pub fn stage(&self, snap: &NodeSnapshot) -> Result<StagedCheckpoint, CheckpointError> {
        if let Some(t) = snap.tables.iter().find(|t| t.changes.is_some()) {
            return Err(CheckpointError::InvalidSnapshot {
                reason: format!(
                    "table {:?} holds changes only: a delta needs its parent",
                    t.spec.name
                ),
            });
        }
        self.stage_linked(snap, None)
    }

    /// Writes `snap` under a staging name (a delta when `link`), the manifest last.
    fn stage_linked(
        &self,
        snap: &NodeSnapshot,
        link: Option<Link>,
    ) -> Result<StagedCheckpoint, CheckpointError> {
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
        let (kind, format_version) = match link {
            Some(_) => (CheckpointKind::Delta, DELTA_FORMAT_VERSION),
            None => (CheckpointKind::Base, FORMAT_VERSION),
        };
        let manifest = Manifest {
            format_version,
            id: id.clone(),
            created_unix_ms: now_unix_ms(),
            epoch: snap.epoch,
            kind,
            base: link.as_ref().map(|l| l.base.clone()),
            parent: link.as_ref().map(|l| l.parent.clone()),
            depth: link.as_ref().map_or(0, |l| l.depth),
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
            changes: t.changes.clone(),
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
    pub(crate) fn committed_ids(&self) -> Result<Vec<(u64, String)>, CheckpointError> {
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
    pub(crate) fn read(
        &self,
        id: &str,
        load: bool,
    ) -> Result<(Manifest, u64, NodeSnapshot), CheckpointError> {
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
                    changes: t.changes.clone(),
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

    /// Checks that `id` is a well-formed id of an existing committed checkpoint.
    pub(crate) fn check_id(&self, id: &str) -> Result<(), CheckpointError> {
        if parse_id(id).is_none() {
            return Err(CheckpointError::InvalidId { id: id.to_owned() });
        }
        if !self.root.join(id).is_dir() {
            return Err(CheckpointError::NotFound { id: id.to_owned() });
        }
        Ok(())
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
