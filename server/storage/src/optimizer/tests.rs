//! Optimizer tests: every rule against an independent f64 reference on random rows.

// The reference indexes parallel arrays, as the formulas do.
#![allow(clippy::needless_range_loop)]

use super::{OptimizerConfig, OptimizerError, OptimizerKind};

/// SplitMix64, a small deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `10^U(lo, hi)`.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f32 {
        10f64.powf(self.range(lo, hi)) as f32
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// A gradient coordinate: 5% zeros, otherwise random sign and magnitude 1e-3 .. 1e2.
    fn grad(&mut self) -> f32 {
        if self.below(20) == 0 {
            return 0.0;
        }
        let sign = if self.below(2) == 0 { -1.0 } else { 1.0 };
        sign * self.log_uniform(-3.0, 2.0)
    }
}

/// An f64 reference row, plus per-coordinate magnitude bounds used to scale the tolerance.
///
/// `w_mag` (and `s0_mag` for Adam's `m` / FTRL's `z`) is the sum of the absolute values of
/// every term that went into the value, so cancellation (a weight crossing 0) is measured
/// against the size of what cancelled, as f32 rounding error is.
#[derive(Clone)]
struct RefRow {
    w: Vec<f64>,
    s0: Vec<f64>,
    s1: Vec<f64>,
    step: u32,
    w_mag: Vec<f64>,
    s0_mag: Vec<f64>,
    s1_mag: Vec<f64>,
}

impl RefRow {
    fn new(w: &[f32], state: &[f32], step: u32) -> Self {
        let dim = w.len();
        let s = |k: usize| -> Vec<f64> {
            if state.len() >= (k + 1) * dim {
                state[k * dim..(k + 1) * dim]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect()
            } else {
                vec![0.0; dim]
            }
        };
        Self {
            w: w.iter().map(|&x| f64::from(x)).collect(),
            s0: s(0),
            s1: s(1),
            step,
            w_mag: w.iter().map(|&x| f64::from(x).abs()).collect(),
            s0_mag: s(0).iter().map(|x| x.abs()).collect(),
            s1_mag: s(1).iter().map(|x| x.abs()).collect(),
        }
    }
}

