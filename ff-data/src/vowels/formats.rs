//! The two vowel file formats: the CSV copy and the authors' `vowdata.dat`.

use super::{SpeakerGroup, Token, VOWEL_CODES, VOWEL_FEATURES};
use crate::error::DataError;
use crate::text::{cells, lines, number, show};

/// Where a `vowdata.dat` field of each feature is: 0-based field index on a token line.
const VOWDATA_FEATURE_FIELDS: [usize; 12] = [3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// Names of the numeric fields 1..16 of a `vowdata.dat` token line, for messages.
const VOWDATA_FIELD_NAMES: [&str; 15] = [
    "duration",
    "F0",
    "F1 steady",
    "F2 steady",
    "F3 steady",
    "F4 steady",
    "F1 20%",
    "F2 20%",
    "F3 20%",
    "F1 50%",
    "F2 50%",
    "F3 50%",
    "F1 80%",
    "F2 80%",
    "F3 80%",
];
/// Number of whitespace-separated fields on a `vowdata.dat` token line.
const VOWDATA_FIELDS: usize = 16;

/// Checks a vowel code and returns its index in [`VOWEL_CODES`].
fn vowel_index(code: &str, file: &str, line: usize) -> Result<usize, DataError> {
    VOWEL_CODES.iter().position(|&v| v == code).ok_or_else(|| {
        DataError::parse(
            file,
            line,
            format!("unknown vowel code {}; known codes: {}", show(code), VOWEL_CODES.join(", ")),
        )
    })
}

/// Parses a formant value: a finite number `>= 0` (0 = not measurable).
fn formant(cell: &str, file: &str, line: usize, what: impl Fn() -> String) -> Result<f64, DataError> {
    let v = number(cell, file, line, &what)?;
    if v < 0.0 {
        return Err(DataError::parse(
            file,
            line,
            format!("{}: negative value {v}; values are >= 0 (0 = not measurable)", what()),
        ));
    }
    Ok(v)
}

/// `true` if `name` looks like a `vowdata.dat` token name: group letter, two digits, two letters.
fn looks_like_token(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 5
        && SpeakerGroup::from_letter(char::from(b[0])).is_some()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_alphabetic()
        && b[4].is_ascii_alphabetic()
}

pub(super) fn parse_vowdata_tokens(text: &str, file: &str) -> Result<Vec<Token>, DataError> {
    let mut tokens = Vec::new();
    let mut in_data = false;
    for (ln, line) in lines(text) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(&name) = fields.first() else {
            continue; // blank line
        };
        if !looks_like_token(name) {
            if in_data {
                return Err(DataError::parse(
                    file,
                    ln,
                    format!(
                        "expected a token line starting with a name like \"w01ae\" \
                         (group m/w/b/g, speaker number, vowel code), found {}",
                        show(name)
                    ),
                ));
            }
            continue; // still in the header block
        }
        in_data = true;
        if fields.len() != VOWDATA_FIELDS {
            return Err(DataError::parse(
                file,
                ln,
                format!(
                    "token {name}: expected {VOWDATA_FIELDS} whitespace-separated fields \
                     (name, duration, F0, F1-F4, F1-F3 at 20/50/80 %), found {}",
                    fields.len()
                ),
            ));
        }
        let group = SpeakerGroup::from_letter(char::from(name.as_bytes()[0]))
            .ok_or_else(|| DataError::parse(file, ln, format!("unknown speaker group in {name}")))?;
        let vowel = vowel_index(&name[3..5], file, ln)?;
        // Check every numeric field, also those (duration, F0, F4) that are not used.
        let mut values = [0.0; VOWDATA_FIELDS];
        for (k, cell) in fields.iter().enumerate().skip(1) {
            values[k] =
                formant(cell, file, ln, || format!("token {name}, column {} ({})", k + 1, VOWDATA_FIELD_NAMES[k - 1]))?;
        }
        let features = VOWDATA_FEATURE_FIELDS.map(|k| values[k]);
        tokens.push(Token { line: ln, group, vowel, features });
    }
    if tokens.is_empty() {
        return Err(DataError::empty(file, "no token lines found (expected lines like \"w01ae 323 174 663 ...\")"));
    }
    Ok(tokens)
}

pub(super) fn parse_csv_tokens(text: &str, file: &str) -> Result<Vec<Token>, DataError> {
    let mut it = lines(text).filter(|(_, l)| !l.trim().is_empty());
    let Some((hl, header)) = it.next() else {
        return Err(DataError::empty(file, "the file is empty"));
    };
    let names: Vec<String> = cells(header).map(|c| c.to_ascii_lowercase()).collect();
    let find = |want: &str| names.iter().position(|n| n == want);
    let missing_col = |what: &str| {
        DataError::parse(file, hl, format!("header has no {what} column; found columns: {}", names.join(", ")))
    };
    let vowel_col = find("vowel").ok_or_else(|| missing_col("\"vowel\""))?;
    let speaker_col =
        find("speaker").or_else(|| find("token")).ok_or_else(|| missing_col("\"speaker\" (or \"token\")"))?;
    let mut feature_cols = [0usize; 12];
    for (slot, name) in feature_cols.iter_mut().zip(VOWEL_FEATURES) {
        *slot = find(name).ok_or_else(|| missing_col(&format!("{name:?}")))?;
    }
    let mut tokens = Vec::new();
    let mut row: Vec<&str> = Vec::with_capacity(names.len());
    for (ln, line) in it {
        row.clear();
        row.extend(cells(line));
        if row.len() != names.len() {
            return Err(DataError::parse(
                file,
                ln,
                format!("expected {} comma-separated cells as in the header, found {}", names.len(), row.len()),
            ));
        }
        let speaker = row[speaker_col];
        let group = speaker.chars().next().and_then(SpeakerGroup::from_letter).ok_or_else(|| {
            DataError::parse(
                file,
                ln,
                format!(
                    "column {:?}: {} does not start with a speaker group letter m/w/b/g",
                    names[speaker_col],
                    show(speaker)
                ),
            )
        })?;
        let vowel = vowel_index(row[vowel_col], file, ln)?;
        let mut features = [0.0; 12];
        for ((f, &c), name) in features.iter_mut().zip(&feature_cols).zip(VOWEL_FEATURES) {
            *f = formant(row[c], file, ln, || format!("column {name:?}"))?;
        }
        tokens.push(Token { line: ln, group, vowel, features });
    }
    if tokens.is_empty() {
        return Err(DataError::empty(file, "the header is not followed by any token"));
    }
    Ok(tokens)
}
