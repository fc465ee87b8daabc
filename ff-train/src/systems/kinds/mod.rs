//! The table of physical system kinds: everything phyff knows about one kind, in one place.
//!
//! Each [`SystemKind`] has one file here holding a unit struct that implements two traits:
//! [`SystemKindSpec`] (its name, the checks and the defaults of its configuration section, its
//! memory, its FLOPs and energy per query, whether it has a drift model or an exact adjoint) and
//! [`SystemKindBuilder`] (a block's system at precision `F`, also as a drifting or an exactly
//! differentiable one when it has those). [`entry`] maps a kind to its struct; it is the one
//! `match` on [`SystemKind`] in the crate. The generic code (configuration validation,
//! [`super::build_blocks`], [`crate::memory`], [`crate::sweep::time_estimate`], `phyff
//! compare`, `phyff drift`, [`crate::export`], [`crate::baselines::EnergyModel`]) asks the table
//! through [`SystemKind::spec`] and [`SystemKind::builder`] and never names a kind.
//!
//! Adding a system: CONTRIBUTING.md, "Adding a physical system".

mod acoustic;
mod device;
mod digital;
mod emulator;
mod fiber;
mod freespace;
mod microwave;
mod optics;

pub use optics::optics_for_block;

use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{MemoryScale, Setting, Size};
use anyhow::Result;
use ff_core::{Differentiable, PhysicalSystem, Real};
use ff_physics::fft::FftReal;
use ff_physics::PerturbableSystem;

/// What a data set's samples look like, as far as the default system goes
/// ([`crate::config::default_system_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleShape {
    /// 2-D samples: images (`digits`, `mnist`, `fashion`).
    Image,
    /// 1-D samples: feature vectors (`vowels`, `csv:` tables).
    Vector,
}

/// A block's exact differentiable model (ideal backprop in `phyff compare`) with the cost of
/// its adjoint.
pub struct ExactModel<F: Real> {
    /// The model; its VJP is the exact adjoint of the system's forward map.
    pub system: Box<dyn Differentiable<F>>,
    /// Digital FLOPs of one row's VJP (the same stages as one forward row, in reverse).
    pub vjp_flops: u64,
}

/// Everything phyff knows about one kind of physical system apart from building it. Sizes and
/// FLOPs are counted from the configuration alone, before anything is built or loaded.
pub trait SystemKindSpec: Sync {
    /// The kind this entry describes.
    fn kind(&self) -> SystemKind;

    /// The name on the command line (`--system`) and in files (`system = "..."`,
    /// `result.json`): the variant's name in lower case, which is how serde and clap spell it.
    fn name(&self) -> &'static str;

    /// Whether the blocks query a system. `false` only for the digital-only network: each block
    /// is its affine map alone, without skip connection, and it is its own ablation.
    fn is_physical(&self) -> bool {
        true
    }

    /// The skip connection when the configuration leaves `skip` unset: whether a block's input
    /// is concatenated after the system's answer.
    fn default_skip(&self) -> bool;

    /// The samples for which this kind is the system `phyff train` uses when neither `--system`
    /// nor the configuration file names one; at most one kind per shape.
    fn default_for(&self) -> Option<SampleShape> {
        None
    }

    /// Checks what this kind requires of `cfg`: its section, and the generic settings that must
    /// suit it (optics: a square `hidden`). [`ExperimentConfig::validate`] calls it last, after
    /// the generic checks and the memory check.
    ///
    /// # Errors
    /// The first invalid value, naming the key and what is accepted.
    fn validate(&self, cfg: &ExperimentConfig) -> Result<()>;

    /// How many values the system of a block answers with when the block reads `input` values,
    /// for the memory estimate; 0 when that is not known before the system runs (a device, the
    /// emulator).
    fn output_len(&self, cfg: &ExperimentConfig, input: Size) -> Size;

    /// The system's own buffers over the whole run, as `(what, bytes)` parts of the memory
    /// estimate ([`crate::memory::estimate`]); none by default.
    fn memory_parts(&self, _cfg: &ExperimentConfig, _scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        Vec::new()
    }

    /// The settings of this kind's section that [`Self::output_len`] and
    /// [`Self::memory_parts`] grow with: [`crate::memory::check`] names the one whose default
    /// shrinks an estimate that is too large.
    fn memory_settings(&self) -> Vec<Setting> {
        Vec::new()
    }

    /// Floating-point operations of one physical query (one sample through one block's system),
    /// counted from the sizes (an upper-end count: dense products over the whole field, FFTs at
    /// `5 n log2 n`), for the wall-time estimate of a sweep ([`crate::sweep::time_estimate`]).
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64;

