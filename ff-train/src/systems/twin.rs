//! The digital twin: an MLP surrogate of a physical system, fitted to input/output pairs.
//!
//! Inputs and outputs are standardised per feature (mean 0, sd 1 over the fitting set) around
//! the MLP, so one learning rate fits systems of any scale. The twin is itself a
//! [`PhysicalSystem`] (not physical: its queries are digital) and [`Differentiable`], which is
//! what physics-aware training and in-silico training need.

use crate::driver::{drive, EvalSchedule, Learner, Plan, Split, Stop};
use crate::io::write_atomic;
use anyhow::{Context, Result};
use ff_core::rng::{rng_for, MiniBatches};
use ff_core::{
    check_batch, check_vjp_shapes, Activation, Counters, Differentiable, MatMut, MatRef, Matrix, Mlp, MlpCache,
    MlpScratch, Optimizer, OptimizerConfig, PhysicalSystem, Real, SystemError,
};
use ff_data::permutation;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a twin is fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwinConfig {
    /// Hidden layer widths (SiLU); empty means one hidden layer as wide as the wider of input
    /// and output.
    pub hidden: Vec<usize>,
    /// Number of distinct inputs sampled from the system (default 10 000, the size of the
    /// measured set the public PhyLL code fits its acoustic emulator on).
    pub samples: usize,
    /// Queries per sampled input (noisy systems: every repeat is one pair).
    pub repeats: usize,
    /// Training epochs of the fit.
    pub epochs: usize,
    /// Mini-batch size of the fit.
    pub batch_size: usize,
    /// Adam learning rate of the fit.
    pub lr: f64,
    /// Fraction of the pairs held out for the validation RMSE, in `[0, 1)`.
    pub val_fraction: f64,
    /// Seed of the sampled inputs, the initialisation and the shuffles.
    pub seed: u64,
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            hidden: Vec::new(),
            samples: 10_000,
            repeats: 1,
            epochs: 20,
            batch_size: 64,
            lr: 1e-3,
            val_fraction: 0.1,
            seed: 0,
        }
    }
}

impl TwinConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.samples >= 2, "invalid twin.samples: need at least 2, got {}", self.samples);
        anyhow::ensure!(self.repeats >= 1, "invalid twin.repeats: must be at least 1, got 0");
        anyhow::ensure!(self.epochs >= 1, "invalid twin.epochs: must be at least 1, got 0");
        anyhow::ensure!(self.batch_size >= 1, "invalid twin.batch_size: must be at least 1, got 0");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.val_fraction),
            "invalid twin.val_fraction: must be in [0, 1), got {}",
            self.val_fraction
        );
        OptimizerConfig::adam(self.lr).validate().map_err(|e| anyhow::anyhow!("invalid twin.lr: {e}"))
    }
}

/// What a fit cost and achieved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinFit {
    /// Root-mean-square error on the training pairs, in output units.
    pub train_rmse: f64,
    /// Root-mean-square error on the held-out pairs, in output units (NaN when none).
    pub val_rmse: f64,
    /// RMSE of the constant predictor (the training mean) on the held-out pairs: the scale
    /// against which `val_rmse` is judged.
    pub val_rmse_of_mean: f64,
    /// Physical queries spent collecting pairs (0 for measured pairs).
    pub physical_queries: u64,
    /// Digital FLOPs of the fit (forward, backward, optimiser).
    pub digital_flops: u64,
}

/// An MLP surrogate of a system, with input and output standardisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real")]
pub struct Twin<F> {
    name: String,
    mlp: Mlp<F>,
    in_mean: Vec<F>,
    in_sd: Vec<F>,
    out_mean: Vec<F>,
    out_sd: Vec<F>,
    /// Buffers of [`PhysicalSystem::forward_batch`], reused from query to query.
    #[serde(skip)]
    scratch: TwinScratch<F>,
}

