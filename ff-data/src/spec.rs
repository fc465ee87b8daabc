//! Naming a data set on the command line ([`DataSpec`]) and loading it with the project's split
//! conventions ([`load`]).

use crate::builtin::builtin_vowels_train_test;
use crate::csv::{read_labelled_csv, CsvOptions, LabelColumn};
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
/// | `vowels` | the built-in 7-vowel Hillenbrand subset (258 tokens, women) |
/// | `vowels:FILE` | Hillenbrand vowels from `FILE` (CSV or `vowdata.dat`, detected) |
/// | `mnist:DIR` or `mnist` | MNIST IDX files in `DIR` (default `data/mnist`) |
/// | `fashion:DIR`, `fashion-mnist:DIR` or `fashion` | Fashion-MNIST in `DIR` (default `data/fashion-mnist`) |
/// | `csv:FILE` | a labelled CSV file, label in the last column |
/// | `csv:FILE#label=NAME` | label in the column whose header is `NAME` |
/// | `csv:FILE#label=3` | label in column 3 (0-based: the fourth column) |
/// | `csv:FILE#label=last` | label in the last column (the default) |
///
/// The text after `#label=` is a column index if it is all digits, `last`, or else a header name
/// (so a column whose header is made of digits cannot be named; use its index). The file path is
/// everything between `csv:` and the last `#label=`.
///
/// # Examples
/// ```
/// use ff_data::DataSpec;
/// assert_eq!("digits".parse::<DataSpec>().unwrap(), DataSpec::Digits);
/// assert_eq!("vowels".parse::<DataSpec>().unwrap(), DataSpec::BuiltinVowels);
/// assert_eq!(
///     "vowels:data/v.csv".parse::<DataSpec>().unwrap(),
///     DataSpec::Vowels("data/v.csv".into())
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// The built-in 8 x 8 handwritten digits.
    Digits,
    /// The built-in 7-vowel Hillenbrand subset ([`crate::builtin_vowels`]): women, 258 tokens.
    BuiltinVowels,
    /// Hillenbrand vowel formants from a CSV or `vowdata.dat` file (format detected by extension
    /// or content); women, the 7 paper vowels, tokens with missing values dropped.
    Vowels(PathBuf),
    /// MNIST: a directory holding the four standard IDX files (plain or `.gz`).
    Mnist(PathBuf),
    /// Fashion-MNIST: a directory holding the four standard IDX files (plain or `.gz`).
    Fashion(PathBuf),
    /// A labelled CSV file (numeric features; header detected, see [`crate::HeaderMode::Auto`]).
    Csv {
        /// The file.
        path: PathBuf,
        /// Where the label is.
        label: LabelColumn,
    },
}

/// The accepted forms, for error messages.
const SYNTAX: &str = "digits, vowels[:FILE], mnist[:DIR], fashion[:DIR], csv:FILE[#label=NAME|INDEX]";

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Spec { spec: s.to_string(), message };
        let spec = s.trim();
        let (kind, arg) = match spec.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (spec, None),
        };
        let path = |what: &str| match arg {
            Some(a) if !a.is_empty() => Ok(PathBuf::from(a)),
            _ => Err(bad(format!("{kind} needs a {what}: \"{kind}:{}\"", what.to_uppercase()))),
        };
        let dir = |set: ImageSet| match arg {
            None => Ok(set.default_dir()),
            Some(_) => path("directory"),
        };
        match kind {
            "digits" if arg.is_none() => Ok(DataSpec::Digits),
            "digits" => Err(bad("the built-in digits take no argument: \"digits\"".into())),
            "vowels" if arg.is_none() => Ok(DataSpec::BuiltinVowels),
            "vowels" => Ok(DataSpec::Vowels(path("file")?)),
            "mnist" => Ok(DataSpec::Mnist(dir(ImageSet::Mnist)?)),
            "fashion" | "fashion-mnist" => Ok(DataSpec::Fashion(dir(ImageSet::FashionMnist)?)),
            "csv" => {
                let arg = path("file")?.to_string_lossy().into_owned();
                let (file, label) = match arg.rsplit_once("#label=") {
                    None => (arg.as_str(), LabelColumn::Last),
                    Some((_, "")) => return Err(bad("\"#label=\" needs a column name or index".into())),
                    Some((f, "last")) => (f, LabelColumn::Last),
                    Some((f, l)) if l.bytes().all(|b| b.is_ascii_digit()) => match l.parse() {
                        Ok(i) => (f, LabelColumn::Index(i)),
                        Err(_) => return Err(bad(format!("column index {l} is too large"))),
                    },
                    Some((f, l)) => (f, LabelColumn::Name(l.to_string())),
                };
                if file.is_empty() {
                    return Err(bad("csv needs a file: \"csv:FILE\"".into()));
                }
                Ok(DataSpec::Csv { path: PathBuf::from(file), label })
            }
            other => Err(bad(format!("unknown data set {other:?}; expected one of: {SYNTAX}"))),
        }
    }
}

/// Loads a data set as a train/test pair, with these conventions:
///
/// - [`DataSpec::Digits`]: 80/20, stratified, shuffled with `seed` (1 437 / 360).
/// - [`DataSpec::BuiltinVowels`], [`DataSpec::Vowels`]: default [`VowelOptions`] (women, 7 vowels, drop missing) and the paper's
///   preprocessing ([`crate::paper_preprocess`]: shuffle, z-score, shift to >= 0, first 80 % train,
///   8 leading zeros): 206 / 52 for `hillenbrand-women-7.csv`.
/// - [`DataSpec::Mnist`], [`DataSpec::Fashion`]: the standard split (60 000 `train-*` /
///   10 000 `t10k-*`, `seed` unused), pixels normalised with mean 0.1307 and std 0.3081 (MNIST's
///   statistics, for both).
/// - [`DataSpec::Csv`]: 80/20, stratified, shuffled with `seed`.
///
/// # Errors
/// Whatever the loader reports: see [`DataError`].
pub fn load<F: Real>(spec: &DataSpec, seed: u64) -> Result<TrainTest<F>, DataError> {
    match spec {
        DataSpec::Digits => digits_train_test(seed),
        DataSpec::BuiltinVowels => builtin_vowels_train_test(&VowelOptions::default(), VowelPreprocessing::Paper, seed),
        DataSpec::Vowels(path) => load_vowels(path, &VowelOptions::default(), VowelPreprocessing::Paper, seed),
        DataSpec::Mnist(dir) => load_mnist(dir),
        DataSpec::Fashion(dir) => load_fashion_mnist(dir),
        DataSpec::Csv { path, label } => {
            read_labelled_csv::<F>(path, &CsvOptions { label: label.clone(), ..CsvOptions::default() })?
                .train_test(0.2, seed, true)
        }
    }
}
