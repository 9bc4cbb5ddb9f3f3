// Fused find + optimizer kernels: one warp per key finds its row and applies the gradient in
// place; missing keys get ST_MISSING (the host tier applies those). Mirrors fused.rs exactly:
// clip_value, clip_norm (lane partials + xor butterfly), weight decay, rule, metadata.
// Compiled with --fmad=false and IEEE div/sqrt so SGD and Adagrad are bit-exact.

#define OPT_SGD 0
#define OPT_ADAGRAD 1
#define OPT_ADAM 2
#define OPT_FTRL 3

// [lr, a, b, c, d, -, weight_decay, clip_value, clip_norm, -]; see fused.rs `pack`.
struct OptParams {
  f32 p[10];
};

__device__ __forceinline__ f32 ftrl_pow(f32 n, f32 lr_power) {
  return lr_power == -0.5f ? sqrtf(n) : powf(n, -lr_power);
}

__device__ __forceinline__ f32 preprocess(f32 g, const OptParams &P) {
  const f32 cv = P.p[7];
  if (cv > 0.0f) g = fminf(fmaxf(g, -cv), cv);
  return g;
}

template <int KIND>
__device__ void apply_one(const Table &T, u64 key, const f32 *grad, u32 dim,
                          u32 state_slots, const OptParams &P, u64 now,
                          u32 now_secs, u32 lane, u32 *status) {
  const Place p = place_key(key, T.buckets);
  const long long slot = warp_find_slot(T, p, key, lane);
  if (slot < 0) {
    if (lane == 0) *status = ST_MISSING;
    return;
  }
  f32 *row = T.values + (u64)slot * T.row_width;
  const u32 meta = dim * (1 + state_slots);
  const u32 step = __float_as_uint(row[meta + META_STEP]) + 1u;

  // Clip-norm scale from the clipped gradient's L2 norm.
  f32 scale = 1.0f;
  const f32 clip_norm = P.p[8];
  if (clip_norm > 0.0f) {
    f32 s = 0.0f;
    for (u32 i = lane; i < dim; i += WARP_SIZE) {
      const f32 g = preprocess(grad[i], P);
      s = s + g * g;
    }
#pragma unroll
    for (int off = WARP_SIZE / 2; off > 0; off >>= 1) {
      s = s + __shfl_xor_sync(FULL_MASK, s, off);
    }
    const f32 norm = sqrtf(s);
    if (norm > clip_norm) scale = clip_norm / norm;
  }
  const bool do_scale = clip_norm > 0.0f && scale != 1.0f;
  const f32 wd = P.p[6];
  const f32 lr = P.p[0];

  f32 *w = row;
  f32 *s1 = row + dim;
  f32 *s2 = row + 2 * dim;
  for (u32 i = lane; i < dim; i += WARP_SIZE) {
    f32 g = preprocess(grad[i], P);
    if (do_scale) g = g * scale;
    if (wd != 0.0f) g = g + wd * w[i];
    if (KIND == OPT_SGD) {
      w[i] = w[i] - lr * g;
    } else if (KIND == OPT_ADAGRAD) {
      const f32 eps = P.p[1];
      const f32 acc = s1[i] + g * g;
      s1[i] = acc;
      w[i] = w[i] - lr * g / (sqrtf(acc) + eps);
    } else if (KIND == OPT_ADAM) {
      const f32 b1 = P.p[1], b2 = P.p[2], eps = P.p[3];
      const f32 t = (f32)step;
      const f32 c1 = 1.0f - powf(b1, t);
      const f32 c2 = 1.0f - powf(b2, t);
      const f32 m = b1 * s1[i] + (1.0f - b1) * g;
      const f32 v = b2 * s2[i] + (1.0f - b2) * g * g;
      s1[i] = m;
      s2[i] = v;
      w[i] = w[i] - lr * (m / c1) / (sqrtf(v / c2) + eps);
    } else {
      const f32 lr_power = P.p[1], l1 = P.p[2], l2 = P.p[3], beta = P.p[4];
      const f32 l2b = l2 + beta / (2.0f * lr);
      const f32 n = s2[i];
      const f32 n_new = n + g * g;
      const f32 p_new = ftrl_pow(n_new, lr_power);
      const f32 sigma = (p_new - ftrl_pow(n, lr_power)) / lr;
      const f32 z = s1[i] + g - sigma * w[i];
      s1[i] = z;
      s2[i] = n_new;
      const f32 quad = p_new / lr + 2.0f * l2b;
      w[i] = fabsf(z) <= l1 ? 0.0f : ((z > 0.0f ? l1 : -l1) - z) / quad;
    }
  }
  __syncwarp();
  if (lane == 0) {
    row[meta + META_STEP] = __uint_as_float(step);
    row[meta + META_LAST_UPDATE] = __uint_as_float(now_secs);
    T.scores[slot] = touch_score(T.policy, T.scores[slot], now);
    *status = ST_FOUND;
  }
}

#define APPLY_KERNEL(NAME, KIND)                                              \
  extern "C" __global__ void NAME(TABLE_PARAMS, const u64 *keys,              \
                                  const f32 *grads, u64 n, u32 dim,           \
                                  u32 state_slots, OptParams P, u64 now,      \
                                  u32 now_secs, u32 *status) {                \
    const u64 w = warp_index();                                               \
    if (w >= n) return;                                                       \
    apply_one<KIND>(TABLE_ARGS, keys[w], grads + w * dim, dim, state_slots,   \
                    P, now, now_secs, lane_id(), status + w);                 \
  }

APPLY_KERNEL(apply_sgd, OPT_SGD)
APPLY_KERNEL(apply_adagrad, OPT_ADAGRAD)
APPLY_KERNEL(apply_adam, OPT_ADAM)
APPLY_KERNEL(apply_ftrl, OPT_FTRL)
