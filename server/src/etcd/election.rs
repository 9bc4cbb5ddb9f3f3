//! Leader election among coordinators that share one etcd.
//!
//! Each coordinator holds an etcd lease (a few seconds' TTL, refreshed by a keep-alive
//! task) and campaigns with its address as the value; etcd elects the candidate whose key
//! was created first. The leader's election key (key and create revision) is the fence of
//! its metadata writes ([`LeaderFence`]). When a leader dies its lease expires, its key is
//! deleted and the next candidate's campaign returns.

use std::time::{Duration, Instant};

use etcd_client::Client;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::LeaderFence;

/// Why an election step failed.
#[derive(Debug, Error)]
pub enum ElectionError {
    /// An etcd call failed.
    #[error("etcd {op}: {source}")]
    Etcd {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: etcd_client::Error,
    },
    /// The lease could not be kept alive: leadership (or candidacy) is lost.
    #[error("etcd lease {lease:x} lost")]
    LeaseLost {
        /// The lease id.
        lease: i64,
    },
    /// etcd answered a campaign without a leader key.
    #[error("campaign answered without a leader key")]
    NoLeaderKey,
}

fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> ElectionError {
    move |source| ElectionError::Etcd { op, source }
}

/// Settings of a coordinator's candidacy.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// etcd endpoints (`http://host:port`).
    pub endpoints: Vec<String>,
    /// Key prefix of the cluster (e.g. `/strata/default`); the election is `<prefix>/leader`.
    pub prefix: String,
    /// This coordinator's address, the value leaders publish.
    pub address: String,
    /// Lease time to live (whole seconds, at least 2).
    pub ttl: Duration,
}

/// A coordinator's candidacy: a lease kept alive in the background.
pub struct Election {
    client: Client,
    name: String,
    address: String,
    lease: i64,
    lost: watch::Receiver<bool>,
    keeper: JoinHandle<()>,
}

impl Election {
    /// Connects to etcd, grants a lease and starts keeping it alive.
    pub async fn join(config: &ElectionConfig) -> Result<Self, ElectionError> {
        let mut client = Client::connect(config.endpoints.clone(), None)
            .await
            .map_err(etcd("connect"))?;
        let ttl = config.ttl.as_secs().max(2);
        let lease = client
            .lease_grant(ttl as i64, None)
            .await
            .map_err(etcd("lease grant"))?
            .id();
        let (lost_tx, lost) = watch::channel(false);
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            lease,
            Duration::from_secs(ttl),
            lost_tx,
        ));
        Ok(Self {
            client,
            name: format!("{}/leader", config.prefix.trim_end_matches('/')),
            address: config.address.clone(),
            lease,
            lost,
            keeper,
        })
    }

    /// Waits until this coordinator is the leader; returns its fence.
    pub async fn campaign(&self) -> Result<LeaderFence, ElectionError> {
        let mut client = self.client.clone();
        let mut lost = self.lost.clone();
        let campaign = client.campaign(self.name.clone(), self.address.clone(), self.lease);
        let resp = tokio::select! {
            r = campaign => r.map_err(etcd("campaign"))?,
            _ = lost.wait_for(|l| *l) => return Err(ElectionError::LeaseLost { lease: self.lease }),
        };
        let key = resp.leader().ok_or(ElectionError::NoLeaderKey)?;
        Ok(LeaderFence {
            key: key.key().to_vec(),
            rev: key.rev(),
        })
    }

    /// The current leader's address, if one is elected.
    pub async fn leader(&self) -> Result<Option<String>, ElectionError> {
        let mut client = self.client.clone();
        match client.leader(self.name.clone()).await {
            Ok(resp) => Ok(resp
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).to_string())),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(etcd("leader")(e)),
        }
    }

    /// The lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Turns true when the lease is lost (leadership must be given up at once).
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Gives up: revokes the lease so another coordinator takes over at once.
    pub async fn resign(self) {
        self.keeper.abort();
        let mut client = self.client.clone();
        let revoke = client.lease_revoke(self.lease);
        if let Err(e) = tokio::time::timeout(Duration::from_secs(2), revoke).await {
            tracing::warn!(error = %e, "could not revoke the etcd lease; it expires by itself");
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Refreshes `lease` every third of its TTL; reports loss when no refresh succeeded for a
/// whole TTL or etcd says the lease expired.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let period = ttl / 3;
    let mut last_ok = Instant::now();
    loop {
        if let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(period, stream.message()).await {
                    Ok(Ok(Some(resp))) if resp.ttl() > 0 => last_ok = Instant::now(),
                    Ok(Ok(Some(_))) => {
                        tracing::error!(lease = format!("{lease:x}"), "etcd lease expired");
                        let _ = lost.send(true);
                        return;
                    }
                    _ => break,
                }
                if last_ok.elapsed() >= ttl {
                    break;
                }
                tokio::time::sleep(period).await;
            }
        }
        if last_ok.elapsed() >= ttl {
            tracing::error!(
                lease = format!("{lease:x}"),
                "etcd lease not refreshed for a whole TTL"
            );
            let _ = lost.send(true);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
