//! The training loop: epochs of PhyLL mini-batches (supervised, or unsupervised on hybrid
//! negatives followed by a linear read-out), periodic evaluation, accounting.

use ff_core::rng::rng_for;
use ff_core::{
    Counters, HybridNegatives, LinearReadout, LrSchedule, Matrix, Network, NetworkState, ReadoutConfig, Real,
};
use ff_data::{epoch_order, Dataset};
use serde::{Deserialize, Serialize};
use std::time::Instant;

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
    /// training sample; [`FitSummary::train_accuracy`] is `None` when skipped).
    pub train_eval: bool,
    /// Learning-rate factor per epoch (set on the network before each epoch, also when
    /// resuming).
    pub lr_schedule: LrSchedule,
}

/// The outcome of [`fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// Final train accuracy (`None` when it was not measured: `train_eval` off).
    pub train_accuracy: Option<f64>,
    /// Final test accuracy.
    pub test_accuracy: f64,
    /// Wall time of the whole run, in seconds.
    pub wall_seconds: f64,
    /// Physical queries spent on training (forward passes of positives and negatives).
    pub train_physical_queries: u64,
    /// Physical queries spent on evaluation (K labels x L blocks per evaluated sample).
    pub eval_physical_queries: u64,
    /// Digital floating-point operations, training and evaluation.
    pub digital_flops: u64,
    /// The part of `digital_flops` spent on evaluation.
    pub eval_digital_flops: u64,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// `keep_best` runs: the epoch whose network was kept (the best validation accuracy, the
    /// latest on ties); the accuracies above are that network's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_epoch: Option<usize>,
    /// `keep_best` runs: the kept network's validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
}

/// Model selection on a validation split ([`fit_selecting`]): after every epoch the network is
/// scored on `validation`, and the network of the best epoch is the one returned.
pub struct Selection<'a, F: Real> {
    /// Validation samples, carved from the training split (never the test split).
    pub validation: &'a Dataset<F>,
    /// When resuming: the best network so far (its epoch is `FitProgress::best_epoch`).
    pub best_state: Option<NetworkState<F>>,
}

/// Where a run stands after an epoch: everything besides the network's state that is needed
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
    /// Runs `eval` on `net` and books the physical queries and digital FLOPs it spends as
    /// evaluation (`eval_physical_queries`, `eval_digital_flops`).
    fn counted<F: Real, T>(
        &mut self,
        net: &mut Network<F>,
        eval: impl FnOnce(&mut Network<F>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let before = net.counters();
        let out = eval(net)?;
        let after = net.counters();
        self.eval_physical_queries =
            self.eval_physical_queries.saturating_add(after.physical_queries - before.physical_queries);
        self.eval_digital_flops = self.eval_digital_flops.saturating_add(after.digital_flops - before.digital_flops);
        Ok(out)
    }
}

/// The train accuracy (when `with_train`) and the test accuracy (0 for an empty test set).
fn accuracies<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    with_train: bool,
) -> anyhow::Result<(Option<f64>, f64)> {
    let tr = if with_train { Some(net.accuracy(train.x.view(), &train.y)?) } else { None };
    let te = if test.is_empty() { 0.0 } else { net.accuracy(test.x.view(), &test.y)? };
    Ok((tr, te))
}

