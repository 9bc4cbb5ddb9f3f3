//! Durable cluster metadata behind one seam, [`RecordStore`]: a local file written
//! atomically (temp, fsync, rename) here, etcd in the server crate.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use super::record::ClusterRecord;

/// Failure to read or write cluster metadata.
#[derive(Debug, Error)]
pub enum MetaStoreError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold valid metadata.
    #[error("cluster metadata {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An etcd key does not hold valid metadata.
    #[error("cluster metadata at etcd key {key} is corrupt: {source}")]
    CorruptKey {
        /// The key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An etcd call failed.
    #[error("etcd {op}: {message}")]
    Etcd {
        /// What was being done.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// This coordinator is no longer the leader: its election key is gone.
    #[error("not the leader any more (election key {key} is gone): write refused")]
    Fenced {
        /// The election key that no longer holds.
        key: String,
    },
}

impl MetaStoreError {
    /// Whether a write found the disk (or the quota) full: not strata's fault, and the
    /// write succeeds again once space is freed.
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self,
            MetaStoreError::Io { source, .. } if matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        )
    }
}

/// Where the cluster coordinator keeps its record.
pub trait RecordStore: Send + Sync {
    /// The stored record, if any was saved.
    fn load_record(&self) -> Result<Option<ClusterRecord>, MetaStoreError>;
    /// Saves `record` atomically (a store shared by several coordinators refuses the
    /// writes of one that no longer leads: [`MetaStoreError::Fenced`]).
    fn save_record(&self, record: &ClusterRecord) -> Result<(), MetaStoreError>;
}

impl RecordStore for FileMetaStore {
    fn load_record(&self) -> Result<Option<ClusterRecord>, MetaStoreError> {
        self.load_json()
    }

    fn save_record(&self, record: &ClusterRecord) -> Result<(), MetaStoreError> {
        self.save_json(record)
    }
}

/// Cluster metadata in a file of the data dir.
#[derive(Debug, Clone)]
pub struct FileMetaStore {
    path: PathBuf,
}

impl FileMetaStore {
    /// The store of `data_dir` keeping its record in file `name` (dir created if missing).
    pub fn open_file(data_dir: &Path, name: &str) -> Result<Self, MetaStoreError> {
        fs::create_dir_all(data_dir).map_err(|source| MetaStoreError::Io {
            op: "create",
            path: data_dir.into(),
            source,
        })?;
        Ok(Self {
            path: data_dir.join(name),
        })
    }

    /// The stored record of any serializable type, if one was saved.
    pub fn load_json<T: DeserializeOwned>(&self) -> Result<Option<T>, MetaStoreError> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(MetaStoreError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| MetaStoreError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    /// Saves any serializable record atomically (temp file, fsync, rename, fsync dir).
    pub fn save_json<T: Serialize>(&self, state: &T) -> Result<(), MetaStoreError> {
        let tmp = self.path.with_extension("tmp");
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| MetaStoreError::Io { op, path, source }
        };
        let body = serde_json::to_vec_pretty(state).map_err(|source| MetaStoreError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&body).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io("rename", &self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync", dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        epoch: u64,
    }

    #[test]
    fn record_survives_reopen_and_corruption_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileMetaStore::open_file(dir.path(), "record.json").expect("open");
        assert_eq!(store.load_json::<Record>().expect("load"), None);
        store.save_json(&Record { epoch: 3 }).expect("save");
        let again = FileMetaStore::open_file(dir.path(), "record.json").expect("open");
        assert_eq!(
            again.load_json::<Record>().expect("load"),
            Some(Record { epoch: 3 })
        );
        fs::write(dir.path().join("record.json"), b"{not json").expect("write");
        assert!(matches!(
            again.load_json::<Record>(),
            Err(MetaStoreError::Corrupt { .. })
        ));
    }
}
