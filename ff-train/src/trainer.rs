//! The training loop: epochs of PhyLL mini-batches (supervised, or unsupervised on hybrid
//! negatives followed by a linear read-out), periodic evaluation, accounting.

use crate::driver::{drive, AfterEpoch, EvalPoint, EvalSchedule, Learner, Plan, Split, Stop};
use crate::record::add_counters;
use anyhow::Context as _;
use ff_core::rng::{rng_for, MiniBatches, Rng};
use ff_core::{
    Counters, HybridNegatives, LinearReadout, LrSchedule, Matrix, Network, NetworkState, ReadoutConfig, Real,
};
use ff_data::Dataset;
use ff_physics::DriftClock;
use std::time::Instant;

pub use crate::driver::{EpochRecord, FitProgress};
pub use crate::record::{KeptEpoch, RunRecord};

/// Method name of the records of [`fit`], [`fit_from`] and [`fit_selecting`] (callers that
/// train another variant, e.g. the physics-removed ablation, rename it with
/// [`RunRecord::named`]).
pub const FF_METHOD: &str = "FF (PhyLL)";

/// Method name of the record of [`fit_unsupervised_from`].
pub const FF_UNSUPERVISED_METHOD: &str = "FF (PhyLL, unsupervised)";

/// Options of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Number of epochs (>= 1).
    pub epochs: usize,
    /// Mini-batch size; 0 means the full training set.
    pub batch_size: usize,
    /// Evaluate test accuracy every this many epochs; train and test accuracy are always
    /// evaluated after the last epoch (train accuracy costs `K x L` queries per training
    /// sample, so it is not tracked during training).
    pub eval_every: usize,
    /// Seed of the shuffles and negative labels.
    pub seed: u64,
    /// Measure train accuracy after the last epoch (costs `K x L` physical queries per
    /// training sample; [`RunRecord::train_accuracy`] is `None` when skipped).
    pub train_eval: bool,
    /// Learning-rate factor per epoch (set on the network before each epoch, also when
    /// resuming).
    pub lr_schedule: LrSchedule,
}

/// Model selection on a validation split ([`fit_selecting`]): after every epoch the network is
/// scored on `validation`, and the network of the best epoch is the one returned.
pub struct Selection<'a, F: Real> {
    /// Validation samples, carved from the training split (never the test split).
    pub validation: &'a Dataset<F>,
    /// When resuming: the best network so far (its epoch is `FitProgress::best_epoch`).
    pub best_state: Option<NetworkState<F>>,
}

/// What a forward-forward mini-batch trains on.
#[derive(Clone, Copy, Debug)]
pub enum Schedule<'a> {
    /// True labels in the positives, wrong labels in the negatives (stream
    /// `"negatives/{epoch}"`).
    Supervised,
    /// Raw samples as positives and their hybrids as negatives (stream `"hybrids/{epoch}"`),
    /// blank labels.
    Unsupervised(&'a HybridNegatives),
}

/// The forward-forward network as a [`Learner`]: the PhyLL schedule of
/// [`Network::train_batch`] (or [`Network::train_batch_unsupervised`]) on mini-batches of
/// `train`, scored by [`Network::accuracy`].
pub struct FfLearner<'a, F: Real> {
    /// The network being trained.
    pub net: &'a mut Network<F>,
    train: &'a Dataset<F>,
    test: &'a Dataset<F>,
    validation: Option<&'a Dataset<F>>,
    schedule: Schedule<'a>,
    seed: u64,
    lr_schedule: LrSchedule,
    clock: Option<DriftClock>,
    rng: Rng,
    xb: Matrix<F>,
    yb: Vec<usize>,
}

impl<'a, F: Real> FfLearner<'a, F> {
    /// `net` trained on `train` by `schedule` with the random streams of `seed`, scored on
    /// `test`; a constant learning rate, no validation split.
    pub fn new(
        net: &'a mut Network<F>,
        train: &'a Dataset<F>,
        test: &'a Dataset<F>,
        schedule: Schedule<'a>,
        seed: u64,
    ) -> Self {
        FfLearner {
            net,
            train,
            test,
            validation: None,
            schedule,
            seed,
            lr_schedule: LrSchedule::Constant,
            clock: None,
            rng: rng_for(seed, "negatives/0"),
            xb: Matrix::zeros(0, 0),
            yb: Vec::new(),
        }
    }

    /// Follows `schedule` over the planned epochs.
    pub fn lr_schedule(self, schedule: LrSchedule) -> Self {
        FfLearner { lr_schedule: schedule, ..self }
    }

    /// Scores [`Split::Validation`] on `validation`.
    pub fn validation(self, validation: Option<&'a Dataset<F>>) -> Self {
        FfLearner { validation, ..self }
    }

