//! The two GEMM kernels behind [`crate::matrix::gemm`], chosen once per process at run time
//! ([`Kernel::detect`]), and the order of operations each gives.
//!
//! - [`Kernel::GemmCrate`], on x86 with AVX-512F: the `gemm` crate's AVX-512 kernels, which on
//!   an AVX-512 Xeon ran the FF step's products 1.1-1.7x faster than matrixmultiply's
//!   (measured in `ff-bench`'s roofline). Its AVX2 kernels were 0.7-0.9x matrixmultiply's on
//!   the same shapes, so it is used only where AVX-512 is present.
//! - [`Kernel::Matrixmultiply`] everywhere else (AVX2+FMA, NEON, scalar): `matrixmultiply`,
//!   a large product split into blocks of rows or columns over rayon's threads.
//!
//! With either kernel, every element of `C` is computed by the same operations in the same
//! order whatever the shape, the storage of the operands and the thread count, so a sample's
//! bits never depend on its batch, `A B^T` equals `A (B^T stored)`, and `gemm` equals
//! `gemm_serial`:
//! - matrixmultiply accumulates every element over the whole inner dimension with one kernel;
//!   the blocks of a split are whole multiples of `SPLIT_ALIGN` rows or columns. (Its kernels
//!   for whole and partial panels round `alpha A B + beta C` differently, so with `alpha != 1`
//!   a row alone and the same row in a batch may differ in the last bit.)
//! - The `gemm` crate's blocked kernel computes each element as one chain of multiply-adds over
//!   a block of the inner dimension (starting from zero, in order), then folds the block into
//!   `C`; it chooses the blocks by the shape, and gives some shapes to other kernels
//!   (matrix-vector kernels when `C` is one row or column, dot-product kernels for a `C` of at
//!   most 256 elements, rank-1 and rank-2 updates when `k <= 2`) whose order differs and
//!   depends on the strides. So this module cuts the inner dimension itself (`k_blocks`, a
//!   function of `k` alone, blocks of 3 to `K_BLOCK`) and hands the crate one block at a time,
//!   which its blocked kernel then takes whole; and it computes the shapes the crate would give
//!   to other kernels (`by_elements_shape`) element by element in the blocked kernel's order
//!   (`gemm_by_elements`). Threads share the tiles of `C`, each tile computed whole by one.
//!
//! The `gemm` crate's order, for `C <- alpha op(A) op(B) + beta C` and one element `c`: for each
//! block `[p0, p1)`, `acc = 0; acc = fma(a_p, b_p, acc)` for `p` in order; then for the first
//! block `c = alpha acc` if `beta == 0` (the old `c` unread), `c = fma(alpha, acc, c)` if
//! `beta == 1`, `c = beta c + alpha acc` otherwise; for later blocks `c = fma(alpha, acc, c)`
//! (`fma` fused: the AVX-512 kernels fuse).

use crate::matrix::PARALLEL_MIN_MULS;
use crate::real::Real;
use rayon::prelude::*;

/// A GEMM kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The `gemm` crate's AVX-512 kernels, its own threads over rayon's pool.
    GemmCrate,
    /// `matrixmultiply`, split over rayon's threads by blocks of rows or columns.
    Matrixmultiply,
}

