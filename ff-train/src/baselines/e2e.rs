//! End-to-end training of the block network (physics + affine per block + softmax read-out)
//! with gradients: ideal backprop, physics-aware training (PAT) and in-silico training differ
//! only in which model runs each block's forward pass and which gives its vector-Jacobian
//! product ([`BlockModel`]).
//!
//! Network: `h_0` is the sample with its label slots/bands empty (zeros: the label is what is
//! predicted), block `k` computes `p = P_k(h)`, `u = p` (or `[p ; h]` with skip),
//! `h' = W_k u + b_k`; the read-out is `logits = R h_L + c`, loss softmax cross-entropy, Adam
//! on all affine maps and the read-out at once.

use crate::config::ExperimentConfig;
use crate::driver::{drive, EvalSchedule, Learner, OnEval, Plan, Split, Stop};
use crate::record::{add_counters, RunRecord};
use crate::systems::twin::{rmse_between, rmse_of_mean, AdamMlp};
use anyhow::{Context, Result};
use ff_core::rng::{rng_for, MiniBatches};
use ff_core::{
    hcat, softmax_cross_entropy, Activation, Counters, Differentiable, LrSchedule, Matrix, Mlp, MlpCache, Optimizer,
    OptimizerConfig, PhysicalSystem, Real,
};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Which model runs a block's forward pass in training, which gives the backward pass, and
/// what runs when the trained network is deployed.
pub enum BlockModel<F: Real> {
    /// Ideal backprop: the exact differentiable model of the physics does everything.
    /// `vjp_flops` is the digital cost of one row's VJP (see [`super::optics_vjp_flops`]).
    Exact {
        /// The system (forward = the physics; its VJP is exact).
        system: Box<dyn Differentiable<F>>,
        /// Digital FLOPs per row of the exact VJP.
        vjp_flops: u64,
    },
    /// PAT: forward on the physical system, backward through the twin's VJP evaluated at the
    /// physical inputs; deployed on the physical system.
    Pat {
        /// The physical system.
        physical: Box<dyn PhysicalSystem<F>>,
        /// The differentiable twin.
        twin: Box<dyn Differentiable<F>>,
        /// Digital FLOPs per row of a twin VJP.
        vjp_flops: u64,
    },
    /// In-silico: forward and backward on the twin; deployed on the physical system.
    InSilico {
        /// The physical system (only used when deployed).
        physical: Box<dyn PhysicalSystem<F>>,
        /// The differentiable twin.
        twin: Box<dyn Differentiable<F>>,
        /// Digital FLOPs per row of a twin forward.
        forward_flops: u64,
        /// Digital FLOPs per row of a twin VJP.
        vjp_flops: u64,
    },
}

fn query<F: Real>(s: &mut dyn PhysicalSystem<F>, x: &Matrix<F>, t: &mut Counters) -> Result<Matrix<F>> {
    if s.is_physical() {
        t.physical_queries += x.rows() as u64;
    }
    s.forward(x.view()).with_context(|| format!("querying {}", s.name()))
}

fn vjp<F: Real>(s: &mut dyn Differentiable<F>, x: &Matrix<F>, g: &Matrix<F>) -> Result<Matrix<F>> {
    let mut gi = Matrix::zeros(x.rows(), s.input_len());
    s.vjp(x.view(), g.view(), gi.view_mut()).with_context(|| format!("VJP of {}", s.name()))?;
    Ok(gi)
}

impl<F: Real> BlockModel<F> {
    /// The forward pass used in training.
    ///
    /// # Errors
    /// System failures.
    pub fn train_forward(&mut self, x: &Matrix<F>, t: &mut Counters) -> Result<Matrix<F>> {
        match self {
            BlockModel::Exact { system, .. } => query(system.as_mut(), x, t),
            BlockModel::Pat { physical, .. } => query(physical.as_mut(), x, t),
            BlockModel::InSilico { twin, forward_flops, .. } => {
                t.digital_flops += *forward_flops * x.rows() as u64;
                query(twin.as_mut(), x, t)
            }
        }
    }

    /// The backward pass used in training: `J(x)^T g` of the block's gradient model at `x`.
    ///
    /// # Errors
    /// System failures.
    pub fn backward(&mut self, x: &Matrix<F>, g: &Matrix<F>, t: &mut Counters) -> Result<Matrix<F>> {
        let (sys, flops): (&mut dyn Differentiable<F>, u64) = match self {
            BlockModel::Exact { system, vjp_flops } => (system.as_mut(), *vjp_flops),
            BlockModel::Pat { twin, vjp_flops, .. } | BlockModel::InSilico { twin, vjp_flops, .. } => {
                (twin.as_mut(), *vjp_flops)
            }
        };
        t.digital_flops += flops * x.rows() as u64;
        vjp(sys, x, g)
    }

