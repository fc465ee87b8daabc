//! The energy model of the comparison: joules per digital FLOP and per physical query.
//!
//! Orders of magnitude, not measurements; every number is configurable.
//! - **Digital**: 1 pJ per FLOP. A CPU-class processor spends ~1-10 pJ per double-precision
//!   FLOP at the core (Horowitz, ISSCC 2014: a 64-bit floating-point FMA costs ~20 pJ at
//!   45 nm, ~1-4 pJ at recent nodes, before memory traffic); 1 pJ is the optimistic end,
//!   so it favours the digital methods.
//! - **Optics** (SLM + camera, one frame per query): 1 mJ. A liquid-crystal SLM and a
//!   CMOS camera draw a few watts together and run at ~1 kHz at best, so one frame costs
//!   ~1-5 mJ of electronics; the laser light itself (mW for 1 ms, ~uJ) is negligible.
//! - **Microwave** (metasurface reconfiguration + 20-point |S21| sweep): 10 mJ: a compact
//!   vector network analyser draws ~10 W and sweeps 20 points in ~1 ms.
//! - **Acoustic** (loudspeaker multi-tone burst + microphone + FFT): 0.1 J: ~1 W of audio
//!   electronics for a ~100 ms recording (the tones must ring through the cavity).
//! - **Emulator**: 0.1 J, the acoustic device it stands for (the measured pairs are acoustic);
//!   change it when the emulator stands for something else.
//! - **Free space** (SLM + camera, as optics): 1 mJ.
//! - **Fibre** (pulse shaper + spectrometer, one spectrum per query): 1 mJ, the same order as
//!   an SLM frame (a programmable pulse shaper is an SLM).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Joules per digital FLOP and per physical query of each system (keys are system names as
/// in `--system`: `optics`, `microwave`, `acoustic`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyModel {
    /// Energy of one digital floating-point operation, in joules.
    pub joules_per_flop: f64,
    /// Energy of one physical query (one sample through one block's system), in joules.
    pub joules_per_query: BTreeMap<String, f64>,
}

impl Default for EnergyModel {
    /// The defaults documented in the module docs.
    fn default() -> Self {
        let joules_per_query = [
            ("optics", 1e-3),
            ("microwave", 1e-2),
            ("acoustic", 1e-1),
            ("emulator", 1e-1),
            ("freespace", 1e-3),
            ("fiber", 1e-3),
        ]
        .map(|(k, v)| (k.to_string(), v));
        EnergyModel { joules_per_flop: 1e-12, joules_per_query: joules_per_query.into_iter().collect() }
    }
}

impl EnergyModel {
    /// Energy in joules of `queries` physical queries to `system` and `flops` digital FLOPs.
    ///
    /// # Errors
    /// When the model has no per-query energy for `system` (add it to `joules_per_query`).
    pub fn energy(&self, system: &str, queries: u64, flops: u64) -> anyhow::Result<f64> {
        let q = if queries == 0 {
            0.0
        } else {
            *self.joules_per_query.get(system).ok_or_else(|| {
                anyhow::anyhow!(
                    "energy model has no joules_per_query for system {system:?}; known: {:?}; add one",
                    self.joules_per_query.keys().collect::<Vec<_>>()
                )
            })?
        };
        Ok(queries as f64 * q + flops as f64 * self.joules_per_flop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_adds_queries_and_flops() {
        let m = EnergyModel::default();
        let e = m.energy("optics", 1000, 2_000_000_000_000).unwrap();
        assert!((e - (1.0 + 2.0)).abs() < 1e-12, "{e}");
        assert_eq!(m.energy("nowhere", 0, 10).unwrap(), 1e-11);
        assert!(m.energy("nowhere", 1, 0).unwrap_err().to_string().contains("nowhere"));
    }
}
