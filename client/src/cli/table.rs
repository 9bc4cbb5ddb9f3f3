//! `strata table ...` and `strata dense ...`.

use clap::{Args, Subcommand};
use strata_client::spec::parse_initializer;
use strata_client::v1 as pb;
use strata_client::Client;

use super::confirm::{confirm, YesArgs};
use super::exit::CliError;
use super::output::{print_json, OutputArgs};
use super::parse_list;
use super::units;

/// Table commands.
#[derive(Subcommand)]
pub enum TableCommand {
    /// Create a table.
    #[command(
        after_help = "Examples:\n  strata table create clicks --dim 8\n  strata table create emb --dim 64 --optimizer adagrad --lr 0.05 --init normal:0.01\n  strata table create emb --dim 64 --optimizer adam --lr 1e-3 --tier gpu -o json"
    )]
    Create(CreateTableArgs),
    /// List tables with their rows and bytes.
    #[command(
        after_help = "Examples:\n  strata table list\n  strata table list -o json | jq -r '.tables[].name'"
    )]
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop a table and its rows (asks first; --yes to skip the question).
    #[command(
        after_help = "Examples:\n  strata table drop clicks          # asks [y/N] on a terminal\n  strata table drop clicks --yes    # scripts"
    )]
    Drop {
        /// Table name.
        name: String,
        #[command(flatten)]
        yes: YesArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// Dense tensor commands.
#[derive(Subcommand)]
pub enum DenseCommand {
    /// Create a dense tensor.
    #[command(
        after_help = "Examples:\n  strata dense create mlp.w1 --shape 256,128 --optimizer adam --lr 1e-3 --init normal:0.02\n  strata dense create bias --shape 8 -o json"
    )]
    Create {
        /// Tensor name.
        name: String,
        /// Shape, comma-separated (e.g. 256,128).
        #[arg(long)]
        shape: String,
        #[command(flatten)]
        optimizer: OptimizerArgs,
        /// Initializer: zeros, uniform:A, normal:STD.
        #[arg(long, default_value = "zeros")]
        init: String,
        /// Initializer seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List dense tensors with their shapes and optimizers.
    #[command(after_help = "Examples:\n  strata dense list\n  strata dense list -o json")]
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print a dense tensor's values (text: one line per row of the last dimension).
    #[command(
        after_help = "Examples:\n  strata dense pull bias\n  strata dense pull mlp.w1 -o json | jq '.shape'"
    )]
    Pull {
        /// Tensor name.
        name: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Apply a gradient (all values, comma-separated).
    #[command(after_help = "Examples:\n  strata dense push bias --grads -0.5,0.5,0,0,0,0,0,1")]
    Push {
        /// Tensor name.
        name: String,
        /// Gradient values, comma-separated (negative numbers welcome: `--grads -1,2`).
        #[arg(long, allow_hyphen_values = true)]
        grads: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Drop a dense tensor (asks first; --yes to skip the question).
    #[command(after_help = "Examples:\n  strata dense drop bias --yes")]
    Drop {
        /// Tensor name.
        name: String,
        #[command(flatten)]
        yes: YesArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// Optimizer flags shared by tables and dense tensors (unset: the rule's defaults). Numbers
/// may be negative: the coordinator, not the parser, judges what each rule accepts.
#[derive(Args)]
pub struct OptimizerArgs {
    /// sgd, adagrad, adam or ftrl.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Adagrad/FTRL initial accumulator.
    #[arg(long, allow_negative_numbers = true)]
    initial_accumulator: Option<f32>,
    /// Adam beta1.
    #[arg(long, allow_negative_numbers = true)]
    beta1: Option<f32>,
    /// Adam beta2.
    #[arg(long, allow_negative_numbers = true)]
    beta2: Option<f32>,
    /// Adam/Adagrad epsilon.
    #[arg(long, allow_negative_numbers = true)]
    epsilon: Option<f32>,
    /// FTRL L1.
    #[arg(long, allow_negative_numbers = true)]
    l1: Option<f32>,
    /// FTRL L2.
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f32>,
    /// FTRL learning-rate power.
    #[arg(long, allow_negative_numbers = true)]
    lr_power: Option<f32>,
    /// FTRL beta.
    #[arg(long, allow_negative_numbers = true)]
    beta: Option<f32>,
    /// L2 weight decay.
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// Clip each gradient value to [-v, v].
    #[arg(long, allow_negative_numbers = true)]
    clip_value: Option<f32>,
    /// Clip each row's gradient to this L2 norm.
    #[arg(long, allow_negative_numbers = true)]
    clip_norm: Option<f32>,
}

impl OptimizerArgs {
    fn to_pb(&self) -> pb::OptimizerSpec {
        pb::OptimizerSpec {
            kind: self.optimizer.clone(),
            lr: self.lr,
            initial_accumulator: self.initial_accumulator,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            l1: self.l1,
            l2: self.l2,
            lr_power: self.lr_power,
            beta: self.beta,
            weight_decay: self.weight_decay,
            clip_value: self.clip_value,
            clip_norm: self.clip_norm,
        }
    }
}

/// Arguments of `strata table create`.
#[derive(Args)]
pub struct CreateTableArgs {
    /// Table name.
    name: String,
    /// Row width (1..=4096).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    dim: u32,
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Initializer of new rows: zeros, uniform:A (in [-A, A)), normal:STD.
    #[arg(long, default_value = "uniform:0.01")]
    init: String,
    /// Initializer seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tier of hot rows: host or gpu.
    #[arg(long, default_value = "host")]
    tier: String,
    #[command(flatten)]
    out: OutputArgs,
}

/// Parses `zeros`, `uniform:A`, `normal:STD` (the flag named in the error).
fn parse_init(text: &str) -> anyhow::Result<pb::InitializerSpec> {
    parse_initializer(text).map_err(|e| CliError::Usage(format!("--init {e}")).into())
}

/// The JSON of a table: its spec and what it holds.
fn table_json(spec: &pb::TableSpec, rows: u64, bytes: u64) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name, "dim": spec.dim, "rows": rows, "bytes": bytes,
        "optimizer": spec.optimizer.as_ref().map(|o| o.kind.clone()).unwrap_or_default(),
        "tier": spec.tier,
        "init": initializer_text(spec.initializer.as_ref()),
        "seed": spec.seed,
        "hyperparameters": hyperparameters_json(spec.optimizer.as_ref()),
    })
}

