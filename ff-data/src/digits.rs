//! The built-in 8 x 8 handwritten digits (UCI optical recognition of handwritten digits, test
//! set: 1 797 samples, 10 classes, CC BY 4.0; provenance in `ff-data/data/README.md`).

use crate::dataset::{Dataset, Layout, TrainTest};
use crate::error::DataError;
use crate::text::{cells, lines, maybe_gunzip, number, show, utf8};
use ff_core::{Matrix, Real};

/// The gzip-compressed CSV as shipped in scikit-learn 1.9.1 (`sklearn/datasets/data/digits.csv.gz`).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// Name used for the built-in file in error messages.
pub const DIGITS_FILE: &str = "digits.csv.gz (built into ff-data)";

/// Number of samples of the built-in digits.
pub const DIGITS_LEN: usize = 1797;
/// Image side: each sample is an 8 x 8 image.
pub const DIGITS_SIDE: usize = 8;
/// Largest pixel value of the raw data (pixels count "on" cells of a 4 x 4 block: 0..=16).
pub const DIGITS_MAX_PIXEL: f64 = 16.0;

/// The 1 797 built-in handwritten digits, pixels scaled to `[0, 1]` (raw counts / 16),
/// `Layout::Image { height: 8, width: 8 }`, classes `"0"`..`"9"`, in file order.
///
/// # Errors
/// Never in practice (the data is compiled in and tested); the signature shares the parser's.
///
/// # Examples
/// ```
/// let d = ff_data::digits::<f32>().unwrap();
/// assert_eq!((d.len(), d.dim(), d.num_classes), (1797, 64, 10));
/// assert!(d.x.data().iter().all(|&p| (0.0..=1.0).contains(&p)));
/// ```
pub fn digits<F: Real>() -> Result<Dataset<F>, DataError> {
    parse_digits(DIGITS_CSV_GZ, DIGITS_FILE)
}

/// The built-in digits split 80/20 into train/test: stratified, seeded (`split(0.2, seed, true)`),
/// 1 437 training and 360 test samples. This is what `DataSpec::Digits` loads.
///
/// # Errors
/// As [`digits`].
pub fn digits_train_test<F: Real>(seed: u64) -> Result<TrainTest<F>, DataError> {
    digits::<F>()?.train_test(0.2, seed, true)
}

/// Parses the digits format: optionally gzip-compressed CSV, no header, one sample per line of 65
/// comma-separated cells, 64 pixels (numbers in `0..=16`) then the label (integer `0..=9`).
/// Empty lines are ignored. `file` names the source in errors.
///
/// # Errors
/// [`DataError::Gzip`] for a corrupt or truncated stream; [`DataError::Parse`] naming the line for
/// a wrong cell count, a non-numeric or out-of-range pixel, or a label outside `0..=9`;
/// [`DataError::Empty`] if there is no sample.
pub fn parse_digits<F: Real>(bytes: &[u8], file: &str) -> Result<Dataset<F>, DataError> {
    let raw = maybe_gunzip(bytes, file)?;
    let text = utf8(&raw, file)?;
    let d = DIGITS_SIDE * DIGITS_SIDE;
    let scale = F::c(1.0 / DIGITS_MAX_PIXEL);
    let mut data: Vec<F> = Vec::with_capacity(DIGITS_LEN * d);
    let mut y = Vec::with_capacity(DIGITS_LEN);
    for (ln, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let mut count = 0;
        for (col, cell) in cells(line).enumerate() {
            count += 1;
            if col < d {
                let v = number(cell, file, ln, || format!("pixel column {}", col + 1))?;
                if !(0.0..=DIGITS_MAX_PIXEL).contains(&v) {
                    return Err(DataError::parse(
                        file,
                        ln,
                        format!("pixel column {}: value {v} is outside 0..=16", col + 1),
                    ));
                }
                data.push(F::c(v) * scale);
            } else if col == d {
                let label = cell.parse::<usize>().ok().filter(|&l| l < 10).ok_or_else(|| {
                    DataError::parse(file, ln, format!("label (column 65): {} is not a digit label 0..=9", show(cell)))
                })?;
                y.push(label);
            }
        }
        if count != d + 1 {
            return Err(DataError::parse(
                file,
                ln,
                format!("expected 65 comma-separated cells (64 pixels and the label), found {count}"),
            ));
        }
    }
    if y.is_empty() {
        return Err(DataError::empty(file, "no samples"));
    }
    let n = y.len();
    let x = Matrix::from_vec(n, d, data).map_err(|e| DataError::parse(file, n, e.to_string()))?;
    Ok(Dataset {
        name: "digits".into(),
        x,
        y,
        num_classes: 10,
        class_names: (0..10).map(|c| c.to_string()).collect(),
        layout: Layout::Image { height: DIGITS_SIDE, width: DIGITS_SIDE },
    })
}

