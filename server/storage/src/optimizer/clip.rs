//! Gradient preprocessing: per-coordinate clipping, row-norm clipping and weight decay.
//!
//! Nothing here allocates: the row's norm scale is computed first, then every rule maps
//! each gradient coordinate through a [`GradMap`] inside its own loop.

use super::OptimizerConfig;

/// Maps one raw gradient coordinate (and the current weight) to the gradient the rule sees.
pub(crate) trait GradMap: Copy {
    /// The effective gradient of coordinate `g` whose weight is `w`.
    fn map(self, g: f32, w: f32) -> f32;
}

/// No clipping and no decay: the gradient as given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw;

impl GradMap for Raw {
    #[inline(always)]
    fn map(self, g: f32, _w: f32) -> f32 {
        g
    }
}

/// `clamp(g, ±bound) * scale + weight_decay * w`, with `bound = ∞` when value clipping is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Adjusted {
    /// Per-coordinate bound (`f32::INFINITY`: off).
    bound: f32,
    /// Row-norm scale factor, in `(0, 1]`.
    scale: f32,
    /// L2 weight decay.
    weight_decay: f32,
}

impl Adjusted {
    /// The preprocessing of `cfg` for the row gradient `grad` (computes its norm scale).
    #[inline]
    pub(crate) fn new(cfg: &OptimizerConfig, grad: &[f32]) -> Self {
        let bound = if cfg.clip_value > 0.0 {
            cfg.clip_value
        } else {
            f32::INFINITY
        };
        let scale = if cfg.clip_norm > 0.0 {
            norm_scale(grad, bound, cfg.clip_norm)
        } else {
            1.0
        };
        Self {
            bound,
            scale,
            weight_decay: cfg.weight_decay,
        }
    }
}

impl GradMap for Adjusted {
    #[inline(always)]
    fn map(self, g: f32, w: f32) -> f32 {
        // max/min rather than clamp: no assertion in the loop, and it vectorizes.
        g.max(-self.bound).min(self.bound) * self.scale + self.weight_decay * w
    }
}

/// Lanes of the partial sums in [`sum_sq_clamped`], so that the reduction vectorizes.
const LANES: usize = 8;

/// `Σ clamp(g, ±bound)²`, in f32 with `LANES` partial sums.
#[inline]
fn sum_sq_clamped(grad: &[f32], bound: f32, divisor: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = grad.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &g) in acc.iter_mut().zip(chunk) {
            let c = g.max(-bound).min(bound) / divisor;
            *a += c * c;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for &g in tail {
        let c = g.max(-bound).min(bound) / divisor;
        sum += c * c;
    }
    sum
}

/// The factor that scales the value-clipped row gradient to L2 norm at most `clip_norm`.
#[inline]
pub(crate) fn norm_scale(grad: &[f32], bound: f32, clip_norm: f32) -> f32 {
    let mut sum = sum_sq_clamped(grad, bound, 1.0);
    let mut unit = 1.0f32;
    if !sum.is_finite() {
        // Squares overflowed (|g| ≳ 1.8e19): measure relative to the largest coordinate.
        unit = grad
            .iter()
            .fold(0.0f32, |m, &g| m.max(g.max(-bound).min(bound).abs()));
        if !unit.is_finite() || unit == 0.0 {
            return 1.0;
        }
        sum = sum_sq_clamped(grad, bound, unit);
    }
    let norm = sum.sqrt() * unit;
    if norm > clip_norm {
        clip_norm / norm
    } else {
        1.0
    }
}