/// Runs a table command.
pub async fn run_table(client: &Client, cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Create(a) => {
            let spec = pb::TableSpec {
                name: a.name.clone(),
                dim: a.dim,
                optimizer: Some(a.optimizer.to_pb()),
                initializer: Some(parse_init(&a.init)?),
                seed: a.seed,
                tier: a.tier,
            };
            let spec = client.create_table(spec).await?;
            if a.out.json() {
                print_json(&serde_json::json!({ "created": table_json(&spec, 0, 0) }));
                return Ok(());
            }
            println!(
                "created table {} (dim {}, optimizer {}, tier {})",
                spec.name,
                spec.dim,
                spec.optimizer.map(|o| o.kind).unwrap_or_default(),
                spec.tier
            );
        }
        TableCommand::List { out } => {
            let list = client.list_tables().await?;
            if out.json() {
                let tables: Vec<_> = list
                    .tables
                    .iter()
                    .map(|t| table_json(&t.spec.clone().unwrap_or_default(), t.rows, t.bytes))
                    .collect();
                print_json(&serde_json::json!({ "tables": tables }));
                return Ok(());
            }
            let wide = out.wide();
            print!(
                "{:<24} {:>6} {:>10} {:>6} {:>14} {:>12}",
                "TABLE", "DIM", "OPTIMIZER", "TIER", "ROWS", "SIZE"
            );
            if wide {
                print!("{WIDE_HEADER}");
            }
            println!();
            for t in &list.tables {
                let spec = t.spec.clone().unwrap_or_default();
                print!(
                    "{:<24} {:>6} {:>10} {:>6} {:>14} {:>12}",
                    spec.name,
                    spec.dim,
                    spec.optimizer
                        .as_ref()
                        .map(|o| o.kind.as_str())
                        .unwrap_or_default(),
                    spec.tier,
                    t.rows,
                    units::bytes(t.bytes)
                );
                if wide {
                    print!(
                        "{}",
                        wide_columns(
                            spec.initializer.as_ref(),
                            spec.seed,
                            spec.optimizer.as_ref()
                        )
                    );
                }
                println!();
            }
        }
        TableCommand::Drop { name, yes, out } => {
            confirm(yes.yes, &format!("drop table {name} and all its rows"))?;
            client.drop_table(&name).await?;
            if out.json() {
                print_json(&serde_json::json!({ "dropped": name, "kind": "table" }));
            } else {
                println!("dropped table {name}");
            }
        }
    }
    Ok(())
}

