//! `system = "freespace"`: the free-space diffractive stack of `ff_physics::freespace` (SLM,
//! phase masks, angular-spectrum propagation, camera). Each block shows its input on the SLM
//! as an image, placed as for optics.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{setting, sz, MemoryScale, Setting, Size, COMPLEX64};
use anyhow::{Context, Result};
use ff_core::PhysicalSystem;
use ff_physics::fft::FftReal;
use ff_physics::slm::Placement;
use ff_physics::FreeSpaceSystem;

/// The free-space stack.
pub(crate) struct Freespace;

impl SystemKindSpec for Freespace {
    fn kind(&self) -> SystemKind {
        SystemKind::Freespace
    }

    fn name(&self) -> &'static str {
        "freespace"
    }

    fn default_skip(&self) -> bool {
        false
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        cfg.freespace.validate()?;
        Ok(())
    }

    /// The camera's `output_shape` pixels.
    fn output_len(&self, cfg: &ExperimentConfig, _input: Size) -> Size {
        sz(cfg.freespace.output_shape.0) * sz(cfg.freespace.output_shape.1)
    }

    fn memory_parts(&self, cfg: &ExperimentConfig, scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        let g = &cfg.freespace.grid;
        let padded = sz(g.n) * sz(g.padding_factor);
        // A transfer function per distance, the masks, and the fields of the rows in flight.
        let planes = sz(cfg.freespace.planes());
        let fields = (planes + sz(1) + sz(32)) * padded * padded + planes * sz(g.n) * sz(g.n);
        vec![("free-space propagators and fields", scale.blocks * fields * Size(Some(COMPLEX64)))]
    }

    fn memory_settings(&self) -> Vec<Setting> {
        vec![
            setting!("freespace.grid.n", None, freespace.grid.n),
            setting!("freespace.grid.padding_factor", None, freespace.grid.padding_factor),
            setting!("freespace.masks", None, freespace.masks),
            setting!("freespace.output_shape", None, freespace.output_shape),
        ]
    }

    /// Two FFTs of the padded grid per propagation, one propagation more than masks.
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let log2 = |x: f64| x.max(2.0).log2();
        let g = &cfg.freespace.grid;
        let n2 = ((g.n * g.padding_factor) as f64).powi(2);
        (cfg.freespace.planes() as f64 + 1.0) * 10.0 * n2 * log2(n2)
    }

    /// 1 mJ: SLM + camera, as optics.
    fn joules_per_query(&self) -> Option<f64> {
        Some(1e-3)
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Freespace {
    /// Block 1 tiles the labelled image, later blocks upsample the previous output to fill the
    /// grid.
    fn build(&self, cfg: &ExperimentConfig, block: usize, shape: (usize, usize)) -> Result<Box<dyn PhysicalSystem<F>>> {
        let mut f = cfg.freespace.clone();
        f.input_shape = shape;
        let n = f.grid.n;
        f.placement = if block == 0 || shape.0 == 1 {
            Placement::Tile
        } else {
            Placement::Upsample { factor: n.div_ceil(shape.0).max(1) }
        };
        Ok(Box::new(FreeSpaceSystem::<F>::new(f).with_context(|| format!("block {}", block + 1))?))
    }
}