/// One step of `cfg` on `r`, written from the formulas, in f64.
fn ref_step(cfg: &OptimizerConfig, r: &mut RefRow, grad: &[f32]) {
    let dim = r.w.len();
    let (wd, cv, cn) = (
        f64::from(cfg.weight_decay),
        f64::from(cfg.clip_value),
        f64::from(cfg.clip_norm),
    );
    let mut gc: Vec<f64> = grad
        .iter()
        .map(|&g| {
            let g = f64::from(g);
            if cv > 0.0 {
                g.clamp(-cv, cv)
            } else {
                g
            }
        })
        .collect();
    if cn > 0.0 {
        let norm = gc.iter().map(|g| g * g).sum::<f64>().sqrt();
        if norm > cn {
            for g in &mut gc {
                *g *= cn / norm;
            }
        }
    }
    let ge: Vec<f64> = (0..dim).map(|i| gc[i] + wd * r.w[i]).collect();
    // The decay term's error is that of the weight, so it counts with the weight's magnitude.
    let gm: Vec<f64> = (0..dim).map(|i| gc[i].abs() + wd * r.w_mag[i]).collect();
    match cfg.kind {
        OptimizerKind::Sgd { lr } => {
            let lr = f64::from(lr);
            for i in 0..dim {
                r.w[i] -= lr * ge[i];
                r.w_mag[i] += lr * gm[i];
            }
        }
        OptimizerKind::Adagrad { lr, epsilon, .. } => {
            let (lr, eps) = (f64::from(lr), f64::from(epsilon));
            for i in 0..dim {
                r.s0[i] += ge[i] * ge[i];
                let d = r.s0[i].sqrt() + eps;
                r.w[i] -= lr * ge[i] / d;
                r.w_mag[i] += lr * gm[i] / d;
            }
        }
        OptimizerKind::Adam {
            lr,
            beta1,
            beta2,
            epsilon,
        } => {
            let (lr, b1, b2, eps) = (
                f64::from(lr),
                f64::from(beta1),
                f64::from(beta2),
                f64::from(epsilon),
            );
            r.step += 1;
            let t = f64::from(r.step);
            let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
            for i in 0..dim {
                r.s0[i] = b1 * r.s0[i] + (1.0 - b1) * ge[i];
                r.s0_mag[i] = b1 * r.s0_mag[i] + (1.0 - b1) * gm[i];
                r.s1[i] = b2 * r.s1[i] + (1.0 - b2) * ge[i] * ge[i];
                // d(g²) = 2 g dg.
                r.s1_mag[i] = b2 * r.s1_mag[i] + (1.0 - b2) * 2.0 * gm[i] * ge[i].abs();
                let sv = (r.s1[i] / bc2).sqrt();
                let d = sv + eps;
                let update = lr * (r.s0[i] / bc1) / d;
                r.w[i] -= update;
                // Errors of m, and of v through 1/(sqrt(v)+eps): |du| = |u| sqrt(v)/d dv/(2v).
                let v_rel = if r.s1[i] > 0.0 {
                    r.s1_mag[i] / (2.0 * r.s1[i])
                } else {
                    0.0
                };
                r.w_mag[i] += lr * (r.s0_mag[i] / bc1) / d + update.abs() * sv / d * v_rel;
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
            let (lr, p, l1, l2, beta) = (
                f64::from(lr),
                -f64::from(lr_power),
                f64::from(l1),
                f64::from(l2),
                f64::from(beta),
            );
            for i in 0..dim {
                let n_new = r.s1[i] + ge[i] * ge[i];
                let (pn, po) = (n_new.powf(p), r.s1[i].powf(p));
                let sigma = (pn - po) / lr;
                r.s0[i] += ge[i] - sigma * r.w[i];
                // sigma * w carries the error of w (and of the powers, relative to pn + po).
                r.s0_mag[i] += gm[i] + (pn + po) / lr * r.w_mag[i];
                r.s1[i] = n_new;
                let quadratic = pn / lr + 2.0 * (l2 + beta / (2.0 * lr));
                let z = r.s0[i];
                r.w[i] = if z.abs() <= l1 {
                    0.0
                } else {
                    (z.signum() * l1 - z) / quadratic
                };
                r.w_mag[i] = (r.s0_mag[i] + l1) / quadratic;
            }
        }
    }
}

/// `|a - b| <= 1e-5 * max(|b|, mag, tiny)`.
fn close(a: f32, b: f64, mag: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-5 * b.abs().max(mag).max(1e-30)
}

/// Asserts the f32 row (weights, state, step) matches the reference.
fn assert_matches(
    cfg: &OptimizerConfig,
    w: &[f32],
    state: &[f32],
    step: u32,
    r: &RefRow,
    ctx: &str,
) {
    let dim = w.len();
    for i in 0..dim {
        assert!(
            close(w[i], r.w[i], r.w_mag[i]),
            "{ctx}: w[{i}] = {} vs reference {} (mag {}), {cfg:?} state {:?} ref {} {} {}",
            w[i],
            r.w[i],
            r.w_mag[i],
            (state.get(i), state.get(dim + i)),
            r.s0[i],
            r.s1[i],
            r.s0_mag[i]
        );
    }
    let slots = cfg.state_slots();
    for i in 0..dim {
        if slots >= 1 {
            let mag = match cfg.kind {
                OptimizerKind::Adagrad { .. } => 0.0,
                _ => r.s0_mag[i],
            };
            assert!(
                close(state[i], r.s0[i], mag),
                "{ctx}: state0[{i}] = {} vs {} (mag {mag}), {cfg:?}",
                state[i],
                r.s0[i]
            );
        }
        if slots >= 2 {
            assert!(
                close(state[dim + i], r.s1[i], r.s1_mag[i]),
                "{ctx}: state1[{i}] = {} vs {}, {cfg:?}",
                state[dim + i],
                r.s1[i]
            );
        }
    }
    assert_eq!(step, r.step, "{ctx}: step");
}

/// Which rule a random configuration uses.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Sgd,
    Adagrad,
    Adam,
    /// FTRL with lr_power = -0.5 (the sqrt path).
    Ftrl,
    /// FTRL with another lr_power (the powf path).
    FtrlPower,
}

const ALL_RULES: [Rule; 5] = [
    Rule::Sgd,
    Rule::Adagrad,
    Rule::Adam,
    Rule::Ftrl,
    Rule::FtrlPower,
];

