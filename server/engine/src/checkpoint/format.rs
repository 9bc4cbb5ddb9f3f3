//! Binary data files: one per table and one per dense tensor.
//!
//! Layout (all little-endian):
//! ```text
//! header (40 bytes): magic "STRATACK", version u32, kind u32 (1 table, 2 dense),
//!                    row_floats u32, reserved u32 (0), rows u64, blocks u64
//! table: blocks × u64 row count, then per block: ids (n × u64), rows (n × row_floats × f32)
//! dense: rows × f32 (row_floats = 1, blocks = 0)
//! ```
//! The crc32 of the whole file and its length are kept in the manifest; reading checks the
//! length and header against the manifest before allocating, and the crc before returning.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::error::CheckpointError;
use super::manifest::FileKind;
use super::{DenseSnapshot, RowBlock, TableSnapshot};

/// Magic bytes opening every data file.
pub(crate) const MAGIC: [u8; 8] = *b"STRATACK";
/// Version of the data-file layout.
pub(crate) const DATA_VERSION: u32 = 1;
/// Bytes of the fixed header.
pub(crate) const HEADER_LEN: u64 = 40;
/// Capacity of the write buffer; larger slices bypass it.
const WRITE_BUF: usize = 8 << 20;
/// Bytes read (and hashed) per step when reading.
const READ_CHUNK: usize = 8 << 20;

/// Length and checksum of a written data file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    /// File length in bytes.
    pub bytes: u64,
    /// crc32 of the whole file.
    pub crc32: u32,
}

/// What the manifest says a data file holds; checked against the file's header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    /// Checkpoint id, for errors.
    pub id: &'a str,
    /// File name inside the checkpoint directory, for errors.
    pub file: &'a str,
    /// Table or dense.
    pub kind: FileKind,
    /// f32 words per row (1 for dense).
    pub row_floats: u32,
    /// Rows (f32 words for dense).
    pub rows: u64,
    /// Blocks (0 for dense).
    pub blocks: u64,
    /// File length in bytes.
    pub bytes: u64,
    /// crc32 of the whole file.
    pub crc32: u32,
}

fn kind_code(kind: FileKind) -> u32 {
    match kind {
        FileKind::Table => 1,
        FileKind::Dense => 2,
    }
}

fn header(kind: FileKind, row_floats: u32, rows: u64, blocks: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&DATA_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&kind_code(kind).to_le_bytes());
    h[16..20].copy_from_slice(&row_floats.to_le_bytes());
    // 20..24 reserved, zero.
    h[24..32].copy_from_slice(&rows.to_le_bytes());
    h[32..40].copy_from_slice(&blocks.to_le_bytes());
    h
}

/// A writer that hashes and counts everything it writes.
struct CrcWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> CrcWriter<W> {
    fn new(inner: W) -> Self {
        CrcWriter {
            inner,
            hasher: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }

    fn put(&mut self, buf: &[u8]) -> io::Result<()> {
        self.hasher.update(buf);
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }
}

impl CrcWriter<BufWriter<File>> {
    /// Flushes, fsyncs and returns the file's length and crc.
    fn finish(self) -> io::Result<Written> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Written {
            bytes: self.bytes,
            crc32: self.hasher.finalize(),
        })
    }
}

fn create(path: &Path) -> Result<CrcWriter<BufWriter<File>>, CheckpointError> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CheckpointError::io("create", path, e))?;
    Ok(CrcWriter::new(BufWriter::with_capacity(WRITE_BUF, file)))
}

/// Checks that every block holds `ids.len() * row_floats` words; returns the total rows.
pub(crate) fn table_rows(t: &TableSnapshot) -> Result<u64, CheckpointError> {
    let rf = t.row_floats as usize;
    let mut rows = 0u64;
    for (i, b) in t.blocks.iter().enumerate() {
        if b.ids.len().checked_mul(rf) != Some(b.rows.len()) {
            return Err(CheckpointError::InvalidSnapshot {
                reason: format!(
                    "table {:?} block {i}: {} ids × {rf} row_floats != {} words",
                    t.spec.name,
                    b.ids.len(),
                    b.rows.len()
                ),
            });
        }
        rows += b.ids.len() as u64;
    }
    Ok(rows)
}

/// Writes a table's header and blocks (`rows` from [`table_rows`]).
fn put_table<W: Write>(w: &mut CrcWriter<W>, t: &TableSnapshot, rows: u64) -> io::Result<()> {
    w.put(&header(
        FileKind::Table,
        t.row_floats,
        rows,
        t.blocks.len() as u64,
    ))?;
    let lens: Vec<u64> = t.blocks.iter().map(|b| b.ids.len() as u64).collect();
    w.put(bytemuck::cast_slice(&lens))?;
    for b in &t.blocks {
        w.put(bytemuck::cast_slice(&b.ids))?;
        w.put(bytemuck::cast_slice(&b.rows))?;
    }
    Ok(())
}

