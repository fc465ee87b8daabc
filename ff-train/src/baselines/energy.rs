//! The energy model of the comparison: joules per digital FLOP and per physical query.
//!
//! Orders of magnitude, not measurements; every number is configurable.
//! - **Digital**: 1 pJ per FLOP. A CPU-class processor spends ~1-10 pJ per double-precision
//!   FLOP at the core (Horowitz, ISSCC 2014: a 64-bit floating-point FMA costs ~20 pJ at
//!   45 nm, ~1-4 pJ at recent nodes, before memory traffic); 1 pJ is the optimistic end,
//!   so it favours the digital methods.
//! - **A physical query**: each kind's own default, with its reasoning, in its entry of the
//!   table of kinds ([`crate::systems::SystemKindSpec::joules_per_query`]): optics 1 mJ (SLM +
//!   camera frame), microwave 10 mJ (metasurface + `|S21|` sweep), acoustic 0.1 J (a ~100 ms
//!   recording), emulator 0.1 J (the acoustic device it stands for), free space 1 mJ, fibre 1 mJ
//!   (pulse shaper + spectrometer); none for an external device (give `--joules-per-query`).

use crate::config::SystemKind;
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
    /// The defaults documented in the module docs: 1 pJ per FLOP, and the default per query of
    /// every kind that has one.
    fn default() -> Self {
        let joules_per_query = SystemKind::ALL
            .into_iter()
            .filter_map(|k| Some((k.name().to_string(), k.spec().joules_per_query()?)))
            .collect();
        EnergyModel { joules_per_flop: 1e-12, joules_per_query }
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

    /// The per-query defaults, gathered from the table of kinds, are the numbers the model had
    /// when it listed them itself.
    #[test]
    fn default_energies_per_query() {
        let model = EnergyModel::default();
        let got: Vec<(&str, f64)> = model.joules_per_query.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let want = [
            ("acoustic", 0.1),
            ("emulator", 0.1),
            ("fiber", 0.001),
            ("freespace", 0.001),
            ("microwave", 0.01),
            ("optics", 0.001),
        ];
        assert_eq!(got, want);
        assert_eq!(model.joules_per_flop, 1e-12);
    }
}