/// Trains `net` on `train` with the PhyLL schedule and evaluates on both sets.
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
) -> anyhow::Result<FitSummary> {
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
) -> anyhow::Result<FitSummary> {
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
) -> anyhow::Result<FitSummary> {
    if let Some(sel) = &selection {
        anyhow::ensure!(!sel.validation.is_empty(), "keep_best needs a validation split, but it is empty");
    }
    let selecting = selection.is_some();
    let mut run = run_epochs(net, train, test, opts, Schedule::Supervised, selection, resume, after_epoch)?;
    let mut train_accuracy = run.progress.history.last().and_then(|r| r.train_accuracy);
    if let (Some(best), Some(e)) = (run.best_state.take(), run.progress.best_epoch) {
        if e != run.progress.epochs_done {
            net.restore_state(best)?;
            let (tr, te) = run.progress.counted(net, |net| accuracies(net, train, test, opts.train_eval))?;
            train_accuracy = tr;
            run.progress.test_accuracy = te;
        }
    }
    let c = run.total(net);
    let p = run.progress;
    Ok(FitSummary {
        // Measured on the last epoch (or the kept one) only.
        train_accuracy,
        test_accuracy: p.test_accuracy,
        wall_seconds: run.wall_before + run.start.elapsed().as_secs_f64(),
        train_physical_queries: c.physical_queries.saturating_sub(p.eval_physical_queries),
        eval_physical_queries: p.eval_physical_queries,
        digital_flops: c.digital_flops,
        eval_digital_flops: p.eval_digital_flops,
        history: p.history,
        kept_epoch: if selecting { p.best_epoch } else { None },
        validation_accuracy: if selecting { p.best_validation_accuracy } else { None },
    })
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
    /// Accuracies (of the read-out), wall time, queries and FLOPs, history.
    pub summary: FitSummary,
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
/// needs them), those of the test set as evaluation queries; the read-out's FLOPs are in
/// `digital_flops`. Per-epoch records carry no accuracy except the last one, which holds the
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
    let mut run =
        run_epochs(net, train, test, opts, Schedule::Unsupervised(&opts_u.hybrids), None, resume, after_epoch)?;
    let r = fit_readout(net, train, test, &opts_u.readout, opts.seed)?;
    run.progress.eval_physical_queries = run.progress.eval_physical_queries.saturating_add(r.eval_physical_queries);
    let c = run.total(net);
    let p = run.progress;
    let mut history = p.history;
    if let Some(last) = history.last_mut() {
        last.train_accuracy = Some(r.train_accuracy);
        last.test_accuracy = Some(r.test_accuracy);
    }
    let summary = FitSummary {
        train_accuracy: Some(r.train_accuracy),
        test_accuracy: r.test_accuracy,
        wall_seconds: run.wall_before + run.start.elapsed().as_secs_f64(),
        train_physical_queries: c.physical_queries.saturating_sub(p.eval_physical_queries),
        eval_physical_queries: p.eval_physical_queries,
        digital_flops: c.digital_flops + r.readout_flops,
        eval_digital_flops: p.eval_digital_flops,
        history,
        kept_epoch: None,
        validation_accuracy: None,
    };
    Ok(UnsupervisedFit { summary, readout: r.readout, readout_loss: r.loss })
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

/// What a mini-batch trains on.
#[derive(Clone, Copy)]
enum Schedule<'a> {
    /// True labels in the positives, wrong labels in the negatives; accuracy evaluated every
    /// `eval_every` epochs.
    Supervised,
    /// Raw samples as positives and their hybrids as negatives, blank labels; no evaluation
    /// inside the loop.
    Unsupervised(&'a HybridNegatives),
}

/// The state of [`run_epochs`] when it returns.
struct EpochsRun<F: Real> {
    progress: FitProgress,
    /// With a [`Selection`]: the best epoch's state.
    best_state: Option<NetworkState<F>>,
    /// Counters of the run before this call (the network's own counters start from zero).
    base: Counters,
    /// Wall time of the run before this call, seconds.
    wall_before: f64,
    start: Instant,
}

impl<F: Real> EpochsRun<F> {
    fn total(&self, net: &Network<F>) -> Counters {
        total(self.base, net)
    }
}

/// The counters of a run before this call plus the network's. Saturating: `base` may come
/// from a checkpoint, whose numbers are whatever the file says.
fn total<F: Real>(base: Counters, net: &Network<F>) -> Counters {
    Counters {
        physical_queries: base.physical_queries.saturating_add(net.counters().physical_queries),
        digital_flops: base.digital_flops.saturating_add(net.counters().digital_flops),
    }
}

/// The epochs of both schedules: shuffle, mini-batches, evaluation (supervised), records,
/// `after_epoch`.
// Eight arguments: the network, the two data sets, the options, the schedule, the optional
// selection, the resume point and the callback are independent inputs of the one epoch loop.
#[allow(clippy::too_many_arguments)]
fn run_epochs<F: Real>(
    net: &mut Network<F>,
    train: &Dataset<F>,
    test: &Dataset<F>,
    opts: &FitOptions,
    schedule: Schedule<'_>,
    mut selection: Option<Selection<'_, F>>,
    resume: Option<FitProgress>,
    mut after_epoch: impl FnMut(&EpochRecord, &Network<F>, &FitProgress) -> anyhow::Result<()>,
) -> anyhow::Result<EpochsRun<F>> {
    anyhow::ensure!(opts.epochs >= 1, "epochs must be at least 1, got {}", opts.epochs);
    anyhow::ensure!(!train.is_empty(), "the training set is empty");
    let start = Instant::now();
    let mut p = resume.unwrap_or(FitProgress {
        epochs_done: 0,
        history: Vec::with_capacity(opts.epochs),
        counters: Counters::default(),
        eval_physical_queries: 0,
        eval_digital_flops: 0,
        test_accuracy: 0.0,
        wall_seconds: 0.0,
        best_epoch: None,
        best_validation_accuracy: None,
    });
    anyhow::ensure!(
        p.epochs_done <= opts.epochs,
        "the checkpoint has {} epochs done but the run has only {}; resume with --epochs {} or more",
        p.epochs_done,
        opts.epochs,
        p.epochs_done
    );
    // The network's own counters start from zero when it is built or restored: add the past.
    let base = p.counters;
    let wall_before = p.wall_seconds;
    let n = train.len();
    let batch = if opts.batch_size == 0 { n } else { opts.batch_size.min(n) };
    let eval_every = opts.eval_every.max(1);
    let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::new());
    for epoch in p.epochs_done + 1..=opts.epochs {
        net.set_lr_scale(opts.lr_schedule.factor(epoch, opts.epochs))?;
        // One stream per epoch, so that a resumed run draws the same negatives.
        let mut rng = match schedule {
            Schedule::Supervised => rng_for(opts.seed, &format!("negatives/{epoch}")),
            Schedule::Unsupervised(_) => rng_for(opts.seed, &format!("hybrids/{epoch}")),
        };
        let order = if batch == n { (0..n).collect() } else { epoch_order(n, opts.seed, epoch as u64) };
        let mut loss_sum = vec![0.0; net.num_blocks()];
        let mut batches = 0usize;
        let min_batch = match schedule {
            Schedule::Supervised => 1,
            Schedule::Unsupervised(_) => 2,
        };
        for idx in mini_batches(&order, batch, min_batch) {
            train.gather(idx, &mut xb, &mut yb);
            let stats = match schedule {
                Schedule::Supervised => net.train_batch(xb.view(), &yb, &mut rng)?,
                Schedule::Unsupervised(hybrids) => {
                    let neg = hybrids.generate(xb.view(), &mut rng)?;
                    net.train_batch_unsupervised(xb.view(), neg.x.view())?
                }
            };
            loss_sum.iter_mut().zip(&stats.block_loss).for_each(|(s, l)| *s += l);
            batches += 1;
        }
        let train_queries = total(base, net).physical_queries.saturating_sub(p.eval_physical_queries);
        let (mut tr, mut te) = (None, None);
        let last = epoch == opts.epochs;
        if matches!(schedule, Schedule::Supervised) && (epoch % eval_every == 0 || last) {
            let (train_acc, test_acc) = p.counted(net, |net| accuracies(net, train, test, last && opts.train_eval))?;
            tr = train_acc;
            p.test_accuracy = test_acc;
            te = Some(test_acc);
        }
        let mut va = None;
        if let Some(sel) = selection.as_mut() {
            let validation = sel.validation;
            let acc = p.counted(net, |net| Ok(net.accuracy(validation.x.view(), &validation.y)?))?;
            va = Some(acc);
            if p.best_validation_accuracy.is_none_or(|b| acc >= b) {
                p.best_epoch = Some(epoch);
                p.best_validation_accuracy = Some(acc);
                sel.best_state = Some(net.state());
            }
        }
        let rec = EpochRecord {
            epoch,
            loss: loss_sum.iter().map(|s| s / batches as f64).collect(),
            train_accuracy: tr,
            test_accuracy: te,
            wall_seconds: wall_before + start.elapsed().as_secs_f64(),
            train_physical_queries: train_queries,
            validation_accuracy: va,
        };
        p.epochs_done = epoch;
        p.counters = total(base, net);
        p.wall_seconds = rec.wall_seconds;
        p.history.push(rec);
        after_epoch(p.history.last().expect("pushed above"), net, &p)?;
    }
    let best_state = selection.and_then(|s| s.best_state);
    Ok(EpochsRun { progress: p, best_state, base, wall_before, start })
}

/// Consecutive chunks of `order` of `batch` indices; a last chunk shorter than `min_batch`
/// joins the previous one (when there is one).
fn mini_batches(order: &[usize], batch: usize, min_batch: usize) -> Vec<&[usize]> {
    let mut chunks: Vec<&[usize]> = order.chunks(batch.max(1)).collect();
    if chunks.len() >= 2 && chunks[chunks.len() - 1].len() < min_batch {
        let last = chunks.pop().map_or(0, <[usize]>::len);
        let prev = chunks.pop().map_or(0, <[usize]>::len);
        chunks.push(&order[order.len() - last - prev..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_last_batch_joins_the_previous_one() {
        let order: Vec<usize> = (0..9).collect();
        let sizes = |b, m| mini_batches(&order, b, m).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(4, 1), vec![4, 4, 1]);
        assert_eq!(sizes(4, 2), vec![4, 5]);
        assert_eq!(sizes(3, 2), vec![3, 3, 3]);
        assert_eq!(sizes(9, 2), vec![9]);
        assert_eq!(sizes(8, 2), vec![9]);
        let joined: Vec<usize> = mini_batches(&order, 4, 2).concat();
        assert_eq!(joined, order);
    }

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
