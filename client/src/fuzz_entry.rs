//! The `cli_numbers` fuzz target's body (`fuzz/fuzz_targets/cli_numbers.rs`), also replayed
//! by this crate's tests over the seed corpus and every kept crash input.
//!
//! It feeds arbitrary text to the parsers of what users type as numbers — byte sizes, id,
//! shape and gradient lists, initializers — and asserts their properties: a panic here is
//! a finding. The input is the text (inputs that are not UTF-8 are skipped: the CLI only
//! receives strings).

use crate::numbers::{parse_list, parse_size};
use crate::spec::parse_initializer;

/// Runs every number parser of the CLI over `data` and checks their properties.
pub fn cli_numbers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    size(text);
    list::<u64>(text, |a, b| a == b);
    list::<u32>(text, |a, b| a == b);
    list::<f32>(text, |a, b| {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    });
    initializer(text);
}

/// A size is never written with a minus sign, its canonical forms read back the same, and
/// a unit never overflows silently.
fn size(text: &str) {
    let Ok(n) = parse_size(text) else {
        return;
    };
    assert!(!text.contains('-'), "{text:?}: negative size read as {n}");
    assert_eq!(
        parse_size(&n.to_string()),
        Ok(n),
        "{text:?}: {n} does not read back"
    );
    assert_eq!(parse_size(&format!("{n}B")), Ok(n), "{text:?}: {n}B");
    // The same number in KiB: exactly n × 1024 bytes, or refused when that overflows.
    match (parse_size(&format!("{n}KiB")), n.checked_mul(1024)) {
        (Ok(k), Some(expect)) => assert_eq!(k, expect, "{text:?}: {n}KiB"),
        (Err(_), None) => {}
        (got, expect) => panic!("{text:?}: {n}KiB read as {got:?}, expected {expect:?}"),
    }
}

/// A list has at most one item per two characters (plus one), and its items written back
/// with commas read back the same.
fn list<T>(text: &str, same: impl Fn(&T, &T) -> bool)
where
    T: std::str::FromStr + std::fmt::Display + std::fmt::Debug,
    T::Err: std::fmt::Display,
{
    let Ok(items) = parse_list::<T>("--list", text) else {
        return;
    };
    assert!(
        items.len() <= text.len().div_ceil(2),
        "{text:?}: {} items",
        items.len()
    );
    let written: Vec<String> = items.iter().map(ToString::to_string).collect();
    let back = parse_list::<T>("--list", &written.join(",")).expect("written items read back");
    assert_eq!(back.len(), items.len());
    for (a, b) in items.iter().zip(&back) {
        assert!(same(a, b), "{text:?}: {a:?} read back as {b:?}");
    }
}

/// An accepted initializer is one the servers accept (a finite, non-negative scale) and its
/// canonical text reads back the same.
fn initializer(text: &str) {
    let Ok(spec) = parse_initializer(text) else {
        return;
    };
    assert!(
        spec.scale.is_finite() && spec.scale >= 0.0,
        "{text:?}: scale {} accepted",
        spec.scale
    );
    let canonical = match spec.kind.as_str() {
        "zeros" => "zeros".to_string(),
        "uniform" | "normal" => format!("{}:{}", spec.kind, spec.scale),
        other => panic!("{text:?}: unknown kind {other:?} accepted"),
    };
    assert_eq!(parse_initializer(&canonical), Ok(spec), "{text:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(kind: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz")
            .join(kind)
            .join("cli_numbers")
    }

    /// Runs every file of `fuzz/<kind>/cli_numbers` (hidden files aside); returns how many.
    fn replay(kind: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(dir(kind)) else {
            return 0;
        };
        let mut n = 0;
        for entry in entries {
            let file = entry.expect("directory entry").path();
            if file
                .file_name()
                .is_some_and(|f| f.as_encoded_bytes().starts_with(b"."))
            {
                continue;
            }
            cli_numbers(&std::fs::read(&file).expect("readable input"));
            n += 1;
        }
        n
    }

    /// Regenerates the seed corpus: what users write, as in the README and `--help`:
    /// `cargo test -p strata-client write_cli_numbers_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus/cli_numbers"]
    fn write_cli_numbers_seeds() {
        let seeds = [
            ("size-mib", "64MiB"),
            ("size-fraction", "1.5G"),
            ("size-bytes", "1000000"),
            ("ids", "1,2,3"),
            ("ids-spaces", "7 8\n9, 10"),
            ("grads", "0.5,-1e-3,2"),
            ("shape", "4,3"),
            ("init-uniform", "uniform:0.01"),
            ("init-normal", "normal:0.5"),
            ("init-zeros", "zeros"),
        ];
        let out = dir("corpus");
        std::fs::create_dir_all(&out).expect("corpus directory");
        for (name, text) in seeds {
            std::fs::write(out.join(name), text).expect("write seed");
        }
    }

    #[test]
    fn cli_numbers_corpus_and_regressions_replay() {
        assert!(replay("corpus") > 0, "empty seed corpus");
        replay("regressions");
    }
}
