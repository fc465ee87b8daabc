//! `phyff`: train simulated physical neural networks with model-free forward-forward learning.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ff_core::{LrSchedule, NegativeMode};
use ff_train::config::{CheckedConfig, ExperimentConfig, Mode, Objective, Precision, SystemKind};
use ff_train::output::report::{train_table, unsupervised_table, verdict};
use ff_train::trainer::EpochRecord;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

mod compare_cmd;
mod drift_cmd;
mod export_cmd;
mod sweep_cmd;

#[derive(Parser)]
#[command(name = "phyff", version, about = "Train deep physical neural networks without backpropagation (PhyLL)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a physical network (default: 2-block optical PNN on the built-in digits) and its
    /// physics-removed ablation, then print a comparison table. With --unsupervised: train
    /// without labels on hybrid negatives, fit a linear read-out, and compare with supervised.
    Train(Box<TrainArgs>),
    /// Reload a model file and measure its accuracy on the split it was trained with.
    Eval {
        /// The model file written by `phyff train --out DIR` (DIR/model.json), or the run's
        /// DIR/checkpoint.json to measure the model after its last completed epoch (a run that
        /// stopped, or one still going).
        #[arg(long)]
        model: PathBuf,
        /// Predict from the summed goodness of blocks N.. only (0, the default: every block;
        /// Hinton's paper scores MNIST with all but the first hidden layer: 1). Supervised
        /// models only.
        #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true, value_parser = whole::<usize>)]
        score_from_block: usize,
    },
    /// Print the default configuration as TOML (a starting point for --config).
    Config,
    /// Compare training methods (FF, ideal backprop, PAT, in-silico, ablation, digital MLP)
    /// on the same system, data, seeds and epochs: table, result.json and plots.
    Compare(Box<compare_cmd::CompareArgs>),
    /// Train FF (PhyLL) and PAT (twin fitted before training) while the physical system drifts
    /// slowly and then changes suddenly: accuracy against training queries, recovery time,
    /// drift.json and a plot.
    Drift(Box<drift_cmd::DriftArgs>),
    /// Write a model's weights, biases and prototypes as safetensors or npz, for numpy and
    /// PyTorch (the JSON model stays the exact, resumable format).
    Export(export_cmd::ExportArgs),
    /// Sweeps over seeds and settings: plan one configuration per point, run them here or as a
    /// Slurm job array (resumable), collect one table with mean +- sd over seeds (docs/sweeps.md).
    Sweep(sweep_cmd::SweepArgs),
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// TOML configuration file; flags given here override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Physical system of every block. Default: by the shape of the data's samples, optics for
    /// images (digits, mnist, fashion), microwave for vectors (vowels, csv: tables), unless the
    /// --config file names one.
    #[arg(long, value_enum)]
    system: Option<SystemKind>,
    /// Dataset: digits | vowels | vowels:FILE | mnist, mnist:DIR | fashion, fashion:DIR | csv:FILE, csv:FILE#label=NAME or INDEX
    /// (digits and vowels are built in; a CSV's label is the last column unless #label= names it;
    /// cells are comma-separated unless #delim=; or #delim=tab says otherwise).
    #[arg(long)]
    data: Option<String>,
    /// Number of blocks.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    blocks: Option<usize>,
    /// Output size of each block's affine map.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    hidden: Option<usize>,
    /// Training epochs.
    #[arg(long, allow_negative_numbers = true)]
    epochs: Option<i64>,
    /// Mini-batch size (0 = full batch).
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Optimiser steps per block per mini-batch.
    #[arg(long, allow_negative_numbers = true)]
    n_inner: Option<i64>,
    /// SymBa sharpness alpha.
    #[arg(long, allow_negative_numbers = true)]
    alpha: Option<f64>,
    /// Local objective.
    #[arg(long, value_enum)]
    objective: Option<Objective>,
    /// Hardest wrong label as negative instead of a random one.
    #[arg(long)]
    hard_negatives: bool,
    /// Label band rows above and below images.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    band_rows: Option<usize>,
    /// Seed of every random choice.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<u64>)]
    seed: Option<u64>,
    /// Numerical precision.
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Side of the optical field in pixels (optics).
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    field: Option<usize>,
    /// Evaluate every this many epochs.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>)]
    eval_every: Option<usize>,
    /// Skip the physics-removed ablation.
    #[arg(long)]
    no_ablation: bool,
    /// Unsupervised forward-forward: hybrid negatives, no labels during training, then a linear
    /// read-out on the block activities; the supervised network is trained beside it.
    #[arg(long)]
    unsupervised: bool,
    /// Epochs of the linear read-out (unsupervised mode).
    #[arg(long, allow_negative_numbers = true)]
    readout_epochs: Option<i64>,
    /// In unsupervised mode, skip training the supervised network for comparison.
    #[arg(long)]
    no_supervised: bool,
    /// Skip measuring train accuracy at the end (saves K x L queries per training sample).
    #[arg(long)]
    no_train_eval: bool,
    /// Hold out validation_fraction (default 0.1) of the training split and keep the epoch
    /// with the best validation accuracy, for the PNN and its ablation (never chosen by test
    /// accuracy); recorded in result.json as kept_epoch.
    #[arg(long)]
    keep_best: bool,
    /// Seconds between checkpoint.json writes (default 30; also after the last epoch and on an
    /// error; 0: after every epoch).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    checkpoint_every: Option<f64>,
    /// Directory for result.json and model.json (written atomically), and checkpoint.json
    /// (see --checkpoint-every).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Continue the run checkpointed in DIR (DIR/checkpoint.json) with its saved configuration.
    /// Only --epochs (to extend the run) and how a device is reached (--device-cmd,
    /// --device-tcp, --device-timeout-ms, --device-attempts) may change; any other flag that
    /// differs from the saved run is refused. Outputs go to DIR.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "out"])]
    pub(crate) resume: Option<PathBuf>,
    /// Device command for --system device (stdio transport); {block}, {rows}, {cols} are
    /// replaced per block, e.g. "phyff-device --stdio --block {block} --input-shape {rows}x{cols}".
    #[arg(long, value_name = "\"PROGRAM ARGS\"")]
    device_cmd: Option<String>,
    /// Device address(es) for --system device (TCP transport): HOST:PORT, or one per block, comma-separated.
    #[arg(long, value_name = "HOST:PORT")]
    device_tcp: Option<String>,
    /// Time allowed for one device request, in milliseconds.
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<u64>)]
    device_timeout_ms: Option<u64>,
    /// Attempts per device request (reconnecting between attempts).
    #[arg(long, allow_negative_numbers = true, value_parser = whole::<u32>)]
    device_attempts: Option<u32>,
    /// Measured pairs for --system emulator: the inputs CSV and the outputs CSV, comma-separated
    /// (row i of the outputs answers row i of the inputs). Without it, the emulator is fitted to
    /// the measured acoustic pairs built into phyff (10 001 pairs, 20 -> 20).
    #[arg(long, value_name = "INPUTS.csv,OUTPUTS.csv")]
    emulator_pairs: Option<String>,
    /// Use only the first N training samples (a reduced run).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<usize>)]
    train_limit: Option<usize>,
    /// Use only the first N test samples (a reduced run).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<usize>)]
    test_limit: Option<usize>,
}

