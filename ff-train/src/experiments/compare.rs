//! `phyff compare`: every applicable method on the same blocks, split, seeds and epoch
//! budget; a table, `result.json` and plots.

use crate::baselines::e2e::{
    fit_block_twins, train_digital_mlp, train_end_to_end, train_end_to_end_seen, BlockModel, E2eData, E2eOptions,
    TwinInputs,
};
use crate::baselines::EnergyModel;
use crate::config::{ExperimentConfig, Mode, ToChecked};
use crate::io::write_atomic;
use crate::output::plot;
use crate::output::report::{flops, thousands};
use crate::record::RunRecord;
use crate::run::{build_network, prepare, Prepared, ABLATION_METHOD};
use crate::systems::twin::TwinConfig;
use crate::systems::{build_blocks, build_exact_blocks};
use crate::trainer::{fit, FitOptions, FF_METHOD};
use anyhow::Result;
use ff_core::{Counters, Differentiable, LabelEmbedding, Matrix, PhysicalSystem};
use ff_physics::fft::FftReal;
use ff_physics::optics::{OpticsConfig, OpticsSystem};
use ff_physics::slm::Placement;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Options of [`compare`].
#[derive(Clone, Debug, PartialEq)]
pub struct CompareOptions {
    /// Number of seeds (`cfg.seed`, `cfg.seed + 1`, ...).
    pub seeds: usize,
    /// Where `result.json` and the plots go (nothing is written when `None`).
    pub out: Option<PathBuf>,
    /// Energy model of the costs.
    pub energy: EnergyModel,
    /// How the twins of PAT and in-silico training are fitted (its seed is replaced by the run's).
    pub twin: TwinConfig,
    /// Where the twins' inputs come from (default: the box, [`TwinInputs::Box`]).
    pub twin_inputs: TwinInputs,
    /// Mini-batch size of the gradient methods (ideal BP, PAT, in-silico, digital MLP).
    /// They take one Adam step per mini-batch where FF takes `n_inner` per block, so with the
    /// same batch they would get ~10x fewer updates in the same epoch budget; 32 gives them
    /// a comparable number of updates (0 = use the experiment's batch size).
    pub bp_batch_size: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            seeds: 1,
            out: None,
            energy: EnergyModel::default(),
            twin: compare_twin(),
            twin_inputs: TwinInputs::Box,
            bp_batch_size: 32,
        }
    }
}

/// The twin fit of `phyff compare`: one SiLU hidden layer of 1 024 units fitted for 20 epochs
/// on 20 000 box inputs per block. On the default job (optics, digits, 2 blocks x 256) the
/// [`TwinConfig::default`] fit (256 units, 10 000 inputs) leaves block 2's twin 1.02x better
/// than the mean predictor on held-out inputs and worse than it on the inputs the block sees in
/// training, and in-silico training through it at chance (0.10); this one reaches 5.5x
/// (block 1) and 2.5x (block 2) held out, and in-silico learns (see docs/science.md).
pub fn compare_twin() -> TwinConfig {
    TwinConfig { hidden: vec![1024], samples: 20_000, ..TwinConfig::default() }
}