    /// The forward pass of the deployed network (the physics, or its exact model).
    ///
    /// # Errors
    /// System failures.
    pub fn deployed_forward(&mut self, x: &Matrix<F>, t: &mut Counters) -> Result<Matrix<F>> {
        match self {
            BlockModel::Exact { system, .. } => query(system.as_mut(), x, t),
            BlockModel::Pat { physical, .. } | BlockModel::InSilico { physical, .. } => query(physical.as_mut(), x, t),
        }
    }

    /// For a block trained through a twin (PAT, in-silico): the twin's RMSE against the physical
    /// system on the inputs `x`, and the RMSE of the mean predictor (every output predicted by
    /// its mean over these same queries); `None` for [`BlockModel::Exact`]. The physical queries
    /// are counted in `t`.
    ///
    /// # Errors
    /// System failures.
    pub fn twin_check(&mut self, x: &Matrix<F>, t: &mut Counters) -> Result<Option<(f64, f64)>> {
        let (physical, twin) = match self {
            BlockModel::Exact { .. } => return Ok(None),
            BlockModel::Pat { physical, twin, .. } | BlockModel::InSilico { physical, twin, .. } => (physical, twin),
        };
        let y = query(physical.as_mut(), x, t)?;
        let p = twin.forward(x.view()).with_context(|| format!("querying {}", twin.name()))?;
        Ok(Some((rmse_between(&p, &y), rmse_of_mean(&y))))
    }

    fn output_len(&self) -> usize {
        match self {
            BlockModel::Exact { system, .. } => system.output_len(),
            BlockModel::Pat { physical, .. } | BlockModel::InSilico { physical, .. } => physical.output_len(),
        }
    }
}

/// How well a block's twin predicts its system on the inputs the block sees in training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeenTwinFit {
    /// Block, from 1.
    pub block: usize,
    /// The twin's RMSE on the block's training-pass inputs with the initial affine maps.
    pub start_rmse: f64,
    /// The mean predictor's RMSE on the same inputs.
    pub start_rmse_of_mean: f64,
    /// The twin's RMSE on the block's training-pass inputs with the trained affine maps.
    pub end_rmse: f64,
    /// The mean predictor's RMSE on the same inputs.
    pub end_rmse_of_mean: f64,
}

impl SeenTwinFit {
    /// The worse of the start and end ratios twin RMSE / mean predictor's RMSE.
    pub fn worst_ratio(&self) -> f64 {
        let r = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        r(self.start_rmse, self.start_rmse_of_mean).max(r(self.end_rmse, self.end_rmse_of_mean))
    }
}

/// Data of an end-to-end run: inputs already embedded with empty label slots.
pub struct E2eData<'a, F> {
    /// Training inputs (`n x d`).
    pub train_x: &'a Matrix<F>,
    /// Training labels.
    pub train_y: &'a [usize],
    /// Test inputs.
    pub test_x: &'a Matrix<F>,
    /// Test labels.
    pub test_y: &'a [usize],
    /// Number of classes.
    pub num_classes: usize,
}

impl<'a, F> E2eData<'a, F> {
    /// The inputs `train_x` and `test_x` (embedded with empty label slots) with the labels and
    /// the classes of `split`.
    pub fn new(train_x: &'a Matrix<F>, test_x: &'a Matrix<F>, split: &'a ff_data::TrainTest<F>) -> Self {
        E2eData {
            train_x,
            train_y: &split.train.y,
            test_x,
            test_y: &split.test.y,
            num_classes: split.train.num_classes,
        }
    }
}

/// Options of [`train_end_to_end`].
#[derive(Clone, Debug, PartialEq)]
pub struct E2eOptions {
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size (0 = full batch).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Decoupled weight decay of Adam (0: plain Adam), as `weight_decay` of the FF network.
    pub weight_decay: f64,
    /// Learning-rate factor per epoch, as the FF network's.
    pub lr_schedule: LrSchedule,
    /// Output width of every block's affine map.
    pub hidden: usize,
    /// Whether blocks concatenate their input after the physical output.
    pub skip: bool,
    /// Seed of the initialisation and the shuffles.
    pub seed: u64,
}

impl E2eOptions {
    /// The options of an experiment `cfg` (epochs, learning rate, weight decay, schedule, width,
    /// skip connection, seed) with mini-batches of `batch_size` (0: the whole training set).
    pub fn of(cfg: &ExperimentConfig, batch_size: usize) -> Self {
        E2eOptions {
            epochs: cfg.epochs,
            batch_size,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            lr_schedule: cfg.lr_schedule,
            hidden: cfg.hidden,
            skip: cfg.skip(),
            seed: cfg.seed,
        }
    }

    /// The optimiser of every end-to-end method and the digital MLP: Adam with these
    /// options' learning rate and weight decay.
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig::adamw(self.lr, self.weight_decay)
    }

    /// The driver's plan: `epochs` epochs of mini-batches of `batch_size` over `n` samples,
    /// the test split after every epoch and the training split after the last.
    fn plan(&self, n: usize, name: &str) -> Plan {
        Plan {
            stop: Stop::Epochs(self.epochs),
            eval: EvalSchedule::EveryEpochs(1),
            batches: MiniBatches::new(n, self.batch_size, self.seed),
            train_eval: true,
            select: false,
            name: Some(name.into()),
        }
    }
}

