//! Per-feature standardisation of tabular data (`standardize = true`, CSV data).
//!
//! Features in physical units (a length in metres beside a concentration in mg/l) reach a
//! physical system at scales that differ by orders of magnitude; the largest one then drives
//! the medium alone. Each feature `j` kept is mapped to `x'_j = (x_j - mean_j) / sd_j`, with
//! the mean and the population standard deviation of the **training split** (never the test
//! split), computed in `f64`. A feature that is constant over the training split carries no
//! information and would divide by zero: it is dropped, and the run says so. Values are then
//! clipped to `±`[`CLIP`] standard deviations: a feature that is rare in the training split (a
//! pixel lit in one sample of a thousand) has a tiny standard deviation, and a test sample in
//! which it is lit would otherwise reach the network at hundreds of standard deviations and
//! swamp every other feature, and the label value, which is the largest value in a batch. The
//! statistics are saved in the model file, so `phyff eval` applies the very same transform.

use anyhow::{bail, ensure, Result};
use ff_core::{Matrix, Real};
use serde::{Deserialize, Serialize};

/// The mean and population standard deviation of every column of `x` (`samples x features`),
/// accumulated in `f64` over the rows in order. `x` must have at least one row.
pub fn column_moments<F: Real>(x: &Matrix<F>) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (x.rows(), x.cols());
    let value = |v: F| v.to_f64().unwrap_or(f64::NAN);
    let mut mean = vec![0.0f64; d];
    for i in 0..n {
        for (s, &v) in mean.iter_mut().zip(x.row(i)) {
            *s += value(v);
        }
    }
    mean.iter_mut().for_each(|s| *s /= n as f64);
    let mut var = vec![0.0f64; d];
    for i in 0..n {
        for ((s, &v), mu) in var.iter_mut().zip(x.row(i)).zip(&mean) {
            *s += (value(v) - mu).powi(2);
        }
    }
    let sd = var.iter().map(|v| (v / n as f64).sqrt()).collect();
    (mean, sd)
}

/// Standardised values are clipped to `[-CLIP, CLIP]` standard deviations.
pub const CLIP: f64 = 5.0;

/// The fitted transform: which raw features are kept, and their training-split moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardization {
    /// Number of features of a raw sample (before any is dropped).
    pub raw_len: usize,
    /// 0-based indices (among the raw features, label column excluded) of the features kept,
    /// increasing; the others were constant over the training split.
    pub kept: Vec<usize>,
    /// Mean of each kept feature over the training split, in the feature's own unit.
    pub mean: Vec<f64>,
    /// Population standard deviation of each kept feature over the training split (> 0).
    pub sd: Vec<f64>,
}

impl Standardization {
    /// Fits the transform to `train` (`samples x features`).
    ///
    /// # Errors
    /// No sample, or every feature constant over the training split (nothing would be left).
    pub fn fit<F: Real>(train: &Matrix<F>) -> Result<Self> {
        let (n, d) = (train.rows(), train.cols());
        ensure!(n > 0, "cannot standardise: the training split has no sample");
        let (means, sds) = column_moments(train);
        let mut s = Standardization { raw_len: d, kept: Vec::new(), mean: Vec::new(), sd: Vec::new() };
        for j in 0..d {
            let first = train.get(0, j);
            if (0..n).all(|i| train.get(i, j) == first) {
                continue;
            }
            let (mean, sd) = (means[j], sds[j]);
            if !(sd > 0.0 && sd.is_finite() && mean.is_finite()) {
                bail!("cannot standardise feature {j}: mean {mean}, standard deviation {sd} over the training split; check the column's values or set standardize = false");
            }
            s.kept.push(j);
            s.mean.push(mean);
            s.sd.push(sd);
        }
        ensure!(
            !s.kept.is_empty(),
            "every one of the {d} features is constant over the training split ({n} samples): there is nothing to learn from; check the label column (#label=) and the file"
        );
        Ok(s)
    }

    /// The raw features dropped (constant over the training split), increasing.
    pub fn dropped(&self) -> Vec<usize> {
        (0..self.raw_len).filter(|j| self.kept.binary_search(j).is_err()).collect()
    }

