//! strata over the network through `strata-client`: one client (own connections) per trainer.

use std::time::Duration;

use strata_client::{Client, ClientOptions, TlsFiles};
use strata_proto::v1 as pb;

use super::{TableParams, Target, TargetError};
use crate::workload::GradRows;

/// The wire spec of the benchmark table: Adagrad (no epsilon), uniform initializer, host tier.
pub fn table_spec(p: &TableParams) -> pb::TableSpec {
    pb::TableSpec {
        name: p.name.clone(),
        dim: p.dim as u32,
        optimizer: Some(pb::OptimizerSpec {
            kind: "adagrad".into(),
            lr: Some(p.lr),
            initial_accumulator: Some(p.init_acc),
            epsilon: Some(0.0),
            ..Default::default()
        }),
        initializer: Some(pb::InitializerSpec {
            kind: "uniform".into(),
            scale: p.init_scale as f32,
        }),
        seed: p.seed,
        tier: "host".into(),
    }
}

fn client_err(e: strata_client::ClientError) -> TargetError {
    TargetError::Client(e.to_string())
}

/// Drop the benchmark table if it exists, then create it.
pub async fn prepare(
    coordinator: &str,
    connect_timeout: Duration,
    tls: &TlsFiles,
    p: &TableParams,
) -> Result<(), TargetError> {
    let env = ClientOptions::from_env();
    let options = ClientOptions {
        connect_timeout,
        tls: tls.clone().or(env.tls.clone()),
        ..env
    };
    let client = Client::connect_with(coordinator, options)
        .await
        .map_err(|e| TargetError::Setup(format!("connecting to {coordinator}: {e}")))?;
    // Absent is fine; any other failure shows again in create_table.
    let _ = client.drop_table(&p.name).await;
    client
        .create_table(table_spec(p))
        .await
        .map_err(|e| TargetError::Setup(format!("creating table {}: {e}", p.name)))?;
    Ok(())
}

/// One trainer's strata client.
pub struct StrataTarget {
    client: Client,
    table: String,
    row_bytes: u64,
}

impl StrataTarget {
    /// Open one trainer's connections (each `connect` opens its own); `labels` says where
    /// the trainer runs (`None`: `STRATA_LABELS`, or unlabelled), `tls` its TLS files (each
    /// unset one from `STRATA_TLS_*`).
    pub async fn connect(
        coordinator: &str,
        labels: Option<String>,
        connect_timeout: Duration,
        tls: &TlsFiles,
        p: &TableParams,
    ) -> Result<Self, TargetError> {
        let mut options = ClientOptions::from_env();
        options.connect_timeout = connect_timeout;
        options.tls = tls.clone().or(options.tls);
        if labels.is_some() {
            options.labels = labels;
        }
        let client = Client::connect_with(coordinator, options)
            .await
            .map_err(|e| TargetError::Setup(format!("connecting to {coordinator}: {e}")))?;
        Ok(Self {
            client,
            table: p.name.clone(),
            row_bytes: 4 * p.dim as u64,
        })
    }
}

impl Target for StrataTarget {
    async fn pull(&mut self, ids: &[u64], out: &mut [f32]) -> Result<u64, TargetError> {
        self.client
            .pull_into(&self.table, ids, out)
            .await
            .map_err(client_err)?;
        Ok(ids.len() as u64 * self.row_bytes)
    }

    async fn push(&mut self, ids: &[u64], grads: &GradRows<'_>) -> Result<u64, TargetError> {
        self.client
            .push_packed(&self.table, ids, grads.packed.clone())
            .await
            .map_err(client_err)?;
        Ok(ids.len() as u64 * self.row_bytes)
    }
}
