//! `phyff drift`: the physical system changes while training continues, so a digital twin fitted
//! before the change goes stale (docs/science.md, "Baselines").
//!
//! Two methods train the same network shape on the same data split and seed, each on its own
//! copy of the device, which drifts on the same schedule:
//! - **FF (PhyLL)**: the forward-forward network of `phyff train`; every block learns from the
//!   device's current outputs, so it keeps adapting;
//! - **PAT**: physics-aware training with digital twins fitted *before* training, on the
//!   undrifted device; the forward pass runs on the drifting device, the backward pass through
//!   the (increasingly stale) twins;
//! - optionally (`--refit-twins`) **PAT (refitted twin)**: the same, but the twins are fitted
//!   again on the device right after the sudden change, with the refit's queries taken from its
//!   training budget: what keeping a twin current costs;
//! - optionally (`--oracle-twins`) **PAT (oracle twin)**: the same refit, but free: the drift
//!   clock is paused while it samples the device, so it costs no training queries (they are
//!   counted in `twin_queries`). The best a current twin can do for PAT: if this PAT does not
//!   recover either, a stale twin is not what holds PAT back.
//!
//! How informative a twin is where it matters is recorded at every evaluation: its RMSE on the
//! test inputs the block sees then, against the device as it is then, relative to the spread
//! of the device's outputs (see [`TwinErrorPoint`]).
//!
//! # The drift schedule and its clock
//! Every block of a method queries one device (`systems::build_drifting_blocks`): each block's
//! system sits behind an [`ff_physics::Drift`] wrapper with the same [`DriftConfig`] on one
//! shared [`DriftClock`], so the device ages with the total number of *training* queries of the
//! method (batch rows sent through any block) and moves the same way in every block's view.
//! Evaluations run with the clock paused: they see the device as the next training query will
//! and neither count nor move anything. The schedule, in training queries, is the same for
//! both methods:
//! - slow drift: a perturbation of strength `slow_strength` every `period` training queries;
//! - the sudden change: one perturbation of strength `sudden_strength` when the clock reaches
//!   `S = round(sudden_at x B)`, `B` the training budget.
//!
//! The unit of the strengths is the system's (`Perturbable` implementations): for optics, the
//! dimensionless fraction of the medium's transmission amplitude replaced by a fresh draw; for
//! the cavities, a displacement in wavelengths (and a relative resonance jitter, microwave).
//!
//! # Budget and evaluation
//! Both methods get the same budget of training queries, `B = 2 x blocks x n_train x epochs`:
//! what FF spends in `epochs` epochs (a positive and a negative pass through every block per
//! sample). Each trains until its clock reaches `B` (checked between mini-batches, so the last
//! batch may overshoot by less than one batch); PAT, which queries once per block and sample,
//! gets about twice as many epochs. Test accuracy is measured before training and at the first
//! mini-batch boundary at or after each of `evals` evenly spaced query counts and after `S`, on
//! the device as it is then. Recovery is read off these points (see [`summarize`]), so its
//! resolution is the evaluation spacing.