struct Net<F> {
    affine: Vec<Mlp<F>>,
    readout: Mlp<F>,
}

impl<F: Real> Net<F> {
    fn num_params(&self) -> usize {
        self.affine.iter().map(Mlp::num_params).sum::<usize>() + self.readout.num_params()
    }

    fn gather(&self) -> Vec<F> {
        let mut p: Vec<F> = self.affine.iter().flat_map(|a| a.params().iter().copied()).collect();
        p.extend_from_slice(self.readout.params());
        p
    }

    fn scatter(&mut self, p: &[F]) {
        let mut off = 0;
        for m in self.affine.iter_mut().chain(std::iter::once(&mut self.readout)) {
            let n = m.num_params();
            m.params_mut().copy_from_slice(&p[off..off + n]);
            off += n;
        }
    }
}

fn block_input<F: Real>(p: &Matrix<F>, h: &Matrix<F>, skip: bool) -> Result<Matrix<F>> {
    Ok(if skip { hcat(p.view(), h.view())? } else { p.clone() })
}

/// Runs the deployed network on `x`; returns the accuracy on `y` (0 for an empty set) and, if
/// `keep_io`, every block's input and physical output.
#[allow(clippy::type_complexity)]
fn deployed_pass<F: Real>(
    blocks: &mut [BlockModel<F>],
    net: &Net<F>,
    x: &Matrix<F>,
    y: &[usize],
    skip: bool,
    t: &mut Counters,
    keep_io: bool,
) -> Result<(f64, Vec<(Matrix<F>, Matrix<F>)>)> {
    if y.is_empty() {
        return Ok((0.0, Vec::new()));
    }
    let mut h = x.clone();
    let mut io = Vec::new();
    for (b, a) in blocks.iter_mut().zip(&net.affine) {
        let p = b.deployed_forward(&h, t)?;
        let u = block_input(&p, &h, skip)?;
        t.digital_flops += a.flops_forward(u.rows());
        let next = a.forward(u.view())?;
        if keep_io {
            io.push((h, p));
        }
        h = next;
    }
    let logits = net.readout.forward(h.view())?;
    t.digital_flops += net.readout.flops_forward(h.rows());
    let correct = (0..y.len()).filter(|&r| ff_core::network::argmax(logits.row(r)) == y[r]).count();
    Ok((correct as f64 / y.len() as f64, io))
}

fn accuracy<F: Real>(
    blocks: &mut [BlockModel<F>],
    net: &Net<F>,
    x: &Matrix<F>,
    y: &[usize],
    skip: bool,
    t: &mut Counters,
) -> Result<f64> {
    Ok(deployed_pass(blocks, net, x, y, skip, t, false)?.0)
}

/// Default jitter of [`TwinInputs::Data`] and [`TwinInputs::Mixed`], a fraction of each
/// feature's standard deviation (dimensionless).
pub const DEFAULT_TWIN_JITTER: f64 = 0.25;

/// Where the inputs that a block's twin is fitted on come from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwinInputs {
    /// Every entry independent and uniform over the block's initial input range widened by
    /// 25 % ([`initial_input_ranges`]): a box that holds the data, but whose points are mostly
    /// inputs the block never sees (for a later block of a wide network, white noise).
    Box,
    /// The block's own inputs: the training samples pushed through the undrifted blocks
    /// before it with the initial affine maps (those end-to-end training starts from), cycled
    /// in a seeded order, each feature jittered by Gaussian noise of `jitter` times its standard
    /// deviation over the training set (`jitter` dimensionless, `>= 0`). What the block sees
    /// at the start of training, and its neighbourhood, which the trained maps move into.
    Data {
        /// Noise standard deviation, as a fraction of each feature's standard deviation.
        jitter: f64,
    },
    /// Half of the inputs as [`TwinInputs::Box`] (the first `samples / 2`), half as
    /// [`TwinInputs::Data`]: accurate where training starts, and still trained on the
    /// wide range that training moves into.
    Mixed {
        /// Noise standard deviation of the data half, as a fraction of each feature's
        /// standard deviation.
        jitter: f64,
    },
}

impl TwinInputs {
    /// Checks the values.
    ///
    /// # Errors
    /// A negative or non-finite jitter, named with its flag.
    pub fn validate(&self) -> Result<()> {
        if let TwinInputs::Data { jitter } | TwinInputs::Mixed { jitter } = *self {
            anyhow::ensure!(
                jitter.is_finite() && jitter >= 0.0,
                "invalid --twin-jitter: a fraction of each feature's standard deviation, >= 0 and finite, got {jitter}"
            );
        }
        Ok(())
    }

