//! Blocks and the PhyLL schedule: a deep physical network trained block by block.
//!
//! Block `k` maps its input `h` to `z = W_k u + b_k` with `u = P_k(h)` (or `[P_k(h); h]` with a
//! skip connection). Training a mini-batch: embed the true label (positives) and a wrong label
//! (negatives); for each block in order, query `P_k` once on the positives and once on the
//! negatives, take `n_inner` optimiser steps on `(W_k, b_k)` with those physical outputs held
//! fixed, then pass the (detached) outputs on. Prediction: for every candidate label, run all
//! blocks and sum the goodness; the argmax wins.

use crate::embed::{hardest_wrong_labels, random_wrong_labels, sampled_wrong_labels, LabelEmbedding, LabelValue};
use crate::error::{CoreError, Result};
use crate::goodness::Goodness;
use crate::layer::{transpose_into, LocalLayer, Workspace};
use crate::loss::Loss;
use crate::matrix::{hcat_into, MatRef, Matrix};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::real::Real;
use crate::rng::{rng_for, Rng};
use crate::system::PhysicalSystem;
use serde::{Deserialize, Serialize};

/// How negative labels are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NegativeMode {
    /// A uniformly random wrong label, redrawn at every pass (the paper).
    #[default]
    Random,
    /// The wrong label the current network scores highest (costs `K x L` extra queries per sample).
    Hardest,
    /// A wrong label drawn at random in proportion to `exp(score / T)` over the wrong labels,
    /// where the score is the current network's summed goodness ([`Network::scores`]) and `T`
    /// is [`TrainConfig::negative_temperature`] (goodness units). Hinton's FF code draws its
    /// negative labels from the network's own predicted distribution with the true label
    /// excluded; this uses the goodness itself as the logits, which for the Hinton objective
    /// (`p(positive) = sigmoid(g - theta)`) are its log-odds up to a constant at `T = 1`.
    /// Large `T` tends to [`NegativeMode::Random`], small `T` to [`NegativeMode::Hardest`].
    /// Costs `K x L` extra queries per sample, as `Hardest`.
    Sampled,
}

impl NegativeMode {
    /// The name used in configuration files (`random`, `hardest`, `sampled`).
    pub fn name(self) -> &'static str {
        match self {
            NegativeMode::Random => "random",
            NegativeMode::Hardest => "hardest",
            NegativeMode::Sampled => "sampled",
        }
    }
}

/// What a block passes to the next block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PassOn {
    /// The raw `z` (PhyLL).
    #[default]
    Raw,
    /// The activation of `z`, normalised to unit length per sample (Hinton's layer
    /// normalisation: `f(z) / (|f(z)| + 1e-4)`), so the next block cannot read the goodness
    /// off the length.
    Normalized,
}

/// Training hyper-parameters shared by all blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimiser steps per block per mini-batch with the physical outputs held fixed.
    pub n_inner: usize,
    /// Local loss.
    pub loss: Loss,
    /// Goodness of every block.
    pub goodness: Goodness,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// How negatives are chosen.
    pub negatives: NegativeMode,
    /// Temperature `T > 0` of [`NegativeMode::Sampled`], in goodness units (ignored by the
    /// other modes). Absent from files written before it existed: 1.
    #[serde(default = "unit_temperature")]
    pub negative_temperature: f64,
    /// The value written at the label position.
    pub label_value: LabelValue,
    /// What each block passes on.
    pub pass_on: PassOn,
}

fn unit_temperature() -> f64 {
    1.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            n_inner: 10,
            loss: Loss::default(),
            goodness: Goodness::default(),
            optimizer: OptimizerConfig::adam(5e-4),
            negatives: NegativeMode::Random,
            negative_temperature: 1.0,
            label_value: LabelValue::BatchMaxAbs,
            pass_on: PassOn::Raw,
        }
    }
}

impl TrainConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the offending field and value.
    pub fn validate(&self) -> Result<()> {
        if self.n_inner == 0 {
            return Err(CoreError::config("n_inner", "must be at least 1, got 0"));
        }
        self.loss.validate()?;
        self.optimizer.validate()?;
        let t = self.negative_temperature;
        if !(t.is_finite() && t > 0.0) {
            return Err(CoreError::config(
                "negative_temperature",
                format!("must be a positive number of goodness units (e.g. 1), got {t}"),
            ));
        }
        if let LabelValue::Fixed { value } = self.label_value {
            if !value.is_finite() {
                return Err(CoreError::config("label_value", format!("must be finite, got {value}")));
            }
        }
        Ok(())
    }
}

/// One block as specified by the caller: its physical system, skip flag and output size.
///
/// The width rule, checked by [`Network::new`]: block `k` receives `d_k` values per sample
/// (block 0: the embedded sample, [`LabelEmbedding::embedded_len`]`(raw_len)`; block `k + 1`:
/// block `k`'s `out_dim`), so its system must have `input_len() == d_k`. Its affine layer
/// then sees `u = [p; h]`, `output_len() + d_k` values, with `skip`, and `output_len()`
/// values without. A skip never widens what the block passes on: that is always `out_dim`.
pub struct BlockSpec<F: Real> {
    /// The physical system `P_k` (a black box).
    pub system: Box<dyn PhysicalSystem<F>>,
    /// Whether the block input is concatenated after the physical output (`u = [p; h]`).
    pub skip: bool,
    /// Output size of the affine map: the number of values the block passes on.
    pub out_dim: usize,
}

/// The trained state of a network (what a model file stores besides its configuration).
///
/// Deserialising checks each layer and optimiser state, and [`NetworkState::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real", try_from = "StateFile<F>")]
pub struct NetworkState<F> {
    /// One layer per block.
    pub layers: Vec<LocalLayer<F>>,
    /// One optimiser state per block (to resume training exactly).
    pub optimizers: Vec<Optimizer<F>>,
}

