//! Development certificates (`strata certs`): a CA, and certificates it issues to trainers,
//! readers, operators, admins and nodes. Each issued certificate names its holder in the
//! subject's common name (CN) and its role in the subject's organizational unit (OU), e.g.
//! `O=strata, OU=trainer, CN=trainer-1`, and is valid both as client and as server
//! certificate for the DNS names and IP addresses given as subject alternative names.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use thiserror::Error;
use time::OffsetDateTime;

/// The CA certificate's file name in a certificates directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in a certificates directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// The organization (O) of every strata certificate's subject.
pub const ORGANIZATION: &str = "strata";
/// The subject alternative names of a certificate issued without `--san`.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1"];
/// How long a new CA is valid, by default.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// How long an issued certificate is valid, by default.
pub const DEFAULT_DAYS: u32 = 365;

/// What the holder of a certificate may do (authorization reads it from the subject's OU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Pulls and pushes rows.
    Trainer,
    /// Pulls rows only.
    Reader,
    /// Runs operations: resizes, rebalances, checkpoints.
    Operator,
    /// Everything, including grants.
    Admin,
    /// A strata server: shard servers and coordinators calling each other.
    Node,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Trainer,
        Role::Reader,
        Role::Operator,
        Role::Admin,
        Role::Node,
    ];

    /// The role's name as written in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trainer => "trainer",
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Node => "node",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}: one of {}", names.join(", "))
            })
    }
}

/// Why certificates could not be made.
#[derive(Debug, Error)]
pub enum CertsError {
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CA exists in the directory already.
    #[error(
        "{path} exists: a new CA would leave the certificates the old one issued unverifiable \
         (remove ca.pem and ca.key first to start over)"
    )]
    CaExists {
        /// The existing CA certificate.
        path: PathBuf,
    },
    /// The directory has no CA to issue with.
    #[error("no CA in {dir}: run `strata certs init --dir {dir}` first")]
    NoCa {
        /// The directory.
        dir: PathBuf,
    },
    /// A certificate name that cannot name files.
    #[error("certificate name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A subject alternative name is empty.
    #[error("--san {0:?}: names must be non-empty DNS names or IP addresses")]
    BadSan(String),
    /// The certificate could not be made.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being made.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

fn rcgen_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertsError {
    move |source| CertsError::Rcgen { what, source }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// First moment of validity.
    pub not_before: SystemTime,
    /// Last moment of validity.
    pub not_after: SystemTime,
}

impl Validity {
    /// From a minute ago (clocks differ a little) for `days` days.
    pub fn days(days: u32) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        params.not_before = OffsetDateTime::from(self.not_before);
        params.not_after = OffsetDateTime::from(self.not_after);
    }
}