use super::compare::blank;
use crate::baselines::e2e::{fit_block_twins, BlockModel, E2eData, E2eLearner, E2eOptions, TwinInputs};
use crate::config::{ExperimentConfig, ToChecked};
use crate::driver::{drive, EvalPoint, EvalSchedule, FitProgress, Learner, Observer, OnEval, Plan, Split, Stop};
use crate::io::write_atomic;
use crate::output::plot;
use crate::output::report::thousands;
use crate::record::RunRecord;
use crate::run::{prepare, Prepared};
use crate::systems::twin::{Twin, TwinConfig, TwinFit};
use crate::systems::{build_blocks, build_drifting_blocks};
use crate::trainer::{FfLearner, Schedule};
use anyhow::{Context, Result};
use ff_core::rng::MiniBatches;
use ff_core::{Counters, Differentiable, Matrix, Network, PhysicalSystem, Real};
use ff_physics::fft::FftReal;
use ff_physics::{DriftClock, DriftConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Accuracy within this much (absolute, 2 points) of the pre-change accuracy counts as recovered.
pub const RECOVERY_TOLERANCE: f64 = 0.02;

/// Name of FF's record (the name of `trainer::fit`'s).
pub const FF_METHOD: &str = crate::trainer::FF_METHOD;
/// Name of PAT's record.
pub const PAT_METHOD: &str = "PAT (pre-drift twin)";
/// Name of the record of PAT whose twins are refitted after the sudden change.
pub const PAT_REFIT_METHOD: &str = "PAT (refitted twin)";
/// Name of the record of PAT whose twins are refitted after the sudden change at no cost.
pub const PAT_ORACLE_METHOD: &str = "PAT (oracle twin)";

/// Options of [`drift_experiment`] (the network, data, epochs and seed come from the
/// [`ExperimentConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DriftOptions {
    /// Training queries between two slow-drift steps; 0 disables slow drift.
    pub period: u64,
    /// Strength of each slow-drift step (the system's unit, see the module docs).
    pub slow_strength: f64,
    /// When the sudden change happens, as a fraction of the training budget, in `(0, 1)`.
    pub sudden_at: f64,
    /// Strength of the sudden change (the system's unit; 0 disables it).
    pub sudden_strength: f64,
    /// Test evaluations, evenly spaced over the budget (besides the one before training and
    /// the one at the sudden change). At least 1.
    pub evals: usize,
    /// How PAT's twins are fitted (the seed is replaced by the run's, per block).
    pub twin: TwinConfig,
    /// Where the twins' inputs come from (see [`TwinInputs`]).
    pub twin_inputs: TwinInputs,
    /// Also run PAT whose twins are refitted, by the same procedure, on the device right
    /// after the sudden change (the first mini-batch boundary at or after `S`); the refit's
    /// queries run on the drift clock, so they come out of that method's training budget.
    pub refit_twins: bool,
    /// Also run PAT whose twins are refitted as with `refit_twins`, at the same moment, but
    /// with the drift clock paused: the refit costs no training queries and does not age the
    /// device (its queries are counted in the method's `twin_queries`).
    pub oracle_twins: bool,
    /// PAT's mini-batch size (0 = the experiment's batch size); see
    /// [`super::compare::CompareOptions::bp_batch_size`].
    pub bp_batch_size: usize,
    /// Where `drift.json`, `drift.svg` and `drift.png` go (nothing is written when `None`).
    pub out: Option<PathBuf>,
}

impl Default for DriftOptions {
    /// Slow steps of strength 0.1 every 5 000 training queries, a sudden change of strength
    /// 0.7 at half the budget, 25 evaluations, PAT mini-batches of 32 (as `phyff compare`).
    ///
    /// The twins are fitted to 8 000 sampled pairs for 40 epochs, more than `phyff compare`'s
    /// default (2 000 pairs, 20 epochs): with that, PAT on the default optics/digits setup
    /// reached only 0.66-0.78 test accuracy before the change (seed 0, measured), with these
    /// settings 0.83-0.91 (seeds 0-2).
    fn default() -> Self {
        DriftOptions {
            period: 5_000,
            slow_strength: 0.1,
            sudden_at: 0.5,
            sudden_strength: 0.7,
            evals: 25,
            twin: TwinConfig { samples: 8_000, epochs: 40, ..TwinConfig::default() },
            twin_inputs: TwinInputs::Box,
            refit_twins: false,
            oracle_twins: false,
            bp_batch_size: 32,
            out: None,
        }
    }
}

impl DriftOptions {
    /// Checks the values.
    ///
    /// # Errors
    /// The first bad value, named with its flag.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            self.sudden_at > 0.0 && self.sudden_at < 1.0,
            "invalid --sudden-at: a fraction of the training budget strictly between 0 and 1, got {}",
            self.sudden_at
        );
        for (flag, v) in [("--drift-strength", self.slow_strength), ("--sudden-strength", self.sudden_strength)] {
            anyhow::ensure!(v.is_finite() && v >= 0.0, "invalid {flag}: must be >= 0 and finite, got {v}");
        }
        anyhow::ensure!(self.evals >= 1, "invalid --evals: must be at least 1, got 0");
        self.twin_inputs.validate()?;
        self.twin.validate()
    }

    /// The drift configuration for a budget of `budget` training queries, with seed `seed`.
    pub fn drift_config(&self, budget: u64, seed: u64) -> DriftConfig {
        DriftConfig {
            period: self.period,
            slow_strength: self.slow_strength,
            sudden_at: Some(self.sudden_at_queries(budget)),
            sudden_strength: self.sudden_strength,
            seed,
        }
    }

    /// The training query count `S` of the sudden change for a budget of `budget` queries.
    pub fn sudden_at_queries(&self, budget: u64) -> u64 {
        (self.sudden_at * budget as f64).round() as u64
    }
}

/// One evaluation: test accuracy on the device as it was after `queries` training queries.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// Training queries spent so far (the drift clock).
    pub queries: u64,
    /// Test accuracy, in `[0, 1]`.
    pub test_accuracy: f64,
}

