//! Checkpoint store tests: round trips, crash safety, corruption detection, pruning.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;
use strata_storage::optimizer::{OptimizerConfig, OptimizerKind};
use strata_storage::spec::{DenseSpec, InitializerConfig, TableSpec, TierKind};

fn table_spec(name: &str, dim: u32) -> TableSpec {
    TableSpec {
        name: name.to_owned(),
        dim,
        optimizer: OptimizerConfig::new(OptimizerKind::Adagrad {
            lr: 0.05,
            initial_accumulator: 0.1,
            epsilon: 0.0,
        }),
        initializer: InitializerConfig::Normal { std: 0.01 },
        seed: 7,
        tier: TierKind::Host,
    }
}

fn dense_spec(name: &str, shape: Vec<u32>) -> DenseSpec {
    DenseSpec {
        name: name.to_owned(),
        shape,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.1 }),
        initializer: InitializerConfig::Zeros,
        seed: 1,
    }
}

fn block(first_id: u64, n: usize, row_floats: u32, salt: f32) -> RowBlock {
    let ids: Vec<u64> = (0..n as u64)
        .map(|i| (first_id + i).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let rows = (0..n * row_floats as usize)
        .map(|i| i as f32 * 0.5 + salt)
        .collect();
    RowBlock { ids, rows }
}

/// Several tables (different row_floats, an empty one, multiple and empty blocks) and dense tensors.
fn sample(epoch: u64) -> NodeSnapshot {
    NodeSnapshot {
        epoch,
        wal_lsn: 3,
        ledger: vec![crate::ledger::ClientPushes {
            client: "trainer-1".into(),
            acked_below: 4,
            applied: vec![(4, 10), (6, 2)],
        }],
        tables: vec![
            TableSnapshot {
                spec: table_spec("users/emb ✓", 8),
                row_floats: 17,
                blocks: vec![
                    block(0, 100, 17, 1.0),
                    block(1000, 0, 17, 0.0),
                    block(2000, 37, 17, -3.0),
                ],
                changes: None,
            },
            TableSnapshot {
                spec: table_spec("empty", 4),
                row_floats: 9,
                blocks: vec![],
                changes: None,
            },
            TableSnapshot {
                spec: table_spec("../items", 1),
                row_floats: 3,
                blocks: vec![block(5, 1, 3, f32::MIN_POSITIVE), block(9, 64, 3, 2.5)],
                changes: None,
            },
        ],
        dense: vec![
            DenseSnapshot {
                spec: dense_spec("mlp.w0", vec![4, 3]),
                data: (0..36).map(|i| i as f32 - 10.0).collect(),
            },
            DenseSnapshot {
                spec: dense_spec("bias", vec![0]),
                data: vec![],
            },
        ],
    }
}

fn corrupt_reason(e: CheckpointError) -> (String, String) {
    match e {
        CheckpointError::Corrupt { file, reason, .. } => (file, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut b = fs::read(path).expect("read");
    b[offset as usize] ^= 0x40;
    fs::write(path, b).expect("write");
}

fn ckpt_file(store: &CheckpointStore, id: &str, file: &str) -> PathBuf {
    store.root().join(id).join(file)
}

fn state_of(store: &CheckpointStore, id: &str) -> CheckpointState {
    store
        .list()
        .expect("list")
        .into_iter()
        .find(|i| i.id == id)
        .expect("listed")
        .state
}

#[test]
fn checkpoint_round_trip_tables_and_dense() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    assert!(store.load_latest_good().expect("empty").is_none());
    let snap = sample(42);
    let info = store.write(&snap).expect("write");
    assert_eq!(info.id, "ckpt-00000001");
    assert_eq!(
        (info.tables, info.dense, info.rows, info.epoch),
        (3, 2, 202, 42)
    );
    assert_eq!(info.state, CheckpointState::Ok);
    assert!(info.created_unix_ms > 0);

    let back = store.load(&info.id).expect("load");
    assert_eq!(back, vec![snap.clone()]);

    let listed = store.list().expect("list");
    assert_eq!(listed, vec![info.clone()]);
    let on_disk: u64 = fs::read_dir(store.root().join(&info.id))
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    assert_eq!(on_disk, info.bytes);

    // A reopened store sees the same thing; the next id is larger.
    let store = CheckpointStore::open(dir.path()).expect("reopen");
    let (latest, loaded) = store.load_latest_good().expect("load").expect("some");
    assert_eq!(latest, info);
    assert_eq!(loaded, vec![snap]);
    let second = store.write(&NodeSnapshot::default()).expect("write empty");
    assert_eq!(second.id, "ckpt-00000002");
    assert_eq!(
        store.load(&second.id).expect("load"),
        vec![NodeSnapshot::default()]
    );
    let ids: Vec<_> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec!["ckpt-00000002", "ckpt-00000001"]);
}

#[test]
fn checkpoint_crash_before_commit_keeps_previous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    let good = store.write(&sample(1)).expect("write");

    // Crash between the fully written staging dir and the rename: Drop never runs.
    let staged = store.stage(&sample(2)).expect("stage");
    let staged_id = staged.id().to_owned();
    let staging_path = store.root().join(format!("{staged_id}.staging"));
    assert!(staging_path.join("MANIFEST.json").is_file());
    std::mem::forget(staged);
    // A crash mid-write as well: a partial staging dir without manifest.
    let partial = store.root().join("ckpt-00000099.staging");
    fs::create_dir(&partial).expect("mkdir");
    fs::write(partial.join("table-0000.bin"), b"STRATACK partial").expect("write");

    let store = CheckpointStore::open(dir.path()).expect("reopen");
    assert!(!staging_path.exists());
    assert!(!partial.exists());
    let (info, snap) = store.load_latest_good().expect("load").expect("some");
    assert_eq!(info.id, good.id);
    assert_eq!(snap, vec![sample(1)]);
    assert_eq!(store.list().expect("list").len(), 1);
    // Ids of abandoned checkpoints are not reused either.
    let next = store.write(&sample(3)).expect("write");
    assert_eq!(next.id, "ckpt-00000100");

    // Dropping an uncommitted checkpoint (no crash) removes its staging dir at once.
    let staged = store.stage(&sample(4)).expect("stage");
    let path = store.root().join(format!("{}.staging", staged.id()));
    assert!(path.is_dir());
    drop(staged);
    assert!(!path.exists());
    assert_eq!(
        store.load_latest_good().expect("load").expect("some").0.id,
        next.id
    );
}

