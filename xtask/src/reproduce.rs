//! `cargo xtask reproduce [--quick] [--only NAME[,NAME]] [--out DIR] [--publish DIR] [--resume]
//! [--allow-missing]`: the paper's experiments (docs/science.md, "Reference figures") run through the `phyff` binary, and a
//! Markdown report with tables (test accuracy mean ± sd over seeds, PhyLL and baselines) and
//! plots, written to `OUT/README.md`; `--publish DIR` copies it to `DIR/report.md` with the
//! plots (the committed ones live in `docs/reproduction/`, whose README is kept by hand).
//!
//! Each experiment is a TOML configuration (written next to its results, so the report shows
//! exactly what ran) plus the `phyff` subcommand: `compare` (every method, several seeds) for
//! the vowel experiments and for `mnist-compare` (one seed, on a subset of the training images
//! so that every baseline fits in under an hour here), `train` (PhyLL and its physics-removed
//! ablation, one run per seed) for the other image experiments; `drift` (FF against PAT
//! while the optical medium drifts and is replaced, one run per seed) for `drift-optics`, whose
//! table gives each method's recovery after the change. `--quick` shrinks epochs,
//! seeds and data so the whole set runs in minutes; the full set uses the paper's
//! hyper-parameters, and each experiment's note says where a full run departs from them.
//!
//! Data: the vowels and the measured acoustic pairs are built into `phyff` (`data = "vowels"`,
//! an `[emulator]` without files); the quick image experiments read the MNIST and Fashion-MNIST
//! subsets in `xtask/data/` (see its README), the full ones the whole sets in `data/`
//! (`cargo xtask fetch-data`). An experiment whose data is missing is an error that names the
//! command that obtains it; `--allow-missing` skips it instead (listed in the report).
//! Paths in configurations, commands and the report are relative to the workspace root, where
//! `phyff` runs, so the report's commands can be run as printed from a clone.
//!
//! `--resume` makes the long image experiments resumable across sittings: a `train` seed whose
//! `result.json` exists is reused, one with only a `checkpoint.json` continues with
//! `phyff train --resume` (its ablation, not checkpointed, then runs from scratch), and the
//! others start. It refuses a directory whose `config.toml` differs from the experiment's.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Which `phyff` subcommand an experiment runs.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `phyff compare --seeds S`: every method.
    Compare,
    /// `phyff train --seed s` per seed: PhyLL and the ablation.
    Train,
    /// `phyff drift --seed s` per seed: FF against PAT while the system drifts and changes.
    Drift,
}

