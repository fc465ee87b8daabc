//! What one training epoch of each method costs on the same network (`cargo bench --bench
//! methods`): forward-forward (PhyLL), ideal backprop through the exact optical model, physics-
//! aware training (PAT: physical forward, twin backward) and in-silico training (twin only), in
//! wall time, physical queries, digital FLOPs and modelled joules per epoch.
//!
//! Conventions:
//! - One epoch is one pass over the training split in mini-batches, without any evaluation
//!   (the driver's plan has no evaluation and no final train accuracy), so the figures are the
//!   cost of learning alone; evaluation cost differs by method (FF scores every candidate
//!   label) and by how often the experimenter looks, and is reported by `phyff compare`.
//! - FF trains with the configuration's batch size and `n_inner` steps per block; the gradient
//!   methods with mini-batches of [`BP_BATCH`] (one Adam step each), as `phyff compare` does.
//! - PAT and in-silico need a digital twin of every block, fitted once before training (the fit
//!   of `phyff compare`, [`ff_train::experiments::compare::compare_twin`]). Its cost is
//!   amortised over the epochs of the run it serves ([`Setting::epochs_served`]): per-epoch
//!   figures add `twin / epochs_served`; the twin's own cost is reported beside.
//! - Energy is [`EnergyModel::energy`]: joules per physical query of the system plus joules per
//!   digital FLOP (orders of magnitude, documented in `ff_train::baselines::energy`).
//! - Everything runs in f32.

use anyhow::{Context, Result};
use ff_core::{Counters, Differentiable, PhysicalSystem};
use ff_data::MiniBatches;
use ff_train::baselines::e2e::{fit_block_twins, BlockModel, E2eData, E2eLearner, E2eOptions, TwinInputs};
use ff_train::baselines::{optics_vjp_flops, EnergyModel};
use ff_train::config::{ExperimentConfig, SystemKind};
use ff_train::driver::{drive, EvalSchedule, Learner, Plan, Stop};
use ff_train::experiments::compare::{blank, compare_twin, optics_configs, optics_systems};
use ff_train::run::{build_network, prepare, Prepared};
use ff_train::systems::build_blocks;
use ff_train::systems::twin::{Twin, TwinConfig};
use ff_train::trainer::{FfLearner, Schedule};
use std::time::Instant;

/// Mini-batch size of the gradient methods (as `phyff compare`'s `--bp-batch-size` default).
pub const BP_BATCH: usize = 32;

/// One configuration the methods are compared on.
#[derive(Clone, Debug)]
pub struct Setting {
    /// Short name (`digits`, `vowels`, `mnist`).
    pub name: &'static str,
    /// What it is, for the table's title.
    pub title: String,
    /// The experiment (data, system, network, FF schedule).
    pub cfg: ExperimentConfig,
    /// Epochs of the run the twins serve, over which their fit is amortised.
    pub epochs_served: usize,
}

/// The three settings: the default job (digits through the optical system), the vowels
/// through the same optical system, and an MNIST-size optical network (the SPEC row's
/// 2 x 676 blocks on a 52 x 52 field, `n_inner` 20) on `train` MNIST images read from
/// `mnist_dir` (IDX files). `quick` shrinks the MNIST setting (a smoke run, not a measurement).
pub fn settings(mnist_dir: &std::path::Path, quick: bool) -> Vec<Setting> {
    let base = ExperimentConfig { precision: ff_train::config::Precision::F32, ..ExperimentConfig::default() };
    let digits = base.clone();
    let vowels = ExperimentConfig { data: "vowels".into(), system: SystemKind::Optics, ..base.clone() };
    let train = if quick { 200 } else { 2000 };
    let mut mnist = ExperimentConfig {
        data: format!("mnist:{}", mnist_dir.display()),
        hidden: 676,
        n_inner: 20,
        batch_size: 1000,
        lr: 5e-5,
        alpha: 5.0,
        epochs: 350,
        train_limit: Some(train),
        test_limit: Some(100),
        ..base
    };
    mnist.optics.field_size = 52;
    mnist.optics.input_pupil_radius_px = 15.7;
    mnist.optics.output_pupil_radius_px = 15.7;
    vec![
        Setting {
            name: "digits",
            title: format!("digits through optics ({} blocks x {}), the default job", digits.blocks, digits.hidden),
            epochs_served: digits.epochs,
            cfg: digits,
        },
        Setting {
            name: "vowels",
            title: format!("vowels through optics ({} blocks x {})", vowels.blocks, vowels.hidden),
            epochs_served: vowels.epochs,
            cfg: vowels,
        },
        Setting {
            name: "mnist",
            title: format!(
                "MNIST-size optics (2 blocks x 676, 52x52 field, n_inner 20, batch 1000; {train} training images)"
            ),
            epochs_served: mnist.epochs,
            cfg: mnist,
        },
    ]
}