/// A [`NetworkState`] as stored in a file, before the blocks are checked against each other.
#[derive(Deserialize)]
#[serde(bound = "F: Real")]
struct StateFile<F> {
    layers: Vec<LocalLayer<F>>,
    optimizers: Vec<Optimizer<F>>,
}

impl<F: Real> TryFrom<StateFile<F>> for NetworkState<F> {
    type Error = CoreError;

    fn try_from(f: StateFile<F>) -> Result<Self> {
        let state = NetworkState { layers: f.layers, optimizers: f.optimizers };
        state.validate()?;
        Ok(state)
    }
}

impl<F: Real> NetworkState<F> {
    /// Checks that the parts fit together: as many optimiser states as layers, each for the
    /// parameters of its layer. (That each layer's input width matches its block is checked by
    /// [`Network::from_state`], which knows the systems.)
    ///
    /// # Errors
    /// [`CoreError::Shape`] naming the block, the fields and both numbers.
    pub fn validate(&self) -> Result<()> {
        if self.layers.len() != self.optimizers.len() {
            return Err(CoreError::Shape {
                context: "network state layers, optimizers".into(),
                expected: format!("one optimiser state per layer ({} layers)", self.layers.len()),
                got: format!("{} optimiser states", self.optimizers.len()),
            });
        }
        for (k, (layer, opt)) in self.layers.iter().zip(&self.optimizers).enumerate() {
            if opt.num_params() != layer.num_params() {
                return Err(CoreError::Shape {
                    context: format!("block {k}: optimizers[{k}]"),
                    expected: format!(
                        "state for the {} parameters of layers[{k}] ({} -> {})",
                        layer.num_params(),
                        layer.d_in(),
                        layer.d_out()
                    ),
                    got: format!("state for {}", opt.num_params()),
                });
            }
        }
        Ok(())
    }
}

/// Work counters, incremented where the work happens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Samples sent through physical systems (one query = one input vector).
    pub physical_queries: u64,
    /// Digital floating-point operations (affine maps, gradients, goodness, optimiser).
    pub digital_flops: u64,
}

/// Statistics of one trained mini-batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    /// Mean loss over the inner steps, per block.
    pub block_loss: Vec<f64>,
}

/// How [`Network::fit`] runs through the training samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FitPlan {
    /// Passes over the training samples (at least 1), numbered from 1.
    pub epochs: usize,
    /// Samples per mini-batch; 0, or at least the number of samples, trains on all samples as
    /// one batch in their given order. Otherwise each epoch visits the samples in the order
    /// [`crate::rng::epoch_order`]`(n, seed, epoch)` cut into consecutive chunks of
    /// `batch_size` (the last chunk holds the remainder).
    pub batch_size: usize,
    /// Seed of the per-epoch orders and of the negative labels (stream `negatives/{epoch}`),
    /// the conventions of ff-train's trainer. Independent of the seed that initialised the
    /// network in [`Network::new`].
    pub seed: u64,
}

/// What one epoch of [`Network::fit`] did, passed to its callback.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean over the epoch's mini-batches of each block's loss (units of [`TrainConfig::loss`]).
    pub loss: Vec<f64>,
    /// Mini-batches trained in the epoch.
    pub batches: usize,
    /// The network's work counters after the epoch ([`Network::counters`]: everything since
    /// the network was built, evaluation included).
    pub counters: Counters,
}

struct Block<F: Real> {
    system: Box<dyn PhysicalSystem<F>>,
    skip: bool,
    layer: LocalLayer<F>,
    optimizer: Optimizer<F>,
}

/// A deep physical network trained by local (forward-forward) learning.
pub struct Network<F: Real> {
    blocks: Vec<Block<F>>,
    embedding: LabelEmbedding,
    config: TrainConfig,
    raw_len: usize,
    counters: Counters,
    /// The batch's positives and negatives stacked piece by piece (reused from batch to batch).
    stacked: Matrix<F>,
    /// Per piece of the batch (see [`pieces`]): the inner step's buffers (reused).
    pieces: Vec<PieceWork<F>>,
    /// A block's physical output before the skip is appended (reused from block to block).
    sys_out: Matrix<F>,
    /// A block's layer input `u`: the physical output, with the skip when configured (reused).
    u: Matrix<F>,
}

/// The buffers of one piece of the batch in the inner steps.
#[derive(Default)]
struct PieceWork<F: Real> {
    ws: Workspace<F>,
    /// The transpose of the piece's block input (`d_in x 2m`).
    ut: Matrix<F>,
    /// The piece's gradient contribution.
    grad: Vec<F>,
}

/// Batches of at least this many pairs run their inner steps in two halves (by pair index):
/// each half's forward product, goodness, loss and gradient on one thread, the halves
/// exchanging their gradients once per step. The cut depends on the batch size alone, so the
/// result never depends on the thread count.
pub const MIN_PAIRS_TO_SPLIT: usize = 64;

/// How the inner steps cut a batch of `n` pairs: as `(start, end)` ranges of pairs, one piece
/// for small batches and two halves from [`MIN_PAIRS_TO_SPLIT`] pairs. Each piece's forward
/// product, goodness, loss and gradient run on one thread (its products still split over the
/// pool when large), and the pieces exchange only their gradients, once per step: on the
/// 2-core virtual machine the cores are sometimes placed far apart (a cache line takes 400 ns
/// to cross instead of 90 ns), and an inner step split at every stage then ran slower than on
/// one thread. The cut depends on `n` alone, never on the thread count, so every
/// machine computes the same bits.
fn pieces(n: usize) -> [(usize, usize); 2] {
    if n < MIN_PAIRS_TO_SPLIT {
        [(0, n), (n, n)]
    } else {
        let half = n.div_ceil(2);
        [(0, half), (half, n)]
    }
}

