//! Which PEM files a process uses for TLS, and how each parses.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// The environment variable naming the CA certificate file (PEM) of a client.
pub const CA_ENV: &str = "STRATA_TLS_CA";
/// The environment variable naming a client's certificate file (PEM).
pub const CERT_ENV: &str = "STRATA_TLS_CERT";
/// The environment variable naming a client's private key file (PEM).
pub const KEY_ENV: &str = "STRATA_TLS_KEY";

/// The PEM files of one process's TLS: the CA that signs its peers, its own certificate
/// chain and key. All `None`: plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) peers' certificates must be signed by.
    pub ca: Option<PathBuf>,
    /// This process's certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The files named by `STRATA_TLS_CA`, `STRATA_TLS_CERT` and `STRATA_TLS_KEY` (empty
    /// values count as unset).
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            ca: var(CA_ENV),
            cert: var(CERT_ENV),
            key: var(KEY_ENV),
        }
    }

    /// Each of `self`'s files, else the one of `fallback` (flags over the environment).
    pub fn or(self, fallback: TlsFiles) -> Self {
        Self {
            ca: self.ca.or(fallback.ca),
            cert: self.cert.or(fallback.cert),
            key: self.key.or(fallback.key),
        }
    }

    /// Whether no file is named (plaintext).
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Every named file, for change checks.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        [&self.ca, &self.cert, &self.key]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The certificate and key, which go together.
    pub(crate) fn identity(&self) -> Result<Option<(&Path, &Path)>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Settings(
                "--tls-cert needs --tls-key (STRATA_TLS_KEY): the certificate's private key".into(),
            )),
            (None, Some(_)) => Err(TlsError::Settings(
                "--tls-key needs --tls-cert (STRATA_TLS_CERT): the key's certificate".into(),
            )),
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn bad(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::BadPem {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The certificates in the PEM file at `path` (at least one).
pub fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(what, path, e))?;
    if certs.is_empty() {
        return Err(bad(what, path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key (--tls-key)";
    let text = read(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| bad(WHAT, path, e))
}

/// A root store of the CA certificates at `path`.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    const WHAT: &str = "CA certificate (--tls-ca)";
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(WHAT, path)? {
        roots.add(cert).map_err(|e| bad(WHAT, path, e))?;
    }
    Ok(roots)
}

/// The certificate chain and key at `cert` and `key`, checked to belong together.
pub fn read_identity(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let chain = read_certificates("certificate (--tls-cert)", cert)?;
    let key_der = read_key(key)?;
    rustls::sign::CertifiedKey::from_der(chain, key_der, &super::provider()).map_err(|source| {
        TlsError::Rustls {
            what: format!("certificate {} with key {}", cert.display(), key.display()),
            source,
        }
    })
}
