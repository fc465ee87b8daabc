//! The roofline report (`cargo xtask roofline`): every hot kernel and simulator measured
//! against the machine's arithmetic limit, measured in the same process: the peak of a fused
//! multiply-add loop on the widest vector unit present, on every thread ([`crate::peak`]).
//!
//! Conventions:
//! - FLOPs are counted by the usual conventions: a real GEMM `m x k x n` is `2 m k n`, a
//!   complex FFT of length `L` is `5 L log2 L`, a dense complex LU solve of order `M` is
//!   `8 M^3 / 3`. Only the dominant kernels are counted (never more than a kernel does, except
//!   that `5 L log2 L` is the nominal FFT count: a split-radix FFT needs about 20 % fewer
//!   operations, so an FFT-bound ratio overstates the FFT's efficiency by up to that much).
//! - `achieved_gflops` = the counted work of one call divided by the measured seconds of the
//!   whole call (so overheads count against it); `bound_gflops` = the FMA peak at the
//!   precision the arithmetic runs in (`bound_kind` says which, e.g. `fma_peak_f32`);
//!   `ratio = achieved / bound`, at most 1 for an honest count.
//! - `best_gemm_gflops` (GEMM-bound records) = the fastest of the compared GEMMs
//!   ([`crate::gemms`]) on the record's own products, for information: the part of the gap to
//!   the peak that a GEMM alone leaves.
//! - Times are medians of several runs after one warm-up; the GEMMs compared on one shape are
//!   timed interleaved. Everything runs on rayon's whole pool.

use crate::gemms::{compare, GemmImpl, Shape};
use crate::peak::{measure_peak, MachinePeak, Precision, UnitPeak};
use crate::{fft_flops, random_matrix, FfStep};
use ff_core::layer::{stack_into, Workspace};
use ff_core::{Matrix, Op, Optimizer, OptimizerConfig, PhysicalSystem, Real};
use ff_physics::slm::Placement;
use ff_physics::{
    AcousticCavity, AcousticConfig, FiberConfig, FiberSystem, FreeSpaceConfig, FreeSpaceSystem, MicrowaveCavity,
    MicrowaveConfig, OpticsConfig, OpticsSystem,
};
use serde::Serialize;
use std::time::Instant;

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// What was measured, with its shape.
    pub name: String,
    /// Counted work per second actually reached, in GFLOP/s.
    pub achieved_gflops: f64,
    /// The machine's limit for that work, in GFLOP/s (the FMA peak at the precision of the
    /// arithmetic).
    pub bound_gflops: Option<f64>,
    /// `achieved_gflops / bound_gflops`.
    pub ratio: Option<f64>,
    /// What the bound is: `fma_peak_f32` or `fma_peak_f64` (the measured peak of a fused
    /// multiply-add loop on the fastest vector unit, all threads).
    pub bound_kind: String,
    /// For GEMM-bound records: the rate of the fastest GEMM compared on the record's own
    /// products (total FLOPs over the sum of the fastest times), in GFLOP/s. Information, not
    /// a bound.
    pub best_gemm_gflops: Option<f64>,
    /// The ratio the project aims for, if one is set.
    pub target: Option<f64>,
    /// Queries (input vectors) per second, for the simulators.
    pub queries_per_second: Option<f64>,
    /// How the work was counted and what the bound is.
    pub note: String,
}