/// What the points say about the sudden change (see [`summarize`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// Accuracy of the last evaluation before the change (queries `< S`).
    pub accuracy_before_change: f64,
    /// Lowest accuracy of the evaluations at or after the change (queries `>= S`).
    pub min_accuracy_after_change: f64,
    /// Accuracy of the last evaluation.
    pub final_accuracy: f64,
    /// Training queries after the change until the first evaluation (at or after the change)
    /// within [`RECOVERY_TOLERANCE`] of `accuracy_before_change`; `None` if none is.
    pub recovery_queries: Option<u64>,
}

/// Reads the effect of a change at `sudden_at` training queries off `points` (in query order).
/// `None` when there is no point before the change or none at or after it.
pub fn summarize(points: &[DriftPoint], sudden_at: u64) -> Option<ChangeSummary> {
    let before = points.iter().rev().find(|p| p.queries < sudden_at)?;
    let after: Vec<&DriftPoint> = points.iter().filter(|p| p.queries >= sudden_at).collect();
    if after.is_empty() {
        return None;
    }
    let min = after.iter().map(|p| p.test_accuracy).fold(f64::INFINITY, f64::min);
    let target = before.test_accuracy - RECOVERY_TOLERANCE;
    // A tiny allowance for rounding, so that "exactly 2 points below" counts as within 2 points.
    let recovered = after.iter().find(|p| p.test_accuracy >= target - 1e-12);
    Some(ChangeSummary {
        accuracy_before_change: before.test_accuracy,
        min_accuracy_after_change: min,
        final_accuracy: points.last().expect("non-empty").test_accuracy,
        recovery_queries: recovered.map(|p| p.queries - sudden_at),
    })
}

/// One method's run under drift: its [`RunRecord`] and what only a drift run has.
///
/// In `drift.json` a method is one object with the fields `method`, `points`, the fields of
/// [`ChangeSummary`], `train_queries` (the record's training queries: the drift clock at the
/// end), `eval_queries` (its evaluation queries, which the clock does not count),
/// `twin_queries` (its twin sampling queries: the pre-drift fit and an oracle's free refit; a
/// paid refit's queries are training queries), `wall_seconds` (twin fitting included) and,
/// for PAT, `twin_error`. Read back from a file, the record holds only these: no FLOPs,
/// epochs, history or evaluation points (the points are in [`DriftMethod::points`]), and its
/// test accuracy is the final one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "DriftMethodFile", from = "DriftMethodFile")]
pub struct DriftMethod {
    /// The run: name, accuracies, training, evaluation and twin work, epochs, history.
    pub run: RunRecord,
    /// Every evaluation on the drift clock, in query order (the first before training, at 0
    /// queries): the record's evaluation points.
    pub points: Vec<DriftPoint>,
    /// Accuracy just before the sudden change, its minimum after it, the final accuracy and
    /// the recovery time in training queries.
    pub change: ChangeSummary,
    /// PAT: at every evaluation, how far each block's twin is from the device as it is then,
    /// on the test inputs the block sees then. Empty for FF.
    pub twin_error: Vec<TwinErrorPoint>,
}

impl DriftMethod {
    /// The drift method of `run`, whose sudden change came at `sudden_at` training queries.
    ///
    /// # Errors
    /// A run with no evaluation before or none at or after the change.
    pub fn new(run: RunRecord, sudden_at: u64, twin_error: Vec<TwinErrorPoint>) -> Result<Self> {
        let points: Vec<DriftPoint> = run
            .points
            .iter()
            .map(|p| DriftPoint { queries: p.train_queries, test_accuracy: p.test_accuracy })
            .collect();
        let change = summarize(&points, sudden_at)
            .with_context(|| format!("{}: no evaluation before or after the sudden change", run.method))?;
        Ok(DriftMethod { run, points, change, twin_error })
    }
}

/// A [`DriftMethod`] as `drift.json` holds it.
#[derive(Serialize, Deserialize)]
struct DriftMethodFile {
    method: String,
    points: Vec<DriftPoint>,
    #[serde(flatten)]
    change: ChangeSummary,
    train_queries: u64,
    eval_queries: u64,
    twin_queries: u64,
    wall_seconds: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    twin_error: Vec<TwinErrorPoint>,
}

impl From<DriftMethod> for DriftMethodFile {
    fn from(m: DriftMethod) -> Self {
        let r = m.run;
        DriftMethodFile {
            method: r.method,
            points: m.points,
            change: m.change,
            train_queries: r.training.physical_queries,
            eval_queries: r.evaluation.physical_queries,
            twin_queries: r.twin.physical_queries,
            wall_seconds: r.wall_seconds,
            twin_error: m.twin_error,
        }
    }
}