    /// The inputs named by a command-line flag: `box`, or `data` with `jitter`.
    ///
    /// # Errors
    /// Another name, or an invalid jitter.
    pub fn from_flag(name: &str, jitter: f64) -> Result<Self> {
        let inputs = match name {
            "box" => TwinInputs::Box,
            "data" => TwinInputs::Data { jitter },
            "mixed" => TwinInputs::Mixed { jitter },
            other => anyhow::bail!("invalid --twin-inputs: {other}; use box, data or mixed"),
        };
        inputs.validate()?;
        Ok(inputs)
    }

    /// A short name (`box`, `data`).
    pub fn name(&self) -> &'static str {
        match self {
            TwinInputs::Box => "box",
            TwinInputs::Data { .. } => "data",
            TwinInputs::Mixed { .. } => "mixed",
        }
    }
}

/// One twin per block, as PAT and in-silico training need them: block `k`'s system is queried
/// on inputs drawn as `inputs` says (`twin.samples` of them) and its twin fitted with `twin` and
/// seed `seed + 1000 k`. Returns the twins, each block's input range (the fitted inputs' `(min,
/// max)`) and fit report, and the physical queries spent on finding the ranges or propagating
/// the data (the fits report their own).
///
/// # Errors
/// Invalid `inputs`, system failures and the errors of [`crate::systems::twin::Twin::fit_system`].
#[allow(clippy::type_complexity)]
pub fn fit_block_twins<F: Real>(
    systems: &mut [Box<dyn PhysicalSystem<F>>],
    x: &Matrix<F>,
    opts: &E2eOptions,
    twin: &crate::systems::twin::TwinConfig,
    seed: u64,
    inputs: TwinInputs,
) -> Result<(Vec<crate::systems::twin::Twin<F>>, Vec<((f64, f64), crate::systems::twin::TwinFit)>, u64)> {
    inputs.validate()?;
    let (mut twins, mut fits) = (Vec::new(), Vec::new());
    match inputs {
        TwinInputs::Box => {
            let (ranges, t0) = initial_input_ranges(systems, x, opts)?;
            for (k, (sys, &range)) in systems.iter_mut().zip(&ranges).enumerate() {
                let tc = crate::systems::twin::TwinConfig { seed: seed + 1000 * k as u64, ..twin.clone() };
                let (t, f) = crate::systems::twin::Twin::<F>::fit_system(sys.as_mut(), range, &tc)?;
                twins.push(t);
                fits.push((range, f));
            }
            Ok((twins, fits, t0.physical_queries))
        }
        TwinInputs::Data { jitter } => {
            let mut t0 = Counters::default();
            let clean = initial_block_inputs(systems, x.clone(), opts, false, &mut t0)?;
            for (k, (sys, h)) in systems.iter_mut().zip(&clean).enumerate() {
                let tc = crate::systems::twin::TwinConfig { seed: seed + 1000 * k as u64, ..twin.clone() };
                let xk = jittered_rows(h, tc.samples, jitter, tc.seed);
                let (t, f) = crate::systems::twin::Twin::<F>::fit_system_on(sys.as_mut(), &xk, &tc)?;
                twins.push(t);
                fits.push((value_range(&xk), f));
            }
            Ok((twins, fits, t0.physical_queries))
        }
        TwinInputs::Mixed { jitter } => {
            let (ranges, mut t0) = initial_input_ranges(systems, x, opts)?;
            let clean = initial_block_inputs(systems, x.clone(), opts, false, &mut t0)?;
            for (k, ((sys, h), &range)) in systems.iter_mut().zip(&clean).zip(&ranges).enumerate() {
                let tc = crate::systems::twin::TwinConfig { seed: seed + 1000 * k as u64, ..twin.clone() };
                let n_box = tc.samples / 2;
                let data = jittered_rows(h, tc.samples - n_box, jitter, tc.seed);
                let mut rng = rng_for(tc.seed, "twin inputs");
                let xk = Matrix::from_fn(tc.samples, h.cols(), |r, c| {
                    if r < n_box {
                        F::c(rng.random_range(range.0..range.1))
                    } else {
                        data.get(r - n_box, c)
                    }
                });
                let (t, f) = crate::systems::twin::Twin::<F>::fit_system_on(sys.as_mut(), &xk, &tc)?;
                twins.push(t);
                fits.push((value_range(&xk), f));
            }
            Ok((twins, fits, t0.physical_queries))
        }
    }
}

fn value_range<F: Real>(m: &Matrix<F>) -> (f64, f64) {
    m.data().iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        let v = v.to_f64().unwrap_or(0.0);
        (a.min(v), b.max(v))
    })
}

