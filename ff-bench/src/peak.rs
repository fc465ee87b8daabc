//! The machine's arithmetic peak, measured in this run: a fused multiply-add loop on the widest
//! vector unit present, on every rayon thread at once.
//!
//! Conventions:
//! - One FMA on one lane counts 2 floating-point operations (a multiply and an add), so the
//!   peak is in the same FLOPs as the usual GEMM count `2 m k n`. Any kernel whose FLOPs are
//!   counted honestly (never more operations than it performs) cannot beat it: an instruction
//!   that does less than a full-width FMA (a lone add, a multiply, a narrower vector) does fewer
//!   FLOPs in the same issue slot.
//! - The loop keeps enough independent accumulators in registers to cover the FMA latency on
//!   every FMA port (16 on AVX-512, 12 on AVX2, 16 arrays of 4 lanes on the portable path), so
//!   its rate is the issue rate of the unit, not its latency.
//! - Units are detected at run time. Every unit present is measured and the fastest is the
//!   peak: a narrower unit can be faster where the wide one lowers the clock or has fewer ports,
//!   and a GEMM built on it must still be bounded.
//! - GFLOP/s are 10^9 FLOPs per second of wall time, summed over the threads.

use serde::Serialize;
use std::hint::black_box;

/// Floating-point precision of a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Precision {
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl Precision {
    /// `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// The precision of a scalar type of the workspace.
    pub fn of<F: ff_core::Real>() -> Self {
        if F::NAME == "f64" {
            Precision::F64
        } else {
            Precision::F32
        }
    }
}

/// A vector unit whose fused multiply-add throughput is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FmaUnit {
    /// x86-64 AVX-512F: 512-bit FMA (16 f32 or 8 f64 lanes).
    Avx512,
    /// x86-64 AVX2 with FMA3: 256-bit FMA (8 f32 or 4 f64 lanes).
    Avx2Fma,
    /// No vector FMA detected on x86-64, or another architecture: plain Rust arrays the compiler
    /// vectorises for its baseline target (fused `mul_add` on AArch64, whose NEON has FMA;
    /// a separate multiply and add elsewhere, e.g. SSE2 on x86-64 without FMA).
    Portable,
}

/// Independent 512-bit accumulators of the AVX-512 loop (of 32 registers): 2 ports x 4 cycles of
/// latency need 8; 16 also cover a latency of 8.
const ACC_512: usize = 16;
/// Independent 256-bit accumulators of the AVX2 loop (of 16 registers; 2 ports x 5 cycles).
const ACC_256: usize = 12;
/// Rows of the portable loop, each an array of [`PORTABLE_LANES`] values.
const ACC_PORTABLE: usize = 16;
/// Lanes per row of the portable loop (one 128-bit vector of f32).
const PORTABLE_LANES: usize = 4;

impl FmaUnit {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FmaUnit::Avx512 => "avx512f",
            FmaUnit::Avx2Fma => "avx2+fma",
            FmaUnit::Portable => {
                if cfg!(target_arch = "aarch64") {
                    "neon (portable)"
                } else {
                    "portable"
                }
            }
        }
    }

    /// The units present on this machine, widest first (run-time detection). Never empty: the
    /// portable loop runs everywhere, and is listed only when no x86 vector FMA is present.
    pub fn present() -> Vec<FmaUnit> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(FmaUnit::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(FmaUnit::Avx2Fma);
            }
        }
        if v.is_empty() {
            v.push(FmaUnit::Portable);
        }
        v
    }

    /// Whether this unit can run here.
    pub fn is_present(self) -> bool {
        Self::present().contains(&self)
    }

    /// Values one iteration of the loop updates on one thread (accumulators x lanes).
    pub fn values_per_iteration(self, p: Precision) -> usize {
        let per_f32 = match self {
            FmaUnit::Avx512 => ACC_512 * 16,
            FmaUnit::Avx2Fma => ACC_256 * 8,
            FmaUnit::Portable => return ACC_PORTABLE * PORTABLE_LANES,
        };
        match p {
            Precision::F32 => per_f32,
            Precision::F64 => per_f32 / 2,
        }
    }

    /// FLOPs of one iteration on one thread: 2 per value (one multiply-add).
    pub fn flops_per_iteration(self, p: Precision) -> f64 {
        2.0 * self.values_per_iteration(p) as f64
    }
}