/// Working memory of a twin's queries: not part of the model (never saved, never compared).
#[derive(Clone, Debug)]
struct TwinScratch<F> {
    input: Matrix<F>,
    mlp: MlpScratch<F>,
}

impl<F> Default for TwinScratch<F> {
    fn default() -> Self {
        TwinScratch { input: Matrix::default(), mlp: MlpScratch::default() }
    }
}

impl<F> PartialEq for TwinScratch<F> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn moments<F: Real>(m: &Matrix<F>) -> (Vec<F>, Vec<F>) {
    let (n, d) = (m.rows().max(1) as f64, m.cols());
    let mut mean = vec![0.0; d];
    let mut sq = vec![0.0; d];
    for r in 0..m.rows() {
        for (c, v) in m.row(r).iter().enumerate() {
            let v = v.to_f64().unwrap_or(0.0);
            mean[c] += v / n;
            sq[c] += v * v / n;
        }
    }
    // A constant feature gets sd 1 (it carries no information, and dividing by 0 would not).
    let sd = mean.iter().zip(&sq).map(|(m, s)| (s - m * m).max(0.0).sqrt()).map(|s| if s > 1e-12 { s } else { 1.0 });
    (mean.iter().map(|&v| F::c(v)).collect(), sd.map(F::c).collect())
}

fn standardise<F: Real>(m: MatRef<'_, F>, mean: &[F], sd: &[F]) -> Matrix<F> {
    let mut out = Matrix::zeros(0, 0);
    standardise_into(m, mean, sd, &mut out);
    out
}

/// `(m - mean) / sd` per column, into `out` (resized).
fn standardise_into<F: Real>(m: MatRef<'_, F>, mean: &[F], sd: &[F], out: &mut Matrix<F>) {
    out.resize(m.rows(), m.cols());
    for r in 0..m.rows() {
        for (((o, &v), &mu), &s) in out.row_mut(r).iter_mut().zip(m.row(r)).zip(mean).zip(sd) {
            *o = (v - mu) / s;
        }
    }
}

/// An MLP with its optimiser, one step per mini-batch: the trainable part of a twin fit and
/// of the digital MLP baseline (`crate::baselines::e2e::MlpLearner`).
pub(crate) struct AdamMlp<F: Real> {
    pub(crate) mlp: Mlp<F>,
    opt_cfg: OptimizerConfig,
    opt: Optimizer<F>,
    params: Vec<F>,
    cache: MlpCache<F>,
    grad: Vec<F>,
}

impl<F: Real> AdamMlp<F> {
    pub(crate) fn new(mlp: Mlp<F>, opt_cfg: OptimizerConfig) -> Self {
        AdamMlp {
            opt: Optimizer::<F>::new(opt_cfg, mlp.num_params()),
            opt_cfg,
            params: mlp.params().to_vec(),
            grad: vec![F::zero(); mlp.num_params()],
            cache: MlpCache::default(),
            mlp,
        }
    }

    /// The MLP's output on `x`, kept for [`AdamMlp::step`].
    pub(crate) fn forward(&mut self, x: MatRef<'_, F>) -> Result<&Matrix<F>> {
        self.mlp.forward_cached(x, &mut self.cache)?;
        Ok(self.cache.output())
    }

    /// Backpropagates `g` (the loss gradient at the output of the last [`AdamMlp::forward`])
    /// and takes one optimiser step; returns the FLOPs of the forward pass, the backward pass
    /// and the step.
    pub(crate) fn step(&mut self, g: MatRef<'_, F>) -> u64 {
        let rows = g.rows();
        self.mlp.backward(&self.cache, g, &mut self.grad, None);
        self.opt.step(&mut self.params, &self.grad);
        self.mlp.params_mut().copy_from_slice(&self.params);
        self.mlp.flops_forward(rows) + self.mlp.flops_backward(rows) + self.opt_cfg.flops_per_step(self.params.len())
    }

