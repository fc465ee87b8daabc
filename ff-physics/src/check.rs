//! Shared checks of configuration values (one wording for every simulator's errors).

use ff_core::CoreError;

/// A [`CoreError::Config`] for `field`.
pub(crate) fn cfg_err(field: &str, message: String) -> CoreError {
    CoreError::config(field, message)
}

/// `v` must be finite and `> 0`.
pub(crate) fn check_positive(field: &str, v: f64) -> Result<(), CoreError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(cfg_err(field, format!("must be positive and finite, got {v}")))
    }
}

/// `v` must be finite and `>= 0`.
pub(crate) fn check_non_negative(field: &str, v: f64) -> Result<(), CoreError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(cfg_err(field, format!("must be >= 0 and finite, got {v}")))
    }
}