    /// Pauses `clock` while scoring (a drifting system does not age during evaluation).
    pub fn pausing(self, clock: DriftClock) -> Self {
        FfLearner { clock: Some(clock), ..self }
    }

    /// The mini-batch rule of this schedule for `batch_size` (an unsupervised batch needs two
    /// samples to mix).
    pub fn batches(&self, batch_size: usize) -> MiniBatches {
        let b = MiniBatches::new(self.train.len(), batch_size, self.seed);
        match self.schedule {
            Schedule::Supervised => b,
            Schedule::Unsupervised(_) => b.min_last(2),
        }
    }
}

impl<F: Real> Learner for FfLearner<'_, F> {
    type State = NetworkState<F>;

    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> anyhow::Result<()> {
        if let Some(total) = planned {
            self.net.set_lr_scale(self.lr_schedule.factor(epoch, total))?;
        }
        // One stream per epoch, so that a resumed run draws the same negatives.
        self.rng = match self.schedule {
            Schedule::Supervised => rng_for(self.seed, &format!("negatives/{epoch}")),
            Schedule::Unsupervised(_) => rng_for(self.seed, &format!("hybrids/{epoch}")),
        };
        Ok(())
    }

    fn train_batch(&mut self, batch: &[usize]) -> anyhow::Result<Vec<f64>> {
        self.train.gather(batch, &mut self.xb, &mut self.yb);
        let stats = match self.schedule {
            Schedule::Supervised => self.net.train_batch(self.xb.view(), &self.yb, &mut self.rng)?,
            Schedule::Unsupervised(hybrids) => {
                let neg = hybrids.generate(self.xb.view(), &mut self.rng)?;
                self.net.train_batch_unsupervised(self.xb.view(), neg.x.view())?
            }
        };
        Ok(stats.block_loss)
    }

    fn accuracy(&mut self, split: Split) -> anyhow::Result<f64> {
        let _paused = self.clock.as_ref().map(DriftClock::pause);
        let data = match split {
            Split::Train => self.train,
            Split::Test => self.test,
            Split::Validation => self.validation.context("no validation split was given")?,
        };
        Ok(if data.is_empty() { 0.0 } else { self.net.accuracy(data.x.view(), &data.y)? })
    }

    fn counters(&self) -> Counters {
        self.net.counters()
    }

    fn state(&self) -> NetworkState<F> {
        self.net.state()
    }

    fn restore(&mut self, state: NetworkState<F>) -> anyhow::Result<()> {
        Ok(self.net.restore_state(state)?)
    }
}

impl FitOptions {
    /// The driver's plan for these options: `opts.epochs` epochs, the test split every
    /// `eval_every` epochs (never for `Schedule::Unsupervised`, whose read-out is scored after
    /// the last epoch), mini-batches of `batches`.
    pub fn plan(&self, batches: MiniBatches, schedule: Schedule<'_>, select: bool) -> Plan {
        Plan {
            stop: Stop::Epochs(self.epochs),
            eval: match schedule {
                Schedule::Supervised => EvalSchedule::EveryEpochs(self.eval_every),
                Schedule::Unsupervised(_) => EvalSchedule::Never,
            },
            batches,
            train_eval: self.train_eval,
            select,
            name: None,
        }
    }
}

/// Trains `net` on `train` with the PhyLL schedule and evaluates on both sets. The record is
/// named [`FF_METHOD`]; its training work is the forward passes of positives and negatives and
/// the optimiser's, its evaluation work `K` labels x `L` blocks per scored sample.
///
/// `on_epoch` is called after every epoch (for progress display).
///
/// # Errors
/// Any error of the network (shapes, a failing system, divergence).
pub fn fit<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    opts: &FitOptions,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> anyhow::Result<RunRecord> {
    fit_from(net, train, test, opts, None, |r, _, _| {
        on_epoch(r);
        Ok(())
    })
}

/// [`fit`], continuing from `resume` (a run stopped after `resume.epochs_done` epochs, with
/// `net` restored from the same moment) and calling `after_epoch` with the record, the network
/// and the progress after every epoch (to checkpoint them). For a deterministic system,
/// resuming gives the same bits as the uninterrupted run.
///
/// # Errors
/// As [`fit`], errors of `after_epoch`, and a `resume` past `opts.epochs`.
pub fn fit_from<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    opts: &FitOptions,
    resume: Option<FitProgress>,
    after_epoch: impl FnMut(&EpochRecord, &Network<F>, &FitProgress) -> anyhow::Result<()>,
) -> anyhow::Result<RunRecord> {
    fit_selecting(net, train, test, opts, None, resume, after_epoch)
}

