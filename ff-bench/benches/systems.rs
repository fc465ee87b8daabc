//! Batched forward queries of every simulator, beside the FFT and GEMM kernels they rest on.
//!
//! Throughputs: `fft2d_*` and `gemm_*` groups count FLOPs (criterion shows FLOP/s as
//! "elements/s"), the `*_forward` groups count queries (input vectors per second). The optics
//! bound is the time of its two FFTs per field plus its medium GEMM on the same batch
//! (`optics_bound`), so `optics_forward / optics_bound` is the fraction of the kernel limit.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ff_bench::{fft_flops, random_matrix};
use ff_core::{gemm, Matrix, Op, PhysicalSystem};
use ff_physics::fft::{Direction, Fft2d};
use ff_physics::{
    AcousticCavity, AcousticConfig, FiberConfig, FiberSystem, FreeSpaceConfig, FreeSpaceSystem, MicrowaveCavity,
    MicrowaveConfig, OpticsConfig, OpticsSystem,
};
use num_complex::Complex;

/// An optics configuration with an `n x n` field, pupils scaled from the 32 x 32 default.
fn optics_config(n: usize) -> OpticsConfig {
    let base = OpticsConfig::default();
    let r = base.input_pupil_radius_px * n as f64 / 32.0;
    OpticsConfig { field_size: n, input_shape: (n, n), input_pupil_radius_px: r, output_pupil_radius_px: r, ..base }
}

fn optics(c: &mut Criterion) {
    let batch = 256;
    let mut fwd = c.benchmark_group("optics_forward_f32");
    fwd.sample_size(10);
    for &n in &[32usize, 64] {
        let mut sys = OpticsSystem::<f32>::new(optics_config(n)).expect("valid config");
        let x = random_matrix::<f32>(batch, sys.input_len(), 1);
        let mut y = Matrix::<f32>::zeros(batch, sys.output_len());
        fwd.throughput(Throughput::Elements(batch as u64));
        fwd.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| sys.forward_batch(x.view(), y.view_mut()).expect("forward"))
        });
    }
    fwd.finish();

    // The kernels it rests on, same shapes: 2 FFTs per field and the medium GEMM
    // (batch x 2 m_in) x (2 m_in x 2 m_out).
    let mut bound = c.benchmark_group("optics_bound_f32");
    bound.sample_size(10);
    for &n in &[32usize, 64] {
        let cfg = optics_config(n);
        let (m_in, m_out) = (cfg.input_modes(), cfg.output_modes());
        let fft = Fft2d::<f32>::new(n, n);
        let mut scratch = fft.make_scratch();
        let mut fields = vec![Complex::new(0.5f32, 0.0); batch * n * n];
        let xm = random_matrix::<f32>(batch, 2 * m_in, 2);
        let t = random_matrix::<f32>(2 * m_in, 2 * m_out, 3);
        let mut ym = Matrix::<f32>::zeros(batch, 2 * m_out);
        let flops = 2.0 * batch as f64 * fft_flops(n * n) + 2.0 * (batch * 2 * m_in * 2 * m_out) as f64;
        bound.throughput(Throughput::Elements(batch as u64));
        bound.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                fft.process_with_scratch(&mut fields, &mut scratch, Direction::Forward);
                gemm(1.0, xm.view(), Op::N, t.view(), Op::N, 0.0, &mut ym.view_mut());
                fft.process_with_scratch(&mut fields, &mut scratch, Direction::Inverse);
            })
        });
        eprintln!("optics n={n}: m_in={m_in}, m_out={m_out}, kernel work per batch {:.3} GFLOP", flops / 1e9);
    }
    bound.finish();

    let mut g = c.benchmark_group("fft2d_f32_flops");
    for &n in &[32usize, 64] {
        let fft = Fft2d::<f32>::new(n, n);
        let mut scratch = fft.make_scratch();
        let mut fields = vec![Complex::new(0.25f32, -0.5); 64 * n * n];
        g.throughput(Throughput::Elements((64.0 * fft_flops(n * n)) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| fft.process_with_scratch(&mut fields, &mut scratch, Direction::Forward))
        });
    }
    g.finish();
}

fn cavities(c: &mut Criterion) {
    let mut g = c.benchmark_group("cavity_forward");
    g.sample_size(10);
    let batch = 32;
    let mut mw = MicrowaveCavity::new(MicrowaveConfig::default()).expect("valid config");
    let x = random_matrix::<f32>(batch, PhysicalSystem::<f32>::input_len(&mw), 4);
    let mut y = Matrix::<f32>::zeros(batch, PhysicalSystem::<f32>::output_len(&mw));
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("microwave", |b| b.iter(|| mw.forward_batch(x.view(), y.view_mut()).expect("forward")));
    let mut ac = AcousticCavity::new(AcousticConfig::default()).expect("valid config");
    let xa = random_matrix::<f32>(batch, PhysicalSystem::<f32>::input_len(&ac), 5);
    let mut ya = Matrix::<f32>::zeros(batch, PhysicalSystem::<f32>::output_len(&ac));
    g.bench_function("acoustic", |b| b.iter(|| ac.forward_batch(xa.view(), ya.view_mut()).expect("forward")));
    g.finish();
}

fn fft_systems(c: &mut Criterion) {
    let mut g = c.benchmark_group("fft_system_forward_f32");
    g.sample_size(10);
    let batch = 32;
    let mut fs = FreeSpaceSystem::<f32>::new(FreeSpaceConfig::default()).expect("valid config");
    let x = random_matrix::<f32>(batch, fs.input_len(), 6);
    let mut y = Matrix::<f32>::zeros(batch, fs.output_len());
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("freespace", |b| b.iter(|| fs.forward_batch(x.view(), y.view_mut()).expect("forward")));
    let mut fiber = FiberSystem::<f32>::new(FiberConfig::default()).expect("valid config");
    let xf = random_matrix::<f32>(batch, fiber.input_len(), 7);
    let mut yf = Matrix::<f32>::zeros(batch, fiber.output_len());
    g.bench_function("fiber", |b| b.iter(|| fiber.forward_batch(xf.view(), yf.view_mut()).expect("forward")));
    g.finish();
}

criterion_group!(benches, optics, cavities, fft_systems);
criterion_main!(benches);
