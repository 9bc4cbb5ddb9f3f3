//! The write-ahead log's records: one per change of a node's state, framed with a length,
//! a crc32 and a log sequence number (LSN).
//!
//! Frame: `len: u32` (bytes of kind and body), `crc32: u32` (of kind and body), `lsn: u64`,
//! `kind: u8`, then the kind's body. The LSN is outside the checksum so a record can be
//! encoded (and its payload checksummed) before it is given its place in the log; replay
//! checks that LSNs follow one another instead. Numbers are little-endian; ids, gradients and rows are
//! written as the packed little-endian words they arrived as, with no re-encoding.

use strata_storage::spec::{DenseSpec, TableSpec};

/// Bytes of the frame before the body: len, crc32, lsn, kind.
pub(crate) const HEADER_BYTES: usize = 4 + 4 + 8 + 1;

/// A body larger than this is corrupt (the gRPC message limit is far below it).
pub(crate) const MAX_BODY_BYTES: usize = 1 << 31;

/// Who sent a push, for exactly-once delivery: the client's id and the push's sequence
/// number (an empty client means none was given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin<'a> {
    /// The client's id.
    pub client: &'a str,
    /// The push's sequence number within the client.
    pub seq: u64,
    /// Every seq of the client below this one has a known outcome.
    pub acked_below: u64,
    /// On a copy sent again: milliseconds since the client sent the first copy (0: the
    /// first). Not logged.
    pub resend_after_ms: u64,
}

/// One logged change, borrowing its payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// Gradients applied to rows of a table.
    Push {
        /// The table.
        table: &'a str,
        /// Who sent it.
        origin: Origin<'a>,
        /// Packed u64 LE ids.
        ids: &'a [u8],
        /// Packed f32 LE gradients, `ids × dim`.
        grads: &'a [u8],
    },
    /// A gradient applied to a whole dense tensor.
    PushDense {
        /// The tensor.
        name: &'a str,
        /// Packed f32 LE gradient.
        grad: &'a [u8],
    },
    /// A table created (its spec as JSON).
    CreateTable(TableSpec),
    /// A table dropped.
    DropTable(&'a str),
    /// A dense tensor created.
    CreateDense(DenseSpec),
    /// A dense tensor dropped.
    DropDense(&'a str),
    /// Whole rows written (a migration's import).
    ImportRows {
        /// The table.
        table: &'a str,
        /// Packed u64 LE ids.
        ids: &'a [u8],
        /// Packed f32 LE whole rows.
        rows: &'a [u8],
    },
    /// The rows of slot ranges erased.
    EraseSlots {
        /// The table.
        table: &'a str,
        /// Half-open slot ranges.
        ranges: Vec<(u32, u32)>,
    },
}

const PUSH: u8 = 1;
const PUSH_DENSE: u8 = 2;
const CREATE_TABLE: u8 = 3;
const DROP_TABLE: u8 = 4;
const CREATE_DENSE: u8 = 5;
const DROP_DENSE: u8 = 6;
const IMPORT_ROWS: u8 = 7;
const ERASE_SLOTS: u8 = 8;

/// Why a record's bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// A record encoded as a few byte slices to be written one after another (the big payloads
/// are borrowed, not copied).
pub(crate) struct Encoded<'a> {
    /// Everything before the borrowed payloads: frame header and small fields.
    pub head: Vec<u8>,
    /// The borrowed payloads, in order.
    pub tail: [&'a [u8]; 2],
}

impl Encoded<'_> {
    /// Gives the record its place in the log.
    pub fn set_lsn(&mut self, lsn: u64) {
        self.head[8..16].copy_from_slice(&lsn.to_le_bytes());
    }

    /// Total bytes of the frame.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail[0].len() + self.tail[1].len()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names are at most a few hundred bytes (checked by the spec); clients' ids are capped.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

impl<'a> Record<'a> {
    /// The frame of this record, its LSN still to be set ([`Encoded::set_lsn`]).
    pub(crate) fn encode(&self) -> Encoded<'a> {
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(&[0u8; 16]); // len, crc and lsn, filled later
        let mut tail: [&'a [u8]; 2] = [&[], &[]];
        match self {
            Record::Push {
                table,
                origin,
                ids,
                grads,
            } => {
                head.push(PUSH);
                put_str(&mut head, table);
                put_str(&mut head, origin.client);
                head.extend_from_slice(&origin.seq.to_le_bytes());
                head.extend_from_slice(&origin.acked_below.to_le_bytes());
                head.extend_from_slice(&(ids.len() as u64).to_le_bytes());
                tail = [ids, grads];
            }
            Record::PushDense { name, grad } => {
                head.push(PUSH_DENSE);
                put_str(&mut head, name);
                tail = [grad, &[]];
            }
            Record::CreateTable(spec) => {
                head.push(CREATE_TABLE);
                head.extend_from_slice(&serde_json::to_vec(spec).unwrap_or_default());
            }
            Record::DropTable(name) => {
                head.push(DROP_TABLE);
                put_str(&mut head, name);
            }
            Record::CreateDense(spec) => {
                head.push(CREATE_DENSE);
                head.extend_from_slice(&serde_json::to_vec(spec).unwrap_or_default());
            }
            Record::DropDense(name) => {
                head.push(DROP_DENSE);
                put_str(&mut head, name);
            }
            Record::ImportRows { table, ids, rows } => {
                head.push(IMPORT_ROWS);
                put_str(&mut head, table);
                head.extend_from_slice(&(ids.len() as u64).to_le_bytes());
                tail = [ids, rows];
            }
            Record::EraseSlots { table, ranges } => {
                head.push(ERASE_SLOTS);
                put_str(&mut head, table);
                head.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
                for (start, end) in ranges {
                    head.extend_from_slice(&start.to_le_bytes());
                    head.extend_from_slice(&end.to_le_bytes());
                }
            }
        }
        let len = (head.len() - 16 + tail[0].len() + tail[1].len()) as u32;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[16..]);
        crc.update(tail[0]);
        crc.update(tail[1]);
        head[0..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        Encoded { head, tail }
    }

    /// Reads the body of a record of `kind` (the bytes after the kind byte).
    pub(crate) fn decode(kind: u8, body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes: body };
        let record = match kind {
            PUSH => {
                let table = r.str()?;
                let client = r.str()?;
                let seq = r.u64()?;
                let acked_below = r.u64()?;
                let id_bytes = usize::try_from(r.u64()?)
                    .map_err(|_| DecodeError("id bytes overflow".into()))?;
                let ids = r.take(id_bytes)?;
                Record::Push {
                    table,
                    origin: Origin {
                        client,
                        seq,
                        acked_below,
                        resend_after_ms: 0,
                    },
                    ids,
                    grads: r.rest(),
                }
            }
            PUSH_DENSE => Record::PushDense {
                name: r.str()?,
                grad: r.rest(),
            },
            CREATE_TABLE => Record::CreateTable(
                serde_json::from_slice(r.rest())
                    .map_err(|e| DecodeError(format!("table spec: {e}")))?,
            ),
            DROP_TABLE => Record::DropTable(r.str()?),
            CREATE_DENSE => Record::CreateDense(
                serde_json::from_slice(r.rest())
                    .map_err(|e| DecodeError(format!("dense spec: {e}")))?,
            ),
            DROP_DENSE => Record::DropDense(r.str()?),
            IMPORT_ROWS => {
                let table = r.str()?;
                let id_bytes = usize::try_from(r.u64()?)
                    .map_err(|_| DecodeError("id bytes overflow".into()))?;
                let ids = r.take(id_bytes)?;
                Record::ImportRows {
                    table,
                    ids,
                    rows: r.rest(),
                }
            }
            ERASE_SLOTS => {
                let table = r.str()?;
                let n = r.u32()? as usize;
                if n > r.bytes.len() / 8 {
                    return Err(DecodeError(format!("{n} ranges in a short record")));
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    ranges.push((r.u32()?, r.u32()?));
                }
                Record::EraseSlots { table, ranges }
            }
            other => return Err(DecodeError(format!("unknown record kind {other}"))),
        };
        Ok(record)
    }
}

