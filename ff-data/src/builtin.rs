//! Data compiled into the crate besides the digits: the 7-vowel Hillenbrand subset and the
//! measured input/output pairs of the acoustic physical layer, both from the public PhyLL code
//! (MIT licence; provenance, checksums and licence in `ff-data/data/README.md` and
//! `ff-data/data/LICENSE-phyll`). Nothing is read from disk: a fresh clone trains on them.

use crate::csv::parse_numeric_csv;
use crate::dataset::{Dataset, TrainTest};
use crate::error::DataError;
use crate::vowels::{parse_vowels, split_vowels, VowelFormat, VowelOptions, VowelPreprocessing};
use ff_core::{Matrix, Real};

/// The 258-token subset (women, 7 vowels) as CSV text, unchanged from the public PhyLL code.
const VOWELS_CSV: &str = include_str!("../data/vowels/hillenbrand-women-7.csv");
/// The 10 001 inputs sent to the acoustic layer (20 amplitudes in `[0, 1]` per row), gzip.
const ACOUSTIC_X_GZ: &[u8] = include_bytes!("../data/phyll-acoustic/x_data.csv.gz");
/// The 10 001 measured outputs (20 non-negative features per row), gzip.
const ACOUSTIC_Y_GZ: &[u8] = include_bytes!("../data/phyll-acoustic/y_data.csv.gz");

/// Name of the built-in vowel file in error messages and reports.
pub const BUILTIN_VOWELS_FILE: &str = "hillenbrand-women-7.csv (built into ff-data)";
/// Name of the built-in measured acoustic inputs in error messages and reports.
pub const BUILTIN_ACOUSTIC_X_FILE: &str = "phyll-acoustic/x_data.csv (built into ff-data)";
/// Name of the built-in measured acoustic outputs in error messages and reports.
pub const BUILTIN_ACOUSTIC_Y_FILE: &str = "phyll-acoustic/y_data.csv (built into ff-data)";
/// Rows of each built-in acoustic pair file (the first row is the all-zero input).
pub const BUILTIN_ACOUSTIC_ROWS: usize = 10_001;
/// Width of the built-in acoustic inputs and outputs (20 tones in, 20 features out).
pub const BUILTIN_ACOUSTIC_WIDTH: usize = 20;

/// The built-in 7-vowel subset of Hillenbrand et al. (1995): 258 tokens of women speakers, the
/// 12 formant frequencies (Hz) of [`crate::VOWEL_FEATURES`], tokens selected by `opts` as in
/// [`parse_vowels`] (the default options keep all 258).
///
/// # Errors
/// As [`parse_vowels`] for options that select nothing (the data itself is tested).
///
/// # Examples
/// ```
/// let v = ff_data::builtin_vowels::<f64>(&ff_data::VowelOptions::default()).unwrap();
/// assert_eq!((v.len(), v.dim(), v.num_classes), (258, 12, 7));
/// ```
pub fn builtin_vowels<F: Real>(opts: &VowelOptions) -> Result<Dataset<F>, DataError> {
    parse_vowels(VOWELS_CSV, BUILTIN_VOWELS_FILE, VowelFormat::Csv, opts)
}

/// The built-in vowels as a train/test pair, prepared as [`crate::load_vowels`] prepares a file
/// (with [`VowelPreprocessing::Paper`]: 206 / 52 tokens, 20 features of which 8 leading zeros).
/// This is what `DataSpec::BuiltinVowels` (`--data vowels`) loads.
///
/// # Errors
/// As [`builtin_vowels`] and [`crate::paper_preprocess`].
pub fn builtin_vowels_train_test<F: Real>(
    opts: &VowelOptions,
    preprocessing: VowelPreprocessing,
    seed: u64,
) -> Result<TrainTest<F>, DataError> {
    split_vowels(&builtin_vowels::<F>(opts)?, preprocessing, seed)
}

/// The built-in measured input/output pairs of the acoustic physical layer of the PhyLL
/// experiment: `(x, y)`, each [`BUILTIN_ACOUSTIC_ROWS`] x [`BUILTIN_ACOUSTIC_WIDTH`], row `i` of
/// `y` the measured response to row `i` of `x` (the same layout as [`crate::read_pairs`] returns).
///
/// # Errors
/// Never in practice (the data is compiled in and tested); the signature shares the parser's.
///
/// # Examples
/// ```
/// let (x, y) = ff_data::builtin_acoustic_pairs::<f32>().unwrap();
/// assert_eq!((x.rows(), x.cols(), y.rows(), y.cols()), (10_001, 20, 10_001, 20));
/// ```
pub fn builtin_acoustic_pairs<F: Real>() -> Result<(Matrix<F>, Matrix<F>), DataError> {
    let x = parse_numeric_csv(ACOUSTIC_X_GZ, BUILTIN_ACOUSTIC_X_FILE)?;
    let y = parse_numeric_csv(ACOUSTIC_Y_GZ, BUILTIN_ACOUSTIC_Y_FILE)?;
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_vowels_are_the_whole_subset_in_seven_balanced_classes() {
        let v = builtin_vowels::<f64>(&VowelOptions::default()).unwrap();
        assert_eq!((v.len(), v.dim(), v.num_classes), (258, 12, 7));
        let mut counts = vec![0usize; 7];
        for &c in &v.y {
            counts[c] += 1;
        }
        // 37 tokens of each vowel but one, which has 36.
        assert_eq!(counts.iter().sum::<usize>(), 258);
        assert!(counts.iter().all(|&c| c == 36 || c == 37), "{counts:?}");
        // Formants in Hz: F1 of a woman's vowel lies between 200 and 1200 Hz.
        assert!((0..v.len()).all(|i| (200.0..1200.0).contains(&v.x.row(i)[0])));
    }

    #[test]
    fn the_built_in_vowels_split_as_the_paper_does() {
        let tt = builtin_vowels_train_test::<f32>(&VowelOptions::default(), VowelPreprocessing::Paper, 0).unwrap();
        assert_eq!((tt.train.len(), tt.test.len(), tt.train.dim()), (206, 52, 20));
    }

    #[test]
    fn the_built_in_pairs_have_the_documented_shape_and_range() {
        let (x, y) = builtin_acoustic_pairs::<f64>().unwrap();
        assert_eq!((x.rows(), x.cols()), (BUILTIN_ACOUSTIC_ROWS, BUILTIN_ACOUSTIC_WIDTH));
        assert_eq!((y.rows(), y.cols()), (BUILTIN_ACOUSTIC_ROWS, BUILTIN_ACOUSTIC_WIDTH));
        assert!(x.row(0).iter().all(|&v| v == 0.0), "the first input is all zeros");
        assert!(x.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(y.data().iter().all(|&v| v >= 0.0 && v.is_finite()));
        // The response depends on the input: outputs are not all the same row.
        assert!(y.row(1) != y.row(2));
    }
}
