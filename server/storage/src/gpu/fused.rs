//! The per-row optimizer update of the fused `find + apply` kernels, mirrored on the CPU.
//!
//! Order per row (same in `kernels/optim.cu`): clip each coordinate to `clip_value`, scale the
//! row to L2 norm `clip_norm` (norm summed as 32 lane partials, then an xor butterfly, as a warp
//! does), add `weight_decay * w`, apply the rule, then set the metadata words `step += 1` and
//! `last_update_secs = now_secs`. Kernels are compiled with `--fmad=false` and IEEE division and
//! square root, so SGD and Adagrad match this code bit for bit; Adam and FTRL use `powf` and
//! agree to about 1e-6 relative.

use crate::optimizer::{OptimizerConfig, OptimizerKind};

use super::layout::{META_LAST_UPDATE, META_STEP};

/// Number of f32 words of [`OptParams`].
pub const OPT_PARAMS: usize = 10;

/// Optimizer parameters packed for a kernel argument (`struct OptParams` in `optim.cu`).
///
/// `[lr, a, b, c, d, reserved, weight_decay, clip_value, clip_norm, reserved]` with
/// Adagrad `a = epsilon`; Adam `a, b, c = beta1, beta2, epsilon`; FTRL
/// `a, b, c, d = lr_power, l1, l2, beta`.
pub type OptParams = [f32; OPT_PARAMS];

/// The fused kernel that applies `kind`.
pub fn kernel_name(kind: &OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Sgd { .. } => "apply_sgd",
        OptimizerKind::Adagrad { .. } => "apply_adagrad",
        OptimizerKind::Adam { .. } => "apply_adam",
        OptimizerKind::Ftrl { .. } => "apply_ftrl",
    }
}

/// Packs an optimizer configuration for the kernels.
pub fn pack(cfg: &OptimizerConfig) -> OptParams {
    let mut p = [0.0f32; OPT_PARAMS];
    match cfg.kind {
        OptimizerKind::Sgd { lr } => p[0] = lr,
        OptimizerKind::Adagrad { lr, epsilon, .. } => {
            p[0] = lr;
            p[1] = epsilon;
        }
        OptimizerKind::Adam {
            lr,
            beta1,
            beta2,
            epsilon,
        } => {
            p[..4].copy_from_slice(&[lr, beta1, beta2, epsilon]);
        }
        OptimizerKind::Ftrl {
            lr,
            lr_power,
            l1,
            l2,
            beta,
            ..
        } => {
            p[..5].copy_from_slice(&[lr, lr_power, l1, l2, beta]);
        }
    }
    p[6] = cfg.weight_decay;
    p[7] = cfg.clip_value;
    p[8] = cfg.clip_norm;
    p
}

/// Sum of squares as a 32-lane warp computes it: strided lane partials, then an xor butterfly.
pub fn warp_sum_squares(g: &[f32]) -> f32 {
    let mut part = [0.0f32; 32];
    for (i, x) in g.iter().enumerate() {
        part[i % 32] += x * x;
    }
    let mut off = 16;
    while off > 0 {
        let prev = part;
        for (l, p) in part.iter_mut().enumerate() {
            *p = prev[l] + prev[l ^ off];
        }
        off /= 2;
    }
    part[0]
}

/// `n^(-lr_power)`, with TensorFlow's exact `sqrt` for the usual `lr_power = -0.5`.
#[inline]
pub fn ftrl_pow(n: f32, lr_power: f32) -> f32 {
    if lr_power == -0.5 {
        n.sqrt()
    } else {
        n.powf(-lr_power)
    }
}

