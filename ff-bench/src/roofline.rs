//! The roofline report (`cargo xtask roofline`): every hot kernel and simulator measured beside
//! the bound set by the kernels it rests on, all measured in the same process, so that the
//! ratio is to this machine's own limit rather than to a datasheet.
//!
//! Conventions:
//! - FLOPs are counted by the usual conventions: a real GEMM `m x k x n` is `2 m k n`, a
//!   complex FFT of length `L` is `5 L log2 L`, a dense complex LU solve of order `M` is
//!   `8 M^3 / 3`.
//! - `achieved_gflops` = the kernel work of one call divided by the measured seconds of the
//!   whole call (so overheads count against it); `bound_gflops` = the same work divided by the
//!   seconds its kernels alone take at their measured rates; `ratio = achieved / bound`
//!   (equivalently bound time over actual time).
//! - Times are medians of several runs after one warm-up. Kernels run with the same threading
//!   as the code under test: GEMMs through `ff_core::gemm` (its own threads), FFT batches
//!   split over the rayon pool, so both cores count in the bound too.

use crate::{fft_flops, random_matrix, FfStep};
use ff_core::layer::{stack_into, Workspace};
use ff_core::{gemm, Matrix, Op, Optimizer, OptimizerConfig, PhysicalSystem};
use ff_physics::fft::{Direction, Fft1d, Fft2d};
use ff_physics::optics::CHUNK_ROWS;
use ff_physics::slm::Placement;
use ff_physics::{
    AcousticCavity, AcousticConfig, FiberConfig, FiberSystem, FreeSpaceConfig, FreeSpaceSystem, MicrowaveCavity,
    MicrowaveConfig, OpticsConfig, OpticsSystem,
};
use num_complex::Complex;
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// What was measured, with its shape.
    pub name: String,
    /// Kernel work per second actually reached, in GFLOP/s.
    pub achieved_gflops: f64,
    /// Kernel work per second the underlying kernels alone reach, in GFLOP/s (`None` when no
    /// kernel bound is claimed).
    pub bound_gflops: Option<f64>,
    /// `achieved_gflops / bound_gflops`.
    pub ratio: Option<f64>,
    /// The ratio the project aims for, if one is set.
    pub target: Option<f64>,
    /// Queries (input vectors) per second, for the simulators.
    pub queries_per_second: Option<f64>,
    /// How the bound was formed.
    pub note: String,
}

impl Record {
    fn new(name: String, work: f64, seconds: f64, bound_seconds: Option<f64>, note: &str) -> Self {
        let achieved = work / seconds / 1e9;
        let bound = bound_seconds.map(|b| work / b / 1e9);
        Record {
            name,
            achieved_gflops: achieved,
            bound_gflops: bound,
            ratio: bound.map(|b| achieved / b),
            target: None,
            queries_per_second: None,
            note: note.into(),
        }
    }
}

/// Median seconds of `reps` runs of `f` after one warm-up run.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Seconds of `C = A op(B)` for `A: m x k` and `B` stored as `n x k` (`Op::T`) or `k x n`
/// (`Op::N`), f32, through `ff_core::gemm`.
pub fn gemm_seconds(m: usize, k: usize, n: usize, op_b: Op, reps: usize) -> f64 {
    let a = random_matrix::<f32>(m, k, 11);
    let b = if op_b == Op::T { random_matrix::<f32>(n, k, 12) } else { random_matrix::<f32>(k, n, 12) };
    let mut c = Matrix::<f32>::zeros(m, n);
    median_seconds(reps, || gemm(1.0, a.view(), Op::N, b.view(), op_b, 0.0, &mut c.view_mut()))
}

/// Seconds of a forward and an inverse 2-D FFT of `batch` fields of `n x n` (f32), the batch
/// split in chunks of [`CHUNK_ROWS`] fields over the rayon pool (as the simulators do).
pub fn fft2_pair_seconds(n: usize, batch: usize, reps: usize) -> f64 {
    let fft = Fft2d::<f32>::new(n, n);
    let mut data = vec![Complex::new(0.5f32, 0.25); batch * n * n];
    median_seconds(reps, || {
        data.par_chunks_mut(CHUNK_ROWS * n * n).for_each_init(
            || fft.make_scratch(),
            |scratch, chunk| {
                fft.process_with_scratch(chunk, scratch, Direction::Forward);
                fft.process_with_scratch(chunk, scratch, Direction::Inverse);
            },
        )
    })
}

/// Seconds of a forward and an inverse 1-D FFT of length `n` on `batch` rows (f32), split over
/// the rayon pool.
pub fn fft1_pair_seconds(n: usize, batch: usize, reps: usize) -> f64 {
    let fft = Fft1d::<f32>::new(n);
    let mut data = vec![Complex::new(0.5f32, 0.25); batch * n];
    median_seconds(reps, || {
        data.par_chunks_mut(16 * n).for_each_init(
            || fft.make_scratch(),
            |scratch, chunk| {
                for row in chunk.chunks_exact_mut(n) {
                    fft.process_with_scratch(row, scratch, Direction::Forward);
                    fft.process_with_scratch(row, scratch, Direction::Inverse);
                }
            },
        )
    })
}

