//! The server side: a rustls server config from `--tls-cert`, `--tls-key` and (for client
//! certificates, then required) `--tls-ca`, reloaded when the files change.

use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::files::{read_identity, read_roots, TlsFiles};
use super::reload::Reloading;
use super::{provider, TlsError, RELOAD_CHECK};

/// A server's TLS: the config each new connection is accepted with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<Reloading<ServerConfig>>,
    clients_authenticated: bool,
}

impl ServerTls {
    /// The TLS of `files` (certificate and key required; with a CA, every client must show
    /// a certificate it signed), or `None` for no files (plaintext).
    pub fn load(files: &TlsFiles) -> Result<Option<Self>, TlsError> {
        Self::load_checking_every(files, RELOAD_CHECK)
    }

    /// As [`ServerTls::load`], looking at the files at most once per `every`.
    pub fn load_checking_every(
        files: &TlsFiles,
        every: Duration,
    ) -> Result<Option<Self>, TlsError> {
        if files.is_empty() {
            return Ok(None);
        }
        if files.identity()?.is_none() {
            return Err(TlsError::Settings(
                "--tls-ca on a server needs --tls-cert and --tls-key: the server's own certificate"
                    .into(),
            ));
        }
        let owned = files.clone();
        let config = Reloading::new("server TLS", files.paths(), every, move || {
            server_config(&owned)
        })?;
        Ok(Some(Self {
            config: Arc::new(config),
            clients_authenticated: files.ca.is_some(),
        }))
    }

    /// The config for the next accepted connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.current()
    }

    /// An acceptor with the current config.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config())
    }

    /// Whether clients must show a certificate signed by the CA (`--tls-ca` given).
    pub fn clients_authenticated(&self) -> bool {
        self.clients_authenticated
    }

    /// How many times the files were reloaded.
    pub fn reloads(&self) -> u64 {
        self.config.reloads()
    }
}

/// The server config of `files` as they are now.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let Some((cert, key)) = files.identity()? else {
        return Err(TlsError::Settings(
            "a TLS server needs --tls-cert and --tls-key".into(),
        ));
    };
    let identity = read_identity(cert, key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions".into(),
            source,
        })?;
    let builder = match &files.ca {
        Some(ca) => {
            let roots = read_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Settings(format!("CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Writes a self-signed certificate for localhost and its key as `name.pem`, `name.key`.
    fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, made.cert.pem()).expect("write cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
        (cert, key)
    }

    #[test]
    fn a_half_written_or_mismatched_pair_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed(dir.path(), "srv");
        let files = TlsFiles {
            ca: None,
            cert: Some(cert.clone()),
            key: Some(key.clone()),
        };
        let tls = ServerTls::load_checking_every(&files, Duration::ZERO)
            .expect("load")
            .expect("TLS");
        let first = tls.config();

        let text = std::fs::read_to_string(&cert).expect("read");
        std::fs::write(&cert, &text[..text.len() / 2]).expect("half a file");
        assert!(
            Arc::ptr_eq(&first, &tls.config()),
            "kept the last good pair"
        );
        assert_eq!(tls.reloads(), 0);

        // A new certificate whose key has not been written yet: refused too.
        let (new_cert, new_key) = self_signed(dir.path(), "next");
        std::fs::copy(&new_cert, &cert).expect("new certificate");
        assert!(
            Arc::ptr_eq(&first, &tls.config()),
            "a pair that does not match"
        );
        assert_eq!(tls.reloads(), 0);

        std::fs::copy(&new_key, &key).expect("its key");
        assert!(
            !Arc::ptr_eq(&first, &tls.config()),
            "the complete new pair is used"
        );
        assert_eq!(tls.reloads(), 1);
    }

    #[test]
    fn incomplete_settings_are_refused_with_the_missing_flag() {
        let ca_only = TlsFiles {
            ca: Some("ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = ServerTls::load(&ca_only).expect_err("no certificate");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
        let missing = TlsFiles {
            ca: None,
            cert: Some("/nonexistent/srv.pem".into()),
            key: Some("/nonexistent/srv.key".into()),
        };
        let err = ServerTls::load(&missing).expect_err("no file");
        assert!(err.to_string().contains("/nonexistent/srv.pem"), "{err}");
        assert!(ServerTls::load(&TlsFiles::default())
            .expect("plain")
            .is_none());
    }
}
