//! Vowel formants of Hillenbrand et al. (1995), "Acoustic characteristics of American English
//! vowels", J. Acoust. Soc. Am. 97, 3099.
//!
//! Two file formats are read:
//! - **CSV** (`hillenbrand-women-7.csv`): a header naming the columns; `vowel`, `speaker` (or
//!   `token`) and the 12 feature columns of [`VOWEL_FEATURES`] are required, in any order; other
//!   columns are ignored.
//! - **`vowdata.dat`**, the authors' text file: a free-text header block, then one token per line,
//!   16 whitespace-separated fields: the file name (`w01ae`: group letter `m`/`w`/`b`/`g`, speaker
//!   number, vowel code), duration (ms), F0, F1-F4 at the steady state, then F1-F3 at 20 %, 50 %
//!   and 80 % of the duration. Line ends may be CRLF.
//!
//! Both give the same 12 features (Hz), in this order: F1, F2, F3 at the steady state, then at
//! 20 %, 50 % and 80 % of the duration. In the data a **0 means "not measurable"**; the
//! [`MissingPolicy`] says what happens to such tokens.
//!
//! Finding (checked by a test): all 258 tokens of `hillenbrand-women-7.csv` appear unchanged in
//! `vowdata.dat`. The women's tokens of the 7 vowels there number 336 (48 speakers x 7); 20 of them
//! have a missing (0) feature, so [`MissingPolicy::Drop`] gives 316 tokens. The CSV is a further
//! subset of those 316 (37 tokens per vowel, 36 for `uw`) whose selection rule is not documented.

mod formats;
mod paper;
#[cfg(test)]
mod tests;

pub use paper::paper_preprocess;

use crate::dataset::{Dataset, Layout, TrainTest};
use crate::error::DataError;
use crate::text::{cells, read_text, to_precision};
use ff_core::{Matrix, Real};
use formats::{parse_csv_tokens, parse_vowdata_tokens};
use std::path::Path;

/// The 12 vowel codes of the database, with the word each was recorded in: `ae` "had", `ah` "hod",
/// `aw` "hawed", `eh` "head", `er` "heard", `ei` "haid", `ih` "hid", `iy` "heed", `oa` "boat",
/// `oo` "hood", `uh` "hud", `uw` "who'd".
pub const VOWEL_CODES: [&str; 12] = ["ae", "ah", "aw", "eh", "er", "ei", "ih", "iy", "oa", "oo", "uh", "uw"];

/// The 7 vowel classes of the paper and of `hillenbrand-women-7.csv`, in class-index order.
pub const PAPER_VOWELS: [&str; 7] = ["ae", "ah", "aw", "er", "ih", "iy", "uw"];

/// The 12 features, as named in the CSV header (case-insensitive), in column order of the result.
pub const VOWEL_FEATURES: [&str; 12] = [
    "f1_steady",
    "f2_steady",
    "f3_steady",
    "f1_20",
    "f2_20",
    "f3_20",
    "f1_50",
    "f2_50",
    "f3_50",
    "f1_80",
    "f2_80",
    "f3_80",
];

/// Number of zero entries the paper's preprocessing prepends (where the label is written).
pub const PAPER_RESERVED_LEADING: usize = 8;

/// A speaker group of the database, named by the first letter of a token's file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpeakerGroup {
    /// Adult men (`m`).
    Men,
    /// Adult women (`w`).
    Women,
    /// Boys (`b`).
    Boys,
    /// Girls (`g`).
    Girls,
}

impl SpeakerGroup {
    /// All four groups.
    pub const ALL: [SpeakerGroup; 4] =
        [SpeakerGroup::Men, SpeakerGroup::Women, SpeakerGroup::Boys, SpeakerGroup::Girls];

    /// The letter that opens the group's token names.
    pub fn letter(self) -> char {
        match self {
            SpeakerGroup::Men => 'm',
            SpeakerGroup::Women => 'w',
            SpeakerGroup::Boys => 'b',
            SpeakerGroup::Girls => 'g',
        }
    }

    /// The group of a token-name letter (`m`, `w`, `b`, `g`; case-insensitive).
    pub fn from_letter(c: char) -> Option<SpeakerGroup> {
        match c.to_ascii_lowercase() {
            'm' => Some(SpeakerGroup::Men),
            'w' => Some(SpeakerGroup::Women),
            'b' => Some(SpeakerGroup::Boys),
            'g' => Some(SpeakerGroup::Girls),
            _ => None,
        }
    }
}

/// What to do with a token whose selected features include a 0 ("not measurable").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingPolicy {
    /// Drop the token (the default).
    #[default]
    Drop,
    /// Replace each missing value by the mean of that feature over the measured tokens of the
    /// same vowel class (among the selected groups).
    Impute,
}