/// One method over all seeds: the record written to `result.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Method name.
    pub method: String,
    /// Mean final test accuracy over seeds.
    pub test_accuracy: f64,
    /// Sample standard deviation of the test accuracy over seeds (0 for one seed).
    pub test_accuracy_sd: f64,
    /// Mean wall time per seed, in seconds (twin fitting included).
    pub wall_seconds: f64,
    /// Mean physical queries per seed (training, evaluation, twin sampling).
    pub physical_queries: u64,
    /// Mean digital FLOPs per seed (training, evaluation, twin fitting).
    pub digital_flops: u64,
    /// Mean digital FLOPs of learning per epoch: training and twin fitting (spread over the
    /// epochs), evaluation excluded.
    pub digital_flops_per_epoch: u64,
    /// Mean digital FLOPs per seed spent on evaluation (included in `digital_flops`).
    pub eval_flops: u64,
    /// Mean energy per seed, in joules, from the energy model.
    pub energy_joules: f64,
    /// Every seed's run. In the file each is an object with the fields `method`,
    /// `test_accuracy`, `train_accuracy`, `wall_seconds`, `train_physical_queries`,
    /// `eval_physical_queries`, `digital_flops` (training only), `eval_flops`, `twin_flops`,
    /// `twin_queries`, `epochs` and `test_accuracy_history` (the test accuracy after every
    /// epoch). A run read back from a file holds only what the file holds: no per-epoch history,
    /// no kept epoch, and evaluation points at epochs `1..=n` whose training queries are unknown
    /// (0).
    #[serde(with = "comparison_run")]
    pub runs: Vec<RunRecord>,
    /// Methods trained through digital twins (PAT, in-silico): the worst, over blocks and
    /// seeds, of a twin's validation RMSE divided by the mean predictor's (1: the twin
    /// predicts nothing the mean does not; below 1/[`TWIN_FIT_FACTOR`]: a fit that matters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_rmse_ratio: Option<f64>,
    /// Whether that ratio is above 1/[`TWIN_FIT_FACTOR`]: the method's row compares against
    /// a twin that barely predicts the system, and is marked "twin unfit".
    #[serde(default)]
    pub twin_unfit: bool,
    /// Whether the mean test accuracy is within 2 percentage points of chance (1/classes): a
    /// baseline that learned nothing, marked "at chance" rather than reported as a result.
    #[serde(default)]
    pub at_chance: bool,
    /// Methods trained through digital twins: every seed's and block's twin, its RMSE against
    /// the mean predictor's on the fit's held-out inputs and on the inputs the block sees in
    /// training (start and end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub twin_blocks: Vec<TwinBlock>,
}

/// One block's twin as a method that learns through it saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinBlock {
    /// Seed of the run.
    pub seed: u64,
    /// Block, from 1.
    pub block: usize,
    /// The twin's RMSE on the fit's held-out inputs.
    pub val_rmse: f64,
    /// The mean predictor's RMSE on them.
    pub val_rmse_of_mean: f64,
    /// The twin's RMSE on the block's training-pass inputs (first 512 training samples) with
    /// the initial affine maps.
    pub start_rmse: f64,
    /// The mean predictor's RMSE on them.
    pub start_rmse_of_mean: f64,
    /// The twin's RMSE on the block's training-pass inputs with the trained affine maps.
    pub end_rmse: f64,
    /// The mean predictor's RMSE on them.
    pub end_rmse_of_mean: f64,
}

impl TwinBlock {
    /// The worst of the three ratios twin RMSE / mean predictor's RMSE (validation, start, end).
    pub fn worst_ratio(&self) -> f64 {
        let r = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        r(self.val_rmse, self.val_rmse_of_mean)
            .max(r(self.start_rmse, self.start_rmse_of_mean))
            .max(r(self.end_rmse, self.end_rmse_of_mean))
    }
}

/// A twin is fit to stand in for its block when its validation RMSE is at least this many
/// times below the mean predictor's (the RMSE of predicting every output by its mean).
pub const TWIN_FIT_FACTOR: f64 = 3.0;

/// How a [`RunRecord`] is written in `comparison.json` and compare's `result.json` (see
/// [`MethodSummary::runs`]): the schema these files had before the run record, kept.
mod comparison_run {
    use super::{Counters, RunRecord};
    use crate::driver::EvalPoint;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The file's object of one run.
    #[derive(Serialize, Deserialize)]
    struct Run {
        method: String,
        test_accuracy: f64,
        train_accuracy: Option<f64>,
        wall_seconds: f64,
        train_physical_queries: u64,
        eval_physical_queries: u64,
        digital_flops: u64,
        #[serde(default)]
        eval_flops: u64,
        twin_flops: u64,
        twin_queries: u64,
        epochs: usize,
        test_accuracy_history: Vec<f64>,
    }

    impl From<&RunRecord> for Run {
        fn from(r: &RunRecord) -> Self {
            Run {
                method: r.method.clone(),
                test_accuracy: r.test_accuracy,
                train_accuracy: r.train_accuracy,
                wall_seconds: r.wall_seconds,
                train_physical_queries: r.training.physical_queries,
                eval_physical_queries: r.evaluation.physical_queries,
                digital_flops: r.training.digital_flops,
                eval_flops: r.evaluation.digital_flops,
                twin_flops: r.twin.digital_flops,
                twin_queries: r.twin.physical_queries,
                epochs: r.epochs,
                test_accuracy_history: r.test_accuracy_history(),
            }
        }
    }

