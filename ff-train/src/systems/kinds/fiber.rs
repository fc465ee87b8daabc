//! `system = "fiber"`: the nonlinear fibre of `ff_physics::fiber` (spectral-phase encoding,
//! split-step NLSE, binned spectrum). Each block's input is resampled onto the fibre's
//! `input_len` spectral channels.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{setting, sz, MemoryScale, Setting, Size, COMPLEX64};
use anyhow::Result;
use ff_core::PhysicalSystem;
use ff_physics::adapt::Resampled;
use ff_physics::fft::FftReal;
use ff_physics::FiberSystem;

/// The fibre.
pub(crate) struct Fiber;

impl SystemKindSpec for Fiber {
    fn kind(&self) -> SystemKind {
        SystemKind::Fiber
    }

    fn name(&self) -> &'static str {
        "fiber"
    }

    fn default_skip(&self) -> bool {
        true
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        cfg.fiber.validate()?;
        Ok(())
    }

    /// The `output_len` bins of the spectrum.
    fn output_len(&self, cfg: &ExperimentConfig, _input: Size) -> Size {
        sz(cfg.fiber.output_len)
    }

    fn memory_parts(&self, cfg: &ExperimentConfig, scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        vec![("fibre grids", scale.blocks * sz(64) * sz(cfg.fiber.grid.points) * Size(Some(COMPLEX64)))]
    }

    fn memory_settings(&self) -> Vec<Setting> {
        vec![
            setting!("fiber.grid.points", None, fiber.grid.points),
            setting!("fiber.output_len", None, fiber.output_len),
        ]
    }

    /// About 64 split steps, each an FFT pair over the time grid of `grid.points` (`10 p log2 p`).
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let log2 = |x: f64| x.max(2.0).log2();
        let p = cfg.fiber.grid.points as f64;
        640.0 * p * log2(p)
    }

    /// 1 mJ (pulse shaper + spectrometer, one spectrum per query): the same order as an SLM
    /// frame (a programmable pulse shaper is an SLM).
    fn joules_per_query(&self) -> Option<f64> {
        Some(1e-3)
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Fiber {
    fn build(
        &self,
        cfg: &ExperimentConfig,
        _block: usize,
        shape: (usize, usize),
    ) -> Result<Box<dyn PhysicalSystem<F>>> {
        let fiber = FiberSystem::<F>::new(cfg.fiber.clone())?;
        Ok(Box::new(Resampled::new::<F>(fiber, shape.0 * shape.1)))
    }
}
