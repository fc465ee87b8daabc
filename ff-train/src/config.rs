//! The experiment configuration: defaults, then a TOML file, then command-line flags.

use crate::systems::kinds::SampleShape;
use anyhow::{bail, Result};
use ff_core::{
    Activation, Goodness, Loss, LrSchedule, NegativeMode, OptimizerConfig, PassOn, ReadoutConfig, TrainConfig,
};
use ff_physics::optics::OpticsConfig;
use ff_physics::{AcousticConfig, FiberConfig, FreeSpaceConfig, MicrowaveConfig};
use serde::{Deserialize, Serialize};

/// Numerical precision of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (default).
    #[default]
    F32,
    /// 64-bit floats.
    F64,
}

/// Which physical system every block queries. Everything else about a kind (its checks,
/// defaults, builders, memory, FLOPs and energy) is its entry in the table of kinds,
/// [`crate::systems::kinds`]: [`SystemKind::spec`], [`SystemKind::builder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// Multimode optical medium: SLM -> transmission matrix -> camera (`ff_physics::optics`).
    #[default]
    Optics,
    /// Reverberating microwave cavity with a programmable metasurface (`ff_physics::microwave`).
    Microwave,
    /// Chaotic acoustic cavity with nonlinear membrane scatterers (`ff_physics::acoustic`).
    Acoustic,
    /// Free-space diffractive stack: SLM, phase masks, angular-spectrum propagation, camera
    /// (`ff_physics::freespace`).
    Freespace,
    /// Nonlinear fibre: spectral-phase encoding, split-step NLSE, binned spectrum (`ff_physics::fiber`).
    Fiber,
    /// An external device process (hardware in the loop) reached as configured in `[device]`
    /// (`ff_physics::device`).
    Device,
    /// A digital emulator of a physical layer: an MLP fitted to measured input/output pairs
    /// as configured in `[emulator]` (the public PhyLL code's acoustic emulator); its queries
    /// stand for the hardware's and are counted as physical.
    Emulator,
    /// No physical system: every block is its digital affine map alone (digital-only
    /// forward-forward, e.g. the paper's Fashion-MNIST demo or Hinton's original FF).
    Digital,
}

impl SystemKind {
    /// Every kind, in declaration order (the order of `--help`). Everything else about a kind
    /// is its entry in the table of kinds, [`crate::systems::kinds`].
    pub const ALL: [SystemKind; 8] = [
        SystemKind::Optics,
        SystemKind::Microwave,
        SystemKind::Acoustic,
        SystemKind::Freespace,
        SystemKind::Fiber,
        SystemKind::Device,
        SystemKind::Emulator,
        SystemKind::Digital,
    ];

    /// The name used on the command line and in files (its table entry's
    /// [`name`](crate::systems::SystemKindSpec::name)).
    pub fn name(self) -> &'static str {
        self.spec().name()
    }
}

// `SystemKind::ALL` lists the variants in declaration order, without a gap: a variant added in
// the middle of the enum but not to `ALL` fails here (one added at the end, in the tests of the
// table, which compare `ALL` with the variants clap lists).
const _: () = {
    let mut i = 0;
    while i < SystemKind::ALL.len() {
        assert!(SystemKind::ALL[i] as usize == i, "SystemKind::ALL is not in declaration order");
        i += 1;
    }
};

/// The system `phyff train` uses when neither `--system` nor the configuration file names one,
/// chosen by the shape of the data's samples: the kind whose table entry claims that shape
/// ([`SystemKindSpec::default_for`](crate::systems::SystemKindSpec::default_for)). That is the
/// optical system for images (`digits`, `mnist`, `fashion`: 2-D samples placed on its SLM) and
/// the microwave cavity for vectors (`vowels`, `csv:` tables: 1-D samples resampled onto its
/// input channels). Measured with the other settings at their defaults, the optical system puts
/// a 64-feature vector through at 0.80 test accuracy where the cavity reaches 0.97 (the 8x8
/// digits as a CSV table; the 5-nearest-neighbour reference: 0.98), see docs/tabular.md. A data
/// spec that does not parse counts as images (its own error comes when the data are loaded).
pub fn default_system_for(data: &str) -> SystemKind {
    let shape = match data.parse::<ff_data::DataSpec>() {
        Ok(ff_data::DataSpec::BuiltinVowels | ff_data::DataSpec::Vowels(_) | ff_data::DataSpec::Csv { .. }) => {
            SampleShape::Vector
        }
        _ => SampleShape::Image,
    };
    SystemKind::ALL.into_iter().find(|k| k.spec().default_for() == Some(shape)).unwrap_or_default()
}

