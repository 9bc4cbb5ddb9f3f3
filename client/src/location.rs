//! A client's options: where it runs — its topology labels (`zone=z1,rack=r1`), sent with
//! every data-path call as `strata-client-labels` so shard servers count traffic by
//! location —, how long it waits to connect, and its TLS files.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderValue;
use strata_proto::tls::TlsFiles;

use crate::ClientError;

/// The environment variable a client reads its labels from.
pub const LABELS_ENV: &str = "STRATA_LABELS";

/// Longest normalized label string a server accepts.
const MAX_LOCATION_BYTES: usize = 256;

/// How long a client waits for a coordinator to answer its first call, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Options of [`crate::Client::connect_with`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Where the client runs, as `key=value` pairs joined by commas (e.g. `zone=z1,rack=r1`);
    /// `None` or empty: unlabelled.
    pub labels: Option<String>,
    /// How long opening a connection to a coordinator, and the first call, may take before
    /// the connect fails ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    pub connect_timeout: Duration,
    /// TLS files: the CA that signed the servers' certificates and this client's own
    /// certificate and key; none named: plaintext. Read at connect and again when they
    /// change on disk (each new connection uses them as they are then).
    pub tls: TlsFiles,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            labels: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: TlsFiles::default(),
        }
    }
}

impl ClientOptions {
    /// Options from the environment: labels from `STRATA_LABELS`, TLS files from
    /// `STRATA_TLS_CA`, `STRATA_TLS_CERT` and `STRATA_TLS_KEY`, when set.
    pub fn from_env() -> Self {
        Self {
            labels: std::env::var(LABELS_ENV).ok(),
            tls: TlsFiles::from_env(),
            ..Self::default()
        }
    }
}

/// The header value of `text` (`key=value` pairs joined by commas, spaces around them
/// ignored): keys sorted, no duplicates; `None` when there are no pairs.
pub fn location_header(text: &str) -> Result<Option<HeaderValue>, ClientError> {
    let bad = |why: String| ClientError::InvalidArgument(format!("labels {text:?}: {why}"));
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
        let (k, v) = (k.trim(), v.trim());
        let printable = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=')
        };
        if k.is_empty() || !printable(k) || !printable(v) {
            return Err(bad(format!(
                "{pair:?}: keys must be non-empty, keys and values printable ASCII without ',' or '='"
            )));
        }
        if labels.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(format!("key {k:?} appears twice")));
        }
    }
    if labels.is_empty() {
        return Ok(None);
    }
    let joined = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if joined.len() > MAX_LOCATION_BYTES {
        return Err(bad(format!(
            "{} bytes, over the limit of {MAX_LOCATION_BYTES}",
            joined.len()
        )));
    }
    HeaderValue::from_str(&joined)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalized_with_keys_sorted() {
        let v = location_header(" zone=z1 , rack=r1,").expect("valid");
        assert_eq!(
            v.as_ref().and_then(|v| v.to_str().ok()),
            Some("rack=r1,zone=z1")
        );
        assert_eq!(location_header("").expect("empty"), None);
    }

    #[test]
    fn bad_labels_are_refused_with_the_reason() {
        for (text, needle) in [
            ("rack", "not key=value"),
            ("=r1", "non-empty"),
            ("rack=r 1", "printable"),
            ("rack=r1,rack=r2", "twice"),
        ] {
            let err = location_header(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let long = format!("rack={}", "x".repeat(300));
        assert!(location_header(&long)
            .expect_err("long")
            .to_string()
            .contains("limit"));
    }
}
