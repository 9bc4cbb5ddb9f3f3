//! Hyperparameter checks, run when a table is created.

use super::{OptimizerConfig, OptimizerError, OptimizerKind};

/// Checks one hyperparameter for one rule.
struct Checker {
    /// The rule's name, for messages.
    optimizer: &'static str,
}

impl Checker {
    /// Fails unless `value` is finite and `ok(value)`; `expected` describes the range.
    fn check(
        &self,
        name: &'static str,
        value: f32,
        expected: &'static str,
        ok: impl Fn(f32) -> bool,
    ) -> Result<(), OptimizerError> {
        if !value.is_finite() {
            return Err(OptimizerError::NotFinite {
                optimizer: self.optimizer,
                name,
                value,
            });
        }
        if !ok(value) {
            return Err(OptimizerError::OutOfRange {
                optimizer: self.optimizer,
                name,
                value,
                expected,
            });
        }
        Ok(())
    }

    /// `value` finite and > 0.
    fn positive(&self, name: &'static str, value: f32) -> Result<(), OptimizerError> {
        self.check(name, value, "> 0", |v| v > 0.0)
    }

    /// `value` finite and >= 0.
    fn non_negative(&self, name: &'static str, value: f32) -> Result<(), OptimizerError> {
        self.check(name, value, ">= 0", |v| v >= 0.0)
    }

    /// `value` finite and in `[0, 1)`.
    fn decay(&self, name: &'static str, value: f32) -> Result<(), OptimizerError> {
        self.check(name, value, "in [0, 1)", |v| (0.0..1.0).contains(&v))
    }
}

impl OptimizerKind {
    /// The rule's lower-case name (`sgd`, `adagrad`, `adam`, `ftrl`).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adagrad { .. } => "adagrad",
            OptimizerKind::Adam { .. } => "adam",
            OptimizerKind::Ftrl { .. } => "ftrl",
        }
    }
}

impl OptimizerConfig {
    /// Checks every hyperparameter is finite and in range, so that `apply` never divides by zero.
    ///
    /// Rules: `lr > 0`; weight decay and clips `>= 0`; Adagrad `epsilon >= 0` and
    /// `initial_accumulator > 0` (`>= 0` when `epsilon > 0`); Adam betas in `[0, 1)` and
    /// `epsilon > 0` (a coordinate whose gradients are all 0 would give 0/0); FTRL
    /// `lr_power <= 0`, `l1, l2, beta >= 0`, `initial_accumulator >= 0`, and `> 0` when
    /// `lr_power < 0` and `l2 + beta / (2 lr) == 0` (otherwise 0/0 on a zero gradient).
    pub fn validate(&self) -> Result<(), OptimizerError> {
        let c = Checker {
            optimizer: self.kind.name(),
        };
        match self.kind {
            OptimizerKind::Sgd { lr } => c.positive("lr", lr)?,
            OptimizerKind::Adagrad {
                lr,
                initial_accumulator,
                epsilon,
            } => {
                c.positive("lr", lr)?;
                c.non_negative("epsilon", epsilon)?;
                if epsilon > 0.0 {
                    c.non_negative("initial_accumulator", initial_accumulator)?;
                } else {
                    c.check(
                        "initial_accumulator",
                        initial_accumulator,
                        "> 0 when epsilon is 0",
                        |v| v > 0.0,
                    )?;
                }
            }
            OptimizerKind::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
            } => {
                c.positive("lr", lr)?;
                c.decay("beta1", beta1)?;
                c.decay("beta2", beta2)?;
                c.positive("epsilon", epsilon)?;
            }
            OptimizerKind::Ftrl {
                lr,
                lr_power,
                l1,
                l2,
                beta,
                initial_accumulator,
            } => {
                c.positive("lr", lr)?;
                c.check("lr_power", lr_power, "<= 0", |v| v <= 0.0)?;
                c.non_negative("l1", l1)?;
                c.non_negative("l2", l2)?;
                c.non_negative("beta", beta)?;
                let l2_eff = l2 + beta / (2.0 * lr);
                if lr_power < 0.0 && l2_eff == 0.0 {
                    c.check(
                        "initial_accumulator",
                        initial_accumulator,
                        "> 0 when lr_power < 0 and l2 = beta = 0",
                        |v| v > 0.0,
                    )?;
                } else {
                    c.non_negative("initial_accumulator", initial_accumulator)?;
                }
            }
        }
        c.non_negative("weight_decay", self.weight_decay)?;
        c.non_negative("clip_value", self.clip_value)?;
        c.non_negative("clip_norm", self.clip_norm)?;
        Ok(())
    }
}
