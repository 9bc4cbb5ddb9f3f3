//! Parsers of command-line values: durations (`5s`, `500ms`) and labels (`zone=z1,rack=r1`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Parses `500ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 5s, 2m"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s or m"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `key=value` pairs separated by commas.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("invalid label {pair:?}: expected key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_labels_parse() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("0s").is_err());
        let l = parse_labels("zone=z1, rack=r1").expect("labels");
        assert_eq!(l.get("rack").map(String::as_str), Some("r1"));
        assert!(parse_labels("zone").is_err());
    }
}