/// Applies one gradient to a row (`dim` weights, state, metadata) in place.
pub fn apply_row(cfg: &OptimizerConfig, row: &mut [f32], grad: &[f32], now_secs: u32) {
    let dim = grad.len();
    let mut g: Vec<f32> = grad.to_vec();
    if cfg.clip_value > 0.0 {
        for x in g.iter_mut() {
            *x = x.clamp(-cfg.clip_value, cfg.clip_value);
        }
    }
    if cfg.clip_norm > 0.0 {
        let norm = warp_sum_squares(&g).sqrt();
        if norm > cfg.clip_norm {
            let scale = cfg.clip_norm / norm;
            for x in g.iter_mut() {
                *x *= scale;
            }
        }
    }
    if cfg.weight_decay != 0.0 {
        for (x, w) in g.iter_mut().zip(row.iter()) {
            *x += cfg.weight_decay * *w;
        }
    }
    let meta = dim * (1 + super::layout::state_slots(&cfg.kind));
    let step = row[meta + META_STEP].to_bits().wrapping_add(1);
    let (w, state) = row.split_at_mut(dim);
    match cfg.kind {
        OptimizerKind::Sgd { lr } => {
            for (w, g) in w.iter_mut().zip(&g) {
                *w -= lr * g;
            }
        }
        OptimizerKind::Adagrad { lr, epsilon, .. } => {
            for i in 0..dim {
                let acc = state[i] + g[i] * g[i];
                state[i] = acc;
                w[i] -= lr * g[i] / (acc.sqrt() + epsilon);
            }
        }
        OptimizerKind::Adam {
            lr,
            beta1,
            beta2,
            epsilon,
        } => {
            let t = step as f32;
            let c1 = 1.0 - beta1.powf(t);
            let c2 = 1.0 - beta2.powf(t);
            let (m, rest) = state.split_at_mut(dim);
            for i in 0..dim {
                let mi = beta1 * m[i] + (1.0 - beta1) * g[i];
                let vi = beta2 * rest[i] + (1.0 - beta2) * g[i] * g[i];
                m[i] = mi;
                rest[i] = vi;
                w[i] -= lr * (mi / c1) / ((vi / c2).sqrt() + epsilon);
            }
        }
        OptimizerKind::Ftrl {
            lr,
            lr_power,
            l1,
            l2,
            beta,
            ..
        } => {
            let (z, rest) = state.split_at_mut(dim);
            let l2b = l2 + beta / (2.0 * lr);
            for i in 0..dim {
                let n = rest[i];
                let n_new = n + g[i] * g[i];
                let p_new = ftrl_pow(n_new, lr_power);
                let sigma = (p_new - ftrl_pow(n, lr_power)) / lr;
                let zi = z[i] + g[i] - sigma * w[i];
                z[i] = zi;
                rest[i] = n_new;
                let quad = p_new / lr + 2.0 * l2b;
                w[i] = if zi.abs() <= l1 {
                    0.0
                } else {
                    (zi.signum() * l1 - zi) / quad
                };
            }
        }
    }
    row[meta + META_STEP] = f32::from_bits(step);
    row[meta + META_LAST_UPDATE] = f32::from_bits(now_secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_and_adagrad_rules() {
        let cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.5 });
        let mut row = vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0];
        apply_row(&cfg, &mut row, &[2.0, -2.0], 77);
        assert_eq!(&row[..2], &[0.0, 3.0]);
        assert_eq!(row[2].to_bits(), 1);
        assert_eq!(row[3].to_bits(), 77);

        let cfg = OptimizerConfig::new(OptimizerKind::Adagrad {
            lr: 1.0,
            initial_accumulator: 0.0,
            epsilon: 0.0,
        });
        let mut row = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        apply_row(&cfg, &mut row, &[3.0], 1);
        assert_eq!(row[0], 0.0); // 1 - 3/sqrt(9)
        assert_eq!(row[1], 9.0);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let cfg = OptimizerConfig::new(OptimizerKind::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 0.0,
        });
        let mut row = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        apply_row(&cfg, &mut row, &[0.3], 0);
        assert!((row[0] - 0.9).abs() < 1e-6, "{}", row[0]);
    }

    #[test]
    fn ftrl_l1_zeroes_small_z() {
        let cfg = OptimizerConfig::new(OptimizerKind::Ftrl {
            lr: 0.1,
            lr_power: -0.5,
            l1: 10.0,
            l2: 0.0,
            beta: 0.0,
            initial_accumulator: 0.1,
        });
        let mut row = vec![0.5, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0];
        apply_row(&cfg, &mut row, &[1.0], 0);
        assert_eq!(row[0], 0.0);
        assert!((row[2] - 1.1).abs() < 1e-6);
    }

    #[test]
    fn clip_norm_scales_row() {
        let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 });
        cfg.clip_norm = 1.0;
        let mut row = vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        apply_row(&cfg, &mut row, &[3.0, 4.0], 0);
        assert!((row[0] + 0.6).abs() < 1e-6 && (row[1] + 0.8).abs() < 1e-6);
    }
}