/// The local objective: PhyLL's cosine goodness with the SymBa loss, or Hinton's original
/// sum-of-squares goodness with a threshold and layer-normalised pass-on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// `g = cos(|z|, xi)`, `L = softplus(-alpha (g+ - g-))`, raw `z` passed on.
    #[default]
    Phyll,
    /// `g = mean(relu(z)^2)` (or the sum, see `squares`), `L = softplus(theta - g+) +
    /// softplus(g- - theta)`, normalised pass-on.
    Hinton,
}

/// The goodness of the Hinton objective: mean or sum of the squared rectified outputs (both are
/// in use; Hinton's code uses the sum with the threshold at the layer width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Squares {
    /// `g = mean_i relu(z_i)^2`.
    #[default]
    Mean,
    /// `g = sum_i relu(z_i)^2`.
    Sum,
}

impl Squares {
    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Squares::Mean => "mean",
            Squares::Sum => "sum",
        }
    }
}

/// How the blocks are trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Labels written into the inputs: positives carry the true label, negatives a wrong one;
    /// prediction by summed goodness over the candidate labels (PhyLL).
    #[default]
    Supervised,
    /// No labels during forward-forward training: positives are real samples with blank label
    /// slots, negatives are hybrids of two real samples (`ff_core::hybrid`); then a linear
    /// softmax read-out is fitted on the block activities of the training set (`ff_core::readout`).
    Unsupervised,
}

impl Mode {
    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Supervised => "supervised",
            Mode::Unsupervised => "unsupervised",
        }
    }
}

