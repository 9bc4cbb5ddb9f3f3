//! Chains of checkpoints (a base and the deltas after it): verifying, listing, loading the
//! newest good one, and retention that never breaks a chain a kept checkpoint needs.

use std::collections::{BTreeSet, HashMap};
use std::fs;

use super::error::CheckpointError;
use super::manifest::{Manifest, MANIFEST_FILE};
use super::store::{fsync_dir, CheckpointInfo, CheckpointState, CheckpointStore, TRASH_SUFFIX};
use super::NodeSnapshot;

impl CheckpointStore {
    /// The chain of committed checkpoint `id`, its base first and `id` last, read from the
    /// manifests alone. A manifest that fails, or a link that is missing, is an error naming
    /// the checkpoint whose manifest is at fault.
    pub(crate) fn chain_ids(&self, id: &str) -> Result<Vec<String>, CheckpointError> {
        let mut chain = vec![id.to_owned()];
        let (tip, _) = Manifest::read(&self.root.join(id), id)?;
        let mut link = tip.clone();
        while let Some(parent) = link.parent.clone() {
            if !self.root.join(&parent).is_dir() {
                return Err(CheckpointError::corrupt(
                    &link.id,
                    MANIFEST_FILE,
                    format!("its parent {parent} is missing"),
                ));
            }
            let (m, _) = Manifest::read(&self.root.join(&parent), &parent)?;
            // Manifests only link to older ids, so this walk ends.
            let parent_base = m.base.as_deref().unwrap_or(&m.id);
            if m.depth.checked_add(1) != Some(link.depth)
                || link.base.as_deref() != Some(parent_base)
            {
                return Err(CheckpointError::corrupt(
                    &link.id,
                    MANIFEST_FILE,
                    format!("its parent {parent} belongs to another chain"),
                ));
            }
            chain.push(parent);
            link = m;
        }
        if tip.base.is_some() && tip.base.as_ref() != Some(&link.id) {
            return Err(CheckpointError::corrupt(
                id,
                MANIFEST_FILE,
                format!("names base {:?}, its chain starts at {}", tip.base, link.id),
            ));
        }
        chain.reverse();
        Ok(chain)
    }

