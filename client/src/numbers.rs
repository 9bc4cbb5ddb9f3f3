//! Numbers as people write them on the command line: byte sizes (`200M`, `1.5GiB`),
//! durations (`500ms`, `3s`) and lists separated by commas or whitespace (`--ids 1,2,3`,
//! `--shape 4,3`).

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

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
    /// A duration that is not a finite, non-negative number with an optional unit.
    #[error("{text:?}: {reason} (expected e.g. 500ms, 3s, 2m, 1h; a bare number is seconds)")]
    BadDuration {
        /// The whole text.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Two separators with nothing between them (`1,,2`), or a comma at either end.
    #[error("{what}: empty item after {after} number(s) in {text:?} (two commas in a row, or a comma at an end?)")]
    EmptyItem {
        /// The flag the list was given to.
        what: String,
        /// How many numbers came before the empty item.
        after: usize,
        /// The whole text (cut to its first 80 characters).
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

/// Parses a duration: a number with an optional unit `ms`, `s`, `m` or `h` (a bare number is
/// seconds): `500ms`, `3s`, `1.5m`.
pub fn parse_duration(text: &str) -> Result<Duration, NumberError> {
    let bad = |reason: &str| NumberError::BadDuration {
        text: text.into(),
        reason: reason.into(),
    };
    let t = text.trim();
    let split = t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    let n: f64 = number.trim().parse().map_err(|_| bad("not a number"))?;
    let seconds = n * scale;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad("must be finite and not negative"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| bad("too long"))
}

/// Parses a list of numbers separated by commas, whitespace, or a comma with whitespace
/// around it (`1,2`, `1 2`, `1, 2`, one per line); `what` names the flag in errors. An empty
/// item (`1,,2`, a comma at either end) is refused rather than skipped: it is usually a
/// number lost by whatever wrote the list.
pub fn parse_list<T>(what: &str, text: &str) -> Result<Vec<T>, NumberError>
where
    T: FromStr,
    T::Err: Display,
{
    let mut items = Vec::new();
    // Commas since the last item (or since the start): more than one, or one before the
    // first item, means an empty item.
    let mut commas = 0usize;
    let empty = |after: usize| NumberError::EmptyItem {
        what: what.into(),
        after,
        text: text.chars().take(80).collect(),
    };
    for word in text.split_whitespace() {
        for (i, piece) in word.split(',').enumerate() {
            if i > 0 {
                commas += 1;
            }
            if piece.is_empty() {
                continue;
            }
            if commas > 1 || (commas == 1 && items.is_empty()) {
                return Err(empty(items.len()));
            }
            let item = piece.parse::<T>().map_err(|e| NumberError::BadItem {
                what: what.into(),
                item: piece.into(),
                reason: e.to_string(),
            })?;
            items.push(item);
            commas = 0;
        }
    }
    if commas > 0 {
        return Err(empty(items.len()));
    }
    Ok(items)
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
            parse_list::<u64>("--ids", "1, 2 3 ,4\n5\n"),
            Ok(vec![1, 2, 3, 4, 5])
        );
        assert_eq!(
            parse_list::<f32>("--grads", "-1,-2.5e-3"),
            Ok(vec![-1.0, -0.0025])
        );
        assert_eq!(parse_list::<u64>("--ids", "  "), Ok(vec![]));
        for bad in ["1,,2", "1, ,2", ",1", "1,", "1 , , 2"] {
            let e = parse_list::<u64>("--ids", bad).expect_err(bad);
            assert!(matches!(e, NumberError::EmptyItem { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("empty item"), "{bad}: {e}");
        }
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["-1s", "3 parsecs", "s", "inf"] {
            assert!(
                matches!(parse_duration(bad), Err(NumberError::BadDuration { .. })),
                "{bad}"
            );
        }
        let e = parse_list::<u32>("--shape", "4,x").expect_err("x");
        assert!(
            e.to_string().starts_with("--shape: cannot read \"x\""),
            "{e}"
        );
    }
}