/// The cost of one method's epoch on one setting.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCost {
    /// Method name.
    pub method: String,
    /// Median wall time of one training epoch, in seconds (twin fit not included).
    pub seconds_per_epoch: f64,
    /// Work of one training epoch (physical queries, digital FLOPs).
    pub epoch: Counters,
    /// The twin fit's work (sampling queries, fitting FLOPs); zero without a twin.
    pub twin: Counters,
    /// Wall time of the twin fit, in seconds (0 without a twin).
    pub twin_seconds: f64,
    /// Epochs the twin fit is amortised over.
    pub epochs_served: usize,
}

impl MethodCost {
    /// Per-epoch work with the twin amortised: `epoch + twin / epochs_served`.
    pub fn amortised(&self) -> (f64, f64) {
        let e = self.epochs_served.max(1) as f64;
        (
            self.epoch.physical_queries as f64 + self.twin.physical_queries as f64 / e,
            self.epoch.digital_flops as f64 + self.twin.digital_flops as f64 / e,
        )
    }

    /// Per-epoch wall time with the twin fit amortised, in seconds.
    pub fn amortised_seconds(&self) -> f64 {
        self.seconds_per_epoch + self.twin_seconds / self.epochs_served.max(1) as f64
    }

    /// Modelled joules per epoch (twin amortised): `(queries, digital)` parts.
    pub fn joules(&self, energy: &EnergyModel, system: &str) -> Result<(f64, f64)> {
        let (q, f) = self.amortised();
        let per_query = if q > 0.0 { energy.energy(system, 1, 0)? } else { 0.0 };
        Ok((q * per_query, f * energy.joules_per_flop))
    }
}

