//! The training loop: epochs of PhyLL mini-batches, periodic evaluation, accounting.

use ff_core::rng::rng_for;
use ff_core::{Matrix, Network, Real};
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
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
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
    anyhow::ensure!(opts.epochs >= 1, "epochs must be at least 1, got {}", opts.epochs);
    anyhow::ensure!(!train.is_empty(), "the training set is empty");
    let start = Instant::now();
    let mut rng = rng_for(opts.seed, "negatives");
    let n = train.len();
    let batch = if opts.batch_size == 0 { n } else { opts.batch_size.min(n) };
    let eval_every = opts.eval_every.max(1);
    let mut history = Vec::with_capacity(opts.epochs);
    let mut eval_queries = 0u64;
    let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::new());
    let (mut last_train, mut last_test) = (0.0, 0.0);
    for epoch in 1..=opts.epochs {
        let order = if batch == n { (0..n).collect() } else { epoch_order(n, opts.seed, epoch as u64) };
        let mut loss_sum = vec![0.0; net.num_blocks()];
        let mut batches = 0usize;
        for idx in order.chunks(batch) {
            train.gather(idx, &mut xb, &mut yb);
            let stats = net.train_batch(xb.view(), &yb, &mut rng)?;
            loss_sum.iter_mut().zip(&stats.block_loss).for_each(|(s, l)| *s += l);
            batches += 1;
        }
        let train_queries = net.counters().physical_queries - eval_queries;
        let (mut tr, mut te) = (None, None);
        let last = epoch == opts.epochs;
        if epoch % eval_every == 0 || last {
            let before = net.counters().physical_queries;
            if last && opts.train_eval {
                last_train = net.accuracy(train.x.view(), &train.y)?;
                tr = Some(last_train);
            }
            last_test = if test.is_empty() { 0.0 } else { net.accuracy(test.x.view(), &test.y)? };
            te = Some(last_test);
            eval_queries += net.counters().physical_queries - before;
        }
        let rec = EpochRecord {
            epoch,
            loss: loss_sum.iter().map(|s| s / batches as f64).collect(),
            train_accuracy: tr,
            test_accuracy: te,
            wall_seconds: start.elapsed().as_secs_f64(),
            train_physical_queries: train_queries,
        };
        on_epoch(&rec);
        history.push(rec);
    }
    let c = net.counters();
    Ok(FitSummary {
        train_accuracy: last_train,
        test_accuracy: last_test,
        wall_seconds: start.elapsed().as_secs_f64(),
        train_physical_queries: c.physical_queries - eval_queries,
        eval_physical_queries: eval_queries,
        digital_flops: c.digital_flops,
        history,
    })
}