/// Stacks positives `hp` and negatives `hn` piece by piece: for each piece `(a, b)` of
/// [`pieces`], rows `a..b` of `hp`, then rows `a..b` of `hn`. With one piece this is
/// [`crate::layer::stack_into`].
fn stack_pieces_into<F: Real>(hp: MatRef<'_, F>, hn: MatRef<'_, F>, u: &mut Matrix<F>) {
    assert_eq!((hp.rows(), hp.cols()), (hn.rows(), hn.cols()), "positive and negative batches must be paired");
    let (n, d) = (hp.rows(), hp.cols());
    u.resize(2 * n, d);
    let mut at = 0;
    for (a, b) in pieces(n) {
        for src in [hp, hn] {
            let len = (b - a) * d;
            u.data_mut()[at..at + len].copy_from_slice(&src.data()[a * d..b * d]);
            at += len;
        }
    }
}

/// Where block 0's input width comes from, for the errors of [`check_widths`].
fn embedded_origin(raw_len: usize, embedding: &LabelEmbedding) -> String {
    let k = embedding.num_classes();
    match *embedding {
        LabelEmbedding::Overwrite { .. } => {
            format!("the embedded sample: raw_len {raw_len}, the label written into its first {k} entries (Overwrite)")
        }
        LabelEmbedding::Prepend { .. } => {
            format!("the embedded sample: {k} label entries (Prepend) + raw_len {raw_len}")
        }
        LabelEmbedding::ImageBands { height, width, band_rows, .. } => format!(
            "the embedded image: ({band_rows} band rows + {height} rows + {band_rows} band rows) x {width} columns"
        ),
    }
}

