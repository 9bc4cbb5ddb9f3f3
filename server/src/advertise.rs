//! The address a server gives out for itself (`--advertise`): written in the cluster map for
//! a node, given to clients as the coordinator's. Never an unspecified address (`0.0.0.0`,
//! `[::]`): a client told to dial one reaches its own machine, not the server.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use thiserror::Error;

/// An `--advertise` value: `HOST:PORT`, or `HOST` alone to take the port the server bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertise {
    /// Host name or IP address, an IPv6 address in brackets.
    host: String,
    /// Port clients dial; `None`: the bound port.
    port: Option<u16>,
}

/// Why an address cannot be given out.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AdvertiseError {
    /// The server listens on an unspecified address and was not told what to give out.
    #[error(
        "listening on {bound}, an address no client can dial: give --advertise HOST:PORT, the \
         address clients and other servers reach this server at (e.g. --advertise \
         myhost.example:{port}; --advertise HOST alone takes the bound port)",
        port = if bound.port() == 0 { 7070 } else { bound.port() }
    )]
    Unspecified {
        /// The bound listen address.
        bound: SocketAddr,
    },
}

impl Advertise {
    /// The address to give out for a server bound at `bound`.
    pub fn address(&self, bound: SocketAddr) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(bound.port()))
    }
}

impl fmt::Display for Advertise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// The address a server bound at `bound` gives out: `advertise`'s, else the bound address
/// unless it is unspecified.
pub fn advertised_address(
    bound: SocketAddr,
    advertise: Option<&Advertise>,
) -> Result<String, AdvertiseError> {
    match advertise {
        Some(a) => Ok(a.address(bound)),
        None if bound.ip().is_unspecified() => Err(AdvertiseError::Unspecified { bound }),
        None => Ok(bound.to_string()),
    }
}

/// Refuses an unspecified IP address as the one to give out.
fn dialable(ip: IpAddr, text: &str) -> Result<(), String> {
    if ip.is_unspecified() {
        return Err(format!(
            "--advertise {text:?} is an unspecified address no client can dial: give the \
             host name or IP address clients reach this server at"
        ));
    }
    Ok(())
}

/// The error of a value that is neither `HOST:PORT` nor `HOST`.
fn malformed(text: &str) -> String {
    format!(
        "--advertise {text:?} is not HOST:PORT or HOST (a host name, an IPv4 address or an \
         IPv6 address in brackets, e.g. myhost.example:7070 or [fd00::1]:7070)"
    )
}

/// Checks a host name: letters, digits, `-`, `_` and `.`.
fn host_name(host: &str, text: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(host.to_string())
    } else {
        Err(malformed(text))
    }
}

/// Parses a port clients dial: 1..=65535.
fn port(port: &str, text: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) => Err(format!(
            "--advertise {text:?} has port 0, which no client can dial: give the port, or the \
             host alone to take the bound port"
        )),
        Ok(p) => Ok(p),
        Err(_) => Err(format!(
            "--advertise {text:?} has an invalid port {port:?}: expected 1..65535"
        )),
    }
}

impl FromStr for Advertise {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("--advertise needs HOST:PORT or HOST".into());
        }
        if t.contains("://") {
            return Err(format!(
                "--advertise {text:?} has a scheme: give HOST:PORT without one"
            ));
        }
        if let Ok(addr) = t.parse::<SocketAddr>() {
            dialable(addr.ip(), text)?;
            let host = match addr.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            return Ok(Self {
                host,
                port: Some(port(&addr.port().to_string(), text)?),
            });
        }
        let bare_v6 = t
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = bare_v6.parse::<IpAddr>() {
            dialable(ip, text)?;
            let host = match ip {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            return Ok(Self { host, port: None });
        }
        if t.starts_with('[') || t.parse::<Ipv6Addr>().is_ok() {
            return Err(malformed(text));
        }
        match t.rsplit_once(':') {
            Some((host, p)) => Ok(Self {
                host: host_name(host, text)?,
                port: Some(port(p, text)?),
            }),
            None => Ok(Self {
                host: host_name(t, text)?,
                port: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn host_and_port_forms_parse_and_resolve() {
        let at = bound("0.0.0.0:7070");
        let cases = [
            ("myhost.example:9000", "myhost.example:9000"),
            ("myhost.example", "myhost.example:7070"),
            (
                "strata-shard-0.strata-shard.ns.svc.cluster.local:7070",
                "strata-shard-0.strata-shard.ns.svc.cluster.local:7070",
            ),
            ("10.1.2.3:7071", "10.1.2.3:7071"),
            ("127.0.0.2", "127.0.0.2:7070"),
            ("[fd00::1]:7072", "[fd00::1]:7072"),
            ("[fd00::1]", "[fd00::1]:7070"),
            ("fd00::1", "[fd00::1]:7070"),
            (" localhost ", "localhost:7070"),
        ];
        for (text, want) in cases {
            let a: Advertise = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                advertised_address(at, Some(&a)),
                Ok(want.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn undialable_or_malformed_values_are_refused_with_the_reason() {
        let cases = [
            ("", "needs HOST:PORT"),
            ("0.0.0.0:7070", "unspecified"),
            ("[::]:7070", "unspecified"),
            ("::", "unspecified"),
            ("0.0.0.0", "unspecified"),
            ("myhost:0", "port 0"),
            ("myhost:70700", "invalid port"),
            ("myhost:", "invalid port"),
            ("http://myhost:7070", "scheme"),
            (":7070", "not HOST:PORT"),
            ("my host:7070", "not HOST:PORT"),
            ("a/b:7070", "not HOST:PORT"),
            ("[fd00::1", "not HOST:PORT"),
        ];
        for (text, why) in cases {
            match text.parse::<Advertise>() {
                Ok(a) => panic!("{text:?} parsed as {a}"),
                Err(e) => assert!(e.contains(why), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn an_unspecified_listen_address_needs_advertise() {
        for at in ["0.0.0.0:7070", "[::]:7070"] {
            let err = advertised_address(bound(at), None).expect_err(at);
            assert!(err.to_string().contains("--advertise HOST:PORT"), "{err}");
        }
        assert_eq!(
            advertised_address(bound("127.0.0.1:7071"), None),
            Ok("127.0.0.1:7071".to_string())
        );
    }
}
