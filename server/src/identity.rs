//! What runs in this process: the binary's build ([`BUILD`]), when it started, its
//! effective configuration (every flag of its role after defaults, secrets redacted), a
//! short hash of that configuration, its data dir and GPU — reported by nodes in
//! registrations and heartbeats, and by the coordinator in `Status`.
//!
//! The configuration hash leaves out [`INSTANCE_FLAGS`], the flags that tell instances of
//! one deployment apart (addresses, data dir, node id, labels, device ordinal): two shard
//! servers started with the same flags but those show the same hash, and a server whose
//! `--memory-budget` (or any other setting) differs shows another.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{ArgMatches, Command};
use strata_cluster::cluster::{GpuIdentity, ProcessIdentity};
use strata_proto::build_info::BuildInfo;

/// What this server binary was built from.
pub const BUILD: BuildInfo = strata_proto::build_info!();

/// Flags that differ between instances of one deployment: shown, never hashed.
pub const INSTANCE_FLAGS: &[&str] = &[
    "listen",
    "advertise",
    "data-dir",
    "node-id",
    "labels",
    "metrics-listen",
    "http-listen",
    "gpu-device",
];

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Words that make a flag a secret: its value is never shown nor hashed.
const SECRET_WORDS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "key",
    "credential",
    "credentials",
];

/// Whether flag `name` holds a secret: one of its dash-separated words is a secret word
/// (`--etcd-password`, `--tls-key`, `--s3-secret-access-key`; not `--keep-checkpoints`).
pub fn is_secret(name: &str) -> bool {
    name.split(['-', '_'])
        .any(|word| SECRET_WORDS.contains(&word.to_ascii_lowercase().as_str()))
}

/// Every flag of `command` as `matches` holds it after defaults and environment variables,
/// sorted by long name, secrets redacted; flags unset with no default are left out.
pub fn effective_config(command: &Command, matches: &ArgMatches) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = command
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let name = arg.get_long().unwrap_or(id).to_string();
            let values: Vec<String> = matches
                .get_raw(id)?
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let value = if is_secret(&name) {
                REDACTED.to_string()
            } else {
                values.join(",")
            };
            Some((name, value))
        })
        .collect();
    config.sort();
    config
}

