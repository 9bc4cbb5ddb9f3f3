//! The data path: pull and push of rows and dense tensors. Batches are deduplicated,
//! split by owning node and sent in parallel ([`crate::fanout`]); replies are written back in
//! request order.

use bytes::Bytes;
use strata_proto::v1 as pb;
use strata_proto::wire::{self, Chunks, PullResponseView};
use tonic::Status;

use crate::batch::Dedup;
use crate::once::NumberedPush;
use crate::retry::Call;
use crate::routing::MAX_MESSAGE_BYTES;
use crate::{Client, ClientError};
use strata_proto::wire::payload::{copy_f32s, f32s_into_bytes, ids_into_bytes};

impl Client {
    /// Rows of `ids` of `table`, row-major in the order of `ids` (missing rows are created).
    pub async fn pull(&self, table: &str, ids: &[u64]) -> Result<Vec<f32>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let dedup = Dedup::new(ids);
        let (dim, values) = self.pull_unique(table, &dedup.unique, None).await?;
        if !dedup.had_duplicates() {
            return Ok(values);
        }
        let mut out = vec![0.0f32; ids.len() * dim];
        expand(&dedup, &values, dim, &mut out);
        Ok(out)
    }

    /// Rows of `ids` into `out`, which must hold `ids.len() * dim` values.
    pub async fn pull_into(
        &self,
        table: &str,
        ids: &[u64],
        out: &mut [f32],
    ) -> Result<(), ClientError> {
        if ids.is_empty() {
            return if out.is_empty() {
                Ok(())
            } else {
                Err(ClientError::InvalidArgument(
                    "out must be empty for no ids".into(),
                ))
            };
        }
        if !out.len().is_multiple_of(ids.len()) {
            return Err(ClientError::InvalidArgument(format!(
                "out holds {} values, not a multiple of {} ids",
                out.len(),
                ids.len()
            )));
        }
        let dedup = Dedup::new(ids);
        if !dedup.had_duplicates() {
            // Rows go straight from the responses into `out`.
            self.pull_unique(table, &dedup.unique, Some(out)).await?;
            return Ok(());
        }
        let (dim, values) = self.pull_unique(table, &dedup.unique, None).await?;
        if out.len() != ids.len() * dim {
            return Err(ClientError::InvalidArgument(format!(
                "out holds {} values but {} ids × dim {dim} need {}",
                out.len(),
                ids.len(),
                ids.len() * dim
            )));
        }
        expand(&dedup, &values, dim, out);
        Ok(())
    }

    /// Distinct ids' rows, in the order of `unique`, with the table's dim.
    async fn pull_unique(
        &self,
        table: &str,
        unique: &[u64],
        mut out: Option<&mut [f32]>,
    ) -> Result<(usize, Vec<f32>), ClientError> {
        let mut values: Vec<f32> = Vec::new();
        let mut dim = 0usize;
        self.route(
            unique,
            "Pull",
            Call::Read,
            |node, part| {
                let ids: Vec<u64> = part.iter().map(|&i| unique[i as usize]).collect();
                let request = wire::pull_request(table, ids_into_bytes(ids), 0);
                let channel = node.channel.clone();
                let labels = self.labels().cloned();
                async move {
                    let message = wire::unary_call(
                        &channel,
                        wire::PULL_PATH,
                        request,
                        MAX_MESSAGE_BYTES,
                        labels.as_ref(),
                    )
                    .await?;
                    let view = PullResponseView::parse(&message)
                        .map_err(|e| Status::internal(format!("malformed PullResponse: {e}")))?;
                    Ok((message, view))
                }
            },
            |part, (message, view): (Chunks, PullResponseView)| {
                let d = view.dim as usize;
                if d == 0 || view.values.len() != part.len() * d * 4 {
                    return Err(ClientError::InvalidArgument(format!(
                        "server answered {} bytes for {} rows of dim {d}",
                        view.values.len(),
                        part.len()
                    )));
                }
                dim = d;
                // Rows land in the caller's buffer when it has one, else in `values`.
                let target: &mut [f32] = match out.as_deref_mut() {
                    Some(o) if o.len() == unique.len() * d => o,
                    Some(o) => {
                        return Err(ClientError::InvalidArgument(format!(
                            "out holds {} values but {} ids × dim {d} need {}",
                            o.len(),
                            unique.len(),
                            unique.len() * d
                        )))
                    }
                    None => {
                        if values.is_empty() {
                            values = vec![0.0; unique.len() * d];
                        }
                        &mut values
                    }
                };
                let row_bytes = d * 4;
                let copied = if part.len() == unique.len() {
                    message.copy_to(view.values.start, bytemuck::cast_slice_mut(target))
                } else {
                    part.iter().enumerate().all(|(k, &i)| {
                        let i = i as usize;
                        message.copy_to(
                            view.values.start + k * row_bytes,
                            bytemuck::cast_slice_mut(&mut target[i * d..(i + 1) * d]),
                        )
                    })
                };
                if !copied {
                    return Err(ClientError::InvalidArgument(
                        "server answered rows outside its message".into(),
                    ));
                }
                Ok(())
            },
        )
        .await?;
        Ok((dim, values))
    }

    /// Applies `grads` (`ids.len() * dim`, row-major) to `ids` of `table`; duplicates are
    /// summed. Returns the number of distinct rows applied. Each part of a push is numbered
    /// (exactly-once delivery): after an unknown outcome it is sent again with its number to
    /// the same node, which applies it once; only when that cannot settle it (the node stays
    /// away, or no longer serves the rows) is the outcome reported unknown
    /// ([`ClientError::Ambiguous`]).
    pub async fn push(&self, table: &str, ids: &[u64], grads: &[f32]) -> Result<u64, ClientError> {
        self.push_packed(
            table,
            ids,
            Bytes::copy_from_slice(bytemuck::cast_slice(grads)),
        )
        .await
    }

    /// [`Client::push`] with the gradients as packed f32 LE bytes the client may keep: with
    /// distinct ids served by one node they are sent without a copy.
    pub async fn push_packed(
        &self,
        table: &str,
        ids: &[u64],
        grads: Bytes,
    ) -> Result<u64, ClientError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let values = grads.len() / 4;
        if grads.is_empty() || !grads.len().is_multiple_of(4) || !values.is_multiple_of(ids.len()) {
            return Err(ClientError::InvalidArgument(format!(
                "grads hold {} bytes, not a positive multiple of 4 × {} ids",
                grads.len(),
                ids.len()
            )));
        }
        let dim = values / ids.len();
        let dedup = Dedup::new(ids);
        let grads = if dedup.had_duplicates() {
            sum_duplicates(&dedup, &grads, dim)
        } else {
            grads
        };
        let unique = &dedup.unique;
        let row_bytes = dim * 4;
        let mut applied = 0u64;
        self.route(
            unique,
            "Push",
            Call::Write,
            |node, part| {
                let ids: Vec<u64> = part.iter().map(|&i| unique[i as usize]).collect();
                let part_grads = if part.len() == unique.len() {
                    grads.clone()
                } else {
                    let mut g = Vec::with_capacity(part.len() * row_bytes);
                    for &i in part {
                        let i = i as usize;
                        g.extend_from_slice(&grads[i * row_bytes..(i + 1) * row_bytes]);
                    }
                    Bytes::from(g)
                };
                let push = NumberedPush {
                    table,
                    ids: ids_into_bytes(ids),
                    grads: part_grads,
                    epoch: 0,
                    client_id: self.client_id(),
                    ticket: self.pushes().ticket(),
                };
                let (channel, node_id) = (node.channel.clone(), node.id.clone());
                let labels = self.labels().cloned();
                async move { push.send(self, &node_id, &channel, labels.as_ref()).await }
            },
            |_, resp: pb::PushResponse| {
                applied += resp.applied;
                Ok(())
            },
        )
        .await?;
        Ok(applied)
    }

    /// A whole dense tensor: values and shape (served by the owner of its name's slot,
    /// followed across migrations like rows).
    pub async fn pull_dense(&self, name: &str) -> Result<(Vec<f32>, Vec<u32>), ClientError> {
        let key = [strata_proto::routing::dense_key(name)];
        let mut answer = None;
        self.route(
            &key,
            "PullDense",
            Call::Read,
            |node, _| {
                let mut client = node.client.clone();
                let req = pb::PullDenseRequest {
                    name: name.into(),
                    epoch: 0,
                };
                async move { client.pull_dense(req).await.map(|r| r.into_inner()) }
            },
            |_, resp: pb::PullDenseResponse| {
                answer = Some(resp);
                Ok(())
            },
        )
        .await?;
        let resp = answer.unwrap_or_default();
        let mut values = vec![0.0f32; resp.values.len() / 4];
        copy_f32s(&resp.values[..values.len() * 4], &mut values);
        Ok((values, resp.shape))
    }

    /// Applies a gradient to a whole dense tensor (retried only when known not applied).
    pub async fn push_dense(&self, name: &str, grads: &[f32]) -> Result<u64, ClientError> {
        let key = [strata_proto::routing::dense_key(name)];
        let grads = f32s_into_bytes(grads.to_vec());
        let mut applied = 0;
        self.route(
            &key,
            "PushDense",
            Call::Write,
            |node, _| {
                let mut client = node.client.clone();
                let req = pb::PushDenseRequest {
                    name: name.into(),
                    grads: grads.clone(),
                    epoch: 0,
                };
                async move { client.push_dense(req).await.map(|r| r.into_inner()) }
            },
            |_, resp: pb::PushDenseResponse| {
                applied = resp.applied;
                Ok(())
            },
        )
        .await?;
        Ok(applied)
    }
}

/// Sums the gradient rows of duplicate ids into one row per distinct id.
fn sum_duplicates(dedup: &Dedup, grads: &[u8], dim: usize) -> Bytes {
    let mut sum = vec![0.0f32; dedup.unique.len() * dim];
    let row_bytes = dim * 4;
    for (pos, &u) in dedup.position.iter().enumerate() {
        let u = u as usize;
        let row = &grads[pos * row_bytes..(pos + 1) * row_bytes];
        for (a, b) in sum[u * dim..(u + 1) * dim]
            .iter_mut()
            .zip(row.chunks_exact(4))
        {
            *a += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    f32s_into_bytes(sum)
}

/// Copies distinct rows to every request position.
fn expand(dedup: &Dedup, values: &[f32], dim: usize, out: &mut [f32]) {
    for (pos, &u) in dedup.position.iter().enumerate() {
        let u = u as usize;
        out[pos * dim..(pos + 1) * dim].copy_from_slice(&values[u * dim..(u + 1) * dim]);
    }
}
