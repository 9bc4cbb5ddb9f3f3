//! `strata certs init|issue`: development certificates in one command each.

use std::path::PathBuf;

use clap::Subcommand;
use strata_client::certs::{self, Role, Validity, DEFAULT_CA_DAYS, DEFAULT_DAYS};

/// The `certs` subcommands.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Make a CA: DIR/ca.pem and DIR/ca.key (an existing CA is never replaced).
    #[command(after_help = "Examples:\n  strata certs init --dir certs")]
    Init {
        /// Directory of the CA and the certificates it issues (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        days: u32,
    },
    /// Issue DIR/NAME.pem and DIR/NAME.key with the CA in DIR: the name as subject CN, the
    /// role as subject OU, valid as client and server certificate for --san.
    #[command(
        after_help = "Examples:\n  strata certs issue --dir certs --name node-1 --role node --san node-1.example,10.0.0.5\n  strata certs issue --dir certs --name trainer-1 --role trainer"
    )]
    Issue {
        /// Directory holding the CA (from `strata certs init`).
        #[arg(long)]
        dir: PathBuf,
        /// The holder's name (letters, digits, '.', '_', '-'): the files' name and the CN.
        #[arg(long)]
        name: String,
        /// The holder's role: trainer, reader, operator, admin or node.
        #[arg(long)]
        role: Role,
        /// DNS names and IP addresses the certificate is valid for, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        san: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
    },
}

/// Runs a `certs` subcommand; prints the files written.
pub fn certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { dir, days } => {
            let cert = certs::init(&dir, Validity::days(days))?;
            println!("CA certificate: {}", cert.display());
            println!("CA key:         {}", dir.join(certs::CA_KEY_FILE).display());
        }
        CertsCommand::Issue {
            dir,
            name,
            role,
            san,
            days,
        } => {
            let issued = certs::issue(&dir, &name, role, &san, Validity::days(days))?;
            println!("certificate: {} (role {role})", issued.cert.display());
            println!("key:         {}", issued.key.display());
        }
    }
    Ok(())
}