/// Parses the value of a flag that takes a whole number of type `T` (a count, a size, a seed).
/// These flags let a leading minus through to here (`allow_negative_numbers`), so that `-1` is
/// refused as a value of the flag, saying what it takes, instead of by clap as an unexpected
/// argument.
pub(crate) fn whole<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<T>() {
        return Ok(v);
    }
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    Err(match t.strip_prefix('-') {
        Some(rest) if rest.parse::<f64>().is_ok() => {
            format!("{t} is negative; give a whole number, 0 or more (see --help)")
        }
        _ if digits(t) => format!("{t} is too large for this flag; give a smaller whole number"),
        _ => format!("{t:?} is not a whole number; give digits only, e.g. 16"),
    })
}

fn non_negative(name: &str, v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| anyhow::anyhow!("invalid {name}: must be a positive whole number, got {v}"))
}

/// One flag given on the command line: its name and how it changes a configuration.
type FlagSetter<'a> = (&'static str, Box<dyn Fn(&mut ExperimentConfig) -> Result<()> + 'a>);

/// Flags that may differ from the saved configuration when a run is resumed: the length of the
/// run, how often it is checkpointed, and how to reach a device that may have moved (another
/// command line, address or timeout for the same instrument).
const RESUMABLE_FLAGS: [&str; 6] =
    ["--epochs", "--checkpoint-every", "--device-cmd", "--device-tcp", "--device-timeout-ms", "--device-attempts"];

