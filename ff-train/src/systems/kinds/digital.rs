//! `system = "digital"`: no physical system. Every block is its digital affine map alone
//! (digital-only forward-forward, e.g. the paper's Fashion-MNIST demo or Hinton's original FF):
//! the block's "system" is the identity, there is no skip connection, and the network is its
//! own ablation.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::Size;
use anyhow::Result;
use ff_core::{Identity, PhysicalSystem};
use ff_physics::fft::FftReal;

/// The digital-only network.
pub(crate) struct Digital;

impl SystemKindSpec for Digital {
    fn kind(&self) -> SystemKind {
        SystemKind::Digital
    }

    fn name(&self) -> &'static str {
        "digital"
    }

    fn is_physical(&self) -> bool {
        false
    }

    fn default_skip(&self) -> bool {
        false
    }

    /// Nothing to check: there is no section.
    fn validate(&self, _cfg: &ExperimentConfig) -> Result<()> {
        Ok(())
    }

    /// The identity answers with its input.
    fn output_len(&self, _cfg: &ExperimentConfig, input: Size) -> Size {
        input
    }

    /// No query costs anything.
    fn query_flops(&self, _cfg: &ExperimentConfig) -> f64 {
        0.0
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Digital {
    /// The identity on the block's input (not physical: it counts no queries).
    fn build(
        &self,
        _cfg: &ExperimentConfig,
        _block: usize,
        shape: (usize, usize),
    ) -> Result<Box<dyn PhysicalSystem<F>>> {
        Ok(Box::new(Identity::new(shape.0 * shape.1)))
    }
}