/// The header of the columns `-o wide` adds to table and dense lists.
const WIDE_HEADER: &str = "  INIT               SEED  HYPERPARAMETERS";

/// The columns `-o wide` adds to a row of a table or dense list: initializer, seed and
/// hyperparameters, under [`WIDE_HEADER`].
fn wide_columns(
    init: Option<&pb::InitializerSpec>,
    seed: u64,
    optimizer: Option<&pb::OptimizerSpec>,
) -> String {
    format!(
        "  {:<16} {:>6}  {}",
        initializer_text(init),
        seed,
        hyperparameters_text(optimizer)
    )
}

/// An initializer as `table create --init` takes it (`uniform:0.01`, `zeros`).
fn initializer_text(init: Option<&pb::InitializerSpec>) -> String {
    match init {
        None => "-".into(),
        Some(i) if i.kind == "zeros" || i.kind.is_empty() => "zeros".into(),
        Some(i) => format!("{}:{}", i.kind, i.scale),
    }
}

/// The hyperparameters an optimizer was created with, by name (those the server set).
fn hyperparameters(optimizer: Option<&pb::OptimizerSpec>) -> Vec<(&'static str, f32)> {
    let Some(o) = optimizer else {
        return Vec::new();
    };
    [
        ("lr", o.lr),
        ("initial_accumulator", o.initial_accumulator),
        ("epsilon", o.epsilon),
        ("beta1", o.beta1),
        ("beta2", o.beta2),
        ("lr_power", o.lr_power),
        ("l1", o.l1),
        ("l2", o.l2),
        ("beta", o.beta),
        ("weight_decay", o.weight_decay),
        ("clip_value", o.clip_value),
        ("clip_norm", o.clip_norm),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

/// The hyperparameters as `name=value` pairs (`-` if none).
fn hyperparameters_text(optimizer: Option<&pb::OptimizerSpec>) -> String {
    let pairs: Vec<String> = hyperparameters(optimizer)
        .into_iter()
        .map(|(name, v)| format!("{name}={}", number_text(v)))
        .collect();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(" ")
    }
}

/// The hyperparameters as a JSON object.
fn hyperparameters_json(optimizer: Option<&pb::OptimizerSpec>) -> serde_json::Value {
    hyperparameters(optimizer)
        .into_iter()
        // Through the shortest text of the f32, so 0.001 stays 0.001 rather than its f64 widening.
        .map(|(name, v)| {
            let shortest = format!("{v}").parse::<f64>().unwrap_or(f64::from(v));
            (name.to_string(), serde_json::json!(shortest))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A hyperparameter as people write it: `0.05`, `1e-8`.
fn number_text(v: f32) -> String {
    if v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The JSON of a dense tensor's spec.
fn dense_json(spec: &pb::DenseSpec) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name, "shape": spec.shape,
        "optimizer": spec.optimizer.as_ref().map(|o| o.kind.clone()).unwrap_or_default(),
        "init": initializer_text(spec.initializer.as_ref()),
        "seed": spec.seed,
        "hyperparameters": hyperparameters_json(spec.optimizer.as_ref()),
    })
}

/// Prints a dense tensor's values as text: a header line, then one line per row of the
/// last dimension.
fn print_dense_text(name: &str, shape: &[u32], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(u32::to_string).collect();
    println!("dense tensor {name} shape [{}]", dims.join(", "));
    let width = shape.last().map_or(values.len(), |&d| d as usize).max(1);
    for row in values.chunks(width) {
        let row: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        println!("{}", row.join(","));
    }
}

/// Runs a dense command.
pub async fn run_dense(client: &Client, cmd: DenseCommand) -> anyhow::Result<()> {
    match cmd {
        DenseCommand::Create {
            name,
            shape,
            optimizer,
            init,
            seed,
            out,
        } => {
            let spec = pb::DenseSpec {
                name: name.clone(),
                shape: parse_list("--shape", &shape)?,
                optimizer: Some(optimizer.to_pb()),
                initializer: Some(parse_init(&init)?),
                seed,
            };
            client.create_dense(spec.clone()).await?;
            if out.json() {
                print_json(&serde_json::json!({ "created": dense_json(&spec) }));
            } else {
                println!("created dense tensor {name}");
            }
        }
        DenseCommand::List { out } => {
            let list = client.list_tables().await?;
            let specs: Vec<pb::DenseSpec> = list
                .dense
                .into_iter()
                .map(|d| d.spec.unwrap_or_default())
                .collect();
            if out.json() {
                let all: Vec<_> = specs.iter().map(dense_json).collect();
                print_json(&serde_json::json!({ "dense": all }));
                return Ok(());
            }
            let wide = out.wide();
            print!(
                "{:<24} {:<16} {:>10} {:>12}",
                "DENSE", "SHAPE", "OPTIMIZER", "SIZE"
            );
            if wide {
                print!("{WIDE_HEADER}");
            }
            println!();
            for spec in &specs {
                let dims: Vec<String> = spec.shape.iter().map(u32::to_string).collect();
                let floats: u64 = spec.shape.iter().map(|&d| u64::from(d)).product();
                print!(
                    "{:<24} {:<16} {:>10} {:>12}",
                    spec.name,
                    dims.join("x"),
                    spec.optimizer
                        .as_ref()
                        .map(|o| o.kind.as_str())
                        .unwrap_or(""),
                    units::bytes(floats.saturating_mul(4))
                );
                if wide {
                    print!(
                        "{}",
                        wide_columns(
                            spec.initializer.as_ref(),
                            spec.seed,
                            spec.optimizer.as_ref()
                        )
                    );
                }
                println!();
            }
        }
        DenseCommand::Pull { name, out } => {
            let (values, shape) = client.pull_dense(&name).await?;
            if out.json() {
                print_json(&serde_json::json!({ "name": name, "shape": shape, "values": values }));
            } else {
                print_dense_text(&name, &shape, &values);
            }
        }
        DenseCommand::Push { name, grads, out } => {
            let grads: Vec<f32> = parse_list("--grads", &grads)?;
            client.push_dense(&name, &grads).await?;
            if out.json() {
                print_json(&serde_json::json!({ "name": name, "applied": grads.len() }));
            } else {
                println!("applied gradient to {name}");
            }
        }
        DenseCommand::Drop { name, yes, out } => {
            confirm(yes.yes, &format!("drop dense tensor {name}"))?;
            client.drop_dense(&name).await?;
            if out.json() {
                print_json(&serde_json::json!({ "dropped": name, "kind": "dense" }));
            } else {
                println!("dropped dense tensor {name}");
            }
        }
    }
    Ok(())
}