impl TrainArgs {
    /// The configuration of a new run: the `--config` file (or the defaults) with every flag
    /// given applied on top, validated.
    pub(crate) fn resolve(&self) -> Result<CheckedConfig> {
        let (mut c, file_names_system) = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read config {}", p.display()))?;
                let c = ExperimentConfig::from_toml(&text)
                    .with_context(|| format!("invalid config file {}", p.display()))?;
                (c, text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("system")))
            }
            None => (ExperimentConfig::default(), false),
        };
        for (_, set) in self.setters() {
            set(&mut c)?;
        }
        if self.system.is_none() && !file_names_system {
            c.system = ff_train::config::default_system_for(&c.data);
        }
        c.validate()
    }

    /// The configuration of a resumed run: the `saved` one with the flags given applied. A flag
    /// that would change the saved run (anything but [`RESUMABLE_FLAGS`]) is refused, naming
    /// it and the saved value; a flag that repeats the saved value is accepted.
    pub(crate) fn resolve_resume(&self, saved: &ExperimentConfig, dir: &std::path::Path) -> Result<CheckedConfig> {
        let mut c = saved.clone();
        let mut refused = Vec::new();
        for (flag, set) in self.setters() {
            let mut changed = c.clone();
            set(&mut changed)?;
            if changed == c {
                continue;
            }
            if RESUMABLE_FLAGS.contains(&flag) {
                c = changed;
            } else {
                refused.push(flag);
            }
        }
        anyhow::ensure!(
            refused.is_empty(),
            "cannot resume {} with {}: the run continues with its saved configuration (see {}), and {} would change it. \
             Only the number of epochs and how the device is reached (its command, address, timeout and attempts) may differ on resume. \
             Drop {}, or start a new run with these settings: phyff train ... --out NEW_DIR",
            dir.display(),
            refused.join(", "),
            dir.join(ff_train::checkpoint::CHECKPOINT_FILE).display(),
            if refused.len() == 1 { "this flag" } else { "these flags" },
            if refused.len() == 1 { "it" } else { "them" },
        );
        c.validate()
    }

    /// Every flag given, in command-line order of the help, with how it sets the configuration.
    fn setters(&self) -> Vec<FlagSetter<'_>> {
        let mut s: Vec<FlagSetter<'_>> = Vec::new();
        macro_rules! flag {
            ($name:expr, $cond:expr, |$c:ident| $body:expr) => {
                if $cond {
                    s.push((
                        $name,
                        Box::new(move |$c: &mut ExperimentConfig| {
                            $body;
                            Ok(())
                        }),
                    ));
                }
            };
        }
        flag!("--system", self.system.is_some(), |c| c.system = self.system.unwrap());
        flag!("--data", self.data.is_some(), |c| c.data = self.data.clone().unwrap());
        flag!("--blocks", self.blocks.is_some(), |c| c.blocks = self.blocks.unwrap());
        flag!("--hidden", self.hidden.is_some(), |c| c.hidden = self.hidden.unwrap());
        flag!("--epochs", self.epochs.is_some(), |c| c.epochs = non_negative("epochs", self.epochs.unwrap())?);
        flag!("--batch-size", self.batch_size.is_some(), |c| c.batch_size = self.batch_size.unwrap());
        flag!("--lr", self.lr.is_some(), |c| c.lr = self.lr.unwrap());
        flag!("--n-inner", self.n_inner.is_some(), |c| c.n_inner = non_negative("n_inner", self.n_inner.unwrap())?);
        flag!("--alpha", self.alpha.is_some(), |c| c.alpha = self.alpha.unwrap());
        flag!("--objective", self.objective.is_some(), |c| c.objective = self.objective.unwrap());
        flag!("--hard-negatives", self.hard_negatives, |c| c.negatives = NegativeMode::Hardest);
        flag!("--band-rows", self.band_rows.is_some(), |c| c.band_rows = self.band_rows.unwrap());
        flag!("--seed", self.seed.is_some(), |c| c.seed = self.seed.unwrap());
        flag!("--precision", self.precision.is_some(), |c| c.precision = self.precision.unwrap());
        flag!("--field", self.field.is_some(), |c| c.optics.field_size = self.field.unwrap());
        flag!("--eval-every", self.eval_every.is_some(), |c| c.eval_every = self.eval_every.unwrap());
        flag!("--no-ablation", self.no_ablation, |c| c.ablation = false);
        flag!("--unsupervised", self.unsupervised, |c| c.mode = Mode::Unsupervised);
        flag!("--readout-epochs", self.readout_epochs.is_some(), |c| c.readout_epochs =
            non_negative("readout_epochs", self.readout_epochs.unwrap())?);
        flag!("--no-supervised", self.no_supervised, |c| c.supervised_baseline = false);
        flag!("--no-train-eval", self.no_train_eval, |c| c.train_eval = false);
        flag!("--keep-best", self.keep_best, |c| c.keep_best = true);
        flag!("--checkpoint-every", self.checkpoint_every.is_some(), |c| c.checkpoint_every =
            self.checkpoint_every.unwrap());
        // A transport given as a flag replaces the other one of the file or the saved run.
        flag!("--device-cmd", self.device_cmd.is_some(), |c| {
            c.device.command = self.device_cmd.clone();
            c.device.tcp = None
        });
        flag!("--device-tcp", self.device_tcp.is_some(), |c| {
            c.device.tcp = self.device_tcp.clone();
            c.device.command = None
        });
        flag!("--device-timeout-ms", self.device_timeout_ms.is_some(), |c| c.device.timeout_ms =
            self.device_timeout_ms.unwrap());
        flag!("--device-attempts", self.device_attempts.is_some(), |c| c.device.attempts =
            self.device_attempts.unwrap());
        flag!("--train-limit", self.train_limit.is_some(), |c| c.train_limit = self.train_limit);
        flag!("--test-limit", self.test_limit.is_some(), |c| c.test_limit = self.test_limit);
        if let Some(v) = &self.emulator_pairs {
            s.push((
                "--emulator-pairs",
                Box::new(move |c: &mut ExperimentConfig| {
                    let (x, y) = v.split_once(',').ok_or_else(|| {
                        anyhow::anyhow!(
                            "invalid --emulator-pairs {v:?}: give INPUTS.csv,OUTPUTS.csv (two paths, comma-separated)"
                        )
                    })?;
                    c.emulator.inputs = Some(x.into());
                    c.emulator.outputs = Some(y.into());
                    Ok(())
                }),
            ));
        }
        s
    }
}

