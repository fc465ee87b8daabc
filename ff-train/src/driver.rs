//! The one training loop of phyff, in the manner of argmin's `Executor`: every method (the
//! forward-forward network, supervised or unsupervised; the end-to-end baselines ideal backprop,
//! PAT and in-silico; the digital MLP) is a [`Learner`], and [`drive`] runs it.
//!
//! [`drive`] owns what the methods share: the epochs and their mini-batches (one
//! [`MiniBatches`] rule), the stopping rule ([`Stop`]: a number of epochs, or a budget of
//! training queries), the evaluation schedule ([`EvalSchedule`]: every k epochs, or at given
//! query counts), the books (training and evaluation work told apart, [`FitProgress`], the
//! record of every epoch), model selection on a validation split (`keep_best`) and resuming
//! from a checkpoint. What differs between commands is an [`Observer`]: checkpoints and
//! progress lines after each epoch, drift bookkeeping and twin refits after each mini-batch.
//!
//! A learner starts its own counters at zero; the driver adds the counters of a resumed run.

use anyhow::{Context, Result};
use ff_core::rng::MiniBatches;
use ff_core::Counters;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The data split a [`Learner`] is asked to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split (never used to choose anything).
    Test,
    /// The validation split carved from the training split (`keep_best` runs).
    Validation,
}

/// A method that [`drive`] can train: one mini-batch at a time, scored on demand.
pub trait Learner {
    /// What [`Learner::state`] returns: enough to put the trained parameters back.
    type State;

    /// Called before the mini-batches of epoch `epoch` (from 1) of `planned` (`None` when the
    /// run stops on a query budget): set the learning-rate factor, draw the epoch's random
    /// streams.
    ///
    /// # Errors
    /// The learner's own (an invalid learning-rate factor).
    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> Result<()>;

    /// Trains on the training samples at `batch` (indices into the training split); returns
    /// the mini-batch's loss, one value per block (or one in all).
    ///
    /// # Errors
    /// Shapes, a failing system, a diverging loss.
    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>>;

    /// Accuracy on `split` (0 for an empty split).
    ///
    /// # Errors
    /// A failing system, or a split this learner does not have.
    fn accuracy(&mut self, split: Split) -> Result<f64>;

    /// Work done so far (training and evaluation), from zero when the learner was made.
    fn counters(&self) -> Counters;

    /// The trainable state now (for `keep_best`).
    fn state(&self) -> Self::State;

    /// Puts a state from [`Learner::state`] back.
    ///
    /// # Errors
    /// A state that does not fit.
    fn restore(&mut self, state: Self::State) -> Result<()>;
}

/// When [`drive`] stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many epochs (>= 1).
    Epochs(usize),
    /// At the first mini-batch boundary where the training queries reach this budget.
    Queries(u64),
}

/// When [`drive`] scores the test split.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalSchedule {
    /// Every this many epochs and after the last one (with [`Stop::Epochs`]).
    EveryEpochs(usize),
    /// Once before training, then at the first mini-batch boundary at or after each of these
    /// training query counts (sorted).
    AtQueries(Vec<u64>),
    /// Never during training (the caller evaluates, as unsupervised training does with its
    /// read-out).
    Never,
}

/// What [`drive`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The stopping rule.
    pub stop: Stop,
    /// The evaluation schedule.
    pub eval: EvalSchedule,
    /// The mini-batches of every epoch.
    pub batches: MiniBatches,
    /// Score the training split too after the last epoch ([`Stop::Epochs`] only; it costs a
    /// forward pass of the whole training set).
    pub train_eval: bool,
    /// Score [`Split::Validation`] after every epoch and end with the best epoch's state
    /// (the latest among equal scores).
    pub select: bool,
    /// Name of the method in error messages (`"PAT, epoch 3: ..."`); `None` adds nothing.
    pub name: Option<String>,
}

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean loss per block over the epoch's mini-batches.
    pub loss: Vec<f64>,
    /// Train accuracy, when evaluated this epoch.
    pub train_accuracy: Option<f64>,
    /// Test accuracy, when evaluated this epoch.
    pub test_accuracy: Option<f64>,
    /// Wall time since training started, in seconds (evaluation included).
    pub wall_seconds: f64,
    /// Physical queries spent on training so far (evaluation excluded).
    pub train_physical_queries: u64,
    /// Accuracy on the validation split after this epoch (`keep_best` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
}

