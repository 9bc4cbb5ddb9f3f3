// Hash table kernels: one warp per key (blocks of 128 threads = 4 keys), except the
// slot-parallel init/export/expire kernels (one thread per slot).
// Keys of one launch must be distinct; launches on a table are serialized by its stream.

#define MODE_FIND_OR_INSERT 0
#define MODE_ASSIGN 1
#define MODE_EVICT 2

extern "C" __global__ void init_keys(u64 *keys, u64 n) {
  const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) keys[i] = EMPTY_KEY;
}

// Gathers the first out_width words of each resident row into out (zeros when missing).
extern "C" __global__ void find(TABLE_PARAMS, const u64 *keys, u64 n,
                                u32 out_width, u32 touch, u64 now, f32 *out,
                                u32 *status) {
  const u64 w = warp_index();
  if (w >= n) return;
  const Table T = TABLE_ARGS;
  const u32 lane = lane_id();
  const u64 key = keys[w];
  const Place p = place_key(key, T.buckets);
  const long long slot = warp_find_slot(T, p, key, lane);
  f32 *dst = out + w * out_width;
  if (slot < 0) {
    for (u32 i = lane; i < out_width; i += WARP_SIZE) dst[i] = 0.0f;
    if (lane == 0) status[w] = ST_MISSING;
    return;
  }
  warp_copy(dst, T.values + (u64)slot * T.row_width, out_width, lane);
  if (lane == 0) {
    if (touch) T.scores[slot] = touch_score(T.policy, T.scores[slot], now);
    status[w] = ST_FOUND;
  }
}

// One key of an inserting launch. See reference.rs for the decisions it makes.
__device__ void upsert_one(const Table &T, u64 key, const f32 *row,
                           bool has_score, u64 score_in, u64 now, u32 mode,
                           u32 lane, u32 *status, u64 *ev_key, u64 *ev_score,
                           f32 *ev_row, f32 *out_row) {
  const Place p = place_key(key, T.buckets);
  const u64 stored = p.reserved ? RESERVED_TAG : key;
  const u64 new_score = has_score ? score_in : insert_score(T.policy, now);
  u64 *bucket_keys = T.keys + p.base;
  while (true) {
    const int m = warp_match(T, p, key, lane);
    if (m == MATCH_RETRY) continue;
    if (m >= 0) {
      // Resident: lock it, read or overwrite, update the score.
      const u64 slot = p.base + (u64)m;
      u32 ok = 0;
      if (lane == 0) ok = atomicCAS(T.keys + slot, stored, LOCKED_KEY) == stored;
      if (!__shfl_sync(FULL_MASK, ok, 0)) continue;
      f32 *dst = T.values + slot * T.row_width;
      if (mode == MODE_FIND_OR_INSERT) {
        warp_copy(out_row, dst, T.row_width, lane);
      } else {
        warp_copy(dst, row, T.row_width, lane);
      }
      if (lane == 0) {
        T.scores[slot] =
            has_score ? score_in : touch_score(T.policy, T.scores[slot], now);
        *status = mode == MODE_FIND_OR_INSERT ? ST_FOUND : ST_UPDATED;
      }
      publish(T.keys + slot, stored, lane);
      return;
    }
    if (p.reserved) {
      // Reserved ids own one fixed slot: take it.
      u32 ok = 0;
      if (lane == 0) ok = atomicCAS(bucket_keys, EMPTY_KEY, LOCKED_KEY) == EMPTY_KEY;
      if (!__shfl_sync(FULL_MASK, ok, 0)) continue;
      fill_slot(T, p.base, 0, row, new_score, lane);
      if (mode == MODE_FIND_OR_INSERT) warp_copy(out_row, row, T.row_width, lane);
      if (lane == 0) *status = ST_INSERTED;
      publish(bucket_keys, stored, lane);
      return;
    }
    // Absent: the lowest-index free slot of the bucket.
    u32 free_bits = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (load_key(bucket_keys + lane * 4 + j) == EMPTY_KEY) free_bits |= 1u << j;
    }
    const u32 fv = __ballot_sync(FULL_MASK, free_bits != 0);
    if (fv) {
      const int src = __ffs(fv) - 1;
      u32 ok = 0;
      int pos = 0;
      if ((int)lane == src) {
        pos = (int)(lane * 4) + __ffs(free_bits) - 1;
        ok = atomicCAS(bucket_keys + pos, EMPTY_KEY, LOCKED_KEY) == EMPTY_KEY;
      }
      ok = __shfl_sync(FULL_MASK, ok, src);
      pos = __shfl_sync(FULL_MASK, pos, src);
      if (!ok) continue;
      const u64 slot = p.base + (u64)pos;
      fill_slot(T, slot, p.digest, row, new_score, lane);
      if (mode == MODE_FIND_OR_INSERT) warp_copy(out_row, row, T.row_width, lane);
      if (lane == 0) *status = ST_INSERTED;
      publish(T.keys + slot, stored, lane);
      return;
    }
    if (mode == MODE_ASSIGN) {
      if (lane == 0) *status = ST_REFUSED;
      return;
    }
    // Full: the minimum score among unlocked slots, lowest index on ties.
    u64 best = 0xFFFFFFFFFFFFFFFFull;
    int bpos = BUCKET_SLOTS;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int s = (int)(lane * 4) + j;
      const u64 k = load_key(bucket_keys + s);
      if (k != LOCKED_KEY && k != EMPTY_KEY) {
        const u64 sc = load_score(T.scores + p.base + s);
        if (sc < best) {
          best = sc;
          bpos = s;
        }
      }
    }
