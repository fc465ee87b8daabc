//! Builds each block's physical system from the experiment configuration.
//!
//! What is particular to each kind of system (how a block builds it, its checks, memory,
//! FLOPs, energy, drift model and exact adjoint) is its entry in [`kinds`], the table of
//! kinds; this module lays out the blocks and asks the table. The geometry of a block's input
//! decides the encoding: the first block sees the labelled sample (an image when the data are
//! images, else a `1 x d` strip); later blocks see the previous block's output. The
//! physics-removed ablation replaces every system by a digital stand-in with the same widths:
//! the identity for blocks without skip (each block sees its input directly), zeros for blocks
//! with skip (the physical part of `u = [p; h]` is zeroed).

pub mod kinds;
pub mod twin;

pub use kinds::{optics_for_block, ExactModel, SystemKindBuilder, SystemKindSpec};

use crate::config::ExperimentConfig;
use anyhow::Result;
use ff_core::{BlockSpec, Identity, LabelEmbedding, PhysicalSystem, Zeros};
use ff_physics::fft::FftReal;
use ff_physics::{Drift, DriftClock, DriftConfig, PerturbableSystem};

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
    // The digital-only network (no physical system) has no skip connection and is its own
    // ablation.
    let physical_kind = cfg.system.spec().is_physical();
    let skip = physical_kind && cfg.skip();
    let builder = cfg.system.builder::<F>();
    let mut specs = Vec::with_capacity(cfg.blocks);
    for (k, shape) in block_shapes(cfg, embedding, raw_len).into_iter().enumerate() {
        let d = shape.0 * shape.1;
        let physical = builder.build(cfg, k, shape)?;
        let system: Box<dyn PhysicalSystem<F>> = match (ablation && physical_kind, skip) {
            (false, _) => physical,
            (true, false) => Box::new(Identity::new(d)),
            (true, true) => Box::new(Zeros::new(d, physical.output_len())),
        };
        specs.push(BlockSpec { system, skip, out_dim: cfg.hidden });
    }
    Ok(specs)
}

/// The blocks of [`build_blocks`] (no ablation), each system behind a [`Drift`] wrapper with
/// the same `drift` configuration on the shared `clock`: the blocks query one device (one
/// medium, one cavity), which moves with the total count of the clock and the same way in
/// every block's view (see [`DriftClock`]). Only systems that can be perturbed qualify
/// (optics, microwave, acoustic).
///
/// # Errors
/// Another system kind, and invalid system or drift parameters.
pub fn build_drifting_blocks<F: FftReal>(
    cfg: &ExperimentConfig,
    embedding: &LabelEmbedding,
    raw_len: usize,
    drift: &DriftConfig,
    clock: &DriftClock,
) -> Result<Vec<BlockSpec<F>>> {
    let mut specs = Vec::with_capacity(cfg.blocks);
    for (k, shape) in block_shapes(cfg, embedding, raw_len).into_iter().enumerate() {
        let system = perturbable_system::<F>(cfg, k, shape)?;
        let drifting = Drift::with_clock(system, drift.clone(), clock.clone())?;
        specs.push(BlockSpec { system: Box::new(drifting), skip: cfg.skip(), out_dim: cfg.hidden });
    }
    Ok(specs)
}

