//! The `checkpoint_read` fuzz target's body (`fuzz/fuzz_targets/checkpoint_read.rs`), also
//! replayed by this crate's tests over the seed corpus and every kept crash input.
//!
//! It feeds arbitrary bytes to the readers a node runs on a checkpoint at restore — the
//! data-file reader and the manifest reader, through the same functions the store calls
//! after opening a file — and asserts their properties: a panic here is a finding.
//!
//! Input layout: byte 0 picks the reader (`% 4`): 0 a table data file, 1 a dense data file,
//! 2 a whole `MANIFEST.json`, 3 a manifest body (wrapped in its envelope with its crc32, so
//! that mutations reach past the checksum). For data files the expectations the manifest
//! would hold (lengths, header counts, crc32) are taken from the input itself, for the same
//! reason.

use std::path::Path;

use crate::checkpoint::format::{self, Expect};
use crate::checkpoint::manifest::{self, FileKind, Manifest};
use crate::checkpoint::{CheckpointInfo, CheckpointState, DenseSnapshot, TableSnapshot};
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{DenseSpec, InitializerConfig, TableSpec, TierKind};

/// The checkpoint id the inputs are read as.
const ID: &str = "ckpt-00000001";

/// Runs the checkpoint reader chosen by `data[0]` over the rest and checks its properties.
pub fn checkpoint_read(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => data_file(rest, FileKind::Table),
        1 => data_file(rest, FileKind::Dense),
        2 => manifest_file(rest),
        _ => {
            if let Ok(body) = std::str::from_utf8(rest) {
                manifest_file(manifest::envelope(body).as_bytes());
            }
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        u64::from_le_bytes(w)
    })
}

/// What a manifest would say of `bytes` as a data file of `kind`: its own header's counts,
/// length and crc32 (the store fixes `row_floats = 1, blocks = 0` for dense tensors).
fn expect_of(bytes: &[u8], kind: FileKind) -> Expect<'static> {
    let (row_floats, blocks) = match kind {
        FileKind::Table => (u32_at(bytes, 16), u64_at(bytes, 32)),
        FileKind::Dense => (1, 0),
    };
    Expect {
        id: ID,
        file: "data.bin",
        kind,
        row_floats,
        rows: u64_at(bytes, 24),
        blocks,
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    }
}

/// One data file: loading and verifying agree, a loaded file re-encodes to the same bytes,
/// and a file that disagrees with its manifest never loads.
fn data_file(bytes: &[u8], kind: FileKind) {
    let exp = expect_of(bytes, kind);
    let path = Path::new("data.bin");
    let len = bytes.len() as u64;
    let mut scratch = Vec::new();
    let read = |exp: Expect<'_>, load: bool, scratch: &mut Vec<u8>| match kind {
        FileKind::Table => format::read_table_from(bytes, len, path, exp, load, scratch)
            .map(|blocks| Loaded::Table(exp.row_floats, blocks)),
        FileKind::Dense => {
            format::read_dense_from(bytes, len, path, exp, load, scratch).map(Loaded::Dense)
        }
    };
    let loaded = read(exp, true, &mut scratch);
    let verified = read(exp, false, &mut scratch);
    assert_eq!(loaded.is_ok(), verified.is_ok(), "load and verify disagree");
    for wrong in [
        Expect {
            crc32: exp.crc32 ^ 1,
            ..exp
        },
        Expect {
            rows: exp.rows.wrapping_add(1),
            ..exp
        },
        Expect {
            bytes: exp.bytes.wrapping_add(1),
            ..exp
        },
    ] {
        assert!(read(wrong, true, &mut scratch).is_err(), "{wrong:?} loaded");
    }
    let encoded = match loaded {
        Err(_) => return,
        Ok(Loaded::Table(row_floats, blocks)) => {
            let rows: usize = blocks.iter().map(|b| b.ids.len()).sum();
            assert_eq!(rows as u64, exp.rows, "rows");
            for b in &blocks {
                assert_eq!(b.rows.len(), b.ids.len() * row_floats as usize, "block");
            }
            let words: usize = blocks.iter().map(|b| b.rows.len()).sum();
            assert!(
                rows * 8 + words * 4 <= bytes.len(),
                "decoded more than the input"
            );
            format::encode_table(&TableSnapshot {
                spec: table_spec(),
                row_floats,
                blocks,
                changes: None,
            })
            .expect("a loaded table is consistent")
        }
        Ok(Loaded::Dense(words)) => {
            assert!(
                words.len() * 4 <= bytes.len(),
                "decoded more than the input"
            );
            format::encode_dense(&DenseSnapshot {
                spec: dense_spec(),
                data: words,
            })
            .expect("writing into memory")
        }
    };
    assert!(encoded == bytes, "a loaded file re-encodes differently");
}

enum Loaded {
    Table(u32, Vec<crate::checkpoint::RowBlock>),
    Dense(Vec<f32>),
}