impl From<DriftMethodFile> for DriftMethod {
    fn from(f: DriftMethodFile) -> Self {
        let queries = |physical_queries| Counters { physical_queries, digital_flops: 0 };
        let run = RunRecord {
            method: f.method,
            test_accuracy: f.change.final_accuracy,
            train_accuracy: None,
            wall_seconds: f.wall_seconds,
            training: queries(f.train_queries),
            evaluation: queries(f.eval_queries),
            twin: queries(f.twin_queries),
            epochs: 0,
            history: Vec::new(),
            points: Vec::new(),
            kept: None,
        };
        DriftMethod { run, points: f.points, change: f.change, twin_error: f.twin_error }
    }
}

/// The error of PAT's twins at one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinErrorPoint {
    /// Training queries spent so far (the drift clock).
    pub queries: u64,
    /// Per block: RMSE of the twin's prediction of the device's output on the block's test
    /// inputs, divided by the RMSE of the outputs' own mean (dimensionless; 1 = no better
    /// than a constant, 0 = exact).
    pub relative_rmse: Vec<f64>,
}

/// `RMSE(pred, actual) / RMSE(column means of actual, actual)` (0 when `actual` is constant
/// and matched exactly, infinite when it is constant and missed).
pub fn relative_rmse_of<F: Real>(pred: &Matrix<F>, actual: &Matrix<F>) -> f64 {
    let (n, d) = (actual.rows(), actual.cols());
    let mut mean = vec![0.0f64; d];
    for r in 0..n {
        for (c, v) in actual.row(r).iter().enumerate() {
            mean[c] += v.to_f64().unwrap_or(0.0) / n.max(1) as f64;
        }
    }
    let (mut err, mut spread) = (0.0f64, 0.0f64);
    for r in 0..n {
        for ((a, p), m) in actual.row(r).iter().zip(pred.row(r)).zip(&mean) {
            let a = a.to_f64().unwrap_or(0.0);
            err += (p.to_f64().unwrap_or(0.0) - a).powi(2);
            spread += (m - a).powi(2);
        }
    }
    if spread == 0.0 {
        return if err == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (err / spread).sqrt()
}

/// The outcome of [`drift_experiment`]: what `drift.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// System name (`optics`, `microwave`, `acoustic`).
    pub system: String,
    /// Dataset spec.
    pub data: String,
    /// Seed of the split, the networks, the twins and the drift.
    pub seed: u64,
    /// FF epochs that define the budget.
    pub epochs: usize,
    /// Training query budget `B` of each method.
    pub budget_queries: u64,
    /// The sudden change, as a fraction of the budget.
    pub sudden_at_fraction: f64,
    /// The sudden change, in training queries (`S`).
    pub sudden_at_queries: u64,
    /// Strength of the sudden change.
    pub sudden_strength: f64,
    /// Training queries between slow-drift steps (0: no slow drift).
    pub drift_period: u64,
    /// Strength of each slow-drift step.
    pub drift_strength: f64,
    /// Recovery tolerance, absolute accuracy (0.02 = 2 points).
    pub recovery_tolerance: f64,
    /// FF, then PAT, then (with `--refit-twins`) PAT with twins refitted after the change, then
    /// (with `--oracle-twins`) PAT with the same refit at no cost.
    pub methods: Vec<DriftMethod>,
    /// Where PAT's twin inputs came from (`box`, `data`; empty in files written before it
    /// was recorded).
    #[serde(default)]
    pub twin_inputs: String,
    /// How well each of PAT's twins fitted the undrifted device, block by block.
    #[serde(default)]
    pub twins: Vec<TwinSummary>,
    /// With `--refit-twins`: the fits of the twins refitted on the changed device (the device
    /// keeps drifting while the refit samples it, because its queries run on the clock).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refit_twins: Vec<TwinSummary>,
    /// With `--oracle-twins`: the fits of the oracle's twins, refitted on the changed device
    /// with the clock paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oracle_twins: Vec<TwinSummary>,
}

/// The fit of one block's twin on the undrifted device (output units of the block's system).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinSummary {
    /// Block, from 1.
    pub block: usize,
    /// RMSE on the fitting pairs.
    pub train_rmse: f64,
    /// RMSE on the held-out pairs.
    pub val_rmse: f64,
    /// RMSE of the constant (training-mean) predictor on the held-out pairs.
    pub val_rmse_of_mean: f64,
}

/// When to evaluate: the sorted query counts `i B / evals` (`i = 1..=evals`) and `S`.
fn eval_marks(budget: u64, evals: usize, sudden_at: u64) -> Vec<u64> {
    let mut marks: Vec<u64> =
        (1..=evals as u64).map(|i| (u128::from(budget) * u128::from(i) / evals as u128) as u64).collect();
    marks.push(sudden_at);
    marks.sort_unstable();
    marks.dedup();
    marks
}

