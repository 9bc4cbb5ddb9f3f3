//! Numbers as people write them on the command line: byte sizes (`200M`, `1.5GiB`) and
//! lists separated by commas or whitespace (`--ids 1,2,3`, `--shape 4,3`).

use std::fmt::Display;
use std::str::FromStr;

use thiserror::Error;

/// Why a size or a list was refused; the text shows what was given.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum NumberError {
    /// The number part of a size does not parse.
    #[error("{text:?}: {reason}")]
    BadSize {
        /// The whole text.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A size's unit is none of B, K, M, G (with an optional `i` and `B`).
    #[error("{text:?}: unknown unit {unit:?}")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit as given.
        unit: String,
    },
    /// A negative size, or one of 2^64 bytes or more.
    #[error("{text:?}: a size must be at least 0 and under 2^64 bytes")]
    OutOfRange {
        /// The whole text.
        text: String,
    },
    /// An item of a list does not parse.
    #[error("{what}: cannot read {item:?}: {reason}")]
    BadItem {
        /// The flag the list was given to.
        what: String,
        /// The item.
        item: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Parses a byte size: a number with an optional binary unit (`K`/`Ki`, `M`/`Mi`, `G`/`Gi`,
/// each with an optional `B`: `200M` and `200MiB` are both 200 × 2^20 bytes). Whole numbers
/// are exact; a fraction of a byte is dropped. Negative sizes and sizes of 2^64 bytes or more
/// are refused.
pub fn parse_size(text: &str) -> Result<u64, NumberError> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len()));
    let digits = digits.trim();
    let out_of_range = || NumberError::OutOfRange { text: text.into() };
    let n: f64 = digits.parse().map_err(|e| NumberError::BadSize {
        text: text.into(),
        reason: format!("{e}"),
    })?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches("b") {
        "" => 0,
        "k" | "ki" => 10,
        "m" | "mi" => 20,
        "g" | "gi" => 30,
        other => {
            return Err(NumberError::UnknownUnit {
                text: text.into(),
                unit: other.into(),
            })
        }
    };
    if n.is_sign_negative() {
        return Err(out_of_range());
    }
    // An f64 holds whole numbers exactly only up to 2^53: read those as integers.
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        let whole: u64 = digits.parse().map_err(|_| out_of_range())?;
        return whole.checked_mul(1 << shift).ok_or_else(out_of_range);
    }
    let bytes = n * (1u64 << shift) as f64;
    // 2^64 itself is the first value a u64 cannot hold.
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(out_of_range());
    }
    Ok(bytes as u64)
}

/// Parses a list of numbers separated by commas or whitespace (empty items are skipped);
/// `what` names the flag in errors.
pub fn parse_list<T>(what: &str, text: &str) -> Result<Vec<T>, NumberError>
where
    T: FromStr,
    T::Err: Display,
{
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>().map_err(|e| NumberError::BadItem {
                what: what.into(),
                item: s.into(),
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lists_parse() {
        assert_eq!(parse_size("200M"), Ok(200 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size(" 42 "), Ok(42));
        assert!(matches!(
            parse_size("3 parsecs"),
            Err(NumberError::UnknownUnit { .. })
        ));
        assert_eq!(
            parse_list::<u64>("--ids", "1, 2 3,,4"),
            Ok(vec![1, 2, 3, 4])
        );
        let e = parse_list::<u32>("--shape", "4,x").expect_err("x");
        assert!(
            e.to_string().starts_with("--shape: cannot read \"x\""),
            "{e}"
        );
    }
}