/// One epoch of `learner` on `batches`, no evaluation: its wall time and the work it did.
fn one_epoch<L: Learner>(learner: &mut L, batches: MiniBatches) -> Result<(f64, Counters)> {
    let plan = Plan {
        stop: Stop::Epochs(1),
        eval: EvalSchedule::Never,
        batches,
        train_eval: false,
        select: false,
        name: None,
    };
    let start = Instant::now();
    let d = drive(learner, &plan, None, None, &mut [])?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((seconds, d.progress.training()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures one epoch of every method on `setting`, each `reps` times (median wall time; the
/// work is the same every time). `progress` hears each method's name before it runs.
///
/// # Errors
/// Data that cannot be loaded (the MNIST setting needs its IDX files), invalid settings, system
/// failures.
pub fn measure(
    setting: &Setting,
    twin: &TwinConfig,
    reps: usize,
    mut progress: impl FnMut(&str),
) -> Result<Vec<MethodCost>> {
    let cfg = &setting.cfg;
    cfg.validate().with_context(|| format!("setting {}", setting.name))?;
    let prep: Prepared<f32> = prepare(cfg).with_context(|| format!("setting {}", setting.name))?;
    let reps = reps.max(1);
    let mut out = Vec::new();
    let cost = |method: &str, times: Vec<f64>, epoch: Counters| MethodCost {
        method: method.into(),
        seconds_per_epoch: median(times),
        epoch,
        twin: Counters::default(),
        twin_seconds: 0.0,
        epochs_served: setting.epochs_served,
    };

    progress("FF (PhyLL)");
    let (mut times, mut work) = (Vec::new(), Counters::default());
    for _ in 0..reps {
        let mut net = build_network(cfg, &prep, false)?;
        let mut learner = FfLearner::new(&mut net, &prep.data.train, &prep.data.test, Schedule::Supervised, cfg.seed);
        let batches = learner.batches(cfg.batch_size);
        let (s, w) = one_epoch(&mut learner, batches)?;
        times.push(s);
        work = w;
    }
    out.push(cost("FF (PhyLL)", times, work));

    let (train_x, test_x) = (blank(&prep, &prep.data.train.x)?, blank(&prep, &prep.data.test.x)?);
    let data = E2eData::new(&train_x, &test_x, &prep.data);
    let eo = E2eOptions { epochs: 1, ..E2eOptions::of(cfg, BP_BATCH) };
    let batches = || MiniBatches::new(train_x.rows(), BP_BATCH, cfg.seed);
    let mut e2e = |method: &str, blocks: &dyn Fn() -> Result<Vec<BlockModel<f32>>>| -> Result<MethodCost> {
        progress(method);
        let (mut times, mut work) = (Vec::new(), Counters::default());
        for _ in 0..reps {
            let mut learner = E2eLearner::new(blocks()?, &data, &eo)?;
            let (s, w) = one_epoch(&mut learner, batches())?;
            times.push(s);
            work = w;
        }
        Ok(cost(method, times, work))
    };

    if cfg.system == SystemKind::Optics {
        let ocfgs = optics_configs(cfg, &prep.embedding, prep.data.train.dim());
        let exact = || -> Result<Vec<BlockModel<f32>>> {
            Ok(optics_systems::<f32>(&ocfgs)?
                .into_iter()
                .zip(&ocfgs)
                .map(|(s, o)| BlockModel::Exact {
                    system: Box::new(s) as Box<dyn Differentiable<f32>>,
                    vjp_flops: optics_vjp_flops(o),
                })
                .collect())
        };
        out.push(e2e("ideal BP", &exact)?);
    }

    let physical = || -> Result<Vec<Box<dyn PhysicalSystem<f32>>>> {
        Ok(build_blocks::<f32>(cfg, &prep.embedding, prep.data.train.dim(), false)?
            .into_iter()
            .map(|b| b.system)
            .collect())
    };
    let started = Instant::now();
    let mut phys = physical()?;
    let (twins, fits, range_queries) = fit_block_twins(&mut phys, &train_x, &eo, twin, cfg.seed, TwinInputs::Box)?;
    let twin_seconds = started.elapsed().as_secs_f64();
    let twin_work =
        fits.iter().fold(Counters { physical_queries: range_queries, digital_flops: 0 }, |c, (_, f)| Counters {
            physical_queries: c.physical_queries + f.physical_queries,
            digital_flops: c.digital_flops + f.digital_flops,
        });
    for pat in [true, false] {
        let name = if pat { "PAT" } else { "in-silico" };
        let blocks = || -> Result<Vec<BlockModel<f32>>> {
            Ok(physical()?
                .into_iter()
                .zip(&twins)
                .map(|(physical, t): (_, &Twin<f32>)| {
                    let twin = Box::new(t.clone()) as Box<dyn Differentiable<f32>>;
                    let vjp_flops = t.flops_vjp(1);
                    if pat {
                        BlockModel::Pat { physical, twin, vjp_flops }
                    } else {
                        BlockModel::InSilico { physical, twin, forward_flops: t.flops_forward(1), vjp_flops }
                    }
                })
                .collect())
        };
        let mut c = e2e(name, &blocks)?;
        c.twin = twin_work;
        c.twin_seconds = twin_seconds;
        out.push(c);
    }
    Ok(out)
}

/// The twin fit of the bench: `phyff compare`'s ([`compare_twin`]), or a small one for a
/// smoke run.
pub fn bench_twin(quick: bool) -> TwinConfig {
    if quick {
        TwinConfig { hidden: vec![64], samples: 1000, epochs: 2, ..TwinConfig::default() }
    } else {
        compare_twin()
    }
}

/// Engineering notation with an SI prefix (`1.23 G`).
fn si(x: f64) -> String {
    let (v, p) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .iter()
        .find(|(s, _)| x.abs() >= *s)
        .map_or((x, ""), |&(s, p)| (x / s, p));
    format!("{v:.2} {p}")
}

/// The table of one setting: per method, seconds, physical queries, digital FLOPs and joules
/// per epoch (twin amortised), then each twin fit's own cost and the energy model's constants.
///
/// # Errors
/// An energy model without a per-query energy for the setting's system.
pub fn table(setting: &Setting, costs: &[MethodCost], energy: &EnergyModel) -> Result<String> {
    let system = setting.cfg.system.name();
    let mut s = format!(
        "{}: {} training samples, one epoch, twin fit amortised over {} epochs\n",
        setting.title,
        setting.cfg.train_limit.map_or_else(|| "all".to_string(), |n| n.to_string()),
        setting.epochs_served
    );
    s.push_str(&format!(
        "{:<12} {:>10} {:>14} {:>14} {:>12} {:>12} {:>12}\n",
        "method", "s/epoch", "queries/epoch", "FLOP/epoch", "J queries", "J digital", "J/epoch"
    ));
    for c in costs {
        let (q, f) = c.amortised();
        let (jq, jd) = c.joules(energy, system)?;
        s.push_str(&format!(
            "{:<12} {:>10.4} {:>14.0} {:>14} {:>12.4e} {:>12.4e} {:>12.4e}\n",
            c.method,
            c.amortised_seconds(),
            q,
            si(f),
            jq,
            jd,
            jq + jd
        ));
    }
    if let Some(t) = costs.iter().find(|c| c.twin != Counters::default()) {
        s.push_str(&format!(
            "twin fit (PAT and in-silico share it): {:.2} s, {} queries, {}FLOP, i.e. {:.4} s, {:.0} queries, {}FLOP per epoch over {} epochs\n",
            t.twin_seconds,
            t.twin.physical_queries,
            si(t.twin.digital_flops as f64),
            t.twin_seconds / t.epochs_served.max(1) as f64,
            t.twin.physical_queries as f64 / t.epochs_served.max(1) as f64,
            si(t.twin.digital_flops as f64 / t.epochs_served.max(1) as f64),
            t.epochs_served
        ));
    }
    s.push_str(&format!(
        "energy model: {:e} J per digital FLOP, {:e} J per {system} query\n",
        energy.joules_per_flop,
        energy.energy(system, 1, 0)?
    ));
    Ok(s)
}

/// The energy model of the bench: [`EnergyModel::default`], with `PHYFF_JOULES_PER_FLOP` and
/// `PHYFF_JOULES_PER_QUERY` (joules per query of the settings' system, optics) from the
/// environment when set.
///
/// # Errors
/// A variable that is not a finite non-negative number.
pub fn energy_from_env() -> Result<EnergyModel> {
    let mut e = EnergyModel::default();
    let read = |name: &str| -> Result<Option<f64>> {
        match std::env::var(name) {
            Ok(v) => {
                let x: f64 = v.trim().parse().with_context(|| format!("{name}={v:?} is not a number of joules"))?;
                anyhow::ensure!(x.is_finite() && x >= 0.0, "{name}={v:?} must be a finite number of joules >= 0");
                Ok(Some(x))
            }
            Err(_) => Ok(None),
        }
    };
    if let Some(j) = read("PHYFF_JOULES_PER_FLOP")? {
        e.joules_per_flop = j;
    }
    if let Some(j) = read("PHYFF_JOULES_PER_QUERY")? {
        e.joules_per_query.insert(SystemKind::Optics.name().to_string(), j);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digits setting shrunk: FF queries every block once on the stacked positives and
    /// negatives (2 n per block per epoch), ideal BP and PAT once per sample per block,
    /// in-silico never, and
    /// the twin's queries are its samples; the energy adds up.
    #[test]
    fn the_books_of_one_epoch_follow_each_method() {
        let mut s = settings(std::path::Path::new("unused"), true).remove(0);
        s.cfg.train_limit = Some(64);
        s.cfg.test_limit = Some(16);
        s.cfg.hidden = 16;
        s.cfg.optics.field_size = 16;
        s.cfg.optics.input_pupil_radius_px = 5.0;
        s.cfg.optics.output_pupil_radius_px = 5.0;
        let twin = TwinConfig { hidden: vec![8], samples: 100, epochs: 1, ..TwinConfig::default() };
        let costs = measure(&s, &twin, 1, |_| {}).unwrap();
        let names: Vec<&str> = costs.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(names, ["FF (PhyLL)", "ideal BP", "PAT", "in-silico"]);
        let blocks = s.cfg.blocks as u64;
        assert_eq!(costs[0].epoch.physical_queries, 2 * 64 * blocks);
        // Ideal BP's forward passes run the simulated system (its exact model), counted as
        // queries as in `phyff compare`.
        assert_eq!(costs[1].epoch.physical_queries, 64 * blocks);
        assert_eq!(costs[2].epoch.physical_queries, 64 * blocks);
        assert_eq!(costs[3].epoch.physical_queries, 0);
        assert!(costs.iter().all(|c| c.epoch.digital_flops > 0));
        assert_eq!(costs[2].twin, costs[3].twin);
        assert!(costs[2].twin.physical_queries >= 100 * blocks);
        let e = EnergyModel::default();
        let (q, f) = costs[2].amortised();
        let (jq, jd) = costs[2].joules(&e, "optics").unwrap();
        assert!((jq - q * 1e-3).abs() <= 1e-12 * jq.max(1.0) && (jd - f * 1e-12).abs() <= 1e-12, "{jq} {jd}");
        let t = table(&s, &costs, &e).unwrap();
        assert!(t.contains("in-silico") && t.contains("J per optics query"), "{t}");
    }
}