    /// Whether every parameter is finite.
    pub(crate) fn is_finite(&self) -> bool {
        self.params.iter().all(|p| p.is_finite())
    }

    pub(crate) fn set_lr_scale(&mut self, scale: f64) -> Result<()> {
        Ok(self.opt.set_lr_scale(scale)?)
    }

    pub(crate) fn state(&self) -> Vec<F> {
        self.params.clone()
    }

    pub(crate) fn restore(&mut self, state: Vec<F>) -> Result<()> {
        anyhow::ensure!(state.len() == self.params.len(), "a state of another network");
        self.mlp.params_mut().copy_from_slice(&state);
        self.params = state;
        Ok(())
    }
}

/// The fit of a twin's MLP as a [`Learner`]: Adam on the mean squared error between the MLP
/// and the standardised outputs, one step per mini-batch.
struct TwinLearner<'a, F: Real> {
    name: &'a str,
    net: AdamMlp<F>,
    xs: &'a Matrix<F>,
    ys: &'a Matrix<F>,
    work: Counters,
    epoch: usize,
}

impl<F: Real> Learner for TwinLearner<'_, F> {
    type State = Vec<F>;

    fn start_epoch(&mut self, epoch: usize, _planned: Option<usize>) -> Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>> {
        let (xb, yb) = (self.xs.select_rows(batch), self.ys.select_rows(batch));
        let d_out = yb.cols();
        let scale = F::c(2.0 / (batch.len() * d_out) as f64);
        let out = self.net.forward(xb.view())?;
        let g = Matrix::from_fn(batch.len(), d_out, |r, c| (out.get(r, c) - yb.get(r, c)) * scale);
        self.work.digital_flops += self.net.step(g.view());
        anyhow::ensure!(
            self.net.is_finite(),
            "twin fit of {} diverged in epoch {}; lower twin.lr",
            self.name,
            self.epoch
        );
        Ok(Vec::new())
    }

    fn accuracy(&mut self, _split: Split) -> Result<f64> {
        anyhow::bail!("a twin is a regression: it has no accuracy (its fit reports RMSE)")
    }

    fn counters(&self) -> Counters {
        self.work
    }

    fn state(&self) -> Vec<F> {
        self.net.state()
    }

    fn restore(&mut self, state: Vec<F>) -> Result<()> {
        self.net.restore(state)
    }
}