/// A cursor over a record body.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError(format!(
                "record body ends {} bytes short",
                n - self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.take(2)?;
        let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("name is not UTF-8".into()))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: Record<'_>) {
        let mut enc = record.encode();
        enc.set_lsn(42);
        let mut bytes = enc.head.clone();
        bytes.extend_from_slice(enc.tail[0]);
        bytes.extend_from_slice(enc.tail[1]);
        assert_eq!(bytes.len(), enc.len());
        let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4")) as usize;
        assert_eq!(len, bytes.len() - 16);
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4"));
        assert_eq!(crc, crc32fast::hash(&bytes[16..]));
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().expect("8")), 42);
        let back = Record::decode(bytes[16], &bytes[HEADER_BYTES..]).expect("decodes");
        assert_eq!(back, record);
    }

    #[test]
    fn every_kind_reads_back() {
        let ids = 7u64.to_le_bytes();
        let grads = [1u8; 8];
        roundtrip(Record::Push {
            table: "emb",
            origin: Origin {
                client: "c1",
                seq: 9,
                acked_below: 4,
                resend_after_ms: 0,
            },
            ids: &ids,
            grads: &grads,
        });
        roundtrip(Record::PushDense {
            name: "w",
            grad: &grads,
        });
        roundtrip(Record::DropTable("emb"));
        roundtrip(Record::DropDense("w"));
        roundtrip(Record::ImportRows {
            table: "emb",
            ids: &ids,
            rows: &grads,
        });
        roundtrip(Record::EraseSlots {
            table: "emb",
            ranges: vec![(0, 4), (9, 12)],
        });
    }

    #[test]
    fn short_and_unknown_bodies_are_errors() {
        assert!(Record::decode(PUSH, &[3, 0, b'e']).is_err());
        assert!(Record::decode(99, &[]).is_err());
        assert!(Record::decode(ERASE_SLOTS, &[1, 0, b'e', 255, 255, 255, 255]).is_err());
    }
}