/// `samples` rows drawn from the rows of `h`: row `i` is row `order[i mod n]` of `h` (`order` a
/// permutation seeded by `seed`, stream `"twin data inputs"`) plus Gaussian noise of `jitter`
/// times each column's standard deviation over `h`.
pub fn jittered_rows<F: Real>(h: &Matrix<F>, samples: usize, jitter: f64, seed: u64) -> Matrix<F> {
    let (n, d) = (h.rows(), h.cols());
    if n == 0 {
        return Matrix::zeros(0, d);
    }
    let mut mean = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for r in 0..n {
        for (c, v) in h.row(r).iter().enumerate() {
            let v = v.to_f64().unwrap_or(0.0);
            mean[c] += v / n as f64;
            sq[c] += v * v / n as f64;
        }
    }
    let sd: Vec<f64> = mean.iter().zip(&sq).map(|(m, s)| (s - m * m).max(0.0).sqrt()).collect();
    let mut rng = rng_for(seed, "twin data inputs");
    let order = ff_data::permutation(n, &mut rng);
    let mut out = Matrix::zeros(samples, d);
    for i in 0..samples {
        let src = h.row(order[i % n]);
        for (c, o) in out.row_mut(i).iter_mut().enumerate() {
            let z: f64 = StandardNormal.sample(&mut rng);
            *o = src[c] + F::c(jitter * sd[c] * z);
        }
    }
    out
}

/// Every block's input when `h` goes through `systems` with the initial (untrained) affine
/// maps that [`train_end_to_end`] starts from (same seed, stream `"e2e init"`): element `k` is
/// block `k`'s input. The last block is queried only if `query_last` (its output is no block's
/// input); physical queries are counted in `t`.
fn initial_block_inputs<F: Real>(
    systems: &mut [Box<dyn PhysicalSystem<F>>],
    mut h: Matrix<F>,
    opts: &E2eOptions,
    query_last: bool,
    t: &mut Counters,
) -> Result<Vec<Matrix<F>>> {
    let mut rng = rng_for(opts.seed, "e2e init");
    let mut inputs = Vec::new();
    let last = systems.len().saturating_sub(1);
    for (k, s) in systems.iter_mut().enumerate() {
        inputs.push(h.clone());
        if k == last && !query_last {
            break;
        }
        let p = query(s.as_mut(), &h, t)?;
        let u = block_input(&p, &h, opts.skip)?;
        let a = Mlp::<F>::new(&[u.cols(), opts.hidden], Activation::Identity, Activation::Identity, &mut rng)?;
        h = a.forward(u.view())?;
    }
    Ok(inputs)
}

/// The range `(min, max)` of every block's input when the data go through `systems` with the
/// initial (untrained) affine maps that [`train_end_to_end`] starts from (same seed), widened by
/// 25 % on each side: where [`TwinInputs::Box`] samples twins. Uses the first 256 rows of `x`.
///
/// # Errors
/// System failures.
pub fn initial_input_ranges<F: Real>(
    systems: &mut [Box<dyn PhysicalSystem<F>>],
    x: &Matrix<F>,
    opts: &E2eOptions,
) -> Result<(Vec<(f64, f64)>, Counters)> {
    let mut t = Counters::default();
    let inputs = initial_block_inputs(systems, x.slice_rows(0, x.rows().min(256)), opts, true, &mut t)?;
    let ranges = inputs
        .iter()
        .map(|h| {
            let (lo, hi) = value_range(h);
            let pad = 0.25 * (hi - lo).max(1e-6);
            (lo - pad, hi + pad)
        })
        .collect();
    Ok((ranges, t))
}

/// The trainable part of the end-to-end network (every block's affine map and the read-out)
/// with its Adam state: [`train_end_to_end`] one mini-batch at a time, for callers that
/// interleave training with their own schedule of evaluations (the drift experiment).
pub struct E2eTrainer<F: Real> {
    net: Net<F>,
    opt_cfg: OptimizerConfig,
    opt: Optimizer<F>,
    params: Vec<F>,
    grad: Vec<F>,
    caches: Vec<MlpCache<F>>,
    rcache: MlpCache<F>,
    g_logits: Matrix<F>,
    skip: bool,
    hidden: usize,
    num_classes: usize,
}

impl<F: Real> E2eTrainer<F> {
    /// Initialises the affine maps of `blocks` (inputs of `input_len` values) and a read-out to
    /// `num_classes` logits from `opts.seed` (stream `"e2e init"`, the stream
    /// [`initial_input_ranges`] reproduces).
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(blocks: &[BlockModel<F>], input_len: usize, num_classes: usize, opts: &E2eOptions) -> Result<Self> {
        let mut rng = rng_for(opts.seed, "e2e init");
        let mut d = input_len;
        let mut affine = Vec::new();
        for b in blocks {
            let d_u = b.output_len() + if opts.skip { d } else { 0 };
            affine.push(Mlp::new(&[d_u, opts.hidden], Activation::Identity, Activation::Identity, &mut rng)?);
            d = opts.hidden;
        }
        let readout = Mlp::new(&[d, num_classes], Activation::Identity, Activation::Identity, &mut rng)?;
        let net = Net { affine, readout };
        let opt_cfg = opts.optimizer();
        let params = net.gather();
        let opt = Optimizer::<F>::new(opt_cfg, params.len());
        let grad = vec![F::zero(); net.num_params()];
        Ok(E2eTrainer {
            caches: (0..blocks.len()).map(|_| MlpCache::default()).collect(),
            net,
            opt_cfg,
            opt,
            params,
            grad,
            rcache: MlpCache::default(),
            g_logits: Matrix::zeros(0, 0),
            skip: opts.skip,
            hidden: opts.hidden,
            num_classes,
        })
    }

