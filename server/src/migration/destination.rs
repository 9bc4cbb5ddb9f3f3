//! The destination side of a move: rows of a range this node does not serve yet.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use strata_proto::v1 as pb;

use super::frames::{block_of, chunk_bytes};
use super::{MigrationCounters, MigrationError};
use crate::engine::Engine;

/// Moves this node is receiving: migration id → slot range.
#[derive(Debug, Default)]
pub struct Incoming {
    ranges: Mutex<HashMap<String, (u32, u32)>>,
}

impl Incoming {
    /// No moves yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rolls move `id` back: drops its rows unless this node serves the range by now.
    pub fn abort(&self, engine: &Engine, id: &str) -> Result<bool, MigrationError> {
        let Some((start, end)) = self.ranges.lock().remove(id) else {
            return Ok(false);
        };
        if !engine.ownership().serves_any(start, end) {
            erase(engine, start, end)?;
        }
        Ok(true)
    }

    /// Forgets moves whose range this node now serves (they were committed).
    pub fn settle(&self, engine: &Engine) {
        self.ranges
            .lock()
            .retain(|_, &mut (start, end)| !engine.ownership().serves_any(start, end));
    }
}

/// Drops every row of `start..end` in every table.
pub fn erase(engine: &Engine, start: u32, end: u32) -> Result<u64, MigrationError> {
    let mut rows = 0;
    for t in engine.tables() {
        rows += t.erase_slots(&[(start, end)])?;
    }
    Ok(rows)
}

/// Receives a move's stream: the first message names it, then rows and dense tensors,
/// then the end marker. On failure the rows received are dropped again.
pub async fn import<S>(
    engine: Arc<Engine>,
    incoming: Arc<Incoming>,
    counters: Arc<MigrationCounters>,
    mut stream: S,
) -> Result<u64, MigrationError>
where
    S: Stream<Item = Result<pb::ImportChunk, tonic::Status>> + Unpin + Send,
{
    let first = next(&mut stream)
        .await?
        .ok_or_else(|| MigrationError::BadStream("empty stream".into()))?;
    let (id, start, end) = (first.migration_id, first.slot_start, first.slot_end);
    if id.is_empty() || start >= end || end > engine.ownership().num_slots() {
        return Err(MigrationError::BadStream(format!(
            "first message must name the move and a slot range, got {id:?} {start}..{end}"
        )));
    }
    if engine.ownership().serves_any(start, end) {
        return Err(MigrationError::AlreadyServed { start, end });
    }
    incoming.ranges.lock().insert(id.clone(), (start, end));
    counters.active.fetch_add(1, Ordering::Relaxed);
    let e = engine.clone();
    let result = async {
        // Leftovers of an earlier attempt (or an old checkpoint) must not survive.
        tokio::task::spawn_blocking(move || erase(&e, start, end))
            .await
            .map_err(|e| MigrationError::Task(e.to_string()))??;
        receive(&engine, &counters, &mut stream).await
    }
    .await;
    counters.active.fetch_sub(1, Ordering::Relaxed);
    if result.is_err() {
        incoming.abort(&engine, &id)?;
    }
    result
}

async fn receive<S>(
    engine: &Arc<Engine>,
    counters: &MigrationCounters,
    stream: &mut S,
) -> Result<u64, MigrationError>
where
    S: Stream<Item = Result<pb::ImportChunk, tonic::Status>> + Unpin + Send,
{
    let mut rows = 0u64;
    while let Some(chunk) = next(stream).await? {
        if chunk.done {
            return Ok(rows);
        }
        counters
            .bytes_in
            .fetch_add(chunk_bytes(&chunk), Ordering::Relaxed);
        if !chunk.dense.is_empty() {
            let data = crate::engine::payload::f32s_from_bytes("dense_data", &chunk.dense_data, 4)?;
            engine.dense(&chunk.dense)?.load(&data)?;
            continue;
        }
        if chunk.table.is_empty() {
            continue;
        }
        let table = engine.table(&chunk.table)?;
        let block = block_of(&chunk, table.row_floats())?;
        let n = block.ids.len() as u64;
        tokio::task::spawn_blocking(move || table.import_rows(&block))
            .await
            .map_err(|e| MigrationError::Task(e.to_string()))??;
        rows += n;
        counters.rows_in.fetch_add(n, Ordering::Relaxed);
    }
    Err(MigrationError::BadStream(
        "the stream ended before its end marker".into(),
    ))
}

async fn next<S>(stream: &mut S) -> Result<Option<pb::ImportChunk>, MigrationError>
where
    S: Stream<Item = Result<pb::ImportChunk, tonic::Status>> + Unpin + Send,
{
    match stream.next().await {
        None => Ok(None),
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(s)) => Err(MigrationError::BadStream(format!(
            "{:?}: {}",
            s.code(),
            s.message()
        ))),
    }
}
