//! The one output convention of every command that prints a result: `-o text` (for people,
//! the default), `-o wide` (text with more columns where a command has them: hyperparameters,
//! initializers, node identities) or `-o json` (one JSON object alone on stdout, for
//! scripts); `--json` is the same as `-o json`.

use clap::{Args, ValueEnum};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines and tables for people.
    Text,
    /// Text with more columns, where the command has them.
    Wide,
    /// One JSON object on stdout.
    Json,
}

/// The `-o` / `--json` flags of a command.
#[derive(Args, Clone, Copy, Debug)]
pub struct OutputArgs {
    /// Output format: text for people, wide (text with more columns), json for scripts (one
    /// object alone on stdout).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Same as `-o json`.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.json || self.output == Format::Json
    }

    /// Whether text gets the wider columns.
    pub fn wide(&self) -> bool {
        !self.json() && self.output == Format::Wide
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