/// Progress display: a bar on a terminal, periodic lines otherwise (CI logs): the first and
/// last epoch, every evaluated epoch, and at least one line a minute in between.
struct Progress {
    bar: Option<ProgressBar>,
    epochs: usize,
    current: String,
    last_line: std::time::Instant,
}

/// Longest silence between two progress lines when stderr is not a terminal.
const LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Progress {
    fn new(epochs: usize) -> Self {
        Progress { bar: None, epochs, current: String::new(), last_line: std::time::Instant::now() }
    }

    fn update(&mut self, model: &str, r: &EpochRecord) {
        let acc = match (r.train_accuracy, r.test_accuracy) {
            (Some(tr), Some(te)) => format!(" train {tr:.4} test {te:.4}"),
            (None, Some(te)) => format!(" test {te:.4}"),
            _ => String::new(),
        };
        let loss: Vec<String> = r.loss.iter().map(|l| format!("{l:.4}")).collect();
        let msg = format!("{model}: loss [{}]{acc}", loss.join(", "));
        if std::io::stderr().is_terminal() {
            if self.current != model {
                if let Some(b) = self.bar.take() {
                    b.finish();
                }
                let b = ProgressBar::new(self.epochs as u64);
                b.set_style(
                    ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} epochs {elapsed_precise} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                b.set_prefix(model.to_string());
                self.bar = Some(b);
                self.current = model.to_string();
            }
            if let Some(b) = &self.bar {
                b.set_position(r.epoch as u64);
                b.set_message(msg);
            }
        } else if r.test_accuracy.is_some()
            || r.epoch == 1
            || r.epoch == self.epochs
            || self.last_line.elapsed() >= LINE_EVERY
        {
            eprintln!("[{:>7.1} s] epoch {:>4}/{} {msg}", r.wall_seconds, r.epoch, self.epochs);
            self.last_line = std::time::Instant::now();
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

fn train_cmd(args: &TrainArgs) -> Result<()> {
    let (cfg, out) = match &args.resume {
        Some(dir) => {
            let saved = ff_train::checkpoint::checkpoint_config(&dir.join(ff_train::checkpoint::CHECKPOINT_FILE))?;
            let c = args.resolve_resume(&saved, dir)?;
            eprintln!("phyff train: resuming the run checkpointed in {}", dir.display());
            (c, Some(dir.as_path()))
        }
        None => (args.resolve()?, args.out.as_deref()),
    };
    let resume = args.resume.as_deref();
    if let Some(dir) = out {
        let earlier = ff_train::io::check_out_dir(dir)?;
        if resume.is_none() && !earlier.is_empty() {
            eprintln!(
                "warning: {} already holds {} of an earlier run; this run replaces each file only when it writes it (the checkpoint after its first epoch, the model and result at the end), so until then they describe the other run. Use an empty --out directory to keep runs apart.",
                dir.display(),
                earlier.join(", ")
            );
        }
    }
    let objective = match cfg.objective {
        Objective::Phyll => format!("PhyLL objective (alpha {})", cfg.alpha),
        Objective::Hinton => {
            format!("Hinton objective ({} of squares, theta {})", cfg.squares.unwrap_or_default().name(), cfg.theta)
        }
    };
    let mut schedule = match cfg.lr_schedule {
        LrSchedule::Constant => String::new(),
        s => format!(" ({})", s.name()),
    };
    if cfg.weight_decay != 0.0 {
        schedule += &format!(", weight decay {}", cfg.weight_decay);
    }
    let negatives = match (cfg.mode, cfg.negatives) {
        (Mode::Supervised, NegativeMode::Random) | (Mode::Unsupervised, _) => String::new(),
        (_, NegativeMode::Sampled) => {
            format!(", sampled negatives (temperature {})", cfg.train_config().negative_temperature)
        }
        (_, m) => format!(", {} negatives", m.name()),
    };
    eprintln!(
        "phyff train: {} mode, system {}, data {}, {} blocks x {}, {objective}{negatives}, {} epochs, lr {}{schedule}, n_inner {}, seed {}, {:?}",
        cfg.mode.name(),
        cfg.system.name(),
        cfg.data,
        cfg.blocks,
        cfg.hidden,
        cfg.epochs,
        cfg.lr,
        cfg.n_inner,
        cfg.seed,
        cfg.precision
    );
    let mut progress = Progress::new(cfg.epochs);
    let (pnn, ablation, supervised, untrained, references, result) = match (cfg.precision, resume) {
        (Precision::F32, None) => {
            let o = ff_train::run::train::<f32>(&cfg, out, |m, r| progress.update(m, r))?;
            (o.pnn, o.ablation, o.supervised, o.untrained, o.references, o.result)
        }
        (Precision::F64, None) => {
            let o = ff_train::run::train::<f64>(&cfg, out, |m, r| progress.update(m, r))?;
            (o.pnn, o.ablation, o.supervised, o.untrained, o.references, o.result)
        }
        (Precision::F32, Some(dir)) => {
            let o = ff_train::run::resume_as::<f32>(dir, &cfg, |m, r| progress.update(m, r))?;
            (o.pnn, o.ablation, o.supervised, o.untrained, o.references, o.result)
        }
        (Precision::F64, Some(dir)) => {
            let o = ff_train::run::resume_as::<f64>(dir, &cfg, |m, r| progress.update(m, r))?;
            (o.pnn, o.ablation, o.supervised, o.untrained, o.references, o.result)
        }
    };
    progress.finish();
    println!(
        "\n{} on {} ({} train / {} test samples), {} blocks, {} epochs, seed {}\n",
        cfg.system.name(),
        cfg.data,
        result.train_samples,
        result.test_samples,
        cfg.blocks,
        cfg.epochs,
        cfg.seed
    );
    match cfg.mode {
        Mode::Supervised => print!("{}", train_table(cfg.system.name(), &pnn, ablation.as_ref(), Some(&references))),
        Mode::Unsupervised => {
            let name = cfg.system.name();
            let table = unsupervised_table(
                name,
                &pnn,
                supervised.as_ref(),
                untrained.as_ref(),
                ablation.as_ref(),
                Some(&references),
            );
            print!("{table}");
            println!(
                "\nunsupervised: FF on hybrid negatives without labels, then a linear read-out ({} epochs) on the block activities; supervised: labels written into the inputs; untrained: the same read-out on the network before any training (control).",
                cfg.readout_epochs
            );
            if let Some(s) = &supervised {
                let d = pnn.test_accuracy - s.test_accuracy;
                println!("Unsupervised training changes test accuracy by {:+.2} points against supervised.", 100.0 * d);
            }
            if let Some(u) = &untrained {
                let d = pnn.test_accuracy - u.test_accuracy;
                println!(
                    "Unsupervised FF changes the read-out's test accuracy by {:+.2} points over the untrained network.",
                    100.0 * d
                );
            }
        }
    }
    if let (Some(e), Some(v), Some(n)) = (result.kept_epoch, result.validation_accuracy, result.validation_samples) {
        let abl = result.ablation_kept_epoch.map_or(String::new(), |a| format!("; the ablation's: epoch {a}"));
        println!(
            "\nkeep_best: the PNN of epoch {e} of {} is kept (validation accuracy {v:.4} on {n} samples held out of the training split){abl}.",
            cfg.epochs
        );
    }
    if let Some(a) = &ablation {
        let d = pnn.test_accuracy - a.test_accuracy;
        println!("\nThe physics changes test accuracy by {:+.2} points over the same digital layers alone.", 100.0 * d);
    }
    let network = if cfg.system.spec().is_physical() { "PNN" } else { "digital FF network" };
    let ablation_accuracy = ablation.as_ref().map(|a| a.test_accuracy);
    println!("{}", verdict(network, pnn.test_accuracy, ablation_accuracy, &references));
    if let Some(dir) = out {
        println!("wrote {} and {}", dir.join("result.json").display(), dir.join("model.json").display());
    }
    Ok(())
}

fn eval_cmd(model: &std::path::Path, first_block: usize) -> Result<()> {
    let saved = ff_train::run::SavedModel::read(model)?;
    let cfg = saved.config()?;
    let o = match cfg.precision {
        Precision::F32 => ff_train::run::eval_saved::<f32>(&saved, first_block)?,
        Precision::F64 => ff_train::run::eval_saved::<f64>(&saved, first_block)?,
    };
    let mut rule = if first_block > 0 { format!(" (goodness of blocks {first_block}.. only)") } else { String::new() };
    if let Some(e) = o.checkpoint_epochs {
        rule.push_str(&format!(", checkpoint after {e} of {} epochs", cfg.epochs));
    }
    println!(
        "test accuracy {:.4} ({} samples), train accuracy {:.4}{rule}",
        o.test_accuracy, o.test_samples, o.train_accuracy
    );
    println!("test_accuracy={}", o.test_accuracy);
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = ff_core::gemm_kernels::Kernel::from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let r = match &cli.command {
        Command::Train(a) => train_cmd(a),
        Command::Eval { model, score_from_block } => eval_cmd(model, *score_from_block),
        Command::Compare(a) => compare_cmd::compare_cmd(a),
        Command::Drift(a) => drift_cmd::drift_cmd(a),
        Command::Export(a) => export_cmd::export_cmd(a),
        Command::Sweep(a) => sweep_cmd::sweep_cmd(a),
        Command::Config => {
            print!("{}", ff_train::config_doc::default_toml_with_comments());
            Ok(())
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