/// Makes a CA in `dir` (created if missing): `ca.pem` and `ca.key` (mode 0600). Refuses to
/// replace an existing one. Returns the certificate's path.
pub fn init(dir: &Path, validity: Validity) -> Result<PathBuf, CertsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    if cert_path.exists() {
        return Err(CertsError::CaExists { path: cert_path });
    }
    fs::create_dir_all(dir).map_err(|source| CertsError::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let key = KeyPair::generate().map_err(rcgen_error("CA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error("CA"))?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    // Each CA's name is its own (a digest of its key): a certificate of another CA is then
    // refused as "unknown issuer", not as a bad signature under a look-alike name.
    let id: String = params
        .key_identifier(&key)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("strata CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity.apply(&mut params);
    let cert = params.self_signed(&key).map_err(rcgen_error("CA"))?;
    write_private(&dir.join(CA_KEY_FILE), &key.serialize_pem())?;
    write_file(&cert_path, &cert.pem())?;
    Ok(cert_path)
}

/// A certificate issued by [`issue`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// `DIR/NAME.pem`.
    pub cert: PathBuf,
    /// `DIR/NAME.key`.
    pub key: PathBuf,
}

/// Issues a certificate for `name` in `role` with the CA of `dir`, valid as client and
/// server certificate for `sans` (DNS names or IP addresses; empty: [`DEFAULT_SANS`]):
/// writes `DIR/NAME.pem` and `DIR/NAME.key` (mode 0600), each replaced whole.
pub fn issue(
    dir: &Path,
    name: &str,
    role: Role,
    sans: &[String],
    validity: Validity,
) -> Result<Issued, CertsError> {
    check_name(name)?;
    let sans: Vec<String> = if sans.is_empty() {
        DEFAULT_SANS.iter().map(|s| s.to_string()).collect()
    } else {
        sans.iter().map(|s| s.trim().to_string()).collect()
    };
    if let Some(bad) = sans
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(CertsError::BadSan(bad.clone()));
    }
    let ca_cert = dir.join(CA_CERT_FILE);
    let ca_key = dir.join(CA_KEY_FILE);
    if !ca_cert.exists() || !ca_key.exists() {
        return Err(CertsError::NoCa {
            dir: dir.to_path_buf(),
        });
    }
    let ca_key = KeyPair::from_pem(&read(&ca_key)?).map_err(rcgen_error("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_cert)?, ca_key)
        .map_err(rcgen_error("CA certificate"))?;
    let mut params = CertificateParams::new(sans).map_err(rcgen_error("--san"))?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.as_str());
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    let key = KeyPair::generate().map_err(rcgen_error("key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_error("certificate"))?;
    let issued = Issued {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    // The key first: a server reloading between the two writes sees a new key with the old
    // certificate, refuses the pair and keeps its previous one until the certificate lands.
    write_private(&issued.key, &key.serialize_pem())?;
    write_file(&issued.cert, &cert.pem())?;
    Ok(issued)
}

/// A name fit for `DIR/NAME.pem`.
fn check_name(name: &str) -> Result<(), CertsError> {
    let bad = |reason| CertsError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.starts_with('.') || name.starts_with('-') {
        return Err(bad("must be non-empty and start with a letter or digit"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("may hold letters, digits, '.', '_' and '-' only"));
    }
    if name == "ca" {
        return Err(bad("\"ca\" is the CA's own file name"));
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(|source| CertsError::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to `path` whole: a temporary file renamed over it, so that a process
/// reloading the file never reads half of it.
fn write_file(path: &Path, text: &str) -> Result<(), CertsError> {
    write_with_mode(path, text, 0o644)
}

/// As [`write_file`], readable by the owner only.
fn write_private(path: &Path, text: &str) -> Result<(), CertsError> {
    write_with_mode(path, text, 0o600)
}

fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), CertsError> {
    let io = |op| {
        move |source| CertsError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io("writing"))?;
    file.write_all(text.as_bytes()).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))?;
    fs::rename(&tmp, path).map_err(io("renaming onto"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn der(path: &Path) -> Vec<u8> {
        let text = fs::read(path).expect("read");
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).expect("pem");
        pem.contents
    }

    #[test]
    fn an_issued_certificate_carries_name_role_and_sans_for_both_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), Validity::days(10)).expect("init");
        let issued = issue(
            dir.path(),
            "trainer-1",
            Role::Trainer,
            &["node1.example".into(), "10.0.0.7".into()],
            Validity::days(2),
        )
        .expect("issue");
        let bytes = der(&issued.cert);
        let (_, cert) = X509Certificate::from_der(&bytes).expect("x509");
        let subject = cert.subject();
        let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.next().and_then(|a| a.as_str().ok()).map(String::from)
        };
        assert_eq!(
            first(&mut subject.iter_common_name()).as_deref(),
            Some("trainer-1")
        );
        assert_eq!(
            first(&mut subject.iter_organizational_unit()).as_deref(),
            Some("trainer")
        );
        let ca_bytes = der(&dir.path().join(CA_CERT_FILE));
        let (_, ca) = X509Certificate::from_der(&ca_bytes).expect("ca");
        assert_eq!(cert.issuer(), ca.subject());
        let sans = cert
            .subject_alternative_name()
            .expect("extension")
            .expect("present");
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["node1.example", "ip:[10, 0, 0, 7]"]);
        let eku = cert
            .extended_key_usage()
            .expect("extension")
            .expect("present");
        assert!(eku.value.server_auth && eku.value.client_auth);
        assert!(!cert.is_ca());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&issued.key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn default_sans_are_localhost_and_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), Validity::days(10)).expect("init");
        let issued = issue(dir.path(), "n1", Role::Node, &[], Validity::days(2)).expect("issue");
        let bytes = der(&issued.cert);
        let (_, cert) = X509Certificate::from_der(&bytes).expect("x509");
        let sans = cert.subject_alternative_name().expect("ext").expect("some");
        assert_eq!(sans.value.general_names.len(), 2);
        assert!(matches!(
            sans.value.general_names[0],
            GeneralName::DNSName("localhost")
        ));
        assert!(matches!(
            sans.value.general_names[1],
            GeneralName::IPAddress([127, 0, 0, 1])
        ));
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let no_ca = issue(dir.path(), "n1", Role::Node, &[], Validity::days(1)).expect_err("no ca");
        assert!(no_ca.to_string().contains("strata certs init"), "{no_ca}");
        init(dir.path(), Validity::days(10)).expect("init");
        let again = init(dir.path(), Validity::days(10)).expect_err("exists");
        assert!(again.to_string().contains("exists"), "{again}");
        for name in ["", "../x", "a/b", "ca", ".hidden"] {
            assert!(
                issue(dir.path(), name, Role::Node, &[], Validity::days(1)).is_err(),
                "{name:?}"
            );
        }
        let role = "superuser".parse::<Role>().expect_err("role");
        assert!(
            role.contains("trainer, reader, operator, admin, node"),
            "{role}"
        );
        let san = issue(
            dir.path(),
            "n2",
            Role::Node,
            &["".into()],
            Validity::days(1),
        );
        assert!(matches!(san, Err(CertsError::BadSan(_))));
    }
}
