//! `system = "acoustic"`: the chaotic acoustic cavity with nonlinear membrane scatterers of
//! `ff_physics::acoustic`. Each block's input is resampled onto the cavity's `n_tones`
//! channels; every block queries the same cavity.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{outline, setting, sz, MemoryScale, Setting, Size, COMPLEX64};
use anyhow::Result;
use ff_core::PhysicalSystem;
use ff_physics::adapt::Resampled;
use ff_physics::fft::FftReal;
use ff_physics::{AcousticCavity, PerturbableSystem};

/// The acoustic cavity.
pub(crate) struct Acoustic;

impl SystemKindSpec for Acoustic {
    fn kind(&self) -> SystemKind {
        SystemKind::Acoustic
    }

    fn name(&self) -> &'static str {
        "acoustic"
    }

    /// Skip, as in the paper.
    fn default_skip(&self) -> bool {
        true
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        cfg.acoustic.validate()?;
        Ok(())
    }

    /// The microphone's amplitude at each of the `n_tones` tones.
    fn output_len(&self, cfg: &ExperimentConfig, _input: Size) -> Size {
        sz(cfg.acoustic.n_tones)
    }

    fn memory_parts(&self, cfg: &ExperimentConfig, scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        let c = &cfg.acoustic;
        let rigid = outline(c.cavity_width, c.cavity_height, c.wall_spacing) + sz(c.n_rigid);
        let m = sz(c.n_membranes);
        let cache = sz(c.n_tones) * (m * m + sz(2) * m);
        let solve = sz(2) * rigid * rigid;
        vec![("acoustic cavities", scale.blocks * (cache + solve) * Size(Some(COMPLEX64)))]
    }

    fn memory_settings(&self) -> Vec<Setting> {
        vec![
            setting!("acoustic.n_tones", None, acoustic.n_tones),
            setting!("acoustic.n_membranes", None, acoustic.n_membranes),
            setting!("acoustic.n_rigid", None, acoustic.n_rigid),
            setting!("acoustic.wall_spacing", None, acoustic.wall_spacing),
        ]
    }

    /// A complex `M x M` product per tone, `M = n_membranes`.
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let m = cfg.acoustic.n_membranes as f64;
        8.0 * cfg.acoustic.n_tones as f64 * m * m
    }

    /// 0.1 J (loudspeaker multi-tone burst + microphone + FFT): ~1 W of audio electronics for a
    /// ~100 ms recording (the tones must ring through the cavity).
    fn joules_per_query(&self) -> Option<f64> {
        Some(1e-1)
    }

    fn has_drift_model(&self) -> bool {
        true
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Acoustic {
    fn build(
        &self,
        cfg: &ExperimentConfig,
        _block: usize,
        shape: (usize, usize),
    ) -> Result<Box<dyn PhysicalSystem<F>>> {
        Ok(Box::new(cavity::<F>(cfg, shape)?))
    }

    fn build_perturbable(
        &self,
        cfg: &ExperimentConfig,
        _block: usize,
        shape: (usize, usize),
    ) -> Option<Result<Box<dyn PerturbableSystem<F>>>> {
        Some(cavity::<F>(cfg, shape).map(|s| Box::new(s) as Box<dyn PerturbableSystem<F>>))
    }
}

/// The cavity behind the resampling of a block's `rows x cols` input onto its channels.
fn cavity<F: FftReal>(cfg: &ExperimentConfig, shape: (usize, usize)) -> Result<Resampled<AcousticCavity>> {
    let cavity = AcousticCavity::new(cfg.acoustic.clone())?;
    Ok(Resampled::new::<F>(cavity, shape.0 * shape.1))
}