/// [`fit_from`] with model selection: with `selection`, the network is scored on the
/// validation split after every epoch (counted as evaluation), `progress.best_epoch` follows
/// the best score (the latest on ties, the network that trained longest among equals: a small
/// validation split saturates early, and the earliest would be an undertrained network; `after_epoch` sees it, so a checkpoint can keep that
/// epoch's state), and after the last epoch the best network is put back into `net` and its
/// test (and train) accuracy measured. The test split plays no part in the choice.
///
/// # Errors
/// As [`fit_from`]; also an empty validation split or a best state that does not fit `net`.
pub fn fit_selecting<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    opts: &FitOptions,
    selection: Option<Selection<'_, F>>,
    resume: Option<FitProgress>,
    after_epoch: impl FnMut(&EpochRecord, &Network<F>, &FitProgress) -> anyhow::Result<()>,
) -> anyhow::Result<RunRecord> {
    if let Some(sel) = &selection {
        anyhow::ensure!(!sel.validation.is_empty(), "keep_best needs a validation split, but it is empty");
    }
    let (validation, best) = match selection {
        Some(s) => (Some(s.validation), s.best_state),
        None => (None, None),
    };
    let mut learner = FfLearner::new(net, train, test, Schedule::Supervised, opts.seed)
        .lr_schedule(opts.lr_schedule)
        .validation(validation);
    let plan = opts.plan(learner.batches(opts.batch_size), Schedule::Supervised, validation.is_some());
    let mut after_epoch = after_epoch;
    let mut observer = AfterEpoch(|l: &FfLearner<'_, F>, p: &FitProgress| {
        after_epoch(p.history.last().context("an epoch was recorded")?, l.net, p)
    });
    Ok(RunRecord::from_driven(FF_METHOD, drive(&mut learner, &plan, resume, best, &mut [&mut observer])?))
}

/// Settings of unsupervised training ([`fit_unsupervised_from`]).
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupervisedOptions {
    /// How negatives are made from each mini-batch (shape of a raw sample, blur passes).
    pub hybrids: HybridNegatives,
    /// The linear read-out fitted on the training activities after the last epoch.
    pub readout: ReadoutConfig,
}

/// The outcome of [`fit_unsupervised_from`].
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupervisedFit<F> {
    /// The run (named [`FF_UNSUPERVISED_METHOD`]): accuracies of the read-out, wall time, work,
    /// history.
    pub record: RunRecord,
    /// The read-out fitted on the training activities.
    pub readout: LinearReadout<F>,
    /// Mean read-out loss per read-out epoch (nats).
    pub readout_loss: Vec<f64>,
}

/// Unsupervised forward-forward: every epoch, each mini-batch of raw training samples is the
/// positive batch and its hybrids (`opts_u.hybrids`, drawn from the per-epoch stream
/// `"hybrids/{epoch}"`) the negative batch, trained with blank labels
/// ([`Network::train_batch_unsupervised`]); labels are never read. After the last epoch, a
/// linear read-out is fitted on the block activities of the training set (with the training
/// labels) and evaluated on the test set. A final mini-batch of a single sample (which has no
/// other sample to mix with) joins the previous one.
///
/// Accounting: the activities of the training set count as training queries (the read-out
/// needs them), those of the test set as evaluation queries; the FLOPs of the activities and of
/// the read-out's fit and predictions count as training work. The read-out's scoring of the
/// test split is the record's one evaluation point. Per-epoch records carry no accuracy except
/// the last one, which holds the
/// read-out's: `opts.eval_every` does not apply, and `opts.train_eval` neither (the read-out's
/// train accuracy costs no extra query: its features are already computed). Resuming (`resume`, `after_epoch`) works as for [`fit_from`]; the read-out is
/// refitted from scratch at the end (it is deterministic for a seed).
///
/// # Errors
/// As [`fit_from`], plus a training set of fewer than 2 samples and read-out errors.
pub fn fit_unsupervised_from<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    opts: &FitOptions,
    opts_u: &UnsupervisedOptions,
    resume: Option<FitProgress>,
    after_epoch: impl FnMut(&EpochRecord, &Network<F>, &FitProgress) -> anyhow::Result<()>,
) -> anyhow::Result<UnsupervisedFit<F>> {
    anyhow::ensure!(
        train.len() >= 2,
        "unsupervised mode mixes two different training samples into each negative, but the training set has {}",
        train.len()
    );
    opts_u.readout.validate()?;
    let schedule = Schedule::Unsupervised(&opts_u.hybrids);
    let mut learner = FfLearner::new(net, train, test, schedule, opts.seed).lr_schedule(opts.lr_schedule);
    let plan = opts.plan(learner.batches(opts.batch_size), schedule, false);
    let mut after_epoch = after_epoch;
    let mut observer = AfterEpoch(|l: &FfLearner<'_, F>, p: &FitProgress| {
        after_epoch(p.history.last().context("an epoch was recorded")?, l.net, p)
    });
    let d = drive(&mut learner, &plan, resume, None, &mut [&mut observer])?;
    let mut s = RunRecord::from_driven(FF_UNSUPERVISED_METHOD, d);
    // The read-out's activities are queries and FLOPs of the network: training queries for the
    // training set, evaluation queries for the test set.
    let started = Instant::now();
    let before = net.counters();
    let r = fit_readout(net, train, test, &opts_u.readout, opts.seed)?;
    let network_flops = net.counters().digital_flops.saturating_sub(before.digital_flops);
    s.training = add_counters(
        s.training,
        Counters {
            physical_queries: r.train_physical_queries,
            digital_flops: network_flops.saturating_add(r.readout_flops),
        },
    );
    s.evaluation.physical_queries = s.evaluation.physical_queries.saturating_add(r.eval_physical_queries);
    s.wall_seconds += started.elapsed().as_secs_f64();
    if let Some(last) = s.history.last_mut() {
        last.train_accuracy = Some(r.train_accuracy);
        last.test_accuracy = Some(r.test_accuracy);
    }
    s.points.push(EvalPoint {
        epoch: s.epochs,
        train_queries: s.training.physical_queries,
        test_accuracy: r.test_accuracy,
    });
    s.train_accuracy = Some(r.train_accuracy);
    s.test_accuracy = r.test_accuracy;
    Ok(UnsupervisedFit { record: s, readout: r.readout, readout_loss: r.loss })
}

