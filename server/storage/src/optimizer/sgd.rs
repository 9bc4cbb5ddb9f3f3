//! Plain SGD: `w -= lr * g`.

use super::clip::GradMap;

/// One SGD step on a row.
#[inline(always)]
pub(crate) fn step<P: GradMap>(pre: P, lr: f32, weights: &mut [f32], grad: &[f32]) {
    for (w, &g) in weights.iter_mut().zip(grad) {
        let g = pre.map(g, *w);
        *w -= lr * g;
    }
}