/// Writes a good and a newer checkpoint, breaks the newer one with `damage`, checks detection.
fn check_corruption(damage: impl FnOnce(&CheckpointStore, &str), expect_file: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    let old = store.write(&sample(1)).expect("write old");
    let new = store.write(&sample(2)).expect("write new");
    damage(&store, &new.id);

    let (file, reason) = corrupt_reason(store.load(&new.id).expect_err("must not load"));
    assert_eq!(file, expect_file, "reason: {reason}");

    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, new.id);
    match &listed[0].state {
        CheckpointState::Corrupt { reason } => assert!(reason.starts_with(expect_file), "{reason}"),
        CheckpointState::Ok => panic!("corrupt checkpoint listed as Ok"),
    }
    assert_eq!(listed[1].state, CheckpointState::Ok);

    let (info, snap) = store.load_latest_good().expect("load").expect("some");
    assert_eq!(info.id, old.id);
    assert_eq!(snap, vec![sample(1)]);
}

#[test]
fn checkpoint_flipped_byte_in_rows_detected() {
    check_corruption(
        |s, id| {
            let p = ckpt_file(s, id, "table-0002.bin");
            let len = fs::metadata(&p).expect("meta").len();
            flip_byte(&p, len - 5);
        },
        "table-0002.bin",
    );
}

#[test]
fn checkpoint_flipped_byte_in_header_detected() {
    check_corruption(
        |s, id| flip_byte(&ckpt_file(s, id, "table-0000.bin"), 26),
        "table-0000.bin",
    );
}

#[test]
fn checkpoint_flipped_byte_in_dense_detected() {
    check_corruption(
        |s, id| flip_byte(&ckpt_file(s, id, "dense-0000.bin"), 50),
        "dense-0000.bin",
    );
}

#[test]
fn checkpoint_truncated_file_detected() {
    check_corruption(
        |s, id| {
            let p = ckpt_file(s, id, "table-0000.bin");
            let f = fs::OpenOptions::new().write(true).open(&p).expect("open");
            let len = f.metadata().expect("meta").len();
            f.set_len(len - 100).expect("truncate");
        },
        "table-0000.bin",
    );
}

#[test]
fn checkpoint_missing_data_file_detected() {
    check_corruption(
        |s, id| fs::remove_file(ckpt_file(s, id, "dense-0001.bin")).expect("rm"),
        "dense-0001.bin",
    );
}

#[test]
fn checkpoint_missing_manifest_detected() {
    check_corruption(
        |s, id| fs::remove_file(ckpt_file(s, id, "MANIFEST.json")).expect("rm"),
        "MANIFEST.json",
    );
}

#[test]
fn checkpoint_bad_manifest_json_detected() {
    check_corruption(
        |s, id| {
            let p = ckpt_file(s, id, "MANIFEST.json");
            let text = fs::read_to_string(&p).expect("read");
            fs::write(&p, &text[..text.len() / 2]).expect("write");
        },
        "MANIFEST.json",
    );
}

#[test]
fn checkpoint_manifest_edit_keeping_valid_json_detected() {
    check_corruption(
        |s, id| {
            let p = ckpt_file(s, id, "MANIFEST.json");
            let text = fs::read_to_string(&p).expect("read");
            let edited = text.replacen("\"epoch\": 2", "\"epoch\": 3", 1);
            assert_ne!(edited, text);
            fs::write(&p, edited).expect("write");
        },
        "MANIFEST.json",
    );
}