impl<F: Real> Twin<F> {
    /// Fits a twin to pairs `x -> y` (rows are samples): the last `val_fraction` of a seeded
    /// shuffle is held out. `name` names the twin (e.g. `"twin of optics 32x32"`).
    ///
    /// # Errors
    /// Invalid configuration, mismatched or empty pairs, a diverging fit.
    pub fn fit_pairs(name: &str, x: &Matrix<F>, y: &Matrix<F>, cfg: &TwinConfig) -> Result<(Self, TwinFit)> {
        cfg.validate()?;
        anyhow::ensure!(
            x.rows() == y.rows() && x.rows() >= 2,
            "twin pairs: {} inputs vs {} outputs; need equal counts of at least 2",
            x.rows(),
            y.rows()
        );
        let n = x.rows();
        let order = permutation(n, &mut rng_for(cfg.seed, "twin split"));
        let n_val = ((n as f64) * cfg.val_fraction).round() as usize;
        let (tr, va) = order.split_at(n - n_val.min(n - 1));
        let (xt, yt) = (x.select_rows(tr), y.select_rows(tr));
        let (in_mean, in_sd) = moments(&xt);
        let (out_mean, out_sd) = moments(&yt);
        let xs = standardise(xt.view(), &in_mean, &in_sd);
        let ys = standardise(yt.view(), &out_mean, &out_sd);
        let (d_in, d_out) = (x.cols(), y.cols());
        let mut sizes = vec![d_in];
        if cfg.hidden.is_empty() {
            sizes.push(d_in.max(d_out));
        } else {
            sizes.extend(&cfg.hidden);
        }
        sizes.push(d_out);
        let mut rng = rng_for(cfg.seed, "twin init");
        let mlp = Mlp::<F>::new(&sizes, Activation::Silu, Activation::Identity, &mut rng)?;
        let net = AdamMlp::new(mlp, OptimizerConfig::adam(cfg.lr));
        let mut learner = TwinLearner { name, net, xs: &xs, ys: &ys, work: Counters::default(), epoch: 0 };
        let plan = Plan {
            stop: Stop::Epochs(cfg.epochs),
            eval: EvalSchedule::Never,
            batches: MiniBatches::new(xs.rows(), cfg.batch_size, cfg.seed).streams_from(0),
            train_eval: false,
            select: false,
            name: None,
        };
        drive(&mut learner, &plan, None, None, &mut [])?;
        let (mlp, mut flops) = (learner.net.mlp, learner.work.digital_flops);
        let twin = Twin { name: name.into(), mlp, in_mean, in_sd, out_mean, out_sd, scratch: TwinScratch::default() };
        let train_rmse = twin.rmse(&xt, &yt)?;
        let (val_rmse, val_rmse_of_mean) = if va.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let (xv, yv) = (x.select_rows(va), y.select_rows(va));
            let mean_only = Matrix::from_fn(yv.rows(), d_out, |_, c| twin.out_mean[c]);
            (twin.rmse(&xv, &yv)?, rmse_between(&mean_only, &yv))
        };
        flops += 2 * twin.mlp.flops_forward(n);
        Ok((twin, TwinFit { train_rmse, val_rmse, val_rmse_of_mean, physical_queries: 0, digital_flops: flops }))
    }

    /// Samples `cfg.samples` inputs uniformly in `[lo, hi)` (every entry independent), queries
    /// `system` `cfg.repeats` times on them, and fits a twin to the pairs.
    ///
    /// # Errors
    /// System failures and the errors of [`Twin::fit_pairs`].
    pub fn fit_system(
        system: &mut dyn PhysicalSystem<F>,
        range: (f64, f64),
        cfg: &TwinConfig,
    ) -> Result<(Self, TwinFit)> {
        cfg.validate()?;
        anyhow::ensure!(range.0 < range.1, "twin input range must have lo < hi, got {range:?}");
        let mut rng = rng_for(cfg.seed, "twin inputs");
        let d = system.input_len();
        let x1 = Matrix::from_fn(cfg.samples, d, |_, _| F::c(rng.random_range(range.0..range.1)));
        Twin::fit_system_on(system, &x1, cfg)
    }

    /// Queries `system` `cfg.repeats` times on the given inputs `x1` (one row per distinct
    /// input; `cfg.samples` is ignored) and fits a twin to the pairs.
    ///
    /// # Errors
    /// An input width that is not the system's, system failures, and the errors of
    /// [`Twin::fit_pairs`].
    pub fn fit_system_on(
        system: &mut dyn PhysicalSystem<F>,
        x1: &Matrix<F>,
        cfg: &TwinConfig,
    ) -> Result<(Self, TwinFit)> {
        cfg.validate()?;
        let d = system.input_len();
        anyhow::ensure!(x1.cols() == d, "twin inputs of {} values per row, but {} takes {d}", x1.cols(), system.name());
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..cfg.repeats {
            let yr = system.forward(x1.view()).with_context(|| format!("sampling {}", system.name()))?;
            xs.extend_from_slice(x1.data());
            ys.extend_from_slice(yr.data());
        }
        let n = x1.rows() * cfg.repeats;
        let x = Matrix::from_vec(n, d, xs)?;
        let y = Matrix::from_vec(n, system.output_len(), ys)?;
        let queries = if system.is_physical() { n as u64 } else { 0 };
        let (twin, mut fit) = Twin::fit_pairs(&format!("twin of {}", system.name()), &x, &y, cfg)?;
        fit.physical_queries = queries;
        Ok((twin, fit))
    }

    /// Root-mean-square error of the twin's predictions of `y` from `x`, in output units.
    ///
    /// # Errors
    /// Shape mismatches.
    pub fn rmse(&self, x: &Matrix<F>, y: &Matrix<F>) -> Result<f64> {
        let p = self.predict(x.view())?;
        anyhow::ensure!(p.cols() == y.cols() && p.rows() == y.rows(), "rmse: prediction and target shapes differ");
        Ok(rmse_between(&p, y))
    }

    fn predict(&self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        let xs = standardise(x, &self.in_mean, &self.in_sd);
        let mut y = self.mlp.forward(xs.view())?;
        let d = y.cols();
        for (i, v) in y.data_mut().iter_mut().enumerate() {
            let c = i % d;
            *v = *v * self.out_sd[c] + self.out_mean[c];
        }
        Ok(y)
    }

    /// The underlying MLP (in standardised units).
    pub fn mlp(&self) -> &Mlp<F> {
        &self.mlp
    }

    /// Digital FLOPs of one forward query of `n` rows.
    pub fn flops_forward(&self, n: usize) -> u64 {
        self.mlp.flops_forward(n) + 4 * (self.mlp.input_len() + self.mlp.output_len()) as u64 * n as u64
    }

    /// Digital FLOPs of one VJP of `n` rows (a forward to rebuild the cache, then backward).
    pub fn flops_vjp(&self, n: usize) -> u64 {
        self.flops_forward(n) + self.mlp.flops_backward(n)
    }

    /// Saves the twin as JSON (atomic write).
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn save(&self, path: &Path) -> Result<()>
    where
        F: Serialize,
    {
        write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }

    /// Loads a twin saved by [`Twin::save`].
    ///
    /// # Errors
    /// I/O and parse errors, with the path.
    pub fn load(path: &Path) -> Result<Self>
    where
        F: for<'de> Deserialize<'de>,
    {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read twin {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("invalid twin file {}", path.display()))
    }
}