fn random_kind(rng: &mut Rng, rule: Rule) -> OptimizerKind {
    let lr = rng.log_uniform(-3.0, 0.0);
    match rule {
        Rule::Sgd => OptimizerKind::Sgd { lr },
        Rule::Adagrad => OptimizerKind::Adagrad {
            lr,
            initial_accumulator: rng.log_uniform(-2.0, 0.0),
            epsilon: rng.pick(&[0.0, 1e-10, 1e-7, 1e-3]),
        },
        Rule::Adam => OptimizerKind::Adam {
            lr,
            beta1: rng.pick(&[0.0, 0.5, 0.9, 0.99]),
            beta2: rng.pick(&[0.0, 0.9, 0.999, 0.9999]),
            epsilon: rng.log_uniform(-8.0, -3.0),
        },
        Rule::Ftrl | Rule::FtrlPower => OptimizerKind::Ftrl {
            lr,
            lr_power: match rule {
                Rule::Ftrl => -0.5,
                _ => rng.pick(&[0.0, -0.1, -0.3, -0.7, -1.0]),
            },
            l1: rng.pick(&[0.0, 1e-3, 0.1, 1.0]),
            l2: rng.pick(&[0.0, 1e-3, 0.1, 1.0]),
            beta: rng.pick(&[0.0, 0.5, 1.0]),
            initial_accumulator: rng.log_uniform(-2.0, 0.0),
        },
    }
}

/// Random rows, several steps each, of `rule` with options set by `options`, vs the reference.
fn check_rule(seed: u64, rule: Rule, options: fn(&mut Rng, &mut OptimizerConfig)) {
    let mut rng = Rng(seed);
    for trial in 0..60 {
        let mut cfg = OptimizerConfig::new(random_kind(&mut rng, rule));
        options(&mut rng, &mut cfg);
        cfg.validate().expect("random configs are valid");
        let dim = 1 + rng.below(300) as usize;
        let w_scale = rng.log_uniform(-2.0, 1.0);
        let mut w: Vec<f32> = (0..dim)
            .map(|_| rng.range(-1.0, 1.0) as f32 * w_scale)
            .collect();
        let mut state = vec![f32::NAN; cfg.state_slots() * dim];
        cfg.init_state(&mut state);
        let mut step = 0u32;
        let mut r = RefRow::new(&w, &state, step);
        let steps = 1 + rng.below(8);
        for s in 0..steps {
            let g_scale = rng.log_uniform(-2.0, 0.0);
            let grad: Vec<f32> = (0..dim).map(|_| rng.grad() * g_scale).collect();
            cfg.apply(&mut w, &mut state, &mut step, &grad);
            ref_step(&cfg, &mut r, &grad);
            let ctx = format!("{rule:?} trial {trial} step {s} dim {dim}");
            assert_matches(&cfg, &w, &state, step, &r, &ctx);
        }
    }
}

fn no_options(_: &mut Rng, _: &mut OptimizerConfig) {}

fn clip_value_option(rng: &mut Rng, cfg: &mut OptimizerConfig) {
    cfg.clip_value = rng.log_uniform(-3.0, 1.0);
}

fn clip_norm_option(rng: &mut Rng, cfg: &mut OptimizerConfig) {
    cfg.clip_norm = rng.log_uniform(-2.0, 2.0);
}

fn weight_decay_option(rng: &mut Rng, cfg: &mut OptimizerConfig) {
    cfg.weight_decay = rng.log_uniform(-3.0, 0.0);
}

fn all_options(rng: &mut Rng, cfg: &mut OptimizerConfig) {
    clip_value_option(rng, cfg);
    clip_norm_option(rng, cfg);
    weight_decay_option(rng, cfg);
}

#[test]
fn sgd_matches_f64_reference() {
    check_rule(1, Rule::Sgd, no_options);
}

#[test]
fn adagrad_matches_f64_reference() {
    check_rule(2, Rule::Adagrad, no_options);
}

#[test]
fn adam_matches_f64_reference() {
    check_rule(3, Rule::Adam, no_options);
}

#[test]
fn ftrl_matches_f64_reference() {
    check_rule(4, Rule::Ftrl, no_options);
}

#[test]
fn ftrl_general_lr_power_matches_f64_reference() {
    check_rule(5, Rule::FtrlPower, no_options);
}

#[test]
fn clip_value_matches_f64_reference() {
    for (k, rule) in ALL_RULES.into_iter().enumerate() {
        check_rule(100 + k as u64, rule, clip_value_option);
    }
}

