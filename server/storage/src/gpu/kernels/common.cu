// Shared definitions of the GPU hash table kernels (prepended to every module).
// NVRTC only: no host headers; fixed-width types are defined here. Must match layout.rs.

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef float f32;

#define BUCKET_SLOTS 128
#define EMPTY_KEY 0xFFFFFFFFFFFFFFFFull
#define LOCKED_KEY 0xFFFFFFFFFFFFFFFEull
#define RESERVED_MIN 0xFFFFFFFFFFFFFFFDull
#define RESERVED_TAG 0ull
#define FULL_MASK 0xFFFFFFFFu
#define WARP_SIZE 32

#define ST_REFUSED 0
#define ST_INSERTED 1
#define ST_UPDATED 2
#define ST_EVICTED 3
#define ST_FOUND 4
#define ST_MISSING 5

#define POLICY_LRU 0
#define POLICY_LFU 1
#define POLICY_STEP 2

#define META_STEP 0
#define META_LAST_UPDATE 1

// Kernel parameters describing a table; TABLE_ARGS turns them into a Table.
#define TABLE_PARAMS                                                          \
  u64 *t_keys, u8 *t_digests, u64 *t_scores, f32 *t_values, u64 t_buckets,    \
      u32 t_row_width, u32 t_policy
#define TABLE_ARGS                                                            \
  make_table(t_keys, t_digests, t_scores, t_values, t_buckets, t_row_width,   \
             t_policy)

struct Table {
  u64 *keys;      // stored key per slot ((buckets + 1) * 128)
  u8 *digests;    // 8-bit digest per slot
  u64 *scores;    // eviction score per slot
  f32 *values;    // row_width f32 per slot
  u64 buckets;    // hashed buckets (the reserved bucket follows them)
  u32 row_width;  // dim * (1 + state_slots) + 4
  u32 policy;     // POLICY_*
};

__device__ __forceinline__ Table make_table(u64 *k, u8 *d, u64 *s, f32 *v,
                                            u64 b, u32 w, u32 p) {
  Table t;
  t.keys = k;
  t.digests = d;
  t.scores = s;
  t.values = v;
  t.buckets = b;
  t.row_width = w;
  t.policy = p;
  return t;
}

// MurmurHash3 fmix64.
__device__ __forceinline__ u64 fmix64(u64 k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

struct Place {
  u64 base;     // first slot of the bucket, or the reserved slot
  u32 digest;   // top byte of the hash
  bool reserved;
};

__device__ __forceinline__ Place place_key(u64 key, u64 buckets) {
  Place p;
  if (key >= RESERVED_MIN) {
    p.reserved = true;
    p.base = buckets * BUCKET_SLOTS + (0xFFFFFFFFFFFFFFFFull - key);
    p.digest = 0;
  } else {
    const u64 h = fmix64(key);
    p.reserved = false;
    p.base = (((h & 0xFFFFFFFFull) * buckets) >> 32) * BUCKET_SLOTS;
    p.digest = (u32)(h >> 56);
  }
  return p;
}

__device__ __forceinline__ u32 lane_id() { return threadIdx.x & (WARP_SIZE - 1); }

// Index of this thread's warp in the grid: one warp per key.
__device__ __forceinline__ u64 warp_index() {
  return ((u64)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE;
}

__device__ __forceinline__ u64 load_key(const u64 *p) {
  return *(const volatile u64 *)p;
}

__device__ __forceinline__ void store_key(u64 *p, u64 v) {
  *(volatile u64 *)p = v;
}

__device__ __forceinline__ u64 load_score(const u64 *p) {
  return *(const volatile u64 *)p;
}

__device__ __forceinline__ u64 insert_score(u32 policy, u64 now) {
  return policy == POLICY_LFU ? 1ull : now;
}

__device__ __forceinline__ u64 touch_score(u32 policy, u64 old, u64 now) {
  if (policy == POLICY_LFU) return old == 0xFFFFFFFFFFFFFFFFull ? old : old + 1;
  return now;
}

// Lane-strided copy of n floats by one warp.
__device__ __forceinline__ void warp_copy(f32 *dst, const f32 *src, u32 n,
                                          u32 lane) {
  for (u32 i = lane; i < n; i += WARP_SIZE) dst[i] = src[i];
}

// Makes a locked slot's writes visible, then publishes its key (lane 0).
__device__ __forceinline__ void publish(u64 *key_slot, u64 stored, u32 lane) {
  __threadfence();
  __syncwarp();
  if (lane == 0) store_key(key_slot, stored);
  __syncwarp();
}

#define MATCH_ABSENT (-1)
#define MATCH_RETRY (-2)

// Warp-cooperative probe: offset of `key` in its bucket, MATCH_ABSENT, or MATCH_RETRY when a
// slot with a matching digest is locked (it may be this key being updated or evicted).
// Each lane loads 4 digests (one 128-byte load per warp) and compares them with __vcmpeq4
// before touching any key.
__device__ __forceinline__ int warp_match(const Table &T, const Place &p,
                                          u64 key, u32 lane) {
  if (p.reserved) {
    int r = 0;
    if (lane == 0) {
      const u64 k = load_key(T.keys + p.base);
      r = k == RESERVED_TAG ? 0 : (k == LOCKED_KEY ? MATCH_RETRY : MATCH_ABSENT);
    }
    return __shfl_sync(FULL_MASK, r, 0);
  }
  const u32 dg = ((const volatile u32 *)(T.digests + p.base))[lane];
  const u32 eq = __vcmpeq4(dg, p.digest * 0x01010101u);
  int hit = -1;
  bool locked = false;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (eq & (0xFFu << (8 * j))) {
      const u64 k = load_key(T.keys + p.base + lane * 4 + j);
      if (k == key) {
        hit = (int)(lane * 4 + j);
      } else if (k == LOCKED_KEY) {
        locked = true;
      }
    }
  }
  const u32 hv = __ballot_sync(FULL_MASK, hit >= 0);
  if (hv) return __shfl_sync(FULL_MASK, hit, __ffs(hv) - 1);
  if (__ballot_sync(FULL_MASK, locked)) return MATCH_RETRY;
  return MATCH_ABSENT;
}

// Probes until the answer is stable; returns the slot index or -1.
__device__ __forceinline__ long long warp_find_slot(const Table &T,
                                                   const Place &p, u64 key,
                                                   u32 lane) {
  int m;
  do {
    m = warp_match(T, p, key, lane);
  } while (m == MATCH_RETRY);
  return m < 0 ? -1 : (long long)(p.base + (u64)m);
}

// Fills a locked slot (row by all lanes, digest and score by lane 0); does not publish.
__device__ __forceinline__ void fill_slot(const Table &T, u64 slot, u32 digest,
                                          const f32 *row, u64 score,
                                          u32 lane) {
  warp_copy(T.values + slot * T.row_width, row, T.row_width, lane);
  if (lane == 0) {
    T.digests[slot] = (u8)digest;
    T.scores[slot] = score;
  }
}
