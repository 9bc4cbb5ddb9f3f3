//! Redis as a row store, the way TensorFlow Recommenders-Addons uses it: a value blob and an
//! Adagrad accumulator blob per id, the optimizer computed on the trainer (MGET / SET NX / MSET).

use super::resp::{BulkInto, Reply, RespConn};
use super::{TableParams, Target, TargetError};
use crate::workload::initial_row;
use crate::workload::GradRows;

/// Keys per pipelined MGET command (and ids per MSET command: two keys each).
const CHUNK: usize = 1024;

/// One trainer's connection to Redis and its scratch buffers.
#[derive(Debug)]
pub struct RedisTarget {
    conn: RespConn,
    p: TableParams,
    key_v: Vec<u8>,
    key_a: Vec<u8>,
    /// Ids and values of the last pull, reused by a push of the same ids (as the trainer has them).
    last_ids: Vec<u64>,
    last_vals: Vec<f32>,
    acc: Vec<f32>,
    missing: Vec<usize>,
}

/// Connect to `addr` (`host:port`) and `PING` it.
async fn open(addr: &str) -> Result<RespConn, TargetError> {
    let mut conn = RespConn::connect(addr).await?;
    match conn.call(&[b"PING"]).await? {
        Reply::Simple(s) if s == "PONG" => Ok(conn),
        other => Err(TargetError::Setup(format!("PING answered {other:?}"))),
    }
}

/// Empty the Redis instance (`FLUSHALL`) before a run.
pub async fn reset(addr: &str) -> Result<(), TargetError> {
    let mut conn = open(addr).await?;
    match conn.call(&[b"FLUSHALL"]).await? {
        Reply::Simple(_) => Ok(()),
        other => Err(TargetError::Setup(format!("FLUSHALL answered {other:?}"))),
    }
}

impl RedisTarget {
    /// Open one trainer's connection to `addr` (`host:port`).
    pub async fn connect(addr: &str, p: &TableParams) -> Result<Self, TargetError> {
        let conn = open(addr).await?;
        Ok(Self {
            conn,
            key_v: format!("{}:v:", p.name).into_bytes(),
            key_a: format!("{}:a:", p.name).into_bytes(),
            p: p.clone(),
            last_ids: Vec::new(),
            last_vals: Vec::new(),
            acc: Vec::new(),
            missing: Vec::new(),
        })
    }

    fn row_bytes(&self) -> usize {
        self.p.dim * 4
    }

    /// MGET the blobs under `prefix` for `ids` into `out`; indices of missing keys go to `missing`.
    async fn mget(
        conn: &mut RespConn,
        prefix: &[u8],
        ids: &[u64],
        dim: usize,
        out: &mut [f32],
        missing: &mut Vec<usize>,
    ) -> Result<(), TargetError> {
        missing.clear();
        for chunk in ids.chunks(CHUNK) {
            conn.cmd(1 + chunk.len());
            conn.arg(&[b"MGET"]);
            for id in chunk {
                conn.arg(&[prefix, &id.to_le_bytes()]);
            }
        }
        conn.flush().await?;
        let mut i = 0;
        for chunk in ids.chunks(CHUNK) {
            let n = conn.read_array_len().await?;
            if n != chunk.len() {
                return Err(TargetError::Protocol(format!(
                    "MGET of {} keys answered {n} values",
                    chunk.len()
                )));
            }
            for _ in 0..n {
                let row = bytemuck::cast_slice_mut(&mut out[i * dim..(i + 1) * dim]);
                if conn.read_bulk_into(row).await? == BulkInto::Null {
                    missing.push(i);
                }
                i += 1;
            }
        }
        Ok(())
    }
}

impl Target for RedisTarget {
    async fn pull(&mut self, ids: &[u64], out: &mut [f32]) -> Result<u64, TargetError> {
        let dim = self.p.dim;
        super::check_len(ids.len(), dim, out.len())?;
        Self::mget(
            &mut self.conn,
            &self.key_v,
            ids,
            dim,
            out,
            &mut self.missing,
        )
        .await?;
        if !self.missing.is_empty() {
            // New rows: initialized on the trainer, written only if still absent.
            for &i in &self.missing {
                let row = &mut out[i * dim..(i + 1) * dim];
                initial_row(ids[i], self.p.init_scale, row);
                self.conn.cmd(4);
                self.conn.arg(&[b"SET"]);
                self.conn.arg(&[&self.key_v, &ids[i].to_le_bytes()]);
                self.conn.arg(&[bytemuck::cast_slice(row)]);
                self.conn.arg(&[b"NX"]);
            }
            self.conn.flush().await?;
            for _ in 0..self.missing.len() {
                match self.conn.read_reply().await? {
                    Reply::Simple(_) | Reply::Bulk(None) => {}
                    other => {
                        return Err(TargetError::Protocol(format!("SET NX answered {other:?}")))
                    }
                }
            }
        }
        self.last_ids.clear();
        self.last_ids.extend_from_slice(ids);
        self.last_vals.clear();
        self.last_vals.extend_from_slice(out);
        // Values came in for every id, or went out for the new ones.
        Ok((ids.len() * self.row_bytes()) as u64)
    }

    async fn push(&mut self, ids: &[u64], grads: &GradRows<'_>) -> Result<u64, TargetError> {
        let grads = grads.values;
        let dim = self.p.dim;
        super::check_len(ids.len(), dim, grads.len())?;
        let n = ids.len();
        let mut bytes = 0u64;
        if self.last_ids.as_slice() != ids {
            // Not the ids of the last pull: fetch the current values first.
            self.last_vals.resize(n * dim, 0.0);
            let mut vals = std::mem::take(&mut self.last_vals);
            let r = self.pull(ids, &mut vals).await;
            self.last_vals = vals;
            bytes += r?;
        }
        self.acc.resize(n * dim, 0.0);
        Self::mget(
            &mut self.conn,
            &self.key_a,
            ids,
            dim,
            &mut self.acc,
            &mut self.missing,
        )
        .await?;
        for &i in &self.missing {
            self.acc[i * dim..(i + 1) * dim].fill(self.p.init_acc);
        }
        let lr = self.p.lr;
        for ((w, a), &g) in self
            .last_vals
            .iter_mut()
            .zip(self.acc.iter_mut())
            .zip(grads)
        {
            *a += g * g;
            *w -= lr * g / a.sqrt();
        }
        for (c, chunk) in ids.chunks(CHUNK / 2).enumerate() {
            self.conn.cmd(1 + 4 * chunk.len());
            self.conn.arg(&[b"MSET"]);
            for (j, id) in chunk.iter().enumerate() {
                let i = c * (CHUNK / 2) + j;
                let id = id.to_le_bytes();
                self.conn.arg(&[&self.key_v, &id]);
                self.conn.arg(&[bytemuck::cast_slice(
                    &self.last_vals[i * dim..(i + 1) * dim],
                )]);
                self.conn.arg(&[&self.key_a, &id]);
                self.conn
                    .arg(&[bytemuck::cast_slice(&self.acc[i * dim..(i + 1) * dim])]);
            }
        }
        self.conn.flush().await?;
        for _ in ids.chunks(CHUNK / 2) {
            match self.conn.read_reply().await? {
                Reply::Simple(_) => {}
                other => return Err(TargetError::Protocol(format!("MSET answered {other:?}"))),
            }
        }
        // The updated values stay the trainer's copy for a push of the same ids.
        // Accumulators in, values and accumulators out.
        bytes += (3 * n * self.row_bytes()) as u64;
        Ok(bytes)
    }
}