    impl From<Run> for RunRecord {
        fn from(r: Run) -> Self {
            let points = (1..)
                .zip(r.test_accuracy_history)
                .map(|(epoch, test_accuracy)| EvalPoint { epoch, train_queries: 0, test_accuracy })
                .collect();
            RunRecord {
                method: r.method,
                test_accuracy: r.test_accuracy,
                train_accuracy: r.train_accuracy,
                wall_seconds: r.wall_seconds,
                training: Counters { physical_queries: r.train_physical_queries, digital_flops: r.digital_flops },
                evaluation: Counters { physical_queries: r.eval_physical_queries, digital_flops: r.eval_flops },
                twin: Counters { physical_queries: r.twin_queries, digital_flops: r.twin_flops },
                epochs: r.epochs,
                history: Vec::new(),
                points,
                kept: None,
            }
        }
    }

    /// Writes `runs` as the file's objects.
    pub fn serialize<S: Serializer>(runs: &[RunRecord], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(runs.iter().map(Run::from))
    }

    /// Reads the file's objects (see [`super::MethodSummary::runs`] for what a run read back
    /// holds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RunRecord>, D::Error> {
        Ok(Vec::<Run>::deserialize(d)?.into_iter().map(RunRecord::from).collect())
    }
}

/// The outcome of [`compare`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// System name (`optics`).
    pub system: String,
    /// Dataset spec.
    pub data: String,
    /// One summary per method, in the order run.
    pub methods: Vec<MethodSummary>,
}

/// The optical configuration of every block (as `systems::build_blocks` lays them out).
pub fn optics_configs(cfg: &ExperimentConfig, embedding: &LabelEmbedding, raw_len: usize) -> Vec<OpticsConfig> {
    let d = embedding.embedded_len(raw_len);
    let mut shape = embedding.embedded_shape().unwrap_or((1, d));
    (0..cfg.blocks)
        .map(|k| {
            let mut o = cfg.optics.clone();
            o.input_shape = shape;
            o.placement = if k == 0 || shape.0 == 1 {
                Placement::Tile
            } else {
                Placement::Upsample { factor: o.field_size.div_ceil(shape.0).max(1) }
            };
            let s = (cfg.hidden as f64).sqrt().round() as usize;
            shape = if s * s == cfg.hidden { (s, s) } else { (1, cfg.hidden) };
            o
        })
        .collect()
}

/// Builds the optical system of every block.
///
/// # Errors
/// Invalid configurations, naming the block.
pub fn optics_systems<F: FftReal>(cfgs: &[OpticsConfig]) -> Result<Vec<OpticsSystem<F>>> {
    cfgs.iter()
        .enumerate()
        .map(|(k, c)| OpticsSystem::new(c.clone()).map_err(|e| anyhow::anyhow!("block {}: {e}", k + 1)))
        .collect()
}

/// The samples `x` embedded with empty label slots/bands (zeros): the input of the
/// end-to-end methods, which predict the label with a read-out.
///
/// # Errors
/// Shape errors of the embedding.
pub fn blank<F: FftReal>(prep: &Prepared<F>, x: &Matrix<F>) -> Result<Matrix<F>> {
    let mut out = Matrix::zeros(0, 0);
    prep.embedding.embed_with_value(x.view(), &vec![0; x.rows()], F::zero(), &mut out)?;
    Ok(out)
}

/// Name of the FF run whose schedule matches the gradient methods' (see [`compare`]).
pub const FF_MATCHED: &str = "FF (matched updates)";

/// FF (or its ablation) under the name `name`, the test split scored after every epoch.
fn ff_run<F: FftReal>(
    cfg: &ExperimentConfig,
    prep: &Prepared<F>,
    name: &str,
    ablation: bool,
    progress: &mut dyn FnMut(&str, usize, f64),
) -> Result<RunRecord> {
    let opts = FitOptions { eval_every: 1, ..cfg.fit_options() };
    let mut net = build_network(cfg, prep, ablation)?;
    let run = fit(&mut net, &prep.data.train, &prep.data.test, &opts, |r| {
        progress(name, r.epoch, r.test_accuracy.unwrap_or(f64::NAN))
    })?;
    Ok(run.named(name))
}

