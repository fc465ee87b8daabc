//! Builds each block's physical system from the experiment configuration.
//!
//! The geometry of a block's input decides the encoding: the first block sees the labelled
//! sample (an image when the data are images, else a `1 x d` strip); later blocks see the
//! previous block's output. The physics-removed ablation replaces every system by a digital
//! stand-in with the same widths: the identity for blocks without skip (each block sees its
//! input directly), zeros for blocks with skip (the physical part of `u = [p; h]` is zeroed).

pub mod twin;

use crate::config::{ExperimentConfig, SystemKind};
use anyhow::{Context, Result};
use ff_core::{BlockSpec, Identity, LabelEmbedding, MatMut, MatRef, PhysicalSystem, Real, SystemError, Zeros};
use ff_physics::adapt::Resampled;
use ff_physics::device::{DeviceConfig, DeviceSystem, Transport};
use ff_physics::fft::FftReal;
use ff_physics::optics::{OpticsConfig, OpticsSystem};
use ff_physics::slm::Placement;
use ff_physics::{
    AcousticCavity, Drift, DriftClock, DriftConfig, FiberSystem, FreeSpaceSystem, MicrowaveCavity, PerturbableSystem,
};
use std::sync::Mutex;
use twin::Twin;

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
    let mut specs = Vec::with_capacity(cfg.blocks);
    for (k, shape) in block_shapes(cfg, embedding, raw_len).into_iter().enumerate() {
        let d = shape.0 * shape.1;
        if cfg.system == SystemKind::Digital {
            specs.push(BlockSpec { system: Box::new(Identity::new(d)), skip: false, out_dim: cfg.hidden });
            continue;
        }
        let physical = physical_system::<F>(cfg, k, shape)?;
        let system: Box<dyn PhysicalSystem<F>> = match (ablation, skip) {
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

/// The physical system of block `k` for inputs of shape `shape` (`h x w`, row-major).
fn physical_system<F: FftReal>(
    cfg: &ExperimentConfig,
    k: usize,
    shape: (usize, usize),
) -> Result<Box<dyn PhysicalSystem<F>>> {
    let d = shape.0 * shape.1;
    match cfg.system {
        SystemKind::Optics | SystemKind::Microwave | SystemKind::Acoustic => {
            Ok(Box::new(perturbable_system::<F>(cfg, k, shape)?))
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
            Ok(Box::new(FreeSpaceSystem::<F>::new(f).with_context(|| format!("block {}", k + 1))?))
        }
        SystemKind::Fiber => {
            let fiber = FiberSystem::<F>::new(cfg.fiber.clone())?;
            Ok(Box::new(Resampled::new::<F>(fiber, d)))
        }
        SystemKind::Device => device_for_block::<F>(cfg, k, shape),
        SystemKind::Emulator => Ok(Box::new(Resampled::new::<F>(Emulated(emulator::<F>(cfg)?), d))),
        SystemKind::Digital => Ok(Box::new(Identity::new(d))),
    }
}

/// The system of block `k` for inputs of shape `shape`, for the kinds whose internal
/// parameters can be disturbed (see [`ff_physics::Perturbable`]): the optical medium, the
/// microwave and the acoustic cavity (behind their input resampling).
///
/// # Errors
/// Another system kind, or invalid system parameters.
pub fn perturbable_system<F: FftReal>(
    cfg: &ExperimentConfig,
    k: usize,
    shape: (usize, usize),
) -> Result<Box<dyn PerturbableSystem<F>>> {
    let d = shape.0 * shape.1;
    match cfg.system {
        SystemKind::Optics => {
            let o = optics_for_block(&cfg.optics, k, shape);
            Ok(Box::new(OpticsSystem::<F>::new(o).with_context(|| format!("block {}", k + 1))?))
        }
        SystemKind::Microwave => {
            let cavity = MicrowaveCavity::new(cfg.microwave.clone())?;
            Ok(Box::new(Resampled::new::<F>(cavity, d)))
        }
        SystemKind::Acoustic => {
            let cavity = AcousticCavity::new(cfg.acoustic.clone())?;
            Ok(Box::new(Resampled::new::<F>(cavity, d)))
        }
        other => anyhow::bail!(
            "the {} system cannot be perturbed (no drift model); use optics, microwave or acoustic",
            other.name()
        ),
    }
}

/// A twin standing in for the hardware it was fitted to: its queries count as physical.
struct Emulated<F: Real>(Twin<F>);

impl<F: Real> PhysicalSystem<F> for Emulated<F> {
    fn name(&self) -> String {
        format!("emulator ({})", self.0.name())
    }
    fn input_len(&self) -> usize {
        self.0.input_len()
    }
    fn output_len(&self) -> usize {
        self.0.output_len()
    }
    fn is_physical(&self) -> bool {
        true
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError> {
        self.0.forward_batch(input, output)
    }
}

/// The emulator of `cfg.emulator`, fitted once per process and configuration (every block,
/// the ablation and every method of a comparison reuse the same fit).
fn emulator<F: Real>(cfg: &ExperimentConfig) -> Result<Twin<F>> {
    static FITTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let e = &cfg.emulator;
    let source = match (&e.inputs, &e.outputs) {
        (Some(xp), Some(yp)) => Some((xp, yp)),
        (None, None) => None,
        _ => anyhow::bail!(
            "system \"emulator\" needs both emulator.inputs and emulator.outputs (measured pair CSVs), or neither for the built-in acoustic pairs"
        ),
    };
    let from = match source {
        Some((xp, yp)) => format!("{} and {}", xp.display(), yp.display()),
        None => "the built-in acoustic measurements".to_string(),
    };
    let key = format!("{from}|{}|{}", serde_json::to_string(&e.twin)?, std::any::type_name::<F>());
    let mut fitted = FITTED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, json)) = fitted.iter().find(|(k, _)| *k == key) {
        return Ok(serde_json::from_str(json)?);
    }
    let (x, y) = match source {
        Some((xp, yp)) => ff_data::read_pairs::<F>(xp, yp)?,
        None => ff_data::builtin_acoustic_pairs::<F>()?,
    };
    let (twin, fit) = Twin::fit_pairs("emulator", &x, &y, &e.twin)?;
    eprintln!(
        "emulator fitted on {} pairs from {}: train RMSE {:.4}, validation RMSE {:.4} (mean predictor {:.4})",
        x.rows(),
        from,
        fit.train_rmse,
        fit.val_rmse,
        fit.val_rmse_of_mean
    );
    fitted.push((key, serde_json::to_string(&twin)?));
    Ok(twin)
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

/// Connects block `k`'s device and checks that it takes the block's input width.
fn device_for_block<F: FftReal>(
    cfg: &ExperimentConfig,
    k: usize,
    shape: (usize, usize),
) -> Result<Box<dyn PhysicalSystem<F>>> {
    let d = &cfg.device;
    let transport = match (&d.command, &d.tcp) {
        (Some(cmd), _) => {
            let line = cmd
                .replace("{block}", &k.to_string())
                .replace("{rows}", &shape.0.to_string())
                .replace("{cols}", &shape.1.to_string());
            Transport::command_line(&line)?
        }
        (None, Some(list)) => {
            let addrs: Vec<&str> = list.split(',').map(str::trim).collect();
            let a = if addrs.len() == 1 { addrs[0] } else { addrs.get(k).copied().unwrap_or("") };
            let addr = a.parse().map_err(|e| {
                anyhow::anyhow!(
                    "block {}: invalid device address {a:?} in {list:?} ({e}); give HOST:PORT, one for all blocks or one per block",
                    k + 1
                )
            })?;
            Transport::Tcp(addr)
        }
        (None, None) => anyhow::bail!("system \"device\" needs --device-cmd or --device-tcp"),
    };
    let dev = DeviceSystem::<F>::connect(DeviceConfig { transport, timeout_ms: d.timeout_ms, attempts: d.attempts })
        .with_context(|| format!("block {}", k + 1))?;
    let want = shape.0 * shape.1;
    anyhow::ensure!(
        dev.input_len() == want,
        "block {}: the device {} takes {} inputs but the block feeds it {want} ({} x {}); start the device for this block's input shape",
        k + 1,
        dev.name(),
        dev.input_len(),
        shape.0,
        shape.1
    );
    Ok(Box::new(dev))
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