/// A read-out fitted by [`fit_readout`], with its cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadoutRun<F> {
    /// The fitted read-out.
    pub readout: LinearReadout<F>,
    /// Mean read-out loss per read-out epoch (nats).
    pub loss: Vec<f64>,
    /// Read-out accuracy on the training set.
    pub train_accuracy: f64,
    /// Read-out accuracy on the test set (0 for an empty test set).
    pub test_accuracy: f64,
    /// Physical queries of the training activities (one per sample and physical block).
    pub train_physical_queries: u64,
    /// Physical queries of the test activities.
    pub eval_physical_queries: u64,
    /// Digital FLOPs of fitting the read-out and of its predictions (the network's own FLOPs
    /// for the activities are in its counters).
    pub readout_flops: u64,
}

/// Fits a linear read-out ([`LinearReadout::fit`] with `cfg` and `seed`) on the block
/// activities ([`Network::activities`]) of `train` and measures it on both sets. The network
/// is not trained; it may be untrained (a random-feature control).
///
/// # Errors
/// Network errors (shapes, a failing system) and read-out errors.
pub fn fit_readout<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    cfg: &ReadoutConfig,
    seed: u64,
) -> anyhow::Result<ReadoutRun<F>> {
    let q0 = net.counters().physical_queries;
    let train_act = net.activities(train.x.view())?;
    let q1 = net.counters().physical_queries;
    let (readout, fit) = LinearReadout::fit(train_act.view(), &train.y, train.num_classes, cfg, seed)?;
    let mut readout_flops = fit.digital_flops + readout.flops_predict(train.len());
    let train_accuracy = readout.accuracy(train_act.view(), &train.y)?;
    let test_accuracy = if test.is_empty() {
        0.0
    } else {
        let test_act = net.activities(test.x.view())?;
        readout_flops += readout.flops_predict(test.len());
        readout.accuracy(test_act.view(), &test.y)?
    };
    Ok(ReadoutRun {
        readout,
        loss: fit.loss,
        train_accuracy,
        test_accuracy,
        train_physical_queries: q1 - q0,
        eval_physical_queries: net.counters().physical_queries - q1,
        readout_flops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_written_with_the_old_train_accuracy_field_still_loads() {
        // Checkpoints written before the field was dropped carry it; runs in flight resume.
        let old = r#"{"epochs_done":3,"history":[],"counters":{"physical_queries":7,"digital_flops":9},
            "eval_physical_queries":2,"eval_digital_flops":4,"train_accuracy":0.5,"test_accuracy":0.25,
            "wall_seconds":1.5}"#;
        let p: FitProgress = serde_json::from_str(old).expect("old progress loads");
        assert_eq!((p.epochs_done, p.counters.physical_queries, p.test_accuracy), (3, 7, 0.25));
        let back = serde_json::to_string(&p).expect("serialises");
        assert!(!back.contains("train_accuracy"), "{back}");
    }
}