struct Experiment {
    name: &'static str,
    title: &'static str,
    kind: Kind,
    seeds: usize,
    /// The configuration (TOML).
    toml: String,
    /// Extra `phyff` flags (compare's twin settings).
    flags: Vec<String>,
    /// Files or directories that must exist, with how to obtain them.
    needs: Vec<(PathBuf, &'static str)>,
    /// The published figure to compare with.
    paper: &'static str,
    /// Where the run departs from the paper's hyper-parameters, and why.
    note: String,
}

/// The configuration of a vowel experiment on the built-in 7-vowel subset.
fn vowels_toml(system: &str, blocks: usize, lr: f64, epochs: usize, extra: &str) -> String {
    format!(
        "data = \"vowels\"\nsystem = \"{system}\"\nblocks = {blocks}\nhidden = 20\nlr = {lr:e}\nn_inner = 10\n\
         epochs = {epochs}\nbatch_size = 0\nalpha = 4.0\nprecision = \"f32\"\neval_every = {}\n{extra}",
        (epochs / 10).max(1)
    )
}

/// The experiments; image data paths are relative to the workspace root, where `phyff` runs.
fn experiments(quick: bool) -> Vec<Experiment> {
    let (mnist, fashion) = if quick {
        (Path::new("xtask/data/mnist-quick"), Path::new("xtask/data/fashion-mnist-quick"))
    } else {
        (Path::new("data/mnist"), Path::new("data/fashion-mnist"))
    };
    let (mnist_how, fashion_how) = if quick {
        (
            "the quick MNIST subset is part of the repository (xtask/data/README.md); restore it with git",
            "the quick Fashion-MNIST subset is part of the repository (xtask/data/README.md); restore it with git",
        )
    } else {
        ("MNIST: cargo xtask fetch-data mnist", "Fashion-MNIST: cargo xtask fetch-data fashion-mnist")
    };
    let q = |full: usize, quick_v: usize| if quick { quick_v } else { full };
    let twin_flags = |samples: usize, epochs: usize| {
        vec!["--twin-samples".to_string(), samples.to_string(), "--twin-epochs".into(), epochs.to_string()]
    };
    // No `inputs`/`outputs`: the emulator is fitted to the measured acoustic pairs built into phyff.
    let emulator = format!("[emulator.twin]\nhidden = [100, 200, 100]\nepochs = {}\n", q(30, 10));
    let limits = |train: usize, test: usize| {
        if quick {
            format!("train_limit = {train}\ntest_limit = {test}\n")
        } else {
            String::new()
        }
    };
    // mnist-compare: training images, epochs, batch, twin inputs and twin epochs.
    let (mc_train, mc_epochs, mc_batch, mc_twin, mc_twin_epochs) =
        (q(20_000, 3000), q(10, 2), q(1000, 500), q(20_000, 2000), q(20, 5));
    vec![
        Experiment {
            name: "vowels-acoustic-emulator",
            title: "Vowels through the acoustic emulator fitted to the measured pairs",
            kind: Kind::Compare,
            seeds: q(3, 1),
            toml: vowels_toml("emulator", 2, 5e-4, q(200, 30), &emulator),
            flags: twin_flags(q(10_000, 2000), q(20, 5)),
            needs: vec![],
            paper: "public code with its emulator: 0.96-1.00 (seeds 0/1/2: 0.98, 0.96, 1.00); physics zeroed 0.89-0.96",
            note: "the paper's hyper-parameters (2 blocks 40->20, lr 5e-4, n_inner 10, 200 epochs, full batch, alpha 4, f32)"
                .into(),
        },
        Experiment {
            name: "vowels-acoustic-physics",
            title: "Vowels through the simulated acoustic cavity (physics model)",
            kind: Kind::Compare,
            seeds: q(3, 1),
            toml: vowels_toml("acoustic", 2, 5e-4, q(200, 10), ""),
            flags: twin_flags(q(10_000, 500), q(20, 5)),
            needs: vec![],
            paper: "public code with its emulator 0.96-1.00; the same cavity as a reservoir 0.914 (arXiv:2304.08380)",
            note: "the paper's hyper-parameters of the acoustic row; the cavity is the simulator, not the measured device".into(),
        },
        Experiment {
            name: "vowels-microwave",
            title: "Vowels through the simulated microwave cavity, 3 blocks",
            kind: Kind::Compare,
            seeds: q(3, 1),
            toml: vowels_toml("microwave", 3, 2.5e-4, q(100, 10), ""),
            flags: twin_flags(q(10_000, 500), q(20, 5)),
            needs: vec![],
            paper: "no measured figure for microwave vowels in the paper; PAT on vowels (optical SHG) about 0.93",
            note: "the paper's hyper-parameters of the microwave row (3 blocks 40->20, lr 2.5e-4, 100 epochs)".into(),
        },
        Experiment {
            name: "mnist-optics",
            title: "MNIST through the multimode optical system, 2 blocks of 676",
            kind: Kind::Train,
            seeds: 1,
            toml: format!(
                "data = \"mnist:{}\"\nsystem = \"optics\"\nblocks = 2\nhidden = 676\nlr = {:e}\nn_inner = {}\nepochs = {}\n\
                 batch_size = {}\nalpha = 5.0\nprecision = \"{}\"\neval_every = {}\ntrain_eval = false\n{}\
                 [optics]\nfield_size = 52\ninput_pupil_radius_px = 15.7\noutput_pupil_radius_px = 15.7\n",
                mnist.display(),
                if quick { 1e-3 } else { 5e-5 },
                q(20, 5),
                q(350, 2),
                q(10_000, 500),
                if quick { "f32" } else { "f64" },
                q(10, 1),
                limits(3000, 1000)
            ),
            flags: vec![],
            needs: vec![(mnist.to_path_buf(), mnist_how)],
            paper: "PhyLL paper (optics, MNIST): see docs/science.md; PAT on MNIST about 0.87 (mechanical) / 0.93 (electronic)",
            note: "the paper's row (676 -> 676, lr 5e-5, n_inner 20, 350 epochs, batch 10 000, alpha 5, f64): one epoch is \
                   about 9 TFLOP of dense updates (about 75 s on 2 cores, 2026-12-06), so the full 350 \
                   epochs take hours; measured progress in docs/reproduction/README.md"
                .into(),
        },
        Experiment {
            name: "mnist-compare",
            title: "MNIST: FF against ideal BP, PAT and in-silico through the optical system",
            kind: Kind::Compare,
            seeds: 1,
            toml: format!(
                "data = \"mnist:{}\"\nsystem = \"optics\"\nblocks = 2\nhidden = 676\nlr = 2e-4\nn_inner = 20\nepochs = {}\n\
                 batch_size = {}\nalpha = 5.0\nprecision = \"f32\"\neval_every = 1\ntrain_eval = false\n\
                 train_limit = {}\n{}[optics]\nfield_size = 52\ninput_pupil_radius_px = 15.7\noutput_pupil_radius_px = 15.7\n",
                mnist.display(),
                mc_epochs,
                mc_batch,
                mc_train,
                if quick { "test_limit = 1000\n" } else { "" },
            ),
            flags: {
                let mut f = twin_flags(mc_twin, mc_twin_epochs);
                f.extend(["--twin-inputs".to_string(), "data".into()]);
                f
            },
            needs: vec![(mnist.to_path_buf(), mnist_how)],
            paper: "PAT on MNIST about 0.87 (mechanical) / 0.93 (electronic) (docs/science.md); no FF-against-PAT \
                    figure on the same system in the paper",
            note: format!(
                "every method of `phyff compare` on the `mnist-optics` system (2 blocks of 676, 52 x 52 field, \
                 pupils 15.7 px, alpha 5, n_inner 20), one seed and split for all: the first {} training images \
                 and {} test images, {} epochs, batch {} (the gradient methods: 32), lr 2e-4 (4 x the paper's \
                 step), f32 (the f64 parity check of one FF epoch is in docs/reproduction/README.md); the full \
                 run is sized for about 40 minutes on 2 cores. The twins of PAT and in-silico: 1 024 SiLU units \
                 fitted for {} epochs on {} inputs, the training images pushed through the initial blocks with \
                 jitter (`--twin-inputs data`; docs/reproduction/README.md says why not inputs drawn from a box)",
                mc_train,
                if quick { "the first 1 000" } else { "all 10 000" },
                mc_epochs,
                mc_batch,
                mc_twin_epochs,
                mc_twin,
            ),
        },
        Experiment {
            name: "fashion-digital",
            title: "Fashion-MNIST, digital-only forward-forward (784 -> 1000 -> 1000)",
            kind: Kind::Train,
            seeds: 1,
            toml: format!(
                "data = \"fashion:{}\"\nsystem = \"digital\"\nblocks = 2\nhidden = 1000\nlr = {:e}\nn_inner = {}\n\
                 epochs = {}\nbatch_size = {}\nalpha = 4.0\nprecision = \"f32\"\neval_every = {}\ntrain_eval = false\n{}",
                fashion.display(),
                if quick { 1e-3 } else { 1e-4 },
                q(25, 5),
                q(300, 2),
                q(10_000, 500),
                q(10, 1),
                limits(3000, 1000)
            ),
            flags: vec![],
            needs: vec![(fashion.to_path_buf(), fashion_how)],
            paper: "no figure in the paper (the public code's digital demo)",
            note: "the public code's row (lr 1e-4, n_inner 25, 300 epochs, batch 10 000, alpha 4) with the cosine goodness of |z| \
                   (the public demo uses GELU)"
                .into(),
        },
        Experiment {
            name: "mnist-hinton",
            title: "MNIST, Hinton's forward-forward (sum of squares, threshold, layer normalisation) as a control",
            kind: Kind::Train,
            seeds: 1,
            toml: format!(
                "data = \"mnist:{}\"\nsystem = \"digital\"\nobjective = \"hinton\"\nsquares = \"sum\"\nblocks = 4\n\
                 hidden = {h}\nlr = 1e-3\nlr_schedule = \"linear-decay\"\nn_inner = 1\nepochs = {}\nbatch_size = 100\n\
                 theta = {h}.0\nnegatives = \"sampled\"\nprecision = \"f32\"\neval_every = {}\ntrain_eval = false\n{}",
                mnist.display(),
                q(60, 2),
                q(10, 1),
                limits(3000, 1000),
                h = q(2000, 500),
            ),
            flags: vec![],
            needs: vec![(mnist.to_path_buf(), mnist_how)],
            paper: "Hinton (2022), 4 x 2000 ReLU, 60 epochs: 1.36 % test error (0.9864)",
            note: "4 x 2000, 60 epochs, batch 100; as in Hinton's released code, the sum of squares with the threshold \
                   at the layer width and a learning rate constant for 30 epochs, then falling linearly; each negative \
                   label drawn from the softmax of the network's goodness over the wrong labels (his code draws it \
                   from a softmax read-out); Adam 1e-3 (his code: momentum SGD, weight cost and peer \
                   normalisation, not used here)"
                .into(),
        },
        Experiment {
            name: "drift-optics",
            title: "Drift: FF against PAT while the optical medium drifts and is then replaced",
            kind: Kind::Drift,
            seeds: q(3, 1),
            toml: format!("data = \"digits\"\nsystem = \"optics\"\nblocks = 2\nhidden = 16\nepochs = {}\n", q(20, 10)),
            flags: {
                let mut f: Vec<String> =
                    ["--sudden-strength", "1.0", "--refit-twins", "--oracle-twins"].map(String::from).to_vec();
                if quick {
                    f.extend(twin_flags(2000, 10));
                }
                f
            },
            needs: vec![],
            paper: "no figure: the paper does not measure drift; its claim is that FF keeps adapting to a \
                    changing system, while PAT relies on a twin fitted before the change",
            note: "the built-in digits through 2 optical blocks of 16 (4 x 4 camera images), all else the defaults of \
                   `phyff drift` (what FF spends in its epochs sets the query budget of every method; slow drift 0.1 every 5 000 \
                   training queries; the change at half the budget); the change replaces the whole medium \
                   (strength 1.0). PAT's twins are fitted before any drift; `--refit-twins` adds PAT with the \
                   twins refitted at the change from its budget, `--oracle-twins` the same refit for free. \
                   docs/reproduction/drift.md has smaller changes and more seeds"
                .into(),
        },
    ]
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (m, sd)
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn si(x: f64) -> String {
    let (v, p) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(s, _)| x >= *s)
        .map_or((x, ""), |(s, p)| (x / s, p));
    format!("{v:.2} {p}")
}

/// The Markdown table of a compare experiment from its `comparison.json`: per method the test
/// accuracy (mean ± sd over `seeds`), wall time, physical queries, digital FLOPs (all, and of
/// learning per epoch), the modelled energy and, for the methods that learn through digital
/// twins, how much better than the mean predictor the worst twin is; a method is marked
/// "twin unfit" or "at chance" as `phyff compare` marks it. Then every twin, block by block.
fn compare_table(report: &Value, seeds: usize) -> Result<String> {
    let methods = report["methods"].as_array().context("comparison.json: no methods")?;
    let mut md = format!(
        "| method | test accuracy (mean ± sd, {seeds} seeds) | wall s | physical queries | digital FLOPs | \
         learning FLOPs / epoch | energy J | twin: mean predictor's RMSE / twin's (worst block) |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    let mut twins = String::new();
    for m in methods {
        let name = m["method"].as_str().unwrap_or("?");
        let flags: Vec<&str> = [("twin_unfit", "twin unfit"), ("at_chance", "at chance")]
            .into_iter()
            .filter(|(k, _)| m.get(*k).and_then(Value::as_bool) == Some(true))
            .map(|(_, f)| f)
            .collect();
        let label = if flags.is_empty() { name.to_string() } else { format!("{name} **[{}]**", flags.join(", ")) };
        let twin =
            m.get("twin_rmse_ratio").and_then(Value::as_f64).map_or_else(|| "-".into(), |r| format!("{:.2}x", 1.0 / r));
        md.push_str(&format!(
            "| {label} | {:.4} ± {:.4} | {:.1} | {} | {}FLOP | {}FLOP | {:.3e} | {twin} |\n",
            num(m, "test_accuracy"),
            num(m, "test_accuracy_sd"),
            num(m, "wall_seconds"),
            si(num(m, "physical_queries")),
            si(num(m, "digital_flops")),
            si(num(m, "digital_flops_per_epoch")),
            num(m, "energy_joules"),
        ));
        for b in m.get("twin_blocks").and_then(Value::as_array).into_iter().flatten() {
            let x = |a: &str, mean: &str| num(b, mean) / num(b, a);
            twins.push_str(&format!(
                "- {name}, seed {}, block {}: held out {:.4} vs {:.4} for the mean predictor ({:.2}x); on the \
                 block's training inputs {:.2}x at the start, {:.2}x at the end\n",
                num(b, "seed"),
                num(b, "block"),
                num(b, "val_rmse"),
                num(b, "val_rmse_of_mean"),
                x("val_rmse", "val_rmse_of_mean"),
                x("start_rmse", "start_rmse_of_mean"),
                x("end_rmse", "end_rmse_of_mean"),
            ));
        }
    }
    md.push_str(
        "\nDigital FLOPs: training, evaluation and twin fitting; learning FLOPs / epoch: training and twin \
         fitting per epoch, evaluation excluded; energy: the modelled joules of all queries and FLOPs \
         (`phyff compare --help`). A twin is fit to stand in for its block when the mean predictor's RMSE \
         is at least 3x the twin's; below that the method is marked **twin unfit**, and a method within \
         2 points of chance **at chance**.\n",
    );
    if !twins.is_empty() {
        md.push_str(&format!("\nTwins (RMSE against the system's output, and the mean predictor's):\n\n{twins}"));
    }
    Ok(md)
}

/// What to do for one seed of a `train` experiment.
#[derive(Debug, PartialEq)]
enum TrainStep {
    /// `result.json` is there (with `--resume`): use it.
    Reuse,
    /// Run `phyff` with these arguments.
    Run(Vec<String>),
}

/// A fresh run of seed `seed` into `out`, or with `resume`: the finished result if `out` has
/// one, else the continuation of its checkpoint if it has one.
fn train_step(cfg: &Path, seed: usize, out: &Path, resume: bool) -> TrainStep {
    if resume && out.join("result.json").exists() {
        return TrainStep::Reuse;
    }
    if resume && out.join("checkpoint.json").exists() {
        return TrainStep::Run(vec!["train".into(), "--resume".into(), out.display().to_string()]);
    }
    TrainStep::Run(vec![
        "train".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--seed".into(),
        seed.to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
}

/// Runs one experiment; returns its Markdown section.
fn run_one(phyff: &Path, e: &Experiment, dir: &Path, resume: bool) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = dir.join("config.toml");
    if resume && e.kind != Kind::Compare {
        if let Ok(old) = std::fs::read_to_string(&cfg) {
            ensure!(
                old == e.toml,
                "--resume: {} holds a run of a different configuration; remove the directory or drop --resume",
                cfg.display()
            );
        }
    }
    std::fs::write(&cfg, &e.toml).with_context(|| format!("writing {}", cfg.display()))?;
    let start = Instant::now();
    let mut md = format!("## {}\n\n`{}`: {}.\n\n", e.title, e.name, e.note);
    let mut commands = Vec::new();
    if e.kind == Kind::Drift {
        md.push_str(&drift_section(phyff, e, &cfg, dir, resume, &mut commands)?);
    } else if e.kind == Kind::Compare {
        let mut args: Vec<String> = vec!["compare".into(), "--config".into(), cfg.display().to_string()];
        args.extend(["--seeds".into(), e.seeds.to_string(), "--out".into(), dir.display().to_string()]);
        args.extend(e.flags.iter().cloned());
        commands.push(format!("phyff {}", args.join(" ")));
        run_phyff(phyff, &args, &dir.join("log.txt"))?;
        let json = dir.join("comparison.json");
        let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        let report: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", json.display()))?;
        md.push_str(&compare_table(&report, e.seeds)?);
        md.push_str(&format!("\n![accuracy vs epoch]({}/accuracy.png)\n", e.name));
        if dir.join("cost.png").exists() {
            md.push_str(&format!("\n![modelled energy per run]({}/cost.png)\n", e.name));
        }
    } else {
        let (mut acc, mut abl, mut wall) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..e.seeds {
            let out = dir.join(format!("seed{s}"));
            match train_step(&cfg, s, &out, resume) {
                TrainStep::Reuse => {
                    eprintln!("    seed {s}: reusing {}", out.join("result.json").display());
                    commands.push(format!("(seed {s}: result of an earlier sitting reused)"));
                }
                TrainStep::Run(args) => {
                    commands.push(format!("phyff {}", args.join(" ")));
                    run_phyff(phyff, &args, &dir.join(format!("log-seed{s}.txt")))?;
                }
            }
            let r: Value = serde_json::from_str(&std::fs::read_to_string(out.join("result.json"))?)?;
            acc.push(num(&r, "test_accuracy"));
            if let Some(a) = r.get("ablation_test_accuracy").and_then(Value::as_f64) {
                abl.push(a);
            }
            wall.push(num(&r, "wall_seconds") + r.get("ablation_wall_seconds").and_then(Value::as_f64).unwrap_or(0.0));
        }
        let (m, sd) = mean_sd(&acc);
        md.push_str(&format!(
            "| model | test accuracy (mean ± sd, {} seeds) |\n|---|---|\n| forward-forward ({}) | {m:.4} ± {sd:.4} |\n",
            e.seeds,
            if e.toml.contains("objective = \"hinton\"") { "Hinton" } else { "PhyLL" }
        ));
        if !abl.is_empty() {
            let (m, sd) = mean_sd(&abl);
            md.push_str(&format!("| physics removed (FF) | {m:.4} ± {sd:.4} |\n"));
        }
        md.push_str(&format!("\nwall time per seed: {:.1} s (training and evaluation)\n", mean_sd(&wall).0));
    }
    md.push_str(&format!(
        "\nPublished: {}.\n\nWall time of the experiment: {:.1} s. Commands:\n\n```\n{}\n```\n\nConfiguration:\n\n```toml\n{}```\n\n",
        e.paper,
        start.elapsed().as_secs_f64(),
        commands.join("\n"),
        e.toml
    ));
    Ok(md)
}

/// One method's outcomes over the seeds of a drift experiment.
struct DriftRow {
    method: String,
    /// Training queries after the change until recovery, per seed (`None`: never).
    recovery: Vec<Option<u64>>,
    before: Vec<f64>,
    last: Vec<f64>,
}

/// Runs `phyff drift` per seed (reusing a seed's `drift.json` with `resume`) and returns the
/// table of recovery and accuracy per method, with seed 0's plot.
fn drift_section(
    phyff: &Path,
    e: &Experiment,
    cfg: &Path,
    dir: &Path,
    resume: bool,
    commands: &mut Vec<String>,
) -> Result<String> {
    let mut reports = Vec::new();
    for s in 0..e.seeds {
        let out = dir.join(format!("seed{s}"));
        let json = out.join("drift.json");
        if resume && json.exists() {
            eprintln!("    seed {s}: reusing {}", json.display());
            commands.push(format!("(seed {s}: result of an earlier sitting reused)"));
        } else {
            let mut args: Vec<String> = vec!["drift".into(), "--config".into(), cfg.display().to_string()];
            args.extend(["--seed".into(), s.to_string(), "--out".into(), out.display().to_string()]);
            args.extend(e.flags.iter().cloned());
            commands.push(format!("phyff {}", args.join(" ")));
            run_phyff(phyff, &args, &dir.join(format!("log-seed{s}.txt")))?;
        }
        let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        reports.push(serde_json::from_str(&text).with_context(|| format!("{} is not JSON", json.display()))?);
    }
    let mut md = drift_table(&reports)?;
    let png = dir.join("seed0/drift.png");
    if png.exists() {
        std::fs::copy(&png, dir.join("accuracy.png")).with_context(|| format!("copying {}", png.display()))?;
        md.push_str(&format!("\n![test accuracy against training queries, seed 0]({}/accuracy.png)\n", e.name));
    }
    Ok(md)
}

/// `12345` as `12,345`.
fn thousands(q: u64) -> String {
    let s = q.to_string();
    let mut t = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            t.push(',');
        }
        t.push(c);
    }
    t
}

/// The Markdown table of a drift experiment from its `drift.json` files, one per seed in seed
/// order: per method, how many seeds recovered, each seed's recovery time and the accuracies
/// before the change and at the end (mean ± sd over seeds).
fn drift_table(reports: &[Value]) -> Result<String> {
    let r = reports.first().context("a drift experiment needs at least one seed")?;
    let mut rows: Vec<DriftRow> = Vec::new();
    for (seed, r) in reports.iter().enumerate() {
        for m in r["methods"].as_array().with_context(|| format!("drift.json of seed {seed}: no methods"))? {
            let name = m["method"].as_str().unwrap_or("?").to_string();
            let i = match rows.iter().position(|row| row.method == name) {
                Some(i) => i,
                None => {
                    rows.push(DriftRow { method: name, recovery: vec![], before: vec![], last: vec![] });
                    rows.len() - 1
                }
            };
            ensure!(rows[i].recovery.len() == seed, "method {:?} is missing from an earlier seed", rows[i].method);
            rows[i].recovery.push(m["recovery_queries"].as_u64());
            rows[i].before.push(num(m, "accuracy_before_change"));
            rows[i].last.push(num(m, "final_accuracy"));
        }
    }
    let mut md = format!(
        "Every method has the same budget of {} training queries; the change comes at {}. Recovery is the \
         number of training queries after the change until the test accuracy is back within {} points of \
         the method's own accuracy just before it (\"never\": not within the budget).\n\n\
         | method | recovered | recovery (seed {}) | accuracy before the change (mean ± sd) | final accuracy (mean ± sd) |\n\
         |---|---|---|---|---|\n",
        thousands(num(r, "budget_queries") as u64),
        thousands(num(r, "sudden_at_queries") as u64),
        100.0 * num(r, "recovery_tolerance"),
        (0..reports.len()).map(|s| s.to_string()).collect::<Vec<_>>().join(" / ")
    );
    for row in &rows {
        ensure!(row.recovery.len() == reports.len(), "method {:?} is missing from a seed", row.method);
        let rec: Vec<String> = row.recovery.iter().map(|q| q.map_or_else(|| "never".into(), thousands)).collect();
        let (bm, bsd) = mean_sd(&row.before);
        let (fm, fsd) = mean_sd(&row.last);
        md.push_str(&format!(
            "| {} | {} of {} | {} | {bm:.4} ± {bsd:.4} | {fm:.4} ± {fsd:.4} |\n",
            row.method,
            row.recovery.iter().filter(|q| q.is_some()).count(),
            row.recovery.len(),
            rec.join(" / ")
        ));
    }
    Ok(md)
}

fn run_phyff(phyff: &Path, args: &[String], log: &Path) -> Result<()> {
    eprintln!("    phyff {}", args.join(" "));
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = Command::new(phyff)
        .args(args)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot run {}", phyff.display()))?;
    if !status.success() {
        bail!("phyff {} failed ({status}); see {}", args.join(" "), log.display());
    }
    Ok(())
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    let (mut quick, mut only, mut out, mut publish) = (false, None::<Vec<String>>, None::<PathBuf>, None::<PathBuf>);
    let (mut resume, mut allow_missing) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--resume" => resume = true,
            "--allow-missing" => allow_missing = true,
            "--only" => only = Some(it.next().context("--only needs NAME[,NAME]")?.split(',').map(String::from).collect()),
            "--out" => out = Some(it.next().context("--out needs a directory")?.into()),
            "--publish" => publish = Some(it.next().context("--publish needs a directory")?.into()),
            other => bail!(
                "unknown reproduce argument {other:?}; usage: cargo xtask reproduce [--quick] [--only NAME[,NAME]] [--out DIR] [--publish DIR] [--resume] [--allow-missing]"
            ),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let mode = if quick { "quick" } else { "full" };
    // Everything runs in the root, with paths relative to it where they lie inside it, so that
    // the report's configurations and commands can be run as printed from any clone.
    let absolute = |p: PathBuf| if p.is_absolute() { Ok(p) } else { std::env::current_dir().map(|d| d.join(p)) };
    let out = out.map(absolute).transpose().context("the current directory")?;
    let publish = publish.map(absolute).transpose().context("the current directory")?;
    std::env::set_current_dir(&root).with_context(|| format!("entering {}", root.display()))?;
    let out = out.map_or_else(|| Path::new("target/reproduce").join(mode), |o| relative_to(&root, &o));
    let exps = experiments(quick);
    if let Some(o) = &only {
        for n in o {
            if !exps.iter().any(|e| e.name == n) {
                let names: Vec<&str> = exps.iter().map(|e| e.name).collect();
                bail!("unknown experiment {n:?}; the experiments are: {}", names.join(", "));
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "ff-train", "--bin", "phyff"])
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("building phyff failed ({status})");
    }
    // Where cargo put it: CARGO_TARGET_DIR when set (relative to the root), else target/.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    let phyff = target.join("release/phyff");
    let start = Instant::now();
    let mut report = format!(
        "# phyff reproduction report ({mode})\n\nGenerated by `cargo xtask reproduce{}{}` on {} ({} logical CPUs). \
         Test accuracy is the final epoch's, on the held-out split; FLOPs are counted where the work happens \
         (see `phyff compare`). The paper's figures and where they come from are in docs/science.md. \
         Paths are relative to the repository's root, where the commands run.{}\n\n",
        if quick { " --quick" } else { "" },
        only.as_ref().map_or(String::new(), |o| format!(" --only {}", o.join(","))),
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick {
            " This is the **quick** version: fewer epochs, one seed and subsets of the image data (each \
             section's configuration says exactly what ran), so the accuracies are not the paper's; it \
             shows that every experiment runs end to end."
        } else {
            ""
        }
    );
    let mut skipped = Vec::new();
    for e in &exps {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == e.name)) {
            continue;
        }
        if let Some(why) = missing_data(e, allow_missing)? {
            eprintln!("==> skip {} (--allow-missing): {why}", e.name);
            skipped.push(format!("- `{}`: {why}", e.name));
            continue;
        }
        eprintln!("==> {} ({} seed(s))", e.name, e.seeds);
        let section = run_one(&phyff, e, &out.join(e.name), resume)?;
        report.push_str(&section);
    }
    if !skipped.is_empty() {
        let _ = write!(report, "## Skipped\n\n{}\n", skipped.join("\n"));
    }
    let _ = writeln!(report, "\nTotal wall time: {:.1} s.", start.elapsed().as_secs_f64());
    // `out` exists only if an experiment ran: create it for a report of skips alone.
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("README.md");
    write_atomic(&path, &report)?;
    eprintln!("==> wrote {}", path.display());
    if let Some(p) = publish {
        std::fs::create_dir_all(&p)?;
        for e in &exps {
            for plot in ["accuracy.png", "cost.png"] {
                let png = out.join(e.name).join(plot);
                if png.exists() {
                    std::fs::create_dir_all(p.join(e.name))?;
                    std::fs::copy(&png, p.join(e.name).join(plot))?;
                }
            }
        }
        // `report.md`, not `README.md`: the folder's README is a hand-kept overview of runs
        // too long for one sitting (docs/reproduction/README.md).
        write_atomic(&p.join("report.md"), &report)?;
        eprintln!("==> published the report and plots to {}", p.display());
    }
    Ok(())
}