/// Everything that defines a training run. Field names are the TOML keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Seed of every random choice (split, weights, prototypes, negatives, the medium).
    pub seed: u64,
    /// `f32` or `f64`.
    pub precision: Precision,
    /// Dataset: `digits` (built in), `vowels` (built in) or `vowels:FILE`, `mnist[:DIR]`,
    /// `fashion[:DIR]`, `csv:FILE[#label=NAME|INDEX][#delim=;|tab]`.
    pub data: String,
    /// The physical system of every block.
    pub system: SystemKind,
    /// Number of blocks.
    pub blocks: usize,
    /// Output size of each block's affine map. For optics, a perfect square (the next block's
    /// input is shown on the SLM as a square image).
    pub hidden: usize,
    /// Concatenate each block's input after the physical output; `None` = the system's default
    /// (optics and free space: no skip; microwave and acoustic: skip, as in the paper; fibre: skip).
    pub skip: Option<bool>,
    /// Training epochs.
    pub epochs: usize,
    /// Mini-batch size; 0 = the full training set.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// How the learning rate changes over the epochs: `constant`, or `linear-decay` (Hinton's
    /// code: constant for the first half, then linearly down to `lr / epochs` in the last epoch).
    pub lr_schedule: LrSchedule,
    /// Decoupled weight decay of the blocks' Adam (AdamW): every step multiplies each
    /// parameter by `1 - lr x weight_decay`. 0 (the default) is the paper's plain Adam; Hinton's
    /// code shrinks weights by 1e-5 per step, `weight_decay = 0.01` at `lr = 1e-3`.
    pub weight_decay: f64,
    /// Optimiser steps per block per mini-batch, physical outputs held fixed.
    pub n_inner: usize,
    /// SymBa sharpness (PhyLL objective).
    pub alpha: f64,
    /// Goodness threshold (Hinton objective).
    pub theta: f64,
    /// Mean or sum of squares as the goodness of the Hinton objective (absent: `mean`; only
    /// with `objective = "hinton"`). With `sum`, a threshold near the layer width (Hinton's
    /// code: `theta = hidden`) plays the part of `theta = 1` with the mean.
    pub squares: Option<Squares>,
    /// Local objective.
    pub objective: Objective,
    /// How negative labels are chosen (supervised mode; unsupervised mode uses hybrid negatives):
    /// `random` (the paper), `hardest` (the best-scoring wrong label) or `sampled` (a wrong label
    /// drawn from the softmax of the network's own scores, as Hinton's code draws it from its
    /// predictions).
    pub negatives: NegativeMode,
    /// Temperature of `negatives = "sampled"`, in goodness units (absent: 1; only with
    /// `sampled`). With the Hinton objective, 1 makes the summed goodness the log-odds.
    pub negative_temperature: Option<f64>,
    /// `supervised` (labels in the inputs) or `unsupervised` (hybrid negatives without labels,
    /// then a linear read-out on the block activities).
    pub mode: Mode,
    /// Epochs of the linear read-out fitted after unsupervised training (Adam, mini-batches of
    /// 128 standardised activity vectors).
    pub readout_epochs: usize,
    /// Blur passes of the hybrid-negative masks (unsupervised mode; Hinton's recipe: 6).
    pub blur_passes: usize,
    /// In unsupervised mode, also train the supervised network (same seed, data and epochs)
    /// and print it beside the unsupervised one.
    pub supervised_baseline: bool,
    /// Rows of the label band above and below an image (at least the number of classes).
    pub band_rows: usize,
    /// Evaluate accuracy every this many epochs.
    pub eval_every: usize,
    /// Also train the physics-removed ablation for comparison (in the run's mode).
    pub ablation: bool,
    /// Measure train accuracy after the last epoch (costs `K x L` queries per training sample).
    pub train_eval: bool,
    /// Optical system parameters (used when `system = "optics"`). `input_shape` and
    /// `placement` are set per block by the runner (block 1: the labelled image tiled; later
    /// blocks: the previous output as a square image, upsampled to fill the field); the medium
    /// (`seed`) is the same device for every block and does not change with the training seed.
    pub optics: OpticsConfig,
    /// Microwave cavity parameters (used when `system = "microwave"`). Each block's input is
    /// resampled onto the cavity's `n_inputs` channels (`ff_physics::adapt`); every block
    /// queries the same cavity.
    pub microwave: MicrowaveConfig,
    /// Acoustic cavity parameters (used when `system = "acoustic"`). Each block's input is
    /// resampled onto the cavity's `n_tones` channels; every block queries the same cavity.
    pub acoustic: AcousticConfig,
    /// Free-space parameters (used when `system = "freespace"`). `input_shape` and `placement`
    /// are set per block as for optics.
    pub freespace: FreeSpaceConfig,
    /// Fibre parameters (used when `system = "fiber"`). Each block's input is resampled onto the
    /// fibre's `input_len` spectral channels.
    pub fiber: FiberConfig,
    /// How to reach the external device (used when `system = "device"`).
    pub device: DeviceSettings,
    /// The measured pairs and fit of the emulator (used when `system = "emulator"`).
    pub emulator: EmulatorSettings,
    /// Standardise CSV features with the training split's mean and standard deviation
    /// ([`crate::standardize`]; constant features are dropped). Other data keep their own
    /// preprocessing.
    pub standardize: bool,
    /// Carve a validation split (`validation_fraction` of the training split, stratified,
    /// seeded) and keep the network of the epoch with the best validation accuracy (the
    /// latest on ties), for the PNN and its ablation alike; supervised mode only. The test
    /// split plays no part in the choice.
    pub keep_best: bool,
    /// Share of the training split carved out for validation when `keep_best` is set, in
    /// `(0, 0.5]`.
    pub validation_fraction: f64,
    /// With an output directory: write `checkpoint.json` at most once per this many seconds of
    /// training, after the last epoch, and when training stops on an error (then with the last
    /// completed epoch). 0 writes one after every epoch. Seconds, finite and `>= 0`.
    pub checkpoint_every: f64,
    /// Use only the first this many training samples (reduced runs; `None`: all).
    pub train_limit: Option<usize>,
    /// Use only the first this many test samples (reduced runs; `None`: all).
    pub test_limit: Option<usize>,
}

