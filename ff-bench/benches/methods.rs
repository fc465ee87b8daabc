//! Time per epoch of forward-forward (PhyLL), ideal backprop and PAT on the same small
//! optical network (16 x 16 field, 2 blocks of 64, 256 training digits).
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{criterion_group, criterion_main, Criterion};
use ff_core::{Differentiable, PhysicalSystem};
use ff_train::baselines::{optics_vjp_flops, train_end_to_end, BlockModel, E2eData, E2eOptions};
use ff_train::config::ExperimentConfig;
use ff_train::experiments::compare::{blank, optics_configs, optics_systems};
use ff_train::run::{build_network, prepare};
use ff_train::systems::twin::{Twin, TwinConfig};
use ff_train::trainer::{fit, FitOptions};

fn methods(c: &mut Criterion) {
    let mut cfg = ExperimentConfig { epochs: 1, hidden: 64, eval_every: 1, ..ExperimentConfig::default() };
    cfg.optics.field_size = 16;
    cfg.optics.input_pupil_radius_px = 5.0;
    cfg.optics.output_pupil_radius_px = 5.0;
    let mut prep = prepare::<f32>(&cfg).expect("digits");
    prep.data.train = prep.data.train.subset(&(0..256).collect::<Vec<_>>());
    prep.data.test = prep.data.test.subset(&(0..64).collect::<Vec<_>>());
    let (train_x, test_x) = (blank(&prep, &prep.data.train.x).unwrap(), blank(&prep, &prep.data.test.x).unwrap());
    let data = E2eData::new(&train_x, &test_x, &prep.data);
    let eo = E2eOptions { epochs: 1, skip: false, seed: 0, ..E2eOptions::of(&cfg, cfg.batch_size) };
    let ocfgs = optics_configs(&cfg, &prep.embedding, prep.data.train.dim());
    let tc = TwinConfig { samples: 256, epochs: 2, ..TwinConfig::default() };
    let twins: Vec<Twin<f32>> = optics_systems::<f32>(&ocfgs)
        .unwrap()
        .iter_mut()
        .map(|s| Twin::fit_system(s as &mut dyn PhysicalSystem<f32>, (-1.0, 1.0), &tc).unwrap().0)
        .collect();

    let mut g = c.benchmark_group("methods_epoch_optics16");
    g.sample_size(10);
    g.bench_function("ff_phyll", |b| {
        b.iter(|| {
            let mut net = build_network(&cfg, &prep, false).unwrap();
            let opts = FitOptions { epochs: 1, eval_every: 1, seed: 0, train_eval: false, ..cfg.fit_options() };
            fit(&mut net, &prep.data.train, &prep.data.test, &opts, |_| {}).unwrap()
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
            train_end_to_end("ideal BP", blocks, &data, &eo, |_, _| {}).unwrap()
        })
    });
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
            train_end_to_end("PAT", blocks, &data, &eo, |_, _| {}).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, methods);
criterion_main!(benches);
