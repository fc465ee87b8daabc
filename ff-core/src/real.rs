//! The floating-point scalar the whole workspace is generic over.

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A real scalar type: implemented for `f32` (the default precision) and `f64`.
///
/// Besides arithmetic it carries the dispatch to the matching general matrix
/// multiply kernel, so generic code can call a fast GEMM for either precision.
pub trait Real:
    Float
    + FromPrimitive
    + ToPrimitive
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + serde::Serialize
    + serde::de::DeserializeOwned
    + 'static
{
    /// `"f32"` or `"f64"`, used in configuration files and reports.
    const NAME: &'static str;

    /// Converts an `f64` constant (always exact enough for the constants used here).
    fn c(x: f64) -> Self {
        Self::from_f64(x).expect("every f64 converts to f32/f64")
    }

    /// Replaces every `x` in `xs` by `e^x`. `f32` uses the vectorised [`crate::vmath::exp_f32`]
    /// (about 2 ulp); `f64` calls the C library's `exp` per element.
    fn exp_slice(xs: &mut [Self]) {
        for x in xs {
            *x = x.exp();
        }
    }

    /// Replaces every `z` in `zs` by SiLU `z / (1 + e^-z)`, the exponential from
    /// [`Real::exp_slice`] (`f32`: one vectorised loop, [`crate::vmath::silu_f32`]).
    fn silu_slice(zs: &mut [Self]) {
        let mut e = [Self::zero(); crate::vmath::SLICE_CHUNK];
        for chunk in zs.chunks_mut(crate::vmath::SLICE_CHUNK) {
            let e = &mut e[..chunk.len()];
            for (t, &z) in e.iter_mut().zip(chunk.iter()) {
                *t = -z;
            }
            Self::exp_slice(e);
            for (z, &t) in chunk.iter_mut().zip(e.iter()) {
                *z /= Self::one() + t;
            }
        }
    }

    /// Raw strided GEMM: `C <- alpha * A B + beta * C` with `A: m x k`, `B: k x n`, `C: m x n`,
    /// each described by a row stride and a column stride in elements, by `matrixmultiply`
    /// on the calling thread.
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-overlapping (for `C`) memory regions
    /// of the stated shapes, as required by `matrixmultiply::sgemm`/`dgemm`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// [`Real::gemm_raw`] by the `gemm` crate's kernel for this precision (AVX-512, AVX2+FMA,
    /// NEON or scalar, chosen by the crate at run time). With `beta == 0`, `C` is not read
    /// (NaN in it does not propagate).
    ///
    /// `threads > 1` lets the kernel share its tiles of `C` among that many threads of the
    /// current rayon pool; `1` runs on the calling thread. Each element of `C` is computed by
    /// the same operations in the same order whatever `threads` is (the threads take whole
    /// tiles; the inner dimension is never split between them), so the result is bit for bit
    /// the same. The order may still depend on the shape and the strides (the crate picks its
    /// kernel and its blocks of the inner dimension by them): [`crate::matrix::gemm`] removes
    /// that dependence.
    ///
    /// # Safety
    /// The pointers and non-negative strides must describe valid memory regions of the stated
    /// shapes; `C` must not overlap `A` or `B`, and two distinct indices of `C` must not
    /// address the same element.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_crate_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
        threads: usize,
    );
}

/// The `gemm` crate's threading for `threads` threads of the current rayon pool.
fn parallelism(threads: usize) -> gemm_common::Parallelism {
    if threads > 1 {
        gemm_common::Parallelism::Rayon(threads)
    } else {
        gemm_common::Parallelism::None
    }
}

/// Calls a `gemm` crate kernel (`dst <- alpha_dst * dst + beta_prod * lhs rhs`, column-major
/// preferred) for a row-major-preferring `C <- alpha A B + beta C`: it computes
/// `C^T = B^T A^T`, whose column-major layout is `C`'s row-major one, so the kernel writes
/// whole columns of its destination (rows of `C`) with unit stride.
macro_rules! call_gemm_crate {
    ($kernel:expr, $m:expr, $k:expr, $n:expr, $alpha:expr, $a:expr, $rsa:expr, $csa:expr, $b:expr, $rsb:expr, $csb:expr, $beta:expr, $c:expr, $rsc:expr, $csc:expr, $threads:expr) => {
        ($kernel)(
            $n,           // rows of C^T
            $m,           // columns of C^T
            $k,           // inner dimension
            $c,           // C^T
            $rsc,         // its column stride (C's row stride)
            $csc,         // its row stride (C's column stride)
            $beta != 0.0, // read C only when beta is not zero
            $b,           // B^T: n x k
            $rsb,         // its column stride
            $csb,         // its row stride
            $a,           // A^T: k x m
            $rsa,         // its column stride
            $csa,         // its row stride
            $beta,        // the crate's factor on the destination
            $alpha,       // the crate's factor on the product
            false,        // no conjugation (real)
            false,
            false,
            parallelism($threads),
        )
    };
}

/// `v` in precision `F`, or `None` when `v` is finite but overflows `F` (`1e39` in `f32`,
/// which a plain conversion turns into `inf`). Values that fit convert as [`Real::c`] does.
pub fn to_real<F: Real>(v: f64) -> Option<F> {
    let x = F::c(v);
    (x.is_finite() || !v.is_finite()).then_some(x)
}

/// What to say about a value `v` read from a file that overflows `F`: the value, the largest
/// finite `F`, and the two ways out (rescale, or load at `f64`).
pub fn overflow_message<F: Real>(v: f64) -> String {
    format!(
        "value {v:e} overflows {} (largest finite {:.7e}); rescale the values or use precision = \"f64\"",
        F::NAME,
        F::max_value().to_f64().unwrap_or(f64::MAX)
    )
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    fn exp_slice(xs: &mut [f32]) {
        crate::vmath::exp_f32(xs);
    }
    fn silu_slice(zs: &mut [f32]) {
        crate::vmath::silu_f32(zs);
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded contract of `gemm_raw`.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
    unsafe fn gemm_crate_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        threads: usize,
    ) {
        // SAFETY: forwarded contract of `gemm_crate_raw` (the transposed call addresses the
        // same elements).
        unsafe {
            call_gemm_crate!(
                gemm_f32::gemm::f32::get_gemm_fn(),
                m,
                k,
                n,
                alpha,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                beta,
                c,
                rsc,
                csc,
                threads
            )
        }
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded contract of `gemm_raw`.
        unsafe { matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
    unsafe fn gemm_crate_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
        threads: usize,
    ) {
        // SAFETY: forwarded contract of `gemm_crate_raw` (the transposed call addresses the
        // same elements).
        unsafe {
            call_gemm_crate!(
                gemm_f64::gemm::f64::get_gemm_fn(),
                m,
                k,
                n,
                alpha,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                beta,
                c,
                rsc,
                csc,
                threads
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_overflow_the_precision_are_told_apart() {
        assert_eq!(to_real::<f32>(3e38), Some(3e38));
        assert_eq!(to_real::<f32>(4e38), None);
        assert_eq!(to_real::<f32>(-1e39), None);
        assert_eq!(to_real::<f64>(1e39), Some(1e39));
        // Infinite values are not overflows (the callers refuse them for what they are).
        assert_eq!(to_real::<f32>(f64::INFINITY), Some(f32::INFINITY));
        let m = overflow_message::<f32>(1e39);
        assert!(m.starts_with("value 1e39 overflows f32 (largest finite 3.4028235e38)"), "{m}");
    }
}
