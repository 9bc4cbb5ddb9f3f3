//! Addresses as users write them (`host:port`, `[::1]:port`, `http://host:port`), checked
//! before anything is dialed so that a missing or impossible port is named at once.

use crate::ClientError;

/// Checks that `address` names a host and a port in 1..=65535 (an optional `http://` or
/// `https://` scheme in front).
pub fn validate_address(address: &str) -> Result<(), ClientError> {
    let bad = |reason: &str| ClientError::BadAddress {
        address: address.into(),
        reason: reason.into(),
    };
    let rest = match address.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "unknown scheme {scheme:?}: use host:port, http:// or https://"
            )))
        }
        None => address,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("empty: expected host:port, e.g. 127.0.0.1:7070"));
    }
    if authority.contains('/') {
        return Err(bad("a path is not allowed: expected host:port"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err(bad("unclosed '[' in an IPv6 address")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(bad("the host is empty or holds spaces"));
    }
    let Some(port) = port else {
        return Err(bad("no port: expected host:port, e.g. 127.0.0.1:7070"));
    };
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(()),
        Ok(_) => Err(bad(&format!("port {port} is not in 1..=65535"))),
        Err(_) if port.is_empty() => Err(bad("no port after ':'")),
        Err(_) if port.bytes().all(|b| b.is_ascii_digit()) => {
            Err(bad(&format!("port {port} is not in 1..=65535")))
        }
        Err(_) => Err(bad(&format!("port {port:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms_are_accepted() {
        for ok in [
            "127.0.0.1:7070",
            "localhost:1",
            "[::1]:65535",
            "http://node-1:7070",
            "https://node-1:7070/",
        ] {
            assert!(validate_address(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn missing_or_impossible_ports_are_named() {
        for (bad, needle) in [
            ("127.0.0.1", "no port"),
            ("127.0.0.1:", "no port after"),
            ("127.0.0.1:99999", "port 99999 is not in 1..=65535"),
            ("127.0.0.1:99999999999999999999", "not in 1..=65535"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:http", "not a number"),
            ("ftp://h:1", "unknown scheme"),
            ("[::1:7070", "unclosed"),
            (":7070", "host is empty"),
            ("h:1/x", "path"),
        ] {
            let err = validate_address(bad).expect_err(bad).to_string();
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