    /// Floating-point operations spent once before training (the emulator's fit); 0 by
    /// default.
    fn setup_flops(&self, _cfg: &ExperimentConfig) -> f64 {
        0.0
    }

    /// The default energy of one physical query, in joules, in the energy model of `phyff
    /// compare` ([`crate::baselines::EnergyModel`]); `None` when there is no sensible default
    /// (the energy is then given by `--joules-per-query`).
    fn joules_per_query(&self) -> Option<f64> {
        None
    }

    /// Whether the system has a drift model, i.e. [`SystemKindBuilder::build_perturbable`]
    /// answers (`phyff drift`).
    fn has_drift_model(&self) -> bool {
        false
    }

    /// Whether the system has an exact adjoint, i.e. [`SystemKindBuilder::build_exact`]
    /// answers (ideal backprop in `phyff compare`).
    fn has_exact_adjoint(&self) -> bool {
        false
    }
}

/// Builds the systems of one kind at precision `F`. `block` counts blocks from 0; `shape` is
/// the block's input `(rows, cols)`, row-major: the labelled sample for the first block (an
/// image, or a `1 x d` strip for vectors), the previous block's output for later ones
/// ([`super::block_shapes`]).
pub trait SystemKindBuilder<F: FftReal> {
    /// The system of block `block`.
    ///
    /// # Errors
    /// Invalid system parameters for the block geometry, a device that cannot be reached.
    fn build(&self, cfg: &ExperimentConfig, block: usize, shape: (usize, usize)) -> Result<Box<dyn PhysicalSystem<F>>>;

    /// The same system as one whose internal parameters can be disturbed, to drift
    /// ([`ff_physics::Perturbable`]); `None` when the kind has no drift model (the default).
    fn build_perturbable(
        &self,
        _cfg: &ExperimentConfig,
        _block: usize,
        _shape: (usize, usize),
    ) -> Option<Result<Box<dyn PerturbableSystem<F>>>> {
        None
    }

    /// The block's exact differentiable model; `None` when the kind has no exact adjoint (the
    /// default).
    fn build_exact(
        &self,
        _cfg: &ExperimentConfig,
        _block: usize,
        _shape: (usize, usize),
    ) -> Option<Result<ExactModel<F>>> {
        None
    }
}

/// One row of the table at precision `F`: a kind's description and its builders. Every type
/// that implements both traits is one; a kind writes no code for it.
pub trait KindEntry<F: FftReal>: Sync {
    /// The description.
    fn spec(&self) -> &dyn SystemKindSpec;
    /// The builders.
    fn builder(&self) -> &dyn SystemKindBuilder<F>;
}

impl<F: FftReal, K: SystemKindSpec + SystemKindBuilder<F>> KindEntry<F> for K {
    fn spec(&self) -> &dyn SystemKindSpec {
        self
    }
    fn builder(&self) -> &dyn SystemKindBuilder<F> {
        self
    }
}

/// The table: the entry of `kind` at precision `F`. This is the one `match` on [`SystemKind`]
/// in the crate; a new kind adds its line here.
pub fn entry<F: FftReal>(kind: SystemKind) -> &'static dyn KindEntry<F> {
    match kind {
        SystemKind::Optics => &optics::Optics,
        SystemKind::Microwave => &microwave::Microwave,
        SystemKind::Acoustic => &acoustic::Acoustic,
        SystemKind::Freespace => &freespace::Freespace,
        SystemKind::Fiber => &fiber::Fiber,
        SystemKind::Device => &device::Device,
        SystemKind::Emulator => &emulator::Emulator,
        SystemKind::Digital => &digital::Digital,
    }
}

impl SystemKind {
    /// Everything phyff knows about this kind apart from building it (its row of [`entry`]).
    pub fn spec(self) -> &'static dyn SystemKindSpec {
        // The description does not depend on the precision; any `F` reaches the same row.
        entry::<f64>(self).spec()
    }

    /// The builders of this kind at precision `F` (its row of [`entry`]).
    pub fn builder<F: FftReal>(self) -> &'static dyn SystemKindBuilder<F> {
        entry::<F>(self).builder()
    }
}

/// The names of the kinds for which `pred` holds, in [`SystemKind::ALL`] order, as a list for
/// a message: `"optics, microwave or acoustic"`.
pub fn names_where(pred: impl Fn(&dyn SystemKindSpec) -> bool) -> String {
    let names: Vec<&str> = SystemKind::ALL.iter().map(|k| k.spec()).filter(|s| pred(*s)).map(|s| s.name()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests;
