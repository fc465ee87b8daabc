//! Human-readable tables and machine-readable results.

use crate::baselines::reference::{References, KNN_K};
use crate::config::ExperimentConfig;
use crate::record::RunRecord;
use serde::{Deserialize, Serialize};

/// The content of `result.json` written by `phyff train --out DIR`: a document of several runs
/// (the physical network's, and the accuracies of its ablation, the supervised network, the
/// untrained control and the references), filled from their [`RunRecord`]s.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainResult {
    /// phyff version that produced the file.
    pub phyff_version: String,
    /// Final test accuracy of the physical network (unsupervised mode: of its linear read-out).
    pub test_accuracy: f64,
    /// Final train accuracy of the physical network (`null` when it was not measured:
    /// `train_eval = false` or `--no-train-eval`).
    pub train_accuracy: Option<f64>,
    /// Test accuracy of the same digital layers trained with the physical system removed
    /// (`null` when the ablation was not run).
    pub ablation_test_accuracy: Option<f64>,
    /// Train accuracy of the ablation (`null` when not run or not measured).
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
    /// Digital floating-point operations of the physical network's run, training and
    /// evaluation ([`RunRecord::total_flops`]).
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
    /// Unsupervised mode: test accuracy of the supervised network trained beside it (same
    /// seed, data and epochs); `null` otherwise.
    #[serde(default)]
    pub supervised_test_accuracy: Option<f64>,
    /// Unsupervised mode: train accuracy of the supervised network.
    #[serde(default)]
    pub supervised_train_accuracy: Option<f64>,
    /// Unsupervised mode: wall time of the supervised network's run, seconds.
    #[serde(default)]
    pub supervised_wall_seconds: Option<f64>,
    /// Unsupervised mode: test accuracy of the same read-out on the untrained network's
    /// activities (the control: what the physics and random affine maps give without FF).
    #[serde(default)]
    pub untrained_test_accuracy: Option<f64>,
    /// Test accuracy of 5-nearest neighbours on standardised features, same split
    /// (`ff_train::reference`); `null` in files written before it existed.
    #[serde(default)]
    pub reference_knn_accuracy: Option<f64>,
    /// Test accuracy of a logistic regression on the raw inputs, same split and seed
    /// (`ff_train::reference`); `null` in files written before it existed.
    #[serde(default)]
    pub reference_logistic_accuracy: Option<f64>,
    /// Whether the run kept the best epoch by validation accuracy (`keep_best`).
    #[serde(default)]
    pub keep_best: bool,
    /// `keep_best`: the epoch of the PNN that was kept (its accuracies are the ones above).
    #[serde(default)]
    pub kept_epoch: Option<usize>,
    /// `keep_best`: the kept PNN's accuracy on the validation split.
    #[serde(default)]
    pub validation_accuracy: Option<f64>,
    /// `keep_best`: samples in the validation split (taken out of the training split).
    #[serde(default)]
    pub validation_samples: Option<usize>,
    /// `keep_best`: the epoch of the ablation that was kept.
    #[serde(default)]
    pub ablation_kept_epoch: Option<usize>,
}

/// Formats an integer with thousands separators (`1234567` -> `1,234,567`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
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

/// The row label of the trained network: `PNN (optics + FF)` for a physical system, and for the
/// digital-only system, which has no physics, `digital FF network` (suffix appended, e.g.
/// `, unsupervised`). `trained = false` labels the untrained network of the read-out control.
fn network_label(system: &str, trained: bool) -> String {
    match (system == "digital", trained) {
        (true, true) => "digital FF network (no physics)".to_string(),
        (true, false) => "digital network, untrained + read-out".to_string(),
        (false, true) => format!("PNN ({system} + FF)"),
        (false, false) => format!("PNN ({system}), untrained + read-out"),
    }
}

/// The end-of-run table: the physical network beside its physics-removed ablation and the
/// reference classifiers on the same split.
pub fn train_table(
    system: &str,
    pnn: &RunRecord,
    ablation: Option<&RunRecord>,
    references: Option<&References>,
) -> String {
    let mut rows = vec![(network_label(system, true), pnn)];
    rows.extend(ablation.map(|a| ("physics removed (ablation)".to_string(), a)));
    reference_rows(&mut rows, references);
    table(&rows)
}