/// The emulator of `system = "emulator"`: one MLP fitted to measured pairs (rows of two CSV
/// files, no header), shared by every block (one device reused, as in the paper's acoustic
/// experiment). Inputs and outputs are in the units of the measurements; each block's input is
/// resampled onto the emulator's input width as for the cavity simulators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorSettings {
    /// CSV of the inputs sent to the hardware (one row per measurement). With `outputs`, both
    /// or neither: neither means the measured acoustic pairs built into ff-data
    /// ([`ff_data::builtin_acoustic_pairs`], 10 001 pairs of 20 -> 20).
    pub inputs: Option<std::path::PathBuf>,
    /// CSV of the outputs measured for each input, row for row (see `inputs`).
    pub outputs: Option<std::path::PathBuf>,
    /// The fit (the public code's acoustic emulator: 20 -> 100 -> 200 -> 100 -> 20, SiLU).
    pub twin: crate::baselines::TwinConfig,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        EmulatorSettings {
            inputs: None,
            outputs: None,
            twin: crate::baselines::TwinConfig {
                hidden: vec![100, 200, 100],
                epochs: 30,
                ..crate::baselines::TwinConfig::default()
            },
        }
    }
}

/// How `system = "device"` reaches the external device of each block (see
/// `ff_physics::device` for the protocol). Exactly one of `command` and `tcp` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    /// Command line that starts a device speaking the protocol on stdin/stdout, one child per
    /// block; `{block}` (from 0), `{rows}` and `{cols}` (the block's input shape) are replaced,
    /// e.g. `"phyff-device --stdio --system optics --block {block} --input-shape {rows}x{cols}"`.
    pub command: Option<String>,
    /// TCP addresses of running devices: one for every block, or one per block separated by commas.
    pub tcp: Option<String>,
    /// Time allowed for one request, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts per request; the connection is re-established (the child restarted) between attempts.
    pub attempts: u32,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings { command: None, tcp: None, timeout_ms: 30_000, attempts: 3 }
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            seed: 0,
            precision: Precision::F32,
            data: "digits".into(),
            system: SystemKind::default(),
            blocks: 2,
            hidden: 256,
            skip: None,
            epochs: 20,
            batch_size: 256,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            n_inner: 10,
            alpha: 5.0,
            theta: 2.0,
            squares: None,
            objective: Objective::Phyll,
            negatives: NegativeMode::Random,
            negative_temperature: None,
            mode: Mode::Supervised,
            readout_epochs: 50,
            blur_passes: ff_core::hybrid::DEFAULT_BLUR_PASSES,
            supervised_baseline: true,
            band_rows: 10,
            eval_every: 5,
            ablation: true,
            train_eval: true,
            optics: OpticsConfig::default(),
            microwave: MicrowaveConfig::default(),
            acoustic: AcousticConfig::default(),
            freespace: FreeSpaceConfig::default(),
            fiber: FiberConfig::default(),
            device: DeviceSettings::default(),
            emulator: EmulatorSettings::default(),
            standardize: true,
            keep_best: false,
            validation_fraction: 0.1,
            checkpoint_every: 30.0,
            train_limit: None,
            test_limit: None,
        }
    }
}

impl ExperimentConfig {
    /// Parses a TOML configuration; missing keys take their defaults, unknown keys are errors.
    ///
    /// # Errors
    /// TOML syntax errors and unknown keys, with the location.
    pub fn from_toml(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// The configuration as TOML (all keys, defaults included).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration always serialises")
    }

    /// Whether blocks use the skip connection: `skip`, or when unset the system's default
    /// ([`SystemKindSpec::default_skip`](crate::systems::SystemKindSpec::default_skip)).
    pub fn skip(&self) -> bool {
        self.skip.unwrap_or_else(|| self.system.spec().default_skip())
    }