/// The short hash of `role`'s configuration without [`INSTANCE_FLAGS`]: the first 12 hex
/// digits of the 64-bit FNV-1a of `role` and each `name=value` line, in name order (a
/// hash fixed by its definition, so that builds of any toolchain agree).
pub fn config_hash(role: &str, config: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = config
        .iter()
        .filter(|(name, _)| !INSTANCE_FLAGS.contains(&name.as_str()))
        .collect();
    sorted.sort();
    let mut text = format!("role={role}\n");
    for (name, value) in sorted {
        text.push_str(&format!("{name}={value}\n"));
    }
    format!("{:016x}", fnv1a64(text.as_bytes()))[..12].to_string()
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The identity of a process of `role` started at `started_unix_ms` with `config`, its
/// data dir and GPU.
pub fn process_identity(
    role: &str,
    started_unix_ms: u64,
    config: Vec<(String, String)>,
    data_dir: &Path,
    gpu: Option<GpuIdentity>,
) -> ProcessIdentity {
    ProcessIdentity {
        version: BUILD.version.to_string(),
        commit: BUILD.commit.to_string(),
        dirty: BUILD.dirty,
        profile: BUILD.profile.to_string(),
        role: role.to_string(),
        started_unix_ms,
        config_hash: config_hash(role, &config),
        config,
        data_dir: data_dir.display().to_string(),
        gpu,
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The GPU tier's device `ordinal` on a server built with the `gpu` feature: model, driver
/// and CUDA version; `None` without the feature or without such a device.
pub fn gpu_identity(ordinal: u32) -> Option<GpuIdentity> {
    #[cfg(feature = "gpu")]
    {
        let (model, cuda) = strata_storage::gpu::device::describe(ordinal as usize)?;
        Some(GpuIdentity {
            model,
            driver: nvidia_driver_version().unwrap_or_default(),
            cuda,
        })
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = ordinal;
        None
    }
}

/// The NVIDIA kernel driver's version from `/proc/driver/nvidia/version` (e.g.
/// `580.65.06`), which the CUDA driver API does not give.
#[cfg(feature = "gpu")]
fn nvidia_driver_version() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    driver_version_in(&text)
}

/// The version in the `NVRM version:` line of the driver's version file.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
fn driver_version_in(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction};

    use super::*;

    fn command() -> Command {
        Command::new("shard")
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .default_value("127.0.0.1:7071"),
            )
            .arg(Arg::new("data_dir").long("data-dir").default_value("d"))
            .arg(Arg::new("memory_budget").long("memory-budget"))
            .arg(Arg::new("wal").long("wal").action(ArgAction::SetTrue))
            .arg(Arg::new("etcd_password").long("etcd-password"))
            .arg(Arg::new("tls_key").long("tls-key"))
            .arg(
                Arg::new("peers")
                    .long("peers")
                    .value_delimiter(',')
                    .action(ArgAction::Append),
            )
    }

    fn config(args: &[&str]) -> Vec<(String, String)> {
        let command = command();
        let matches = command
            .clone()
            .try_get_matches_from(std::iter::once("shard").chain(args.iter().copied()))
            .expect("parse");
        effective_config(&command, &matches)
    }

    #[test]
    fn flags_after_defaults_sorted_with_unset_ones_left_out() {
        assert_eq!(
            config(&["--memory-budget", "1GiB", "--peers", "a,b"]),
            [
                ("data-dir", "d"),
                ("listen", "127.0.0.1:7071"),
                ("memory-budget", "1GiB"),
                ("peers", "a,b"),
                ("wal", "false"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let wal = config(&["--wal"]);
        assert!(wal.contains(&("wal".into(), "true".into())), "{wal:?}");
    }

    #[test]
    fn secrets_are_redacted_by_name() {
        let c = config(&["--etcd-password", "hunter2", "--tls-key", "/k.pem"]);
        assert!(
            c.contains(&("etcd-password".into(), REDACTED.into())),
            "{c:?}"
        );
        assert!(c.contains(&("tls-key".into(), REDACTED.into())), "{c:?}");
        assert!(!format!("{c:?}").contains("hunter2"));
        for secret in [
            "token",
            "auth-token",
            "etcd-password",
            "s3-secret-access-key",
            "tls_key",
            "api-credentials",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in ["keep-checkpoints", "monkey", "tokens-per-s", "listen"] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn the_hash_ignores_instance_flags_and_follows_every_other_one() {
        let a = config(&["--listen", "127.0.0.1:1", "--data-dir", "a"]);
        let b = config(&["--listen", "127.0.0.1:2", "--data-dir", "b"]);
        assert_ne!(a, b);
        assert_eq!(config_hash("shard", &a), config_hash("shard", &b));
        let budget = config(&["--memory-budget", "1GiB"]);
        assert_ne!(config_hash("shard", &a), config_hash("shard", &budget));
        assert_ne!(config_hash("shard", &a), config_hash("dev", &a));
        let hash = config_hash("shard", &a);
        assert_eq!(hash.len(), 12);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
        // Pinned: the hash is part of what operators compare across builds.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_driver_version_is_read_from_the_nvrm_line() {
        let text = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16-I3-B03-4-3)  Sun Jul 27 07:09:31 UTC 2025\nGCC version:  gcc version 12.2.0\n";
        assert_eq!(driver_version_in(text).as_deref(), Some("580.65.06"));
        assert_eq!(driver_version_in("GCC version: 12.2.0"), None);
        #[cfg(not(feature = "gpu"))]
        assert_eq!(gpu_identity(0), None);
    }
}
