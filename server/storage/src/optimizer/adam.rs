//! Lazy (sparse) Adam: moments per coordinate, bias correction from the row's own step count.

use super::clip::GradMap;

/// Hyperparameters of one Adam step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamParams {
    /// Learning rate.
    pub(crate) lr: f32,
    /// First-moment decay.
    pub(crate) beta1: f32,
    /// Second-moment decay.
    pub(crate) beta2: f32,
    /// Added to `sqrt(v_hat)`.
    pub(crate) epsilon: f32,
}

/// One Adam step on a row: `m`, `v` are its moments; `step` is incremented and used as `t`.
#[inline(always)]
pub(crate) fn step<P: GradMap>(
    pre: P,
    p: AdamParams,
    weights: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &mut u32,
    grad: &[f32],
) {
    let t = step.saturating_add(1);
    *step = t;
    // Per-row scalars in f64: `1 - beta^t` loses digits in f32 when beta^t is near 1.
    let exp = t.min(i32::MAX as u32) as i32;
    let bc1 = 1.0 - f64::from(p.beta1).powi(exp);
    let bc2 = 1.0 - f64::from(p.beta2).powi(exp);
    let step_size = (f64::from(p.lr) / bc1) as f32;
    let inv_bc2 = (1.0 / bc2) as f32;
    let (b1, b2, eps) = (p.beta1, p.beta2, p.epsilon);
    let (c1, c2) = (1.0 - b1, 1.0 - b2);
    for (((w, m), v), &g) in weights
        .iter_mut()
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(grad)
    {
        let g = pre.map(g, *w);
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * (g * g);
        *w -= step_size * *m / ((*v * inv_bc2).sqrt() + eps);
    }
}