    /// Multiplies the learning rate by `scale` from the next step on (a schedule's factor).
    ///
    /// # Errors
    /// A factor that is not finite and positive.
    pub fn set_lr_scale(&mut self, scale: f64) -> Result<()> {
        Ok(self.opt.set_lr_scale(scale)?)
    }

    /// One Adam step on the mini-batch `(xb, yb)`: the training forward pass of every block
    /// (physical queries counted in `t`), softmax cross-entropy, the backward pass through
    /// every block's gradient model. Returns the mini-batch loss.
    ///
    /// # Errors
    /// System failures, shape errors, and a non-finite loss (nothing is updated then).
    pub fn train_batch(
        &mut self,
        blocks: &mut [BlockModel<F>],
        xb: &Matrix<F>,
        yb: &[usize],
        t: &mut Counters,
    ) -> Result<f64> {
        let net = &mut self.net;
        let mut hs = vec![xb.clone()];
        let mut p_lens = Vec::new();
        for (k, b) in blocks.iter_mut().enumerate() {
            let p = b.train_forward(&hs[k], t)?;
            p_lens.push(p.cols());
            let u = block_input(&p, &hs[k], self.skip)?;
            net.affine[k].forward_cached(u.view(), &mut self.caches[k])?;
            t.digital_flops += net.affine[k].flops_forward(u.rows());
            hs.push(self.caches[k].output().clone());
        }
        let last = hs.last().expect("input");
        net.readout.forward_cached(last.view(), &mut self.rcache)?;
        let loss = softmax_cross_entropy(self.rcache.output().view(), yb, &mut self.g_logits);
        let loss = loss.to_f64().unwrap_or(f64::NAN);
        anyhow::ensure!(loss.is_finite(), "diverged (loss {loss}); lower --lr");
        let rows = yb.len();
        t.digital_flops +=
            net.readout.flops_forward(rows) + net.readout.flops_backward(rows) + 5 * (rows * self.num_classes) as u64;
        let split = self.grad.len() - net.readout.num_params();
        let (ga, gr) = self.grad.split_at_mut(split);
        let mut g_h = Matrix::zeros(rows, self.hidden);
        net.readout.backward(&self.rcache, self.g_logits.view(), gr, Some(&mut g_h.view_mut()));
        let mut offsets = Vec::new();
        let mut off = 0;
        for a in &net.affine {
            offsets.push(off);
            off += a.num_params();
        }
        for k in (0..blocks.len()).rev() {
            let a = &net.affine[k];
            let gp = &mut ga[offsets[k]..offsets[k] + a.num_params()];
            let d_u = a.input_len();
            let mut g_u = Matrix::zeros(rows, d_u);
            a.backward(&self.caches[k], g_h.view(), gp, Some(&mut g_u.view_mut()));
            t.digital_flops += a.flops_backward(rows);
            if k == 0 {
                break; // no gradient is needed with respect to the data
            }
            let pl = p_lens[k];
            let g_p = Matrix::from_fn(rows, pl, |r, c| g_u.get(r, c));
            let mut g_prev = blocks[k].backward(&hs[k], &g_p, t)?;
            if self.skip {
                for r in 0..rows {
                    for (v, &s) in g_prev.row_mut(r).iter_mut().zip(&g_u.row(r)[pl..]) {
                        *v += s;
                    }
                }
            }
            g_h = g_prev;
        }
        self.opt.step(&mut self.params, &self.grad);
        t.digital_flops += self.opt_cfg.flops_per_step(self.params.len());
        net.scatter(&self.params);
        Ok(loss)
    }

    /// Every block's input on the *training* forward pass of `x` (the twin's for in-silico, the
    /// physics' for PAT): the inputs the blocks see in training. Queries are counted in `t`.
    ///
    /// # Errors
    /// System failures and shape errors.
    pub fn training_block_inputs(
        &self,
        blocks: &mut [BlockModel<F>],
        x: &Matrix<F>,
        t: &mut Counters,
    ) -> Result<Vec<Matrix<F>>> {
        let mut h = x.clone();
        let mut inputs = Vec::new();
        for (b, a) in blocks.iter_mut().zip(&self.net.affine) {
            let p = b.train_forward(&h, t)?;
            let u = block_input(&p, &h, self.skip)?;
            let next = a.forward(u.view())?;
            inputs.push(std::mem::replace(&mut h, next));
        }
        Ok(inputs)
    }

    /// Accuracy of the deployed network (every block's deployed forward pass; physical queries
    /// counted in `t`) on `(x, y)`; 0 for an empty set.
    ///
    /// # Errors
    /// System failures and shape errors.
    pub fn accuracy(&self, blocks: &mut [BlockModel<F>], x: &Matrix<F>, y: &[usize], t: &mut Counters) -> Result<f64> {
        accuracy(blocks, &self.net, x, y, self.skip, t)
    }

