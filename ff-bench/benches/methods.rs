//! What a training epoch costs per method: forward-forward (PhyLL), ideal backprop, PAT and
//! in-silico training on the same optical network, on the digits (the default job), the vowels
//! and an MNIST-size configuration. Prints, per setting, seconds, physical queries, digital
//! FLOPs and modelled joules per epoch (twin fit amortised over the run's epochs; see
//! `ff_bench::methods` and `ff-bench/README.md`), then times one epoch of each method on the
//! digits with criterion.
//!
//! Environment: `PHYFF_JOULES_PER_FLOP`, `PHYFF_JOULES_PER_QUERY` (the energy model),
//! `PHYFF_BENCH_QUICK=1` (small MNIST setting, small twins: a smoke run), `PHYFF_MNIST_DIR`
//! (IDX files of MNIST; default: the repository's 3 000-image subset `xtask/data/mnist-quick`).
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{criterion_group, Criterion};
use ff_bench::methods::{bench_twin, energy_from_env, measure, settings, table, BP_BATCH};
use ff_core::{Differentiable, PhysicalSystem};
use ff_data::MiniBatches;
use ff_train::baselines::e2e::{BlockModel, E2eData, E2eLearner, E2eOptions};
use ff_train::baselines::optics_vjp_flops;
use ff_train::driver::{drive, EvalSchedule, Plan, Stop};
use ff_train::experiments::compare::{blank, optics_configs, optics_systems};
use ff_train::run::{build_network, prepare};
use ff_train::trainer::{FfLearner, Schedule};
use std::path::PathBuf;

fn quick() -> bool {
    std::env::var("PHYFF_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// The tables: every setting, every method.
fn report() {
    let mnist = std::env::var_os("PHYFF_MNIST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../xtask/data/mnist-quick"), PathBuf::from);
    let energy = energy_from_env().expect("energy model from the environment");
    let twin = bench_twin(quick());
    for s in settings(&mnist, quick()) {
        eprintln!("methods bench: {} ...", s.title);
        match measure(&s, &twin, 3, |m| eprintln!("  {m}")) {
            Ok(costs) => println!("\n{}", table(&s, &costs, &energy).expect("energy model covers optics")),
            Err(e) => println!("\n{}: not measured: {e:#}", s.title),
        }
    }
    println!();
}

/// Criterion timing of one epoch of each method on the digits (the default job's network).
fn digits_epoch(c: &mut Criterion) {
    let s = settings(std::path::Path::new("unused"), true).remove(0);
    let cfg = s.cfg;
    let prep = prepare::<f32>(&cfg).expect("digits");
    let (train_x, test_x) = (blank(&prep, &prep.data.train.x).unwrap(), blank(&prep, &prep.data.test.x).unwrap());
    let data = E2eData::new(&train_x, &test_x, &prep.data);
    let eo = E2eOptions { epochs: 1, ..E2eOptions::of(&cfg, BP_BATCH) };
    let ocfgs = optics_configs(&cfg, &prep.embedding, prep.data.train.dim());
    let plan = |batches| Plan {
        stop: Stop::Epochs(1),
        eval: EvalSchedule::Never,
        batches,
        train_eval: false,
        select: false,
        name: None,
    };
    let mut g = c.benchmark_group("methods_epoch_digits_optics");
    g.sample_size(10);
    g.bench_function("ff_phyll", |b| {
        b.iter(|| {
            let mut net = build_network(&cfg, &prep, false).unwrap();
            let mut l = FfLearner::new(&mut net, &prep.data.train, &prep.data.test, Schedule::Supervised, cfg.seed);
            let batches = l.batches(cfg.batch_size);
            drive(&mut l, &plan(batches), None, None, &mut []).unwrap()
        })
    });
    g.bench_function("ideal_bp", |b| {
        b.iter(|| {
            let blocks: Vec<BlockModel<f32>> = optics_systems::<f32>(&ocfgs)
                .unwrap()
                .into_iter()
                .zip(&ocfgs)
                .map(|(s, o)| BlockModel::Exact {
                    system: Box::new(s) as Box<dyn Differentiable<f32>>,
                    vjp_flops: optics_vjp_flops(o),
                })
                .collect();
            let mut l = E2eLearner::new(blocks, &data, &eo).unwrap();
            drive(&mut l, &plan(MiniBatches::new(train_x.rows(), BP_BATCH, cfg.seed)), None, None, &mut []).unwrap()
        })
    });
    // PAT's epoch without the twin fit (which the table amortises): the optical forward, a
    // small twin's backward.
    let twins: Vec<_> = optics_systems::<f32>(&ocfgs)
        .unwrap()
        .iter_mut()
        .map(|s| {
            ff_train::systems::twin::Twin::fit_system(s as &mut dyn PhysicalSystem<f32>, (-1.0, 1.0), &bench_twin(true))
                .unwrap()
                .0
        })
        .collect();
    g.bench_function("pat", |b| {
        b.iter(|| {
            let blocks: Vec<BlockModel<f32>> = optics_systems::<f32>(&ocfgs)
                .unwrap()
                .into_iter()
                .zip(&twins)
                .map(|(s, t)| BlockModel::Pat {
                    physical: Box::new(s),
                    twin: Box::new(t.clone()),
                    vjp_flops: t.flops_vjp(1),
                })
                .collect();
            let mut l = E2eLearner::new(blocks, &data, &eo).unwrap();
            drive(&mut l, &plan(MiniBatches::new(train_x.rows(), BP_BATCH, cfg.seed)), None, None, &mut []).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, digits_epoch);

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