#pragma unroll
    for (int off = WARP_SIZE / 2; off > 0; off >>= 1) {
      const u64 ob = __shfl_xor_sync(FULL_MASK, best, off);
      const int op = __shfl_xor_sync(FULL_MASK, bpos, off);
      if (ob < best || (ob == best && op < bpos)) {
        best = ob;
        bpos = op;
      }
    }
    if (bpos == BUCKET_SLOTS) continue;  // every slot locked: wait
    if (new_score < best) {
      if (mode == MODE_FIND_OR_INSERT) warp_copy(out_row, row, T.row_width, lane);
      if (lane == 0) *status = ST_REFUSED;
      return;
    }
    const u64 slot = p.base + (u64)bpos;
    u64 victim = 0;
    u32 ok = 0;
    if (lane == 0) {
      victim = load_key(T.keys + slot);
      if (victim != LOCKED_KEY && victim != EMPTY_KEY &&
          atomicCAS(T.keys + slot, victim, LOCKED_KEY) == victim) {
        if (load_score(T.scores + slot) == best) {
          ok = 1;
        } else {
          store_key(T.keys + slot, victim);  // changed under us: undo, retry
        }
      }
    }
    if (!__shfl_sync(FULL_MASK, ok, 0)) continue;
    victim = __shfl_sync(FULL_MASK, victim, 0);
    // Each lane reads then overwrites the same words: no cross-lane hazard.
    warp_copy(ev_row, T.values + slot * T.row_width, T.row_width, lane);
    fill_slot(T, slot, p.digest, row, new_score, lane);
    if (mode == MODE_FIND_OR_INSERT) warp_copy(out_row, row, T.row_width, lane);
    if (lane == 0) {
      *ev_key = victim;
      *ev_score = best;
      *status = ST_EVICTED;
    }
    publish(T.keys + slot, stored, lane);
    return;
  }
}

// Shared body of the three inserting kernels (scores_in may be null).
__device__ __forceinline__ void upsert_kernel(
    const Table &T, const u64 *keys, const f32 *rows, const u64 *scores_in,
    u64 now, u64 n, u32 mode, u32 *status, u64 *ev_keys, u64 *ev_scores,
    f32 *ev_rows, f32 *out_rows) {
  const u64 w = warp_index();
  if (w >= n) return;
  const u32 lane = lane_id();
  const u64 rw = T.row_width;
  upsert_one(T, keys[w], rows + w * rw, scores_in != 0,
             scores_in != 0 ? scores_in[w] : 0ull, now, mode, lane, status + w,
             ev_keys != 0 ? ev_keys + w : 0, ev_scores != 0 ? ev_scores + w : 0,
             ev_rows != 0 ? ev_rows + w * rw : 0,
             out_rows != 0 ? out_rows + w * rw : 0);
}

// Returns resident rows in out_rows; inserts default rows for absent keys, evicting the
// minimum score of a full bucket (evicted ids, scores and rows go to ev_*).
extern "C" __global__ void find_or_insert(TABLE_PARAMS, const u64 *keys,
                                          const f32 *default_rows,
                                          const u64 *scores_in, u64 now, u64 n,
                                          u32 *status, u64 *ev_keys,
                                          u64 *ev_scores, f32 *ev_rows,
                                          f32 *out_rows) {
  upsert_kernel(TABLE_ARGS, keys, default_rows, scores_in, now, n,
                MODE_FIND_OR_INSERT, status, ev_keys, ev_scores, ev_rows,
                out_rows);
}

