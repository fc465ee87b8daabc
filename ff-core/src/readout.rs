//! A linear softmax read-out on fixed features (e.g. [`crate::Network::activities`]).
//!
//! Features are standardised per column with the mean and standard deviation of the training
//! features (a constant column gets sd 1), then mapped to logits by a single affine layer: a
//! zero-hidden-layer [`Mlp`] (`logits = W s + c`, `W` is `classes x features`), trained by
//! mini-batch Adam on the mean softmax cross-entropy ([`softmax_cross_entropy`]). The
//! gradients are those of [`Mlp::backward`] (checked against finite differences in `mlp.rs`
//! and here for the composed read-out).

use crate::activation::Activation;
use crate::error::{CoreError, Result};
use crate::matrix::{MatRef, Matrix};
use crate::mlp::{softmax_cross_entropy, Mlp, MlpCache};
use crate::network::argmax;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::real::Real;
use crate::rng::rng_for;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`LinearReadout::fit`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadoutConfig {
    /// Passes over the training features (>= 1).
    pub epochs: usize,
    /// Mini-batch size; 0 = all training samples in one batch.
    pub batch_size: usize,
    /// Adam learning rate (> 0), in standardised-feature units.
    pub lr: f64,
}

impl Default for ReadoutConfig {
    fn default() -> Self {
        ReadoutConfig { epochs: 50, batch_size: 128, lr: 1e-3 }
    }
}

impl ReadoutConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the field (`readout_epochs`, `readout lr`) and the value.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(CoreError::config(
                "readout_epochs",
                "must be at least 1 (the read-out is trained for that many epochs), got 0",
            ));
        }
        OptimizerConfig::adam(self.lr).validate()
    }
}

/// What [`LinearReadout::fit`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadoutFit {
    /// Mean cross-entropy (nats) over the mini-batches of each epoch.
    pub loss: Vec<f64>,
    /// Digital FLOPs of the fit (standardisation, forward, backward, optimiser).
    pub digital_flops: u64,
}

/// A standardising linear softmax classifier.
///
/// Deserialising checks that the parts fit ([`LinearReadout::from_parts`]) and reads the
/// numbers in the precision `F` ([`crate::serde_real`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real", try_from = "ReadoutFile<F>")]
pub struct LinearReadout<F> {
    mean: Vec<F>,
    sd: Vec<F>,
    linear: Mlp<F>,
}

/// A [`LinearReadout`] as stored in a file, before its parts are checked.
#[derive(Deserialize)]
#[serde(bound = "F: Real")]
struct ReadoutFile<F> {
    #[serde(deserialize_with = "crate::serde_real::vec")]
    mean: Vec<F>,
    #[serde(deserialize_with = "crate::serde_real::vec")]
    sd: Vec<F>,
    linear: Mlp<F>,
}

impl<F: Real> TryFrom<ReadoutFile<F>> for LinearReadout<F> {
    type Error = CoreError;

    fn try_from(f: ReadoutFile<F>) -> Result<Self> {
        LinearReadout::from_parts(f.mean, f.sd, f.linear)
    }
}