/// Where a run stands after an epoch: everything besides the learner's state that is needed
/// to continue it exactly (the random streams of epoch `e` derive from `(seed, e)`, so the
/// epoch number is all the RNG state there is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitProgress {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Records of the completed epochs.
    pub history: Vec<EpochRecord>,
    /// Work done so far (training and evaluation).
    pub counters: Counters,
    /// Physical queries spent on evaluation so far.
    pub eval_physical_queries: u64,
    /// Digital FLOPs spent on evaluation so far (included in `counters`).
    #[serde(default)]
    pub eval_digital_flops: u64,
    /// Latest test accuracy (0 until evaluated). The train accuracy, measured on the last
    /// epoch only, lives in that epoch's record. Checkpoints written before 2026-12-07 also hold
    /// a `train_accuracy` field here; it is ignored on reading.
    pub test_accuracy: f64,
    /// Wall time spent so far, in seconds.
    pub wall_seconds: f64,
    /// `keep_best` runs: the epoch with the best validation accuracy so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// `keep_best` runs: that epoch's validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_validation_accuracy: Option<f64>,
}

impl FitProgress {
    /// A run before its first epoch.
    pub fn start() -> Self {
        FitProgress {
            epochs_done: 0,
            history: Vec::new(),
            counters: Counters::default(),
            eval_physical_queries: 0,
            eval_digital_flops: 0,
            test_accuracy: 0.0,
            wall_seconds: 0.0,
            best_epoch: None,
            best_validation_accuracy: None,
        }
    }

    /// Physical queries spent on training (all of them but evaluation's).
    pub fn train_queries(&self) -> u64 {
        self.counters.physical_queries.saturating_sub(self.eval_physical_queries)
    }

    /// Work spent on evaluation so far.
    pub fn evaluation(&self) -> Counters {
        Counters { physical_queries: self.eval_physical_queries, digital_flops: self.eval_digital_flops }
    }

    /// Work spent on training so far: all of it but evaluation's.
    pub fn training(&self) -> Counters {
        Counters {
            physical_queries: self.train_queries(),
            digital_flops: self.counters.digital_flops.saturating_sub(self.eval_digital_flops),
        }
    }
}

/// One scoring of the test split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// The epoch under way (0 before training).
    pub epoch: usize,
    /// Training queries spent when it was measured.
    pub train_queries: u64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// Watches a run and acts on the learner at fixed moments. Every method has a default that
/// does nothing.
pub trait Observer<L: Learner> {
    /// After every scoring of the test split.
    ///
    /// # Errors
    /// The observer's own; they stop the run.
    fn evaluated(&mut self, _learner: &mut L, _point: &EvalPoint) -> Result<()> {
        Ok(())
    }

    /// After every mini-batch (and the evaluation due there), with the progress so far
    /// (counters and training queries up to date; the epoch's record not yet written).
    ///
    /// # Errors
    /// The observer's own; they stop the run.
    fn after_batch(&mut self, _learner: &mut L, _progress: &FitProgress) -> Result<()> {
        Ok(())
    }

    /// After every epoch, with its record (the last of `progress.history`).
    ///
    /// # Errors
    /// The observer's own (a checkpoint that cannot be written); they stop the run.
    fn after_epoch(&mut self, _learner: &L, _progress: &FitProgress) -> Result<()> {
        Ok(())
    }
}

/// An observer made of a closure called after every epoch (progress lines, checkpoints).
pub struct AfterEpoch<G>(pub G);

impl<L: Learner, G: FnMut(&L, &FitProgress) -> Result<()>> Observer<L> for AfterEpoch<G> {
    fn after_epoch(&mut self, learner: &L, progress: &FitProgress) -> Result<()> {
        (self.0)(learner, progress)
    }
}

/// An observer made of a closure called after every scoring of the test split.
pub struct OnEval<G>(pub G);

impl<L: Learner, G: FnMut(&EvalPoint)> Observer<L> for OnEval<G> {
    fn evaluated(&mut self, _learner: &mut L, point: &EvalPoint) -> Result<()> {
        (self.0)(point);
        Ok(())
    }
}

