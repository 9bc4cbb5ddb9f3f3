//! FTRL-Proximal with TensorFlow `ApplyFtrl` / Keras semantics; state: `z` (linear), `n` (accumulator).

use super::clip::GradMap;

/// Hyperparameters of one FTRL step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FtrlParams {
    /// Learning rate (alpha).
    pub(crate) lr: f32,
    /// Learning-rate power (≤ 0).
    pub(crate) lr_power: f32,
    /// L1 strength.
    pub(crate) l1: f32,
    /// L2 strength.
    pub(crate) l2: f32,
    /// Paper's beta, folded into L2 as `beta / (2 * lr)`.
    pub(crate) beta: f32,
}

/// One FTRL step on a row: `z` and `n` are its linear term and squared-gradient accumulator.
#[inline(always)]
pub(crate) fn step<P: GradMap>(
    pre: P,
    p: FtrlParams,
    weights: &mut [f32],
    z: &mut [f32],
    n: &mut [f32],
    grad: &[f32],
) {
    let inv_lr = 1.0 / p.lr;
    // 2 * (l2 + beta / (2 * lr)).
    let two_l2 = 2.0 * p.l2 + p.beta * inv_lr;
    let l1 = p.l1;
    let rows = weights
        .iter_mut()
        .zip(z.iter_mut())
        .zip(n.iter_mut())
        .zip(grad);
    if p.lr_power == -0.5 {
        for (((w, z), n), &g) in rows {
            let g = pre.map(g, *w);
            let n_new = *n + g * g;
            let s_new = n_new.sqrt();
            let sigma = (s_new - n.sqrt()) * inv_lr;
            *z += g - sigma * *w;
            *n = n_new;
            let quadratic = s_new * inv_lr + two_l2;
            // clamp(z, ±l1) - z is 0 when |z| <= l1 and sign(z)*l1 - z otherwise.
            *w = (z.max(-l1).min(l1) - *z) / quadratic;
        }
    } else {
        let power = -p.lr_power;
        for (((w, z), n), &g) in rows {
            let g = pre.map(g, *w);
            let n_new = *n + g * g;
            let p_new = n_new.powf(power);
            let sigma = (p_new - n.powf(power)) * inv_lr;
            *z += g - sigma * *w;
            *n = n_new;
            let quadratic = p_new * inv_lr + two_l2;
            *w = (z.max(-l1).min(l1) - *z) / quadratic;
        }
    }
}
