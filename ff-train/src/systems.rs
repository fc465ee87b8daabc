//! Builds each block's physical system from the experiment configuration.
//!
//! The geometry of a block's input decides the encoding: the first block sees the labelled
//! sample (an image when the data are images, else a `1 x d` strip); later blocks see the
//! previous block's output. The physics-removed ablation replaces every system by a digital
//! stand-in with the same widths: the identity for blocks without skip (each block sees its
//! input directly), zeros for blocks with skip (the physical part of `u = [p; h]` is zeroed).

use crate::config::{ExperimentConfig, SystemKind};
use anyhow::Result;
use ff_core::{BlockSpec, Identity, LabelEmbedding, PhysicalSystem, Zeros};
use ff_physics::adapt::Resampled;
use ff_physics::fft::FftReal;
use ff_physics::optics::OpticsSystem;
use ff_physics::slm::Placement;
use ff_physics::{AcousticCavity, FiberSystem, FreeSpaceSystem, MicrowaveCavity};

/// The systems, skip flags and output sizes of every block.
///
/// # Errors
/// Invalid system parameters for the block geometry.
pub fn build_blocks<F: FftReal>(
    cfg: &ExperimentConfig,
    embedding: &LabelEmbedding,
    raw_len: usize,
    ablation: bool,
) -> Result<Vec<BlockSpec<F>>> {
    let skip = cfg.skip();
    let mut d = embedding.embedded_len(raw_len);
    let mut shape = embedding.embedded_shape().unwrap_or((1, d));
    let mut specs = Vec::with_capacity(cfg.blocks);
    for k in 0..cfg.blocks {
        let physical = physical_system::<F>(cfg, k, shape)?;
        let system: Box<dyn PhysicalSystem<F>> = match (ablation, skip) {
            (false, _) => physical,
            (true, false) => Box::new(Identity::new(d)),
            (true, true) => Box::new(Zeros::new(d, physical.output_len())),
        };
        specs.push(BlockSpec { system, skip, out_dim: cfg.hidden });
        d = cfg.hidden;
        shape = square_or_strip(d);
    }
    Ok(specs)
}

/// `(s, s)` when `d = s^2`, else `(1, d)`.
fn square_or_strip(d: usize) -> (usize, usize) {
    let s = (d as f64).sqrt().round() as usize;
    if s * s == d {
        (s, s)
    } else {
        (1, d)
    }
}

/// The physical system of block `k` for inputs of shape `shape` (`h x w`, row-major).
fn physical_system<F: FftReal>(
    cfg: &ExperimentConfig,
    k: usize,
    shape: (usize, usize),
) -> Result<Box<dyn PhysicalSystem<F>>> {
    let d = shape.0 * shape.1;
    match cfg.system {
        SystemKind::Optics => {
            let mut o = cfg.optics.clone();
            o.input_shape = shape;
            o.placement = if k == 0 || shape.0 == 1 {
                Placement::Tile
            } else {
                Placement::Upsample { factor: o.field_size.div_ceil(shape.0).max(1) }
            };
            Ok(Box::new(OpticsSystem::<F>::new(o).map_err(|e| anyhow::anyhow!("block {}: {e}", k + 1))?))
        }
        SystemKind::Freespace => {
            let mut f = cfg.freespace.clone();
            f.input_shape = shape;
            let n = f.grid.n;
            f.placement = if k == 0 || shape.0 == 1 {
                Placement::Tile
            } else {
                Placement::Upsample { factor: n.div_ceil(shape.0).max(1) }
            };
            Ok(Box::new(FreeSpaceSystem::<F>::new(f).map_err(|e| anyhow::anyhow!("block {}: {e}", k + 1))?))
        }
        SystemKind::Fiber => {
            let fiber = FiberSystem::<F>::new(cfg.fiber.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Box::new(Resampled::new::<F>(fiber, d)))
        }
        SystemKind::Microwave => {
            let cavity = MicrowaveCavity::new(cfg.microwave.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Box::new(Resampled::new::<F>(cavity, d)))
        }
        SystemKind::Acoustic => {
            let cavity = AcousticCavity::new(cfg.acoustic.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Box::new(Resampled::new::<F>(cavity, d)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::Matrix;

    /// Every selectable system builds for the digits geometry (labelled 28 x 8 images, 2 blocks)
    /// and answers a small batch with finite values of the declared width.
    #[test]
    fn every_system_builds_and_answers() {
        let embedding = LabelEmbedding::ImageBands { num_classes: 10, height: 8, width: 8, band_rows: 10 };
        for system in
            [SystemKind::Optics, SystemKind::Freespace, SystemKind::Microwave, SystemKind::Acoustic, SystemKind::Fiber]
        {
            let cfg = ExperimentConfig { system, hidden: 16, ..ExperimentConfig::default() };
            cfg.validate().unwrap();
            for ablation in [false, true] {
                let mut specs = build_blocks::<f32>(&cfg, &embedding, 64, ablation).unwrap();
                assert_eq!(specs.len(), 2);
                assert_eq!(specs[0].system.input_len(), 224, "{system:?}");
                assert_eq!(specs[1].system.input_len(), 16, "{system:?}");
                assert_eq!(specs[0].system.is_physical(), !ablation);
                let x = Matrix::<f32>::from_fn(2, 224, |r, c| ((r + c) % 7) as f32 / 7.0);
                let y = specs[0].system.forward(x.view()).unwrap();
                assert!(y.find_non_finite().is_none(), "{system:?}");
            }
        }
    }
}
