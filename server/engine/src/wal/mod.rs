//! The write-ahead log of a node: every change of its tables and dense tensors since its
//! last checkpoint, replayed on start so that an acknowledged change survives a crash.
//!
//! Layout under `<data_dir>/wal/`: segment files `<first lsn, 20 digits>.log` holding
//! [`record`] frames in LSN order, and `BASE`, which names the checkpoint the log applies
//! on and the first LSN not in it. A checkpoint cuts the log (the next record starts a new
//! segment), and once it is committed `BASE` moves to it and the segments before the cut
//! are deleted. Records are written to the segment (the OS page cache) before the change
//! is acknowledged, so a killed process loses nothing; [`WalSync`] says when they reach
//! the disk: before the acknowledgement (`always`, one `fdatasync` for every group of
//! records that arrived meanwhile), every interval, or when the OS writes them back.

pub mod record;
mod segment;

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::record::{Origin, Record};
use self::segment::{segment_name, Segments};

/// Directory of the log inside a data dir.
pub const WAL_DIR: &str = "wal";
/// File naming the checkpoint the log applies on.
const BASE_FILE: &str = "BASE";
/// Default size at which a segment is closed and the next one begun.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 << 20;

/// When logged records are forced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// Before each change is acknowledged (group commit: one sync covers every record
    /// written while the previous one ran). Survives a machine crash.
    Always,
    /// Every interval; a machine crash loses at most about one interval of changes.
    Interval(Duration),
    /// When the OS writes its cache back. Survives a killed process, not a machine crash.
    Never,
}

impl FromStr for WalSync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(WalSync::Always),
            "never" => Ok(WalSync::Never),
            _ => {
                let Some(interval) = s.strip_prefix("interval:") else {
                    return Err(format!(
                        "invalid --wal-sync {s:?}: expected always, never or interval:DURATION \
                         (e.g. interval:100ms)"
                    ));
                };
                let d = parse_duration(interval)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "invalid --wal-sync interval {interval:?}: expected a positive \
                             number with ms, s or m (e.g. 100ms, 1s)"
                        )
                    })?;
                Ok(WalSync::Interval(d))
            }
        }
    }
}

impl std::fmt::Display for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalSync::Always => f.write_str("always"),
            WalSync::Never => f.write_str("never"),
            WalSync::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
        }
    }
}

/// `100ms`, `2s`, `1m` as a duration.
fn parse_duration(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Settings of a node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// When records reach the disk.
    pub sync: WalSync,
    /// Size at which a segment is closed.
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            sync: WalSync::Interval(Duration::from_millis(100)),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Why the log could not be read or written.
#[derive(Debug, Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("write-ahead log: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A record before the end of the log does not read back.
    #[error("write-ahead log segment {} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier sync failed: what the disk holds is unknown, so nothing more is accepted.
    #[error("write-ahead log failed earlier and accepts nothing more: {0}")]
    Failed(String),
}

impl WalError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The checkpoint a log applies on: the state at LSN `lsn` is checkpoint `checkpoint`
/// (`None`: empty tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalBase {
    /// The checkpoint's id.
    pub checkpoint: Option<String>,
    /// The first LSN not in it.
    pub lsn: u64,
}

/// The base recorded in `dir` (the log directory), if any.
pub fn read_base(dir: &Path) -> Result<Option<WalBase>, WalError> {
    let path = dir.join(BASE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| WalError::Corrupt {
                path,
                offset: 0,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WalError::io("read", &path, e)),
    }
}

/// Whether `dir` (the log directory) holds any segment.
pub fn has_segments(dir: &Path) -> Result<bool, WalError> {
    Ok(!Segments::list(dir)?.is_empty())
}

/// What a replay went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records applied.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Records the state refused on replay (logged with their reason).
    pub refused: u64,
    /// Bytes of a torn last record cut off the end.
    pub torn_bytes: u64,
}

/// Called once the record at an LSN is on the disk, or the log failed.
pub type DurableCallback = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The open segment and the next LSN.
struct Writer {
    dir: PathBuf,
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    next_lsn: u64,
    segment_bytes: u64,
}