/// RMSE of predicting every column of `y` by its mean over `y`'s rows (the mean predictor).
pub(crate) fn rmse_of_mean<F: Real>(y: &Matrix<F>) -> f64 {
    let (mean, _) = moments(y);
    rmse_between(&Matrix::from_fn(y.rows(), y.cols(), |_, c| mean[c]), y)
}

/// Root-mean-square difference of two matrices of one shape, over every entry.
pub(crate) fn rmse_between<F: Real>(a: &Matrix<F>, b: &Matrix<F>) -> f64 {
    let n = a.data().len().max(1) as f64;
    let s: f64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(p, q)| (p.to_f64().unwrap_or(0.0) - q.to_f64().unwrap_or(0.0)).powi(2))
        .sum();
    (s / n).sqrt()
}

impl<F: Real> PhysicalSystem<F> for Twin<F> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn input_len(&self) -> usize {
        self.mlp.input_len()
    }
    fn output_len(&self) -> usize {
        self.mlp.output_len()
    }
    fn is_physical(&self) -> bool {
        false
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&self.name, self.input_len(), self.output_len(), &input, &output)?;
        let TwinScratch { input: xs, mlp: scratch } = &mut self.scratch;
        standardise_into(input, &self.in_mean, &self.in_sd, xs);
        let y = self
            .mlp
            .forward_with(xs.view(), scratch)
            .map_err(|e| SystemError::Device { system: self.name.clone(), message: e.to_string() })?;
        let d = y.cols();
        for r in 0..y.rows() {
            for (((o, &v), &sd), &mu) in
                output.data_mut()[r * d..(r + 1) * d].iter_mut().zip(y.row(r)).zip(&self.out_sd).zip(&self.out_mean)
            {
                *o = v * sd + mu;
            }
        }
        Ok(())
    }
}

