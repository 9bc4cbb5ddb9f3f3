//! `strata table ...` and `strata dense ...`.

use clap::{Args, Subcommand};
use strata_client::spec::parse_initializer;
use strata_client::v1 as pb;
use strata_client::Client;

use super::parse_list;

/// Table commands.
#[derive(Subcommand)]
pub enum TableCommand {
    /// Create a table.
    Create(CreateTableArgs),
    /// List tables with their rows and bytes.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Drop a table and its rows.
    Drop {
        /// Table name.
        name: String,
    },
}

/// Dense tensor commands.
#[derive(Subcommand)]
pub enum DenseCommand {
    /// Create a dense tensor.
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
    },
    /// Print a dense tensor's values.
    Pull {
        /// Tensor name.
        name: String,
    },
    /// Apply a gradient (all values, comma-separated).
    Push {
        /// Tensor name.
        name: String,
        /// Gradient values (may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        grads: String,
    },
    /// Drop a dense tensor.
    Drop {
        /// Tensor name.
        name: String,
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
    #[arg(long)]
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
}

/// Parses `zeros`, `uniform:A`, `normal:STD` (the flag named in the error).
fn parse_init(text: &str) -> anyhow::Result<pb::InitializerSpec> {
    parse_initializer(text).map_err(|e| anyhow::anyhow!("--init {e}"))
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
            println!(
                "created table {} (dim {}, optimizer {}, tier {})",
                spec.name,
                spec.dim,
                spec.optimizer.map(|o| o.kind).unwrap_or_default(),
                spec.tier
            );
        }
        TableCommand::List { json } => {
            let list = client.list_tables().await?;
            if json {
                let tables: Vec<_> = list
                    .tables
                    .iter()
                    .map(|t| {
                        let spec = t.spec.clone().unwrap_or_default();
                        serde_json::json!({
                            "name": spec.name, "dim": spec.dim, "rows": t.rows, "bytes": t.bytes,
                            "optimizer": spec.optimizer.map(|o| o.kind).unwrap_or_default(),
                            "tier": spec.tier,
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({ "tables": tables }));
            } else {
                println!(
                    "{:<24} {:>6} {:>10} {:>14} {:>14}",
                    "TABLE", "DIM", "OPTIMIZER", "ROWS", "BYTES"
                );
                for t in &list.tables {
                    let spec = t.spec.clone().unwrap_or_default();
                    println!(
                        "{:<24} {:>6} {:>10} {:>14} {:>14}",
                        spec.name,
                        spec.dim,
                        spec.optimizer.map(|o| o.kind).unwrap_or_default(),
                        t.rows,
                        t.bytes
                    );
                }
            }
        }
        TableCommand::Drop { name } => {
            client.drop_table(&name).await?;
            println!("dropped table {name}");
        }
    }
    Ok(())
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
        } => {
            let spec = pb::DenseSpec {
                name: name.clone(),
                shape: parse_list("--shape", &shape)?,
                optimizer: Some(optimizer.to_pb()),
                initializer: Some(parse_init(&init)?),
                seed,
            };
            client.create_dense(spec).await?;
            println!("created dense tensor {name}");
        }
        DenseCommand::Pull { name } => {
            let (values, shape) = client.pull_dense(&name).await?;
            println!(
                "{}",
                serde_json::json!({ "name": name, "shape": shape, "values": values })
            );
        }
        DenseCommand::Push { name, grads } => {
            let grads: Vec<f32> = parse_list("--grads", &grads)?;
            client.push_dense(&name, &grads).await?;
            println!("applied gradient to {name}");
        }
        DenseCommand::Drop { name } => {
            client.drop_dense(&name).await?;
            println!("dropped dense tensor {name}");
        }
    }
    Ok(())
}