/// How a driven run ended (the run's record is [`crate::record::RunRecord::from_driven`]).
pub struct Driven {
    /// The books: epochs, records, counters, evaluation work, the last test accuracy.
    pub progress: FitProgress,
    /// Train accuracy after the last epoch (or of the kept one), when measured.
    pub train_accuracy: Option<f64>,
    /// Every scoring of the test split, in order.
    pub points: Vec<EvalPoint>,
    /// With `select`: the epoch kept (its state is in the learner) and its validation score.
    pub kept: Option<(usize, f64)>,
}

/// The training queries of the run: the resumed part and the learner's, less evaluation.
fn books<L: Learner>(base: Counters, learner: &L) -> Counters {
    let c = learner.counters();
    Counters {
        physical_queries: base.physical_queries.saturating_add(c.physical_queries),
        digital_flops: base.digital_flops.saturating_add(c.digital_flops),
    }
}

/// Runs `score` on `learner` and books the work it does as evaluation.
fn counted<L: Learner, T>(p: &mut FitProgress, learner: &mut L, score: impl FnOnce(&mut L) -> Result<T>) -> Result<T> {
    let before = learner.counters();
    let out = score(learner)?;
    let after = learner.counters();
    p.eval_physical_queries =
        p.eval_physical_queries.saturating_add(after.physical_queries.saturating_sub(before.physical_queries));
    p.eval_digital_flops =
        p.eval_digital_flops.saturating_add(after.digital_flops.saturating_sub(before.digital_flops));
    Ok(out)
}

/// Train (when asked) then test accuracy, booked as evaluation.
fn score<L: Learner>(p: &mut FitProgress, learner: &mut L, with_train: bool) -> Result<(Option<f64>, f64)> {
    counted(p, learner, |l| {
        let tr = if with_train { Some(l.accuracy(Split::Train)?) } else { None };
        Ok((tr, l.accuracy(Split::Test)?))
    })
}

/// The evaluation marks still ahead.
struct Marks<'a> {
    marks: &'a [u64],
    next: usize,
}

impl Marks<'_> {
    /// Whether a mark was passed at `queries` (every mark up to it is then consumed).
    fn due(&mut self, queries: u64) -> bool {
        let before = self.next;
        while self.next < self.marks.len() && self.marks[self.next] <= queries {
            self.next += 1;
        }
        self.next > before
    }
}