#[test]
fn clip_norm_matches_f64_reference() {
    for (k, rule) in ALL_RULES.into_iter().enumerate() {
        check_rule(200 + k as u64, rule, clip_norm_option);
    }
}

#[test]
fn weight_decay_matches_f64_reference() {
    for (k, rule) in ALL_RULES.into_iter().enumerate() {
        check_rule(300 + k as u64, rule, weight_decay_option);
    }
}

#[test]
fn all_options_together_match_f64_reference() {
    for (k, rule) in ALL_RULES.into_iter().enumerate() {
        check_rule(400 + k as u64, rule, all_options);
    }
}

/// SGD with lr 1 moves a row by exactly its (preprocessed) gradient.
fn sgd_delta(cfg: OptimizerConfig, grad: &[f32]) -> Vec<f32> {
    let mut w = vec![0.0f32; grad.len()];
    let mut step = 0;
    cfg.apply(&mut w, &mut [], &mut step, grad);
    w.iter().map(|x| -x).collect()
}

#[test]
fn clip_value_bounds_each_coordinate() {
    let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 });
    cfg.clip_value = 0.5;
    let d = sgd_delta(cfg, &[3.0, -3.0, 0.25, -0.5, 0.0]);
    assert_eq!(d, vec![0.5, -0.5, 0.25, -0.5, 0.0]);
}

#[test]
fn clip_norm_scales_row_to_norm() {
    let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 });
    cfg.clip_norm = 1.0;
    // Norm 5 → scaled to 1; a norm below the bound is left alone.
    let d = sgd_delta(cfg, &[3.0, 4.0]);
    assert!(
        (d[0] - 0.6).abs() < 1e-6 && (d[1] - 0.8).abs() < 1e-6,
        "{d:?}"
    );
    assert_eq!(sgd_delta(cfg, &[0.3, 0.4]), vec![0.3, 0.4]);
    // After clip_value: [3, 4] → [2, 2], norm 2√2.
    cfg.clip_value = 2.0;
    let d = sgd_delta(cfg, &[3.0, 4.0]);
    let e = std::f32::consts::FRAC_1_SQRT_2;
    assert!((d[0] - e).abs() < 1e-6 && (d[1] - e).abs() < 1e-6, "{d:?}");
}

#[test]
fn clip_norm_survives_overflowing_squares() {
    let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 1.0 });
    cfg.clip_norm = 1.0;
    let grad: Vec<f32> = (0..100)
        .map(|i| if i % 2 == 0 { 1e30 } else { -1e30 })
        .collect();
    let d = sgd_delta(cfg, &grad);
    let norm = d.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    assert!(d.iter().all(|x| (x.abs() - 0.1).abs() < 1e-6), "{d:?}");
}

#[test]
fn weight_decay_adds_decayed_weight_to_gradient() {
    let mut cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.5 });
    cfg.weight_decay = 0.1;
    let mut w = vec![2.0f32, -4.0];
    cfg.apply(&mut w, &mut [], &mut 0, &[1.0, 0.0]);
    // g = [1 + 0.2, 0 - 0.4]; w -= 0.5 g.
    assert_eq!(w, vec![2.0 - 0.6, -4.0 + 0.2]);
}

#[test]
fn adagrad_epsilon_zero_is_w1_rule_bit_for_bit() {
    let (lr, acc0) = (0.05f32, 0.1f32);
    let cfg = OptimizerConfig::new(OptimizerKind::Adagrad {
        lr,
        initial_accumulator: acc0,
        epsilon: 0.0,
    });
    let mut rng = Rng(7);
    let dim = 64;
    let mut w: Vec<f32> = (0..dim).map(|_| rng.range(-0.01, 0.01) as f32).collect();
    let mut acc = vec![0.0; dim];
    cfg.init_state(&mut acc);
    let (mut w1, mut acc1) = (w.clone(), vec![acc0; dim]);
    for _ in 0..5 {
        let grad: Vec<f32> = (0..dim).map(|_| rng.range(-0.03, 0.03) as f32).collect();
        cfg.apply(&mut w, &mut acc, &mut 0, &grad);
        for j in 0..dim {
            acc1[j] += grad[j] * grad[j];
            w1[j] -= lr * grad[j] / acc1[j].sqrt();
        }
        assert_eq!(w, w1);
        assert_eq!(acc, acc1);
    }
}