/// What keeps `e` from running, if anything: `Ok(None)` if its data is there, `Ok(Some(why))`
/// if it is not and `allow_missing` says to skip it, else an error that names the data and the
/// way to obtain it.
fn missing_data(e: &Experiment, allow_missing: bool) -> Result<Option<String>> {
    let Some((p, how)) = e.needs.iter().find(|(p, _)| !need_met(p)) else {
        return Ok(None);
    };
    let why = format!("{} not found; obtain {how}", p.display());
    if allow_missing {
        return Ok(Some(why));
    }
    bail!(
        "experiment {} cannot run: {why}. Pass --allow-missing to skip it (it is then listed as skipped in the \
         report), or --only to choose other experiments",
        e.name
    )
}

/// `path` relative to `root` if it lies inside it, else unchanged.
fn relative_to(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

/// Whether a needed data path is there: a file, or a directory of IDX files holding at least
/// the training images (plain or gzip).
fn need_met(path: &Path) -> bool {
    if path.is_dir() {
        ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"].iter().any(|f| path.join(f).is_file())
    } else {
        path.is_file()
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a report.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_reuses_results_continues_checkpoints_and_otherwise_starts() {
        let dir = std::env::temp_dir().join(format!("phyff-xtask-resume-{}", std::process::id()));
        let out = dir.join("seed0");
        std::fs::create_dir_all(&out).unwrap();
        let cfg = dir.join("config.toml");
        let fresh = |resume| match train_step(&cfg, 0, &out, resume) {
            TrainStep::Run(a) => a.contains(&"--config".to_string()) && a.contains(&"--seed".to_string()),
            TrainStep::Reuse => false,
        };
        assert!(fresh(false) && fresh(true));
        std::fs::write(out.join("checkpoint.json"), "{}").unwrap();
        assert!(fresh(false), "without --resume a run always starts afresh");
        assert_eq!(
            train_step(&cfg, 0, &out, true),
            TrainStep::Run(vec!["train".into(), "--resume".into(), out.display().to_string()])
        );
        std::fs::write(out.join("result.json"), "{}").unwrap();
        assert_eq!(train_step(&cfg, 0, &out, true), TrainStep::Reuse);
        assert!(fresh(false));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quick_experiments_need_only_what_the_repository_holds_and_a_missing_need_fails() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let quick = experiments(true);
        assert!(quick.iter().any(|e| e.name.starts_with("vowels-")) && quick.len() >= 8);
        for e in &quick {
            for (p, _) in &e.needs {
                assert!(p.is_relative(), "{}: {} must be relative to the root", e.name, p.display());
                assert!(need_met(&root.join(p)), "{}: {} is not in the repository", e.name, p.display());
            }
            assert!(!e.toml.contains("shared") && !e.toml.contains(&root.display().to_string()), "{}", e.toml);
        }
        // A full image experiment on a machine without the data: an error, unless allowed.
        let mut e = experiments(false).into_iter().find(|e| e.name == "mnist-optics").unwrap();
        e.needs = vec![(PathBuf::from("/nonexistent/mnist"), "MNIST: cargo xtask fetch-data mnist")];
        let err = missing_data(&e, false).unwrap_err().to_string();
        assert!(
            err.contains("mnist-optics") && err.contains("fetch-data mnist") && err.contains("--allow-missing"),
            "{err}"
        );
        assert!(missing_data(&e, true).unwrap().unwrap().contains("/nonexistent/mnist"));
        e.needs.clear();
        assert!(missing_data(&e, false).unwrap().is_none());
    }

    #[test]
    fn the_compare_table_shows_energy_and_marks_twins_and_chance() {
        let report = serde_json::json!({
            "system": "optics", "data": "mnist:data/mnist",
            "methods": [
                {"method": "FF (PhyLL)", "test_accuracy": 0.95, "test_accuracy_sd": 0.0, "wall_seconds": 12.34,
                 "physical_queries": 240000u64, "digital_flops": 3.2e12, "digital_flops_per_epoch": 1.5e12,
                 "eval_flops": 1u64, "energy_joules": 243.5, "runs": [], "twin_unfit": false, "at_chance": false},
                {"method": "PAT", "test_accuracy": 0.1012, "test_accuracy_sd": 0.0, "wall_seconds": 162.3,
                 "physical_queries": 114096u64, "digital_flops": 8.15e12, "digital_flops_per_epoch": 8.12e12,
                 "eval_flops": 1u64, "energy_joules": 122.2, "runs": [], "twin_rmse_ratio": 12.5,
                 "twin_unfit": true, "at_chance": true,
                 "twin_blocks": [{"seed": 0, "block": 2, "val_rmse": 0.014, "val_rmse_of_mean": 0.0742,
                                  "start_rmse": 0.0111, "start_rmse_of_mean": 0.0682,
                                  "end_rmse": 6.7963, "end_rmse_of_mean": 0.5299}]},
            ]
        });
        let md = compare_table(&report, 1).unwrap();
        assert!(md.contains("| energy J | twin: mean predictor's RMSE / twin's (worst block) |"), "{md}");
        assert!(
            md.contains("| FF (PhyLL) | 0.9500 ± 0.0000 | 12.3 | 240.00 k | 3.20 TFLOP | 1.50 TFLOP | 2.435e2 | - |"),
            "{md}"
        );
        assert!(md.contains("| PAT **[twin unfit, at chance]** | 0.1012 ± 0.0000 |"), "{md}");
        assert!(md.contains("| 1.222e2 | 0.08x |"), "{md}");
        assert!(
            md.contains("- PAT, seed 0, block 2: held out 0.0140 vs 0.0742 for the mean predictor (5.30x)"),
            "{md}"
        );
        assert!(md.contains("6.14x at the start, 0.08x at the end"), "{md}");
        assert!(compare_table(&serde_json::json!({}), 1).is_err());
    }

    #[test]
    fn the_drift_table_counts_recoveries_and_averages_over_seeds() {
        let seed = |ff: Value, pat: Value, ff_final: f64| {
            serde_json::json!({
                "budget_queries": 114960u64, "sudden_at_queries": 57480u64, "recovery_tolerance": 0.02,
                "methods": [
                    {"method": "FF (PhyLL)", "recovery_queries": ff, "accuracy_before_change": 0.95,
                     "final_accuracy": ff_final},
                    {"method": "PAT (pre-drift twin)", "recovery_queries": pat, "accuracy_before_change": 0.9,
                     "final_accuracy": 0.8},
                ]
            })
        };
        let a = seed(Value::from(21340u64), Value::Null, 0.93);
        let b = seed(Value::from(30788u64), Value::from(43686u64), 0.95);
        let md = drift_table(&[a.clone(), b.clone()]).unwrap();
        assert!(md.contains("budget of 114,960 training queries; the change comes at 57,480"), "{md}");
        assert!(md.contains("within 2 points"), "{md}");
        assert!(md.contains("| recovery (seed 0 / 1) |"), "{md}");
        assert!(md.contains("| FF (PhyLL) | 2 of 2 | 21,340 / 30,788 | 0.9500 ± 0.0000 | 0.9400 ± 0.0141 |"), "{md}");
        assert!(
            md.contains("| PAT (pre-drift twin) | 1 of 2 | never / 43,686 | 0.9000 ± 0.0000 | 0.8000 ± 0.0000 |"),
            "{md}"
        );
        // A method absent from one seed is an error, not a shifted column.
        let mut c = b;
        c["methods"].as_array_mut().unwrap().pop();
        assert!(drift_table(&[a, c]).is_err());
        assert!(drift_table(&[]).is_err());
        assert_eq!(
            (thousands(0), thousands(999), thousands(1000), thousands(1234567)),
            ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
        );
    }
}