    /// [`E2eTrainer::accuracy`], and every block's input and physical output on `x` (one pair
    /// per block, for a non-empty `y`), from the same queries.
    ///
    /// # Errors
    /// System failures and shape errors.
    #[allow(clippy::type_complexity)]
    pub fn accuracy_and_block_io(
        &self,
        blocks: &mut [BlockModel<F>],
        x: &Matrix<F>,
        y: &[usize],
        t: &mut Counters,
    ) -> Result<(f64, Vec<(Matrix<F>, Matrix<F>)>)> {
        deployed_pass(blocks, &self.net, x, y, self.skip, t, true)
    }
}

/// An end-to-end method as a [`Learner`]: the blocks (their training forward and backward
/// models) and the affine maps and read-out of an [`E2eTrainer`], on `data`.
pub struct E2eLearner<'a, F: Real> {
    /// Affine maps, read-out and optimiser.
    pub trainer: E2eTrainer<F>,
    /// The blocks.
    pub blocks: Vec<BlockModel<F>>,
    /// Every query and FLOP so far (training and evaluation).
    pub work: Counters,
    data: &'a E2eData<'a, F>,
    lr_schedule: LrSchedule,
}

impl<'a, F: Real> E2eLearner<'a, F> {
    /// A fresh network of `blocks` (initialised as [`E2eTrainer::new`]) to train on `data`.
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(blocks: Vec<BlockModel<F>>, data: &'a E2eData<'a, F>, opts: &E2eOptions) -> Result<Self> {
        let trainer = E2eTrainer::new(&blocks, data.train_x.cols(), data.num_classes, opts)?;
        Ok(E2eLearner { trainer, blocks, work: Counters::default(), data, lr_schedule: opts.lr_schedule })
    }

    /// The data it trains on.
    pub fn data(&self) -> &'a E2eData<'a, F> {
        self.data
    }
}

impl<F: Real> Learner for E2eLearner<'_, F> {
    type State = Vec<F>;

    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> Result<()> {
        match planned {
            Some(total) => self.trainer.set_lr_scale(self.lr_schedule.factor(epoch, total)),
            None => Ok(()),
        }
    }

    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>> {
        let xb = self.data.train_x.select_rows(batch);
        let yb: Vec<usize> = batch.iter().map(|&i| self.data.train_y[i]).collect();
        Ok(vec![self.trainer.train_batch(&mut self.blocks, &xb, &yb, &mut self.work)?])
    }

    fn accuracy(&mut self, split: Split) -> Result<f64> {
        let (x, y) = match split {
            Split::Train => (self.data.train_x, self.data.train_y),
            Split::Test => (self.data.test_x, self.data.test_y),
            Split::Validation => anyhow::bail!("the end-to-end methods have no validation split"),
        };
        self.trainer.accuracy(&mut self.blocks, x, y, &mut self.work)
    }

    fn counters(&self) -> Counters {
        self.work
    }

    fn state(&self) -> Vec<F> {
        self.trainer.params.clone()
    }

    fn restore(&mut self, state: Vec<F>) -> Result<()> {
        anyhow::ensure!(state.len() == self.trainer.params.len(), "a state of another network");
        self.trainer.net.scatter(&state);
        self.trainer.params = state;
        Ok(())
    }
}

/// Trains the block network end to end on `blocks` and evaluates it deployed (test accuracy
/// after every epoch, train accuracy at the end). `method` names the run; its record holds no
/// twin work (the caller that fitted the twins adds it).
///
/// # Errors
/// System failures, shape errors, a diverging run.
pub fn train_end_to_end<F: Real>(
    method: &str,
    blocks: Vec<BlockModel<F>>,
    data: &E2eData<'_, F>,
    opts: &E2eOptions,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<RunRecord> {
    let mut learner = E2eLearner::new(blocks, data, opts)?;
    let mut progress = OnEval(|p: &crate::driver::EvalPoint| on_epoch(p.epoch, p.test_accuracy));
    let d = drive(&mut learner, &opts.plan(data.train_x.rows(), method), None, None, &mut [&mut progress])?;
    Ok(RunRecord::from_driven(method, d))
}

/// [`train_end_to_end`] for methods that learn through twins, also measuring every twin
/// against its system on the inputs its block sees in training: the training forward pass of
/// (up to) the first 512 training samples with the initial affine maps and with the trained
/// ones ([`SeenTwinFit`]). The check's physical queries are counted as evaluation queries.
///
/// # Errors
/// As [`train_end_to_end`].
pub fn train_end_to_end_seen<F: Real>(
    method: &str,
    blocks: Vec<BlockModel<F>>,
    data: &E2eData<'_, F>,
    opts: &E2eOptions,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<(RunRecord, Vec<SeenTwinFit>)> {
    let mut learner = E2eLearner::new(blocks, data, opts)?;
    let sample = data.train_x.slice_rows(0, data.train_x.rows().min(512));
    let mut check = Counters::default();
    let mut seen = |l: &mut E2eLearner<'_, F>| -> Result<Vec<(f64, f64)>> {
        let inputs = l.trainer.training_block_inputs(&mut l.blocks, &sample, &mut check)?;
        let mut out = Vec::new();
        for (b, h) in l.blocks.iter_mut().zip(&inputs) {
            out.push(b.twin_check(h, &mut check)?.unwrap_or((f64::NAN, f64::NAN)));
        }
        Ok(out)
    };
    let start = seen(&mut learner)?;
    let mut progress = OnEval(|p: &crate::driver::EvalPoint| on_epoch(p.epoch, p.test_accuracy));
    let d = drive(&mut learner, &opts.plan(data.train_x.rows(), method), None, None, &mut [&mut progress])?;
    let end = seen(&mut learner)?;
    let mut run = RunRecord::from_driven(method, d);
    run.evaluation = add_counters(run.evaluation, check);
    let fits = start
        .into_iter()
        .zip(end)
        .enumerate()
        .map(|(k, (s, e))| SeenTwinFit {
            block: k + 1,
            start_rmse: s.0,
            start_rmse_of_mean: s.1,
            end_rmse: e.0,
            end_rmse_of_mean: e.1,
        })
        .collect();
    Ok((run, fits))
}

/// A plain digital MLP trained by backprop as a [`Learner`]: `d -> hidden (x blocks) -> K`,
/// ReLU hidden layers, softmax cross-entropy, Adam.
pub struct MlpLearner<'a, F: Real> {
    net: AdamMlp<F>,
    g_logits: Matrix<F>,
    work: Counters,
    data: &'a E2eData<'a, F>,
    lr_schedule: LrSchedule,
    epoch: usize,
}