/// Which tokens to load and how to treat missing values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VowelOptions {
    /// Speaker groups to keep (default: women only).
    pub groups: Vec<SpeakerGroup>,
    /// Vowel codes to keep; their order gives the class indices (default: [`PAPER_VOWELS`]).
    pub vowels: Vec<String>,
    /// Treatment of missing (0) values (default: [`MissingPolicy::Drop`]).
    pub missing: MissingPolicy,
}

impl Default for VowelOptions {
    fn default() -> Self {
        VowelOptions {
            groups: vec![SpeakerGroup::Women],
            vowels: PAPER_VOWELS.iter().map(|s| s.to_string()).collect(),
            missing: MissingPolicy::Drop,
        }
    }
}

impl VowelOptions {
    /// Checks the options: at least one group, at least one vowel, every vowel a known code,
    /// no duplicates.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the offending option.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.groups.is_empty() {
            return Err(DataError::invalid("groups", "select at least one speaker group"));
        }
        if self.vowels.is_empty() {
            return Err(DataError::invalid("vowels", "select at least one vowel class"));
        }
        for (i, v) in self.vowels.iter().enumerate() {
            if !VOWEL_CODES.contains(&v.as_str()) {
                return Err(DataError::invalid(
                    "vowels",
                    format!("unknown vowel code {v:?}; known codes: {}", VOWEL_CODES.join(", ")),
                ));
            }
            if self.vowels[..i].contains(v) {
                return Err(DataError::invalid("vowels", format!("vowel {v:?} is listed twice")));
            }
        }
        Ok(())
    }
}

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VowelFormat {
    /// A CSV file with a header (like `hillenbrand-women-7.csv`).
    Csv,
    /// The authors' `vowdata.dat` text format.
    Vowdata,
}

impl VowelFormat {
    /// Guesses the format: by extension (`.csv` / `.dat`), else by content (a first non-empty
    /// line with a comma and a `vowel` column is CSV).
    pub fn detect(path: Option<&Path>, text: &str) -> VowelFormat {
        match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => return VowelFormat::Csv,
            Some(e) if e.eq_ignore_ascii_case("dat") => return VowelFormat::Vowdata,
            _ => {}
        }
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if first.contains(',') && cells(first).any(|c| c.eq_ignore_ascii_case("vowel")) {
            VowelFormat::Csv
        } else {
            VowelFormat::Vowdata
        }
    }
}

/// The preprocessing applied by [`load_vowels`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VowelPreprocessing {
    /// Raw formants (Hz), stratified seeded 80/20 split, no reserved entries.
    Raw,
    /// The public PhyLL code's preprocessing, see [`paper_preprocess`] (the default).
    #[default]
    Paper,
}

/// One parsed token.
struct Token {
    line: usize,
    group: SpeakerGroup,
    /// Index into [`VOWEL_CODES`].
    vowel: usize,
    features: [f64; 12],
}

/// Largest vowel file read, in bytes of text (`vowdata.dat`, the whole database, is 123 KiB).
const MAX_VOWEL_FILE: usize = 64 << 20;

/// Reads a vowel file, detecting its format ([`VowelFormat::detect`]), and selects tokens.
/// The file is read line by line, with lines of at most 16 MiB and 64 MiB in all.
///
/// # Errors
/// [`DataError::NotFound`] / [`DataError::NotAFile`] / [`DataError::Io`] if the file cannot be
/// read; [`DataError::Parse`] for a line or a file beyond those bounds, or invalid UTF-8;
/// otherwise as [`parse_vowels`].
pub fn read_vowels<F: Real>(path: &Path, opts: &VowelOptions) -> Result<Dataset<F>, DataError> {
    let text = read_text(
        path,
        "vowel file",
        "a vowel file",
        "check the path: pass a Hillenbrand CSV or the authors' vowdata.dat, \
         or use the built-in 7-vowel subset with `vowels` (no path)",
        MAX_VOWEL_FILE,
    )?;
    let file = path.display().to_string();
    let format = VowelFormat::detect(Some(path), &text);
    parse_vowels(&text, &file, format, opts)
}

/// Parses vowel data in the given format and selects the tokens of `opts`, in file order,
/// labelled by the position of their vowel in `opts.vowels`. The result has the 12
/// [`VOWEL_FEATURES`] (Hz) and `Layout::Vector { reserved_leading: 0 }`.
///
/// Every line is checked, also those of tokens that are not selected.
///
/// # Errors
/// [`DataError::Invalid`] for bad options; [`DataError::Parse`] naming the line for a wrong
/// number of fields, a non-numeric, negative, NaN or infinite value, an unknown vowel code or
/// speaker group, a missing CSV column, a selected value that overflows `F` (`1e39` in `f32`);
/// [`DataError::Empty`] if a selected class ends up without tokens, or (with
/// [`MissingPolicy::Impute`]) a feature is missing in every token of a class.
pub fn parse_vowels<F: Real>(
    text: &str,
    file: &str,
    format: VowelFormat,
    opts: &VowelOptions,
) -> Result<Dataset<F>, DataError> {
    opts.validate()?;
    let tokens = match format {
        VowelFormat::Csv => parse_csv_tokens(text, file)?,
        VowelFormat::Vowdata => parse_vowdata_tokens(text, file)?,
    };
    select(tokens, file, opts)
}

