//! Table geometry shared by the CPU reference and the CUDA kernels.
//!
//! A table has `num_buckets` buckets of [`BUCKET_SLOTS`] slots plus one *reserved bucket*
//! holding the [`NUM_RESERVED`] user ids that collide with the sentinel keys. Per slot it keeps
//! a stored key (u64), an 8-bit digest, a u64 score and a row of `row_width` f32:
//! `dim` weights, `state_slots * dim` optimizer state, then [`META_WORDS`] u32 words stored as
//! f32 bits (the host tier's row layout, so rows can be written back unchanged).
//!
//! Hashing: `h = fmix64(id)` (MurmurHash3's 64-bit finalizer). The bucket is
//! `((h & 0xFFFF_FFFF) * num_buckets) >> 32` (low 32 bits, multiply-shift) and the digest is the
//! top byte `h >> 56`, which the bucket index never uses. The same definitions live in
//! `kernels/common.cu`.

use crate::optimizer::OptimizerKind;

use super::GpuError;

/// Slots per bucket; one warp scans a bucket's digests with one 4-byte load per lane.
pub const BUCKET_SLOTS: usize = 128;
/// Stored key of a free slot.
pub const EMPTY_KEY: u64 = u64::MAX;
/// Stored key of a slot that a kernel is writing.
pub const LOCKED_KEY: u64 = u64::MAX - 1;
/// Smallest id that collides with a sentinel; ids `>= RESERVED_MIN` live in the reserved bucket.
pub const RESERVED_MIN: u64 = u64::MAX - 2;
/// Number of ids that collide with sentinels (and slots in the reserved bucket).
pub const NUM_RESERVED: usize = 3;
/// Stored key of an occupied reserved slot (any value that is not a sentinel).
pub const RESERVED_TAG: u64 = 0;
/// Metadata words at the end of each row: `[step, last_update_secs, access_count, reserved]`.
pub const META_WORDS: usize = 4;
/// Index of the per-row step counter (Adam's `t`) among the metadata words.
pub const META_STEP: usize = 0;
/// Index of the last update time (seconds) among the metadata words.
pub const META_LAST_UPDATE: usize = 1;
/// Index of the access counter among the metadata words.
pub const META_ACCESS_COUNT: usize = 2;

/// Per-key status codes written by the kernels (mirrored as `#define ST_*` in `common.cu`).
pub mod status {
    /// The bucket was full and the new key's score was below every resident score.
    pub const REFUSED: u32 = 0;
    /// The key was absent and took a free slot.
    pub const INSERTED: u32 = 1;
    /// The key was resident and its row was overwritten.
    pub const UPDATED: u32 = 2;
    /// The key took the slot of an evicted key.
    pub const EVICTED: u32 = 3;
    /// The key was resident and its row was read.
    pub const FOUND: u32 = 4;
    /// The key is not resident.
    pub const MISSING: u32 = 5;
}

/// MurmurHash3's 64-bit finalizer, the table's key hash.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Bucket of a hash: multiply-shift of its low 32 bits.
#[inline]
pub fn bucket_of_hash(h: u64, num_buckets: u64) -> u64 {
    ((h & 0xFFFF_FFFF) * num_buckets) >> 32
}

/// Digest of a hash: its top byte.
#[inline]
pub fn digest_of_hash(h: u64) -> u8 {
    (h >> 56) as u8
}

/// How an id is placed in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPlace {
    /// An ordinary id: probe `bucket` for a slot with `digest` and stored key `key`.
    Hashed {
        /// Bucket index.
        bucket: u64,
        /// 8-bit digest compared before the key.
        digest: u8,
    },
    /// An id that collides with a sentinel: fixed slot `index` of the reserved bucket.
    Reserved {
        /// Index inside the reserved bucket (`u64::MAX - id`).
        index: usize,
    },
}

/// Where an id goes in a table of `num_buckets` buckets.
#[inline]
pub fn place(id: u64, num_buckets: u64) -> KeyPlace {
    if id >= RESERVED_MIN {
        KeyPlace::Reserved {
            index: (u64::MAX - id) as usize,
        }
    } else {
        let h = fmix64(id);
        KeyPlace::Hashed {
            bucket: bucket_of_hash(h, num_buckets),
            digest: digest_of_hash(h),
        }
    }
}

/// How slot scores are maintained; the slot with the minimum score is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScorePolicy {
    /// Least recently used: score = the table clock, advanced once per batch call.
    Lru,
    /// Least frequently used: score = access count (1 on insert, +1 per touch).
    Lfu,
    /// Step-based (TTL): score = the caller's global training step (`set_step`).
    Step,
}

impl ScorePolicy {
    /// Code passed to the kernels (`POLICY_*` in `common.cu`).
    pub fn code(self) -> u32 {
        match self {
            ScorePolicy::Lru => 0,
            ScorePolicy::Lfu => 1,
            ScorePolicy::Step => 2,
        }
    }