// Overwrites or inserts into free slots; a full bucket refuses (never evicts).
extern "C" __global__ void insert_or_assign(TABLE_PARAMS, const u64 *keys,
                                            const f32 *rows,
                                            const u64 *scores_in, u64 now,
                                            u64 n, u32 *status) {
  upsert_kernel(TABLE_ARGS, keys, rows, scores_in, now, n, MODE_ASSIGN, status,
                0, 0, 0, 0);
}

// Overwrites or inserts, evicting the minimum score of a full bucket for write-back.
extern "C" __global__ void insert_and_evict(TABLE_PARAMS, const u64 *keys,
                                            const f32 *rows,
                                            const u64 *scores_in, u64 now,
                                            u64 n, u32 *status, u64 *ev_keys,
                                            u64 *ev_scores, f32 *ev_rows) {
  upsert_kernel(TABLE_ARGS, keys, rows, scores_in, now, n, MODE_EVICT, status,
                ev_keys, ev_scores, ev_rows, 0);
}

// Removes keys; status is ST_FOUND for removed keys, ST_MISSING otherwise.
extern "C" __global__ void erase(TABLE_PARAMS, const u64 *keys, u64 n,
                                 u32 *status) {
  const u64 w = warp_index();
  if (w >= n) return;
  const Table T = TABLE_ARGS;
  const u32 lane = lane_id();
  const u64 key = keys[w];
  const Place p = place_key(key, T.buckets);
  const u64 stored = p.reserved ? RESERVED_TAG : key;
  while (true) {
    const long long slot = warp_find_slot(T, p, key, lane);
    if (slot < 0) {
      if (lane == 0) status[w] = ST_MISSING;
      return;
    }
    u32 ok = 0;
    if (lane == 0) ok = atomicCAS(T.keys + slot, stored, LOCKED_KEY) == stored;
    if (!__shfl_sync(FULL_MASK, ok, 0)) continue;
    if (lane == 0) {
      T.digests[slot] = 0;
      T.scores[slot] = 0;
      status[w] = ST_FOUND;
    }
    publish(T.keys + slot, EMPTY_KEY, lane);
    return;
  }
}

// Copies the entry of `slot` to output position pos.
__device__ __forceinline__ void emit_entry(const Table &T, u64 slot, u64 stored,
                                           u64 pos, u64 *out_keys,
                                           u64 *out_scores, f32 *out_rows) {
  const u64 hashed = T.buckets * BUCKET_SLOTS;
  out_keys[pos] =
      slot >= hashed ? 0xFFFFFFFFFFFFFFFFull - (slot - hashed) : stored;
  out_scores[pos] = T.scores[slot];
  const f32 *src = T.values + slot * T.row_width;
  f32 *dst = out_rows + pos * T.row_width;
  for (u32 i = 0; i < T.row_width; ++i) dst[i] = src[i];
}

// Exports resident entries of slots [first, first + count) with score >= min_score.
// counter (one u64, zeroed by the caller) receives the number written; order is arbitrary.
extern "C" __global__ void export_range(TABLE_PARAMS, u64 first, u64 count,
                                        u64 min_score, u64 *counter,
                                        u64 *out_keys, u64 *out_scores,
                                        f32 *out_rows) {
  const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const Table T = TABLE_ARGS;
  const u64 slot = first + i;
  const u64 k = load_key(T.keys + slot);
  if (k == EMPTY_KEY || k == LOCKED_KEY || T.scores[slot] < min_score) return;
  const u64 pos = atomicAdd(counter, 1ull);
  emit_entry(T, slot, k, pos, out_keys, out_scores, out_rows);
}

// Removes and exports entries of slots [first, first + count) with score < below (TTL).
extern "C" __global__ void expire_range(TABLE_PARAMS, u64 first, u64 count,
                                        u64 below, u64 *counter, u64 *out_keys,
                                        u64 *out_scores, f32 *out_rows) {
  const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const Table T = TABLE_ARGS;
  const u64 slot = first + i;
  const u64 k = load_key(T.keys + slot);
  if (k == EMPTY_KEY || k == LOCKED_KEY || T.scores[slot] >= below) return;
  if (atomicCAS(T.keys + slot, k, LOCKED_KEY) != k) return;
  const u64 pos = atomicAdd(counter, 1ull);
  emit_entry(T, slot, k, pos, out_keys, out_scores, out_rows);
  T.digests[slot] = 0;
  T.scores[slot] = 0;
  __threadfence();
  store_key(T.keys + slot, EMPTY_KEY);
}