/// Appends the two reference rows.
fn reference_rows<'a>(rows: &mut Vec<(String, &'a RunRecord)>, references: Option<&'a References>) {
    if let Some(r) = references {
        rows.push((format!("reference: {KNN_K}-nearest neighbours"), &r.knn));
        rows.push(("reference: logistic regression".to_string(), &r.logistic));
    }
}

/// The sentence under the table: whether the trained network beats the reference classifiers
/// and its ablation, in points of test accuracy.
pub fn verdict(network: &str, test_accuracy: f64, ablation: Option<f64>, references: &References) -> String {
    let (knn, logistic) = (references.knn.test_accuracy, references.logistic.test_accuracy);
    let best = references.best_test_accuracy();
    let d = 100.0 * (test_accuracy - best);
    // Accuracies are fractions of the same test set: equal ones are a tie, not a loss.
    let tie = (test_accuracy - best).abs() < 1e-12;
    let mut s = if tie {
        format!("The {network} matches the better reference")
    } else if d > 0.0 {
        format!("The {network} beats both references by {d:.2} points or more")
    } else if test_accuracy > knn.min(logistic) {
        format!("The {network} beats one reference but trails the better one by {:.2} points", -d)
    } else {
        format!(
            "The {network} does not beat the references: a trivial classifier does better ({:.2} points below the better one)",
            -d
        )
    };
    s.push_str(&format!(" ({KNN_K}-NN {knn:.4}, logistic regression {logistic:.4})"));
    if let Some(a) = ablation {
        let da = 100.0 * (test_accuracy - a);
        let word = if da.abs() < 1e-9 {
            "ties with"
        } else if da > 0.0 {
            "beats"
        } else {
            "does not beat"
        };
        s.push_str(&format!(", and {word} its ablation ({da:+.2} points)"));
    }
    s.push('.');
    s
}

/// The end-of-run table of unsupervised mode: the unsupervised network (accuracy of its linear
/// read-out) beside the supervised network trained with the same seed, data and epochs, the
/// read-out on the untrained network (control) and the unsupervised physics-removed ablation,
/// each when run.
pub fn unsupervised_table(
    system: &str,
    unsupervised: &RunRecord,
    supervised: Option<&RunRecord>,
    untrained: Option<&RunRecord>,
    ablation: Option<&RunRecord>,
    references: Option<&References>,
) -> String {
    let trained = network_label(system, true);
    let mut rows = vec![(format!("{trained}, unsupervised"), unsupervised)];
    rows.extend(supervised.map(|s| (format!("{trained}, supervised"), s)));
    rows.extend(untrained.map(|u| (network_label(system, false), u)));
    rows.extend(ablation.map(|a| ("physics removed, unsupervised".to_string(), a)));
    reference_rows(&mut rows, references);
    table(&rows)
}

