//! `[y/N]` before a command that changes or destroys state: `--yes` skips the question; with
//! no terminal to ask on and no `--yes`, the command is refused rather than run.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use super::exit::CliError;

/// The `--yes` flag of a command that asks first.
#[derive(Args, Clone, Copy, Debug)]
pub struct YesArgs {
    /// Do it without asking (needed when stdin is not a terminal, as in scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Asks `question? [y/N]` on stderr and reads the answer from stdin; `yes` skips it. Not
/// confirmed (an answer other than y/yes, or no terminal and no `yes`) is an error that
/// names the action and says how to confirm it.
pub fn confirm(yes: bool, question: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let refused = |why: &str| CliError::NotConfirmed(format!("{question}: {why}"));
    if !std::io::stdin().is_terminal() {
        return Err(refused(
            "not confirmed (stdin is not a terminal): pass --yes to do it without asking",
        ));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Err(refused(
            "no answer read: pass --yes to do it without asking",
        ));
    }
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(refused("not confirmed; nothing was changed"))
    }
}