/// A `MANIFEST.json`: what the store reports of it is computed without overflow, and a
/// manifest of valid specs re-encodes to one that reads back equal.
fn manifest_file(raw: &[u8]) {
    let Ok(m) = Manifest::parse(raw, ID) else {
        return;
    };
    let info = CheckpointInfo::from_manifest(&m, raw.len() as u64, CheckpointState::Ok);
    assert_eq!(info.id, ID);
    let specs_valid = m.tables.iter().all(|t| t.spec.validate().is_ok())
        && m.dense.iter().all(|d| d.spec.validate().is_ok());
    if specs_valid {
        let text = m.encode().expect("a valid manifest serializes");
        let back = Manifest::parse(text.as_bytes(), ID).expect("a written manifest reads back");
        assert!(back == m, "manifest round trip differs");
    }
}

fn table_spec() -> TableSpec {
    TableSpec {
        name: "t".into(),
        dim: 1,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.1 }),
        initializer: InitializerConfig::Zeros,
        seed: 0,
        tier: TierKind::Host,
    }
}

fn dense_spec() -> DenseSpec {
    DenseSpec {
        name: "d".into(),
        shape: vec![1],
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.1 }),
        initializer: InitializerConfig::Zeros,
        seed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(kind: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz")
            .join(kind)
            .join("checkpoint_read")
    }

    /// Runs every file of `fuzz/<kind>/checkpoint_read` (hidden files aside); returns how many.
    fn replay(kind: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(dir(kind)) else {
            return 0;
        };
        let mut n = 0;
        for entry in entries {
            let file = entry.expect("directory entry").path();
            if file
                .file_name()
                .is_some_and(|f| f.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            checkpoint_read(&std::fs::read(&file).expect("readable input"));
            n += 1;
        }
        n
    }

    fn file_entry(file: String, kind: FileKind, name: &str, bytes: &[u8]) -> manifest::FileEntry {
        manifest::FileEntry {
            file,
            kind,
            name: name.into(),
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }

    /// Regenerates the seed corpus from the writers:
    /// `cargo test -p strata-engine write_checkpoint_read_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus/checkpoint_read"]
    fn write_checkpoint_read_seeds() {
        use crate::checkpoint::RowBlock;
        let table = TableSnapshot {
            spec: table_spec(),
            row_floats: 3,
            blocks: vec![
                RowBlock {
                    ids: vec![1, u64::MAX],
                    rows: vec![0.5, -1.0, 2.0, 0.0, 1e-3, 7.0],
                },
                RowBlock {
                    ids: vec![],
                    rows: vec![],
                },
                RowBlock {
                    ids: vec![42],
                    rows: vec![1.0, 2.0, 3.0],
                },
            ],
            changes: None,
        };
        let empty = TableSnapshot {
            blocks: vec![],
            ..table.clone()
        };
        let dense = DenseSnapshot {
            spec: dense_spec(),
            data: vec![0.25, -0.5, 1.0, 0.0],
        };
        let table_bytes = format::encode_table(&table).expect("consistent");
        let dense_bytes = format::encode_dense(&dense).expect("in memory");
        let m = Manifest {
            format_version: manifest::FORMAT_VERSION,
            id: ID.into(),
            created_unix_ms: 1_700_000_000_000,
            epoch: 3,
            kind: manifest::CheckpointKind::Base,
            base: None,
            parent: None,
            depth: 0,
            wal_lsn: 0,
            ledger: Vec::new(),
            tables: vec![manifest::TableEntry {
                spec: table.spec.clone(),
                row_floats: 3,
                rows: 3,
                blocks: 3,
                data: file_entry(manifest::table_file(0), FileKind::Table, "t", &table_bytes),
                changes: None,
            }],
            dense: vec![manifest::DenseEntry {
                spec: dense.spec.clone(),
                words: 4,
                data: file_entry(manifest::dense_file(0), FileKind::Dense, "d", &dense_bytes),
            }],
        };
        let body = serde_json::to_string(&m).expect("serializes");
        let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
            ("table", 0, table_bytes),
            (
                "table-empty",
                0,
                format::encode_table(&empty).expect("consistent"),
            ),
            ("dense", 1, dense_bytes),
            (
                "manifest-file",
                2,
                m.encode().expect("serializes").into_bytes(),
            ),
            ("manifest-body", 3, body.into_bytes()),
        ];
        let out = dir("corpus");
        std::fs::create_dir_all(&out).expect("corpus directory");
        for (name, mode, bytes) in seeds {
            let mut input = vec![mode];
            input.extend(bytes);
            std::fs::write(out.join(name), input).expect("write seed");
        }
    }

    #[test]
    fn checkpoint_read_corpus_and_regressions_replay() {
        assert!(replay("corpus") > 0, "empty seed corpus");
        replay("regressions");
    }
}