/// Checks the configuration and the options for a drift run: both valid, and a system with a
/// drift model ([`crate::systems::SystemKindSpec::has_drift_model`]: optics, microwave, acoustic).
///
/// # Errors
/// The first problem, naming the flag and the value.
pub fn check(cfg: &impl ToChecked, opts: &DriftOptions) -> Result<()> {
    check_checked(&*cfg.to_checked()?, opts)
}

/// [`check`] of a configuration already validated.
fn check_checked(cfg: &ExperimentConfig, opts: &DriftOptions) -> Result<()> {
    opts.validate()?;
    anyhow::ensure!(
        cfg.system.spec().has_drift_model(),
        "invalid --system for drift: {} has no drift model; use {}",
        cfg.system.name(),
        crate::systems::kinds::names_where(|s| s.has_drift_model())
    );
    cfg.require_plain_adam("phyff drift trains for a budget of physical queries")?;
    Ok(())
}

/// The training query budget: what FF spends in `cfg.epochs` epochs on `n_train` samples.
pub fn budget(cfg: &ExperimentConfig, n_train: usize) -> u64 {
    2 * cfg.blocks as u64 * n_train as u64 * cfg.epochs as u64
}

/// Runs FF and PAT under the same drift schedule. `progress(method, training queries,
/// test accuracy)` is told about every evaluation; `log` receives other lines (twin fits).
///
/// # Errors
/// Invalid options or configuration, a system that cannot drift, data errors, a diverging
/// method, output I/O.
pub fn drift_experiment<F: FftReal>(
    cfg: &impl ToChecked,
    opts: &DriftOptions,
    mut progress: impl FnMut(&str, u64, f64),
    mut log: impl FnMut(&str),
) -> Result<DriftReport> {
    let checked = cfg.to_checked()?;
    let cfg: &ExperimentConfig = &checked;
    check_checked(cfg, opts)?;
    let prep = prepare::<F>(cfg)?;
    let n_train = prep.data.train.len();
    anyhow::ensure!(n_train > 0 && !prep.data.test.is_empty(), "drift needs non-empty train and test sets");
    let b = budget(cfg, n_train);
    let drift = opts.drift_config(b, cfg.seed);
    let s = opts.sudden_at_queries(b);
    let marks = eval_marks(b, opts.evals, s);
    let ff = ff_under_drift(cfg, &prep, &drift, b, &marks, &mut progress)?;
    let mut pat = pat_under_drift(cfg, opts, &prep, &drift, b, &marks, None, &mut progress, &mut log)?;
    let twins = std::mem::take(&mut pat.twins);
    let mut runs = vec![ff, pat];
    let (mut refit_twins, mut oracle_twins) = (Vec::new(), Vec::new());
    for (on, on_clock) in [(opts.refit_twins, true), (opts.oracle_twins, false)] {
        if on {
            let refit = Some(Refit { at: s, on_clock });
            let mut run = pat_under_drift(cfg, opts, &prep, &drift, b, &marks, refit, &mut progress, &mut log)?;
            // The fits differ: the paid refit's queries age the device while it samples it.
            let fits = std::mem::take(&mut run.refit_twins);
            if on_clock {
                refit_twins = fits;
            } else {
                oracle_twins = fits;
            }
            runs.push(run);
        }
    }
    let methods =
        runs.into_iter().map(|run| DriftMethod::new(run.record, s, run.twin_error)).collect::<Result<Vec<_>>>()?;
    let report = DriftReport {
        system: cfg.system.name().into(),
        data: cfg.data.clone(),
        seed: cfg.seed,
        epochs: cfg.epochs,
        budget_queries: b,
        sudden_at_fraction: opts.sudden_at,
        sudden_at_queries: s,
        sudden_strength: opts.sudden_strength,
        drift_period: opts.period,
        drift_strength: opts.slow_strength,
        recovery_tolerance: RECOVERY_TOLERANCE,
        methods,
        twin_inputs: opts.twin_inputs.name().into(),
        twins,
        refit_twins,
        oracle_twins,
    };
    if let Some(dir) = &opts.out {
        write_atomic(&dir.join("drift.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
        let p = drift_plot(&report);
        write_atomic(&dir.join("drift.svg"), p.svg().as_bytes())?;
        write_atomic(&dir.join("drift.png"), &p.png())?;
    }
    Ok(report)
}

/// The plot: test accuracy against training queries for every method, a dashed line at the
/// sudden change.
pub fn drift_plot(report: &DriftReport) -> plot::XyPlot {
    plot::XyPlot {
        title: format!("{} on {}: test accuracy under drift", report.system, report.data),
        x_label: "training physical queries".into(),
        y_label: "test accuracy".into(),
        series: report
            .methods
            .iter()
            .map(|m| (m.run.method.clone(), m.points.iter().map(|p| (p.queries as f64, p.test_accuracy)).collect()))
            .collect(),
        markers: vec![(format!("sudden change ({})", report.sudden_strength), report.sudden_at_queries as f64)],
    }
}

/// What one method's run produced: its record (wall time from before its twins were fitted)
/// and the drift-only outputs.
struct Run {
    record: RunRecord,
    twins: Vec<TwinSummary>,
    refit_twins: Vec<TwinSummary>,
    twin_error: Vec<TwinErrorPoint>,
}

/// The driver's plan of a drift run: mini-batches until the training queries reach
/// `budget`, the test split before training and at every mark.
fn drift_plan(batches: MiniBatches, budget: u64, marks: &[u64], method: &str) -> Plan {
    Plan {
        stop: Stop::Queries(budget),
        eval: EvalSchedule::AtQueries(marks.to_vec()),
        batches,
        train_eval: false,
        select: false,
        name: Some(method.into()),
    }
}

/// FF on drifting blocks: the PhyLL schedule of `trainer::fit` (same shuffles and negative
/// streams per epoch) until the clock reaches `budget`, evaluating with the clock paused.
fn ff_under_drift<F: FftReal>(
    cfg: &ExperimentConfig,
    prep: &Prepared<F>,
    drift: &DriftConfig,
    budget: u64,
    marks: &[u64],
    progress: &mut impl FnMut(&str, u64, f64),
) -> Result<Run> {
    let start = Instant::now();
    let (train, test) = (&prep.data.train, &prep.data.test);
    let raw = train.dim();
    let clock = DriftClock::new();
    let specs = build_drifting_blocks::<F>(cfg, &prep.embedding, raw, drift, &clock)?;
    let mut net = Network::new(raw, prep.embedding, cfg.train_config(), specs, cfg.seed)?;
    let mut learner = FfLearner::new(&mut net, train, test, Schedule::Supervised, cfg.seed).pausing(clock);
    let plan = drift_plan(learner.batches(cfg.batch_size), budget, marks, FF_METHOD);
    let mut told = OnEval(|p: &EvalPoint| progress(FF_METHOD, p.train_queries, p.test_accuracy));
    let mut record = RunRecord::from_driven(FF_METHOD, drive(&mut learner, &plan, None, None, &mut [&mut told])?);
    record.wall_seconds = start.elapsed().as_secs_f64();
    Ok(Run { record, twins: Vec::new(), refit_twins: Vec::new(), twin_error: Vec::new() })
}

/// When PAT refits its twins, and whether the refit runs on the drift clock.
#[derive(Clone, Copy, Debug)]
struct Refit {
    /// The training query count `S` at or after which the twins are refitted.
    at: u64,
    /// Whether the refit's queries count as training queries and age the device (`false`: the
    /// oracle, whose refit is free and counted in `twin_queries`).
    on_clock: bool,
}

/// PAT on drifting blocks as a [`Learner`]: the end-to-end learner, its clock paused while
/// scoring, the twins' error against the device recorded at every scoring of the test split,
/// and the queries of a refit on the clock counted as training.
struct PatUnderDrift<'a, F: Real> {
    inner: E2eLearner<'a, F>,
    clock: DriftClock,
    twins: Vec<Twin<F>>,
    twin_error: Vec<TwinErrorPoint>,
    refit_queries: u64,
}

impl<F: FftReal> Learner for PatUnderDrift<'_, F> {
    type State = Vec<F>;

    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> Result<()> {
        self.inner.start_epoch(epoch, planned)
    }

    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>> {
        self.inner.train_batch(batch)
    }

    fn accuracy(&mut self, split: Split) -> Result<f64> {
        let _paused = self.clock.pause();
        if split != Split::Test {
            return self.inner.accuracy(split);
        }
        let data = self.inner.data();
        let E2eLearner { trainer, blocks, work, .. } = &mut self.inner;
        let (acc, io) = trainer.accuracy_and_block_io(blocks, data.test_x, data.test_y, work)?;
        let mut relative_rmse = Vec::new();
        for (twin, (h, p)) in self.twins.iter().zip(&io) {
            let mut twin = twin.clone();
            let q = twin.forward(h.view()).context("twin forward")?;
            relative_rmse.push(relative_rmse_of(&q, p));
        }
        self.twin_error.push(TwinErrorPoint { queries: self.clock.count(), relative_rmse });
        Ok(acc)
    }

    fn counters(&self) -> Counters {
        let w = self.inner.counters();
        Counters { physical_queries: w.physical_queries + self.refit_queries, digital_flops: w.digital_flops }
    }

    fn state(&self) -> Vec<F> {
        self.inner.state()
    }

    fn restore(&mut self, state: Vec<F>) -> Result<()> {
        self.inner.restore(state)
    }
}