/// Runs every method for every seed. `progress(method, epoch, test_accuracy)` is told about
/// every epoch.
///
/// # Errors
/// Invalid configuration, data, systems, a diverging method, output I/O.
pub fn compare<F>(
    cfg: &impl ToChecked,
    opts: &CompareOptions,
    mut progress: impl FnMut(&str, usize, f64),
) -> Result<CompareReport>
where
    F: FftReal + Serialize,
{
    let checked = cfg.to_checked()?;
    let cfg: &ExperimentConfig = &checked;
    anyhow::ensure!(
        cfg.mode == Mode::Supervised,
        "invalid mode: phyff compare runs the supervised methods; compare unsupervised FF with supervised FF by `phyff train --unsupervised` (drop --unsupervised here)"
    );
    anyhow::ensure!(opts.seeds >= 1, "invalid --seeds: must be at least 1, got 0");
    cfg.require_plain_adam("phyff compare trains every method")?;
    opts.twin.validate()?;
    opts.twin_inputs.validate()?;
    let system = cfg.system.name();
    let mut runs: Vec<Vec<RunRecord>> = Vec::new();
    // Every twin as PAT and in-silico saw it (per seed and block), and the classes.
    let (mut twin_blocks, mut classes) = (std::collections::BTreeMap::<String, Vec<TwinBlock>>::new(), 2usize);
    for s in 0..opts.seeds {
        let mut c = cfg.clone();
        c.seed = cfg.seed + s as u64;
        let prep = prepare::<F>(&c)?;
        classes = prep.data.train.num_classes;
        let bp_batch = if opts.bp_batch_size == 0 { c.batch_size } else { opts.bp_batch_size };
        let mut seed_runs = vec![
            ff_run(&c, &prep, FF_METHOD, false, &mut progress)?,
            ff_run(&c, &prep, ABLATION_METHOD, true, &mut progress)?,
        ];
        if c.n_inner != 1 || c.batch_size != bp_batch {
            // FF with the gradient methods' schedule: one optimiser step per mini-batch of
            // the same size, so its digital cost per epoch is comparable update for update.
            let m = ExperimentConfig { n_inner: 1, batch_size: bp_batch, ..c.clone() };
            seed_runs.push(ff_run(&m, &prep, FF_MATCHED, false, &mut progress)?);
        }
        let (train_x, test_x) = (blank(&prep, &prep.data.train.x)?, blank(&prep, &prep.data.test.x)?);
        let data = E2eData::new(&train_x, &test_x, &prep.data);
        let eo = E2eOptions::of(&c, bp_batch);
        // Ideal backprop needs the exact adjoint (the optical simulator has it).
        if let Some(models) = build_exact_blocks::<F>(&c, &prep.embedding, prep.data.train.dim())? {
            let exact: Vec<BlockModel<F>> =
                models.into_iter().map(|m| BlockModel::Exact { system: m.system, vjp_flops: m.vjp_flops }).collect();
            seed_runs.push(train_end_to_end("ideal BP", exact, &data, &eo, |e, a| progress("ideal BP", e, a))?);
        }
        let physical = || -> Result<Vec<Box<dyn PhysicalSystem<F>>>> {
            Ok(build_blocks::<F>(&c, &prep.embedding, prep.data.train.dim(), false)?
                .into_iter()
                .map(|b| b.system)
                .collect())
        };

        // Twins of every block, fitted once and shared by PAT and in-silico training.
        let start = Instant::now();
        let mut phys = physical()?;
        let (twins, fits, range_queries) =
            fit_block_twins(&mut phys, &train_x, &eo, &opts.twin, c.seed, opts.twin_inputs)?;
        let mut twin_work = Counters { physical_queries: range_queries, digital_flops: 0 };
        for (k, (twin, (range, f))) in twins.iter().zip(&fits).enumerate() {
            eprintln!(
                "twin of block {}: inputs in [{:.3}, {:.3}], train RMSE {:.4}, validation RMSE {:.4} (mean predictor {:.4})",
                k + 1,
                range.0,
                range.1,
                f.train_rmse,
                f.val_rmse,
                f.val_rmse_of_mean
            );
            if let Some(dir) = &opts.out {
                twin.save(&dir.join(format!("twin_seed{}_block{}.json", c.seed, k + 1)))?;
            }
            twin_work.digital_flops += f.digital_flops;
            twin_work.physical_queries += f.physical_queries;
        }
        let twin_seconds = start.elapsed().as_secs_f64();
        for pat in [true, false] {
            let name = if pat { "PAT" } else { "in-silico" };
            let blocks: Vec<BlockModel<F>> = physical()?
                .into_iter()
                .zip(&twins)
                .map(|(physical, t)| {
                    let twin = Box::new(t.clone()) as Box<dyn Differentiable<F>>;
                    let vjp_flops = t.flops_vjp(1);
                    if pat {
                        BlockModel::Pat { physical, twin, vjp_flops }
                    } else {
                        BlockModel::InSilico { physical, twin, forward_flops: t.flops_forward(1), vjp_flops }
                    }
                })
                .collect();
            let (mut r, seen) = train_end_to_end_seen(name, blocks, &data, &eo, |e, a| progress(name, e, a))?;
            for (sf, (_, f)) in seen.iter().zip(&fits) {
                let tb = TwinBlock {
                    seed: c.seed,
                    block: sf.block,
                    val_rmse: f.val_rmse,
                    val_rmse_of_mean: f.val_rmse_of_mean,
                    start_rmse: sf.start_rmse,
                    start_rmse_of_mean: sf.start_rmse_of_mean,
                    end_rmse: sf.end_rmse,
                    end_rmse_of_mean: sf.end_rmse_of_mean,
                };
                eprintln!(
                    "{name}: twin of block {} vs mean predictor: validation {:.4} vs {:.4} ({:.2}x), training inputs at start {:.4} vs {:.4} ({:.2}x), at end {:.4} vs {:.4} ({:.2}x)",
                    tb.block,
                    tb.val_rmse,
                    tb.val_rmse_of_mean,
                    tb.val_rmse_of_mean / tb.val_rmse,
                    tb.start_rmse,
                    tb.start_rmse_of_mean,
                    tb.start_rmse_of_mean / tb.start_rmse,
                    tb.end_rmse,
                    tb.end_rmse_of_mean,
                    tb.end_rmse_of_mean / tb.end_rmse
                );
                twin_blocks.entry(name.to_string()).or_default().push(tb);
            }
            r.twin = twin_work;
            r.wall_seconds += twin_seconds;
            seed_runs.push(r);
        }
        seed_runs.push(train_digital_mlp(&data, c.blocks, &eo, |e, a| progress("digital MLP (BP)", e, a))?);
        runs.push(seed_runs);
    }
    let mut methods = Vec::new();
    for m in 0..runs[0].len() {
        let rs: Vec<RunRecord> = runs.iter().map(|r| r[m].clone()).collect();
        let n = rs.len() as f64;
        let mean = |f: &dyn Fn(&RunRecord) -> f64| rs.iter().map(f).sum::<f64>() / n;
        let acc = mean(&|r| r.test_accuracy);
        let sd = if rs.len() > 1 {
            (rs.iter().map(|r| (r.test_accuracy - acc).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let queries = mean(&|r| r.total_queries() as f64).round() as u64;
        let fl = mean(&|r| r.total_flops() as f64).round() as u64;
        let learning = mean(&|r| r.learning_flops() as f64).round() as u64;
        let blocks = twin_blocks.get(&rs[0].method).cloned().unwrap_or_default();
        let twin_rmse_ratio = blocks.iter().map(TwinBlock::worst_ratio).reduce(f64::max);
        methods.push(MethodSummary {
            method: rs[0].method.clone(),
            test_accuracy: acc,
            test_accuracy_sd: sd,
            wall_seconds: mean(&|r| r.wall_seconds),
            physical_queries: queries,
            digital_flops: fl,
            digital_flops_per_epoch: learning / cfg.epochs.max(1) as u64,
            eval_flops: mean(&|r| r.evaluation.digital_flops as f64).round() as u64,
            energy_joules: opts.energy.energy(system, queries, fl)?,
            runs: rs,
            twin_rmse_ratio,
            twin_unfit: twin_rmse_ratio.is_some_and(|r| r > 1.0 / TWIN_FIT_FACTOR),
            at_chance: acc <= 1.0 / classes.max(1) as f64 + 0.02,
            twin_blocks: blocks,
        });
    }
    let report = CompareReport { system: system.into(), data: cfg.data.clone(), methods };
    if let Some(dir) = &opts.out {
        write_atomic(&dir.join("result.json"), serde_json::to_string_pretty(&report.methods)?.as_bytes())?;
        write_atomic(&dir.join("comparison.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
        let curves: Vec<(String, Vec<f64>)> = report
            .methods
            .iter()
            .map(|m| {
                let e = m.runs[0].points.len();
                (
                    m.method.clone(),
                    (0..e)
                        .map(|i| m.runs.iter().map(|r| r.points[i].test_accuracy).sum::<f64>() / m.runs.len() as f64)
                        .collect(),
                )
            })
            .collect();
        let acc = plot::LinePlot {
            title: "test accuracy vs epoch".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: curves,
        };
        write_atomic(&dir.join("accuracy.svg"), acc.svg().as_bytes())?;
        write_atomic(&dir.join("accuracy.png"), &acc.png())?;
        let bars = plot::BarChart {
            title: "energy per run (J, log10)".into(),
            bars: report.methods.iter().map(|m| (m.method.clone(), m.energy_joules.max(1e-12).log10())).collect(),
        };
        write_atomic(&dir.join("cost.svg"), bars.svg().as_bytes())?;
        write_atomic(&dir.join("cost.png"), &bars.png())?;
    }
    Ok(report)
}

/// The comparison table: accuracy mean ± sd, wall time, queries, digital FLOPs (all, and of
/// learning per epoch: training and twin fitting, evaluation excluded), energy; then where FF
/// stands against ideal backprop and FF's learning FLOPs per epoch against PAT's.
pub fn compare_table(report: &CompareReport) -> String {
    let names: Vec<String> = report
        .methods
        .iter()
        .map(|m| {
            let flags: Vec<&str> = [(m.twin_unfit, "twin unfit"), (m.at_chance, "at chance")]
                .into_iter()
                .filter_map(|(on, f)| on.then_some(f))
                .collect();
            if flags.is_empty() {
                m.method.clone()
            } else {
                format!("{} [{}]", m.method, flags.join(", "))
            }
        })
        .collect();
    let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(22);
    let mut s = format!(
        "{:<w$} {:>16} {:>9} {:>14} {:>13} {:>14} {:>11}\n",
        "method", "test acc", "wall (s)", "phys. queries", "digital", "learning/epoch", "energy (J)"
    );
    for (m, name) in report.methods.iter().zip(&names) {
        s.push_str(&format!(
            "{:<w$} {:>8.4} ± {:<5.4} {:>9.1} {:>14} {:>13} {:>14} {:>11.3e}\n",
            name,
            m.test_accuracy,
            m.test_accuracy_sd,
            m.wall_seconds,
            thousands(m.physical_queries),
            flops(m.digital_flops),
            flops(m.digital_flops_per_epoch),
            m.energy_joules
        ));
    }
    s.push_str(
        "digital: training, evaluation and twin fitting; learning/epoch: training and twin fitting per epoch, \
         evaluation excluded\n",
    );
    for m in report.methods.iter().filter(|m| !m.twin_blocks.is_empty()) {
        for b in &m.twin_blocks {
            let x = |a: f64, mean: f64| mean / a.max(f64::MIN_POSITIVE);
            s.push_str(&format!(
                "{} twin of block {} (seed {}): RMSE {:.4} vs mean predictor {:.4} ({:.2}x) held out; on the block's training inputs {:.4} vs {:.4} ({:.2}x) at start, {:.4} vs {:.4} ({:.2}x) at end\n",
                m.method,
                b.block,
                b.seed,
                b.val_rmse,
                b.val_rmse_of_mean,
                x(b.val_rmse, b.val_rmse_of_mean),
                b.start_rmse,
                b.start_rmse_of_mean,
                x(b.start_rmse, b.start_rmse_of_mean),
                b.end_rmse,
                b.end_rmse_of_mean,
                x(b.end_rmse, b.end_rmse_of_mean)
            ));
        }
    }
    let unfit: Vec<&MethodSummary> = report.methods.iter().filter(|m| m.twin_unfit).collect();
    if let Some(ratio) = unfit.first().and_then(|m| m.twin_rmse_ratio) {
        let names: Vec<&str> = unfit.iter().map(|m| m.method.as_str()).collect();
        s.push_str(&format!(
            "twin unfit: {} learn through twins where the mean predictor's RMSE is only {:.2}x the twin's (worst block, held out or on the block's training inputs; a fit that matters is {TWIN_FIT_FACTOR}x or more): no verdict on {} from this run; fit better twins (--twin-samples, --twin-epochs, --twin-inputs data)\n",
            names.join(" and "),
            1.0 / ratio,
            if names.len() == 1 { "it" } else { "them" }
        ));
    }
    let chance: Vec<&str> = report.methods.iter().filter(|m| m.at_chance).map(|m| m.method.as_str()).collect();
    if !chance.is_empty() {
        s.push_str(&format!(
            "at chance: {} learned nothing (test accuracy within 2 points of 1/classes); not a result to compare with\n",
            chance.join(", ")
        ));
    }
    let find = |n: &str| report.methods.iter().find(|m| m.method == n);
    if let (Some(ff), Some(bp)) = (find("FF (PhyLL)"), find("ideal BP")) {
        s.push_str(&format!(
            "FF reaches {:.4} vs ideal BP {:.4} ({:+.4}, {:.1} % of ideal BP)\n",
            ff.test_accuracy,
            bp.test_accuracy,
            ff.test_accuracy - bp.test_accuracy,
            100.0 * ff.test_accuracy / bp.test_accuracy.max(1e-12)
        ));
    }
    if let Some(pat) = find("PAT") {
        for name in ["FF (PhyLL)", FF_MATCHED] {
            if let Some(ff) = find(name) {
                let ratio = pat.digital_flops_per_epoch as f64 / ff.digital_flops_per_epoch.max(1) as f64;
                s.push_str(&format!(
                    "learning FLOPs per epoch: {name} {} vs PAT {} (twin fitting included): FF uses {}\n",
                    flops(ff.digital_flops_per_epoch),
                    flops(pat.digital_flops_per_epoch),
                    if ratio >= 1.0 { format!("{ratio:.2}x fewer") } else { format!("{:.2}x more", 1.0 / ratio) }
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: &str, acc: f64, twin: Option<f64>) -> MethodSummary {
        MethodSummary {
            method: method.into(),
            test_accuracy: acc,
            test_accuracy_sd: 0.0,
            wall_seconds: 1.0,
            physical_queries: 10,
            digital_flops: 100,
            digital_flops_per_epoch: 10,
            eval_flops: 1,
            energy_joules: 1e-3,
            runs: Vec::new(),
            twin_rmse_ratio: twin,
            twin_unfit: twin.is_some_and(|r| r > 1.0 / TWIN_FIT_FACTOR),
            at_chance: acc <= 0.1 + 0.02,
            twin_blocks: Vec::new(),
        }
    }

    #[test]
    fn a_twin_no_better_than_the_mean_and_a_method_at_chance_are_marked_not_reported() {
        // The figures of the default compare: block twins at 0.094 against 0.096 for the mean
        // predictor, in-silico at 0.1000 on 10 classes.
        let report = CompareReport {
            system: "optics".into(),
            data: "digits".into(),
            methods: vec![
                summary("FF (PhyLL)", 0.97, None),
                summary("PAT", 0.90, Some(0.094 / 0.096)),
                summary("in-silico", 0.10, Some(0.094 / 0.096)),
            ],
        };
        let t = compare_table(&report);
        assert!(t.contains("PAT [twin unfit]") && t.contains("in-silico [twin unfit, at chance]"), "{t}");
        assert!(!t.contains("FF (PhyLL) ["), "{t}");
        assert!(t.contains("twin unfit: PAT and in-silico") && t.contains("only 1.02x the twin's"), "{t}");
        assert!(t.contains("at chance: in-silico"), "{t}");
        // A twin 4x better than the mean predictor is fit; nothing is marked.
        let fit = CompareReport { methods: vec![summary("PAT", 0.9, Some(0.25))], ..report };
        let t = compare_table(&fit);
        assert!(!t.contains("unfit") && !t.contains("at chance"), "{t}");
    }

    #[test]
    fn compare_runs_every_method_and_writes_the_records() {
        let mut cfg = ExperimentConfig { epochs: 2, hidden: 16, ..ExperimentConfig::default() };
        cfg.optics.field_size = 16;
        cfg.optics.input_pupil_radius_px = 4.0;
        cfg.optics.output_pupil_radius_px = 4.0;
        let dir = std::env::temp_dir().join(format!("phyff-compare-{}", std::process::id()));
        let opts = CompareOptions {
            out: Some(dir.clone()),
            twin: TwinConfig { samples: 64, epochs: 1, ..TwinConfig::default() },
            ..CompareOptions::default()
        };
        let report = compare::<f32>(&cfg, &opts, |_, _, _| {}).unwrap();
        let names: Vec<&str> = report.methods.iter().map(|m| m.method.as_str()).collect();
        // Only the methods that learn through twins carry a twin ratio, and it is a ratio.
        for m in &report.methods {
            let twin = matches!(m.method.as_str(), "PAT" | "in-silico");
            assert_eq!(m.twin_rmse_ratio.is_some(), twin, "{}", m.method);
            assert!(m.twin_rmse_ratio.is_none_or(|r| r.is_finite() && r > 0.0), "{m:?}");
            // ... and reports every block's twin, held out and on the block's training inputs;
            // the ratio is the worst of them.
            assert_eq!(m.twin_blocks.len(), if twin { cfg.blocks } else { 0 }, "{}", m.method);
            for b in &m.twin_blocks {
                for v in
                    [b.val_rmse, b.val_rmse_of_mean, b.start_rmse, b.start_rmse_of_mean, b.end_rmse, b.end_rmse_of_mean]
                {
                    assert!(v.is_finite() && v > 0.0, "{b:?}");
                }
                assert!(
                    b.worst_ratio() <= m.twin_rmse_ratio.unwrap() && b.worst_ratio() >= b.end_rmse / b.end_rmse_of_mean
                );
            }
        }
        assert_eq!(
            names,
            ["FF (PhyLL)", "physics removed (FF)", FF_MATCHED, "ideal BP", "PAT", "in-silico", "digital MLP (BP)"]
        );
        for m in &report.methods {
            assert!((0.0..=1.0).contains(&m.test_accuracy), "{}: {}", m.method, m.test_accuracy);
            assert_eq!(m.runs[0].test_accuracy_history().len(), 2, "{}", m.method);
        }
        let get = |n: &str| report.methods.iter().find(|m| m.method == n).unwrap();
        assert_eq!(get("digital MLP (BP)").physical_queries, 0);
        assert_eq!(get("physics removed (FF)").physical_queries, 0);
        assert!(get("ideal BP").physical_queries > 0 && get("PAT").runs[0].twin.digital_flops > 0);
        // PAT queries the physics in training; in-silico only to sample its twins and to deploy.
        assert!(
            get("PAT").runs[0].training.physical_queries > 0 && get("in-silico").runs[0].training.physical_queries == 0
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
        for rec in json.as_array().unwrap() {
            for f in ["method", "test_accuracy", "wall_seconds", "physical_queries", "digital_flops", "energy_joules"] {
                assert!(rec.get(f).is_some(), "result.json record lacks {f}");
            }
        }
        for f in ["accuracy.svg", "accuracy.png", "cost.svg", "cost.png"] {
            assert!(dir.join(f).metadata().unwrap().len() > 100, "{f}");
        }
        let table = compare_table(&report);
        assert!(table.contains("FF reaches") && table.contains("vs PAT"), "{table}");
        assert!(table.contains("in-silico twin of block 2 (seed 0): RMSE"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("comparison.json")).unwrap()).unwrap();
        let pat = json["methods"].as_array().unwrap().iter().find(|m| m["method"] == "PAT").unwrap();
        assert!(pat["twin_blocks"][1]["end_rmse_of_mean"].as_f64().is_some(), "{pat}");
        // Every run keeps the file's schema: the record's work under the file's names, with
        // `digital_flops` the training part only.
        let (file, r) = (&pat["runs"][0], &get("PAT").runs[0]);
        let mut keys: Vec<&str> = file.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "digital_flops",
                "epochs",
                "eval_flops",
                "eval_physical_queries",
                "method",
                "test_accuracy",
                "test_accuracy_history",
                "train_accuracy",
                "train_physical_queries",
                "twin_flops",
                "twin_queries",
                "wall_seconds"
            ]
        );
        let work = [
            ("train_physical_queries", r.training.physical_queries),
            ("digital_flops", r.training.digital_flops),
            ("eval_physical_queries", r.evaluation.physical_queries),
            ("eval_flops", r.evaluation.digital_flops),
            ("twin_queries", r.twin.physical_queries),
            ("twin_flops", r.twin.digital_flops),
            ("epochs", 2),
        ];
        for (k, v) in work {
            assert_eq!(file[k].as_u64(), Some(v), "{k}");
        }
        // Read back and written again, the file is the same.
        let back: CompareReport = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        // Evaluation is counted, but apart from learning.
        for m in &report.methods {
            let r = &m.runs[0];
            assert!(r.evaluation.digital_flops > 0, "{}: evaluation FLOPs not counted", m.method);
            assert_eq!(m.digital_flops, r.total_flops(), "{}", m.method);
            assert_eq!(m.digital_flops_per_epoch, r.learning_flops() / 2, "{}", m.method);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