/// Keeps the tokens of the selected groups and vowels, handles missing values, builds the set.
fn select<F: Real>(tokens: Vec<Token>, file: &str, opts: &VowelOptions) -> Result<Dataset<F>, DataError> {
    let class_of: Vec<Option<usize>> =
        VOWEL_CODES.iter().map(|code| opts.vowels.iter().position(|v| v == code)).collect();
    let mut kept: Vec<(usize, Token)> = tokens
        .into_iter()
        .filter(|t| opts.groups.contains(&t.group))
        .filter_map(|t| class_of[t.vowel].map(|c| (c, t)))
        .collect();
    let k = opts.vowels.len();
    let is_missing = |t: &Token| t.features.contains(&0.0);
    match opts.missing {
        MissingPolicy::Drop => kept.retain(|(_, t)| !is_missing(t)),
        MissingPolicy::Impute => {
            // Class means over the measured values.
            let mut sum = vec![[0.0f64; 12]; k];
            let mut count = vec![[0usize; 12]; k];
            for (c, t) in &kept {
                for (j, &v) in t.features.iter().enumerate() {
                    if v != 0.0 {
                        sum[*c][j] += v;
                        count[*c][j] += 1;
                    }
                }
            }
            for (c, t) in &mut kept {
                for j in 0..12 {
                    if t.features[j] == 0.0 {
                        if count[*c][j] == 0 {
                            return Err(DataError::empty(
                                file,
                                format!(
                                    "cannot impute {} of vowel {:?} (line {}): no token of that \
                                     class has it measured",
                                    VOWEL_FEATURES[j], opts.vowels[*c], t.line
                                ),
                            ));
                        }
                        t.features[j] = sum[*c][j] / count[*c][j] as f64;
                    }
                }
            }
        }
    }
    let mut per_class = vec![0usize; k];
    for (c, _) in &kept {
        per_class[*c] += 1;
    }
    if let Some(c) = per_class.iter().position(|&n| n == 0) {
        let groups: Vec<String> = opts.groups.iter().map(|g| format!("{g:?}").to_lowercase()).collect();
        return Err(DataError::empty(
            file,
            format!(
                "vowel class {:?} has no tokens for speaker groups [{}] (policy for missing values: {:?})",
                opts.vowels[c],
                groups.join(", "),
                opts.missing
            ),
        ));
    }
    let n = kept.len();
    let mut data = Vec::with_capacity(n * 12);
    let mut y = Vec::with_capacity(n);
    for (c, t) in &kept {
        for (&v, name) in t.features.iter().zip(VOWEL_FEATURES) {
            data.push(to_precision::<F>(v, file, t.line, || format!("feature {name}"))?);
        }
        y.push(*c);
    }
    let x = Matrix::from_vec(n, 12, data).map_err(|e| DataError::empty(file, e.to_string()))?;
    Ok(Dataset {
        name: "vowels".into(),
        x,
        y,
        num_classes: k,
        class_names: opts.vowels.clone(),
        layout: Layout::Vector { reserved_leading: 0 },
    })
}

/// Reads a vowel file ([`read_vowels`]) and prepares a train/test pair: with
/// [`VowelPreprocessing::Paper`] as [`paper_preprocess`]; with [`VowelPreprocessing::Raw`] the
/// formants in Hz, stratified seeded 80/20 split.
///
/// # Errors
/// As [`read_vowels`] and [`paper_preprocess`].
pub fn load_vowels<F: Real>(
    path: &Path,
    opts: &VowelOptions,
    preprocessing: VowelPreprocessing,
    seed: u64,
) -> Result<TrainTest<F>, DataError> {
    split_vowels(&read_vowels::<F>(path, opts)?, preprocessing, seed)
}

/// Prepares a train/test pair from parsed vowels, as [`load_vowels`] describes (shared with the
/// built-in subset).
pub(crate) fn split_vowels<F: Real>(
    data: &Dataset<F>,
    preprocessing: VowelPreprocessing,
    seed: u64,
) -> Result<TrainTest<F>, DataError> {
    match preprocessing {
        VowelPreprocessing::Paper => paper_preprocess(data, seed),
        VowelPreprocessing::Raw => data.train_test(0.2, seed, true),
    }
}