#[test]
fn adam_bias_correction_uses_row_step() {
    let cfg = OptimizerConfig::new(OptimizerKind::Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    });
    let mut rng = Rng(11);
    let dim = 17;
    let w0: Vec<f32> = (0..dim).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    let mut state0 = vec![0.0f32; 2 * dim];
    for (i, s) in state0.iter_mut().enumerate() {
        // m in [-0.1, 0.1), v in [0, 0.01).
        *s = if i < dim {
            rng.range(-0.1, 0.1) as f32
        } else {
            rng.range(0.0, 0.01) as f32
        };
    }
    let grad: Vec<f32> = (0..dim).map(|_| rng.grad()).collect();
    // Two rows, equal but for their step counts.
    let (mut wa, mut sa, mut ta) = (w0.clone(), state0.clone(), 0u32);
    let (mut wb, mut sb, mut tb) = (w0.clone(), state0.clone(), 10u32);
    let (mut ra, mut rb) = (RefRow::new(&wa, &sa, ta), RefRow::new(&wb, &sb, tb));
    for k in 0..3 {
        cfg.apply(&mut wa, &mut sa, &mut ta, &grad);
        cfg.apply(&mut wb, &mut sb, &mut tb, &grad);
        ref_step(&cfg, &mut ra, &grad);
        ref_step(&cfg, &mut rb, &grad);
        assert_matches(&cfg, &wa, &sa, ta, &ra, "row a");
        assert_matches(&cfg, &wb, &sb, tb, &rb, "row b");
        assert_eq!((ta, tb), (k + 1, k + 11));
        // Moments agree (same inputs), weights do not (different bias correction).
        assert_eq!(sa, sb);
        assert_ne!(wa, wb);
    }
}

#[test]
fn adam_first_step_moves_each_weight_by_lr() {
    let lr = 0.01;
    let cfg = OptimizerConfig::new(OptimizerKind::Adam {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    });
    let grad = [1e-3f32, -5.0, 30.0, -0.2];
    let mut w = [0.0f32; 4];
    let mut state = [0.0f32; 8];
    let mut step = 0;
    cfg.apply(&mut w, &mut state, &mut step, &grad);
    for (x, g) in w.iter().zip(grad) {
        assert!((x + lr * g.signum()).abs() < 1e-6, "{w:?}");
    }
    assert_eq!(step, 1);
}

/// Initial weights, gradient, l1, l2, steps, expected weights.
type FtrlCase = ([f32; 2], [f32; 2], f32, f32, usize, [f32; 2]);

#[test]
fn ftrl_matches_tensorflow_test_values() {
    // tensorflow/python/training/ftrl_test.py: 3 steps without regularization from 0, and
    // 10 steps with L1 (and L2) from [1, 2] / [4, 3]; lr 3, initial accumulator 0.1.
    let run = |w0: [f32; 2], g: [f32; 2], l1: f32, l2: f32, steps: usize| {
        let cfg = OptimizerConfig::new(OptimizerKind::Ftrl {
            lr: 3.0,
            lr_power: -0.5,
            l1,
            l2,
            beta: 0.0,
            initial_accumulator: 0.1,
        });
        let mut w = w0;
        let mut state = [0.0f32; 4];
        cfg.init_state(&mut state);
        for _ in 0..steps {
            cfg.apply(&mut w, &mut state, &mut 0, &g);
        }
        w
    };
    let cases: [FtrlCase; 6] = [
        (
            [0.0, 0.0],
            [0.1, 0.2],
            0.0,
            0.0,
            3,
            [-2.602_609_6, -4.296_985],
        ),
        (
            [0.0, 0.0],
            [0.01, 0.02],
            0.0,
            0.0,
            3,
            [-0.284_320_83, -0.566_948_95],
        ),
        (
            [1.0, 2.0],
            [0.1, 0.2],
            0.001,
            0.0,
            10,
            [-7.667_187_7, -10.912_737],
        ),
        (
            [4.0, 3.0],
            [0.01, 0.02],
            0.001,
            0.0,
            10,
            [-0.934_607_27, -1.861_472_6],
        ),
        (
            [1.0, 2.0],
            [0.1, 0.2],
            0.001,
            2.0,
            10,
            [-0.240_599_35, -0.468_293_52],
        ),
        (
            [4.0, 3.0],
            [0.01, 0.02],
            0.001,
            2.0,
            10,
            [-0.024_061_47, -0.048_305_09],
        ),
    ];
    for (w0, g, l1, l2, steps, want) in cases {
        let got = run(w0, g, l1, l2, steps);
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{got:?} vs {want:?}");
        }
    }
}

