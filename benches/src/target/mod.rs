//! Systems under test behind one trait: strata over the network, strata's engine in process, Redis.

pub mod inproc;
pub mod redis;
pub mod resp;
pub mod strata;

use std::future::Future;
use std::sync::Arc;

use strata_storage::host::RowMemory;

use crate::workload::GradRows;

/// Errors of a target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The `--target` string is not `strata`, `inproc` or `redis://HOST:PORT`.
    #[error("unknown target {0:?} (expected strata, inproc or redis://HOST:PORT)")]
    BadTarget(String),
    /// Preparing the table or connecting failed.
    #[error("setup: {0}")]
    Setup(String),
    /// strata's client reported an error.
    #[error("strata client: {0}")]
    Client(String),
    /// strata's engine reported an error.
    #[error("strata engine: {0}")]
    Engine(String),
    /// Redis failed or answered something unexpected.
    #[error(transparent)]
    Resp(#[from] resp::RespError),
    /// A reply did not have the expected shape.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A buffer length did not match `ids.len() × dim`.
    #[error("buffer of {got} floats for {ids} ids of dim {dim}")]
    Length {
        /// Number of ids.
        ids: usize,
        /// Row width.
        dim: usize,
        /// Length of the buffer.
        got: usize,
    },
}

/// Check that a buffer holds one row per id.
pub(crate) fn check_len(ids: usize, dim: usize, got: usize) -> Result<(), TargetError> {
    if ids * dim == got {
        Ok(())
    } else {
        Err(TargetError::Length { ids, dim, got })
    }
}

/// The table every target is set up with (W1: Adagrad, uniform initializer).
#[derive(Debug, Clone, PartialEq)]
pub struct TableParams {
    /// Table name (also the Redis key prefix).
    pub name: String,
    /// Row width.
    pub dim: usize,
    /// Adagrad learning rate.
    pub lr: f32,
    /// Adagrad initial accumulator.
    pub init_acc: f32,
    /// New rows are uniform in `[-init_scale, init_scale)`.
    pub init_scale: f64,
    /// Seed of strata's initializer.
    pub seed: u64,
}

/// Which system a run measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// strata over the network, through `strata-client`, found via the coordinator.
    Strata {
        /// Coordinator address.
        coordinator: String,
        /// Where the trainers run (`key=value,...`; `None`: `STRATA_LABELS` or unlabelled).
        labels: Option<String>,
        /// How long connecting to the coordinator may take.
        connect_timeout: std::time::Duration,
        /// TLS files (none: `STRATA_TLS_*`, or plaintext).
        tls: strata_client::TlsFiles,
    },
    /// strata's engine linked into this process.
    Inproc,
    /// Redis as a TFRA-style row store.
    Redis {
        /// `host:port`.
        addr: String,
    },
}

impl TargetSpec {
    /// Parse `strata`, `inproc` or `redis://HOST:PORT`; `coordinator` goes with `strata`.
    pub fn parse(target: &str, coordinator: &str) -> Result<Self, TargetError> {
        match target {
            "strata" => Ok(Self::Strata {
                coordinator: coordinator.to_string(),
                labels: None,
                connect_timeout: strata_client::DEFAULT_CONNECT_TIMEOUT,
                tls: strata_client::TlsFiles::default(),
            }),
            "inproc" => Ok(Self::Inproc),
            t => match t.strip_prefix("redis://") {
                Some(addr) if !addr.is_empty() => Ok(Self::Redis {
                    addr: addr.trim_end_matches('/').to_string(),
                }),
                _ => Err(TargetError::BadTarget(t.to_string())),
            },
        }
    }

    /// A short name for reports: `strata`, `inproc` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Strata { .. } => "strata",
            Self::Inproc => "inproc",
            Self::Redis { .. } => "redis",
        }
    }
}

/// A system a trainer pulls rows from and pushes gradients to; one instance per trainer.
pub trait Target: Send {
    /// Pull the rows of `ids` into `out` (`ids.len() × dim`); returns row payload bytes moved.
    fn pull(
        &mut self,
        ids: &[u64],
        out: &mut [f32],
    ) -> impl Future<Output = Result<u64, TargetError>> + Send;

    /// Push one gradient row per id (`ids.len() × dim`); returns row payload bytes moved.
    fn push(
        &mut self,
        ids: &[u64],
        grads: &GradRows<'_>,
    ) -> impl Future<Output = Result<u64, TargetError>> + Send;
}

/// Any of the targets, so that the runner is one monomorphic loop.
pub enum AnyTarget {
    /// strata over the network.
    Strata(strata::StrataTarget),
    /// strata's engine in process.
    Inproc(inproc::InprocTarget),
    /// Redis.
    Redis(Box<redis::RedisTarget>),
}

impl Target for AnyTarget {
    async fn pull(&mut self, ids: &[u64], out: &mut [f32]) -> Result<u64, TargetError> {
        match self {
            Self::Strata(t) => t.pull(ids, out).await,
            Self::Inproc(t) => t.pull(ids, out).await,
            Self::Redis(t) => t.pull(ids, out).await,
        }
    }

    async fn push(&mut self, ids: &[u64], grads: &GradRows<'_>) -> Result<u64, TargetError> {
        match self {
            Self::Strata(t) => t.push(ids, grads).await,
            Self::Inproc(t) => t.push(ids, grads).await,
            Self::Redis(t) => t.push(ids, grads).await,
        }
    }
}

/// Prepare the table (dropped and recreated, or the Redis instance flushed) and open one
/// target per trainer. Not timed. `row_memory` is the in-process engine's (its reserve and
/// threads, as a server node's); the networked targets leave it unused.
pub async fn setup(
    spec: &TargetSpec,
    params: &TableParams,
    trainers: usize,
    row_memory: Arc<RowMemory>,
) -> Result<Vec<AnyTarget>, TargetError> {
    let mut out = Vec::with_capacity(trainers);
    match spec {
        TargetSpec::Strata {
            coordinator,
            labels,
            connect_timeout,
            tls,
        } => {
            strata::prepare(coordinator, *connect_timeout, tls, params).await?;
            for _ in 0..trainers {
                out.push(AnyTarget::Strata(
                    strata::StrataTarget::connect(
                        coordinator,
                        labels.clone(),
                        *connect_timeout,
                        tls,
                        params,
                    )
                    .await?,
                ));
            }
        }
        TargetSpec::Inproc => {
            let engine = inproc::prepare(params, row_memory)?;
            for _ in 0..trainers {
                out.push(AnyTarget::Inproc(inproc::InprocTarget::new(
                    engine.clone(),
                    params,
                )));
            }
        }
        TargetSpec::Redis { addr } => {
            redis::reset(addr).await?;
            for _ in 0..trainers {
                out.push(AnyTarget::Redis(Box::new(
                    redis::RedisTarget::connect(addr, params).await?,
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            TargetSpec::parse("strata", "h:1").ok(),
            Some(TargetSpec::Strata {
                coordinator: "h:1".into(),
                labels: None,
                connect_timeout: strata_client::DEFAULT_CONNECT_TIMEOUT,
                tls: strata_client::TlsFiles::default(),
            })
        );
        assert_eq!(
            TargetSpec::parse("inproc", "").ok(),
            Some(TargetSpec::Inproc)
        );
        assert_eq!(
            TargetSpec::parse("redis://127.0.0.1:6379", "").ok(),
            Some(TargetSpec::Redis {
                addr: "127.0.0.1:6379".into()
            })
        );
        assert!(TargetSpec::parse("redis://", "").is_err());
        assert!(TargetSpec::parse("memcached", "").is_err());
    }
}
