//! Label embedding (how a candidate label is written into an input) and negative labels.

use crate::error::{CoreError, Result};
use crate::matrix::{MatRef, Matrix};
use crate::real::Real;
use crate::rng::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// How a label is written into an input sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabelEmbedding {
    /// Vectors whose first `num_classes` entries are reserved label slots: entry `y` is set to
    /// the label value, the other slots stay 0. Input length is unchanged.
    ///
    /// The data must reserve the slots by holding 0 there (the vowel preprocessing prepends 8
    /// zeros; `phyff train` prepends `K` zero columns to vector data that reserved none).
    /// Embedding a sample with anything else in a slot is an error, never a silent overwrite of
    /// a feature; data without reserved slots take [`LabelEmbedding::Prepend`].
    Overwrite {
        /// Number of classes `K`.
        num_classes: usize,
    },
    /// Vectors, nothing reserved: `num_classes` label entries are written before the sample
    /// (entry `y` holds the label value, the others 0), so an embedded sample has
    /// `num_classes + raw_len` values and every feature is kept. The same embedded vectors as
    /// prepending `K` zero columns to the data and using [`LabelEmbedding::Overwrite`].
    Prepend {
        /// Number of classes `K`.
        num_classes: usize,
    },
    /// Images (`height x width`, row-major): a band of `band_rows` rows is added above and
    /// below the image; row `y` of both bands is set to the label value. The embedded image
    /// is `(band_rows + height + band_rows) x width`.
    ImageBands {
        /// Number of classes `K` (at most `band_rows`).
        num_classes: usize,
        /// Height of the image in pixels.
        height: usize,
        /// Width of the image in pixels.
        width: usize,
        /// Rows per band (PhyLL: 10).
        band_rows: usize,
    },
}

/// Which value is written at the label position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabelValue {
    /// The largest absolute value in the batch being embedded (PhyLL's choice).
    #[default]
    BatchMaxAbs,
    /// A fixed value.
    Fixed {
        /// The value written.
        value: f64,
    },
}