#[test]
fn ftrl_l1_zeroes_small_weights() {
    let cfg = OptimizerConfig::new(OptimizerKind::Ftrl {
        lr: 0.1,
        lr_power: -0.5,
        l1: 1.0,
        l2: 0.0,
        beta: 1.0,
        initial_accumulator: 0.1,
    });
    let mut w = [0.5f32, -0.5, 0.0];
    let mut state = [0.0f32; 6];
    cfg.init_state(&mut state);
    cfg.apply(&mut w, &mut state, &mut 0, &[0.3, -0.2, 5.0]);
    assert_eq!(&w[..2], &[0.0, 0.0]);
    assert!(w[2] < 0.0);
}

#[test]
fn summed_duplicates_differ_from_two_steps_adagrad() {
    // The contract: the storage layer sums the gradients of duplicate ids of one push and
    // applies one step; that is not the same as two steps (the accumulator sees (g1+g2)²,
    // not g1² + g2²).
    let cfg = OptimizerConfig::new(OptimizerKind::Adagrad {
        lr: 0.05,
        initial_accumulator: 0.1,
        epsilon: 0.0,
    });
    let (g1, g2) = ([0.3f32, -0.1], [0.2f32, 0.4]);
    let summed: Vec<f32> = g1.iter().zip(&g2).map(|(a, b)| a + b).collect();
    let w0 = [0.01f32, -0.02];

    let (mut wa, mut acc_a) = (w0, [0.0f32; 2]);
    cfg.init_state(&mut acc_a);
    cfg.apply(&mut wa, &mut acc_a, &mut 0, &summed);

    let (mut wb, mut acc_b) = (w0, [0.0f32; 2]);
    cfg.init_state(&mut acc_b);
    cfg.apply(&mut wb, &mut acc_b, &mut 0, &g1);
    cfg.apply(&mut wb, &mut acc_b, &mut 0, &g2);

    // One step with the sum: acc = 0.1 + 0.5² = 0.35 in coordinate 0.
    assert!((acc_a[0] - 0.35).abs() < 1e-6);
    assert!((acc_b[0] - (0.1 + 0.09 + 0.04)).abs() < 1e-6);
    assert!((wa[0] - (0.01 - 0.05 * 0.5 / 0.35f32.sqrt())).abs() < 1e-6);
    assert_ne!(wa, wb);
    assert_ne!(acc_a, acc_b);
}

#[test]
fn state_slots_and_init_state() {
    let kinds = [
        (OptimizerKind::Sgd { lr: 0.1 }, 0),
        (
            OptimizerKind::Adagrad {
                lr: 0.1,
                initial_accumulator: 0.1,
                epsilon: 0.0,
            },
            1,
        ),
        (
            OptimizerKind::Adam {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            2,
        ),
        (
            OptimizerKind::Ftrl {
                lr: 0.1,
                lr_power: -0.5,
                l1: 0.0,
                l2: 0.0,
                beta: 0.0,
                initial_accumulator: 0.25,
            },
            2,
        ),
    ];
    let dim = 3;
    for (kind, slots) in kinds {
        let cfg = OptimizerConfig::new(kind);
        assert_eq!(cfg.state_slots(), slots, "{kind:?}");
        let mut state = vec![f32::NAN; slots * dim];
        cfg.init_state(&mut state);
        let want: Vec<f32> = match kind {
            OptimizerKind::Adagrad { .. } => vec![0.1; 3],
            OptimizerKind::Ftrl { .. } => vec![0.0, 0.0, 0.0, 0.25, 0.25, 0.25],
            _ => vec![0.0; slots * dim],
        };
        assert_eq!(state, want, "{kind:?}");
    }
}

#[test]
#[should_panic(expected = "gradient length")]
fn apply_rejects_gradient_of_wrong_length() {
    let cfg = OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.1 });
    cfg.apply(&mut [0.0; 3], &mut [], &mut 0, &[1.0; 2]);
}

fn adam(lr: f32, beta1: f32, beta2: f32, epsilon: f32) -> OptimizerConfig {
    OptimizerConfig::new(OptimizerKind::Adam {
        lr,
        beta1,
        beta2,
        epsilon,
    })
}

