//! A data dir's incarnation id: 128 random bits in hex, written in the data dir the first
//! time a node uses it, sent with every registration. The coordinator keeps it with the
//! node's record, so a node that comes back under its id with an empty or another node's
//! data dir is told apart from one that kept its data.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::durable_file;

/// File in the data dir that holds the incarnation id.
pub const INCARNATION_FILE: &str = "incarnation";

/// Why the incarnation id could not be read or written.
#[derive(Debug, Error)]
#[error("incarnation file {}: {source}", path.display())]
pub struct IncarnationError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The incarnation id of `data_dir`, written there first (temp file, fsync, rename) when it
/// has none.
pub fn incarnation(data_dir: &Path) -> Result<String, IncarnationError> {
    let path = data_dir.join(INCARNATION_FILE);
    let err = |source| IncarnationError {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let id = random_id().map_err(err)?;
    durable_file::write(data_dir, INCARNATION_FILE, &format!("{id}\n")).map_err(err)?;
    tracing::info!(dir = %data_dir.display(), incarnation = %id, "new data dir: incarnation id written");
    Ok(id)
}

/// 128 bits from the kernel's random source, in hex.
fn random_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_made_once_and_kept_and_another_dir_gets_another() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let first = incarnation(&a).expect("first");
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(incarnation(&a).expect("again"), first);
        assert_ne!(incarnation(&dir.path().join("b")).expect("b"), first);
    }
}