#[test]
fn checkpoint_ids_never_reused_after_prune() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    let mut ids = Vec::new();
    for e in 0..4 {
        ids.push(store.write(&sample(e)).expect("write").id);
    }
    assert_eq!(store.prune(2).expect("prune"), 2);
    let listed: Vec<_> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![ids[3].clone(), ids[2].clone()]);
    assert_eq!(store.prune(2).expect("prune again"), 0);

    // Prune everything, reopen: the next id is still larger than any handed out.
    assert_eq!(store.prune(0).expect("prune all"), 2);
    assert!(store.list().expect("list").is_empty());
    let store = CheckpointStore::open(dir.path()).expect("reopen");
    let next = store.write(&sample(9)).expect("write").id;
    assert_eq!(next, "ckpt-00000005");
    assert!(ids.iter().all(|old| old < &next));
}

#[test]
fn checkpoint_prune_skips_corrupt_when_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    let a = store.write(&sample(1)).expect("a").id;
    let b = store.write(&sample(2)).expect("b").id;
    let c = store.write(&sample(3)).expect("c").id;
    flip_byte(&ckpt_file(&store, &c, "table-0000.bin"), 100);
    // Newest good one is b; the corrupt c (newer) is kept for inspection, a is deleted.
    assert_eq!(store.prune(1).expect("prune"), 1);
    let listed: Vec<_> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![c.clone(), b.clone()]);
    assert!(!store.root().join(&a).exists());
    assert!(matches!(
        state_of(&store, &c),
        CheckpointState::Corrupt { .. }
    ));
    assert_eq!(
        store.load_latest_good().expect("load").expect("some").0.id,
        b
    );
}

#[test]
fn corrupt_checkpoints_older_than_new_good_ones_are_never_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    let a = store.write(&sample(1)).expect("a").id;
    let b = store.write(&sample(2)).expect("b").id;
    flip_byte(&ckpt_file(&store, &a, "table-0000.bin"), 100);
    flip_byte(&ckpt_file(&store, &b, "table-0000.bin"), 100);
    // Reopened as at a start: nothing verifies, and the store says which ones failed.
    let store = CheckpointStore::open(dir.path()).expect("reopen");
    assert!(store.load_latest_good().expect("load").is_none());
    assert_eq!(store.corrupt_ids(), vec![a.clone(), b.clone()]);
    // A node started empty over them checkpoints again and again: the corrupt ones, the
    // only copies of the older data, stay.
    for e in 3..7 {
        store.write(&sample(e)).expect("write");
        store.prune(1).expect("prune");
    }
    assert!(store.root().join(&a).is_dir() && store.root().join(&b).is_dir());
    let good: Vec<_> = store
        .list()
        .expect("list")
        .into_iter()
        .filter(|c| c.state == CheckpointState::Ok)
        .collect();
    assert_eq!(good.len(), 1, "{good:?}");
}

#[test]
fn checkpoint_rejects_bad_ids_and_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");
    assert!(matches!(
        store.load("../etc"),
        Err(CheckpointError::InvalidId { .. })
    ));
    assert!(matches!(
        store.load("ckpt-00000007"),
        Err(CheckpointError::NotFound { .. })
    ));
    let mut bad = sample(1);
    bad.tables[0].blocks[0].rows.pop();
    assert!(matches!(
        store.write(&bad),
        Err(CheckpointError::InvalidSnapshot { .. })
    ));
    // Nothing was left behind and no id was consumed.
    assert_eq!(store.write(&sample(1)).expect("write").id, "ckpt-00000001");
    let entries: Vec<_> = fs::read_dir(store.root())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    assert!(
        entries.iter().all(|n| !n.ends_with(".staging")),
        "{entries:?}"
    );
}

#[test]
fn checkpoint_large_round_trip() {
    const ROWS: usize = 200_000;
    const RF: u32 = 132;
    const BLOCKS: usize = 8;
    let per = ROWS / BLOCKS;
    let snap = NodeSnapshot {
        epoch: 5,
        wal_lsn: 0,
        ledger: Vec::new(),
        tables: vec![TableSnapshot {
            spec: table_spec("big", 64),
            row_floats: RF,
            blocks: (0..BLOCKS)
                .map(|b| block((b * per) as u64, per, RF, b as f32))
                .collect(),
            changes: None,
        }],
        dense: vec![DenseSnapshot {
            spec: dense_spec("w", vec![1024, 256]),
            data: (0..1024 * 256).map(|i| i as f32).collect(),
        }],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckpointStore::open(dir.path()).expect("open");

    let t = Instant::now();
    let info = store.write(&snap).expect("write");
    let w = t.elapsed().as_secs_f64();
    let mb = info.bytes as f64 / 1e6;

    let t = Instant::now();
    let listed = store.list().expect("list");
    let v = t.elapsed().as_secs_f64();
    assert_eq!(listed[0].state, CheckpointState::Ok);

    let t = Instant::now();
    let back = store.load(&info.id).expect("load");
    let r = t.elapsed().as_secs_f64();
    eprintln!(
        "checkpoint {mb:.0} MB: write {:.0} MB/s (incl. fsync), verify {:.0} MB/s, load {:.0} MB/s",
        mb / w,
        mb / v,
        mb / r
    );
    assert_eq!(info.rows, ROWS as u64);
    assert!(
        back == vec![snap],
        "large snapshot differs after round trip"
    );
}