/// The forward-forward inner step (loss, closed-form gradient, Adam) on `n` positive and `n`
/// negative rows of a `d -> d` layer (stacked once, as the network does), against its two
/// GEMMs of the same shapes.
pub fn ff_step(n: usize, d: usize, reps: usize) -> Record {
    let s = FfStep::<f32>::new(n, d, d);
    let mut ws = Workspace::default();
    let mut grad = vec![0.0f32; s.layer.num_params()];
    let mut layer = s.layer.clone();
    let mut opt = Optimizer::new(OptimizerConfig::adam(1e-4), layer.num_params());
    let mut u = Matrix::<f32>::zeros(0, 0);
    stack_into(s.up.view(), s.un.view(), &mut u);
    let step = median_seconds(reps, || {
        layer.loss_and_grad_stacked(&s.loss, u.view(), &mut ws, &mut grad);
        opt.step(layer.params_mut(), &grad);
    });
    // The forward GEMM (2n x d) (d x d)^T and the gradient GEMM (d x 2n) (2n x d).
    let fwd = gemm_seconds(2 * n, d, d, Op::T, reps);
    let grad_t = {
        let (a, b) = (random_matrix::<f32>(2 * n, d, 13), random_matrix::<f32>(2 * n, d, 14));
        let mut c = Matrix::<f32>::zeros(d, d);
        median_seconds(reps, || gemm(1.0, a.view(), Op::T, b.view(), Op::N, 0.0, &mut c.view_mut()))
    };
    let mut r = Record::new(
        format!("FF inner step f32 ({d}->{d}, {n}+{n} rows)"),
        s.gemm_flops() as f64,
        step,
        Some(fwd + grad_t),
        "bound: its 2 GEMMs (forward, gradient; positives and negatives stacked) timed alone, same shapes",
    );
    r.target = Some(0.6);
    r
}

/// The optical configuration of the optics-MNIST experiment's first block: 28 x 28 images
/// with 10 label rows above and below (48 x 28), tiled on a 52 x 52 field, pupils scaled from
/// the 32 x 32 default, 2 x 2 pooling to 26 x 26 = 676 outputs.
pub fn optics_mnist_config() -> OpticsConfig {
    let base = OpticsConfig::default();
    let n = 52;
    let r = base.input_pupil_radius_px * n as f64 / base.field_size as f64;
    OpticsConfig {
        field_size: n,
        input_shape: (48, 28),
        placement: Placement::Tile,
        input_pupil_radius_px: r,
        output_pupil_radius_px: r,
        ..base
    }
}

fn measure_system<S: PhysicalSystem<f32>>(sys: &mut S, batch: usize, reps: usize) -> f64 {
    // Inputs in [0, 1): the range the encoders expect.
    let r = random_matrix::<f32>(batch, sys.input_len(), 21);
    let x = Matrix::from_fn(batch, sys.input_len(), |i, j| 0.5 * (r.get(i, j) + 1.0));
    let mut y = Matrix::<f32>::zeros(batch, sys.output_len());
    median_seconds(reps, || sys.forward_batch(x.view(), y.view_mut()).expect("forward"))
}

/// A batched optical forward against its two FFTs per field and the medium's three GEMMs
/// (Gauss's complex product) on the same batch.
pub fn optics(label: &str, cfg: OpticsConfig, batch: usize, reps: usize) -> Record {
    let n = cfg.field_size;
    let (mi, mo) = (cfg.input_modes(), cfg.output_modes());
    let mut sys = OpticsSystem::<f32>::new(cfg).expect("valid optics config");
    let t = measure_system(&mut sys, batch, reps);
    let fft = fft2_pair_seconds(n, batch, reps);
    let g = gemm_seconds(batch, mi, mo, Op::T, reps);
    let work = batch as f64 * (2.0 * fft_flops(n * n) + 3.0 * 2.0 * (mi * mo) as f64);
    let mut r = Record::new(
        format!("optics forward f32 {label} ({n}x{n} field, {mi}->{mo} modes, batch {batch})"),
        work,
        t,
        Some(fft + 3.0 * g),
        "bound: 2 FFTs per field (rayon over chunks) + 3 real GEMMs batch x m_in x m_out",
    );
    r.queries_per_second = Some(batch as f64 / t);
    r.target = Some(0.5);
    r
}

