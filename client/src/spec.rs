//! Table and dense-tensor spec pieces written as text by users (the CLI's flags, the Python
//! package's keyword arguments).

use thiserror::Error;

use strata_proto::v1 as pb;

/// Why an initializer's text was refused; the text shows what was given.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InitializerError {
    /// The argument after `:` is not a number.
    #[error("{text:?}: bad number {arg:?}: {reason}")]
    BadNumber {
        /// The whole text.
        text: String,
        /// The part after `:`.
        arg: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A scale that is negative or not finite (the servers refuse it too).
    #[error("{text:?}: the scale must be finite and >= 0")]
    BadScale {
        /// The whole text.
        text: String,
    },
    /// Neither `zeros`, `uniform:A` nor `normal:STD`.
    #[error("{text:?}: expected zeros, uniform:A or normal:STD")]
    Unknown {
        /// The whole text.
        text: String,
    },
}

/// Parses an initializer: `zeros`, `uniform:A` (in [-A, A)) or `normal:STD`, with a finite
/// scale `>= 0`.
pub fn parse_initializer(text: &str) -> Result<pb::InitializerSpec, InitializerError> {
    let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
    let scale = if arg.is_empty() {
        0.0
    } else {
        arg.parse::<f32>()
            .map_err(|e| InitializerError::BadNumber {
                text: text.into(),
                arg: arg.into(),
                reason: e.to_string(),
            })?
    };
    match kind {
        "zeros" if arg.is_empty() => Ok(pb::InitializerSpec {
            kind: "zeros".into(),
            scale: 0.0,
        }),
        "uniform" | "normal" if !arg.is_empty() && scale.is_finite() && scale >= 0.0 => {
            Ok(pb::InitializerSpec {
                kind: kind.into(),
                scale,
            })
        }
        "uniform" | "normal" if !arg.is_empty() => {
            Err(InitializerError::BadScale { text: text.into() })
        }
        _ => Err(InitializerError::Unknown { text: text.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initializers_parse_and_refuse_clearly() {
        assert_eq!(
            parse_initializer("zeros").map(|s| s.kind),
            Ok("zeros".into())
        );
        let u = parse_initializer("uniform:0.5").expect("uniform");
        assert_eq!((u.kind.as_str(), u.scale), ("uniform", 0.5));
        assert!(matches!(
            parse_initializer("normal:x"),
            Err(InitializerError::BadNumber { .. })
        ));
        // Found by fuzzing (cli_numbers): "normal:-70.5" was accepted, for the server to refuse.
        for bad in ["normal:-70.5", "uniform:inf", "uniform:NaN"] {
            assert_eq!(
                parse_initializer(bad),
                Err(InitializerError::BadScale { text: bad.into() })
            );
        }
        for bad in ["gaussian", "zeros:1", "uniform"] {
            let e = parse_initializer(bad).expect_err(bad);
            assert!(
                e.to_string().contains("zeros, uniform:A or normal:STD"),
                "{e}"
            );
        }
    }
}