    /// Applies the transform to `x` (`samples x raw_len`): `samples x kept.len()`, each value
    /// `(x_j - mean_j) / sd_j` clipped to `±`[`CLIP`].
    ///
    /// # Errors
    /// `x` of another width, or a value that leaves the precision's range once standardised
    /// (a test value far outside the training range in `f32`), naming the row and feature.
    pub fn apply<F: Real>(&self, x: &Matrix<F>, what: &str) -> Result<Matrix<F>> {
        ensure!(
            x.cols() == self.raw_len,
            "the {what} samples hold {} features, the standardisation was fitted to {}",
            x.cols(),
            self.raw_len
        );
        let mut out = Matrix::zeros(x.rows(), self.kept.len());
        for i in 0..x.rows() {
            let (src, dst) = (x.row(i), out.row_mut(i));
            for (k, &j) in self.kept.iter().enumerate() {
                let v = ((src[j].to_f64().unwrap_or(f64::NAN) - self.mean[k]) / self.sd[k]).clamp(-CLIP, CLIP);
                let r = F::from_f64(v).filter(|r| r.is_finite());
                dst[k] = r.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{what} sample {i}, feature {j}: the value is not a number ({v}); check the data file"
                    )
                })?;
            }
        }
        Ok(out)
    }

    /// Checks that the parts fit together (a loaded model file).
    ///
    /// # Errors
    /// Lengths that differ, indices out of order or range, non-finite means, standard
    /// deviations that are not positive and finite.
    pub fn validate(&self) -> Result<()> {
        let k = self.kept.len();
        ensure!(
            self.mean.len() == k && self.sd.len() == k,
            "standardization: {k} kept features but {} means and {} standard deviations",
            self.mean.len(),
            self.sd.len()
        );
        ensure!(k > 0, "standardization: no feature kept");
        ensure!(
            self.kept.windows(2).all(|w| w[0] < w[1]) && self.kept.last().is_some_and(|&j| j < self.raw_len),
            "standardization: kept feature indices must increase and stay below raw_len {}",
            self.raw_len
        );
        for (k, (&m, &s)) in self.mean.iter().zip(&self.sd).enumerate() {
            ensure!(m.is_finite(), "standardization: mean[{k}] = {m} is not finite");
            ensure!(s.is_finite() && s > 0.0, "standardization: sd[{k}] = {s} must be positive and finite");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_moments_give_zero_mean_unit_variance_and_constant_features_are_dropped() {
        // Features: metres around 1.7, a constant, milligrams around 3000.
        let x = Matrix::from_vec(4, 3, vec![1.6, 5.0, 2000.0, 1.7, 5.0, 3000.0, 1.8, 5.0, 4000.0, 1.7, 5.0, 3000.0])
            .unwrap();
        let s = Standardization::fit::<f64>(&x).unwrap();
        assert_eq!(s.kept, vec![0, 2]);
        assert_eq!(s.dropped(), vec![1]);
        s.validate().unwrap();
        let y = s.apply(&x, "train").unwrap();
        assert_eq!((y.rows(), y.cols()), (4, 2));
        for c in 0..2 {
            let col: Vec<f64> = (0..4).map(|r| y.get(r, c)).collect();
            let mean = col.iter().sum::<f64>() / 4.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12, "column {c}: mean {mean}, var {var}");
        }
        // The test split uses the training moments, not its own.
        let t = Matrix::from_vec(1, 3, vec![1.7, 9.0, 3000.0]).unwrap();
        assert_eq!(s.apply(&t, "test").unwrap().data(), &[0.0, 0.0]);
    }

    #[test]
    fn nothing_to_learn_and_wrong_widths_are_errors() {
        let x = Matrix::from_vec(2, 2, vec![1.0f32, 2.0, 1.0, 2.0]).unwrap();
        let e = Standardization::fit(&x).unwrap_err().to_string();
        assert!(e.contains("constant") && e.contains("#label="), "{e}");
        let ok = Matrix::from_vec(2, 2, vec![1.0f32, 2.0, 3.0, 2.0]).unwrap();
        let s = Standardization::fit(&ok).unwrap();
        assert!(s.apply(&Matrix::<f32>::zeros(1, 3), "test").unwrap_err().to_string().contains("3 features"));
        let mut bad = s.clone();
        bad.sd[0] = 0.0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn far_values_are_clipped_and_a_nan_names_the_sample() {
        // A feature lit in one training sample of 100: sd 0.0995, so a test value of 16 would
        // be 160 standard deviations out.
        let x = Matrix::from_fn(100, 1, |r, _| if r == 0 { 1.0f32 } else { 0.0 });
        let s = Standardization::fit(&x).unwrap();
        let far = Matrix::from_vec(2, 1, vec![16.0f32, -1e30]).unwrap();
        assert_eq!(s.apply(&far, "test").unwrap().data(), &[CLIP as f32, -CLIP as f32]);
        let nan = Matrix::from_vec(1, 1, vec![f32::NAN]).unwrap();
        let e = s.apply(&nan, "test").unwrap_err().to_string();
        assert!(e.contains("test sample 0, feature 0"), "{e}");
    }
}