/// One block's twin fit: its input range and the fit.
type BlockFit = ((f64, f64), TwinFit);

/// Refits PAT's twins once, at the first mini-batch boundary at or after `refit.at`, the same
/// way as before training, on the drifting device as it is then.
struct Refitter<'a, F: Real> {
    refit: Refit,
    method: &'a str,
    train_x: &'a Matrix<F>,
    eo: &'a E2eOptions,
    opts: &'a DriftOptions,
    seed: u64,
    /// The refit's fits (empty until it happened).
    fits: Vec<BlockFit>,
    /// Queries of a free (oracle) refit.
    free_queries: u64,
    log: &'a mut dyn FnMut(&[BlockFit], &str),
}

impl<F: FftReal> Observer<PatUnderDrift<'_, F>> for Refitter<'_, F> {
    fn after_batch(&mut self, l: &mut PatUnderDrift<'_, F>, _: &FitProgress) -> Result<()> {
        let r = self.refit;
        if !self.fits.is_empty() || l.clock.count() < r.at {
            return Ok(());
        }
        // The same fit on the device as it is now; its queries run on the clock, or for the
        // oracle are free (no training queries, no ageing of the device).
        let _paused = (!r.on_clock).then(|| l.clock.pause());
        let at = l.clock.count();
        let mut systems = Vec::new();
        for b in l.inner.blocks.drain(..) {
            match b {
                BlockModel::Pat { physical, .. } => systems.push(physical),
                _ => anyhow::bail!("{}: expected PAT blocks", self.method),
            }
        }
        let (new, fits, range_queries) =
            fit_block_twins(&mut systems, self.train_x, self.eo, &self.opts.twin, self.seed, self.opts.twin_inputs)?;
        if r.on_clock {
            l.refit_queries += l.clock.count() - at;
        } else {
            self.free_queries += fit_queries(range_queries, &fits);
        }
        let how = if r.on_clock { "refitted" } else { "refitted free (oracle)" };
        (self.log)(&fits, &format!("{how} from {} queries on", thousands(at)));
        l.inner.blocks = pat_blocks(systems, &new);
        l.twins = new;
        self.fits = fits;
        Ok(())
    }
}