/// Trains `learner` by `plan`, continuing from `resume` (a run stopped after
/// `resume.epochs_done` epochs, the learner restored from the same moment; `best` is the best
/// state so far of a `select` run), calling the observers at their moments. With `select`,
/// the learner ends in the best epoch's state, and its test (and train) accuracy are measured
/// again when that is not the last epoch.
///
/// # Errors
/// [`Stop::Epochs`] of 0 or fewer than `resume.epochs_done`; an empty training split; a query
/// budget that an epoch does not advance; errors of the learner and of the observers.
pub fn drive<L: Learner>(
    learner: &mut L,
    plan: &Plan,
    resume: Option<FitProgress>,
    best: Option<L::State>,
    observers: &mut [&mut dyn Observer<L>],
) -> Result<Driven> {
    let n = plan.batches.samples();
    anyhow::ensure!(n > 0, "the training set is empty");
    let planned = match plan.stop {
        Stop::Epochs(e) => {
            anyhow::ensure!(e >= 1, "epochs must be at least 1, got {e}");
            Some(e)
        }
        Stop::Queries(_) => None,
    };
    let start = Instant::now();
    let mut p = resume.unwrap_or_else(FitProgress::start);
    if let Some(e) = planned {
        anyhow::ensure!(
            p.epochs_done <= e,
            "the checkpoint has {} epochs done but the run has only {e}; resume with --epochs {} or more",
            p.epochs_done,
            p.epochs_done
        );
    }
    // The learner's counters start from zero when it is made or restored: add the past.
    let base = p.counters;
    let wall_before = p.wall_seconds;
    let mut best = best;
    let mut points = Vec::new();
    let empty: Vec<u64> = Vec::new();
    let mut marks = Marks { marks: if let EvalSchedule::AtQueries(m) = &plan.eval { m } else { &empty }, next: 0 };
    let context = |epoch: usize| plan.name.as_ref().map(|m| format!("{m}, epoch {epoch}"));
    // One scoring of the test split at a query mark, seen by every observer.
    macro_rules! mark_point {
        ($epoch:expr) => {{
            let train_queries = p.train_queries();
            let te = counted(&mut p, learner, |l| l.accuracy(Split::Test))?;
            p.test_accuracy = te;
            p.counters = books(base, learner);
            let point = EvalPoint { epoch: $epoch, train_queries, test_accuracy: te };
            points.push(point);
            for o in observers.iter_mut() {
                o.evaluated(learner, &point)?;
            }
        }};
    }
    if matches!(plan.eval, EvalSchedule::AtQueries(_)) && p.epochs_done == 0 {
        p.counters = books(base, learner);
        mark_point!(0);
    }
    let mut epoch = p.epochs_done;
    let mut budget_spent = false;
    while planned.is_none_or(|e| epoch < e) && !budget_spent {
        epoch += 1;
        learner.start_epoch(epoch, planned)?;
        let before = p.train_queries();
        let order = plan.batches.order(epoch as u64);
        let mut loss_sum: Vec<f64> = Vec::new();
        let mut batches = 0usize;
        for idx in plan.batches.split(&order) {
            let loss = match context(epoch) {
                Some(c) => learner.train_batch(idx).context(c)?,
                None => learner.train_batch(idx)?,
            };
            if loss_sum.len() < loss.len() {
                loss_sum.resize(loss.len(), 0.0);
            }
            loss_sum.iter_mut().zip(&loss).for_each(|(s, l)| *s += l);
            batches += 1;
            p.counters = books(base, learner);
            if marks.due(p.train_queries()) {
                mark_point!(epoch);
            }
            for o in observers.iter_mut() {
                o.after_batch(learner, &p)?;
            }
            p.counters = books(base, learner);
            if let Stop::Queries(b) = plan.stop {
                if p.train_queries() >= b {
                    budget_spent = true;
                    break;
                }
            }
        }
        if let Stop::Queries(_) = plan.stop {
            anyhow::ensure!(
                p.train_queries() > before,
                "{}epoch {epoch} made no physical queries, so a query budget is never reached",
                plan.name.as_ref().map(|m| format!("{m}: ")).unwrap_or_default()
            );
        }
        let train_queries = p.train_queries();
        let last = planned == Some(epoch);
        let (mut tr, mut te) = (None, None);
        if let EvalSchedule::EveryEpochs(k) = plan.eval {
            if epoch.is_multiple_of(k.max(1)) || last {
                let (train_acc, test_acc) = score(&mut p, learner, last && plan.train_eval)?;
                tr = train_acc;
                te = Some(test_acc);
                p.test_accuracy = test_acc;
                let point = EvalPoint { epoch, train_queries, test_accuracy: test_acc };
                points.push(point);
                for o in observers.iter_mut() {
                    o.evaluated(learner, &point)?;
                }
            }
        }
        let mut va = None;
        if plan.select {
            let acc = counted(&mut p, learner, |l| l.accuracy(Split::Validation))?;
            va = Some(acc);
            if p.best_validation_accuracy.is_none_or(|b| acc >= b) {
                p.best_epoch = Some(epoch);
                p.best_validation_accuracy = Some(acc);
                best = Some(learner.state());
            }
        }
        let rec = EpochRecord {
            epoch,
            loss: loss_sum.iter().map(|s| s / batches.max(1) as f64).collect(),
            train_accuracy: tr,
            test_accuracy: te,
            wall_seconds: wall_before + start.elapsed().as_secs_f64(),
            train_physical_queries: train_queries,
            validation_accuracy: va,
        };
        p.epochs_done = epoch;
        p.counters = books(base, learner);
        p.wall_seconds = rec.wall_seconds;
        p.history.push(rec);
        for o in observers.iter_mut() {
            o.after_epoch(learner, &p)?;
        }
    }
    let mut train_accuracy = p.history.last().and_then(|r| r.train_accuracy);
    let mut kept = None;
    if plan.select {
        if let (Some(state), Some(e), Some(v)) = (best, p.best_epoch, p.best_validation_accuracy) {
            if e != p.epochs_done {
                learner.restore(state)?;
                let (tr, te) = score(&mut p, learner, plan.train_eval)?;
                train_accuracy = tr;
                p.test_accuracy = te;
            }
            kept = Some((e, v));
        }
    }
    p.counters = books(base, learner);
    p.wall_seconds = wall_before + start.elapsed().as_secs_f64();
    Ok(Driven { progress: p, train_accuracy, points, kept })
}

#[cfg(test)]
mod tests;
