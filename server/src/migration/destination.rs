//! The destination side of a move: rows of a range this node does not serve yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use strata_proto::v1 as pb;

use super::frames::{chunk_bytes, packed_of};
use super::{MigrationCounters, MigrationError};
use strata_engine::{Engine, EngineError};

/// How long a new import waits for an aborted one of the same slots to stop.
const WIND_DOWN_WAIT: Duration = Duration::from_secs(30);

/// One move this node receives.
#[derive(Debug)]
struct IncomingMove {
    range: (u32, u32),
    /// Set by an abort while the stream still runs: it stops before its next write.
    aborted: Arc<AtomicBool>,
    /// The stream is still being received.
    running: bool,
}

/// Moves this node is receiving (or has received and not seen committed yet).
#[derive(Debug, Default)]
pub struct Incoming {
    moves: Mutex<HashMap<String, IncomingMove>>,
}

impl Incoming {
    /// No moves yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers move `id` for `start..end`. While an aborted move of an overlapping range
    /// is still winding down this waits for it (bounded); a live one refuses.
    async fn begin(
        &self,
        id: &str,
        start: u32,
        end: u32,
    ) -> Result<Arc<AtomicBool>, MigrationError> {
        let deadline = Instant::now() + WIND_DOWN_WAIT;
        loop {
            match self.try_begin(id, start, end) {
                Err(Some(other)) if Instant::now() < deadline => {
                    tracing::debug!(%id, %other, "waiting for an aborted import to stop");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => {
                    return Err(MigrationError::BadStream(format!(
                        "slots {start}..{end} overlap move {} held here",
                        other.unwrap_or_default()
                    )))
                }
                Ok(aborted) => return Ok(aborted),
            }
        }
    }

    /// Registers move `id` unless another overlaps (`Err(Some(id))`: an aborted one that is
    /// still stopping; `Err(None)`: a live one).
    fn try_begin(&self, id: &str, start: u32, end: u32) -> Result<Arc<AtomicBool>, Option<String>> {
        let mut moves = self.moves.lock();
        if let Some((other, m)) = moves
            .iter()
            .find(|(other, m)| *other != id && m.range.0 < end && start < m.range.1)
        {
            return Err(m.aborted.load(Ordering::Acquire).then(|| other.clone()));
        }
        let aborted = Arc::new(AtomicBool::new(false));
        moves.insert(
            id.to_string(),
            IncomingMove {
                range: (start, end),
                aborted: aborted.clone(),
                running: true,
            },
        );
        Ok(aborted)
    }

    /// Rolls move `id` back: drops its rows unless this node serves the range by now. A
    /// stream still running is told to stop; it drops the rows itself after its last write.
    pub fn abort(&self, engine: &Engine, id: &str) -> Result<bool, MigrationError> {
        let range = {
            let mut moves = self.moves.lock();
            let Some(m) = moves.get(id) else {
                return Ok(false);
            };
            m.aborted.store(true, Ordering::Release);
            if m.running {
                return Ok(true);
            }
            let range = m.range;
            moves.remove(id);
            range
        };
        if !engine.ownership().serves_any(range.0, range.1) {
            erase(engine, range.0, range.1)?;
        }
        Ok(true)
    }

    /// Whether move `id` was received completely and is held here.
    pub fn is_complete(&self, id: &str) -> bool {
        self.moves
            .lock()
            .get(id)
            .is_some_and(|m| !m.running && !m.aborted.load(Ordering::Acquire))
    }

    /// Ids of the moves held here (for the coordinator to reconcile).
    pub fn ids(&self) -> Vec<String> {
        self.moves.lock().keys().cloned().collect()
    }

    /// Slot ranges of the moves held here.
    pub fn ranges(&self) -> Vec<(u32, u32)> {
        self.moves.lock().values().map(|m| m.range).collect()
    }

    /// Forgets moves whose range this node now serves (they were committed).
    pub fn settle(&self, engine: &Engine) {
        self.moves
            .lock()
            .retain(|_, m| m.running || !engine.ownership().serves_any(m.range.0, m.range.1));
    }

    /// Ends the stream of move `id`: kept as received, or forgotten after a failure.
    fn end(&self, id: &str, ok: bool) {
        let mut moves = self.moves.lock();
        if ok {
            if let Some(m) = moves.get_mut(id) {
                m.running = false;
            }
        } else {
            moves.remove(id);
        }
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
    let aborted = incoming.begin(&id, start, end).await?;
    counters.active.fetch_add(1, Ordering::Relaxed);
    let e = engine.clone();
    let result = async {
        // Leftovers of an earlier attempt (or an old checkpoint) must not survive.
        tokio::task::spawn_blocking(move || erase(&e, start, end))
            .await
            .map_err(|e| MigrationError::Task(e.to_string()))??;
        receive(&engine, &counters, &aborted, &id, &mut stream).await
    }
    .await;
    counters.active.fetch_sub(1, Ordering::Relaxed);
    if result.is_err() && !engine.ownership().serves_any(start, end) {
        // Dropped before the move is forgotten, so no later attempt's rows are erased.
        let e = engine.clone();
        let erased = tokio::task::spawn_blocking(move || erase(&e, start, end)).await;
        if !matches!(erased, Ok(Ok(_))) {
            tracing::error!(%id, "could not drop the rows of a failed import");
        }
    }
    incoming.end(&id, result.is_ok());
    result
}

/// An import of one chunk running on the blocking pool, and its row count.
type Pending = (tokio::task::JoinHandle<Result<u64, EngineError>>, u64);

/// Waits for the chunk being imported (imports stay in stream order: a row re-sent in a
/// later round must land after its older copy).
async fn settle(
    pending: &mut Option<Pending>,
    counters: &MigrationCounters,
) -> Result<u64, MigrationError> {
    let Some((task, n)) = pending.take() else {
        return Ok(0);
    };
    task.await
        .map_err(|e| MigrationError::Task(e.to_string()))??;
    counters.rows_in.fetch_add(n, Ordering::Relaxed);
    Ok(n)
}

/// Receives chunks until the end marker; the next chunk is read and decoded while the
/// previous one is imported.
async fn receive<S>(
    engine: &Arc<Engine>,
    counters: &MigrationCounters,
    aborted: &AtomicBool,
    id: &str,
    stream: &mut S,
) -> Result<u64, MigrationError>
where
    S: Stream<Item = Result<pb::ImportChunk, tonic::Status>> + Unpin + Send,
{
    let mut rows = 0u64;
    let mut pending: Option<Pending> = None;
    let result = loop {
        let chunk = match next(stream).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                break Err(MigrationError::BadStream(
                    "the stream ended before its end marker".into(),
                ))
            }
            Err(e) => break Err(e),
        };
        if aborted.load(Ordering::Acquire) {
            break Err(MigrationError::Aborted { id: id.into() });
        }
        rows += settle(&mut pending, counters).await?;
        if chunk.done {
            break Ok(rows);
        }
        counters
            .bytes_in
            .fetch_add(chunk_bytes(&chunk), Ordering::Relaxed);
        if !chunk.dense.is_empty() {
            let data =
                strata_proto::wire::payload::f32s_from_bytes("dense_data", &chunk.dense_data, 4)?;
            engine.dense(&chunk.dense)?.load(&data)?;
            continue;
        }
        if chunk.table.is_empty() {
            continue;
        }
        let table = engine.table(&chunk.table)?;
        let (ids, rows_bytes) = packed_of(&chunk, table.row_floats())?;
        let n = ids.len() as u64;
        let task = tokio::task::spawn_blocking(move || table.import_packed(&ids, &rows_bytes));
        pending = Some((task, n));
    };
    // Whatever happens, no import of this stream is still writing when this returns.
    let last = settle(&mut pending, counters).await;
    match (result, last) {
        (Ok(rows), Ok(n)) => Ok(rows + n),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
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