    /// Verifies checkpoint `id`'s own manifest and data files (not its chain).
    fn own_info(&self, id: &str) -> Result<CheckpointInfo, CheckpointError> {
        match self.read(id, false) {
            Ok((m, mb, _)) => {
                self.mark_verified(id);
                Ok(CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok))
            }
            Err(CheckpointError::Corrupt { file, reason, .. }) => {
                self.corrupt.lock().insert(id.to_owned());
                let reason = format!("{file}: {reason}");
                // Report what the manifest says when it is readable.
                Ok(match Manifest::read(&self.root.join(id), id) {
                    Ok((m, mb)) => {
                        CheckpointInfo::from_manifest(&m, mb, CheckpointState::Corrupt { reason })
                    }
                    Err(_) => CheckpointInfo::unreadable(id, reason),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Fully verifies checkpoint `id` (manifest and every data file's length and crc32) and
    /// every checkpoint of its chain: a delta is corrupt when its base or a delta before it is.
    pub fn verify(&self, id: &str) -> Result<CheckpointInfo, CheckpointError> {
        self.check_id(id)?;
        let mut info = self.own_info(id)?;
        if info.state != CheckpointState::Ok || info.parent.is_none() {
            return Ok(info);
        }
        match self.chain_ids(id) {
            Ok(chain) => {
                for link in &chain[..chain.len() - 1] {
                    if let CheckpointState::Corrupt { reason } = self.own_info(link)?.state {
                        info.state = CheckpointState::Corrupt {
                            reason: format!("chain: {link}: {reason}"),
                        };
                        break;
                    }
                }
            }
            Err(CheckpointError::Corrupt {
                id: at,
                file,
                reason,
            }) => {
                self.corrupt.lock().insert(at.clone());
                info.state = CheckpointState::Corrupt {
                    reason: format!("chain: {at}: {file}: {reason}"),
                };
            }
            Err(e) => return Err(e),
        }
        Ok(info)
    }

    /// All committed checkpoints, newest first, each fully verified once; a delta whose
    /// chain holds a corrupt or missing checkpoint is reported corrupt.
    pub fn list(&self) -> Result<Vec<CheckpointInfo>, CheckpointError> {
        let mut ids = self.committed_ids()?;
        ids.reverse();
        let mut usable: HashMap<String, bool> = HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for (_, id) in ids {
            let mut info = match self.own_info(&id) {
                Ok(info) => info,
                // Pruned concurrently.
                Err(CheckpointError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let (CheckpointState::Ok, Some(parent)) = (&info.state, &info.parent) {
                let reason = match usable.get(parent) {
                    Some(true) => None,
                    Some(false) => Some(format!("chain: its parent {parent} is not usable")),
                    None => Some(format!("chain: its parent {parent} is missing")),
                };
                if let Some(reason) = reason {
                    info.state = CheckpointState::Corrupt { reason };
                }
            }
            usable.insert(id, info.state == CheckpointState::Ok);
            out.push(info);
        }
        out.reverse();
        Ok(out)
    }

    /// Loads the chain of checkpoint `id` (its base first, `id` last), verifying every length
    /// and checksum of every checkpoint in it before returning data.
    pub fn load(&self, id: &str) -> Result<Vec<NodeSnapshot>, CheckpointError> {
        Ok(self.load_with_info(id)?.1)
    }

    /// [`CheckpointStore::load`] with the checkpoint's summary, from the same verified read.
    pub fn load_with_info(
        &self,
        id: &str,
    ) -> Result<(CheckpointInfo, Vec<NodeSnapshot>), CheckpointError> {
        self.check_id(id)?;
        let chain = self.chain_ids(id)?;
        let mut snaps = Vec::with_capacity(chain.len());
        let mut info = None;
        for link in &chain {
            let (m, mb, snap) = self.read(link, true)?;
            info = Some(CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok));
            snaps.push(snap);
        }
        for link in &chain {
            self.mark_verified(link);
        }
        let info = info.ok_or_else(|| CheckpointError::NotFound { id: id.to_owned() })?;
        Ok((info, snaps))
    }

    /// Loads the newest checkpoint whose chain verifies, as a chain (base first). When a
    /// delta of the newest chain is corrupt, the longest good prefix of that chain is loaded:
    /// the corrupt delta is logged as an error and remembered (see
    /// [`CheckpointStore::corrupt_ids`]), and the deltas after it are skipped, logged too. A
    /// corrupt base, or a corrupt manifest, makes it try the next older checkpoint.
    pub fn load_latest_good(
        &self,
    ) -> Result<Option<(CheckpointInfo, Vec<NodeSnapshot>)>, CheckpointError> {
        for (_, id) in self.committed_ids()? {
            let chain = match self.chain_ids(&id) {
                Ok(chain) => chain,
                Err(CheckpointError::Corrupt {
                    id: at,
                    file,
                    reason,
                }) => {
                    tracing::error!(id = %at, %file, %reason, skipped = %id, "corrupt checkpoint skipped; trying an older one");
                    self.corrupt.lock().insert(at);
                    continue;
                }
                Err(CheckpointError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let mut snaps = Vec::with_capacity(chain.len());
            let mut info = None;
            for (k, link) in chain.iter().enumerate() {
                match self.read(link, true) {
                    Ok((m, mb, snap)) => {
                        info = Some(CheckpointInfo::from_manifest(&m, mb, CheckpointState::Ok));
                        snaps.push(snap);
                    }
                    Err(CheckpointError::Corrupt { file, reason, .. }) => {
                        self.corrupt.lock().insert(link.clone());
                        if k == 0 {
                            tracing::error!(id = %link, %file, %reason, "corrupt checkpoint skipped; trying an older one");
                        } else {
                            tracing::error!(
                                delta = %link, %file, %reason, restored = %chain[k - 1],
                                skipped = ?&chain[k..],
                                "corrupt delta checkpoint: restoring its chain up to the checkpoint before it; it and the deltas after it are skipped"
                            );
                        }
                        break;
                    }
                    Err(CheckpointError::NotFound { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            if let Some(info) = info {
                for link in chain.iter().take(snaps.len()) {
                    self.mark_verified(link);
                }
                return Ok(Some((info, snaps)));
            }
        }
        Ok(None)
    }

    /// The checkpoints seen to fail verification so far, oldest first.
    pub fn corrupt_ids(&self) -> Vec<String> {
        self.corrupt.lock().iter().cloned().collect()
    }

    /// `id`'s chain when every checkpoint of it verifies; one this store wrote or verified
    /// before is not read again while its files look the same.
    fn chain_is_good(&self, id: &str) -> Result<Option<Vec<String>>, CheckpointError> {
        let chain = match self.chain_ids(id) {
            Ok(chain) => chain,
            Err(CheckpointError::Corrupt { id: at, .. }) => {
                self.corrupt.lock().insert(at);
                return Ok(None);
            }
            Err(CheckpointError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        for link in &chain {
            if self.still_verified(link) {
                continue;
            }
            if self.own_info(link)?.state != CheckpointState::Ok {
                return Ok(None);
            }
        }
        Ok(Some(chain))
    }

    /// Whether a checkpoint of `id`'s chain (before it) is known to be corrupt, or the chain
    /// cannot be followed.
    fn chain_holds_corrupt(&self, id: &str) -> Result<bool, CheckpointError> {
        match self.chain_ids(id) {
            Ok(chain) => {
                let corrupt = self.corrupt.lock();
                Ok(chain.iter().any(|link| corrupt.contains(link)))
            }
            Err(CheckpointError::Corrupt { .. }) => Ok(true),
            Err(CheckpointError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Keeps the newest `keep` good checkpoints with every checkpoint their chains need, and
    /// deletes the checkpoints older than them that no kept chain needs, except those seen to
    /// be corrupt and the deltas chained to one: they may be the only copy of older data, and
    /// stay for inspection (an operator deletes them). Returns how many were deleted.
    ///
    /// `keep == 0` deletes every good checkpoint. Ids are never reused afterwards. Deletion
    /// goes newest first, so a crash midway never leaves a delta whose parent is gone while
    /// the delta stays.
    pub fn prune(&self, keep: usize) -> Result<usize, CheckpointError> {
        let mut good = 0usize;
        let mut deleted = 0usize;
        let mut needed: BTreeSet<String> = BTreeSet::new();
        for (_, id) in self.committed_ids()? {
            if good < keep {
                if let Some(chain) = self.chain_is_good(&id)? {
                    good += 1;
                    needed.extend(chain);
                }
                continue;
            }
            if needed.contains(&id) {
                continue;
            }
            if self.corrupt.lock().contains(&id) {
                tracing::warn!(%id, "corrupt checkpoint kept for inspection; delete it by hand once it is not needed");
                continue;
            }
            if self.chain_holds_corrupt(&id)? {
                tracing::warn!(%id, "checkpoint whose chain holds a corrupt one kept for inspection; delete it by hand once it is not needed");
                continue;
            }
            // Rename first so a crash mid-delete never leaves a half-deleted "committed" dir.
            let dir = self.root.join(&id);
            let trash = self.root.join(format!("{id}{TRASH_SUFFIX}"));
            fs::rename(&dir, &trash).map_err(|e| CheckpointError::io("rename", &dir, e))?;
            fsync_dir(&self.root)?;
            fs::remove_dir_all(&trash).map_err(|e| CheckpointError::io("remove dir", &trash, e))?;
            self.forget_verified(&id);
            tracing::info!(%id, "checkpoint pruned");
            deleted += 1;
        }
        if deleted > 0 {
            fsync_dir(&self.root)?;
        }
        Ok(deleted)
    }
}