fn ftrl(lr_power: f32, l1: f32, l2: f32, beta: f32, initial_accumulator: f32) -> OptimizerConfig {
    OptimizerConfig::new(OptimizerKind::Ftrl {
        lr: 0.1,
        lr_power,
        l1,
        l2,
        beta,
        initial_accumulator,
    })
}

fn adagrad(lr: f32, initial_accumulator: f32, epsilon: f32) -> OptimizerConfig {
    OptimizerConfig::new(OptimizerKind::Adagrad {
        lr,
        initial_accumulator,
        epsilon,
    })
}

#[test]
fn validate_accepts_sane_configs() {
    let mut with_options = adagrad(0.05, 0.1, 0.0);
    with_options.weight_decay = 1e-4;
    with_options.clip_value = 1.0;
    with_options.clip_norm = 10.0;
    let ok = [
        OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.1 }),
        adagrad(0.05, 0.1, 0.0),
        adagrad(0.05, 0.0, 1e-8),
        adam(1e-3, 0.9, 0.999, 1e-8),
        adam(1e-3, 0.0, 0.0, 1e-8),
        ftrl(-0.5, 0.0, 0.0, 0.0, 0.1),
        ftrl(0.0, 1.0, 1.0, 1.0, 0.0),
        ftrl(-0.5, 0.0, 0.0, 1.0, 0.0),
        with_options,
    ];
    for cfg in ok {
        assert_eq!(cfg.validate(), Ok(()), "{cfg:?}");
    }
}

#[test]
fn validate_rejects_bad_hyperparameters() {
    let mut neg_decay = adagrad(0.05, 0.1, 0.0);
    neg_decay.weight_decay = -1.0;
    let mut nan_clip = adagrad(0.05, 0.1, 0.0);
    nan_clip.clip_norm = f32::NAN;
    let mut neg_clip = adagrad(0.05, 0.1, 0.0);
    neg_clip.clip_value = -0.5;
    let bad: [(OptimizerConfig, &str); 17] = [
        (
            OptimizerConfig::new(OptimizerKind::Sgd { lr: f32::NAN }),
            "lr",
        ),
        (OptimizerConfig::new(OptimizerKind::Sgd { lr: -0.1 }), "lr"),
        (OptimizerConfig::new(OptimizerKind::Sgd { lr: 0.0 }), "lr"),
        (
            OptimizerConfig::new(OptimizerKind::Sgd { lr: f32::INFINITY }),
            "lr",
        ),
        (adagrad(0.05, 0.0, 0.0), "initial_accumulator"),
        (adagrad(0.05, 0.1, -1e-8), "epsilon"),
        (adam(1e-3, 1.0, 0.999, 1e-8), "beta1"),
        (adam(1e-3, -0.1, 0.999, 1e-8), "beta1"),
        (adam(1e-3, 0.9, 1.5, 1e-8), "beta2"),
        (adam(1e-3, 0.9, 0.999, 0.0), "epsilon"),
        (ftrl(0.5, 0.0, 0.0, 0.0, 0.1), "lr_power"),
        (ftrl(-0.5, -1.0, 0.0, 0.0, 0.1), "l1"),
        (ftrl(-0.5, 0.0, -1.0, 0.0, 0.1), "l2"),
        (ftrl(-0.5, 0.0, 0.0, 0.0, 0.0), "initial_accumulator"),
        (neg_decay, "weight_decay"),
        (nan_clip, "clip_norm"),
        (neg_clip, "clip_value"),
    ];
    for (cfg, name) in bad {
        let err = cfg.validate().expect_err("must be rejected");
        let got = match &err {
            OptimizerError::NotFinite { name, .. } | OptimizerError::OutOfRange { name, .. } => {
                *name
            }
        };
        assert_eq!(got, name, "{cfg:?}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn validate_messages_are_clear() {
    let err = adam(1e-3, 1.0, 0.999, 1e-8)
        .validate()
        .expect_err("beta1 = 1");
    assert_eq!(
        err.to_string(),
        "adam optimizer: `beta1` = 1 is out of range: it must be in [0, 1)"
    );
    let err = OptimizerConfig::new(OptimizerKind::Sgd { lr: f32::NAN })
        .validate()
        .expect_err("NaN lr");
    assert_eq!(
        err.to_string(),
        "sgd optimizer: `lr` must be finite, got NaN"
    );
}
