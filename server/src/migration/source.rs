//! The source side of a move: copy, replay rounds, fence, last delta, hand-off.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_proto::routing::dense_key;
use strata_proto::tls::ClientTls;
use strata_proto::transport::endpoint_with;
use strata_proto::v1 as pb;
use strata_proto::wire;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::transport::Channel;

use super::frames::{chunk_bytes, chunk_of, encode};
use super::queue_body::QueueBody;
use super::{MigrationCounters, MigrationError, Throttle};
use crate::transport::DEFAULT_MAX_MESSAGE_BYTES;
use strata_cluster::cluster::{MovePhase, MoveProgress};
use strata_engine::{Capture, Engine, Table};
use strata_storage::slot::slot_of;
use strata_storage::ExportCursor;

/// Bytes of rows per chunk sent to the destination: under the HTTP/2 frame size the
/// destination accepts (1 MiB), so a chunk's rows usually arrive in one frame and are
/// imported from it without a copy.
const CHUNK_BYTES: usize = 1000 << 10;
/// Smallest chunk of a throttled stream.
const MIN_THROTTLED_CHUNK_BYTES: usize = 16 << 10;
/// Replay rounds before the range is fenced regardless of how much changed.
const MAX_DELTA_ROUNDS: u32 = 8;
/// Fence as soon as no more than this many updated ids are waiting.
const SMALL_DELTA_IDS: usize = 4096;
/// Chunks queued for the destination while the next one is exported.
const QUEUED_CHUNKS: usize = 8;
/// How long the destination may take to confirm the last chunk.
const DESTINATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the destination may leave one chunk unaccepted (a stalled destination must not
/// keep a fenced range unavailable).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 keepalive towards the destination: a silent peer is detected in seconds.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// How long connecting to the destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Least time between two progress messages.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What the coordinator asks a source to do.
#[derive(Debug, Clone)]
pub struct SourceRequest {
    /// Migration id.
    pub id: String,
    /// First slot of the range.
    pub start: u32,
    /// One past the last slot.
    pub end: u32,
    /// The destination's address.
    pub destination: String,
    /// Copy throttle (0: none).
    pub max_bytes_per_s: u64,
    /// TLS of the stream to the destination (`None`: plaintext).
    pub tls: Option<ClientTls>,
}

/// Moves the range's rows to the destination and hands it off. On success the range is
/// left fenced (awaiting the commit or an abort); on failure it is served again.
pub async fn migrate_out(
    engine: Arc<Engine>,
    req: SourceRequest,
    counters: Arc<MigrationCounters>,
    progress: mpsc::Sender<MoveProgress>,
) -> Result<(), MigrationError> {
    let entered = Instant::now();
    let capture = engine
        .ownership()
        .start_capture(&req.id, req.start, req.end)?;
    counters.active.fetch_add(1, Ordering::Relaxed);
    let mut run = SourceRun {
        engine: engine.clone(),
        req: req.clone(),
        capture,
        counters: counters.clone(),
        progress,
        rows: 0,
        bytes: 0,
        rows_total: 0,
        bytes_total: 0,
        round: 0,
        last_progress: None,
        entered,
        setup_ms: 0.0,
        copy_secs: 0.0,
        delta_secs: 0.0,
        handoff_ms: 0.0,
    };
    let result = run.run().await;
    counters.active.fetch_sub(1, Ordering::Relaxed);
    counters.progress.lock().remove(&req.id);
    match &result {
        Ok(()) => tracing::info!(
            id = %req.id, rows = run.rows, bytes = run.bytes, rounds = run.round,
            setup_ms = run.setup_ms, copy_s = run.copy_secs, delta_s = run.delta_secs,
            handoff_ms = run.handoff_ms,
            "range handed off"
        ),
        Err(e) => {
            engine.ownership().end_capture(&req.id);
            tracing::warn!(id = %req.id, error = %e, "migration rolled back on the source");
        }
    }
    result
}

struct SourceRun {
    engine: Arc<Engine>,
    req: SourceRequest,
    capture: Arc<Capture>,
    counters: Arc<MigrationCounters>,
    progress: mpsc::Sender<MoveProgress>,
    rows: u64,
    bytes: u64,
    rows_total: u64,
    bytes_total: u64,
    round: u32,
    last_progress: Option<Instant>,
    /// When the source took the move on.
    entered: Instant,
    /// From taking the move on to the first row chunk (connect, first message).
    setup_ms: f64,
    copy_secs: f64,
    delta_secs: f64,
    handoff_ms: f64,
}

impl SourceRun {
    async fn run(&mut self) -> Result<(), MigrationError> {
        let tables = self.engine.tables();
        let range = [(self.req.start, self.req.end)];
        for t in &tables {
            let rows = t.count_slots(&range)[0];
            self.rows_total += rows;
            self.bytes_total += rows * (t.row_floats() as u64 * 4 + 8);
        }
        let channel = connect(&self.req.destination, self.req.tls.as_ref()).await?;
        let (tx, rx) = mpsc::channel::<Vec<Bytes>>(QUEUED_CHUNKS);
        let destination = self.req.destination.clone();
        let call = tokio::spawn(async move {
            let body = Body::new(QueueBody::new(rx));
            wire::call(
                &channel,
                wire::IMPORT_ROWS_PATH,
                body,
                DEFAULT_MAX_MESSAGE_BYTES,
            )
            .await
        });
        let sent = self.stream(&tables, &tx).await;
        drop(tx);
        let answer = match sent {
            Ok(()) => {
                let abort = call.abort_handle();
                tokio::time::timeout(DESTINATION_TIMEOUT, call)
                    .await
                    .map_err(|_| {
                        // The call must not outlive the move (it holds the stream open).
                        abort.abort();
                        MigrationError::Destination {
                            address: destination.clone(),
                            message: format!("no answer within {DESTINATION_TIMEOUT:?}"),
                        }
                    })?
                    .map_err(|e| MigrationError::Task(e.to_string()))?
            }
            Err(e) => {
                call.abort();
                return Err(e);
            }
        };
        answer.map_err(|s| MigrationError::Destination {
            address: destination,
            message: format!("{:?}: {}", s.code(), s.message()),
        })?;
        self.check_alive()?;
        self.report(MovePhase::HandedOff, true).await
    }

    /// Copy, replay rounds, fence, last delta, dense tensors, end marker.
    async fn stream(
        &mut self,
        tables: &[Arc<Table>],
        tx: &mpsc::Sender<Vec<Bytes>>,
    ) -> Result<(), MigrationError> {
        let mut throttle = Throttle::new(self.req.max_bytes_per_s);
        self.send(
            tx,
            pb::ImportChunk {
                migration_id: self.req.id.clone(),
                slot_start: self.req.start,
                slot_end: self.req.end,
                ..Default::default()
            },
            &mut throttle,
        )
        .await?;
        let began = Instant::now();
        self.setup_ms = (began - self.entered).as_secs_f64() * 1e3;
        for table in tables {
            self.copy_table(table, tx, &mut throttle).await?;
        }
        self.copy_secs = began.elapsed().as_secs_f64();
        let began = Instant::now();
        while self.capture.pending() > SMALL_DELTA_IDS && self.round < MAX_DELTA_ROUNDS {
            self.round += 1;
            self.send_updated(tables, tx, &mut throttle, MovePhase::Delta)
                .await?;
        }
        self.delta_secs = began.elapsed().as_secs_f64();
        let began = Instant::now();
        let ownership = self.engine.clone();
        let id = self.req.id.clone();
        tokio::task::spawn_blocking(move || ownership.ownership().fence(&id))
            .await
            .map_err(|e| MigrationError::Task(e.to_string()))??;
        self.check_alive()?;
        // Nothing in the range changes from here on: the last delta is exact.
        let mut unthrottled = Throttle::new(0);
        self.send_updated(tables, tx, &mut unthrottled, MovePhase::Handoff)
            .await?;
        for dense in self.engine.dense_tensors() {
            let name = &dense.spec().name;
            let slot = slot_of(dense_key(name), self.engine.ownership().num_slots());
            if slot < self.req.start || slot >= self.req.end {
                continue;
            }
            let chunk = pb::ImportChunk {
                dense: name.clone(),
                dense_data: strata_proto::wire::payload::f32s_into_bytes(dense.snapshot().data),
                ..Default::default()
            };
            self.send(tx, chunk, &mut unthrottled).await?;
        }
        let done = pb::ImportChunk {
            done: true,
            ..Default::default()
        };
        self.send(tx, done, &mut unthrottled).await?;
        self.handoff_ms = began.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }

    /// Streams every row of the range of one table, a chunk at a time.
    async fn copy_table(
        &mut self,
        table: &Arc<Table>,
        tx: &mpsc::Sender<Vec<Bytes>>,
        throttle: &mut Throttle,
    ) -> Result<(), MigrationError> {
        let row_floats = table.row_floats();
        let max_rows = self.rows_per_chunk(row_floats);
        let mut cursor = ExportCursor::default();
        while !cursor.done {
            self.check_alive()?;
            let (t, c, range) = (table.clone(), cursor.clone(), self.req.start..self.req.end);
            let (block, next) = tokio::task::spawn_blocking(move || {
                let mut c = c;
                t.export_slots(range, &mut c, max_rows).map(|b| (b, c))
            })
            .await
            .map_err(|e| MigrationError::Task(e.to_string()))??;
            cursor = next;
            if block.ids.is_empty() {
                continue;
            }
            let rows = block.ids.len() as u64;
            let chunk = chunk_of(&table.spec().name, row_floats, block);
            self.send(tx, chunk, throttle).await?;
            self.rows += rows;
            self.report(MovePhase::Copy, false).await?;
        }
        Ok(())
    }

    /// Sends the current rows of every id updated since the last round.
    async fn send_updated(
        &mut self,
        tables: &[Arc<Table>],
        tx: &mpsc::Sender<Vec<Bytes>>,
        throttle: &mut Throttle,
        phase: MovePhase,
    ) -> Result<(), MigrationError> {
        let updated = self.capture.take();
        self.check_tables(tables, updated.keys())?;
        for table in tables {
            let Some(ids) = updated.get(&table.spec().name) else {
                continue;
            };
            let mut ids: Vec<u64> = ids.iter().copied().collect();
            ids.sort_unstable();
            let row_floats = table.row_floats();
            let per_chunk = self.rows_per_chunk(row_floats);
            for part in ids.chunks(per_chunk) {
                let (t, part) = (table.clone(), part.to_vec());
                let block = tokio::task::spawn_blocking(move || t.read_rows(&part))
                    .await
                    .map_err(|e| MigrationError::Task(e.to_string()))??;
                let rows = block.ids.len() as u64;
                let chunk = chunk_of(&table.spec().name, row_floats, block);
                self.send(tx, chunk, throttle).await?;
                self.rows += rows;
            }
        }
        self.report(phase, false).await
    }

    /// Sends one chunk (waiting while the destination is behind), then paces.
    async fn send(
        &mut self,
        tx: &mpsc::Sender<Vec<Bytes>>,
        chunk: pb::ImportChunk,
        throttle: &mut Throttle,
    ) -> Result<(), MigrationError> {
        let bytes = chunk_bytes(&chunk);
        let rows = (chunk.ids.len() / 8) as u64;
        // Paced before sending: the destination never sees more than the rate allows.
        throttle.pace(bytes).await;
        let closed = |message: &str| MigrationError::Destination {
            address: self.req.destination.clone(),
            message: message.into(),
        };
        let message = encode(chunk)?;
        tokio::time::timeout(SEND_TIMEOUT, tx.send(message))
            .await
            .map_err(|_| closed("no progress for 30 s"))?
            .map_err(|_| closed("the import stream closed"))?;
        self.bytes += bytes;
        self.counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.counters.rows_out.fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Rows of `row_floats` words (plus the id) per chunk: 1000 KiB, or about an eighth of a
    /// second's worth when throttled (so a throttled stream moves smoothly and reports often).
    fn rows_per_chunk(&self, row_floats: usize) -> usize {
        let bytes = match self.req.max_bytes_per_s {
            0 => CHUNK_BYTES,
            rate => (rate as usize / 8).clamp(MIN_THROTTLED_CHUNK_BYTES, CHUNK_BYTES),
        };
        (bytes / (row_floats * 4 + 8)).max(1)
    }

    /// Refuses to go on when the tables changed since the copy started (a table created,
    /// dropped or recreated): rows of it could be missed.
    fn check_tables<'a>(
        &self,
        tables: &[Arc<Table>],
        updated: impl Iterator<Item = &'a String>,
    ) -> Result<(), MigrationError> {
        let now = self.engine.tables();
        let same = now.len() == tables.len()
            && now.iter().all(|t| tables.iter().any(|s| Arc::ptr_eq(s, t)));
        let mut unknown = updated.filter(|name| !tables.iter().any(|t| &t.spec().name == *name));
        if !same || unknown.next().is_some() {
            return Err(MigrationError::CatalogChanged {
                id: self.req.id.clone(),
            });
        }
        Ok(())
    }

    /// Refuses to go on once the migration was aborted.
    fn check_alive(&self) -> Result<(), MigrationError> {
        if self.capture.is_ended() {
            return Err(MigrationError::Aborted {
                id: self.req.id.clone(),
            });
        }
        Ok(())
    }

    /// Tells the coordinator how far the move is (at most every 100 ms unless `must`).
    async fn report(&mut self, phase: MovePhase, must: bool) -> Result<(), MigrationError> {
        let due = self
            .last_progress
            .is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if !(must || due || phase != MovePhase::Copy) {
            return Ok(());
        }
        self.last_progress = Some(Instant::now());
        self.counters
            .progress
            .lock()
            .insert(self.req.id.clone(), (self.bytes, self.bytes_total));
        let msg = MoveProgress {
            phase,
            rows: self.rows,
            bytes: self.bytes,
            rows_total: self.rows_total,
            bytes_total: self.bytes_total,
            delta_round: self.round,
        };
        self.progress
            .send(msg)
            .await
            .map_err(|_| MigrationError::ProgressClosed)
    }
}

/// A channel to the destination with strata's HTTP/2 settings (through TLS with `tls`).
async fn connect(address: &str, tls: Option<&ClientTls>) -> Result<Channel, MigrationError> {
    let err = |message: String| MigrationError::Destination {
        address: address.to_string(),
        message,
    };
    let endpoint = endpoint_with(address, tls)
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true);
    strata_proto::transport::connect(&endpoint, tls)
        .await
        .map_err(|e| err(format!("cannot connect: {}", transport_reason(&e))))
}

/// The words of a transport error: a refused TLS handshake's plain account, else the
/// innermost cause.
fn transport_reason(error: &tonic::transport::Error) -> String {
    if let Some(tls) = strata_proto::tls::TlsFailure::find(error) {
        return tls.to_string();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text = e.to_string();
        source = e.source();
    }
    text
}