/// The input shape `(h, w)` (row-major) of every block: the labelled sample for the first
/// (an image when the data are images, else a `1 x d` strip), then the previous block's
/// output (`s x s` when `hidden = s^2`, else a strip).
pub fn block_shapes(cfg: &ExperimentConfig, embedding: &LabelEmbedding, raw_len: usize) -> Vec<(usize, usize)> {
    let d = embedding.embedded_len(raw_len);
    let mut shape = embedding.embedded_shape().unwrap_or((1, d));
    let mut shapes = Vec::with_capacity(cfg.blocks);
    for _ in 0..cfg.blocks {
        shapes.push(shape);
        shape = square_or_strip(cfg.hidden);
    }
    shapes
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

/// The system of block `k` for inputs of shape `shape`, for the kinds whose internal
/// parameters can be disturbed (see [`ff_physics::Perturbable`]): those whose
/// [`SystemKindSpec::has_drift_model`] holds (the optical medium, the microwave and the
/// acoustic cavity, behind their input resampling).
///
/// # Errors
/// Another system kind, or invalid system parameters.
pub fn perturbable_system<F: FftReal>(
    cfg: &ExperimentConfig,
    k: usize,
    shape: (usize, usize),
) -> Result<Box<dyn PerturbableSystem<F>>> {
    cfg.system.builder::<F>().build_perturbable(cfg, k, shape).unwrap_or_else(|| {
        Err(anyhow::anyhow!(
            "the {} system cannot be perturbed (no drift model); use {}",
            cfg.system.name(),
            kinds::names_where(|s| s.has_drift_model())
        ))
    })
}

/// The exact differentiable model of every block (ideal backprop), laid out as
/// [`build_blocks`] lays out the systems; `None` when the kind has no exact adjoint
/// ([`SystemKindSpec::has_exact_adjoint`]).
///
/// # Errors
/// Invalid system parameters, naming the block.
pub fn build_exact_blocks<F: FftReal>(
    cfg: &ExperimentConfig,
    embedding: &LabelEmbedding,
    raw_len: usize,
) -> Result<Option<Vec<ExactModel<F>>>> {
    let builder = cfg.system.builder::<F>();
    let mut models = Vec::with_capacity(cfg.blocks);
    for (k, shape) in block_shapes(cfg, embedding, raw_len).into_iter().enumerate() {
        match builder.build_exact(cfg, k, shape) {
            Some(model) => models.push(model?),
            None => return Ok(None),
        }
    }
    Ok(Some(models))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemKind;
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

    /// The drifting blocks of one network share one clock: training queries through any block
    /// age the device, paused (evaluation) queries do not, and after the sudden change both
    /// blocks see the same changed device. Microwave goes through the resampling adapter.
    #[test]
    fn drifting_blocks_share_one_clock() {
        let embedding = LabelEmbedding::ImageBands { num_classes: 10, height: 8, width: 8, band_rows: 10 };
        let mut cfg = ExperimentConfig { hidden: 16, ..ExperimentConfig::default() };
        cfg.optics.field_size = 16;
        cfg.optics.input_pupil_radius_px = 4.0;
        cfg.optics.output_pupil_radius_px = 4.0;
        let drift = DriftConfig { period: 0, sudden_at: Some(5), sudden_strength: 1.0, ..DriftConfig::default() };
        for system in [SystemKind::Optics, SystemKind::Microwave] {
            let cfg = ExperimentConfig { system, ..cfg.clone() };
            let clock = DriftClock::new();
            let mut blocks = build_drifting_blocks::<f32>(&cfg, &embedding, 64, &drift, &clock).unwrap();
            let mut reference = build_blocks::<f32>(&cfg, &embedding, 64, false).unwrap();
            let x1 = Matrix::<f32>::from_fn(3, 224, |r, c| ((r + c) % 5) as f32 / 5.0);
            let x2 = Matrix::<f32>::from_fn(3, 16, |r, c| ((2 * r + c) % 7) as f32 / 7.0);
            let ref1 = reference[0].system.forward(x1.view()).unwrap();
            let ref2 = reference[1].system.forward(x2.view()).unwrap();
            assert_eq!(blocks[0].system.forward(x1.view()).unwrap(), ref1, "{system:?}: counts 0..3 are undrifted");
            {
                let _p = clock.pause();
                assert_eq!(blocks[1].system.forward(x2.view()).unwrap(), ref2, "{system:?}");
            }
            assert_eq!(clock.count(), 3, "{system:?}: the paused query was not counted");
            let y2 = blocks[1].system.forward(x2.view()).unwrap(); // counts 3..6: row 2 is changed
            assert_eq!(clock.count(), 6);
            assert_eq!(y2.row(1), ref2.row(1), "{system:?}");
            assert_ne!(y2.row(2), ref2.row(2), "{system:?}: the sudden change at count 5");
            let _p = clock.pause();
            let y1 = blocks[0].system.forward(x1.view()).unwrap();
            assert!(y1.row(0) != ref1.row(0), "{system:?}: block 1 sees the change made during block 2's query");
        }
        let fiber = ExperimentConfig { system: SystemKind::Fiber, ..cfg };
        let Err(err) = build_drifting_blocks::<f32>(&fiber, &embedding, 64, &drift, &DriftClock::new()) else {
            panic!("the fibre has no drift model");
        };
        assert!(err.to_string().contains("fiber") && err.to_string().contains("optics"), "{err}");
    }

    #[test]
    fn the_emulator_is_fitted_to_measured_pairs_and_counts_as_physical() {
        let dir = std::env::temp_dir().join(format!("phyff-emulator-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A smooth nonlinear "device": y_j = x_j^2 + 0.5 x_(j+1), 4 -> 4.
        let (mut xs, mut ys) = (String::new(), String::new());
        let mut rng = ff_core::rng::rng_for(5, "emulator test");
        for _ in 0..600 {
            let x: Vec<f64> = (0..4).map(|_| rand::Rng::random::<f64>(&mut rng)).collect();
            let y: Vec<f64> = (0..4).map(|c| x[c] * x[c] + 0.5 * x[(c + 1) % 4]).collect();
            let line = |v: &[f64]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",") + "\n";
            xs.push_str(&line(&x));
            ys.push_str(&line(&y));
        }
        std::fs::write(dir.join("x.csv"), xs).unwrap();
        std::fs::write(dir.join("y.csv"), ys).unwrap();
        let mut cfg = ExperimentConfig { system: SystemKind::Emulator, hidden: 4, ..ExperimentConfig::default() };
        cfg.validate().expect("no pair files: the built-in acoustic pairs");
        cfg.emulator.inputs = Some(dir.join("x.csv"));
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("emulator.inputs") && err.contains("emulator.outputs"), "one file of two: {err}");
        cfg.emulator.outputs = Some(dir.join("y.csv"));
        cfg.emulator.twin.hidden = vec![16];
        cfg.emulator.twin.epochs = 300;
        cfg.emulator.twin.lr = 3e-3;
        cfg.validate().unwrap();
        let embedding = LabelEmbedding::Overwrite { num_classes: 2 };
        let mut specs = build_blocks::<f64>(&cfg, &embedding, 4, false).unwrap();
        assert!(specs[0].skip && specs[0].system.is_physical());
        let x = Matrix::<f64>::from_fn(3, 4, |r, c| ((r + 2 * c) % 5) as f64 / 5.0);
        let y = specs[0].system.forward(x.view()).unwrap();
        let truth = |r: usize, c: usize| x.get(r, c).powi(2) + 0.5 * x.get(r, (c + 1) % 4);
        for r in 0..3 {
            for c in 0..4 {
                assert!((y.get(r, c) - truth(r, c)).abs() < 0.05, "({r}, {c}): {} vs {}", y.get(r, c), truth(r, c));
            }
        }
        // The second block reuses the same fit: same answers for the same inputs.
        let y2 = specs[1].system.forward(x.view()).unwrap();
        assert_eq!(y, y2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