/// One row per run: accuracies, wall time, training queries, digital work (training,
/// evaluation and twin fitting: [`RunRecord::total_flops`]). The model column
/// is at least 28 characters wide, wider for longer names; a train accuracy that was not
/// measured shows as `-`.
fn table(rows: &[(String, &RunRecord)]) -> String {
    let w = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0).max(28);
    let mut s = String::new();
    s.push_str(&format!(
        "{:<w$} {:>9} {:>10} {:>9} {:>17} {:>14}\n",
        "model", "test acc", "train acc", "wall (s)", "physical queries", "digital work"
    ));
    for (name, f) in rows {
        s.push_str(&format!(
            "{:<w$} {:>9.4} {:>10} {:>9.1} {:>17} {:>14}\n",
            name,
            f.test_accuracy,
            f.train_accuracy.map_or_else(|| "-".to_string(), |a| format!("{a:.4}")),
            f.wall_seconds,
            thousands(f.training.physical_queries),
            flops(f.total_flops())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::Counters;

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(flops(2_500_000_000), "2.50 GFLOP");
    }

    /// A run with test accuracy `acc` and nothing else.
    fn record(acc: f64) -> RunRecord {
        RunRecord {
            method: "m".into(),
            test_accuracy: acc,
            train_accuracy: None,
            wall_seconds: 0.1,
            training: Counters { physical_queries: 0, digital_flops: 1000 },
            evaluation: Counters::default(),
            twin: Counters::default(),
            epochs: 0,
            history: Vec::new(),
            points: Vec::new(),
            kept: None,
        }
    }

    #[test]
    fn tables_align_their_columns() {
        let f = |acc| RunRecord {
            train_accuracy: Some(acc),
            test_accuracy: acc,
            wall_seconds: 1.0,
            training: Counters { physical_queries: 1234, digital_flops: 4_000_000 },
            evaluation: Counters { physical_queries: 10, digital_flops: 1_000_000 },
            ..record(acc)
        };
        let t = train_table("optics", &f(0.9), Some(&f(0.8)), None);
        assert!(t.starts_with(&format!("{:<28} ", "model")), "{t}");
        // Training queries, and all the digital work, evaluation included.
        let row = t.lines().nth(1).unwrap();
        assert!(row.contains(" 1,234 ") && row.contains("5.00 MFLOP"), "{t}");
        assert!(t.contains("PNN (optics + FF)") && t.contains("physics removed (ablation)"), "{t}");
        // A train accuracy that was not measured is shown as missing, not as 0.
        let skipped = RunRecord { train_accuracy: None, ..f(0.8) };
        let t = train_table("digital", &skipped, None, None);
        let row = t.lines().nth(1).unwrap();
        assert!(row.contains("0.8000") && row.contains(" - ") && !row.contains("0.0000"), "{t}");
        // The digital-only system has no physics: it is not called a PNN.
        assert!(row.starts_with("digital FF network (no physics)") && !t.contains("PNN"), "{t}");
        let u = unsupervised_table("digital", &f(0.7), None, Some(&f(0.6)), None, None);
        assert!(!u.contains("PNN") && u.contains("digital network, untrained + read-out"), "{u}");
        let u = unsupervised_table("optics", &f(0.7), Some(&f(0.9)), None, None, None);
        let lines: Vec<&str> = u.lines().collect();
        assert_eq!(lines.len(), 3, "{u}");
        assert!(lines[1].starts_with("PNN (optics + FF), unsupervised") && lines[1].contains("0.7000"), "{u}");
        assert!(lines[2].starts_with("PNN (optics + FF), supervised") && lines[2].contains("0.9000"), "{u}");
        // Every row has its accuracy column at the same position.
        let col = lines[0].find("test acc").unwrap() + "test acc".len();
        assert!(lines[1..].iter().all(|l| &l[col - 6..col] == "0.7000" || &l[col - 6..col] == "0.9000"), "{u}");
    }

    #[test]
    fn the_verdict_compares_with_the_references_and_the_ablation() {
        let f = record;
        let refs = References { knn: f(0.88), logistic: f(0.80) };
        let t = train_table("optics", &f(0.9), Some(&f(0.85)), Some(&refs));
        assert!(t.contains("reference: 5-nearest neighbours") && t.contains("reference: logistic regression"), "{t}");
        assert_eq!(t.lines().count(), 5, "{t}");
        let v = verdict("PNN", 0.90, Some(0.85), &refs);
        assert!(v.starts_with("The PNN beats both references by 2.00 points"), "{v}");
        assert!(v.contains("beats its ablation (+5.00 points)"), "{v}");
        let v = verdict("PNN", 0.84, None, &refs);
        assert!(v.contains("beats one reference but trails the better one by 4.00 points"), "{v}");
        let v = verdict("PNN", 0.70, Some(0.75), &refs);
        assert!(v.contains("does not beat the references") && v.contains("does not beat its ablation (-5.00"), "{v}");
        // Equal accuracies are ties, not "-0.00 points below".
        let v = verdict("PNN", 0.88, Some(0.88), &refs);
        assert!(v.starts_with("The PNN matches the better reference") && v.contains("ties with its ablation"), "{v}");
        assert!(!v.contains("-0.00"), "{v}");
    }
}