impl<F: Real> Differentiable<F> for Twin<F> {
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        mut grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError> {
        check_vjp_shapes(&self.name, self.input_len(), self.output_len(), &input, &grad_output, &grad_input)?;
        let xs = standardise(input, &self.in_mean, &self.in_sd);
        let mut cache = MlpCache::default();
        self.mlp
            .forward_cached(xs.view(), &mut cache)
            .map_err(|e| SystemError::Device { system: self.name.clone(), message: e.to_string() })?;
        let d_out = self.output_len();
        let g = Matrix::from_fn(input.rows(), d_out, |r, c| grad_output.row(r)[c] * self.out_sd[c]);
        let mut gp = vec![F::zero(); self.mlp.num_params()];
        self.mlp.backward(&cache, g.view(), &mut gp, Some(&mut grad_input));
        let d_in = self.input_len();
        for (i, v) in grad_input.data_mut().iter_mut().enumerate() {
            *v /= self.in_sd[i % d_in];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::conformance::check_vjp;

    #[test]
    fn twin_vjp_is_exact_and_save_load_round_trips() {
        let x = Matrix::<f64>::from_fn(64, 3, |r, c| ((r * 3 + c * 7) % 13) as f64 / 13.0);
        let y = Matrix::from_fn(64, 2, |r, _| x.get(r, 0) * x.get(r, 1) + x.get(r, 2).sin());
        let cfg = TwinConfig { hidden: vec![8], epochs: 5, batch_size: 16, ..TwinConfig::default() };
        let (mut twin, fit) = Twin::fit_pairs("toy", &x, &y, &cfg).unwrap();
        assert!(fit.train_rmse.is_finite() && fit.val_rmse.is_finite());
        check_vjp(&mut twin, (0.0, 1.0), 3, 1e-6, 1e-6, 5);
        let dir = std::env::temp_dir().join(format!("phyff-twin-{}", std::process::id()));
        let path = dir.join("twin.json");
        twin.save(&path).unwrap();
        let back = Twin::<f64>::load(&path).unwrap();
        assert_eq!(back, twin);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn acoustic_twin_fits_the_measured_pairs() {
        let (x, y) = ff_data::builtin_acoustic_pairs::<f32>().unwrap();
        // The public code feeds |x| / ||x||; the first row is all zeros (norm 0) and is dropped.
        // 2 500 pairs and 15 epochs keep the test at a few seconds (the public code: 9 000 pairs).
        let rows: Vec<usize> = (1..2501).collect();
        let (x, y) = (x.select_rows(&rows), y.select_rows(&rows));
        let x = Matrix::from_fn(x.rows(), x.cols(), |r, c| {
            let norm = x.row(r).iter().map(|v| v * v).sum::<f32>().sqrt();
            x.get(r, c).abs() / norm
        });
        let cfg = TwinConfig {
            hidden: vec![100, 200, 100],
            epochs: 15,
            batch_size: 32,
            lr: 2e-3,
            val_fraction: 0.2,
            ..TwinConfig::default()
        };
        let (_, fit) = Twin::fit_pairs("acoustic twin", &x, &y, &cfg).unwrap();
        eprintln!("acoustic twin: {fit:?}");
        assert!(
            fit.val_rmse < ACOUSTIC_VAL_RMSE_BOUND,
            "validation RMSE {} >= {ACOUSTIC_VAL_RMSE_BOUND}",
            fit.val_rmse
        );
        assert!(
            fit.val_rmse < 0.5 * fit.val_rmse_of_mean,
            "twin {} vs mean predictor {}",
            fit.val_rmse,
            fit.val_rmse_of_mean
        );
    }

    /// Validation RMSE bound of the short acoustic fit (output units of the built-in measured outputs). Measured
    /// 0.046 (train 0.037; the mean predictor 0.170) with this configuration; 0.07 leaves a
    /// 50 % margin for platform rounding while still failing a twin that learnt little.
    const ACOUSTIC_VAL_RMSE_BOUND: f64 = 0.07;
}