impl<F: Real> LinearReadout<F> {
    /// Fits a read-out of `num_classes` classes to `features` (`n x d`, one sample per row)
    /// and `labels`, from `seed` (initial weights: stream `"readout init"`; mini-batch orders:
    /// stream `"readout order"`). Same inputs and seed, same bits.
    ///
    /// # Errors
    /// [`CoreError::Config`] for an invalid configuration, no samples, fewer than 2 classes or
    /// non-finite features; [`CoreError::Shape`]/[`CoreError::Label`] for labels that do not
    /// match; [`CoreError::Diverged`] if the loss becomes non-finite.
    pub fn fit(
        features: MatRef<'_, F>,
        labels: &[usize],
        num_classes: usize,
        cfg: &ReadoutConfig,
        seed: u64,
    ) -> Result<(Self, ReadoutFit)> {
        cfg.validate()?;
        let (n, d) = (features.rows(), features.cols());
        if n == 0 || d == 0 {
            return Err(CoreError::config(
                "readout features",
                format!("need at least one sample with at least one feature, got {n} x {d}"),
            ));
        }
        if num_classes < 2 {
            return Err(CoreError::config("num_classes", format!("need at least 2 classes, got {num_classes}")));
        }
        check_labels(n, labels, num_classes)?;
        if let Some((row, col, value)) = features.find_non_finite() {
            return Err(CoreError::config(
                "readout features",
                format!("non-finite value {value} at row {row}, column {col}"),
            ));
        }
        let (mean, sd) = moments(features);
        let linear = Mlp::new(
            &[d, num_classes],
            Activation::Identity,
            Activation::Identity,
            &mut rng_for(seed, "readout init"),
        )?;
        let mut r = LinearReadout { mean, sd, linear };
        let opt_cfg = OptimizerConfig::adam(cfg.lr);
        let mut opt = Optimizer::<F>::new(opt_cfg, r.linear.num_params());
        let mut params = r.linear.params().to_vec();
        let (mut cache, mut grad, mut g_logits) =
            (MlpCache::default(), vec![F::zero(); params.len()], Matrix::zeros(0, 0));
        let batch = if cfg.batch_size == 0 { n } else { cfg.batch_size.min(n) };
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = rng_for(seed, "readout order");
        let mut fit = ReadoutFit { loss: Vec::with_capacity(cfg.epochs), digital_flops: 0 };
        let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::new());
        for epoch in 1..=cfg.epochs {
            // Fisher-Yates, a fresh order every epoch.
            for i in (1..n).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let (mut total, mut batches) = (0.0, 0usize);
            for idx in order.chunks(batch) {
                xb.resize(idx.len(), d);
                yb.clear();
                for (row, &i) in idx.iter().enumerate() {
                    r.standardise_row(features.row(i), xb.row_mut(row));
                    yb.push(labels[i]);
                }
                r.linear.forward_cached(xb.view(), &mut cache)?;
                let loss =
                    softmax_cross_entropy(cache.output().view(), &yb, &mut g_logits).to_f64().unwrap_or(f64::NAN);
                if !loss.is_finite() {
                    return Err(CoreError::Diverged { what: format!("read-out loss in epoch {epoch}") });
                }
                r.linear.backward(&cache, g_logits.view(), &mut grad, None);
                opt.step(&mut params, &grad);
                r.linear.params_mut().copy_from_slice(&params);
                total += loss;
                batches += 1;
                fit.digital_flops += 2 * (idx.len() * d) as u64
                    + r.linear.flops_forward(idx.len())
                    + r.linear.flops_backward(idx.len())
                    + opt_cfg.flops_per_step(params.len());
            }
            fit.loss.push(total / batches as f64);
        }
        Ok((r, fit))
    }

    /// A read-out from explicit parts (e.g. a loaded file): per-feature `mean` and `sd`, and
    /// the affine map `linear` on the standardised features.
    ///
    /// # Errors
    /// [`CoreError::Shape`] unless `mean` and `sd` have one entry per input of `linear`, which
    /// must be a single affine layer onto at least 2 classes; [`CoreError::Config`] for an `sd`
    /// entry that is not a positive finite number.
    pub fn from_parts(mean: Vec<F>, sd: Vec<F>, linear: Mlp<F>) -> Result<Self> {
        if linear.sizes().len() != 2 || linear.output_len() < 2 {
            return Err(CoreError::Shape {
                context: "readout linear.sizes".into(),
                expected: "one affine layer [features, classes] onto at least 2 classes".into(),
                got: format!("{:?}", linear.sizes()),
            });
        }
        for (name, v) in [("readout mean", &mean), ("readout sd", &sd)] {
            if v.len() != linear.input_len() {
                return Err(CoreError::Shape {
                    context: name.into(),
                    expected: format!("{} values, one per feature of linear.sizes[0]", linear.input_len()),
                    got: format!("{} values", v.len()),
                });
            }
        }
        if let Some((i, s)) = sd.iter().enumerate().find(|(_, s)| !(s.is_finite() && **s > F::zero())) {
            return Err(CoreError::config(
                "readout sd",
                format!("standard deviations divide the features and must be positive, entry {i} is {s}"),
            ));
        }
        Ok(LinearReadout { mean, sd, linear })
    }

    fn standardise_row(&self, x: &[F], out: &mut [F]) {
        for (o, ((&v, &m), &s)) in out.iter_mut().zip(x.iter().zip(&self.mean).zip(&self.sd)) {
            *o = (v - m) / s;
        }
    }

    /// Number of input features `d`.
    pub fn input_len(&self) -> usize {
        self.linear.input_len()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.linear.output_len()
    }

    /// Per-feature mean and standard deviation used to standardise (from the training features).
    pub fn standardisation(&self) -> (&[F], &[F]) {
        (&self.mean, &self.sd)
    }

    /// The affine map on standardised features (a zero-hidden-layer [`Mlp`]).
    pub fn linear(&self) -> &Mlp<F> {
        &self.linear
    }

    /// Logits (`n x classes`) of `features` (`n x d`).
    ///
    /// # Errors
    /// [`CoreError::Shape`] when `features` does not have `input_len` columns.
    pub fn logits(&self, features: MatRef<'_, F>) -> Result<Matrix<F>> {
        if features.cols() != self.input_len() {
            return Err(CoreError::Shape {
                context: "read-out features".into(),
                expected: format!("{} features per sample", self.input_len()),
                got: format!("{}", features.cols()),
            });
        }
        let mut s = Matrix::zeros(features.rows(), features.cols());
        for i in 0..features.rows() {
            self.standardise_row(features.row(i), s.row_mut(i));
        }
        self.linear.forward(s.view())
    }

    /// Predicted classes: the argmax of the logits.
    ///
    /// # Errors
    /// As [`LinearReadout::logits`].
    pub fn predict(&self, features: MatRef<'_, F>) -> Result<Vec<usize>> {
        let l = self.logits(features)?;
        Ok((0..l.rows()).map(|i| argmax(l.row(i))).collect())
    }

    /// Fraction of `labels` predicted correctly (0 for no samples).
    ///
    /// # Errors
    /// As [`LinearReadout::logits`], plus labels that do not match.
    pub fn accuracy(&self, features: MatRef<'_, F>, labels: &[usize]) -> Result<f64> {
        check_labels(features.rows(), labels, self.num_classes())?;
        if labels.is_empty() {
            return Ok(0.0);
        }
        let pred = self.predict(features)?;
        Ok(pred.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64)
    }

    /// Digital FLOPs of [`LinearReadout::logits`] on `n` samples.
    pub fn flops_predict(&self, n: usize) -> u64 {
        2 * (n * self.input_len()) as u64 + self.linear.flops_forward(n)
    }
}