/// Every record: the FF step, the optical system at two sizes, and the other simulators.
/// `quick` shrinks batches and repetitions (a smoke run, not a measurement).
pub fn measure_all(quick: bool, mut progress: impl FnMut(&Record)) -> Vec<Record> {
    let reps = if quick { 2 } else { 5 };
    let mut out = Vec::new();
    let mut push = |r: Record, out: &mut Vec<Record>| {
        progress(&r);
        out.push(r);
    };
    let (n_ff, batch) = if quick { (1000, 256) } else { (10_000, 2048) };
    // Plain GEMM rates for reference: the square shape and the FF step's shapes.
    for (m, k, nn) in [(512usize, 512usize, 512usize), (n_ff, 676, 676)] {
        let t = gemm_seconds(m, k, nn, Op::T, reps);
        let mut r = Record::new(
            format!("sgemm {m}x{k}x{nn} (reference)"),
            2.0 * (m * k * nn) as f64,
            t,
            Some(t),
            "the kernel itself: the bound of the workloads below",
        );
        r.bound_gflops = None;
        r.ratio = None;
        push(r, &mut out);
    }
    push(ff_step(n_ff, 676, reps), &mut out);
    push(optics("digits", OpticsConfig::default(), batch, reps), &mut out);
    push(optics("MNIST", optics_mnist_config(), batch, reps), &mut out);

    let fc = FreeSpaceConfig::default();
    let np = fc.grid.n * fc.grid.padding_factor;
    let props = fc.distances_m.len() as f64;
    let fb = batch / 4;
    let mut fs = FreeSpaceSystem::<f32>::new(fc).expect("default config");
    let t = measure_system(&mut fs, fb, reps);
    let bound = props * fft2_pair_seconds(np, fb, reps);
    let mut r = Record::new(
        format!("free space forward f32 ({np}x{np} padded grid, {props} propagations, batch {fb})"),
        fb as f64 * props * 2.0 * fft_flops(np * np),
        t,
        Some(bound),
        "bound: 2 FFTs of the padded grid per propagation",
    );
    r.queries_per_second = Some(fb as f64 / t);
    push(r, &mut out);

    let bc = FiberConfig::default();
    let (pts, steps) = (bc.grid.points, bc.steps as f64);
    let mut fiber = FiberSystem::<f32>::new(bc).expect("default config");
    let t = measure_system(&mut fiber, fb, reps);
    let bound = steps * fft1_pair_seconds(pts, fb, reps);
    let mut r = Record::new(
        format!("fibre forward f32 ({pts} points, {steps} split steps, batch {fb})"),
        fb as f64 * steps * 2.0 * fft_flops(pts),
        t,
        Some(bound),
        "bound: 2 FFTs of the time grid per split step",
    );
    r.queries_per_second = Some(fb as f64 / t);
    push(r, &mut out);

    let mc = MicrowaveConfig::default();
    let m = mc.n_inputs;
    let nf = mc.n_freqs as f64;
    let mb = if quick { 50 } else { 200 };
    let mut mw = MicrowaveCavity::new(mc).expect("default config");
    let t = measure_system(&mut mw, mb, reps);
    let lu = 8.0 * (m * m * m) as f64 / 3.0;
    // The LU work at the GEMM rate of an m x m x m product on every thread (such a small product
    // runs on one thread; the batch is spread over all of them): optimistic, small solves never
    // reach it.
    let threads = rayon::current_num_threads() as f64;
    let gemm_m = gemm_seconds(m, m, m, Op::T, reps) / (2.0 * (m * m * m) as f64) / threads;
    let mut r = Record::new(
        format!("microwave forward ({m} unknowns x {nf} frequencies, batch {mb})"),
        mb as f64 * nf * lu,
        t,
        Some(mb as f64 * nf * lu * gemm_m),
        "bound: one complex LU of the metasurface unknowns per frequency at the GEMM rate of the same order, on every thread",
    );
    r.queries_per_second = Some(mb as f64 / t);
    push(r, &mut out);

    let ac = AcousticConfig::default();
    let (tones, mem) = (ac.n_tones as f64, ac.n_membranes);
    let mut acoustic = AcousticCavity::new(ac).expect("default config");
    let t = measure_system(&mut acoustic, mb, reps);
    let lu = 8.0 * (mem * mem * mem) as f64 / 3.0;
    let mut r = Record::new(
        format!("acoustic forward ({mem} membranes x {tones} tones, batch {mb})"),
        mb as f64 * tones * lu,
        t,
        None,
        "work counted for one self-consistent iteration only (the count varies per query): no bound claimed",
    );
    r.queries_per_second = Some(mb as f64 / t);
    push(r, &mut out);
    out
}

/// The report as a table a person can read.
pub fn table(records: &[Record]) -> String {
    let mut s = format!(
        "{:<72} {:>10} {:>10} {:>7} {:>7} {:>11}\n",
        "kernel / system", "GFLOP/s", "bound", "ratio", "target", "queries/s"
    );
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    for r in records {
        s.push_str(&format!(
            "{:<72} {:>10.2} {:>10} {:>7} {:>7} {:>11}\n",
            r.name,
            r.achieved_gflops,
            opt(r.bound_gflops, 2),
            opt(r.ratio, 3),
            opt(r.target, 2),
            opt(r.queries_per_second, 0)
        ));
    }
    s
}