/// Starting values of the accumulators: all different, so no two chains are the same
/// computation the compiler could merge.
fn starts(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1.0 + i as f64 / 1024.0).collect()
}

/// The multiplier and addend of the recurrence `x <- x m + c`: it converges to `c / (1 - m)`
/// = 1, so the values stay normal whatever the number of iterations.
const M: f64 = 0.999_999;
const C: f64 = 1e-6;

/// Runs `iters` iterations of the loop of `unit` on the calling thread and returns the sum of
/// every lane of every accumulator (so the work cannot be optimised away, and a test can check
/// it against [`reference_checksum`]).
///
/// # Panics
/// If `unit` is not present on this machine.
pub fn run_kernel(unit: FmaUnit, p: Precision, iters: usize) -> f64 {
    assert!(unit.is_present(), "{} is not present on this machine", unit.name());
    let (m, c) = (black_box(M), black_box(C));
    match unit {
        #[cfg(target_arch = "x86_64")]
        FmaUnit::Avx512 => {
            let s = black_box(starts(ACC_512));
            // SAFETY: avx512f was detected at run time (asserted above).
            unsafe {
                match p {
                    Precision::F32 => x86::avx512_f32(iters, &s, m as f32, c as f32),
                    Precision::F64 => x86::avx512_f64(iters, &s, m, c),
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        FmaUnit::Avx2Fma => {
            let s = black_box(starts(ACC_256));
            // SAFETY: avx2 and fma were detected at run time (asserted above).
            unsafe {
                match p {
                    Precision::F32 => x86::avx2_f32(iters, &s, m as f32, c as f32),
                    Precision::F64 => x86::avx2_f64(iters, &s, m, c),
                }
            }
        }
        FmaUnit::Portable => {
            let s = black_box(starts(ACC_PORTABLE));
            match p {
                Precision::F32 => portable::<f32>(iters, &s, m as f32, c as f32),
                Precision::F64 => portable::<f64>(iters, &s, m, c),
            }
        }
        #[allow(unreachable_patterns)] // the x86 units on other architectures
        _ => unreachable!("present() lists only units of this architecture"),
    }
}

/// What [`run_kernel`] returns, computed one scalar at a time: each accumulator's recurrence
/// (fused where the unit fuses) times its lanes, summed in `f64`.
pub fn reference_checksum(unit: FmaUnit, p: Precision, iters: usize) -> f64 {
    let fused = unit != FmaUnit::Portable || cfg!(target_arch = "aarch64");
    let accs = match unit {
        FmaUnit::Avx512 => ACC_512,
        FmaUnit::Avx2Fma => ACC_256,
        FmaUnit::Portable => ACC_PORTABLE,
    };
    let lanes = unit.values_per_iteration(p) / accs;
    let chain = |x0: f64| -> f64 {
        match p {
            Precision::F32 => {
                let (mut x, m, c) = (x0 as f32, M as f32, C as f32);
                for _ in 0..iters {
                    x = if fused { x.mul_add(m, c) } else { x * m + c };
                }
                f64::from(x)
            }
            Precision::F64 => {
                let mut x = x0;
                for _ in 0..iters {
                    x = if fused { x.mul_add(M, C) } else { x * M + C };
                }
                x
            }
        }
    };
    starts(accs).into_iter().map(|x0| lanes as f64 * chain(x0)).sum()
}

/// The portable loop: `ACC_PORTABLE` arrays of `PORTABLE_LANES` values, each updated in place.
/// On AArch64 (FMA in the baseline) the update is a fused `mul_add`, which the compiler turns
/// into vector FMAs; elsewhere a multiply and an add (a `mul_add` there may be a library call).
#[inline(never)]
fn portable<F>(iters: usize, starts: &[f64], m: F, c: F) -> f64
where
    F: Copy + std::ops::Mul<Output = F> + std::ops::Add<Output = F> + num_traits_lite::MulAdd + Into<f64>,
{
    let mut acc = [[m; PORTABLE_LANES]; ACC_PORTABLE];
    for (row, &s) in acc.iter_mut().zip(starts) {
        *row = [F::from_f64(s); PORTABLE_LANES];
    }
    for _ in 0..iters {
        for row in acc.iter_mut() {
            for x in row.iter_mut() {
                *x = if cfg!(target_arch = "aarch64") { x.mul_add(m, c) } else { *x * m + c };
            }
        }
    }
    acc.iter().flatten().map(|&x| x.into()).sum()
}

/// The two methods the portable loop needs from `f32` and `f64`.
mod num_traits_lite {
    /// A fused multiply-add and a conversion from `f64`.
    pub trait MulAdd: Sized {
        /// `self * a + b` with one rounding.
        fn mul_add(self, a: Self, b: Self) -> Self;
        /// The nearest value to `x`.
        fn from_f64(x: f64) -> Self;
    }
    impl MulAdd for f32 {
        fn mul_add(self, a: f32, b: f32) -> f32 {
            f32::mul_add(self, a, b)
        }
        fn from_f64(x: f64) -> f32 {
            x as f32
        }
    }
    impl MulAdd for f64 {
        fn mul_add(self, a: f64, b: f64) -> f64 {
            f64::mul_add(self, a, b)
        }
        fn from_f64(x: f64) -> f64 {
            x
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Defines one FMA loop: `$acc` registers of type `$vec`, each updated `iters` times by
    /// `x <- x m + c` with `$fmadd`, then summed lane by lane through `$store`.
    macro_rules! fma_loop {
        ($name:ident, $feat:literal, $t:ty, $vec:ty, $lanes:expr, $acc:expr, $set1:ident, $fmadd:ident, $store:ident) => {
            /// # Safety
            /// The target features named in the attribute must be present.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(iters: usize, starts: &[f64], m: $t, c: $t) -> f64 {
                // SAFETY: the features are present (the caller's contract); the stores write
                // `$lanes` values into a buffer of `$lanes`.
                unsafe {
                    let (mv, cv) = ($set1(m), $set1(c));
                    let mut acc = [$set1(0.0); $acc];
                    for (a, &s) in acc.iter_mut().zip(starts) {
                        *a = $set1(s as $t);
                    }
                    for _ in 0..iters {
                        for a in acc.iter_mut() {
                            *a = $fmadd(*a, mv, cv);
                        }
                    }
                    let mut lanes = [0.0 as $t; $lanes];
                    let mut sum = 0.0f64;
                    for a in acc {
                        $store(lanes.as_mut_ptr(), a);
                        sum += lanes.iter().map(|&x| f64::from(x)).sum::<f64>();
                    }
                    sum
                }
            }
        };
    }

    fma_loop!(
        avx512_f32,
        "avx512f",
        f32,
        __m512,
        16,
        super::ACC_512,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
    fma_loop!(
        avx512_f64,
        "avx512f",
        f64,
        __m512d,
        8,
        super::ACC_512,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_storeu_pd
    );
    fma_loop!(avx2_f32, "avx2,fma", f32, __m256, 8, super::ACC_256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
    fma_loop!(avx2_f64, "avx2,fma", f64, __m256d, 4, super::ACC_256, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_storeu_pd);
}

/// The measured peak of one unit at one precision.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct UnitPeak {
    /// The unit.
    pub unit: FmaUnit,
    /// The precision.
    pub precision: Precision,
    /// FLOPs per second over all threads, in GFLOP/s (the fastest of the repetitions).
    pub gflops: f64,
    /// Threads that ran the loop at once (rayon's pool).
    pub threads: usize,
}

/// GFLOP/s of `unit` at precision `p` on every thread of the current rayon pool at once:
/// each thread runs `iters` iterations (started together by `rayon::broadcast`), the wall time
/// is the slowest thread's; the fastest of `reps` runs after one warm-up. The fastest, not the
/// median: this is a bound, and other load on the machine can only lower it.
///
/// # Panics
/// If `unit` is not present.
pub fn measure_unit(unit: FmaUnit, p: Precision, iters: usize, reps: usize) -> UnitPeak {
    let threads = rayon::current_num_threads();
    let run = || {
        black_box(rayon::broadcast(|_| run_kernel(unit, p, iters)));
    };
    run();
    let seconds = (0..reps.max(1))
        .map(|_| {
            let s = std::time::Instant::now();
            run();
            s.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let flops = threads as f64 * iters as f64 * unit.flops_per_iteration(p);
    UnitPeak { unit, precision: p, gflops: flops / seconds / 1e9, threads }
}

/// The machine's peak at each precision, and every unit's measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachinePeak {
    /// The fastest unit at f32.
    pub f32: UnitPeak,
    /// The fastest unit at f64.
    pub f64: UnitPeak,
    /// Every unit present, at both precisions, in the order measured.
    pub all: Vec<UnitPeak>,
}

impl MachinePeak {
    /// Each unit's faster measurement of `self` and `other` (measurements of the same units),
    /// and the peaks re-chosen from them.
    ///
    /// # Panics
    /// If `other` measured different units.
    pub fn max(&self, other: &MachinePeak) -> MachinePeak {
        let all: Vec<UnitPeak> = self
            .all
            .iter()
            .zip(&other.all)
            .map(|(a, b)| {
                assert_eq!((a.unit, a.precision), (b.unit, b.precision), "the same units in the same order");
                if b.gflops > a.gflops {
                    *b
                } else {
                    *a
                }
            })
            .collect();
        MachinePeak::from_units(all)
    }

    /// The peaks chosen from every unit's measurement (the fastest at each precision).
    ///
    /// # Panics
    /// If a precision has no measurement.
    pub fn from_units(all: Vec<UnitPeak>) -> MachinePeak {
        let best = |p: Precision| {
            *all.iter()
                .filter(|u| u.precision == p)
                .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
                .expect("a unit is present")
        };
        MachinePeak { f32: best(Precision::F32), f64: best(Precision::F64), all }
    }

    /// The peak at precision `p`.
    pub fn at(&self, p: Precision) -> UnitPeak {
        match p {
            Precision::F32 => self.f32,
            Precision::F64 => self.f64,
        }
    }
}

/// Measures every unit present at both precisions; `iters` iterations per thread per run (about
/// 2^23 gives tens of milliseconds per run on a current core).
pub fn measure_peak(iters: usize, reps: usize) -> MachinePeak {
    let mut all = Vec::new();
    for unit in FmaUnit::present() {
        for p in [Precision::F32, Precision::F64] {
            all.push(measure_unit(unit, p, iters, reps));
        }
    }
    MachinePeak::from_units(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every unit present computes exactly the recurrence it claims, lane by lane: its FLOP
    /// count per iteration is what it does.
    #[test]
    fn kernels_compute_the_claimed_recurrence() {
        for unit in FmaUnit::present() {
            for p in [Precision::F32, Precision::F64] {
                for iters in [0, 1, 1000] {
                    let got = run_kernel(unit, p, iters);
                    let want = reference_checksum(unit, p, iters);
                    assert!(
                        (got - want).abs() <= 1e-9 * want.abs(),
                        "{} {}: {iters} iterations gave {got}, expected {want}",
                        unit.name(),
                        p.name()
                    );
                }
            }
        }
    }

    #[test]
    fn values_per_iteration_follow_the_vector_width() {
        assert_eq!(FmaUnit::Avx512.values_per_iteration(Precision::F32), 256);
        assert_eq!(FmaUnit::Avx512.values_per_iteration(Precision::F64), 128);
        assert_eq!(FmaUnit::Avx2Fma.values_per_iteration(Precision::F64), 48);
        assert_eq!(FmaUnit::Portable.flops_per_iteration(Precision::F32), 128.0);
        assert!(!FmaUnit::present().is_empty());
    }
}