impl Writer {
    /// Closes the open segment (synced) and begins one at the next LSN.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(|e| WalError::io("sync", &self.path, e))?;
        let path = self.dir.join(segment_name(self.next_lsn));
        let file = segment::create(&path)?;
        segment::fsync_dir(&self.dir)?;
        self.file = Arc::new(file);
        self.path = path;
        self.len = 0;
        Ok(())
    }
}

/// State shared with the sync thread.
struct Shared {
    writer: Mutex<Writer>,
    /// Every record below this LSN is on the disk.
    durable: AtomicU64,
    waiters: Mutex<Vec<(u64, DurableCallback)>>,
    wake: Condvar,
    wake_lock: Mutex<bool>,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Shared {
    /// Syncs the open segment; returns the LSN below which every record is now durable.
    fn sync(&self) -> Result<u64, String> {
        let (file, path, upto) = {
            let w = self.writer.lock();
            (w.file.clone(), w.path.clone(), w.next_lsn)
        };
        if let Some(reason) = self.failed.lock().clone() {
            return Err(reason);
        }
        match file.sync_data() {
            Ok(()) => {
                self.durable.fetch_max(upto, Ordering::AcqRel);
                Ok(upto)
            }
            Err(e) => {
                let reason = format!("sync of {} failed: {e}", path.display());
                tracing::error!(%reason, "write-ahead log failed");
                *self.failed.lock() = Some(reason.clone());
                Err(reason)
            }
        }
    }

    /// Calls back the waiters the last sync covered (all of them if it failed).
    fn release(&self, result: Result<u64, String>) {
        let ready: Vec<_> = {
            let mut waiters = self.waiters.lock();
            match &result {
                Ok(upto) => {
                    let (ready, wait) = waiters.drain(..).partition(|(lsn, _)| lsn < upto);
                    *waiters = wait;
                    ready
                }
                Err(_) => waiters.drain(..).collect(),
            }
        };
        for (_, callback) in ready {
            callback(result.clone().map(|_| ()));
        }
    }

    /// The sync thread's loop for `sync`.
    fn run(&self, sync: WalSync) {
        loop {
            {
                let mut pending = self.wake_lock.lock();
                match sync {
                    WalSync::Always => {
                        while !*pending && !self.stop.load(Ordering::Acquire) {
                            self.wake.wait(&mut pending);
                        }
                    }
                    WalSync::Interval(d) => {
                        if !self.stop.load(Ordering::Acquire) {
                            self.wake.wait_for(&mut pending, d);
                        }
                    }
                    WalSync::Never => return,
                }
                *pending = false;
            }
            let result = self.sync();
            self.release(result);
            if self.stop.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

/// A node's write-ahead log, open for appending.
pub struct Wal {
    shared: Arc<Shared>,
    config: WalConfig,
    dir: PathBuf,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Opens the log in `dir` (created if missing) and replays it: `apply` is called for
    /// each record at `from` or later, in LSN order (an `Err` is logged and counted as
    /// refused). A torn record at the very end (a write cut short by a crash) is cut off; a
    /// bad record anywhere else is an error. New records follow the last one read.
    pub fn open(
        dir: &Path,
        config: WalConfig,
        from: u64,
        mut apply: impl FnMut(u64, Record<'_>) -> Result<(), String>,
    ) -> Result<(Self, ReplayStats), WalError> {
        fs::create_dir_all(dir).map_err(|e| WalError::io("create", dir, e))?;
        let segments = Segments::list(dir)?;
        let mut stats = ReplayStats::default();
        let next_lsn = segments.replay(from, &mut stats, &mut apply)?;
        let next_lsn = next_lsn.max(from).max(1);
        // Appends always begin a fresh segment: the last one read may end in a cut record.
        let path = dir.join(segment_name(next_lsn));
        let file = segment::create(&path)?;
        segment::fsync_dir(dir)?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                dir: dir.to_path_buf(),
                file: Arc::new(file),
                path,
                len: 0,
                next_lsn,
                segment_bytes: config.segment_bytes.max(1 << 20),
            }),
            durable: AtomicU64::new(next_lsn),
            waiters: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            wake_lock: Mutex::new(false),
            failed: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let syncer = match config.sync {
            WalSync::Never => None,
            sync => {
                let shared = shared.clone();
                let handle = std::thread::Builder::new()
                    .name("strata-wal-sync".into())
                    .spawn(move || shared.run(sync))
                    .map_err(|e| WalError::io("start the sync thread for", dir, e))?;
                Some(handle)
            }
        };
        Ok((
            Self {
                shared,
                config,
                dir: dir.to_path_buf(),
                syncer: Mutex::new(syncer),
            },
            stats,
        ))
    }

    /// The log's settings.
    pub fn config(&self) -> &WalConfig {
        &self.config
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The LSN the next record gets.
    pub fn next_lsn(&self) -> u64 {
        self.shared.writer.lock().next_lsn
    }

    /// Writes `record` to the log (the OS page cache; see [`Wal::on_durable`] for the
    /// disk) and returns its LSN.
    pub fn append(&self, record: &Record<'_>) -> Result<u64, WalError> {
        let mut encoded = record.encode();
        if let Some(reason) = self.shared.failed.lock().clone() {
            return Err(WalError::Failed(reason));
        }
        let mut w = self.shared.writer.lock();
        if w.len >= w.segment_bytes {
            w.rotate()?;
        }
        let lsn = w.next_lsn;
        encoded.set_lsn(lsn);
        let mut slices = [
            IoSlice::new(&encoded.head),
            IoSlice::new(encoded.tail[0]),
            IoSlice::new(encoded.tail[1]),
        ];
        if let Err(e) = write_all_vectored(&w.file, &mut slices) {
            // A partial frame may be on the file: nothing after it could be read back.
            let reason = format!("write to {} failed: {e}", w.path.display());
            *self.shared.failed.lock() = Some(reason);
            return Err(WalError::io("write", &w.path, e));
        }
        w.len += encoded.len() as u64;
        w.next_lsn = lsn + 1;
        Ok(lsn)
    }

    /// Calls `callback` once the record at `lsn` is on the disk as the sync setting says
    /// it must be before an acknowledgement: at once unless the setting is `always`.
    pub fn on_durable(&self, lsn: u64, callback: DurableCallback) {
        if self.config.sync != WalSync::Always || lsn < self.shared.durable.load(Ordering::Acquire)
        {
            return callback(Ok(()));
        }
        if let Some(reason) = self.shared.failed.lock().clone() {
            return callback(Err(reason));
        }
        self.shared.waiters.lock().push((lsn, callback));
        *self.shared.wake_lock.lock() = true;
        self.shared.wake.notify_one();
    }

    /// Ends the open segment so that the next record begins a new one; returns the next
    /// LSN (a checkpoint taken now holds every record below it).
    pub fn cut(&self) -> Result<u64, WalError> {
        let mut w = self.shared.writer.lock();
        if w.len > 0 {
            w.rotate()?;
        }
        Ok(w.next_lsn)
    }

    /// Records that the state at `base.lsn` is `base.checkpoint` (written and synced
    /// before anything is deleted), then deletes the segments wholly before it.
    pub fn set_base(&self, base: &WalBase) -> Result<(), WalError> {
        let path = self.dir.join(BASE_FILE);
        let tmp = self.dir.join(format!("{BASE_FILE}.tmp"));
        let body = serde_json::to_vec(base).map_err(|e| WalError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|e| WalError::io("create", &tmp, e))?;
        f.write_all(&body)
            .and_then(|_| f.sync_all())
            .map_err(|e| WalError::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| WalError::io("rename", &path, e))?;
        segment::fsync_dir(&self.dir)?;
        let open = self.shared.writer.lock().path.clone();
        Segments::list(&self.dir)?.delete_before(&self.dir, base.lsn, &open)
    }

    /// Forces every record written so far to the disk (before a clean exit).
    pub fn sync_now(&self) -> Result<(), WalError> {
        let result = self.shared.sync();
        self.shared.release(result.clone());
        result.map(|_| ()).map_err(WalError::Failed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        *self.shared.wake_lock.lock() = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Writes every byte of `slices` to `file`.
fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