/// Queries of one fit of every block's twin: the range sampling plus the fitting pairs.
fn fit_queries(range_queries: u64, fits: &[((f64, f64), TwinFit)]) -> u64 {
    range_queries + fits.iter().map(|(_, f)| f.physical_queries).sum::<u64>()
}

/// PAT: twins fitted on the undrifted device (as `phyff compare` fits them), then end-to-end
/// training with the forward pass on the drifting device until the clock reaches `budget`.
/// With `refit = Some(r)`, the twins are fitted again, the same way, on the drifting device
/// at the first mini-batch boundary at or after `r.at` (after the evaluation there), with the
/// clock running or, for the oracle, paused.
#[allow(clippy::too_many_arguments)]
fn pat_under_drift<F: FftReal>(
    cfg: &ExperimentConfig,
    opts: &DriftOptions,
    prep: &Prepared<F>,
    drift: &DriftConfig,
    budget: u64,
    marks: &[u64],
    refit: Option<Refit>,
    progress: &mut impl FnMut(&str, u64, f64),
    log: &mut impl FnMut(&str),
) -> Result<Run> {
    let method = match refit {
        None => PAT_METHOD,
        Some(Refit { on_clock: true, .. }) => PAT_REFIT_METHOD,
        Some(Refit { on_clock: false, .. }) => PAT_ORACLE_METHOD,
    };
    let start = Instant::now();
    let raw = prep.data.train.dim();
    let (train_x, test_x) = (blank(prep, &prep.data.train.x)?, blank(prep, &prep.data.test.x)?);
    let data = E2eData::new(&train_x, &test_x, &prep.data);
    let eo = E2eOptions::of(cfg, if opts.bp_batch_size == 0 { cfg.batch_size } else { opts.bp_batch_size });
    // The twins see the device before any drift: a separate, undrifted copy.
    let mut undrifted: Vec<Box<dyn PhysicalSystem<F>>> =
        build_blocks::<F>(cfg, &prep.embedding, raw, false)?.into_iter().map(|b| b.system).collect();
    let (twins, fits, range_queries) =
        fit_block_twins(&mut undrifted, &train_x, &eo, &opts.twin, cfg.seed, opts.twin_inputs)?;
    let mut log_fits = |fits: &[((f64, f64), TwinFit)], source: &str| {
        for (k, (_, f)) in fits.iter().enumerate() {
            log(&format!(
                "twin of block {} ({source}): validation RMSE {:.4} (mean predictor {:.4}), {} queries",
                k + 1,
                f.val_rmse,
                f.val_rmse_of_mean,
                thousands(f.physical_queries)
            ));
        }
    };
    log_fits(&fits, &format!("{} inputs", opts.twin_inputs.name()));
    let clock = DriftClock::new();
    let blocks = pat_blocks(
        build_drifting_blocks::<F>(cfg, &prep.embedding, raw, drift, &clock)?.into_iter().map(|b| b.system).collect(),
        &twins,
    );
    let inner = E2eLearner::new(blocks, &data, &eo)?;
    let mut learner = PatUnderDrift { inner, clock, twins, twin_error: Vec::new(), refit_queries: 0 };
    let plan = drift_plan(MiniBatches::new(train_x.rows(), eo.batch_size, cfg.seed), budget, marks, method);
    let mut told = OnEval(|p: &EvalPoint| progress(method, p.train_queries, p.test_accuracy));
    let mut refitter = Refitter {
        refit: refit.unwrap_or(Refit { at: u64::MAX, on_clock: true }),
        method,
        train_x: &train_x,
        eo: &eo,
        opts,
        seed: cfg.seed,
        fits: Vec::new(),
        free_queries: 0,
        log: &mut log_fits,
    };
    let d = drive(&mut learner, &plan, None, None, &mut [&mut told, &mut refitter])?;
    let mut record = RunRecord::from_driven(method, d);
    // The twins' sampling queries (a paid refit's are training queries, already booked) and
    // the FLOPs of every fit.
    let fit_flops = |fits: &[BlockFit]| fits.iter().map(|(_, f)| f.digital_flops).sum::<u64>();
    record.twin = Counters {
        physical_queries: fit_queries(range_queries, &fits) + refitter.free_queries,
        digital_flops: fit_flops(&fits) + fit_flops(&refitter.fits),
    };
    record.wall_seconds = start.elapsed().as_secs_f64();
    Ok(Run { record, twins: summaries(&fits), refit_twins: summaries(&refitter.fits), twin_error: learner.twin_error })
}

