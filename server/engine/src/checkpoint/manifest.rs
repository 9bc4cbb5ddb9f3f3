//! `MANIFEST.json`: what a checkpoint holds, with each data file's length and crc32.
//!
//! On disk the manifest is wrapped in an envelope carrying the crc32 of its exact bytes:
//! `{"manifest_crc32": N, "manifest": {...}}`, so a flipped byte that leaves valid JSON
//! is still caught.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::CheckpointError;
use strata_storage::spec::{DenseSpec, TableSpec};

/// Version of the checkpoint layout (manifest + data files) of a base checkpoint.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Version of a delta checkpoint's layout: a reader that knows only bases refuses it
/// instead of taking its changed rows for every row.
pub(crate) const DELTA_FORMAT_VERSION: u32 = 2;
/// Name of the manifest inside a checkpoint directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST.json";
/// A manifest larger than this is rejected as corrupt before reading it.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Whether a data file holds a table or a dense tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FileKind {
    /// A sparse table's rows.
    Table,
    /// A dense tensor's words.
    Dense,
}

/// One data file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// File name inside the checkpoint directory (`table-0003.bin`).
    pub file: String,
    /// Table or dense.
    pub kind: FileKind,
    /// The table's or dense tensor's (user) name.
    pub name: String,
    /// Length in bytes.
    pub bytes: u64,
    /// crc32 of the whole file.
    pub crc32: u32,
}

/// Whether a checkpoint holds every row (a base) or the changes since its parent (a delta).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Every row of every table.
    #[default]
    Base,
    /// The rows written since the parent checkpoint (a base or a delta), and what was erased.
    Delta,
}

impl CheckpointKind {
    /// `"base"` or `"delta"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Base => "base",
            CheckpointKind::Delta => "delta",
        }
    }

    fn is_base(&self) -> bool {
        *self == CheckpointKind::Base
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One table of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableEntry {
    /// The table's specification.
    pub spec: TableSpec,
    /// f32 words per row.
    pub row_floats: u32,
    /// Number of rows.
    pub rows: u64,
    /// Number of row blocks.
    pub blocks: u64,
    /// Its data file.
    pub data: FileEntry,
    /// In a delta: the data file holds the rows written since the parent, applied after
    /// erasing these ranges (absent: the data file holds every row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<super::TableChanges>,
}

impl TableEntry {
    /// Rows the table held at the snapshot instant.
    pub(crate) fn live_rows(&self) -> u64 {
        self.changes.as_ref().map_or(self.rows, |c| c.live_rows)
    }
}

/// One dense tensor of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DenseEntry {
    /// The tensor's specification.
    pub spec: DenseSpec,
    /// Number of f32 words.
    pub words: u64,
    /// Its data file.
    pub data: FileEntry,
}

/// The manifest proper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// [`FORMAT_VERSION`] at write time.
    pub format_version: u32,
    /// The checkpoint's id.
    pub id: String,
    /// Wall-clock creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Cluster-map epoch of the snapshot.
    pub epoch: u64,
    /// Base or delta (absent: base).
    #[serde(default, skip_serializing_if = "CheckpointKind::is_base")]
    pub kind: CheckpointKind,
    /// A delta's chain base: the base checkpoint its chain starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// A delta's parent: the checkpoint (base or delta) it holds the changes since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Deltas from the base to this checkpoint (0 for a base).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// The first write-ahead log record not in the checkpoint (0: no log; absent in
    /// checkpoints written before the log existed).
    #[serde(default)]
    pub wal_lsn: u64,
    /// The pushes applied per client (exactly-once delivery).
    #[serde(default)]
    pub ledger: Vec<crate::ledger::ClientPushes>,
    /// Tables, in snapshot order.
    pub tables: Vec<TableEntry>,
    /// Dense tensors, in snapshot order.
    pub dense: Vec<DenseEntry>,
}

/// Data file name of the table at `index`.
pub(crate) fn table_file(index: usize) -> String {
    format!("table-{index:04}.bin")
}

/// Data file name of the dense tensor at `index`.
pub(crate) fn dense_file(index: usize) -> String {
    format!("dense-{index:04}.bin")
}

/// The manifest file's text around the manifest's JSON `body`, with the crc32 of its bytes.
pub(crate) fn envelope(body: &str) -> String {
    let crc = crc32fast::hash(body.as_bytes());
    format!("{{\n\"manifest_crc32\": {crc},\n\"manifest\": {body}\n}}\n")
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    manifest_crc32: u32,
    #[serde(borrow)]
    manifest: &'a RawValue,
}

impl Manifest {
    /// Total rows over all tables.
    pub(crate) fn rows(&self) -> u64 {
        self.tables.iter().map(TableEntry::live_rows).sum()
    }

    /// Total bytes of the data files.
    pub(crate) fn data_bytes(&self) -> u64 {
        let t: u64 = self.tables.iter().map(|t| t.data.bytes).sum();
        let d: u64 = self.dense.iter().map(|d| d.data.bytes).sum();
        t + d
    }