/// The width rule of [`BlockSpec`], checked before anything is built: for every block
/// `(system, skip, out_dim)`, the system takes what reaches the block (the embedded sample,
/// then the previous block's `out_dim`), and the affine layer sees at least one value.
fn check_widths<'a, F: Real + 'a>(
    raw_len: usize,
    embedding: &LabelEmbedding,
    blocks: impl Iterator<Item = (&'a dyn PhysicalSystem<F>, bool, usize)>,
) -> Result<()> {
    let mut d = embedding.embedded_len(raw_len);
    let mut origin = embedded_origin(raw_len, embedding);
    for (k, (system, skip, out_dim)) in blocks.enumerate() {
        let (name, input_len, output_len) = (system.name(), system.input_len(), system.output_len());
        let block = format!("block {k} ({name}: input_len {input_len}, output_len {output_len}, skip = {skip})");
        if input_len != d {
            let fix = if k == 0 {
                format!("build block 0's system with input_len {d}")
            } else {
                format!("build block {k}'s system with input_len {d}, or set block {}'s out_dim to {input_len}", k - 1)
            };
            let layer = if skip {
                format!("; with skip its affine layer would then see output_len + {d} = {} values", output_len + d)
            } else {
                String::new()
            };
            return Err(CoreError::Shape {
                context: block,
                expected: format!("input_len {d}, the width of what reaches block {k} ({origin}){layer}"),
                got: format!("input_len {input_len}; {fix}"),
            });
        }
        if out_dim == 0 {
            return Err(CoreError::config("out_dim", format!("{block}: must be at least 1, got 0")));
        }
        if output_len == 0 && !skip {
            return Err(CoreError::config(
                "skip",
                format!("{block}: a system with output_len 0 and no skip leaves the affine layer no input; set skip = true or give the system outputs"),
            ));
        }
        d = out_dim;
        origin = format!("block {k}'s out_dim; a skip does not widen what a block passes on");
    }
    Ok(())
}

impl<F: Real> Network<F> {
    /// Builds a network for raw samples of length `raw_len`, initialising every layer and
    /// prototype from `seed` (independent streams per block).
    ///
    /// # Errors
    /// [`CoreError::Config`]/[`CoreError::Shape`] when the configuration or the embedding is
    /// invalid, or the blocks break the width rule of [`BlockSpec`]: the error names the block,
    /// its system's input and output lengths, its skip flag and the two numbers that disagree.
    pub fn new(
        raw_len: usize,
        embedding: LabelEmbedding,
        config: TrainConfig,
        specs: Vec<BlockSpec<F>>,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        embedding.validate(raw_len)?;
        check_widths(raw_len, &embedding, specs.iter().map(|s| (&*s.system, s.skip, s.out_dim)))?;
        let mut layers = Vec::with_capacity(specs.len());
        let mut d = embedding.embedded_len(raw_len);
        for (k, s) in specs.iter().enumerate() {
            let u = s.system.output_len() + if s.skip { d } else { 0 };
            layers.push(LocalLayer::new(
                u,
                s.out_dim,
                config.goodness,
                &mut rng_for(seed, &format!("layer{k}")),
                &mut rng_for(seed, &format!("prototype{k}")),
            )?);
            d = s.out_dim;
        }
        let optimizers = layers.iter().map(|l| Optimizer::new(config.optimizer, l.num_params())).collect();
        let systems = specs.into_iter().map(|s| (s.system, s.skip)).collect();
        Self::from_state(raw_len, embedding, config, systems, NetworkState { layers, optimizers })
    }

    /// Assembles a network from systems and a saved state.
    ///
    /// # Errors
    /// As [`Network::new`], plus a mismatch between the state and the systems.
    pub fn from_state(
        raw_len: usize,
        embedding: LabelEmbedding,
        config: TrainConfig,
        systems: Vec<(Box<dyn PhysicalSystem<F>>, bool)>,
        state: NetworkState<F>,
    ) -> Result<Self> {
        config.validate()?;
        embedding.validate(raw_len)?;
        if systems.is_empty() {
            return Err(CoreError::config("blocks", "a network needs at least one block, got 0"));
        }
        state.validate()?;
        if state.layers.len() != systems.len() || state.optimizers.len() != systems.len() {
            return Err(CoreError::Shape {
                context: "network state".into(),
                expected: format!("{} layers and optimisers", systems.len()),
                got: format!("{} layers, {} optimisers", state.layers.len(), state.optimizers.len()),
            });
        }
        check_widths(
            raw_len,
            &embedding,
            systems.iter().zip(&state.layers).map(|((system, skip), layer)| (&**system, *skip, layer.d_out())),
        )?;
        let mut d = embedding.embedded_len(raw_len);
        let mut blocks = Vec::with_capacity(systems.len());
        for (k, ((system, skip), (layer, optimizer))) in
            systems.into_iter().zip(state.layers.into_iter().zip(state.optimizers)).enumerate()
        {
            let u = system.output_len() + if skip { d } else { 0 };
            if layer.d_in() != u {
                let skip_part = if skip { format!(" + the block input {d} (skip)") } else { String::new() };
                return Err(CoreError::Shape {
                    context: format!("block {k} layer d_in"),
                    expected: format!("{u} inputs: the system's {} outputs{skip_part}", system.output_len()),
                    got: format!("{}", layer.d_in()),
                });
            }
            if layer.goodness() != config.goodness {
                return Err(CoreError::Shape {
                    context: format!("block {k} layer goodness"),
                    expected: format!("{:?}, as configured", config.goodness),
                    got: format!("{:?}", layer.goodness()),
                });
            }
            if *optimizer.config() != config.optimizer {
                return Err(CoreError::Shape {
                    context: format!("block {k} optimiser"),
                    expected: format!("{:?}, as configured", config.optimizer),
                    got: format!("{:?}", optimizer.config()),
                });
            }
            d = layer.d_out();
            blocks.push(Block { system, skip, layer, optimizer });
        }
        Ok(Network {
            blocks,
            embedding,
            config,
            raw_len,
            counters: Counters::default(),
            stacked: Matrix::default(),
            pieces: Vec::new(),
            sys_out: Matrix::default(),
            u: Matrix::default(),
        })
    }

    /// The trained state (layers and optimiser states), for saving.
    pub fn state(&self) -> NetworkState<F> {
        NetworkState {
            layers: self.blocks.iter().map(|b| b.layer.clone()).collect(),
            optimizers: self.blocks.iter().map(|b| b.optimizer.clone()).collect(),
        }
    }

    /// Puts back a state taken from this network with [`Network::state`] (an earlier epoch's
    /// layers and optimiser moments, e.g. the best one by validation accuracy). The systems,
    /// embedding and configuration stay; the counters go on.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `state` has another number of blocks, or a layer or optimiser
    /// of other sizes than this network's (nothing is changed then).
    pub fn restore_state(&mut self, state: NetworkState<F>) -> Result<()> {
        let n = self.blocks.len();
        if state.layers.len() != n || state.optimizers.len() != n {
            return Err(CoreError::Shape {
                context: "restore_state".into(),
                expected: format!("{n} layers and {n} optimisers"),
                got: format!("{} layers and {} optimisers", state.layers.len(), state.optimizers.len()),
            });
        }
        for (k, (b, (l, o))) in self.blocks.iter().zip(state.layers.iter().zip(&state.optimizers)).enumerate() {
            let (want, got) = ((b.layer.d_in(), b.layer.d_out()), (l.d_in(), l.d_out()));
            if want != got || o.num_params() != b.optimizer.num_params() {
                return Err(CoreError::Shape {
                    context: format!("restore_state, block {k}"),
                    expected: format!(
                        "a {} -> {} layer, {} optimiser parameters",
                        want.0,
                        want.1,
                        b.optimizer.num_params()
                    ),
                    got: format!("{} -> {}, {}", got.0, got.1, o.num_params()),
                });
            }
        }
        for (b, (l, o)) in self.blocks.iter_mut().zip(state.layers.into_iter().zip(state.optimizers)) {
            b.layer = l;
            b.optimizer = o;
        }
        Ok(())
    }

    /// The layers, block by block.
    pub fn layers(&self) -> impl Iterator<Item = &LocalLayer<F>> {
        self.blocks.iter().map(|b| &b.layer)
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.embedding.num_classes()
    }

    /// The label embedding.
    pub fn embedding(&self) -> &LabelEmbedding {
        &self.embedding
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Multiplies every block's learning rate by `scale` from the next step on (a
    /// [`LrSchedule`](crate::LrSchedule) factor, set per epoch by the trainer; 1 restores the
    /// configured rate). Optimiser moments and step counts are kept.
    ///
    /// # Errors
    /// [`CoreError::Config`] unless `scale` is finite and positive.
    pub fn set_lr_scale(&mut self, scale: f64) -> Result<()> {
        self.blocks.iter_mut().try_for_each(|b| b.optimizer.set_lr_scale(scale))
    }

    /// Work done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Names of the blocks' systems.
    pub fn system_names(&self) -> Vec<String> {
        self.blocks.iter().map(|b| b.system.name()).collect()
    }

    fn check_input(&self, x: &MatRef<'_, F>, labels: Option<&[usize]>) -> Result<()> {
        if x.cols() != self.raw_len {
            return Err(CoreError::Shape {
                context: "network input".into(),
                expected: format!("{} features per sample", self.raw_len),
                got: format!("{}", x.cols()),
            });
        }
        if let Some((row, col, value)) = x.find_non_finite() {
            return Err(CoreError::config(
                "input data",
                format!("non-finite value {value} at row {row}, column {col}; clean or impute the data"),
            ));
        }
        self.embedding.check_reserved(*x)?;
        labels.map_or(Ok(()), |labels| self.check_labels(x.rows(), labels))
    }

    /// One label in `0..K` per sample.
    fn check_labels(&self, rows: usize, labels: &[usize]) -> Result<()> {
        if labels.len() != rows {
            return Err(CoreError::Shape {
                context: "labels".into(),
                expected: format!("{rows} labels"),
                got: format!("{}", labels.len()),
            });
        }
        let k = self.num_classes();
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
            return Err(CoreError::Label { label, row, num_classes: k });
        }
        Ok(())
    }

    /// Queries block `k`'s system on `h` and forms its layer input in `u` (with the skip when
    /// configured), reusing the network's buffers: take `u` from `self.u` and give it back.
    fn physical_input(&mut self, k: usize, h: &Matrix<F>, u: &mut Matrix<F>) -> Result<()> {
        let block = &mut self.blocks[k];
        // The system writes straight into `u` unless the skip must follow its output.
        let p = if block.skip { &mut self.sys_out } else { &mut *u };
        p.resize(h.rows(), block.system.output_len());
        // Zeroed, so that a system that leaves an entry unwritten cannot pass on stale values.
        p.data_mut().fill(F::zero());
        block.system.forward_batch(h.view(), p.view_mut())?;
        if block.system.is_physical() {
            self.counters.physical_queries += h.rows() as u64;
        }
        if let Some((row, col, value)) = p.find_non_finite() {
            return Err(CoreError::System(crate::error::SystemError::NonFinite {
                system: block.system.name(),
                what: "output",
                row,
                col,
                value,
            }));
        }
        if block.skip {
            hcat_into(self.sys_out.view(), h.view(), u)?;
        }
        Ok(())
    }

    /// Block `k`'s layer on `u` (its physical output, with the skip when configured), its FLOPs
    /// counted, into `h` as the block passes it on ([`PassOn`]); with `goodness`, the goodness
    /// of every row of the layer's output before it is passed on.
    fn layer_pass(&mut self, k: usize, u: &Matrix<F>, h: &mut Matrix<F>, goodness: Option<&mut Vec<F>>) {
        let layer = &self.blocks[k].layer;
        layer.forward(u.view(), h);
        if let Some(g) = goodness {
            layer.goodness_batch(h.view(), g);
        }
        self.counters.digital_flops += layer.flops_forward(u.rows());
        *h = self.pass_on(k, std::mem::take(h));
    }

    /// Block `k` on its input `h`, in place: the system queried (and counted), the layer, the
    /// output passed on ([`Network::layer_pass`]).
    fn block_forward(&mut self, k: usize, h: &mut Matrix<F>, goodness: Option<&mut Vec<F>>) -> Result<()> {
        let mut u = std::mem::take(&mut self.u);
        self.physical_input(k, h, &mut u)?;
        self.layer_pass(k, &u, h, goodness);
        self.u = u;
        Ok(())
    }

    fn pass_on(&self, k: usize, z: Matrix<F>) -> Matrix<F> {
        match self.config.pass_on {
            PassOn::Raw => z,
            PassOn::Normalized => {
                let act = self.blocks[k].layer.goodness().activation();
                let mut z = z;
                for i in 0..z.rows() {
                    let r = z.row_mut(i);
                    let mut s = F::zero();
                    for v in r.iter_mut() {
                        *v = act.apply(*v);
                        s += *v * *v;
                    }
                    let inv = F::one() / (s.sqrt() + F::c(1e-4));
                    r.iter_mut().for_each(|v| *v *= inv);
                }
                z
            }
        }
    }

    /// Trains on one mini-batch of raw samples `x` (`n x raw_len`) with labels `labels` (each
    /// in `0..K`): a wrong label per sample is drawn from `rng` (per
    /// [`TrainConfig::negatives`]), then every block, in order, queries its system once on the
    /// positives and negatives and takes [`TrainConfig::n_inner`] optimiser steps.
    /// [`Network::fit`] runs the epochs of mini-batches for you.
    ///
    /// # Examples
    /// ```
    /// use ff_core::rng::rng_for;
    /// use ff_core::{BlockSpec, Identity, LabelEmbedding, Matrix, Network, PhysicalSystem, TrainConfig};
    ///
    /// // Two features, two classes: the larger feature is the label.
    /// let x = Matrix::from_fn(8, 2, |i, c| if c == i % 2 { 1.0f32 } else { 0.1 });
    /// let y: Vec<usize> = (0..8).map(|i| i % 2).collect();
    /// // Labels are prepended (2 + 2 values); one digital block (an identity "system").
    /// let embedding = LabelEmbedding::Prepend { num_classes: 2 };
    /// let system: Box<dyn PhysicalSystem<f32>> = Box::new(Identity::new(4));
    /// let block = BlockSpec { system, skip: false, out_dim: 6 };
    /// let mut net = Network::new(2, embedding, TrainConfig::default(), vec![block], 0)?;
    /// let stats = net.train_batch(x.view(), &y, &mut rng_for(0, "negatives"))?;
    /// assert_eq!(stats.block_loss.len(), 1);
    /// assert!(stats.block_loss[0].is_finite());
    /// # Ok::<(), ff_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// Shape/label errors, non-finite inputs, [`LabelEmbedding::Overwrite`] on samples that
    /// did not reserve the label slots, a failing physical system, or [`CoreError::Diverged`]
    /// if the loss becomes non-finite.
    pub fn train_batch(&mut self, x: MatRef<'_, F>, labels: &[usize], rng: &mut Rng) -> Result<BatchStats> {
        self.check_input(&x, Some(labels))?;
        let neg = match self.config.negatives {
            NegativeMode::Random => random_wrong_labels(labels, self.num_classes(), rng),
            // The scores of an input checked above (each batch is validated once).
            NegativeMode::Hardest => {
                let s = crate::pool::run_awake(|| self.scores_in_pool(x, 0))?;
                hardest_wrong_labels(labels, s.view())
            }
            NegativeMode::Sampled => {
                let s = crate::pool::run_awake(|| self.scores_in_pool(x, 0))?;
                sampled_wrong_labels(labels, s.view(), self.config.negative_temperature, rng)
            }
        };
        let mut hp = Matrix::zeros(0, 0);
        let mut hn = Matrix::zeros(0, 0);
        self.embedding.embed(x, labels, self.config.label_value, &mut hp)?;
        self.embedding.embed(x, &neg, self.config.label_value, &mut hn)?;
        self.train_blocks(hp, hn)
    }

    /// Trains for `plan.epochs` epochs of mini-batches on raw samples `x` (`n x raw_len`)
    /// with labels `labels`: the epoch loop of ff-train's trainer, without its data sets.
    /// Epoch `e` (from 1) visits the samples in the order
    /// [`crate::rng::epoch_order`]`(n, plan.seed, e)` (all of them in their own order when the
    /// batch is the whole set), cuts it into mini-batches of `plan.batch_size`, and trains each
    /// with [`Network::train_batch`], the negative labels drawn from the stream
    /// `rng_for(plan.seed, "negatives/{e}")`; for the same network, data and plan this gives
    /// the same bits as `ff_train::trainer::fit` with a constant learning rate.
    ///
    /// `on_epoch` is called after every epoch with the network and the epoch's
    /// [`EpochReport`]: measure accuracy there (on held-out data), print progress, or change
    /// the learning rate for the next epoch ([`Network::set_lr_scale`]); an error it returns
    /// stops training and is returned. Evaluating in the callback does not change what is
    /// trained (every epoch has its own random streams). Returns the reports of all epochs.
    ///
    /// # Examples
    /// ```
    /// use ff_core::{BlockSpec, FitPlan, Identity, LabelEmbedding, Matrix, Network, PhysicalSystem, TrainConfig};
    ///
    /// // Three classes in three features: feature `y` is large for class `y`.
    /// let x = Matrix::from_fn(60, 3, |i, c| if c == i % 3 { 1.0f32 } else { 0.05 * (i % 7) as f32 });
    /// let y: Vec<usize> = (0..60).map(|i| i % 3).collect();
    /// let embedding = LabelEmbedding::Prepend { num_classes: 3 };
    /// let d = embedding.embedded_len(3); // 3 label entries + 3 features
    /// let system: Box<dyn PhysicalSystem<f32>> = Box::new(Identity::new(d));
    /// let config = TrainConfig { optimizer: ff_core::OptimizerConfig::adam(0.02), ..TrainConfig::default() };
    /// let mut net = Network::new(3, embedding, config, vec![BlockSpec { system, skip: false, out_dim: 8 }], 0)?;
    /// let plan = FitPlan { epochs: 10, batch_size: 16, seed: 0 };
    /// let reports = net.fit(x.view(), &y, plan, |net, report| {
    ///     let accuracy = net.accuracy(x.view(), &y)?;
    ///     assert_eq!(report.batches, 4); // 16 + 16 + 16 + 12 samples
    ///     println!("epoch {}: loss {:?}, accuracy {accuracy:.3}", report.epoch, report.loss);
    ///     Ok(())
    /// })?;
    /// assert_eq!(reports.len(), 10);
    /// assert!(net.accuracy(x.view(), &y)? > 0.9);
    /// # Ok::<(), ff_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`CoreError::Config`] for `plan.epochs == 0` or no samples; everything
    /// [`Network::train_batch`] can fail with, checked on all of `x` before the first batch
    /// (shapes, labels, non-finite values, unreserved label slots); errors of `on_epoch`.
    pub fn fit(
        &mut self,
        x: MatRef<'_, F>,
        labels: &[usize],
        plan: FitPlan,
        mut on_epoch: impl FnMut(&mut Self, &EpochReport) -> Result<()>,
    ) -> Result<Vec<EpochReport>> {
        if plan.epochs == 0 {
            return Err(CoreError::config("epochs", "must be at least 1, got 0"));
        }
        let n = x.rows();
        if n == 0 {
            return Err(CoreError::config("training data", "no samples (0 rows); give at least one sample"));
        }
        self.check_input(&x, Some(labels))?;
        let rule = crate::rng::MiniBatches::new(n, plan.batch_size, plan.seed);
        let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::with_capacity(rule.size()));
        let mut reports = Vec::with_capacity(plan.epochs);
        for epoch in 1..=plan.epochs {
            let mut rng = rng_for(plan.seed, &format!("negatives/{epoch}"));
            let mut loss = vec![0.0; self.num_blocks()];
            let mut batches = 0;
            let mut add = |stats: BatchStats| {
                loss.iter_mut().zip(&stats.block_loss).for_each(|(s, l)| *s += l);
                batches += 1;
            };
            if rule.size() == n {
                add(self.train_batch(x, labels, &mut rng)?);
            } else {
                let order = rule.order(epoch as u64);
                for idx in rule.split(&order) {
                    xb.resize(idx.len(), x.cols());
                    yb.clear();
                    for (r, &i) in idx.iter().enumerate() {
                        xb.row_mut(r).copy_from_slice(x.row(i));
                        yb.push(labels[i]);
                    }
                    add(self.train_batch(xb.view(), &yb, &mut rng)?);
                }
            }
            let report = EpochReport {
                epoch,
                loss: loss.iter().map(|s| s / batches as f64).collect(),
                batches,
                counters: self.counters,
            };
            on_epoch(self, &report)?;
            reports.push(report);
        }
        Ok(reports)
    }

    /// Trains on one mini-batch without labels (unsupervised forward-forward): positives
    /// `x_pos` are real raw samples, negatives `x_neg` are samples that should score low (e.g.
    /// [`crate::hybrid::HybridNegatives`]), both `n x raw_len` and paired row by row by the
    /// loss. The label slots stay blank (every label entry or band written with 0), so the
    /// network has the same shape as in supervised mode; the block schedule is the one of
    /// [`Network::train_batch`]. Nothing random happens here: the negatives carry the
    /// randomness.
    ///
    /// # Errors
    /// Shape errors (including `x_neg` with a different number of rows than `x_pos`),
    /// non-finite inputs, a failing physical system, or [`CoreError::Diverged`].
    pub fn train_batch_unsupervised(&mut self, x_pos: MatRef<'_, F>, x_neg: MatRef<'_, F>) -> Result<BatchStats> {
        self.check_input(&x_pos, None)?;
        self.check_input(&x_neg, None)?;
        if x_neg.rows() != x_pos.rows() {
            return Err(CoreError::Shape {
                context: "unsupervised negatives".into(),
                expected: format!("{} negatives, one per positive", x_pos.rows()),
                got: format!("{}", x_neg.rows()),
            });
        }
        let hp = self.embed_blank(x_pos)?;
        let hn = self.embed_blank(x_neg)?;
        self.train_blocks(hp, hn)
    }

    /// Embeds `x` with blank labels: label value 0 (all label entries or bands zero).
    fn embed_blank(&self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        let mut h = Matrix::zeros(0, 0);
        self.embedding.embed_with_value(x, &vec![0; x.rows()], F::zero(), &mut h)?;
        Ok(h)
    }

    /// The PhyLL block schedule on embedded positives `hp` and negatives `hn` (same rows):
    /// for each block, query its system once on both (stacked), take `n_inner` optimiser steps with the
    /// physical outputs held fixed, then pass the detached outputs on.
    fn train_blocks(&mut self, hp: Matrix<F>, hn: Matrix<F>) -> Result<BatchStats> {
        // The schedule runs on a thread of rayon's pool: the products and simulators it calls
        // split their work over the pool, and a split requested from inside the pool costs
        // about a microsecond, against about 17 us (a cold hand-off) from any other thread
        // (measured on a 2-core machine). A second pool thread stays awake to take
        // the splits (`crate::pool`).
        crate::pool::run_awake(|| self.train_blocks_in_pool(hp, hn))
    }

    fn train_blocks_in_pool(&mut self, hp: Matrix<F>, hn: Matrix<F>) -> Result<BatchStats> {
        let n = hp.rows();
        // Positives and negatives travel stacked, piece by piece (see `pieces`): one physical
        // query of 2n rows per block instead of two of n, in the layout the inner steps take.
        let mut h = std::mem::take(&mut self.stacked);
        stack_pieces_into(hp.view(), hn.view(), &mut h);
        drop((hp, hn));
        let cuts = pieces(n);
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.resize_with(cuts.len(), PieceWork::default);
        let mut block_loss = Vec::with_capacity(self.blocks.len());
        for k in 0..self.blocks.len() {
            let mut u = std::mem::take(&mut self.u);
            self.physical_input(k, &h, &mut u)?;
            let num_params = self.blocks[k].layer.num_params();
            // Every inner step reads each piece's U^T: transposed once here.
            for (&(a, b), piece) in cuts.iter().zip(pieces.iter_mut()) {
                transpose_into(u.view().slice_rows(2 * a, 2 * b), &mut piece.ut);
                piece.grad.resize(num_params, F::zero());
            }
            let loss = self.config.loss;
            let inv_n = F::one() / F::from_usize(n.max(1)).unwrap();
            let two_pieces = cuts[1].0 < cuts[1].1;
            let mut total = 0.0;
            for _ in 0..self.config.n_inner {
                let block = &mut self.blocks[k];
                let layer = &block.layer;
                let run = |&(a, b): &(usize, usize), piece: &mut PieceWork<F>| -> F {
                    let u = u.view().slice_rows(2 * a, 2 * b);
                    layer.loss_and_grad_part(&loss, u, piece.ut.view(), n.max(1), &mut piece.ws, &mut piece.grad)
                };
                let (first, second) = pieces.split_at_mut(1);
                // The step's gradient collects in the first piece's buffer (each inner step
                // overwrites it again).
                let sum = if two_pieces {
                    let (s0, s1) = rayon::join(|| run(&cuts[0], &mut first[0]), || run(&cuts[1], &mut second[0]));
                    for (g, &g1) in first[0].grad.iter_mut().zip(&second[0].grad) {
                        *g += g1;
                    }
                    s0 + s1
                } else {
                    run(&cuts[0], &mut first[0])
                };
                let grad = &first[0].grad;
                let l = (sum * inv_n).to_f64().unwrap_or(f64::NAN);
                if !l.is_finite() || grad.iter().any(|g| !g.is_finite()) {
                    self.pieces = pieces;
                    return Err(CoreError::Diverged { what: format!("loss of block {k}") });
                }
                block.optimizer.step(block.layer.params_mut(), grad);
                total += l;
                self.counters.digital_flops +=
                    block.layer.flops_loss_and_grad(n) + block.optimizer.config().flops_per_step(grad.len());
            }
            block_loss.push(total / self.config.n_inner as f64);
            self.layer_pass(k, &u, &mut h, None);
            self.u = u;
        }
        self.stacked = h;
        self.pieces = pieces;
        Ok(BatchStats { block_loss })
    }

    /// Width of [`Network::activities`]: the sum of the blocks' output sizes.
    pub fn activity_len(&self) -> usize {
        self.blocks.iter().map(|b| b.layer.d_out()).sum()
    }

    /// The block activities of raw samples `x` (`n x raw_len`) with blank labels (label value
    /// 0, as in [`Network::train_batch_unsupervised`]): an `n x activity_len()` matrix whose
    /// row `i` concatenates, block by block, what each block passes on for sample `i` (raw `z`
    /// or its normalised activation, per [`PassOn`]). These are the features of a linear
    /// read-out. Each block's system is queried once per sample (counted in
    /// [`Network::counters`], as are the FLOPs); samples are processed in chunks of 4096 rows,
    /// which does not change the result (every step is per sample).
    ///
    /// # Errors
    /// Shape errors, non-finite inputs, or a failing physical system.
    pub fn activities(&mut self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        // On a thread of rayon's pool, as in `train_blocks`.
        crate::pool::run_awake(|| self.activities_in_pool(x))
    }

    fn activities_in_pool(&mut self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        self.check_input(&x, None)?;
        let n = x.rows();
        let width = self.activity_len();
        let mut out = Matrix::zeros(n, width);
        let chunk = 4096;
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let mut h = self.embed_blank(x.slice_rows(start, end))?;
            let mut col = 0;
            for b in 0..self.blocks.len() {
                self.block_forward(b, &mut h, None)?;
                for i in 0..end - start {
                    out.row_mut(start + i)[col..col + h.cols()].copy_from_slice(h.row(i));
                }
                col += h.cols();
            }
            start = end;
        }
        Ok(out)
    }

    /// Summed goodness over blocks for every candidate label: an `n x K` matrix.
    ///
    /// All candidate labels of a chunk of samples are stacked into one batch, so each block's
    /// system is queried once per chunk. The label value (for [`LabelValue::BatchMaxAbs`]) is
    /// taken over the whole `x`, so the result does not depend on the chunking.
    ///
    /// # Errors
    /// Shape errors or a failing physical system.
    pub fn scores(&mut self, x: MatRef<'_, F>) -> Result<Matrix<F>> {
        self.scores_from(x, 0)
    }

    /// [`Network::scores`] summing the goodness of blocks `first_block..` only: every block
    /// still runs (the earlier ones feed the later ones), but the goodness of blocks before
    /// `first_block` is not counted. `first_block = 0` is [`Network::scores`], bit for bit;
    /// Hinton (2022) classifies MNIST by the goodness of all but the first hidden layer (1).
    ///
    /// # Errors
    /// As [`Network::scores`], and [`CoreError::Config`] if `first_block` is not a block index.
    pub fn scores_from(&mut self, x: MatRef<'_, F>, first_block: usize) -> Result<Matrix<F>> {
        if first_block >= self.blocks.len() {
            return Err(CoreError::config(
                "first scored block",
                format!(
                    "must name one of the {} blocks (0 to {}), got {first_block}",
                    self.blocks.len(),
                    self.blocks.len().saturating_sub(1)
                ),
            ));
        }
        self.check_input(&x, None)?;
        // On a thread of rayon's pool, as in `train_blocks`.
        crate::pool::run_awake(|| self.scores_in_pool(x, first_block))
    }

    /// [`Network::scores_from`] on an input already checked by the caller.
    fn scores_in_pool(&mut self, x: MatRef<'_, F>, first_block: usize) -> Result<Matrix<F>> {
        let k = self.num_classes();
        let value = match self.config.label_value {
            LabelValue::BatchMaxAbs => x.data().iter().fold(F::zero(), |m, v| m.max(v.abs())),
            LabelValue::Fixed { value } => F::c(value),
        };
        let n = x.rows();
        let mut scores = Matrix::zeros(n, k);
        let chunk = (4096 / k).max(1);
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let xc = x.slice_rows(start, end);
            let rows = end - start;
            // Stack: row i*K + c holds sample i with label c.
            let idx: Vec<usize> = (0..rows).flat_map(|i| std::iter::repeat_n(i, k)).collect();
            let labels: Vec<usize> = (0..rows).flat_map(|_| 0..k).collect();
            let stacked = xc.to_owned().select_rows(&idx);
            let mut h = Matrix::zeros(0, 0);
            self.embedding.embed_with_value(stacked.view(), &labels, value, &mut h)?;
            let mut total = vec![F::zero(); rows * k];
            let mut g = Vec::new();
            for b in 0..self.blocks.len() {
                self.block_forward(b, &mut h, Some(&mut g))?;
                if b >= first_block {
                    for (t, gi) in total.iter_mut().zip(&g) {
                        *t += *gi;
                    }
                }
            }
            for i in 0..rows {
                scores.row_mut(start + i).copy_from_slice(&total[i * k..(i + 1) * k]);
            }
            start = end;
        }
        Ok(scores)
    }

    /// Predicted labels: argmax over candidate labels of the summed goodness.
    ///
    /// # Errors
    /// As [`Network::scores`].
    pub fn predict(&mut self, x: MatRef<'_, F>) -> Result<Vec<usize>> {
        let s = self.scores(x)?;
        Ok((0..s.rows()).map(|i| argmax(s.row(i))).collect())
    }

    /// Fraction of correctly predicted labels.
    ///
    /// # Errors
    /// As [`Network::scores`], plus label errors.
    pub fn accuracy(&mut self, x: MatRef<'_, F>, labels: &[usize]) -> Result<f64> {
        self.accuracy_from(x, labels, 0)
    }

    /// [`Network::accuracy`] with predictions from [`Network::scores_from`]`(x, first_block)`.
    ///
    /// # Errors
    /// As [`Network::scores_from`], plus label errors.
    pub fn accuracy_from(&mut self, x: MatRef<'_, F>, labels: &[usize], first_block: usize) -> Result<f64> {
        // The samples are checked by `scores_from`.
        self.check_labels(x.rows(), labels)?;
        let s = self.scores_from(x, first_block)?;
        if labels.is_empty() {
            return Ok(0.0);
        }
        let correct = (0..s.rows()).filter(|&i| argmax(s.row(i)) == labels[i]).count();
        Ok(correct as f64 / labels.len() as f64)
    }
}

/// Index of the largest value (the first one on ties; NaN never wins).
pub fn argmax<F: Real>(row: &[F]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests;