/// Writes a dense tensor's header and words.
fn put_dense<W: Write>(w: &mut CrcWriter<W>, d: &DenseSnapshot) -> io::Result<()> {
    w.put(&header(FileKind::Dense, 1, d.data.len() as u64, 0))?;
    w.put(bytemuck::cast_slice(&d.data))
}

/// Writes one table's data file at `path` (which must not exist) and fsyncs it.
pub(crate) fn write_table(path: &Path, t: &TableSnapshot) -> Result<Written, CheckpointError> {
    let rows = table_rows(t)?;
    let mut w = create(path)?;
    put_table(&mut w, t, rows).map_err(|e| CheckpointError::io("write", path, e))?;
    w.finish()
        .map_err(|e| CheckpointError::io("flush/fsync", path, e))
}

/// Writes one dense tensor's data file at `path` (which must not exist) and fsyncs it.
pub(crate) fn write_dense(path: &Path, d: &DenseSnapshot) -> Result<Written, CheckpointError> {
    let mut w = create(path)?;
    put_dense(&mut w, d).map_err(|e| CheckpointError::io("write", path, e))?;
    w.finish()
        .map_err(|e| CheckpointError::io("flush/fsync", path, e))
}

/// A table's data file as bytes, exactly as [`write_table`] writes it.
pub(crate) fn encode_table(t: &TableSnapshot) -> Result<Vec<u8>, CheckpointError> {
    let rows = table_rows(t)?;
    let mut w = CrcWriter::new(Vec::new());
    put_table(&mut w, t, rows).map_err(|e| CheckpointError::io("encode", "", e))?;
    Ok(w.inner)
}

/// A dense tensor's data file as bytes, exactly as [`write_dense`] writes it.
pub(crate) fn encode_dense(d: &DenseSnapshot) -> Result<Vec<u8>, CheckpointError> {
    let mut w = CrcWriter::new(Vec::new());
    put_dense(&mut w, d).map_err(|e| CheckpointError::io("encode", "", e))?;
    Ok(w.inner)
}

/// An open data file being verified (and possibly decoded).
struct Reader<'a, R> {
    file: R,
    hasher: crc32fast::Hasher,
    exp: Expect<'a>,
    path: &'a Path,
}

impl<R: Read> Reader<'_, R> {
    fn corrupt(&self, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::corrupt(self.exp.id, self.exp.file, reason)
    }

    fn map_read(&self, e: io::Error) -> CheckpointError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.corrupt("truncated while reading")
        } else {
            CheckpointError::io("read", self.path, e)
        }
    }

    /// Reads exactly `dst.len()` bytes into `dst`, hashing them.
    fn fill(&mut self, dst: &mut [u8]) -> Result<(), CheckpointError> {
        for chunk in dst.chunks_mut(READ_CHUNK) {
            if let Err(e) = self.file.read_exact(chunk) {
                return Err(self.map_read(e));
            }
            self.hasher.update(chunk);
        }
        Ok(())
    }

    /// Reads and hashes `len` bytes, discarding them through `scratch`.
    fn skip(&mut self, mut len: u64, scratch: &mut Vec<u8>) -> Result<(), CheckpointError> {
        if scratch.len() < READ_CHUNK {
            scratch.resize(READ_CHUNK, 0);
        }
        while len > 0 {
            let n = len.min(READ_CHUNK as u64) as usize;
            if let Err(e) = self.file.read_exact(&mut scratch[..n]) {
                return Err(self.map_read(e));
            }
            self.hasher.update(&scratch[..n]);
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads `n` words into a new vector when `load`, else only hashes them.
    fn words<T: bytemuck::Pod>(
        &mut self,
        n: usize,
        load: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<T>, CheckpointError> {
        if load {
            let mut v = vec![T::zeroed(); n];
            self.fill(bytemuck::cast_slice_mut(&mut v))?;
            Ok(v)
        } else {
            self.skip((n * std::mem::size_of::<T>()) as u64, scratch)?;
            Ok(Vec::new())
        }
    }

    /// Checks the crc once everything has been read.
    fn finish(self) -> Result<(), CheckpointError> {
        let got = self.hasher.finalize();
        if got != self.exp.crc32 {
            return Err(CheckpointError::corrupt(
                self.exp.id,
                self.exp.file,
                format!(
                    "crc32 mismatch: file {got:08x}, manifest {:08x}",
                    self.exp.crc32
                ),
            ));
        }
        Ok(())
    }
}

/// Opens `path` and returns it with its length.
fn open_file(path: &Path, exp: &Expect<'_>) -> Result<(File, u64), CheckpointError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CheckpointError::corrupt(exp.id, exp.file, "file missing"));
        }
        Err(e) => return Err(CheckpointError::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| CheckpointError::io("stat", path, e))?
        .len();
    Ok((file, len))
}

/// Checks `len` and the header read from `file` against `exp` (`path` names it in errors).
fn start<'a, R: Read>(
    file: R,
    len: u64,
    path: &'a Path,
    exp: Expect<'a>,
) -> Result<Reader<'a, R>, CheckpointError> {
    let mut r = Reader {
        file,
        hasher: crc32fast::Hasher::new(),
        exp,
        path,
    };
    if len != exp.bytes {
        return Err(r.corrupt(format!("length {len} bytes, manifest says {}", exp.bytes)));
    }
    if len < HEADER_LEN {
        return Err(r.corrupt(format!("length {len} shorter than the header")));
    }
    let mut h = [0u8; HEADER_LEN as usize];
    r.fill(&mut h)?;
    let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[o..o + 8]);
        u64::from_le_bytes(b)
    };
    if h[0..8] != MAGIC {
        return Err(r.corrupt("bad magic"));
    }
    let (version, kind, row_floats, rows, blocks) =
        (u32_at(8), u32_at(12), u32_at(16), u64_at(24), u64_at(32));
    if version != DATA_VERSION {
        return Err(r.corrupt(format!("unsupported data version {version}")));
    }
    // Writers put 0 there; anything else is a damaged or foreign file.
    if u32_at(20) != 0 {
        return Err(r.corrupt(format!("reserved header word is {:#x}, not 0", u32_at(20))));
    }
    if kind != kind_code(exp.kind) || row_floats != exp.row_floats || rows != exp.rows {
        return Err(r.corrupt(format!(
            "header (kind {kind}, row_floats {row_floats}, rows {rows}) disagrees with manifest \
             (kind {}, row_floats {}, rows {})",
            kind_code(exp.kind),
            exp.row_floats,
            exp.rows
        )));
    }
    if blocks != exp.blocks {
        return Err(r.corrupt(format!(
            "header has {blocks} blocks, manifest says {}",
            exp.blocks
        )));
    }
    // Expected length from the header alone; must equal the real length before any allocation.
    let id_bytes = match exp.kind {
        FileKind::Table => 8,
        FileKind::Dense => 0,
    };
    let row_bytes = u64::from(row_floats) * 4 + id_bytes;
    let expected = rows
        .checked_mul(row_bytes)
        .and_then(|b| blocks.checked_mul(8).and_then(|t| t.checked_add(b)))
        .and_then(|b| b.checked_add(HEADER_LEN));
    let expected = match (exp.kind, expected) {
        (FileKind::Dense, _) if blocks != 0 || row_floats != 1 => None,
        (_, e) => e,
    };
    if expected != Some(len) {
        return Err(r.corrupt(format!(
            "length {len} does not match the header (rows {rows}, row_floats {row_floats}, \
             blocks {blocks})"
        )));
    }
    Ok(r)
}