    /// Writes the manifest into `dir` (creating it; must not exist) and fsyncs it; returns bytes.
    pub(crate) fn write(&self, dir: &Path) -> Result<u64, CheckpointError> {
        let path = dir.join(MANIFEST_FILE);
        let text = self.encode().map_err(|e| CheckpointError::Serialize {
            path: path.clone(),
            source: e,
        })?;
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| CheckpointError::io("create", &path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| CheckpointError::io("write", &path, e))?;
        f.sync_all()
            .map_err(|e| CheckpointError::io("fsync", &path, e))?;
        Ok(text.len() as u64)
    }

    /// The manifest file's text: the manifest in its envelope with the crc32 of its bytes.
    pub(crate) fn encode(&self) -> Result<String, serde_json::Error> {
        let body = serde_json::to_string_pretty(self)?;
        Ok(envelope(&body))
    }

    /// Reads and validates the manifest of checkpoint `id` in `dir`; returns it and its length.
    pub(crate) fn read(dir: &Path, id: &str) -> Result<(Manifest, u64), CheckpointError> {
        let path = dir.join(MANIFEST_FILE);
        let corrupt = |reason: String| CheckpointError::corrupt(id, MANIFEST_FILE, reason);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(corrupt("file missing".into()))
            }
            Err(e) => return Err(CheckpointError::io("open", &path, e)),
        };
        let len = f
            .metadata()
            .map_err(|e| CheckpointError::io("stat", &path, e))?
            .len();
        if len > MAX_MANIFEST_BYTES {
            return Err(corrupt(format!("implausible length {len}")));
        }
        let mut raw = Vec::with_capacity(len as usize);
        f.read_to_end(&mut raw)
            .map_err(|e| CheckpointError::io("read", &path, e))?;
        Ok((Manifest::parse(&raw, id)?, raw.len() as u64))
    }

    /// Decodes and validates the manifest file's bytes `raw` of checkpoint `id`.
    pub(crate) fn parse(raw: &[u8], id: &str) -> Result<Manifest, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::corrupt(id, MANIFEST_FILE, reason);
        let text = std::str::from_utf8(raw).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
        let env: EnvelopeIn<'_> =
            serde_json::from_str(text).map_err(|e| corrupt(format!("bad JSON: {e}")))?;
        let got = crc32fast::hash(env.manifest.get().as_bytes());
        if got != env.manifest_crc32 {
            return Err(corrupt(format!(
                "crc32 mismatch: content {got:08x}, recorded {:08x}",
                env.manifest_crc32
            )));
        }
        let m: Manifest = serde_json::from_str(env.manifest.get())
            .map_err(|e| corrupt(format!("bad manifest: {e}")))?;
        m.validate(id).map_err(corrupt)?;
        Ok(m)
    }

    /// Structural checks: version, id, kind and chain links, file names and kinds.
    fn validate(&self, id: &str) -> Result<(), String> {
        if self.id != id {
            return Err(format!("records id {:?}, directory is {id:?}", self.id));
        }
        self.validate_kind()?;
        for (i, t) in self.tables.iter().enumerate() {
            let f = &t.data;
            if f.file != table_file(i) || f.kind != FileKind::Table || f.name != t.spec.name {
                return Err(format!("table entry {i} is inconsistent ({:?})", f.file));
            }
        }
        for (i, d) in self.dense.iter().enumerate() {
            let f = &d.data;
            if f.file != dense_file(i) || f.kind != FileKind::Dense || f.name != d.spec.name {
                return Err(format!("dense entry {i} is inconsistent ({:?})", f.file));
            }
        }
        Ok(())
    }

    /// Checks that the version, the kind and the chain links agree.
    fn validate_kind(&self) -> Result<(), String> {
        let delta_tables = self.tables.iter().any(|t| t.changes.is_some());
        match (self.format_version, self.kind) {
            (FORMAT_VERSION, CheckpointKind::Base) => {
                if self.base.is_some() || self.parent.is_some() || self.depth != 0 {
                    return Err("a base names a base, a parent or a depth".into());
                }
                if delta_tables {
                    return Err("a base holds a table's changes".into());
                }
            }
            (DELTA_FORMAT_VERSION, CheckpointKind::Delta) => {
                let (Some(base), Some(parent)) = (&self.base, &self.parent) else {
                    return Err("a delta without its base or parent".into());
                };
                // Ids number checkpoints by creation: a chain only links to older ones.
                let n = |id: &str| super::store::parse_id(id);
                let ordered = match (n(base), n(parent), n(&self.id)) {
                    (Some(b), Some(p), Some(me)) => b <= p && p < me,
                    _ => false,
                };
                if !ordered || self.depth == 0 {
                    return Err(format!(
                        "chain links out of order: base {base:?}, parent {parent:?}, depth {}",
                        self.depth
                    ));
                }
            }
            (FORMAT_VERSION | DELTA_FORMAT_VERSION, kind) => {
                return Err(format!(
                    "kind {} does not match format version {}",
                    kind.as_str(),
                    self.format_version
                ));
            }
            (v, _) => return Err(format!("unsupported format version {v}")),
        }
        Ok(())
    }
}
