//! `system = "emulator"`: a digital emulator of a physical layer, an MLP fitted to measured
//! input/output pairs as configured in `[emulator]` (the public PhyLL code's acoustic emulator).
//! Its queries stand for the hardware's and are counted as physical. One fit serves every block
//! (one device reused, as in the paper's acoustic experiment); each block's input is resampled
//! onto the emulator's input width as for the cavities.

use super::{SystemKindBuilder, SystemKindSpec};
use crate::config::{ExperimentConfig, SystemKind};
use crate::memory::{setting, sz, MemoryScale, Setting, Size};
use crate::systems::twin::Twin;
use anyhow::{bail, Result};
use ff_core::{MatMut, MatRef, PhysicalSystem, Real, SystemError};
use ff_physics::adapt::Resampled;
use ff_physics::fft::FftReal;
use std::sync::Mutex;

/// The emulator.
pub(crate) struct Emulator;

impl SystemKindSpec for Emulator {
    fn kind(&self) -> SystemKind {
        SystemKind::Emulator
    }

    fn name(&self) -> &'static str {
        "emulator"
    }

    /// Skip, as for the acoustic cavity it stands for.
    fn default_skip(&self) -> bool {
        true
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        let e = &cfg.emulator;
        if e.inputs.is_some() != e.outputs.is_some() {
            bail!("invalid emulator: give both emulator.inputs and emulator.outputs (the CSV files of measured inputs and of the outputs measured for them, row for row; --emulator-pairs INPUTS.csv,OUTPUTS.csv), or neither to fit the emulator to the measured acoustic pairs built into phyff");
        }
        e.twin.validate().map_err(|err| anyhow::anyhow!("invalid emulator.{err:#}"))?;
        Ok(())
    }

    /// Not known before the pairs are read.
    fn output_len(&self, _cfg: &ExperimentConfig, _input: Size) -> Size {
        Size(Some(0))
    }

    /// The fit: the MLP's weights with gradients and Adam moments, and the activations of its
    /// training rows.
    fn memory_parts(&self, cfg: &ExperimentConfig, scale: &MemoryScale) -> Vec<(&'static str, Size)> {
        let t = &cfg.emulator.twin;
        let products = t.hidden.windows(2).fold(Size(Some(0)), |acc, w| acc + sz(w[0]) * sz(w[1]));
        let widest = sz(t.hidden.iter().copied().max().unwrap_or(0));
        let fit = products * sz(4) + sz(2) * sz(t.samples) * sz(t.repeats.max(1)) * widest;
        vec![("emulator fit", fit * scale.real_bytes)]
    }

    fn memory_settings(&self) -> Vec<Setting> {
        vec![
            setting!("emulator.twin.hidden", None, emulator.twin.hidden),
            setting!("emulator.twin.samples", None, emulator.twin.samples),
        ]
    }

    /// The MLP's forward pass between its hidden layers.
    fn query_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let h = &cfg.emulator.twin.hidden;
        2.0 * h.windows(2).map(|w| (w[0] * w[1]) as f64).sum::<f64>()
    }

    /// The fit: forward and backward (`6` FLOPs per weight and row) over at least the 10 001
    /// built-in pairs, every epoch.
    fn setup_flops(&self, cfg: &ExperimentConfig) -> f64 {
        let t = &cfg.emulator.twin;
        let products: f64 = t.hidden.windows(2).map(|w| (w[0] * w[1]) as f64).sum();
        6.0 * t.epochs as f64 * t.samples.max(10_001) as f64 * t.repeats.max(1) as f64 * products
    }

    /// 0.1 J, the acoustic device it stands for (the built-in measured pairs are acoustic);
    /// change it (`--joules-per-query`) when the emulator stands for something else.
    fn joules_per_query(&self) -> Option<f64> {
        Some(1e-1)
    }
}

impl<F: FftReal> SystemKindBuilder<F> for Emulator {
    fn build(
        &self,
        cfg: &ExperimentConfig,
        _block: usize,
        shape: (usize, usize),
    ) -> Result<Box<dyn PhysicalSystem<F>>> {
        Ok(Box::new(Resampled::new::<F>(Emulated(emulator::<F>(cfg)?), shape.0 * shape.1)))
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
        _ => bail!(
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
