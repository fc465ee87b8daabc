//! Queries per second of every simulator at its default configuration (f32), beside the
//! bound set by the FFT and GEMM kernels it rests on, measured in the same process.
//! Run with `cargo run --release -p ff-physics --example throughput`.
//!
//! Bounds (kernel work per query divided by the measured kernel rate):
//! - optics: two 2-D FFTs of the `N x N` field plus the medium product (three real GEMMs
//!   `m_in x m_out`, Gauss's form);
//! - free space: two 2-D FFTs of the padded grid per propagation distance;
//! - fibre: two 1-D FFTs of the time grid per split step;
//! - microwave: one dense complex LU solve of the metasurface unknowns per frequency
//!   (`8 M^3 / 3` real FLOPs), at the GEMM rate (an optimistic bound: small solves never reach it);
//! - acoustic: iterative self-consistent solve; no kernel bound is claimed.

use ff_core::{gemm, Matrix, Op, PhysicalSystem};
use ff_physics::fft::{Direction, Fft1d, Fft2d};
use ff_physics::{
    AcousticCavity, AcousticConfig, FiberConfig, FiberSystem, FreeSpaceConfig, FreeSpaceSystem, MicrowaveCavity,
    MicrowaveConfig, OpticsConfig, OpticsSystem,
};
use num_complex::Complex;
use rand::Rng;
use std::time::Instant;

/// Median seconds of `reps` runs of `f`.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn gemm_rate() -> f64 {
    let n = 512;
    let a = Matrix::<f32>::from_fn(n, n, |r, c| ((r * 7 + c) % 13) as f32 / 13.0);
    let b = a.clone();
    let mut c = Matrix::<f32>::zeros(n, n);
    let s = time(5, || gemm(1.0, a.view(), Op::N, b.view(), Op::T, 0.0, &mut c.view_mut()));
    2.0 * (n * n * n) as f64 / s
}

fn fft2_rate(n: usize) -> f64 {
    let fft = Fft2d::<f32>::new(n, n);
    let mut scratch = fft.make_scratch();
    let batch = (1 << 16) / (n * n) + 1;
    let mut data = vec![Complex::new(0.5f32, 0.25); batch * n * n];
    let s = time(7, || fft.process_with_scratch(&mut data, &mut scratch, Direction::Forward));
    batch as f64 * 5.0 * (n * n) as f64 * ((n * n) as f64).log2() / s
}

fn fft1_rate(n: usize) -> f64 {
    let fft = Fft1d::<f32>::new(n);
    let mut scratch = fft.make_scratch();
    let batch = (1 << 16) / n + 1;
    let mut data = vec![Complex::new(0.5f32, 0.25); batch * n];
    let s = time(7, || fft.process_with_scratch(&mut data, &mut scratch, Direction::Forward));
    batch as f64 * 5.0 * n as f64 * (n as f64).log2() / s
}

/// Prints the measured rate beside `bound` (queries per second the kernels alone would allow).
fn measure<S: PhysicalSystem<f32>>(name: &str, batch: usize, mut sys: S, bound: Option<f64>) {
    let mut rng = ff_core::rng::rng_for(0, "throughput");
    let x = Matrix::<f32>::from_fn(batch, sys.input_len(), |_, _| rng.random::<f32>());
    let s = time(5, || {
        sys.forward(x.view()).expect("query");
    });
    let qps = batch as f64 / s;
    match bound {
        Some(bound) => {
            println!(
                "{name:<34} {qps:>10.0} queries/s   bound {bound:>10.0} queries/s   ratio {:>5.1} %",
                100.0 * qps / bound
            )
        }
        None => println!("{name:<34} {qps:>10.0} queries/s   (no kernel bound claimed)"),
    }
}

fn main() {
    let g = gemm_rate();
    println!(
        "kernels: sgemm 512^3 {:.1} GFLOP/s, 2-D FFT 32x32 {:.1} GFLOP/s, 1-D FFT 1024 {:.1} GFLOP/s ({} rayon threads)",
        g / 1e9,
        fft2_rate(32) / 1e9,
        fft1_rate(1024) / 1e9,
        rayon::current_num_threads()
    );

    let oc = OpticsConfig::default();
    let n = oc.field_size;
    let (mi, mo) = (oc.input_modes() as f64, oc.output_modes() as f64);
    let f2 = fft2_rate(n);
    let fft_work = 2.0 * 5.0 * (n * n) as f64 * ((n * n) as f64).log2();
    let gemm_work = 3.0 * 2.0 * mi * mo;
    // Seconds per query at each kernel's own rate, summed.
    let secs = fft_work / f2 + gemm_work / g;
    measure("optics (32x32, 293 modes)", 1024, OpticsSystem::<f32>::new(oc).unwrap(), Some(1.0 / secs));

    let fc = FreeSpaceConfig::default();
    let np = fc.grid.n * fc.grid.padding_factor;
    let props = fc.distances_m.len() as f64;
    let work = props * 2.0 * 5.0 * (np * np) as f64 * ((np * np) as f64).log2();
    let rate = fft2_rate(np);
    measure("free space (default)", 256, FreeSpaceSystem::<f32>::new(fc).unwrap(), Some(rate / work));

    let bc = FiberConfig::default();
    let pts = bc.grid.points;
    let work = bc.steps as f64 * 2.0 * 5.0 * pts as f64 * (pts as f64).log2();
    let rate = fft1_rate(pts);
    measure("fibre (default)", 256, FiberSystem::<f32>::new(bc).unwrap(), Some(rate / work));

    let mc = MicrowaveConfig::default();
    let m = mc.n_inputs as f64; // at most this many metasurface unknowns per frequency after elimination
    let work = mc.n_freqs as f64 * 8.0 * m * m * m / 3.0;
    measure("microwave (default)", 200, MicrowaveCavity::new(mc).unwrap(), Some(g / work));

    measure("acoustic (default)", 200, AcousticCavity::new(AcousticConfig::default()).unwrap(), None);
}