    /// The core training configuration this experiment implies.
    pub fn train_config(&self) -> TrainConfig {
        let (goodness, loss, pass_on) = match self.objective {
            Objective::Phyll => {
                (Goodness::Cosine { activation: Activation::Abs }, Loss::Symba { alpha: self.alpha }, PassOn::Raw)
            }
            Objective::Hinton => (
                match self.squares.unwrap_or_default() {
                    Squares::Mean => Goodness::MeanSquares { activation: Activation::Relu },
                    Squares::Sum => Goodness::SumSquares { activation: Activation::Relu },
                },
                Loss::Hinton { theta: self.theta },
                PassOn::Normalized,
            ),
        };
        TrainConfig {
            n_inner: self.n_inner,
            loss,
            goodness,
            optimizer: OptimizerConfig::adamw(self.lr, self.weight_decay),
            negatives: self.negatives,
            negative_temperature: self.negative_temperature.unwrap_or(1.0),
            pass_on,
            ..TrainConfig::default()
        }
    }

    /// The trainer's options: epochs, batch size, evaluation period, seed, final train
    /// evaluation and learning-rate schedule, as configured.
    pub fn fit_options(&self) -> crate::trainer::FitOptions {
        crate::trainer::FitOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            eval_every: self.eval_every,
            seed: self.seed,
            train_eval: self.train_eval,
            lr_schedule: self.lr_schedule,
        }
    }

    /// For the commands that train every method with the same plain Adam: an error naming
    /// `lr_schedule` unless it is `constant`, or `weight_decay` unless it is 0. `what` says
    /// what the command does (`"phyff drift trains for a budget of physical queries"`).
    ///
    /// # Errors
    /// A non-constant `lr_schedule` or a non-zero `weight_decay`.
    pub fn require_plain_adam(&self, what: &str) -> Result<()> {
        if self.lr_schedule != LrSchedule::Constant {
            bail!(
                "invalid lr_schedule: {what} at a constant learning rate, got \"{}\"; remove lr_schedule (phyff train follows it)",
                self.lr_schedule.name()
            );
        }
        if self.weight_decay != 0.0 {
            bail!(
                "invalid weight_decay: {what} with plain Adam, got {}; remove weight_decay (phyff train follows it)",
                self.weight_decay
            );
        }
        Ok(())
    }

    /// The read-out of unsupervised mode: `readout_epochs` epochs, the other settings
    /// [`ReadoutConfig::default`].
    pub fn readout_config(&self) -> ReadoutConfig {
        ReadoutConfig { epochs: self.readout_epochs, ..ReadoutConfig::default() }
    }

    /// Checks every value and returns the configuration as a [`CheckedConfig`], which the runs
    /// ([`crate::run::train`], [`crate::experiments::compare()`],
    /// [`crate::experiments::drift_experiment`]) take without checking it again. The message
    /// names the key, the value and what is accepted. Sizes are checked against this machine's
    /// memory ([`crate::memory::check`]).
    ///
    /// # Errors
    /// The first invalid value; sizes whose memory overflows or exceeds the machine's.
    pub fn validate(&self) -> Result<CheckedConfig> {
        self.check_values()?;
        Ok(CheckedConfig(self.clone()))
    }

    fn check_values(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("invalid epochs: must be at least 1, got 0");
        }
        if self.blocks == 0 {
            bail!("invalid blocks: must be at least 1, got 0");
        }
        if self.hidden == 0 {
            bail!("invalid hidden: must be at least 1, got 0");
        }
        if self.eval_every == 0 {
            bail!("invalid eval_every: must be at least 1, got 0");
        }
        if self.band_rows == 0 {
            bail!("invalid band_rows: must be at least 1, got 0");
        }
        if !(self.checkpoint_every.is_finite() && self.checkpoint_every >= 0.0) {
            bail!(
                "invalid checkpoint_every: seconds between checkpoints, finite and >= 0 (0: after every epoch), got {}",
                self.checkpoint_every
            );
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction <= 0.5) {
            bail!(
                "invalid validation_fraction: must be in (0, 0.5] (the share of the training split held out to choose the best epoch), got {}",
                self.validation_fraction
            );
        }
        if self.keep_best && self.mode == Mode::Unsupervised {
            bail!("invalid keep_best: supervised mode only (unsupervised runs are scored by a read-out fitted after the last epoch); set keep_best = false or drop --unsupervised");
        }
        if self.train_limit == Some(0) || self.test_limit == Some(0) {
            bail!("invalid train_limit/test_limit: must be at least 1 (or absent to use every sample), got 0");
        }
        self.train_config().validate()?;
        if self.negative_temperature.is_some() && self.negatives != NegativeMode::Sampled {
            bail!(
                "invalid negative_temperature: it sets how sharply negatives = \"sampled\" follows the scores, but negatives is \"{}\"; remove negative_temperature or set negatives = \"sampled\"",
                self.negatives.name()
            );
        }
        if self.squares.is_some() && self.objective != Objective::Hinton {
            bail!("invalid squares: it chooses the goodness of the Hinton objective, but objective is \"phyll\" (cosine goodness); remove squares or set objective = \"hinton\"");
        }
        if self.mode == Mode::Unsupervised {
            if self.readout_epochs == 0 {
                bail!("invalid readout_epochs: unsupervised mode fits a linear read-out for that many epochs, so it must be at least 1, got 0 (e.g. --readout-epochs 50)");
            }
            if self.negatives != NegativeMode::Random {
                bail!("invalid negatives: \"{}\" chooses a wrong label by the network's scores, which needs labels; unsupervised mode uses hybrid negatives, so drop --hard-negatives (negatives = \"random\")", self.negatives.name());
            }
            if self.batch_size == 1 {
                bail!("invalid batch_size: hybrid negatives mix two different samples of a mini-batch, so unsupervised mode needs batches of at least 2, got 1 (e.g. --batch-size 256, or 0 for the full training set)");
            }
        }
        // Before any system is validated or built: the sizes must fit in memory (a mistyped
        // `hidden` used to reach the allocator and abort the process).
        crate::memory::check(self, None, crate::memory::MachineMemory::this_machine())?;
        // Last, what the system requires (its section and the settings that must suit it).
        self.system.spec().validate(self)?;
        Ok(())
    }
}