impl Record {
    /// `work` FLOPs in `seconds`, against the peak `peak`.
    pub fn against_peak(name: String, work: f64, seconds: f64, peak: &UnitPeak, note: &str) -> Self {
        let achieved = work / seconds / 1e9;
        Record {
            name,
            achieved_gflops: achieved,
            bound_gflops: Some(peak.gflops),
            ratio: Some(achieved / peak.gflops),
            bound_kind: format!("fma_peak_{}", peak.precision.name()),
            best_gemm_gflops: None,
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

/// The peak rows: every unit at both precisions, against the machine's peak at that precision
/// (the fastest unit's row has ratio 1).
pub fn peak_records(peak: &MachinePeak) -> Vec<Record> {
    peak.all
        .iter()
        .map(|u| {
            let best = peak.at(u.precision);
            let mut r = Record::against_peak(
                format!("FMA loop {} {} ({} threads)", u.precision.name(), u.unit.name(), u.threads),
                u.gflops * 1e9,
                1.0,
                &best,
                "a fused multiply-add loop, independent accumulators in registers, every thread at once",
            );
            // The fastest unit is the bound itself.
            if u == &best {
                r.ratio = Some(1.0);
            }
            r
        })
        .collect()
}

/// The GEMMs compared on one shape at precision `F`: one record per implementation, and the
/// fastest median seconds of one product.
pub fn gemm_records<F: Real>(shape: &Shape, peak: &MachinePeak, reps: usize) -> (Vec<Record>, f64) {
    let p = peak.at(Precision::of::<F>());
    let rates = compare::<F>(shape, &GemmImpl::ALL, reps);
    let records = GemmImpl::ALL
        .iter()
        .zip(&rates)
        .map(|(imp, &g)| {
            Record::against_peak(
                format!("gemm {} {} {} ({})", F::NAME, imp.name(), shape.dims(), shape.label),
                shape.flops(),
                shape.flops() / (g * 1e9),
                &p,
                "2 m k n FLOPs; all threads; the implementations timed interleaved",
            )
        })
        .collect();
    let best = rates.iter().copied().fold(0.0, f64::max);
    (records, shape.flops() / (best * 1e9))
}

/// The forward-forward inner step (loss, closed-form gradient, Adam) on `n` positive and `n`
/// negative rows of a `d -> d` layer (stacked once, as the network does), at precision `F`:
/// its two GEMMs' FLOPs against the FMA peak, with the best GEMM's rate on the same two
/// products (`best_seconds`: the fastest seconds of each, from [`gemm_records`]) beside it.
pub fn ff_step<F: Real>(n: usize, d: usize, peak: &MachinePeak, best_seconds: f64, reps: usize) -> Record {
    let s = FfStep::<F>::new(n, d, d);
    let mut ws = Workspace::default();
    let mut grad = vec![F::zero(); s.layer.num_params()];
    let mut layer = s.layer.clone();
    let mut opt = Optimizer::new(OptimizerConfig::adam(1e-4), layer.num_params());
    let mut u = Matrix::<F>::zeros(0, 0);
    stack_into(s.up.view(), s.un.view(), &mut u);
    let step = median_seconds(reps, || {
        layer.loss_and_grad_stacked(&s.loss, u.view(), &mut ws, &mut grad);
        opt.step(layer.params_mut(), &grad);
    });
    let work = s.gemm_flops() as f64;
    let mut r = Record::against_peak(
        format!("FF inner step {} ({d}->{d}, {n}+{n} rows)", F::NAME),
        work,
        step,
        &peak.at(Precision::of::<F>()),
        "work: its 2 GEMMs (forward W U^T, gradient dZ^T U; positives and negatives stacked); \
         the goodness, loss and Adam are not counted",
    );
    r.best_gemm_gflops = Some(work / best_seconds / 1e9);
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

/// The product of an optical forward's medium on a batch: `batch x m_in` fields by the
/// `m_out x m_in` transmission matrix, transposed (each of Gauss's three real products).
pub fn optics_mode_product(label: &str, cfg: &OpticsConfig, batch: usize) -> Shape {
    Shape::new(
        &format!("optics {label} mode product, batch {batch}"),
        batch,
        cfg.input_modes(),
        cfg.output_modes(),
        Op::N,
        Op::T,
    )
}

/// A batched optical forward: its two FFTs per field and the medium's three real GEMMs
/// (Gauss's complex product) against the f32 FMA peak, with the best GEMM's rate on its mode
/// product (`best_gemm_seconds`: one product) beside it.
pub fn optics(
    label: &str,
    cfg: OpticsConfig,
    batch: usize,
    peak: &MachinePeak,
    best_gemm_seconds: f64,
    reps: usize,
) -> Record {
    let n = cfg.field_size;
    let (mi, mo) = (cfg.input_modes(), cfg.output_modes());
    let mut sys = OpticsSystem::<f32>::new(cfg).expect("valid optics config");
    let t = measure_system(&mut sys, batch, reps);
    let gemm_work = 3.0 * 2.0 * (batch * mi * mo) as f64;
    let work = batch as f64 * 2.0 * fft_flops(n * n) + gemm_work;
    let mut r = Record::against_peak(
        format!("optics forward f32 {label} ({n}x{n} field, {mi}->{mo} modes, batch {batch})"),
        work,
        t,
        &peak.f32,
        "work: 2 FFTs per field (5 L log2 L) + 3 real GEMMs batch x m_in x m_out",
    );
    r.best_gemm_gflops = Some(gemm_work / (3.0 * best_gemm_seconds) / 1e9);
    r.queries_per_second = Some(batch as f64 / t);
    r
}

/// Every record: the FMA peak of every unit, the GEMMs compared on the shapes that matter, the
/// FF step, the optical system at two sizes, and the other simulators. `quick` shrinks shapes,
/// batches and repetitions (a smoke run, not a measurement). `progress` sees each record as it
/// is measured, against the peak measured first; the records returned are against the faster
/// of that and a second measurement at the end ([`rebase`]).
pub fn measure_all(quick: bool, mut progress: impl FnMut(&Record)) -> Vec<Record> {
    let reps = if quick { 2 } else { 7 };
    let mut out = Vec::new();
    let mut push = |r: Record, out: &mut Vec<Record>| {
        progress(&r);
        out.push(r);
    };
    let peak_iters = if quick { 1 << 18 } else { 1 << 23 };
    let peak = measure_peak(peak_iters, reps);
    for r in peak_records(&peak) {
        push(r, &mut out);
    }
    let (n_ff, d, batch) = if quick { (1000, 676, 256) } else { (10_000, 676, 2048) };
    let square = Shape::new("square", 512, 512, 512, Op::N, Op::N);
    let [fwd, grad] = Shape::ff_step(n_ff, d);
    let digits = OpticsConfig::default();
    let mnist = optics_mnist_config();
    let digits_modes = optics_mode_product("digits", &digits, batch);
    let mnist_modes = optics_mode_product("MNIST", &mnist, batch);
    // Both precisions on the square and FF shapes; f32 (the simulators' precision) on the
    // optical mode products. The fastest seconds of each FF product feed the step's record.
    let mut best = Vec::new();
    for shape in [&square, &fwd, &grad] {
        let (rs, t) = gemm_records::<f32>(shape, &peak, reps);
        rs.into_iter().for_each(|r| push(r, &mut out));
        let (rs, t64) = gemm_records::<f64>(shape, &peak, reps);
        rs.into_iter().for_each(|r| push(r, &mut out));
        best.push((t, t64));
    }
    let mut best_modes = Vec::new();
    for shape in [&digits_modes, &mnist_modes] {
        let (rs, t) = gemm_records::<f32>(shape, &peak, reps);
        rs.into_iter().for_each(|r| push(r, &mut out));
        best_modes.push(t);
    }
    let mut step = ff_step::<f32>(n_ff, d, &peak, best[1].0 + best[2].0, reps);
    // The goal for the FF step: 0.9 of the machine's peak.
    step.target = Some(0.9);
    push(step, &mut out);
    push(ff_step::<f64>(n_ff, d, &peak, best[1].1 + best[2].1, reps), &mut out);
    push(optics("digits", digits, batch, &peak, best_modes[0], reps), &mut out);
    push(optics("MNIST", mnist, batch, &peak, best_modes[1], reps), &mut out);

    let fc = FreeSpaceConfig::default();
    let np = fc.grid.n * fc.grid.padding_factor;
    let props = fc.distances_m.len() as f64;
    let fb = batch / 4;
    let mut fs = FreeSpaceSystem::<f32>::new(fc).expect("default config");
    let t = measure_system(&mut fs, fb, reps);
    let mut r = Record::against_peak(
        format!("free space forward f32 ({np}x{np} padded grid, {props} propagations, batch {fb})"),
        fb as f64 * props * 2.0 * fft_flops(np * np),
        t,
        &peak.f32,
        "work: 2 FFTs of the padded grid per propagation (5 L log2 L)",
    );
    r.queries_per_second = Some(fb as f64 / t);
    push(r, &mut out);

    let bc = FiberConfig::default();
    let (pts, steps) = (bc.grid.points, bc.steps as f64);
    let mut fiber = FiberSystem::<f32>::new(bc).expect("default config");
    let t = measure_system(&mut fiber, fb, reps);
    let mut r = Record::against_peak(
        format!("fibre forward f32 ({pts} points, {steps} split steps, batch {fb})"),
        fb as f64 * steps * 2.0 * fft_flops(pts),
        t,
        &peak.f32,
        "work: 2 FFTs of the time grid per split step (5 L log2 L)",
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
    let mut r = Record::against_peak(
        format!("microwave forward ({m} unknowns x {nf} frequencies, batch {mb})"),
        mb as f64 * nf * lu,
        t,
        &peak.f64,
        "work: one complex LU of the metasurface unknowns per frequency (8 M^3 / 3, in f64)",
    );
    r.queries_per_second = Some(mb as f64 / t);
    push(r, &mut out);

    let ac = AcousticConfig::default();
    let (tones, mem) = (ac.n_tones as f64, ac.n_membranes);
    let mut acoustic = AcousticCavity::new(ac).expect("default config");
    let t = measure_system(&mut acoustic, mb, reps);
    let lu = 8.0 * (mem * mem * mem) as f64 / 3.0;
    let mut r = Record::against_peak(
        format!("acoustic forward ({mem} membranes x {tones} tones, batch {mb})"),
        mb as f64 * tones * lu,
        t,
        &peak.f64,
        "work: one complex LU per tone for one self-consistent iteration only (in f64; the \
         iteration count varies per query, so the ratio understates)",
    );
    r.queries_per_second = Some(mb as f64 / t);
    push(r, &mut out);
    // The peak measured again at the end: each unit's faster run is the bound of the report
    // (the clock may have moved in between; a bound can only be too low, never too high).
    let peak = peak.max(&measure_peak(peak_iters, reps));
    rebase(&mut out, &peak);
    out
}

/// Puts `peak` under every record: the FMA loop rows are replaced by its units' rates, and
/// every other record's bound and ratio follow its precision's peak.
///
/// # Panics
/// If `records` does not start with the FMA loop rows of [`peak_records`].
pub fn rebase(records: &mut [Record], peak: &MachinePeak) {
    let units = peak_records(peak);
    let n = units.len();
    for (r, u) in records.iter_mut().zip(units) {
        assert!(r.name.starts_with("FMA loop"), "the report starts with the FMA loop rows");
        *r = u;
    }
    for r in records.iter_mut().skip(n) {
        let p = match r.bound_kind.as_str() {
            "fma_peak_f32" => peak.f32,
            "fma_peak_f64" => peak.f64,
            _ => continue,
        };
        r.bound_gflops = Some(p.gflops);
        r.ratio = Some(r.achieved_gflops / p.gflops);
    }
}

/// The header of the table: the peak at each precision, its unit, and the fastest GEMM row
/// at each precision (what comes closest to the peak).
pub fn header(records: &[Record]) -> String {
    let mut s = format!("phyff's GEMM on this machine: {}\n", ff_core::matrix::kernel().name());
    for p in ["f32", "f64"] {
        let kind = format!("fma_peak_{p}");
        let peak =
            records.iter().find(|r| r.bound_kind == kind && r.name.starts_with("FMA loop") && r.ratio == Some(1.0));
        let best_gemm = records
            .iter()
            .filter(|r| r.bound_kind == kind && r.name.starts_with("gemm "))
            .max_by(|a, b| a.achieved_gflops.total_cmp(&b.achieved_gflops));
        if let Some(pk) = peak {
            s.push_str(&format!("peak {p}: {:.1} GFLOP/s ({})", pk.achieved_gflops, pk.name));
            if let Some(g) = best_gemm {
                s.push_str(&format!(
                    "; closest GEMM: {:.1} GFLOP/s = {:.3} of peak ({})",
                    g.achieved_gflops,
                    g.ratio.unwrap_or(f64::NAN),
                    g.name
                ));
            }
            s.push('\n');
        }
    }
    s
}

/// The report as a table a person can read, under its [`header`].
pub fn table(records: &[Record]) -> String {
    let mut s = header(records);
    s.push_str(&format!(
        "{:<84} {:>9} {:>9} {:>6} {:>13} {:>9} {:>6} {:>10}\n",
        "kernel / system", "GFLOP/s", "bound", "ratio", "bound kind", "best GEMM", "target", "queries/s"
    ));
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    for r in records {
        s.push_str(&format!(
            "{:<84} {:>9.2} {:>9} {:>6} {:>13} {:>9} {:>6} {:>10}\n",
            r.name,
            r.achieved_gflops,
            opt(r.bound_gflops, 1),
            opt(r.ratio, 3),
            r.bound_kind,
            opt(r.best_gemm_gflops, 1),
            opt(r.target, 2),
            opt(r.queries_per_second, 0)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peak::FmaUnit;

    fn unit(unit: FmaUnit, precision: Precision, gflops: f64) -> UnitPeak {
        UnitPeak { unit, precision, gflops, threads: 2 }
    }

    /// The faster of two peak measurements bounds the report: every ratio is recomputed
    /// against it, the fastest unit's row is 1, and the others' rows stay below.
    #[test]
    fn the_report_is_rebased_on_the_faster_peak() {
        let first = MachinePeak::from_units(vec![
            unit(FmaUnit::Avx512, Precision::F32, 400.0),
            unit(FmaUnit::Avx512, Precision::F64, 200.0),
            unit(FmaUnit::Avx2Fma, Precision::F32, 250.0),
            unit(FmaUnit::Avx2Fma, Precision::F64, 120.0),
        ]);
        let second = MachinePeak::from_units(vec![
            unit(FmaUnit::Avx512, Precision::F32, 480.0),
            unit(FmaUnit::Avx512, Precision::F64, 190.0),
            unit(FmaUnit::Avx2Fma, Precision::F32, 240.0),
            unit(FmaUnit::Avx2Fma, Precision::F64, 130.0),
        ]);
        let mut records = peak_records(&first);
        records.push(Record::against_peak("gemm".into(), 300e9, 1.0, &first.f32, "test"));
        records.push(Record::against_peak("lu".into(), 50e9, 1.0, &first.f64, "test"));
        let best = first.max(&second);
        assert_eq!((best.f32.gflops, best.f64.gflops), (480.0, 200.0));
        rebase(&mut records, &best);
        let ratio = |name: &str| records.iter().find(|r| r.name.starts_with(name)).unwrap().ratio.unwrap();
        assert_eq!(ratio("FMA loop f32 avx512f"), 1.0);
        assert_eq!(ratio("FMA loop f64 avx512f"), 1.0);
        assert_eq!(ratio("FMA loop f32 avx2+fma"), 250.0 / 480.0);
        assert_eq!(ratio("FMA loop f64 avx2+fma"), 130.0 / 200.0);
        assert_eq!(ratio("gemm"), 300.0 / 480.0);
        assert_eq!(ratio("lu"), 50.0 / 200.0);
        assert!(records.iter().all(|r| r.ratio.unwrap() <= 1.0));
    }
}