impl LabelEmbedding {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        match *self {
            LabelEmbedding::Overwrite { num_classes }
            | LabelEmbedding::Prepend { num_classes }
            | LabelEmbedding::ImageBands { num_classes, .. } => num_classes,
        }
    }

    /// Length of an embedded sample for raw samples of length `raw_len`.
    pub fn embedded_len(&self, raw_len: usize) -> usize {
        match *self {
            LabelEmbedding::Overwrite { .. } => raw_len,
            LabelEmbedding::Prepend { num_classes } => num_classes + raw_len,
            LabelEmbedding::ImageBands { height, width, band_rows, .. } => (height + 2 * band_rows) * width,
        }
    }

    /// Shape `(height, width)` of an embedded image, `None` for vectors.
    pub fn embedded_shape(&self) -> Option<(usize, usize)> {
        match *self {
            LabelEmbedding::Overwrite { .. } | LabelEmbedding::Prepend { .. } => None,
            LabelEmbedding::ImageBands { height, width, band_rows, .. } => Some((height + 2 * band_rows, width)),
        }
    }

    /// Checks the embedding against raw samples of length `raw_len`.
    ///
    /// # Errors
    /// [`CoreError::Config`] when the classes do not fit (fewer than 2 classes, more classes
    /// than reserved entries or band rows, image shape not matching `raw_len`, no features).
    pub fn validate(&self, raw_len: usize) -> Result<()> {
        let k = self.num_classes();
        if k < 2 {
            return Err(CoreError::config("num_classes", format!("need at least 2 classes, got {k}")));
        }
        match *self {
            LabelEmbedding::Overwrite { num_classes } if num_classes > raw_len => Err(CoreError::config(
                "label embedding",
                format!(
                    "{num_classes} classes need {num_classes} reserved leading entries but samples have only \
                     {raw_len}; use LabelEmbedding::Prepend {{ num_classes: {num_classes} }} for data without \
                     reserved label slots"
                ),
            )),
            LabelEmbedding::Prepend { .. } if raw_len == 0 => {
                Err(CoreError::config("label embedding", "samples have no features (raw length 0)"))
            }
            LabelEmbedding::ImageBands { num_classes, height, width, band_rows } => {
                // Checked: the sizes may come from a file.
                if height.checked_mul(width) != Some(raw_len) {
                    let pixels = height as u128 * width as u128;
                    return Err(CoreError::config(
                        "image shape",
                        format!("{height} x {width} = {pixels} pixels but samples have {raw_len} values"),
                    ));
                }
                if band_rows < num_classes {
                    return Err(CoreError::config(
                        "band_rows",
                        format!("{band_rows} band rows cannot hold {num_classes} classes; use at least {num_classes}"),
                    ));
                }
                if band_rows
                    .checked_mul(2)
                    .and_then(|b| b.checked_add(height))
                    .and_then(|h| h.checked_mul(width))
                    .is_none()
                {
                    return Err(CoreError::config(
                        "band_rows",
                        format!(
                            "{band_rows} band rows above and below a {height} x {width} image do not fit in memory"
                        ),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Checks raw samples `x` before any label is written: for [`LabelEmbedding::Overwrite`],
    /// that every sample holds 0 in its `K` label slots (so the label destroys no feature).
    /// The other embeddings keep every value and accept any `x` (widths are checked by
    /// [`LabelEmbedding::embed`]).
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the first row and column that holds something else than
    /// 0 in a label slot, and the fix ([`LabelEmbedding::Prepend`]).
    pub fn check_reserved<F: Real>(&self, x: MatRef<'_, F>) -> Result<()> {
        match *self {
            LabelEmbedding::Overwrite { num_classes } if x.cols() >= num_classes => check_reserved(x, num_classes),
            _ => Ok(()),
        }
    }

    /// Writes labels into a batch: `out` becomes `x.rows() x embedded_len`.
    ///
    /// # Errors
    /// [`CoreError::Label`] for a label out of range, [`CoreError::Shape`] for a wrong width
    /// or a label count different from the batch size, and [`CoreError::Config`] for
    /// [`LabelEmbedding::Overwrite`] when a reserved label slot of `x` does not hold 0 (the
    /// data did not reserve it).
    pub fn embed<F: Real>(
        &self,
        x: MatRef<'_, F>,
        labels: &[usize],
        value: LabelValue,
        out: &mut Matrix<F>,
    ) -> Result<()> {
        let value = match value {
            LabelValue::BatchMaxAbs => x.data().iter().fold(F::zero(), |m, v| m.max(v.abs())),
            LabelValue::Fixed { value } => F::c(value),
        };
        self.embed_with_value(x, labels, value, out)
    }

    /// As [`LabelEmbedding::embed`] with an explicit label value.
    ///
    /// # Errors
    /// As [`LabelEmbedding::embed`].
    pub fn embed_with_value<F: Real>(
        &self,
        x: MatRef<'_, F>,
        labels: &[usize],
        value: F,
        out: &mut Matrix<F>,
    ) -> Result<()> {
        if labels.len() != x.rows() {
            return Err(CoreError::Shape {
                context: "label embedding".into(),
                expected: format!("{} labels (one per row)", x.rows()),
                got: format!("{} labels", labels.len()),
            });
        }
        let k = self.num_classes();
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
            return Err(CoreError::Label { label, row, num_classes: k });
        }
        let raw = x.cols();
        let len = self.embedded_len(raw);
        match *self {
            LabelEmbedding::Overwrite { .. } => {
                if raw < k {
                    return Err(CoreError::Shape {
                        context: "label embedding (overwrite)".into(),
                        expected: format!("at least {k} values per sample"),
                        got: format!("{raw}"),
                    });
                }
                check_reserved(x, k)?;
                out.resize(x.rows(), len);
                out.data_mut().copy_from_slice(x.data());
                for (i, &y) in labels.iter().enumerate() {
                    let r = out.row_mut(i);
                    r[..k].fill(F::zero());
                    r[y] = value;
                }
            }
            LabelEmbedding::Prepend { .. } => {
                out.resize(x.rows(), len);
                for (i, &y) in labels.iter().enumerate() {
                    let r = out.row_mut(i);
                    r[..k].fill(F::zero());
                    r[y] = value;
                    r[k..].copy_from_slice(x.row(i));
                }
            }
            LabelEmbedding::ImageBands { height, width, band_rows, .. } => {
                if raw != height * width {
                    return Err(CoreError::Shape {
                        context: "label embedding (image bands)".into(),
                        expected: format!("{height} x {width} = {} pixels", height * width),
                        got: format!("{raw}"),
                    });
                }
                out.resize(x.rows(), len);
                let band = band_rows * width;
                for (i, &y) in labels.iter().enumerate() {
                    let r = out.row_mut(i);
                    r.fill(F::zero());
                    r[band..band + raw].copy_from_slice(x.row(i));
                    r[y * width..(y + 1) * width].fill(value);
                    let bottom = band + raw + y * width;
                    r[bottom..bottom + width].fill(value);
                }
            }
        }
        Ok(())
    }
}

/// Checks that the first `k` entries of every row of `x` (the label slots of
/// [`LabelEmbedding::Overwrite`]) hold 0, so that writing the label there destroys nothing.
fn check_reserved<F: Real>(x: MatRef<'_, F>, k: usize) -> Result<()> {
    for i in 0..x.rows() {
        if let Some((col, v)) = x.row(i)[..k].iter().enumerate().find(|(_, v)| **v != F::zero()) {
            return Err(CoreError::config(
                "label embedding",
                format!(
                    "overwrite writes the label into the first {k} entries of every sample, but row {i}, \
                     column {col} holds {v:?}, not 0: the data did not reserve those entries and a feature \
                     would be lost. Use LabelEmbedding::Prepend {{ num_classes: {k} }} (adds {k} label entries \
                     before the features), or prepend {k} zero columns to the data"
                ),
            ));
        }
    }
    Ok(())
}

/// A uniformly random wrong label for each true label (redrawn at every call).
///
/// # Panics
/// If `num_classes < 2` or a label is out of range (validated by the network beforehand).
pub fn random_wrong_labels(labels: &[usize], num_classes: usize, rng: &mut Rng) -> Vec<usize> {
    assert!(num_classes >= 2, "need at least two classes for negatives");
    labels
        .iter()
        .map(|&y| {
            assert!(y < num_classes, "label {y} out of range");
            let r = rng.random_range(0..num_classes - 1);
            if r >= y {
                r + 1
            } else {
                r
            }
        })
        .collect()
}

/// For each row of `scores` (`n x K`, higher = more likely), the highest-scoring wrong label.
///
/// # Panics
/// If `scores` has fewer than 2 columns or `labels.len() != scores.rows()`.
pub fn hardest_wrong_labels<F: Real>(labels: &[usize], scores: MatRef<'_, F>) -> Vec<usize> {
    assert!(scores.cols() >= 2 && labels.len() == scores.rows());
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let row = scores.row(i);
            let mut best = if y == 0 { 1 } else { 0 };
            for (c, &s) in row.iter().enumerate() {
                if c != y && s > row[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// For each row of `scores` (`n x K`, higher = more likely), a wrong label drawn at random with
/// probability proportional to `exp(score / temperature)` over the labels other than the row's
/// own: a softmax over the wrong labels, computed after subtracting the row's largest wrong
/// score so that large goodness values cannot overflow. Exactly one uniform number is drawn
/// from `rng` per row. A row whose wrong scores are not all finite gets a uniformly drawn wrong
/// label instead (a diverging network is reported by the loss, not here).
///
/// # Panics
/// If `scores` has fewer than 2 columns, `labels.len() != scores.rows()`, a label is out of
/// range, or `temperature` is not a positive number (callers validate it).
pub fn sampled_wrong_labels<F: Real>(
    labels: &[usize],
    scores: MatRef<'_, F>,
    temperature: f64,
    rng: &mut Rng,
) -> Vec<usize> {
    let k = scores.cols();
    assert!(k >= 2 && labels.len() == scores.rows());
    assert!(temperature.is_finite() && temperature > 0.0, "temperature must be positive, got {temperature}");
    let mut w = vec![0.0f64; k];
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            assert!(y < k, "label {y} out of range");
            let u: f64 = rng.random();
            let row = scores.row(i);
            let wrong = || {
                row.iter().enumerate().filter(move |&(c, _)| c != y).map(|(c, s)| (c, s.to_f64().unwrap_or(f64::NAN)))
            };
            if wrong().any(|(_, s)| !s.is_finite()) {
                let r = ((u * (k - 1) as f64) as usize).min(k - 2);
                return if r >= y { r + 1 } else { r };
            }
            let top = wrong().fold(f64::NEG_INFINITY, |m, (_, s)| m.max(s));
            let mut total = 0.0;
            for (c, s) in wrong() {
                w[c] = ((s - top) / temperature).exp();
                total += w[c];
            }
            // `total >= 1` (the top label contributes exp(0)), so the draw is well defined.
            let target = u * total;
            let mut acc = 0.0;
            let mut last = y;
            for (c, _) in wrong() {
                acc += w[c];
                last = c;
                if target < acc {
                    return c;
                }
            }
            last
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_for;

    #[test]
    fn overwrite_embedding() {
        let x = Matrix::from_vec(2, 4, vec![0.0f64, 0.0, 1.0, -3.0, 0.0, 0.0, 2.0, 0.5]).unwrap();
        let e = LabelEmbedding::Overwrite { num_classes: 2 };
        let mut out = Matrix::zeros(0, 0);
        e.embed(x.view(), &[1, 0], LabelValue::BatchMaxAbs, &mut out).unwrap();
        assert_eq!(out.data(), &[0.0, 3.0, 1.0, -3.0, 3.0, 0.0, 2.0, 0.5]);
        assert!(e.embed(x.view(), &[2, 0], LabelValue::BatchMaxAbs, &mut out).is_err());
        assert!(e.embed(x.view(), &[0], LabelValue::BatchMaxAbs, &mut out).is_err());
    }

    #[test]
    fn overwrite_refuses_data_that_did_not_reserve_the_label_slots() {
        // Four features, none reserved: overwriting the first two would destroy 9.0 and 0.25.
        let x = Matrix::from_vec(2, 4, vec![0.0f64, 0.0, 1.0, -3.0, 9.0, 0.25, 2.0, 0.5]).unwrap();
        let e = LabelEmbedding::Overwrite { num_classes: 2 };
        let mut out = Matrix::zeros(0, 0);
        let err = e.embed(x.view(), &[1, 0], LabelValue::BatchMaxAbs, &mut out).unwrap_err().to_string();
        assert!(err.contains("row 1, column 0 holds 9.0") && err.contains("Prepend"), "{err}");
        // Blank labels (value 0) overwrite just as much.
        assert!(e.embed_with_value(x.view(), &[0, 0], 0.0, &mut out).is_err());
        // A NaN in a slot is not a reservation either.
        let nan = Matrix::from_vec(1, 3, vec![f64::NAN, 0.0, 1.0]).unwrap();
        assert!(e.embed(nan.view(), &[0], LabelValue::Fixed { value: 1.0 }, &mut out).is_err());
    }

    #[test]
    fn prepend_keeps_every_feature_and_equals_overwrite_on_prepended_zeros() {
        let x = Matrix::from_vec(2, 3, vec![9.0f64, 1.0, -3.0, 0.25, 2.0, 0.5]).unwrap();
        let e = LabelEmbedding::Prepend { num_classes: 2 };
        e.validate(3).unwrap();
        assert_eq!((e.embedded_len(3), e.embedded_shape(), e.num_classes()), (5, None, 2));
        let mut out = Matrix::zeros(0, 0);
        e.embed(x.view(), &[1, 0], LabelValue::BatchMaxAbs, &mut out).unwrap();
        assert_eq!(out.data(), &[0.0, 9.0, 9.0, 1.0, -3.0, 9.0, 0.0, 0.25, 2.0, 0.5]);
        let padded = Matrix::from_fn(2, 5, |r, c| if c < 2 { 0.0 } else { x.get(r, c - 2) });
        let mut same = Matrix::zeros(0, 0);
        LabelEmbedding::Overwrite { num_classes: 2 }
            .embed(padded.view(), &[1, 0], LabelValue::BatchMaxAbs, &mut same)
            .unwrap();
        assert_eq!(out, same);
        assert!(e.embed(x.view(), &[2, 0], LabelValue::BatchMaxAbs, &mut out).is_err());
        assert!(LabelEmbedding::Prepend { num_classes: 1 }.validate(3).is_err());
        assert!(e.validate(0).is_err());
    }

    #[test]
    fn image_bands_by_hand() {
        // 1 x 2 image, 2 classes, bands of 2 rows: 5 x 2 output.
        let x = Matrix::from_vec(1, 2, vec![0.25f64, -0.5]).unwrap();
        let e = LabelEmbedding::ImageBands { num_classes: 2, height: 1, width: 2, band_rows: 2 };
        e.validate(2).unwrap();
        let mut out = Matrix::zeros(0, 0);
        e.embed(x.view(), &[1], LabelValue::Fixed { value: 1.0 }, &mut out).unwrap();
        #[rustfmt::skip]
        let expected = [0.0, 0.0,  1.0, 1.0,  0.25, -0.5,  0.0, 0.0,  1.0, 1.0];
        assert_eq!(out.data(), &expected);
        assert_eq!(e.embedded_shape(), Some((5, 2)));
        assert!(LabelEmbedding::ImageBands { num_classes: 3, height: 1, width: 2, band_rows: 2 }.validate(2).is_err());
    }

    #[test]
    fn sizes_read_from_a_file_do_not_overflow() {
        // height x width wraps to 0 in 64 bits; a band too wide for memory.
        let half = 1usize << 32;
        let e = LabelEmbedding::ImageBands { num_classes: 2, height: half, width: half, band_rows: 2 };
        let msg = e.validate(0).unwrap_err().to_string();
        assert!(msg.contains("= 18446744073709551616 pixels but samples have 0 values"), "{msg}");
        let e = LabelEmbedding::ImageBands { num_classes: 2, height: 1, width: 2, band_rows: usize::MAX / 2 };
        assert!(e.validate(2).unwrap_err().to_string().contains("do not fit in memory"));
    }

    #[test]
    fn negatives_are_wrong_and_cover_all_classes() {
        let mut rng = rng_for(1, "neg");
        let labels: Vec<usize> = (0..3000).map(|i| i % 5).collect();
        let neg = random_wrong_labels(&labels, 5, &mut rng);
        let mut counts = [[0usize; 5]; 5];
        for (&y, &n) in labels.iter().zip(&neg) {
            assert_ne!(y, n);
            counts[y][n] += 1;
        }
        // Uniform over the 4 wrong labels: each cell ~150 of 600.
        for (y, row) in counts.iter().enumerate() {
            for (n, &c) in row.iter().enumerate() {
                if n != y {
                    assert!((100..200).contains(&c), "label {y} -> {n}: {c}");
                }
            }
        }
        let scores = Matrix::from_vec(2, 3, vec![0.9f64, 0.5, 0.7, 0.1, 0.2, 0.3]).unwrap();
        assert_eq!(hardest_wrong_labels(&[0, 2], scores.view()), vec![2, 1]);
    }

    /// Counts of the labels drawn for `n` identical rows of `row` with true label `y`.
    fn sampled_counts(row: &[f64], y: usize, t: f64, n: usize, seed: u64) -> Vec<usize> {
        let data: Vec<f64> = (0..n).flat_map(|_| row.iter().copied()).collect();
        let scores = Matrix::from_vec(n, row.len(), data).unwrap();
        let mut rng = rng_for(seed, "sampled");
        let mut counts = vec![0; row.len()];
        for c in sampled_wrong_labels(&vec![y; n], scores.view(), t, &mut rng) {
            counts[c] += 1;
        }
        counts
    }

    #[test]
    fn sampled_wrong_labels_follow_the_softmax_of_the_wrong_scores() {
        // Wrong scores 0, ln 2, ln 4 (the true label's 1.0 is ignored): probabilities 1/7, 2/7, 4/7.
        let row = [1.0, 0.0, 2f64.ln(), 4f64.ln()];
        let n = 70_000;
        let counts = sampled_counts(&row, 0, 1.0, n, 3);
        assert_eq!(counts[0], 0);
        for (c, p) in [(1, 1.0 / 7.0), (2, 2.0 / 7.0), (3, 4.0 / 7.0)] {
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!((counts[c] as f64 - n as f64 * p).abs() < 5.0 * sd, "label {c}: {counts:?}");
        }
        // Scores shifted by a constant (a goodness offset) draw the very same labels.
        let shifted: Vec<f64> = row.iter().map(|s| s + 2000.0).collect();
        assert_eq!(sampled_counts(&shifted, 0, 1.0, 1000, 9), sampled_counts(&row, 0, 1.0, 1000, 9));
        // A cold temperature picks the hardest wrong label; a hot one is uniform.
        assert_eq!(sampled_counts(&row, 0, 1e-3, 500, 4), vec![0, 0, 0, 500]);
        let hot = sampled_counts(&row, 0, 1e9, 30_000, 5);
        assert!(hot[1..].iter().all(|&c| (9_400..10_600).contains(&c)), "{hot:?}");
        // Huge goodness values do not overflow.
        assert_eq!(sampled_counts(&[0.0, 1e300, 0.0], 2, 1.0, 50, 6), vec![0, 50, 0]);
        // Non-finite wrong scores fall back to a uniform wrong label, never the true one.
        let fallback = sampled_counts(&[f64::NAN, 0.0, 1.0], 1, 1.0, 3_000, 7);
        assert_eq!(fallback[1], 0);
        assert!((1_300..1_700).contains(&fallback[0]), "{fallback:?}");
    }
}
