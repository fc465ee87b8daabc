//! Naming a data set on the command line ([`DataSpec`]) and loading it with the project's split
//! conventions ([`load`]).

use crate::dataset::TrainTest;
use crate::digits::digits_train_test;
use crate::error::DataError;
use ff_core::Real;
use std::str::FromStr;

/// A data set as named in a configuration file or on the command line.
///
/// The string syntax ([`FromStr`]):
///
/// | string | data set |
/// |---|---|
/// | `digits` | the built-in 8 x 8 digits |
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// The built-in 8 x 8 handwritten digits.
    Digits,
}

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Spec {
            spec: s.to_string(),
            message,
        };
        match s.trim() {
            "digits" => Ok(DataSpec::Digits),
            other => Err(bad(format!(
                "unknown data set {other:?}; expected \"digits\""
            ))),
        }
    }
}

/// Loads a data set as a train/test pair, with these conventions:
///
/// - [`DataSpec::Digits`]: 80/20, stratified, shuffled with `seed` (1 437 / 360).
///
/// # Errors
/// Whatever the loader reports: see [`DataError`].
pub fn load<F: Real>(spec: &DataSpec, seed: u64) -> Result<TrainTest<F>, DataError> {
    match spec {
        DataSpec::Digits => digits_train_test(seed),
    }
}