    /// Score of a key inserted now (`now` is the batch's clock or step).
    pub fn insert_score(self, now: u64) -> u64 {
        match self {
            ScorePolicy::Lru | ScorePolicy::Step => now,
            ScorePolicy::Lfu => 1,
        }
    }

    /// Score of a resident key touched now.
    pub fn touch_score(self, old: u64, now: u64) -> u64 {
        match self {
            ScorePolicy::Lru | ScorePolicy::Step => now,
            ScorePolicy::Lfu => old.saturating_add(1),
        }
    }
}

/// Optimizer state vectors (of `dim` f32 each) a row carries for an optimizer.
pub fn state_slots(kind: &OptimizerKind) -> usize {
    match kind {
        OptimizerKind::Sgd { .. } => 0,
        OptimizerKind::Adagrad { .. } => 1,
        OptimizerKind::Adam { .. } | OptimizerKind::Ftrl { .. } => 2,
    }
}

/// Geometry of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLayout {
    /// Number of hashed buckets (the reserved bucket comes on top).
    pub num_buckets: u64,
    /// Embedding dimension.
    pub dim: usize,
    /// Optimizer state vectors per row.
    pub state_slots: usize,
}

impl TableLayout {
    /// A layout, validated: at least one bucket, fewer than 2^32, `dim >= 1`.
    pub fn new(num_buckets: u64, dim: usize, state_slots: usize) -> Result<Self, GpuError> {
        if num_buckets == 0 || num_buckets > u32::MAX as u64 {
            return Err(GpuError::InvalidConfig(format!(
                "num_buckets must be in 1..2^32, got {num_buckets}"
            )));
        }
        if dim == 0 || state_slots > 2 {
            return Err(GpuError::InvalidConfig(format!(
                "dim must be >= 1 and state_slots <= 2, got dim {dim}, state_slots {state_slots}"
            )));
        }
        Ok(Self {
            num_buckets,
            dim,
            state_slots,
        })
    }

    /// The smallest layout with room for `capacity` hashed keys.
    pub fn for_capacity(capacity: u64, dim: usize, state_slots: usize) -> Result<Self, GpuError> {
        Self::new(
            capacity.div_ceil(BUCKET_SLOTS as u64).max(1),
            dim,
            state_slots,
        )
    }

    /// f32 words per row: weights, optimizer state, metadata.
    pub fn row_width(&self) -> usize {
        self.dim * (1 + self.state_slots) + META_WORDS
    }

    /// Slots for hashed keys (`num_buckets * 128`).
    pub fn hashed_slots(&self) -> usize {
        self.num_buckets as usize * BUCKET_SLOTS
    }

    /// All slots, including the reserved bucket (allocated as a whole bucket).
    pub fn total_slots(&self) -> usize {
        self.hashed_slots() + BUCKET_SLOTS
    }

    /// Most keys the table can hold: hashed slots plus the reserved ids.
    pub fn capacity(&self) -> usize {
        self.hashed_slots() + NUM_RESERVED
    }

    /// Device bytes of keys, digests, scores and rows.
    pub fn bytes(&self) -> usize {
        self.total_slots() * (8 + 1 + 8 + 4 * self.row_width())
    }

    /// Slot index of a placed key's first candidate: the bucket's first slot or the reserved slot.
    pub fn base_slot(&self, place: KeyPlace) -> usize {
        match place {
            KeyPlace::Hashed { bucket, .. } => bucket as usize * BUCKET_SLOTS,
            KeyPlace::Reserved { index } => self.hashed_slots() + index,
        }
    }

    /// The user id held by an occupied slot whose stored key is `stored`.
    pub fn user_key(&self, slot: usize, stored: u64) -> u64 {
        if slot >= self.hashed_slots() {
            u64::MAX - (slot - self.hashed_slots()) as u64
        } else {
            stored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmix64_known_values() {
        // fmix64(0) = 0 by construction; fmix64(1) from MurmurHash3's reference finalizer.
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
    }

    #[test]
    fn reserved_ids_get_fixed_slots() {
        let l = TableLayout::new(4, 8, 1).expect("layout");
        for (i, id) in [u64::MAX, u64::MAX - 1, u64::MAX - 2]
            .into_iter()
            .enumerate()
        {
            let p = place(id, 4);
            assert_eq!(p, KeyPlace::Reserved { index: i });
            let slot = l.base_slot(p);
            assert_eq!(l.user_key(slot, RESERVED_TAG), id);
        }
        assert!(matches!(place(u64::MAX - 3, 4), KeyPlace::Hashed { .. }));
    }

    #[test]
    fn buckets_in_range_and_row_width() {
        for id in 0..10_000u64 {
            if let KeyPlace::Hashed { bucket, .. } = place(id, 7) {
                assert!(bucket < 7);
            }
        }
        let l = TableLayout::new(2, 16, 2).expect("layout");
        assert_eq!(l.row_width(), 16 * 3 + 4);
        assert_eq!(l.capacity(), 256 + 3);
        assert!(TableLayout::new(0, 16, 0).is_err());
    }
}
