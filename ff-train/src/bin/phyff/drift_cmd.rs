//! `phyff drift`: FF and PAT while the physical system drifts and then changes suddenly.

use crate::compare_cmd::TwinArgs;
use crate::TrainArgs;
use anyhow::Result;
use clap::Args;
use ff_train::config::Precision;
use ff_train::experiments::drift::{check, drift_table, DriftOptions};
use ff_train::experiments::drift_experiment;
use ff_train::output::report::thousands;

/// Flags of `phyff drift` (besides every `train` flag: --system optics|microwave|acoustic,
/// --data, --epochs, --seed, --out DIR, ...).
#[derive(Args)]
pub struct DriftArgs {
    /// The experiment (system, data, blocks, epochs, seed, --out DIR, ...). The training budget
    /// of both methods is what FF spends in --epochs epochs, in physical queries.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Training queries between two slow-drift steps (0 = no slow drift).
    #[arg(long, default_value_t = DriftOptions::default().period, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    pub drift_period: u64,
    /// Strength of each slow-drift step, in the system's unit (optics: the fraction of the
    /// medium's transmission amplitude replaced by a fresh draw; cavities: a displacement in
    /// wavelengths).
    #[arg(long, default_value_t = DriftOptions::default().slow_strength, allow_negative_numbers = true)]
    pub drift_strength: f64,
    /// When the sudden change happens, as a fraction (strictly between 0 and 1) of the training
    /// budget; the same query count for both methods.
    #[arg(long, default_value_t = DriftOptions::default().sudden_at, allow_negative_numbers = true)]
    pub sudden_at: f64,
    /// Strength of the sudden change, in the system's unit (0 = none).
    #[arg(long, default_value_t = DriftOptions::default().sudden_strength, allow_negative_numbers = true)]
    pub sudden_strength: f64,
    /// Test evaluations, evenly spaced over the budget (plus one before training and one at
    /// the sudden change); evaluations do not advance the drift.
    #[arg(long, default_value_t = DriftOptions::default().evals, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    pub evals: usize,
    /// How PAT's digital twins are fitted (before any drift).
    #[command(flatten)]
    pub twins: TwinArgs,
    /// Also run PAT with twins refitted on the device right after the sudden change (the
    /// refit's queries come out of its training budget).
    #[arg(long)]
    pub refit_twins: bool,
    /// Also run PAT with the same refit at no cost (the drift clock paused while it samples the
    /// device): the best a current twin can do for PAT.
    #[arg(long)]
    pub oracle_twins: bool,
}

/// Runs the experiment, printing progress to stderr and the table to stdout.
pub fn drift_cmd(args: &DriftArgs) -> Result<()> {
    anyhow::ensure!(args.train.resume.is_none(), "phyff drift does not resume runs; drop --resume");
    let cfg = args.train.resolve()?;
    let defaults = DriftOptions::default();
    let (twin, twin_inputs) = args.twins.resolve(&defaults.twin, defaults.twin_inputs)?;
    let opts = DriftOptions {
        period: args.drift_period,
        slow_strength: args.drift_strength,
        sudden_at: args.sudden_at,
        sudden_strength: args.sudden_strength,
        evals: args.evals,
        twin,
        twin_inputs,
        refit_twins: args.refit_twins,
        oracle_twins: args.oracle_twins,
        out: args.train.out.clone(),
        ..defaults
    };
    check(&cfg, &opts)?;
    eprintln!(
        "phyff drift: system {}, data {}, {} blocks x {}, budget {} FF epochs, seed {}; slow drift {} every {} training \
         queries, sudden change {} at {:.0} % of the budget",
        cfg.system.name(),
        cfg.data,
        cfg.blocks,
        cfg.hidden,
        cfg.epochs,
        cfg.seed,
        opts.slow_strength,
        thousands(opts.period),
        opts.sudden_strength,
        100.0 * opts.sudden_at
    );
    let progress =
        |m: &str, q: u64, a: f64| eprintln!("  {m}: {:>10} training queries, test accuracy {a:.4}", thousands(q));
    let log = |line: &str| eprintln!("  {line}");
    let report = match cfg.precision {
        Precision::F32 => drift_experiment::<f32>(&cfg, &opts, progress, log)?,
        Precision::F64 => drift_experiment::<f64>(&cfg, &opts, progress, log)?,
    };
    println!(
        "\n{} on {}, seed {}: budget {} training queries per method ({} FF epochs), sudden change {} at {} queries; \
         slow drift {} every {}\n",
        report.system,
        report.data,
        report.seed,
        thousands(report.budget_queries),
        report.epochs,
        report.sudden_strength,
        thousands(report.sudden_at_queries),
        report.drift_strength,
        thousands(report.drift_period)
    );
    print!("{}", drift_table(&report));
    println!(
        "recovery: training queries after the change until test accuracy is back within {:.0} points of its value \
         before it (resolution: the evaluation spacing, {} queries)",
        100.0 * report.recovery_tolerance,
        thousands(report.budget_queries / opts.evals as u64)
    );
    for t in &report.twins {
        println!(
            "PAT twin of block {} ({} inputs, undrifted device): validation RMSE {:.4}, mean predictor {:.4}",
            t.block, report.twin_inputs, t.val_rmse, t.val_rmse_of_mean
        );
    }
    for (ts, which) in [(&report.refit_twins, "refitted"), (&report.oracle_twins, "oracle")] {
        for t in ts {
            println!(
                "{which} twin of block {} (after the change): validation RMSE {:.4}, mean predictor {:.4}",
                t.block, t.val_rmse, t.val_rmse_of_mean
            );
        }
    }
    for pat in report.methods.iter().filter(|m| !m.twin_error.is_empty()) {
        let s = report.sudden_at_queries;
        let pick = [
            ("at the start", pat.twin_error.first()),
            ("just before the change", pat.twin_error.iter().rev().find(|e| e.queries < s)),
            ("just after it", pat.twin_error.iter().find(|e| e.queries >= s)),
            ("at the end", pat.twin_error.last()),
        ];
        println!(
            "{}: twins' RMSE on the blocks' test inputs against the device then, relative to a constant (per block):",
            pat.run.method
        );
        for (when, e) in pick {
            if let Some(e) = e {
                let v: Vec<String> = e.relative_rmse.iter().map(|v| format!("{v:.2}")).collect();
                println!("  {when:<24} ({:>7} queries): {}", thousands(e.queries), v.join(" / "));
            }
        }
    }
    if let Some(dir) = &opts.out {
        println!("wrote {}/{{drift.json, drift.svg, drift.png}}", dir.display());
    }
    Ok(())
}
