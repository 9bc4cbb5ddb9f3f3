//! Table and dense-tensor specs from the keyword arguments of `Client.create_table` and
//! `Client.create_dense`, which mirror the flags of `strata table create`.

use std::collections::HashMap;

use strata_client::spec::parse_initializer;
use strata_client::v1 as pb;

/// Optimizer hyperparameters a keyword argument may set, as `strata table create` flags.
pub const HYPERPARAMETERS: [&str; 12] = [
    "lr",
    "initial_accumulator",
    "beta1",
    "beta2",
    "epsilon",
    "l1",
    "l2",
    "lr_power",
    "beta",
    "weight_decay",
    "clip_value",
    "clip_norm",
];

/// The optimizer `kind` with the hyperparameters in `values` (others: the rule's
/// defaults). Names outside [`HYPERPARAMETERS`] are refused with the list of known ones.
pub fn optimizer(kind: &str, values: &HashMap<String, f32>) -> Result<pb::OptimizerSpec, String> {
    if let Some(unknown) = values
        .keys()
        .find(|k| !HYPERPARAMETERS.contains(&k.as_str()))
    {
        return Err(format!(
            "unknown optimizer hyperparameter {unknown:?}; known: {}",
            HYPERPARAMETERS.join(", ")
        ));
    }
    let get = |name: &str| values.get(name).copied();
    Ok(pb::OptimizerSpec {
        kind: kind.into(),
        lr: get("lr"),
        initial_accumulator: get("initial_accumulator"),
        beta1: get("beta1"),
        beta2: get("beta2"),
        epsilon: get("epsilon"),
        l1: get("l1"),
        l2: get("l2"),
        lr_power: get("lr_power"),
        beta: get("beta"),
        weight_decay: get("weight_decay"),
        clip_value: get("clip_value"),
        clip_norm: get("clip_norm"),
    })
}

/// Parses an initializer: `zeros`, `uniform:A` (in [-A, A)) or `normal:STD`.
pub fn initializer(text: &str) -> Result<pb::InitializerSpec, String> {
    parse_initializer(text).map_err(|e| format!("init {e}"))
}
