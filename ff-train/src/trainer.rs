//! The training loop: epochs of PhyLL mini-batches, periodic evaluation, accounting.

use ff_core::rng::rng_for;
use ff_core::{Counters, Matrix, Network, Real};
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
    /// training sample; reported as 0 when skipped).
    pub train_eval: bool,
}

/// The outcome of [`fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// Final train accuracy.
    pub train_accuracy: f64,
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
    /// Latest train accuracy (0 until evaluated).
    pub train_accuracy: f64,
    /// Latest test accuracy (0 until evaluated).
    pub test_accuracy: f64,
    /// Wall time spent so far, in seconds.
    pub wall_seconds: f64,
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
    mut after_epoch: impl FnMut(&EpochRecord, &Network<F>, &FitProgress) -> anyhow::Result<()>,
) -> anyhow::Result<FitSummary> {
    anyhow::ensure!(opts.epochs >= 1, "epochs must be at least 1, got {}", opts.epochs);
    anyhow::ensure!(!train.is_empty(), "the training set is empty");
    let start = Instant::now();
    let mut p = resume.unwrap_or(FitProgress {
        epochs_done: 0,
        history: Vec::with_capacity(opts.epochs),
        counters: Counters::default(),
        eval_physical_queries: 0,
        eval_digital_flops: 0,
        train_accuracy: 0.0,
        test_accuracy: 0.0,
        wall_seconds: 0.0,
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
    let total = |net: &Network<F>| Counters {
        physical_queries: base.physical_queries + net.counters().physical_queries,
        digital_flops: base.digital_flops + net.counters().digital_flops,
    };
    let wall_before = p.wall_seconds;
    let n = train.len();
    let batch = if opts.batch_size == 0 { n } else { opts.batch_size.min(n) };
    let eval_every = opts.eval_every.max(1);
    let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::new());
    for epoch in p.epochs_done + 1..=opts.epochs {
        // One stream per epoch, so that a resumed run draws the same negatives.
        let mut rng = rng_for(opts.seed, &format!("negatives/{epoch}"));
        let order = if batch == n { (0..n).collect() } else { epoch_order(n, opts.seed, epoch as u64) };
        let mut loss_sum = vec![0.0; net.num_blocks()];
        let mut batches = 0usize;
        for idx in order.chunks(batch) {
            train.gather(idx, &mut xb, &mut yb);
            let stats = net.train_batch(xb.view(), &yb, &mut rng)?;
            loss_sum.iter_mut().zip(&stats.block_loss).for_each(|(s, l)| *s += l);
            batches += 1;
        }
        let train_queries = total(net).physical_queries - p.eval_physical_queries;
        let (mut tr, mut te) = (None, None);
        let last = epoch == opts.epochs;
        if epoch % eval_every == 0 || last {
            let before = net.counters();
            if last && opts.train_eval {
                p.train_accuracy = net.accuracy(train.x.view(), &train.y)?;
                tr = Some(p.train_accuracy);
            }
            p.test_accuracy = if test.is_empty() { 0.0 } else { net.accuracy(test.x.view(), &test.y)? };
            te = Some(p.test_accuracy);
            p.eval_physical_queries += net.counters().physical_queries - before.physical_queries;
            p.eval_digital_flops += net.counters().digital_flops - before.digital_flops;
        }
        let rec = EpochRecord {
            epoch,
            loss: loss_sum.iter().map(|s| s / batches as f64).collect(),
            train_accuracy: tr,
            test_accuracy: te,
            wall_seconds: wall_before + start.elapsed().as_secs_f64(),
            train_physical_queries: train_queries,
        };
        p.epochs_done = epoch;
        p.counters = total(net);
        p.wall_seconds = rec.wall_seconds;
        p.history.push(rec);
        after_epoch(p.history.last().expect("pushed above"), net, &p)?;
    }
    let c = total(net);
    Ok(FitSummary {
        train_accuracy: p.train_accuracy,
        test_accuracy: p.test_accuracy,
        wall_seconds: wall_before + start.elapsed().as_secs_f64(),
        train_physical_queries: c.physical_queries - p.eval_physical_queries,
        eval_physical_queries: p.eval_physical_queries,
        digital_flops: c.digital_flops,
        eval_digital_flops: p.eval_digital_flops,
        history: p.history,
    })
}