/// An [`ExperimentConfig`] that [`ExperimentConfig::validate`] accepted: every value in range,
/// the sizes within this machine's memory, the system's section consistent. It reads as the
/// configuration (`Deref`); to change a value, take it out ([`CheckedConfig::into_inner`]),
/// change it and validate again. Serialises as the configuration itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct CheckedConfig(ExperimentConfig);

impl CheckedConfig {
    /// The configuration, to change it (validate it again afterwards).
    pub fn into_inner(self) -> ExperimentConfig {
        self.0
    }
}

impl std::ops::Deref for CheckedConfig {
    type Target = ExperimentConfig;
    fn deref(&self) -> &ExperimentConfig {
        &self.0
    }
}

impl AsRef<ExperimentConfig> for CheckedConfig {
    fn as_ref(&self) -> &ExperimentConfig {
        &self.0
    }
}

/// What a run can start from: a [`CheckedConfig`], taken as it is, or an [`ExperimentConfig`],
/// validated once on the way in. The runs take either, so a configuration is checked exactly once
/// per run whichever the caller holds.
pub trait ToChecked {
    /// The configuration, checked or not.
    fn config(&self) -> &ExperimentConfig;

    /// The checked configuration (borrowed when it already is one).
    ///
    /// # Errors
    /// As [`ExperimentConfig::validate`].
    fn to_checked(&self) -> Result<std::borrow::Cow<'_, CheckedConfig>>;
}

impl ToChecked for ExperimentConfig {
    fn config(&self) -> &ExperimentConfig {
        self
    }

    fn to_checked(&self) -> Result<std::borrow::Cow<'_, CheckedConfig>> {
        Ok(std::borrow::Cow::Owned(self.validate()?))
    }
}

impl<T: ToChecked + ?Sized> ToChecked for &T {
    fn config(&self) -> &ExperimentConfig {
        (**self).config()
    }

