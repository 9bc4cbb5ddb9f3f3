//! Exit statuses that let scripts tell failures apart, decided here and nowhere else: from
//! the CLI's own errors, the client's typed errors and the gRPC code a server answered.

use std::process::ExitCode;

use strata_client::numbers::NumberError;
use strata_client::ClientError;
use thiserror::Error;
use tonic::Code;

/// Why a command failed, as its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 1: an internal error, or one no other status describes.
    Internal = 1,
    /// 2: the command line is wrong (flags, addresses, numbers).
    Usage = 2,
    /// 3: a table, dense tensor, checkpoint or node does not exist.
    NotFound = 3,
    /// 4: the coordinator or a node cannot be reached, or did not answer in time.
    Unavailable = 4,
    /// 5: not authenticated, or not allowed.
    Permission = 5,
    /// 6: the request conflicts with the cluster's state (already exists, a plan running,
    /// nothing to do).
    Conflict = 6,
    /// 7: the request was refused as invalid (a value out of range, lengths that do not
    /// match the table).
    InvalidArgument = 7,
    /// 8: over a limit (message size, memory budget).
    ResourceExhausted = 8,
    /// 9: a push was sent but its outcome is unknown: it may or may not have been applied.
    Unknown = 9,
    /// 10: a destructive command was not confirmed (answered no, or no terminal and no
    /// `--yes`).
    NotConfirmed = 10,
    /// 11: the server does not implement this operation (an older server without the rpc).
    Unsupported = 11,
    /// 130: interrupted (Ctrl-C) while following a plan, which keeps running.
    Interrupted = 130,
}

/// The table of exit statuses for `strata --help` and the README.
pub const EXIT_STATUSES: &str = "\
Exit status:
  0   done (for push: acknowledged)
  1   internal error
  2   usage: bad flags, address or numbers
  3   not found (table, dense tensor, checkpoint, node)
  4   unavailable: coordinator or node unreachable, refused or timed out
  5   permission denied or not authenticated
  6   conflict: already exists, a plan running, nothing to do
  7   invalid argument: refused by the server or the table's shape
  8   resource exhausted: over a size or memory limit
  9   outcome unknown: a push may or may not have been applied
  10  not confirmed: answered no, or no terminal and no --yes
  11  not supported by this server
  130 interrupted (Ctrl-C) while following a plan; the plan keeps running";

/// A failure the CLI itself decides, with the status it ends with.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line cannot be used as given.
    #[error("{0}")]
    Usage(String),
    /// A destructive command was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),
    /// The request does not fit what it addresses (e.g. gradients for another row width).
    #[error("{0}")]
    Invalid(String),
    /// The command would change nothing (e.g. a resize to the current shard count).
    #[error("{0}")]
    NoOp(String),
    /// Ctrl-C while following a plan: the CLI stops following, the plan goes on.
    #[error("{0}")]
    Interrupted(String),
}

impl Exit {
    /// The status a server's gRPC `code` maps to.
    pub fn of_code(code: Code) -> Self {
        match code {
            Code::Ok | Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => {
                Exit::Internal
            }
            Code::NotFound => Exit::NotFound,
            Code::Unavailable | Code::DeadlineExceeded => Exit::Unavailable,
            Code::PermissionDenied | Code::Unauthenticated => Exit::Permission,
            Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => Exit::Conflict,
            Code::InvalidArgument | Code::OutOfRange => Exit::InvalidArgument,
            Code::ResourceExhausted => Exit::ResourceExhausted,
            Code::Unimplemented => Exit::Unsupported,
        }
    }

    /// The status of a client error.
    fn of_client(error: &ClientError) -> Self {
        match error {
            ClientError::BadAddress { .. } => Exit::Usage,
            ClientError::Ambiguous { .. } => Exit::Unknown,
            other => Exit::of_code(other.status_code()),
        }
    }

    /// The status of `error`: the first error of its chain that says.
    pub fn of(error: &anyhow::Error) -> Self {
        for cause in error.chain() {
            if let Some(e) = cause.downcast_ref::<CliError>() {
                return match e {
                    CliError::Usage(_) => Exit::Usage,
                    CliError::NotConfirmed(_) => Exit::NotConfirmed,
                    CliError::Invalid(_) => Exit::InvalidArgument,
                    CliError::NoOp(_) => Exit::Conflict,
                    CliError::Interrupted(_) => Exit::Interrupted,
                };
            }
            if let Some(e) = cause.downcast_ref::<ClientError>() {
                return Exit::of_client(e);
            }
            if cause.downcast_ref::<NumberError>().is_some() {
                return Exit::Usage;
            }
        }
        Exit::Internal
    }

    /// As a process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_distinct_and_documented() {
        let all = [
            Exit::Internal,
            Exit::Usage,
            Exit::NotFound,
            Exit::Unavailable,
            Exit::Permission,
            Exit::Conflict,
            Exit::InvalidArgument,
            Exit::ResourceExhausted,
            Exit::Unknown,
            Exit::NotConfirmed,
            Exit::Unsupported,
        ];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(*e as u8, i as u8 + 1);
        }
        for e in all.iter().chain([&Exit::Interrupted]) {
            assert!(
                EXIT_STATUSES.contains(&format!("\n  {:<3} ", *e as u8)),
                "{e:?} not documented"
            );
        }
    }

    #[test]
    fn causes_map_through_the_chain() {
        let not_found = ClientError::Rpc {
            rpc: "DropTable",
            node: "coordinator".into(),
            address: "a".into(),
            code: Code::NotFound,
            message: "no table".into(),
        };
        let e = anyhow::Error::from(not_found).context("dropping");
        assert_eq!(Exit::of(&e), Exit::NotFound);
        let refused = ClientError::ConnectionRefused {
            address: "127.0.0.1:1".into(),
        };
        assert_eq!(Exit::of(&refused.into()), Exit::Unavailable);
        let usage = anyhow::Error::from(CliError::Usage("x".into()));
        assert_eq!(Exit::of(&usage), Exit::Usage);
        assert_eq!(Exit::of(&anyhow::anyhow!("boom")), Exit::Internal);
        assert_eq!(Exit::of_code(Code::AlreadyExists), Exit::Conflict);
        assert_eq!(Exit::of_code(Code::PermissionDenied), Exit::Permission);
    }
}
