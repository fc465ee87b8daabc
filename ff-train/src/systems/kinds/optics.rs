//! `system = "optics"`: the multimode optical medium of `ff_physics::optics` (SLM ->
//! transmission matrix -> camera). Each block shows its input on the SLM as an image.

use super::{ExactModel, SampleShape, SystemKindBuilder, SystemKindSpec};
use crate::baselines::optics_vjp_flops;
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{pupil_modes, setting, sz, MemoryScale, Setting, Size, COMPLEX64};
use anyhow::{bail, Context, Result};
use ff_core::PhysicalSystem;
use ff_physics::fft::FftReal;
use ff_physics::optics::{OpticsConfig, OpticsSystem};
use ff_physics::slm::Placement;
use ff_physics::PerturbableSystem;

/// The optical system.
pub(crate) struct Optics;

impl SystemKindSpec for Optics {
    fn kind(&self) -> SystemKind {
        SystemKind::Optics
    }

    fn name(&self) -> &'static str {
        "optics"
    }

    fn default_skip(&self) -> bool {
        false
    }

    /// Images: the labelled image is shown on the SLM as it is.
    fn default_for(&self) -> Option<SampleShape> {
        Some(SampleShape::Image)
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        let side = (cfg.hidden as f64).sqrt().round() as usize;
        if side * side != cfg.hidden {
            bail!(
                "invalid hidden: the optical system shows each block's output as a square image, so hidden must be a perfect square (e.g. 256 = 16 x 16), got {}",
                cfg.hidden
            );
        }
        cfg.optics.validate()?;
        Ok(())
    }

    /// The camera image after pooling: `((field + 2 padding - kernel) / stride + 1)^2` pixels.
    fn output_len(&self, cfg: &ExperimentConfig, _input: Size) -> Size {
        let o = &cfg.optics;
        let p = o.pooling;
        let padded = sz(o.field_size) + sz(2) * sz(p.padding);
        match padded.0 {
            Some(n) if p.kernel > 0 && p.stride > 0 && n >= p.kernel as u64 => {
                let side = Size(Some((n - p.kernel as u64) / p.stride as u64 + 1));
                side * side
            }
            Some(_) => Size(Some(0)), // invalid pooling: `optics.validate` names it
            None => padded,
        }
    }

    fn memory_parts(&self, cfg: &ExperimentConfig, scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        let o = &cfg.optics;
        let MemoryScale { blocks, rows, real_bytes: f } = *scale;
        let n = o.field_size;
        let (m_in, m_out) = (pupil_modes(n, o.input_pupil_radius_px), pupil_modes(n, o.output_pupil_radius_px));
        let tm = m_in * m_out;
        let block_rows = rows.min(sz(ff_physics::optics::BLOCK_ROWS));
        let per_row = sz(2) * sz(n) * sz(n) + sz(6) * m_in.max(m_out);
        vec![
            // Each block: Re, Im and Re + Im of the matrix; while it is drawn, the complex draw,
            // its QR factorisation and the unitary factor (double precision).
            ("optical transmission matrices", blocks * tm * sz(3) * f + tm * sz(3) * Size(Some(COMPLEX64))),
            ("optical fields of a batch", blocks * block_rows * per_row * f),
        ]
    }

    fn memory_settings(&self) -> Vec<Setting> {
        vec![
            setting!("optics.field_size", Some("--field"), optics.field_size),
            setting!("optics.input_pupil_radius_px", None, optics.input_pupil_radius_px),
            setting!("optics.output_pupil_radius_px", None, optics.output_pupil_radius_px),
            setting!("optics.pooling", None, optics.pooling),
        ]
    }

    /// The transmission matrix maps the input pupil's modes to the output pupil's (a complex
    /// product, `8 m_in m_out`), with four FFTs of the field.
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let log2 = |x: f64| x.max(2.0).log2();
        let n2 = (cfg.optics.field_size as f64).powi(2);
        let modes = |r: f64| (std::f64::consts::PI * (r + 1.0).powi(2)).min(n2);
        let (m_in, m_out) = (modes(cfg.optics.input_pupil_radius_px), modes(cfg.optics.output_pupil_radius_px));
        8.0 * m_in * m_out + 20.0 * n2 * log2(n2)
    }

    /// 1 mJ (SLM + camera, one frame per query): a liquid-crystal SLM and a CMOS camera draw a
    /// few watts together and run at ~1 kHz at best, so one frame costs ~1-5 mJ of electronics;
    /// the laser light itself (mW for 1 ms, ~uJ) is negligible.
    fn joules_per_query(&self) -> Option<f64> {
        Some(1e-3)
    }

    fn has_drift_model(&self) -> bool {
        true
    }

    fn has_exact_adjoint(&self) -> bool {
        true
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Optics {
    fn build(&self, cfg: &ExperimentConfig, block: usize, shape: (usize, usize)) -> Result<Box<dyn PhysicalSystem<F>>> {
        Ok(Box::new(optics_system::<F>(cfg, block, shape)?))
    }

    fn build_perturbable(
        &self,
        cfg: &ExperimentConfig,
        block: usize,
        shape: (usize, usize),
    ) -> Option<Result<Box<dyn PerturbableSystem<F>>>> {
        Some(optics_system::<F>(cfg, block, shape).map(|s| Box::new(s) as Box<dyn PerturbableSystem<F>>))
    }

    /// The optical simulator itself: its VJP is exact (`ff_physics::optics::adjoint`).
    fn build_exact(
        &self,
        cfg: &ExperimentConfig,
        block: usize,
        shape: (usize, usize),
    ) -> Option<Result<ExactModel<F>>> {
        let o = optics_for_block(&cfg.optics, block, shape);
        let vjp_flops = optics_vjp_flops(&o);
        Some(
            OpticsSystem::<F>::new(o)
                .map(|s| ExactModel { system: Box::new(s), vjp_flops })
                .map_err(|e| anyhow::anyhow!("block {}: {e}", block + 1)),
        )
    }
}

/// The optical system of block `k` for inputs of shape `shape`.
fn optics_system<F: FftReal>(cfg: &ExperimentConfig, k: usize, shape: (usize, usize)) -> Result<OpticsSystem<F>> {
    let o = optics_for_block(&cfg.optics, k, shape);
    OpticsSystem::<F>::new(o).with_context(|| format!("block {}", k + 1))
}

/// The optical configuration of block `k` (from 0) for inputs of shape `shape`: block 1 tiles
/// the labelled image, later blocks upsample the previous output to fill the field. Shared with
/// `phyff-device`, so that a served optical device is the same device as the in-process one.
pub fn optics_for_block(base: &OpticsConfig, k: usize, shape: (usize, usize)) -> OpticsConfig {
    let mut o = base.clone();
    o.input_shape = shape;
    o.placement = if k == 0 || shape.0 == 1 {
        Placement::Tile
    } else {
        Placement::Upsample { factor: o.field_size.div_ceil(shape.0).max(1) }
    };
    o
}
