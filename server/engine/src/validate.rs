//! Checks of request values the engine does before any tier is touched.

use super::EngineError;

/// Checks that every value is finite; names the first that is not.
pub fn check_finite(values: &[f32]) -> Result<(), EngineError> {
    // Whole blocks without an early exit per value, so the test vectorizes; the slow
    // search below runs only for a refused payload.
    let finite = values
        .chunks(256)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()));
    if finite {
        return Ok(());
    }
    let (index, &value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .unwrap_or((0, &f32::NAN));
    Err(EngineError::NonFinite { index, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_finite_value_is_named() {
        assert_eq!(check_finite(&[0.0, 1.5]), Ok(()));
        assert_eq!(
            check_finite(&[0.0, f32::INFINITY]),
            Err(EngineError::NonFinite {
                index: 1,
                value: f32::INFINITY
            })
        );
        let mut long = vec![1.0f32; 1000];
        assert_eq!(check_finite(&long), Ok(()));
        long[777] = f32::NEG_INFINITY;
        long[900] = f32::NAN;
        assert_eq!(
            check_finite(&long),
            Err(EngineError::NonFinite {
                index: 777,
                value: f32::NEG_INFINITY
            })
        );
    }
}
