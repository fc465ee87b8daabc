//! `phyff compare`: every training method on the same system, data, seeds and epochs.

use crate::TrainArgs;
use anyhow::Result;
use clap::Args;
use ff_train::baselines::TwinInputs;
use ff_train::config::{ExperimentConfig, Precision};
use ff_train::experiments::compare::compare_table;
use ff_train::experiments::{compare, CompareOptions};
use ff_train::systems::twin::TwinConfig;

/// Flags of `phyff compare` (besides every `train` flag).
#[derive(Args)]
pub struct CompareArgs {
    /// The experiment (system, data, blocks, epochs, seed, --out DIR, ...).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Number of seeds (the seed, seed + 1, ...); accuracy is reported as mean ± sd.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    pub seeds: usize,
    /// How the digital twins of PAT and in-silico training are fitted.
    #[command(flatten)]
    pub twins: TwinArgs,
    /// Energy of one digital FLOP, in joules (default 1e-12).
    #[arg(long, allow_negative_numbers = true)]
    pub joules_per_flop: Option<f64>,
    /// Energy of one physical query of the chosen system, in joules.
    #[arg(long, allow_negative_numbers = true)]
    pub joules_per_query: Option<f64>,
}

/// The flags that set how digital twins are fitted (`phyff compare` and `phyff drift`).
#[derive(Args)]
pub struct TwinArgs {
    /// Inputs sampled per block to fit each digital twin.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    pub twin_samples: Option<usize>,
    /// Epochs of each twin fit.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    pub twin_epochs: Option<usize>,
    /// Where the twins' inputs come from: `box` (every entry uniform in the block's initial
    /// input range, widened by 25 %), `data` (the training samples pushed through the blocks
    /// before with the initial affine maps, plus Gaussian jitter) or `mixed` (half each).
    /// Default: `box`.
    #[arg(long, value_parser = ["box", "data", "mixed"])]
    pub twin_inputs: Option<String>,
    /// Jitter of `--twin-inputs data|mixed`: Gaussian noise of this fraction of each
    /// feature's standard deviation (dimensionless).
    #[arg(long, default_value_t = ff_train::baselines::e2e::DEFAULT_TWIN_JITTER, allow_negative_numbers = true)]
    pub twin_jitter: f64,
}

impl TwinArgs {
    /// The twin fit (`defaults` with the sample and epoch counts given) and the input source
    /// (`default_inputs` unless `--twin-inputs` is given; `--twin-jitter` applies either way).
    ///
    /// # Errors
    /// A bad `--twin-jitter`.
    pub fn resolve(&self, defaults: &TwinConfig, default_inputs: TwinInputs) -> Result<(TwinConfig, TwinInputs)> {
        let twin = TwinConfig {
            samples: self.twin_samples.unwrap_or(defaults.samples),
            epochs: self.twin_epochs.unwrap_or(defaults.epochs),
            ..defaults.clone()
        };
        let inputs = self.twin_inputs.as_deref().unwrap_or(default_inputs.name());
        Ok((twin, TwinInputs::from_flag(inputs, self.twin_jitter)?))
    }
}

/// Runs the comparison and prints the table.
pub fn compare_cmd(args: &CompareArgs) -> Result<()> {
    // Compare always runs the ablation: the resolved configuration with it on, checked again.
    let cfg = ExperimentConfig { ablation: true, ..args.train.resolve()?.into_inner() }.validate()?;
    let mut opts = CompareOptions { seeds: args.seeds, out: args.train.out.clone(), ..CompareOptions::default() };
    (opts.twin, opts.twin_inputs) = args.twins.resolve(&opts.twin, opts.twin_inputs)?;
    if let Some(j) = args.joules_per_flop {
        anyhow::ensure!(j.is_finite() && j >= 0.0, "invalid --joules-per-flop: must be >= 0, got {j}");
        opts.energy.joules_per_flop = j;
    }
    if let Some(j) = args.joules_per_query {
        anyhow::ensure!(j.is_finite() && j >= 0.0, "invalid --joules-per-query: must be >= 0, got {j}");
        opts.energy.joules_per_query.insert(cfg.system.name().to_string(), j);
    }
    eprintln!(
        "phyff compare: system {}, data {}, {} blocks x {}, {} epochs, {} seed(s) from {}",
        cfg.system.name(),
        cfg.data,
        cfg.blocks,
        cfg.hidden,
        cfg.epochs,
        opts.seeds,
        cfg.seed
    );
    let mut last = String::new();
    let progress = |m: &str, e: usize, a: f64| {
        if m != last || e == cfg.epochs {
            eprintln!("  {m}: epoch {e}/{} test accuracy {a:.4}", cfg.epochs);
            last = m.to_string();
        }
    };
    let report = match cfg.precision {
        Precision::F32 => compare::<f32>(&cfg, &opts, progress)?,
        Precision::F64 => compare::<f64>(&cfg, &opts, progress)?,
    };
    println!("\n{} on {}, {} epochs, {} seed(s)\n", report.system, report.data, cfg.epochs, opts.seeds);
    print!("{}", compare_table(&report));
    println!(
        "energy model: {:e} J/FLOP, {:e} J/query ({})",
        opts.energy.joules_per_flop,
        opts.energy.joules_per_query.get(cfg.system.name()).copied().unwrap_or(f64::NAN),
        report.system
    );
    if let Some(dir) = &opts.out {
        println!("wrote {}/{{result.json, comparison.json, accuracy.svg/png, cost.svg/png}}", dir.display());
    }
    Ok(())
}