impl<'a, F: Real> MlpLearner<'a, F> {
    /// A fresh MLP of `blocks` hidden layers of `opts.hidden` units (stream
    /// `"digital mlp init"`).
    ///
    /// # Errors
    /// Invalid sizes.
    pub fn new(data: &'a E2eData<'a, F>, blocks: usize, opts: &E2eOptions) -> Result<Self> {
        let mut sizes = vec![data.train_x.cols()];
        sizes.extend(std::iter::repeat_n(opts.hidden, blocks.max(1)));
        sizes.push(data.num_classes);
        let mlp =
            Mlp::<F>::new(&sizes, Activation::Relu, Activation::Identity, &mut rng_for(opts.seed, "digital mlp init"))?;
        Ok(MlpLearner {
            net: AdamMlp::new(mlp, opts.optimizer()),
            g_logits: Matrix::zeros(0, 0),
            work: Counters::default(),
            data,
            lr_schedule: opts.lr_schedule,
            epoch: 0,
        })
    }
}

impl<F: Real> Learner for MlpLearner<'_, F> {
    type State = Vec<F>;

    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> Result<()> {
        self.epoch = epoch;
        if let Some(total) = planned {
            self.net.set_lr_scale(self.lr_schedule.factor(epoch, total))?;
        }
        Ok(())
    }

    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>> {
        let xb = self.data.train_x.select_rows(batch);
        let yb: Vec<usize> = batch.iter().map(|&i| self.data.train_y[i]).collect();
        let logits = self.net.forward(xb.view())?;
        let loss = softmax_cross_entropy(logits.view(), &yb, &mut self.g_logits);
        anyhow::ensure!(loss.is_finite(), "digital MLP diverged in epoch {}; lower --lr", self.epoch);
        self.work.digital_flops += self.net.step(self.g_logits.view());
        Ok(vec![loss.to_f64().unwrap_or(f64::NAN)])
    }

    fn accuracy(&mut self, split: Split) -> Result<f64> {
        let (x, y) = match split {
            Split::Train => (self.data.train_x, self.data.train_y),
            Split::Test => (self.data.test_x, self.data.test_y),
            Split::Validation => anyhow::bail!("the digital MLP has no validation split"),
        };
        let mlp = &self.net.mlp;
        let logits = mlp.forward(x.view())?;
        self.work.digital_flops += mlp.flops_forward(x.rows());
        let ok = (0..y.len()).filter(|&r| ff_core::network::argmax(logits.row(r)) == y[r]).count();
        Ok(ok as f64 / y.len().max(1) as f64)
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

/// Trains the digital MLP of [`MlpLearner`] on `data` (test accuracy after every epoch,
/// train accuracy at the end).
///
/// # Errors
/// Shape errors, a diverging run.
pub fn train_digital_mlp<F: Real>(
    data: &E2eData<'_, F>,
    blocks: usize,
    opts: &E2eOptions,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<RunRecord> {
    const METHOD: &str = "digital MLP (BP)";
    let mut learner = MlpLearner::new(data, blocks, opts)?;
    let mut progress = OnEval(|p: &crate::driver::EvalPoint| on_epoch(p.epoch, p.test_accuracy));
    let d = drive(&mut learner, &opts.plan(data.train_x.rows(), METHOD), None, None, &mut [&mut progress])?;
    Ok(RunRecord::from_driven(METHOD, d))
}

#[cfg(test)]
mod tests;
