//! Naming a data set on the command line ([`DataSpec`]) and loading it with the project's split
//! conventions ([`load`]).

use crate::builtin::builtin_vowels_train_test;
use crate::csv::{parse_delimiter, read_labelled_csv, CsvOptions, LabelColumn};
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
/// | `csv:FILE` | a labelled CSV file (RFC 4180, comma-separated), label in the last column |
/// | `csv:FILE#label=NAME` | label in the column whose header is `NAME` |
/// | `csv:FILE#label=3` | label in column 3 (0-based: the fourth column) |
/// | `csv:FILE#label=last` | label in the last column (the default) |
/// | `csv:FILE#delim=;` | cells separated by `;` (any one ASCII character but `"`, `'` and line breaks) |
/// | `csv:FILE#delim=tab` | cells separated by tabs (also `#delim=\t`) |
/// | `csv:FILE#delim=;#label=species` | both options, in either order |
///
/// The file path is everything between `csv:` and the first `#label=` or `#delim=`; each option
/// runs to the next `#label=` or `#delim=` or the end, and may be given once. The text after
/// `#label=` is a column index if it is all digits, `last`, or else a header name (so a column
/// whose header is made of digits cannot be named; use its index). The CSV dialect (quotes,
/// header detection, how labels become classes) is described in [`crate::parse_labelled_csv`].
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
/// assert_eq!(
///     "csv:v.tsv#delim=tab#label=vowel".parse::<DataSpec>().unwrap(),
///     DataSpec::Csv {
///         path: "v.tsv".into(),
///         label: ff_data::LabelColumn::Name("vowel".into()),
///         delimiter: b'\t',
///     }
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
        /// The byte that separates cells (`b','` unless `#delim=` says otherwise).
        delimiter: u8,
    },
}

/// The accepted forms, for error messages.
const SYNTAX: &str =
    "digits, vowels[:FILE], mnist[:DIR], fashion[:DIR], csv:FILE[#label=NAME|INDEX|last][#delim=CHAR|tab]";

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
                parse_csv_spec(&arg).map_err(bad)
            }
            other => Err(bad(format!("unknown data set {other:?}; expected one of: {SYNTAX}"))),
        }
    }
}

/// The options of a `csv:` spec.
const CSV_OPTIONS: [&str; 2] = ["#label=", "#delim="];

/// Parses the argument of `csv:` (`FILE`, then `#label=...` and `#delim=...` in any order).
fn parse_csv_spec(arg: &str) -> Result<DataSpec, String> {
    let next_option = |s: &str| CSV_OPTIONS.iter().filter_map(|o| s.find(o)).min();
    let (file, mut rest) = arg.split_at(next_option(arg).unwrap_or(arg.len()));
    if file.is_empty() {
        return Err("csv needs a file before its options: \"csv:FILE#label=NAME\"".into());
    }
    let (mut label, mut delimiter) = (None, None);
    while let Some(option) = CSV_OPTIONS.iter().find(|o| rest.starts_with(**o)) {
        let after = &rest[option.len()..];
        let end = next_option(after).unwrap_or(after.len());
        let value = &after[..end];
        rest = &after[end..];
        if *option == "#label=" {
            if label.is_some() {
                return Err("#label= is given twice; give it once".into());
            }
            label = Some(match value {
                "" => return Err("\"#label=\" needs a column name or index (#label=species, #label=0)".into()),
                "last" => LabelColumn::Last,
                l if l.bytes().all(|b| b.is_ascii_digit()) => match l.parse() {
                    Ok(i) => LabelColumn::Index(i),
                    Err(_) => return Err(format!("column index {l} is too large")),
                },
                l => LabelColumn::Name(l.to_string()),
            });
        } else {
            if delimiter.is_some() {
                return Err("#delim= is given twice; give it once".into());
            }
            delimiter = Some(parse_delimiter(value)?);
        }
    }
    Ok(DataSpec::Csv {
        path: PathBuf::from(file),
        label: label.unwrap_or_default(),
        delimiter: delimiter.unwrap_or(b','),
    })
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
        DataSpec::Csv { path, label, delimiter } => read_labelled_csv::<F>(
            path,
            &CsvOptions { label: label.clone(), delimiter: *delimiter, ..CsvOptions::default() },
        )?
        .train_test(0.2, seed, true),
    }
}
