//! Naming a data set on the command line ([`DataSpec`]) and loading it with the project's split
//! conventions ([`load`]).

use crate::dataset::TrainTest;
use crate::digits::digits_train_test;
use crate::error::DataError;
use crate::mnist::{load_fashion_mnist, load_mnist, ImageSet};
use crate::vowels::{load_vowels, VowelOptions, VowelPreprocessing};
use ff_core::Real;
use std::path::PathBuf;
use std::str::FromStr;

/// A data set as named in a configuration file or on the command line.
///
/// The string syntax ([`FromStr`]):
///
/// | string | data set |
/// |---|---|
/// | `digits` | the built-in 8 x 8 digits |
/// | `vowels:FILE` | Hillenbrand vowels from `FILE` (CSV or `vowdata.dat`, detected) |
/// | `mnist:DIR` or `mnist` | MNIST IDX files in `DIR` (default `data/mnist`) |
/// | `fashion:DIR`, `fashion-mnist:DIR` or `fashion` | Fashion-MNIST in `DIR` (default `data/fashion-mnist`) |
///
/// # Examples
/// ```
/// use ff_data::DataSpec;
/// assert_eq!("digits".parse::<DataSpec>().unwrap(), DataSpec::Digits);
/// assert_eq!(
///     "vowels:data/v.csv".parse::<DataSpec>().unwrap(),
///     DataSpec::Vowels("data/v.csv".into())
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// The built-in 8 x 8 handwritten digits.
    Digits,
    /// Hillenbrand vowel formants from a CSV or `vowdata.dat` file (format detected by extension
    /// or content); women, the 7 paper vowels, tokens with missing values dropped.
    Vowels(PathBuf),
    /// MNIST: a directory holding the four standard IDX files (plain or `.gz`).
    Mnist(PathBuf),
    /// Fashion-MNIST: a directory holding the four standard IDX files (plain or `.gz`).
    Fashion(PathBuf),
}

/// The accepted forms, for error messages.
const SYNTAX: &str = "digits, vowels:FILE, mnist[:DIR], fashion[:DIR]";

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Spec {
            spec: s.to_string(),
            message,
        };
        let spec = s.trim();
        let (kind, arg) = match spec.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (spec, None),
        };
        let path = |what: &str| match arg {
            Some(a) if !a.is_empty() => Ok(PathBuf::from(a)),
            _ => Err(bad(format!(
                "{kind} needs a {what}: \"{kind}:{}\"",
                what.to_uppercase()
            ))),
        };
        let dir = |set: ImageSet| match arg {
            None => Ok(set.default_dir()),
            Some(_) => path("directory"),
        };
        match kind {
            "digits" if arg.is_none() => Ok(DataSpec::Digits),
            "digits" => Err(bad(
                "the built-in digits take no argument: \"digits\"".into()
            )),
            "vowels" => Ok(DataSpec::Vowels(path("file")?)),
            "mnist" => Ok(DataSpec::Mnist(dir(ImageSet::Mnist)?)),
            "fashion" | "fashion-mnist" => Ok(DataSpec::Fashion(dir(ImageSet::FashionMnist)?)),
            other => Err(bad(format!(
                "unknown data set {other:?}; expected one of: {SYNTAX}"
            ))),
        }
    }
}

/// Loads a data set as a train/test pair, with these conventions:
///
/// - [`DataSpec::Digits`]: 80/20, stratified, shuffled with `seed` (1 437 / 360).
/// - [`DataSpec::Vowels`]: default [`VowelOptions`] (women, 7 vowels, drop missing) and the paper's
///   preprocessing ([`crate::paper_preprocess`]: shuffle, z-score, shift to >= 0, first 80 % train,
///   8 leading zeros): 206 / 52 for `hillenbrand-women-7.csv`.
/// - [`DataSpec::Mnist`], [`DataSpec::Fashion`]: the standard split (60 000 `train-*` /
///   10 000 `t10k-*`, `seed` unused), pixels normalised with mean 0.1307 and std 0.3081 (MNIST's
///   statistics, for both).
///
/// # Errors
/// Whatever the loader reports: see [`DataError`].
pub fn load<F: Real>(spec: &DataSpec, seed: u64) -> Result<TrainTest<F>, DataError> {
    match spec {
        DataSpec::Digits => digits_train_test(seed),
        DataSpec::Vowels(path) => load_vowels(
            path,
            &VowelOptions::default(),
            VowelPreprocessing::Paper,
            seed,
        ),
        DataSpec::Mnist(dir) => load_mnist(dir),
        DataSpec::Fashion(dir) => load_fashion_mnist(dir),
    }
}