    fn to_checked(&self) -> Result<std::borrow::Cow<'_, CheckedConfig>> {
        (**self).to_checked()
    }
}

impl ToChecked for CheckedConfig {
    fn config(&self) -> &ExperimentConfig {
        &self.0
    }

    fn to_checked(&self) -> Result<std::borrow::Cow<'_, CheckedConfig>> {
        Ok(std::borrow::Cow::Borrowed(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = ExperimentConfig::default();
        let back = ExperimentConfig::from_toml(&c.to_toml()).unwrap();
        assert_eq!(c, back);
        let partial = ExperimentConfig::from_toml("epochs = 3\n[optics]\nfield_size = 16\n").unwrap();
        assert_eq!((partial.epochs, partial.optics.field_size, partial.blocks), (3, 16, 2));
        let err = ExperimentConfig::from_toml("epoch = 3\n").unwrap_err().to_string();
        assert!(err.contains("epoch"), "{err}");
    }

    /// Every table of `value` (the root included), as key paths.
    fn table_paths(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let toml::Value::Table(t) = value {
            out.push(path.clone());
            for (k, v) in t {
                path.push(k.clone());
                table_paths(v, path, out);
                path.pop();
            }
        }
    }

    #[test]
    fn unknown_keys_are_errors_in_every_section() {
        // The default configuration, plus the variants whose tables it does not show.
        let mut custom = ExperimentConfig::default();
        custom.freespace.masks = ff_physics::freespace::PhaseMasks::Custom { phases_rad: vec![vec![0.0; 4]] };
        custom.emulator.inputs = Some("x.csv".into());
        custom.device.command = Some("dev".into());
        let mut checked = Vec::new();
        for base in [ExperimentConfig::default(), custom] {
            let root: toml::Value = toml::from_str(&base.to_toml()).unwrap();
            let mut paths = Vec::new();
            table_paths(&root, &mut Vec::new(), &mut paths);
            for path in paths {
                let mut v = root.clone();
                let mut t = &mut v;
                for k in &path {
                    t = t.get_mut(k).unwrap();
                }
                t.as_table_mut().unwrap().insert("not_a_key".into(), toml::Value::Integer(40));
                let text = toml::to_string(&v).unwrap();
                let name = if path.is_empty() { "the top level".to_string() } else { format!("[{}]", path.join(".")) };
                let e = match ExperimentConfig::from_toml(&text) {
                    Ok(_) => panic!("an unknown key in {name} was ignored"),
                    Err(e) => e.to_string(),
                };
                // The table of an enum (`[freespace.masks]`) holds exactly one key, the variant:
                // a second one is refused as such.
                let variant = matches!(path.last().map(String::as_str), Some("masks" | "placement"));
                assert!(e.contains("not_a_key") || variant, "{name}: {e}");
                checked.push(name);
            }
        }
        for section in ["[microwave]", "[microwave.wall]", "[acoustic]", "[optics.pooling]", "[emulator.twin]"] {
            assert!(checked.iter().any(|c| c == section), "{section} not reached: {checked:?}");
        }
        // The report of issue 19: a misspelt cavity key.
        let e = ExperimentConfig::from_toml("[microwave]\nn_freq = 40\n").unwrap_err().to_string();
        assert!(e.contains("n_freq"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let bad = ExperimentConfig { lr: -0.1, ..Default::default() };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("lr") && e.contains("-0.1"), "{e}");
        let bad = ExperimentConfig { epochs: 0, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("epochs"));
        let bad = ExperimentConfig { hidden: 200, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("perfect square"));
        ExperimentConfig::default().validate().unwrap();
        let unsup = ExperimentConfig { mode: Mode::Unsupervised, ..Default::default() };
        unsup.validate().unwrap();
        for (bad, needle) in [
            (ExperimentConfig { readout_epochs: 0, ..unsup.clone() }, "readout_epochs"),
            (ExperimentConfig { negatives: NegativeMode::Hardest, ..unsup.clone() }, "hard-negatives"),
            (ExperimentConfig { batch_size: 1, ..unsup.clone() }, "batch_size"),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        // Unsupervised-only values do not matter in supervised mode.
        ExperimentConfig { readout_epochs: 0, ..Default::default() }.validate().unwrap();
        let toml = ExperimentConfig::from_toml("mode = \"unsupervised\"\nreadout_epochs = 7\n").unwrap();
        assert_eq!((toml.mode, toml.readout_epochs), (Mode::Unsupervised, 7));
    }

    #[test]
    fn hinton_recipe_keys() {
        let c = ExperimentConfig::from_toml(
            "objective = \"hinton\"\nsquares = \"sum\"\ntheta = 256.0\nlr_schedule = \"linear-decay\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!((c.squares, c.lr_schedule), (Some(Squares::Sum), LrSchedule::LinearDecay));
        assert_eq!(c.train_config().goodness, Goodness::SumSquares { activation: Activation::Relu });
        assert_eq!(ExperimentConfig::from_toml(&c.to_toml()).unwrap(), c);
        let mean = ExperimentConfig { squares: None, ..c.clone() };
        assert_eq!(mean.train_config().goodness, Goodness::MeanSquares { activation: Activation::Relu });
        // `squares` belongs to the Hinton objective only.
        let e = ExperimentConfig { squares: Some(Squares::Mean), ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("squares") && e.to_string().contains("phyll"), "{e}");
        let e = ExperimentConfig::from_toml("lr_schedule = \"cosine\"\n").unwrap_err().to_string();
        assert!(e.contains("cosine"), "{e}");
        assert_eq!(ExperimentConfig::default().lr_schedule, LrSchedule::Constant);
        ExperimentConfig::default().require_plain_adam("phyff compare trains every method").unwrap();
        let e = c.require_plain_adam("phyff compare trains every method").unwrap_err().to_string();
        assert!(e.contains("lr_schedule") && e.contains("phyff compare") && e.contains("linear-decay"), "{e}");
        let decay = ExperimentConfig { weight_decay: 0.01, ..Default::default() };
        let e = decay.require_plain_adam("phyff drift trains").unwrap_err().to_string();
        assert!(e.contains("weight_decay") && e.contains("0.01"), "{e}");
    }

    #[test]
    fn sampled_negatives_and_weight_decay_keys() {
        let c =
            ExperimentConfig::from_toml("negatives = \"sampled\"\nnegative_temperature = 0.5\nweight_decay = 0.01\n")
                .unwrap();
        c.validate().unwrap();
        let t = c.train_config();
        assert_eq!((t.negatives, t.negative_temperature), (NegativeMode::Sampled, 0.5));
        assert_eq!(t.optimizer, OptimizerConfig::adamw(1e-3, 0.01));
        assert_eq!(ExperimentConfig::from_toml(&c.to_toml()).unwrap(), c);
        // Absent keys: temperature 1, plain Adam.
        let plain = ExperimentConfig { negative_temperature: None, weight_decay: 0.0, ..c.clone() }.train_config();
        assert_eq!((plain.negative_temperature, plain.optimizer), (1.0, OptimizerConfig::adam(1e-3)));
        for (bad, needle) in [
            (ExperimentConfig { negative_temperature: Some(0.0), ..c.clone() }, "negative_temperature"),
            (ExperimentConfig { negative_temperature: Some(f64::NAN), ..c.clone() }, "negative_temperature"),
            (ExperimentConfig { negatives: NegativeMode::Hardest, ..c.clone() }, "set negatives = \"sampled\""),
            (ExperimentConfig { weight_decay: -0.01, ..c.clone() }, "weight_decay"),
            (ExperimentConfig { weight_decay: 2000.0, ..c.clone() }, "weight_decay"),
            (
                ExperimentConfig { mode: Mode::Unsupervised, negative_temperature: None, ..c.clone() },
                "\"sampled\" chooses a wrong label",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = ExperimentConfig::from_toml("negatives = \"softmax\"\n").unwrap_err().to_string();
        assert!(e.contains("softmax"), "{e}");
    }
}
