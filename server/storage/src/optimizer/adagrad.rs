//! Adagrad: `acc += g²; w -= lr * g / (sqrt(acc) + epsilon)`; state: one accumulator.

use super::clip::GradMap;

/// One Adagrad step on a row; `acc` is its accumulator (same length as `weights`).
#[inline(always)]
pub(crate) fn step<P: GradMap>(
    pre: P,
    lr: f32,
    epsilon: f32,
    weights: &mut [f32],
    acc: &mut [f32],
    grad: &[f32],
) {
    for ((w, a), &g) in weights.iter_mut().zip(acc.iter_mut()).zip(grad) {
        let g = pre.map(g, *w);
        *a += g * g;
        // With epsilon 0 this is bit for bit W1's `w -= lr * g / sqrt(acc)`.
        *w -= lr * g / (a.sqrt() + epsilon);
    }
}
