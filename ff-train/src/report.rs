//! Human-readable tables and machine-readable results.

use crate::config::ExperimentConfig;
use crate::trainer::FitSummary;
use serde::{Deserialize, Serialize};

/// The content of `result.json` written by `phyff train --out DIR`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainResult {
    /// phyff version that produced the file.
    pub phyff_version: String,
    /// Final test accuracy of the physical network.
    pub test_accuracy: f64,
    /// Final train accuracy of the physical network.
    pub train_accuracy: f64,
    /// Test accuracy of the same digital layers trained with the physical system removed
    /// (`null` when the ablation was not run).
    pub ablation_test_accuracy: Option<f64>,
    /// Train accuracy of the ablation.
    pub ablation_train_accuracy: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time of the physical network's run (training and evaluation), seconds.
    pub wall_seconds: f64,
    /// Wall time of the ablation run, seconds.
    pub ablation_wall_seconds: Option<f64>,
    /// Physical queries spent on training (one query = one input vector through one system).
    pub physical_queries: u64,
    /// Physical queries spent on evaluation.
    pub eval_physical_queries: u64,
    /// Digital floating-point operations of the physical network's run.
    pub digital_flops: u64,
    /// The seed of the run.
    pub seed: u64,
    /// Training and test set sizes.
    pub train_samples: usize,
    /// Test set size.
    pub test_samples: usize,
    /// The resolved configuration (defaults, config file and flags merged).
    pub config: ExperimentConfig,
    /// Per-epoch history of the physical network.
    pub history: Vec<crate::trainer::EpochRecord>,
}

/// Formats an integer with thousands separators (`1234567` -> `1,234,567`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Formats a FLOP count with an SI prefix (`1.23 GFLOP`).
pub fn flops(n: u64) -> String {
    let x = n as f64;
    let (v, p) = if x >= 1e12 {
        (x / 1e12, "T")
    } else if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else {
        (x, "")
    };
    format!("{v:.2} {p}FLOP")
}

/// The end-of-run table: the physical network beside its physics-removed ablation.
pub fn train_table(system: &str, pnn: &FitSummary, ablation: Option<&FitSummary>) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<28} {:>9} {:>10} {:>9} {:>17} {:>14}\n",
        "model", "test acc", "train acc", "wall (s)", "physical queries", "digital work"
    ));
    let mut row = |name: &str, f: &FitSummary| {
        s.push_str(&format!(
            "{:<28} {:>9.4} {:>10.4} {:>9.1} {:>17} {:>14}\n",
            name,
            f.test_accuracy,
            f.train_accuracy,
            f.wall_seconds,
            thousands(f.train_physical_queries),
            flops(f.digital_flops)
        ));
    };
    row(&format!("PNN ({system} + FF)"), pnn);
    if let Some(a) = ablation {
        row("physics removed (ablation)", a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(flops(2_500_000_000), "2.50 GFLOP");
    }
}
