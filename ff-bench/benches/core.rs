//! The forward-forward inner step beside the GEMM bound of the same shapes.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ff_bench::{random_matrix, FfStep};
use ff_core::layer::{stack_into, Workspace};
use ff_core::matrix::gemm_naive;
use ff_core::{gemm, Matrix, Op, Optimizer, OptimizerConfig};

fn gemm_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_f32");
    for &n in &[64usize, 256, 512] {
        let a = random_matrix::<f32>(n, n, 1);
        let b = random_matrix::<f32>(n, n, 2);
        let mut out = Matrix::<f32>::zeros(n, n);
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_with_input(BenchmarkId::new("phyff", n), &n, |bench, _| {
            bench.iter(|| gemm(1.0, a.view(), Op::N, b.view(), Op::T, 0.0, &mut out.view_mut()))
        });
        if n <= 256 {
            g.bench_with_input(BenchmarkId::new("naive", n), &n, |bench, _| {
                bench.iter(|| gemm_naive(1.0, a.view(), Op::N, b.view(), Op::T, 0.0, &mut out.view_mut()))
            });
        }
    }
    g.finish();
}

fn ff_inner_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("ff_inner_step_f32");
    g.sample_size(20);
    for &(n, d) in &[(1437usize, 256usize), (2000, 676)] {
        let s = FfStep::<f32>::new(n, d, d);
        let mut ws = Workspace::default();
        let mut grad = vec![0.0f32; s.layer.num_params()];
        let mut layer = s.layer.clone();
        let mut opt = Optimizer::new(OptimizerConfig::adam(1e-4), layer.num_params());
        // Positives and negatives stacked once, as `Network` does before its inner steps.
        let mut u = Matrix::<f32>::zeros(0, 0);
        stack_into(s.up.view(), s.un.view(), &mut u);
        // Throughput in GEMM FLOPs, so criterion's rate compares directly with gemm_f32.
        g.throughput(Throughput::Elements(s.gemm_flops()));
        g.bench_function(BenchmarkId::new("loss_grad_adam", format!("{n}x{d}")), |b| {
            b.iter(|| {
                layer.loss_and_grad_stacked(&s.loss, u.view(), &mut ws, &mut grad);
                opt.step(layer.params_mut(), &grad);
            })
        });
        // The bound: the step's two GEMMs alone (forward 2n x d by d x d, gradient d x 2n by 2n x d).
        let mut z = Matrix::<f32>::zeros(2 * n, d);
        let mut gw = Matrix::<f32>::zeros(d, d);
        g.bench_function(BenchmarkId::new("gemm_bound", format!("{n}x{d}")), |b| {
            b.iter(|| {
                gemm(1.0, u.view(), Op::N, layer.weights(), Op::T, 0.0, &mut z.view_mut());
                gemm(1.0, z.view(), Op::T, u.view(), Op::N, 0.0, &mut gw.view_mut());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, gemm_kernels, ff_inner_step);
criterion_main!(benches);
