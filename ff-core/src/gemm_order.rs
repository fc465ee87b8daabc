//! The order of operations of every product [`crate::matrix::gemm`] computes, whatever its
//! shape, layout and threads.
//!
//! The `gemm` crate's blocked kernel computes each element of `C` as one chain of multiply-adds
//! over a block of the inner dimension (starting from zero, in order), then folds the block
//! into `C`; which blocks it uses depends on the shape, and for some shapes it uses other
//! kernels altogether (matrix-vector kernels when `C` is one row or column, dot-product kernels
//! for a `C` of at most 256 elements, rank-1 and rank-2 updates when `k <= 2`), whose order
//! differs and depends on the strides. So that a sample's result never depends on the batch
//! it came in, on how its operands are stored, or on the thread count, [`crate::matrix::gemm`]:
//! - cuts the inner dimension itself, by [`k_blocks`] (a function of `k` alone, blocks of
//!   3 to [`K_BLOCK`]), and hands the crate one block at a time, which its blocked kernel then
//!   takes whole;
//! - computes the shapes the crate would give to other kernels ([`by_elements_shape`]) here,
//!   element by element, in the blocked kernel's order ([`gemm_by_elements`]).
//!
//! The order, for `C <- alpha op(A) op(B) + beta C` and one element `c`: for each block
//! `[p0, p1)`, `acc = 0; acc = fma(a_p, b_p, acc)` for `p` in order; then for the first block
//! `c = alpha acc` if `beta == 0` (the old `c` unread), `c = fma(alpha, acc, c)` if
//! `beta == 1`, `c = beta c + alpha acc` otherwise; for later blocks `c = fma(alpha, acc, c)`.
//! `fma` is fused where the crate's kernels fuse ([`crate_fuses`]: x86 with FMA, AArch64) and a
//! multiply then an add elsewhere.

use crate::real::Real;

/// The largest block of the inner dimension handed to the `gemm` crate in one call: the crate
/// never cuts a call's inner dimension when it is at most this long, whatever the shape.
pub(crate) const K_BLOCK: usize = 512;

/// The blocks `(start, len)` of an inner dimension `k`: `ceil(k / K_BLOCK)` blocks of nearly
/// equal length (the first `k mod count` one longer), so each is at most [`K_BLOCK`] long and,
/// for `k >= 3`, at least 3 (the crate's blocked kernel takes them; it gives `k <= 2` to other
/// kernels).
pub(crate) fn k_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = k.div_ceil(K_BLOCK).max(1);
    let (base, longer) = (k / count, k % count);
    (0..count).scan(0, move |start, i| {
        let len = base + usize::from(i < longer);
        let block = (*start, len);
        *start += len;
        Some(block)
    })
}

/// Whether [`crate::matrix::gemm`] computes an `m x k x n` product element by element
/// ([`gemm_by_elements`]) rather than through the `gemm` crate: the shapes the crate gives to
/// kernels other than its blocked one.
pub(crate) fn by_elements_shape(m: usize, k: usize, n: usize) -> bool {
    m <= 1 || n <= 1 || m * n <= 16 * 16 || k <= 2
}

/// Whether the `gemm` crate's kernels on this machine fuse their multiply-adds: it picks them
/// by the same run-time detection (AVX-512 or AVX2+FMA kernels on x86 with FMA, NEON kernels on
/// AArch64; scalar kernels, unfused, otherwise).
pub(crate) fn crate_fuses() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("fma") || std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// `C <- alpha X Y + beta C` in the order of the module doc, with `X` (`rows x k`) and `Y`
/// (`k x cols`) row-major and element `(r, s)` of the product at `c[c_index(r, s)]`. One row of
/// the product at a time, its `cols` chains side by side (so they vectorise; each chain keeps
/// its order).
///
/// # Panics
/// If the slices are shorter than the shapes say.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_by_elements<F: Real>(
    rows: usize,
    k: usize,
    cols: usize,
    alpha: F,
    x: &[F],
    y: &[F],
    beta: F,
    c: &mut [F],
    c_index: impl Fn(usize, usize) -> usize,
) {
    let fused = crate_fuses();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    if fused && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: FMA was detected at run time.
        unsafe { by_elements_x86_fma(rows, k, cols, alpha, x, y, beta, c, &c_index) };
        return;
    }
    if fused {
        by_elements_body::<F, true>(rows, k, cols, alpha, x, y, beta, c, &c_index);
    } else {
        by_elements_body::<F, false>(rows, k, cols, alpha, x, y, beta, c, &c_index);
    }
}

/// [`by_elements_body`] compiled with FMA instructions (its `mul_add` is then one instruction
/// instead of a library call).
///
/// # Safety
/// The CPU must have FMA.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn by_elements_x86_fma<F: Real>(
    rows: usize,
    k: usize,
    cols: usize,
    alpha: F,
    x: &[F],
    y: &[F],
    beta: F,
    c: &mut [F],
    c_index: &dyn Fn(usize, usize) -> usize,
) {
    by_elements_body::<F, true>(rows, k, cols, alpha, x, y, beta, c, c_index);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn by_elements_body<F: Real, const FUSED: bool>(
    rows: usize,
    k: usize,
    cols: usize,
    alpha: F,
    x: &[F],
    y: &[F],
    beta: F,
    c: &mut [F],
    c_index: &dyn Fn(usize, usize) -> usize,
) {
    let fma = |a: F, b: F, acc: F| if FUSED { a.mul_add(b, acc) } else { a * b + acc };
    let (x, y) = (&x[..rows * k], &y[..k * cols]);
    let mut acc = vec![F::zero(); cols];
    let mut out = vec![F::zero(); cols];
    for r in 0..rows {
        for (s, o) in out.iter_mut().enumerate() {
            *o = c[c_index(r, s)];
        }
        for (block, (p0, len)) in k_blocks(k).enumerate() {
            acc.fill(F::zero());
            for p in p0..p0 + len {
                let xp = x[r * k + p];
                for (a, &yv) in acc.iter_mut().zip(&y[p * cols..(p + 1) * cols]) {
                    *a = fma(xp, yv, *a);
                }
            }
            for (o, &a) in out.iter_mut().zip(&acc) {
                *o = if block > 0 || beta == F::one() {
                    fma(alpha, a, *o)
                } else if beta == F::zero() {
                    alpha * a
                } else {
                    beta * *o + alpha * a
                };
            }
        }
        for (s, &o) in out.iter().enumerate() {
            c[c_index(r, s)] = o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_inner_dimension_within_bounds() {
        for k in (1..3000).chain([51_201, 261_633, 1_000_000]) {
            let blocks: Vec<_> = k_blocks(k).collect();
            assert_eq!(blocks.len(), k.div_ceil(K_BLOCK));
            let mut next = 0;
            for &(start, len) in &blocks {
                assert_eq!(start, next, "k = {k}");
                assert!(len <= K_BLOCK && (len >= 3 || k < 3), "k = {k}: a block of {len}");
                next += len;
            }
            assert_eq!(next, k);
        }
    }
}