/// Exposes the compressed built-in bytes to the crate's tests (corruption tests start from them).
#[cfg(test)]
pub(crate) fn builtin_bytes() -> &'static [u8] {
    DIGITS_CSV_GZ
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::gunzip;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn builtin_text() -> String {
        String::from_utf8(gunzip(builtin_bytes(), "t").unwrap()).unwrap()
    }

    #[test]
    fn builtin_digits_have_the_documented_shape_and_balance() {
        let d = digits::<f64>().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.dim(), 64);
        assert_eq!(d.layout, Layout::Image { height: 8, width: 8 });
        // Class sizes of the UCI test set (scikit-learn's load_digits).
        assert_eq!(d.class_counts(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        // First sample from the file: a zero; its first row is 0,0,5,13,9,1,0,0.
        assert_eq!(d.y[0], 0);
        let expect = [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0].map(|v| v / 16.0);
        assert_eq!(&d.x.row(0)[..8], &expect);
        assert!(d.x.data().iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(d.x.data().iter().copied().fold(0.0, f64::max), 1.0);
    }

    #[test]
    fn f32_and_f64_agree() {
        let a = digits::<f32>().unwrap();
        let b = digits::<f64>().unwrap();
        assert_eq!(a.x.cast::<f64>(), b.x);
    }

    #[test]
    fn train_test_is_stratified_seeded_80_20() {
        let tt = digits_train_test::<f32>(0).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (1437, 360));
        for (c, &k) in tt.test.class_counts().iter().enumerate() {
            assert!((34..=37).contains(&k), "class {c}: {k} test samples");
        }
        assert_eq!(tt, digits_train_test::<f32>(0).unwrap());
        assert_ne!(tt.test.y, digits_train_test::<f32>(1).unwrap().test.y);
    }

    #[test]
    fn plain_and_gzip_inputs_parse_the_same() {
        let text = builtin_text();
        let a = parse_digits::<f32>(text.as_bytes(), "plain").unwrap();
        let b = parse_digits::<f32>(&gz(&text), "gz").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_gzip_is_a_gzip_error() {
        let bytes = builtin_bytes();
        for cut in [10, bytes.len() / 2, bytes.len() - 4] {
            let e = parse_digits::<f32>(&bytes[..cut], "d.gz").unwrap_err();
            assert!(matches!(e, DataError::Gzip { .. }), "cut {cut}: {e}");
            assert!(e.to_string().starts_with("d.gz: corrupt or truncated gzip"), "{e}");
        }
    }

    #[test]
    fn flipped_byte_in_gzip_is_an_error() {
        let mut bytes = builtin_bytes().to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        assert!(parse_digits::<f32>(&bytes, "d.gz").is_err());
    }

    /// Replaces line `k` (1-based) of the built-in text and parses the result.
    fn with_line(k: usize, new: &str) -> DataError {
        let text = builtin_text();
        let mut v: Vec<&str> = text.lines().collect();
        v[k - 1] = new;
        parse_digits::<f32>(&gz(&v.join("\n")), "d.csv.gz").unwrap_err()
    }

    #[test]
    fn wrong_column_count_names_the_line() {
        let e = with_line(5, "0,1,2").to_string();
        assert_eq!(e, "d.csv.gz:5: expected 65 comma-separated cells (64 pixels and the label), found 3");
        let long = format!("{},3", vec!["0"; 65].join(","));
        let e = with_line(9, &long).to_string();
        assert!(e.contains("d.csv.gz:9:") && e.contains("found 66"), "{e}");
    }

    #[test]
    fn label_out_of_range_names_line_and_value() {
        let line = format!("{},10", vec!["0"; 64].join(","));
        let e = with_line(3, &line).to_string();
        assert!(e.starts_with("d.csv.gz:3: label (column 65): \"10\""), "{e}");
        let line = format!("{},-1", vec!["0"; 64].join(","));
        assert!(with_line(3, &line).to_string().contains("\"-1\""));
    }

    #[test]
    fn non_numeric_and_out_of_range_pixels_are_errors() {
        let mut cells = vec!["0"; 64];
        cells[10] = "x";
        let e = with_line(2, &format!("{},1", cells.join(","))).to_string();
        assert_eq!(e, "d.csv.gz:2: pixel column 11: \"x\" is not a number");
        cells[10] = "17";
        let e = with_line(2, &format!("{},1", cells.join(","))).to_string();
        assert!(e.contains("pixel column 11: value 17 is outside 0..=16"), "{e}");
        cells[10] = "nan";
        let e = with_line(2, &format!("{},1", cells.join(","))).to_string();
        assert!(e.contains("only finite numbers"), "{e}");
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(parse_digits::<f32>(b"", "e"), Err(DataError::Empty { .. })));
        assert!(matches!(parse_digits::<f32>(&gz("\n\n"), "e"), Err(DataError::Empty { .. })));
    }
}