/// Verifies a table's data file and, when `load`, returns its blocks.
pub(crate) fn read_table(
    path: &Path,
    exp: Expect<'_>,
    load: bool,
    scratch: &mut Vec<u8>,
) -> Result<Vec<RowBlock>, CheckpointError> {
    let (file, len) = open_file(path, &exp)?;
    read_table_from(file, len, path, exp, load, scratch)
}

/// [`read_table`] of `len` bytes read from `file` (`path` names it in errors).
pub(crate) fn read_table_from<R: Read>(
    file: R,
    len: u64,
    path: &Path,
    exp: Expect<'_>,
    load: bool,
    scratch: &mut Vec<u8>,
) -> Result<Vec<RowBlock>, CheckpointError> {
    let mut r = start(file, len, path, exp)?;
    // The length check in `start` bounds `blocks` by the file size.
    let mut lens = vec![0u64; exp.blocks as usize];
    r.fill(bytemuck::cast_slice_mut(&mut lens))?;
    let total = lens.iter().try_fold(0u64, |a, &n| a.checked_add(n));
    if total != Some(exp.rows) {
        return Err(r.corrupt(format!(
            "block lengths sum to {total:?}, header says {} rows",
            exp.rows
        )));
    }
    let rf = exp.row_floats as usize;
    let mut out = Vec::with_capacity(if load { lens.len() } else { 0 });
    for &n in &lens {
        let n = n as usize; // bounded by the file length checked in `start`
        let ids = r.words::<u64>(n, load, scratch)?;
        let rows = r.words::<f32>(n * rf, load, scratch)?;
        if load {
            out.push(RowBlock { ids, rows });
        }
    }
    r.finish()?;
    Ok(out)
}

/// Verifies a dense tensor's data file and, when `load`, returns its words.
pub(crate) fn read_dense(
    path: &Path,
    exp: Expect<'_>,
    load: bool,
    scratch: &mut Vec<u8>,
) -> Result<Vec<f32>, CheckpointError> {
    let (file, len) = open_file(path, &exp)?;
    read_dense_from(file, len, path, exp, load, scratch)
}

/// [`read_dense`] of `len` bytes read from `file` (`path` names it in errors).
pub(crate) fn read_dense_from<R: Read>(
    file: R,
    len: u64,
    path: &Path,
    exp: Expect<'_>,
    load: bool,
    scratch: &mut Vec<u8>,
) -> Result<Vec<f32>, CheckpointError> {
    let mut r = start(file, len, path, exp)?;
    let data = r.words::<f32>(exp.rows as usize, load, scratch)?;
    r.finish()?;
    Ok(data)
}