impl Kernel {
    /// The kernel for this machine: [`Kernel::GemmCrate`] on x86 with AVX-512F (detected at run
    /// time), [`Kernel::Matrixmultiply`] otherwise.
    pub fn detect() -> Kernel {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            return Kernel::GemmCrate;
        }
        Kernel::Matrixmultiply
    }

    /// The environment variable that overrides [`Kernel::detect`]: `matrixmultiply` or
    /// `gemm-crate` (e.g. `PHYFF_GEMM=matrixmultiply` on an AVX-512 machine reproduces, bit for
    /// bit, figures measured on a machine without it, or before the `gemm` crate was adopted).
    pub const ENV: &'static str = "PHYFF_GEMM";

    /// The kernel named by `name` (`matrixmultiply` or `gemm-crate`).
    ///
    /// # Errors
    /// Any other name, with the accepted ones.
    pub fn parse(name: &str) -> Result<Kernel, String> {
        match name.trim() {
            "matrixmultiply" => Ok(Kernel::Matrixmultiply),
            "gemm-crate" => Ok(Kernel::GemmCrate),
            other => Err(format!(
                "{}={other:?} is not a GEMM kernel; use {}=matrixmultiply or {}=gemm-crate, or unset it to let phyff choose",
                Kernel::ENV,
                Kernel::ENV,
                Kernel::ENV
            )),
        }
    }

    /// The kernel [`Kernel::ENV`] asks for: `Ok(None)` when it is unset or empty.
    ///
    /// # Errors
    /// A value that [`Kernel::parse`] rejects (programs should report it and stop; the GEMM
    /// itself falls back to [`Kernel::detect`] on such a value).
    pub fn from_env() -> Result<Option<Kernel>, String> {
        match std::env::var(Kernel::ENV) {
            Ok(v) if !v.trim().is_empty() => Kernel::parse(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A short name for reports, e.g. `"gemm crate"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::GemmCrate => "gemm crate",
            Kernel::Matrixmultiply => "matrixmultiply",
        }
    }
}

/// `C <- alpha op(A) op(B) + beta C` by `kernel`, `op(A)` element `(i, p)` at
/// `a[i rsa + p csa]`, `op(B)` element `(p, j)` at `b[p rsb + j csb]`, `C` row-major `m x n`;
/// `parallel` lets large products use rayon's threads. Requires `m, n, k > 0`.
///
/// # Panics
/// If a slice is too short for its shape and strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<F: Real>(
    kernel: Kernel,
    parallel: bool,
    (m, k, n): (usize, usize, usize),
    alpha: F,
    (a, rsa, csa): (&[F], usize, usize),
    (b, rsb, csb): (&[F], usize, usize),
    beta: F,
    c: &mut [F],
) {
    assert!(m > 0 && k > 0 && n > 0, "empty products are handled by the caller");
    assert!((m - 1) * rsa + (k - 1) * csa < a.len() && (k - 1) * rsb + (n - 1) * csb < b.len() && m * n <= c.len());
    match kernel {
        Kernel::GemmCrate => run_gemm_crate(parallel, (m, k, n), alpha, (a, rsa, csa), (b, rsb, csb), beta, c),
        Kernel::Matrixmultiply => run_matrixmultiply(parallel, (m, k, n), alpha, (a, rsa, csa), (b, rsb, csb), beta, c),
    }
}

/// Blocks of a product split by [`Kernel::Matrixmultiply`] are whole multiples of this many
/// rows or columns (a multiple of every matrixmultiply micro-kernel's panel width): its kernels
/// for whole and partial panels round `alpha A B + beta C` differently, so a split inside a
/// panel would change bits (caught by `split_products_equal_the_unsplit_one` with 8).
pub(crate) const SPLIT_ALIGN: usize = 16;

/// How many blocks [`Kernel::Matrixmultiply`] splits an `m x k` by `k x n` product into: one
/// per rayon thread for large products, fewer for small ones, one below twice
/// [`PARALLEL_MIN_MULS`].
pub(crate) fn parallel_parts(m: usize, n: usize, k: usize) -> usize {
    // The threads the product's size warrants, no more blocks than whole panels of its
    // longer side.
    parallel_threads(m, n, k).min(m.max(n).div_ceil(SPLIT_ALIGN)).max(1)
}

#[allow(clippy::too_many_arguments)]
fn run_matrixmultiply<F: Real>(
    parallel: bool,
    (m, k, n): (usize, usize, usize),
    alpha: F,
    (a, rsa, csa): (&[F], usize, usize),
    (b, rsb, csb): (&[F], usize, usize),
    beta: F,
    c: &mut [F],
) {
    let (rsa, csa, rsb, csb, cs) = (rsa as isize, csa as isize, rsb as isize, csb as isize, n as isize);
    let parts = if parallel { parallel_parts(m, n, k) } else { 1 };
    if parts <= 1 {
        // SAFETY: the caller checked the shapes and strides against the slices; `c` is a unique
        // borrow distinct from a and b.
        unsafe { F::gemm_raw(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), cs, 1) };
        return;
    }
    // Split the longer side of C into `parts` disjoint blocks, one product each. Every element
    // of C is still accumulated over the whole inner dimension by the same kernel, so the
    // result is bit for bit the single-threaded one.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let step = len.div_ceil(parts).next_multiple_of(SPLIT_ALIGN).min(len);
    let (pa, pb, pc) = (a.as_ptr() as usize, b.as_ptr() as usize, c.as_mut_ptr() as usize);
    (0..len.div_ceil(step)).into_par_iter().for_each(|p| {
        let start = p * step;
        let count = step.min(len - start);
        let off = start as isize;
        let (pa, pb, pc) = (pa as *const F, pb as *const F, pc as *mut F);
        // SAFETY: the block [start, start + count) of C's rows (or columns) is disjoint from every
        // other block, lies inside C, and reads the matching rows of op(A) (or columns of op(B)),
        // which lie inside A (or B); A and B are only read.
        unsafe {
            if split_rows {
                F::gemm_raw(
                    count,
                    k,
                    n,
                    alpha,
                    pa.offset(off * rsa),
                    rsa,
                    csa,
                    pb,
                    rsb,
                    csb,
                    beta,
                    pc.offset(off * cs),
                    cs,
                    1,
                );
            } else {
                F::gemm_raw(
                    m,
                    k,
                    count,
                    alpha,
                    pa,
                    rsa,
                    csa,
                    pb.offset(off * csb),
                    rsb,
                    csb,
                    beta,
                    pc.offset(off),
                    cs,
                    1,
                );
            }
        }
    });
}

/// Sets, once, the `gemm` crate's own threshold (multiply-adds of one block of the inner
/// dimension below which it keeps to one thread; 48 x 48 x 256 by default) to twice
/// [`PARALLEL_MIN_MULS`], phyff's, so that the products [`crate::matrix::gemm`] asks to share
/// do share. The setting is global to the process; phyff is the crate's only caller.
static CRATE_THRESHOLD: std::sync::Once = std::sync::Once::new();

/// How many rayon threads [`Kernel::GemmCrate`] gives an `m x k` by `k x n` product: all of
/// them for large products, fewer for small ones (one per [`PARALLEL_MIN_MULS`]
/// multiply-adds), one below twice that.
pub(crate) fn parallel_threads(m: usize, n: usize, k: usize) -> usize {
    let muls = m.saturating_mul(n).saturating_mul(k);
    if muls < 2 * PARALLEL_MIN_MULS {
        return 1;
    }
    rayon::current_num_threads().min(muls / PARALLEL_MIN_MULS).max(1)
}

#[allow(clippy::too_many_arguments)]
fn run_gemm_crate<F: Real>(
    parallel: bool,
    (m, k, n): (usize, usize, usize),
    alpha: F,
    (a, rsa, csa): (&[F], usize, usize),
    (b, rsb, csb): (&[F], usize, usize),
    beta: F,
    c: &mut [F],
) {
    if by_elements_shape(m, k, n) {
        // Row-major copies of op(A) and op(B), oriented so that the longer side of C is the
        // one computed side by side: C itself, or C^T = op(B)^T op(A)^T (the same products).
        let at = |i: usize, p: usize| a[i * rsa + p * csa];
        let bt = |p: usize, j: usize| b[p * rsb + j * csb];
        if n >= m {
            let x: Vec<F> = (0..m).flat_map(|i| (0..k).map(move |p| at(i, p))).collect();
            let y: Vec<F> = (0..k).flat_map(|p| (0..n).map(move |j| bt(p, j))).collect();
            gemm_by_elements(m, k, n, alpha, &x, &y, beta, c, |i, j| i * n + j);
        } else {
            let x: Vec<F> = (0..n).flat_map(|j| (0..k).map(move |p| bt(p, j))).collect();
            let y: Vec<F> = (0..k).flat_map(|p| (0..m).map(move |i| at(i, p))).collect();
            gemm_by_elements(n, k, m, alpha, &x, &y, beta, c, |j, i| i * n + j);
        }
        return;
    }
    let threads = if parallel { parallel_threads(m, n, k) } else { 1 };
    if threads > 1 {
        CRATE_THRESHOLD.call_once(|| gemm_common::gemm::set_threading_threshold(2 * PARALLEL_MIN_MULS));
    }
    // The inner dimension one block at a time, the first block applying beta, the later ones
    // adding to C.
    let (rsa, csa, rsb, csb) = (rsa as isize, csa as isize, rsb as isize, csb as isize);
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    for (p0, len) in k_blocks(k) {
        let beta_block = if p0 == 0 { beta } else { F::one() };
        let p0 = p0 as isize;
        // SAFETY: the caller checked the shapes and strides against the slices, and the block
        // [p0, p0 + len) of the inner dimension lies inside it; `c` is a unique borrow distinct
        // from a and b, with distinct elements at distinct (row, column).
        unsafe {
            F::gemm_crate_raw(
                m,
                len,
                n,
                alpha,
                pa.offset(p0 * csa),
                rsa,
                csa,
                pb.offset(p0 * rsb),
                rsb,
                csb,
                beta_block,
                pc,
                n as isize,
                1,
                threads,
            );
        }
    }
}

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

/// Whether [`Kernel::GemmCrate`] computes an `m x k x n` product element by element
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
    fn kernel_names_parse_and_a_wrong_one_names_the_variable_and_the_choices() {
        assert_eq!(Kernel::parse("matrixmultiply"), Ok(Kernel::Matrixmultiply));
        assert_eq!(Kernel::parse(" gemm-crate "), Ok(Kernel::GemmCrate));
        let e = Kernel::parse("openblas").unwrap_err();
        assert!(e.contains("PHYFF_GEMM") && e.contains("openblas") && e.contains("matrixmultiply"), "{e}");
    }

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