fn summaries(fits: &[((f64, f64), TwinFit)]) -> Vec<TwinSummary> {
    fits.iter()
        .enumerate()
        .map(|(k, (_, f))| TwinSummary {
            block: k + 1,
            train_rmse: f.train_rmse,
            val_rmse: f.val_rmse,
            val_rmse_of_mean: f.val_rmse_of_mean,
        })
        .collect()
}

/// PAT blocks: forward on `systems`, backward through `twins`.
fn pat_blocks<F: FftReal>(systems: Vec<Box<dyn PhysicalSystem<F>>>, twins: &[Twin<F>]) -> Vec<BlockModel<F>> {
    systems
        .into_iter()
        .zip(twins)
        .map(|(physical, t)| BlockModel::Pat {
            physical,
            twin: Box::new(t.clone()) as Box<dyn Differentiable<F>>,
            vjp_flops: t.flops_vjp(1),
        })
        .collect()
}

/// The table: per method, the accuracy before the change, its minimum after, the final
/// accuracy, the recovery time and the query counts.
pub fn drift_table(report: &DriftReport) -> String {
    let mut s = format!(
        "{:<36} {:>8} {:>10} {:>8} {:>18} {:>14} {:>13} {:>12}\n",
        "method", "before", "min after", "final", "recovery (queries)", "train queries", "eval queries", "twin queries"
    );
    for m in &report.methods {
        let c = &m.change;
        s.push_str(&format!(
            "{:<36} {:>8.4} {:>10.4} {:>8.4} {:>18} {:>14} {:>13} {:>12}\n",
            m.run.method,
            c.accuracy_before_change,
            c.min_accuracy_after_change,
            c.final_accuracy,
            c.recovery_queries.map_or_else(|| "never".to_string(), thousands),
            thousands(m.run.training.physical_queries),
            thousands(m.run.evaluation.physical_queries),
            thousands(m.run.twin.physical_queries)
        ));
    }
    s
}

#[cfg(test)]
mod tests;
