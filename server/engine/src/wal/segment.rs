//! Segment files of the write-ahead log: listing them in LSN order, reading their records
//! back, and deleting the ones a checkpoint made obsolete.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::record::{Record, HEADER_BYTES, MAX_BODY_BYTES};
use super::{ReplayStats, WalError};

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".log";

/// File name of the segment whose first record has LSN `first`.
pub(super) fn segment_name(first: u64) -> String {
    format!("{first:020}{SEGMENT_SUFFIX}")
}

/// Creates (or empties) a segment file for appending.
pub(super) fn create(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io("create", path, e))
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub(super) fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io("sync", dir, e))
}

/// The segments of a log directory, by first LSN.
pub(super) struct Segments {
    pub(super) files: Vec<(u64, PathBuf)>,
}

impl Segments {
    /// The segments in `dir` (none if it does not exist).
    pub(super) fn list(dir: &Path) -> Result<Self, WalError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self { files: vec![] }),
            Err(e) => return Err(WalError::io("list", dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
            let name = entry.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((first, entry.path()));
        }
        files.sort_unstable();
        Ok(Self { files })
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Reads every record in order, calling `apply` for those at `from` or later; returns
    /// the LSN after the last record. A record cut short at the end of the last segment is
    /// cut off the file; any other bad record is [`WalError::Corrupt`].
    pub(super) fn replay(
        &self,
        from: u64,
        stats: &mut ReplayStats,
        apply: &mut impl FnMut(u64, Record<'_>) -> Result<(), String>,
    ) -> Result<u64, WalError> {
        let Some((start, first_path)) = self.files.first() else {
            return Ok(from);
        };
        if *start > from.max(1) {
            return Err(WalError::Corrupt {
                path: first_path.clone(),
                offset: 0,
                reason: format!("records {from}..{start} are missing (segments deleted?)"),
            });
        }
        let mut next = *start;
        for (i, (first, path)) in self.files.iter().enumerate() {
            let last = i + 1 == self.files.len();
            if *first != next {
                return Err(WalError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: format!("segment starts at LSN {first}, the one before ends at {next}"),
                });
            }
            // A segment wholly before `from` need not be read.
            if !last && self.files[i + 1].0 <= from {
                next = self.files[i + 1].0;
                continue;
            }
            let bytes = fs::read(path).map_err(|e| WalError::io("read", path, e))?;
            let mut offset = 0usize;
            while offset < bytes.len() {
                match frame_at(&bytes, offset, next) {
                    Ok((record, end)) => {
                        if next >= from {
                            stats.records += 1;
                            stats.bytes += (end - offset) as u64;
                            if let Err(reason) = apply(next, record) {
                                stats.refused += 1;
                                tracing::warn!(lsn = next, %reason, "logged change refused on replay");
                            }
                        }
                        next += 1;
                        offset = end;
                    }
                    Err(reason) if last => {
                        let torn = bytes.len() - offset;
                        tracing::warn!(
                            segment = %path.display(), offset, torn, %reason,
                            "write-ahead log ends in a cut record (a write interrupted by a crash); cutting it off"
                        );
                        let f = OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| WalError::io("open", path, e))?;
                        f.set_len(offset as u64)
                            .and_then(|_| f.sync_all())
                            .map_err(|e| WalError::io("truncate", path, e))?;
                        stats.torn_bytes += torn as u64;
                        break;
                    }
                    Err(reason) => {
                        return Err(WalError::Corrupt {
                            path: path.clone(),
                            offset: offset as u64,
                            reason,
                        })
                    }
                }
            }
        }
        Ok(next)
    }

    /// Deletes the segments (of log directory `dir`) whose every record is below `lsn`,
    /// never `open`.
    pub(super) fn delete_before(&self, dir: &Path, lsn: u64, open: &Path) -> Result<(), WalError> {
        let mut deleted = false;
        for pair in self.files.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first <= lsn && path != open {
                fs::remove_file(path).map_err(|e| WalError::io("delete", path, e))?;
                deleted = true;
            }
        }
        if deleted {
            fsync_dir(dir)?;
        }
        Ok(())
    }
}

/// The record at `offset`, which must have LSN `lsn`, and where the next one starts.
fn frame_at(bytes: &[u8], offset: usize, lsn: u64) -> Result<(Record<'_>, usize), String> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes left, a record header needs {HEADER_BYTES}",
            rest.len()
        ));
    }
    let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    let len = word(0) as usize;
    let crc = word(4);
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&rest[8..16]);
    let got_lsn = u64::from_le_bytes(lsn_bytes);
    if len == 0 || len > MAX_BODY_BYTES {
        return Err(format!("record length {len} out of range"));
    }
    let end = 16 + len;
    if rest.len() < end {
        return Err(format!(
            "record of {len} bytes but {} left",
            rest.len() - 16
        ));
    }
    let body = &rest[16..end];
    if crc32fast::hash(body) != crc {
        return Err("record checksum mismatch".into());
    }
    if got_lsn != lsn {
        return Err(format!("record has LSN {got_lsn} where {lsn} was expected"));
    }
    let record = Record::decode(body[0], &body[1..]).map_err(|e| e.0)?;
    Ok((record, offset + end))
}