fn check_labels(n: usize, labels: &[usize], num_classes: usize) -> Result<()> {
    if labels.len() != n {
        return Err(CoreError::Shape {
            context: "read-out labels".into(),
            expected: format!("{n} labels (one per sample)"),
            got: format!("{}", labels.len()),
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= num_classes) {
        return Err(CoreError::Label { label, row, num_classes });
    }
    Ok(())
}

/// Per-column mean and population standard deviation, accumulated in `f64`; a column with sd
/// below `1e-12` (constant: no information) gets sd 1 so that standardising never divides by 0.
fn moments<F: Real>(m: MatRef<'_, F>) -> (Vec<F>, Vec<F>) {
    let (n, d) = (m.rows() as f64, m.cols());
    let mut mean = vec![0.0; d];
    for r in 0..m.rows() {
        for (acc, v) in mean.iter_mut().zip(m.row(r)) {
            *acc += v.to_f64().unwrap_or(0.0);
        }
    }
    mean.iter_mut().for_each(|v| *v /= n);
    // Two-pass variance: no cancellation for features with a large mean.
    let mut var = vec![0.0; d];
    for r in 0..m.rows() {
        for ((acc, v), mu) in var.iter_mut().zip(m.row(r)).zip(&mean) {
            let c = v.to_f64().unwrap_or(0.0) - mu;
            *acc += c * c;
        }
    }
    let sd = var.iter().map(|v| (v / n).sqrt()).map(|s| if s > 1e-12 { s } else { 1.0 });
    (mean.iter().map(|&v| F::c(v)).collect(), sd.map(F::c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Three Gaussian classes in 4-D, with an offset and scale that standardisation must undo.
    fn blobs(n: usize, seed: u64) -> (Matrix<f64>, Vec<usize>) {
        let mut rng = rng_for(seed, "blobs");
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Matrix::from_fn(n, 4, |i, c| {
            let centre = if c == y[i] { 1.5 } else { 0.0 };
            1000.0 + 50.0 * (centre + 0.4 * rng.random_range(-1.0..1.0))
        });
        (x, y)
    }

    #[test]
    fn separates_blobs_deterministically() {
        let (x, y) = blobs(150, 1);
        let cfg = ReadoutConfig { epochs: 30, batch_size: 32, lr: 1e-2 };
        let (r, fit) = LinearReadout::fit(x.view(), &y, 3, &cfg, 4).unwrap();
        assert!(r.accuracy(x.view(), &y).unwrap() > 0.95);
        assert!(fit.loss.last().unwrap() < &(0.5 * fit.loss[0]), "{:?}", fit.loss);
        assert!(fit.digital_flops > 0);
        let (test_x, test_y) = blobs(90, 2);
        assert!(r.accuracy(test_x.view(), &test_y).unwrap() > 0.9);
        let (again, _) = LinearReadout::fit(x.view(), &y, 3, &cfg, 4).unwrap();
        assert_eq!(r, again, "same seed, same bits");
        let (mean, sd) = r.standardisation();
        assert!((mean[0] - 1025.0).abs() < 10.0 && sd[0] > 10.0, "{mean:?} {sd:?}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x, y) = blobs(9, 1);
        let cfg = ReadoutConfig::default();
        let e = LinearReadout::fit(x.view(), &y, 3, &ReadoutConfig { epochs: 0, ..cfg }, 0).unwrap_err().to_string();
        assert!(e.contains("readout_epochs") && e.contains("got 0"), "{e}");
        assert!(matches!(LinearReadout::fit(x.view(), &y[..8], 3, &cfg, 0), Err(CoreError::Shape { .. })));
        assert!(matches!(LinearReadout::fit(x.view(), &y, 2, &cfg, 0), Err(CoreError::Label { label: 2, .. })));
        let mut bad = x.clone();
        bad.data_mut()[3] = f64::INFINITY;
        assert!(LinearReadout::fit(bad.view(), &y, 3, &cfg, 0).is_err());
        let cfg1 = ReadoutConfig { epochs: 1, ..cfg };
        let (r, _) = LinearReadout::fit(x.view(), &y, 3, &cfg1, 0).unwrap();
        assert!(r.logits(Matrix::<f64>::zeros(2, 5).view()).is_err());
        // A constant feature is kept (sd 1) rather than dividing by zero.
        let constant = Matrix::from_fn(9, 2, |i, c| if c == 0 { 3.0 } else { (i % 3) as f64 });
        let (r, _) = LinearReadout::fit(constant.view(), &y, 3, &cfg1, 0).unwrap();
        assert_eq!(r.standardisation().1[0], 1.0);
        assert!(r.logits(constant.view()).unwrap().find_non_finite().is_none());
    }

    #[test]
    fn a_saved_readout_whose_parts_do_not_fit_is_refused() {
        let (x, y) = blobs(12, 1);
        let cfg = ReadoutConfig { epochs: 1, ..ReadoutConfig::default() };
        let (r, _) = LinearReadout::<f32>::fit(x.cast::<f32>().view(), &y, 3, &cfg, 0).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<LinearReadout<f32>>(&json).unwrap(), r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let load = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut w = v.clone();
            edit(&mut w);
            serde_json::from_value::<LinearReadout<f32>>(w).unwrap_err().to_string()
        };
        let e = load(&|w| {
            w["sd"].as_array_mut().unwrap().pop();
        });
        assert!(e.contains("readout sd") && e.contains("4 values, one per feature") && e.contains("got 3"), "{e}");
        let e = load(&|w| w["sd"][2] = 0.0.into());
        assert!(e.contains("must be positive, entry 2 is 0"), "{e}");
        let e = load(&|w| w["mean"][0] = (-1e39).into());
        assert!(e.contains("value -1e39 overflows f32"), "{e}");
        let e = load(&|w| {
            w["linear"]["sizes"] = serde_json::json!([4, 5, 3]);
            w["linear"]["activations"] = serde_json::json!(["identity", "identity"]);
        });
        assert!(e.contains("readout linear.sizes") || e.contains("mlp.params"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        /// The gradient the fit follows is the gradient of the read-out's loss with respect to
        /// its parameters: central differences on the composed map (standardise, affine,
        /// softmax cross-entropy), relative tolerance 1e-6.
        #[test]
        fn fit_gradient_matches_finite_differences(seed in 0u64..1000) {
            let (x, y) = blobs(12, seed);
            let cfg = ReadoutConfig { epochs: 1, ..ReadoutConfig::default() };
            let (r, _) = LinearReadout::fit(x.view(), &y, 3, &cfg, seed).unwrap();
            let loss = |r: &LinearReadout<f64>| {
                let l = r.logits(x.view()).unwrap();
                softmax_cross_entropy(l.view(), &y, &mut Matrix::zeros(0, 0))
            };
            let mut s = Matrix::zeros(12, 4);
            for i in 0..12 {
                r.standardise_row(x.row(i), s.row_mut(i));
            }
            let mut cache = MlpCache::default();
            r.linear.forward_cached(s.view(), &mut cache).unwrap();
            let mut g = Matrix::zeros(0, 0);
            softmax_cross_entropy(cache.output().view(), &y, &mut g);
            let mut grad = vec![0.0; r.linear.num_params()];
            r.linear.backward(&cache, g.view(), &mut grad, None);
            let h = 1e-6;
            for (p, &gp) in grad.iter().enumerate() {
                let (mut a, mut b) = (r.clone(), r.clone());
                a.linear.params_mut()[p] += h;
                b.linear.params_mut()[p] -= h;
                let fd = (loss(&a) - loss(&b)) / (2.0 * h);
                prop_assert!((fd - gp).abs() < 1e-6 * (1.0 + fd.abs()), "param {}: fd {} vs {}", p, fd, gp);
            }
        }
    }
}
