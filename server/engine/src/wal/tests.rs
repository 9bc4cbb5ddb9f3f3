use std::fs::OpenOptions;
use std::io::Write;
use std::sync::mpsc;

use super::*;

fn push<'a>(ids: &'a [u8], grads: &'a [u8], seq: u64) -> Record<'a> {
    Record::Push {
        table: "emb",
        origin: Origin {
            client: "c",
            seq,
            acked_below: 0,
            resend_after_ms: 0,
        },
        ids,
        grads,
    }
}

/// Every record of the log in `dir` from `from`, as (lsn, seq of the push).
fn read_all(dir: &Path, from: u64) -> (Vec<(u64, u64)>, ReplayStats) {
    let mut seen = Vec::new();
    let (_wal, stats) = Wal::open(dir, small(WalSync::Never), from, |lsn, r| {
        if let Record::Push { origin, .. } = r {
            seen.push((lsn, origin.seq));
        }
        Ok(())
    })
    .expect("opens");
    (seen, stats)
}

fn small(sync: WalSync) -> WalConfig {
    WalConfig {
        sync,
        segment_bytes: 1 << 20,
    }
}

#[test]
fn records_read_back_in_order_across_segments_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grads = vec![7u8; 300 << 10];
    {
        let (wal, _) =
            Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
        for seq in 0..10 {
            assert_eq!(
                wal.append(&push(&[1; 8], &grads, seq)).expect("append"),
                seq + 1
            );
        }
    }
    assert!(
        Segments::list(dir.path()).expect("list").files.len() >= 3,
        "rotated"
    );
    let (seen, stats) = read_all(dir.path(), 0);
    assert_eq!(seen, (0..10).map(|s| (s + 1, s)).collect::<Vec<_>>());
    assert_eq!(stats.records, 10);
    // Reopened, the log goes on after the last record.
    let (wal, _) = Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
    assert_eq!(wal.append(&push(&[1; 8], &[], 10)).expect("append"), 11);
    drop(wal);
    let (seen, _) = read_all(dir.path(), 5);
    assert_eq!(seen.first(), Some(&(5, 4)));
    assert_eq!(seen.last(), Some(&(11, 10)));
}

#[test]
fn a_cut_last_record_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let (wal, _) =
            Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
        wal.append(&push(&[1; 8], &[2; 64], 1)).expect("append");
        wal.append(&push(&[1; 8], &[2; 64], 2)).expect("append");
        let path = wal.shared.writer.lock().path.clone();
        path
    };
    let len = fs::metadata(&path).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(len - 10))
        .expect("cut");
    let (seen, stats) = read_all(dir.path(), 0);
    assert_eq!(seen, vec![(1, 1)]);
    assert!(stats.torn_bytes > 0);
    // The cut segment is clean now: later opens read it without complaint.
    let (wal, _) = Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
    assert_eq!(wal.append(&push(&[1; 8], &[], 3)).expect("append"), 2);
    drop(wal);
    assert_eq!(read_all(dir.path(), 0).0, vec![(1, 1), (2, 3)]);
}

#[test]
fn a_damaged_record_before_the_end_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = {
        let (wal, _) =
            Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
        wal.append(&push(&[1; 8], &[2; 64], 1)).expect("append");
        let first = wal.shared.writer.lock().path.clone();
        wal.cut().expect("cut");
        wal.append(&push(&[1; 8], &[2; 64], 2)).expect("append");
        first
    };
    let mut f = OpenOptions::new().append(true).open(&first).expect("open");
    f.write_all(b"garbage!garbage!garbage!").expect("write");
    drop(f);
    let err = Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(()))
        .err()
        .expect("refused");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn a_base_deletes_the_segments_it_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), small(WalSync::Never), 0, |_, _| Ok(())).expect("open");
    wal.append(&push(&[1; 8], &[], 1)).expect("append");
    wal.append(&push(&[1; 8], &[], 2)).expect("append");
    let cut = wal.cut().expect("cut");
    assert_eq!(cut, 3);
    wal.append(&push(&[1; 8], &[], 3)).expect("append");
    let base = WalBase {
        checkpoint: Some("ckpt-1".into()),
        lsn: cut,
    };
    wal.set_base(&base).expect("base");
    drop(wal);
    assert_eq!(read_base(dir.path()).expect("base"), Some(base));
    assert_eq!(read_all(dir.path(), cut).0, vec![(3, 3)]);
    // Reading from before the base finds the deleted records missing.
    assert!(Wal::open(dir.path(), small(WalSync::Never), 1, |_, _| Ok(())).is_err());
}

#[test]
fn always_calls_back_after_a_sync_and_others_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sync in [
        WalSync::Always,
        WalSync::Interval(Duration::from_millis(5)),
        WalSync::Never,
    ] {
        let (wal, _) = Wal::open(dir.path(), small(sync), 0, |_, _| Ok(())).expect("open");
        let (tx, rx) = mpsc::channel();
        for _ in 0..20 {
            let lsn = wal.append(&push(&[1; 8], &[2; 16], 0)).expect("append");
            let tx = tx.clone();
            wal.on_durable(lsn, Box::new(move |r| tx.send(r).expect("send")));
        }
        for _ in 0..20 {
            let r = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("called back");
            assert_eq!(r, Ok(()), "{sync}");
        }
        if sync == WalSync::Always {
            assert!(wal.shared.durable.load(Ordering::Acquire) > 20);
        }
    }
}

#[test]
fn sync_settings_parse() {
    assert_eq!("always".parse(), Ok(WalSync::Always));
    assert_eq!("never".parse(), Ok(WalSync::Never));
    assert_eq!(
        "interval:100ms".parse(),
        Ok(WalSync::Interval(Duration::from_millis(100)))
    );
    assert_eq!(
        "interval:2s".parse(),
        Ok(WalSync::Interval(Duration::from_secs(2)))
    );
    for bad in [
        "",
        "sometimes",
        "interval:",
        "interval:0s",
        "interval:5h",
        "interval:-1s",
    ] {
        assert!(bad.parse::<WalSync>().is_err(), "{bad}");
    }
}
