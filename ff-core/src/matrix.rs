//! Dense row-major matrices: the batch format of the whole workspace.
//!
//! A batch of `n` samples of `d` features is an `n x d` matrix stored row by row, so each
//! sample is one contiguous slice. Weights of an affine map `z = W u + b` are stored as
//! `W: d_out x d_in`, also row-major.

use crate::error::{CoreError, Result};
use crate::gemm_kernels::Kernel;
use crate::real::Real;
use serde::{Deserialize, Serialize};

/// An owned dense row-major matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real")]
pub struct Matrix<F> {
    rows: usize,
    cols: usize,
    data: Vec<F>,
}

/// A borrowed read-only row-major matrix (rows are contiguous, row stride = `cols`).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, F> {
    rows: usize,
    cols: usize,
    data: &'a [F],
}

/// A borrowed mutable row-major matrix (rows are contiguous, row stride = `cols`).
#[derive(Debug)]
pub struct MatMut<'a, F> {
    rows: usize,
    cols: usize,
    data: &'a mut [F],
}

impl<F> Default for Matrix<F> {
    /// The empty `0 x 0` matrix.
    fn default() -> Self {
        Matrix { rows: 0, cols: 0, data: Vec::new() }
    }
}

impl<F: Real> Matrix<F> {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix { rows, cols, data: vec![F::zero(); rows * cols] }
    }

    /// Wraps a row-major vector.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<F>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(CoreError::Shape {
                context: "Matrix::from_vec".into(),
                expected: format!("{rows} x {cols} = {} values", rows * cols),
                got: format!("{} values", data.len()),
            });
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Builds a matrix from a function of `(row, col)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> F) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                data.push(f(r, c));
            }
        }
        Matrix { rows, cols, data }
    }

    /// Number of rows (samples).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The row-major data.
    pub fn data(&self) -> &[F] {
        &self.data
    }
    /// The row-major data, mutable.
    pub fn data_mut(&mut self) -> &mut [F] {
        &mut self.data
    }
    /// Consumes the matrix, returning its row-major data.
    pub fn into_vec(self) -> Vec<F> {
        self.data
    }
    /// Row `i` as a slice.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row(&self, i: usize) -> &[F] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// Row `i` as a mutable slice.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [F] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// Element `(r, c)`.
    ///
    /// # Panics
    /// If out of bounds.
    pub fn get(&self, r: usize, c: usize) -> F {
        assert!(c < self.cols, "column {c} out of bounds ({})", self.cols);
        self.data[r * self.cols + c]
    }
    /// A read-only view.
    pub fn view(&self) -> MatRef<'_, F> {
        MatRef { rows: self.rows, cols: self.cols, data: &self.data }
    }
    /// A mutable view.
    pub fn view_mut(&mut self) -> MatMut<'_, F> {
        MatMut { rows: self.rows, cols: self.cols, data: &mut self.data }
    }
    /// Resizes to `rows x cols`, reusing the allocation; contents are unspecified afterwards
    /// (zero where newly allocated).
    pub fn resize(&mut self, rows: usize, cols: usize) {
        self.rows = rows;
        self.cols = cols;
        self.data.resize(rows * cols, F::zero());
    }
    /// Copies rows `[start, end)` into a new matrix.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice_rows(&self, start: usize, end: usize) -> Matrix<F> {
        self.view().slice_rows(start, end).to_owned()
    }
    /// Gathers the given rows into a new matrix.
    ///
    /// # Panics
    /// If an index is out of bounds.
    pub fn select_rows(&self, idx: &[usize]) -> Matrix<F> {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix { rows: idx.len(), cols: self.cols, data }
    }
    /// Horizontal concatenation `[self, other]` (same number of rows).
    ///
    /// # Errors
    /// [`CoreError::Shape`] if the row counts differ.
    pub fn hcat(&self, other: &Matrix<F>) -> Result<Matrix<F>> {
        hcat(self.view(), other.view())
    }
    /// Converts every element to another precision.
    pub fn cast<G: Real>(&self) -> Matrix<G> {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&x| G::from_f64(x.to_f64().unwrap_or(f64::NAN)).unwrap_or(G::nan())).collect(),
        }
    }
    /// Position of the first non-finite value, if any, as `(row, col, value)`.
    pub fn find_non_finite(&self) -> Option<(usize, usize, f64)> {
        self.view().find_non_finite()
    }
}

impl<'a, F: Real> MatRef<'a, F> {
    /// Wraps a row-major slice.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: &'a [F]) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(CoreError::Shape {
                context: "MatRef::new".into(),
                expected: format!("{rows} x {cols} = {} values", rows * cols),
                got: format!("{} values", data.len()),
            });
        }
        Ok(MatRef { rows, cols, data })
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The row-major data.
    pub fn data(&self) -> &'a [F] {
        self.data
    }
    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row(&self, i: usize) -> &'a [F] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// Rows `[start, end)` as a view.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice_rows(&self, start: usize, end: usize) -> MatRef<'a, F> {
        assert!(start <= end && end <= self.rows, "row range {start}..{end} out of 0..{}", self.rows);
        MatRef { rows: end - start, cols: self.cols, data: &self.data[start * self.cols..end * self.cols] }
    }
    /// Copies into an owned matrix.
    pub fn to_owned(&self) -> Matrix<F> {
        Matrix { rows: self.rows, cols: self.cols, data: self.data.to_vec() }
    }
    /// Position of the first non-finite value, if any, as `(row, col, value)`.
    pub fn find_non_finite(&self) -> Option<(usize, usize, f64)> {
        self.data
            .iter()
            .position(|x| !x.is_finite())
            .map(|p| (p / self.cols.max(1), p % self.cols.max(1), self.data[p].to_f64().unwrap_or(f64::NAN)))
    }
}

impl<'a, F: Real> MatMut<'a, F> {
    /// Wraps a mutable row-major slice.
    ///
    /// # Errors
    /// [`CoreError::Shape`] if `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: &'a mut [F]) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(CoreError::Shape {
                context: "MatMut::new".into(),
                expected: format!("{rows} x {cols} = {} values", rows * cols),
                got: format!("{} values", data.len()),
            });
        }
        Ok(MatMut { rows, cols, data })
    }
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The row-major data.
    pub fn data(&self) -> &[F] {
        self.data
    }
    /// The row-major data, mutable.
    pub fn data_mut(&mut self) -> &mut [F] {
        self.data
    }
    /// Row `i`, mutable.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [F] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// A read-only view of the same data.
    pub fn as_ref(&self) -> MatRef<'_, F> {
        MatRef { rows: self.rows, cols: self.cols, data: self.data }
    }
    /// Reborrows as a shorter-lived mutable view.
    pub fn reborrow(&mut self) -> MatMut<'_, F> {
        MatMut { rows: self.rows, cols: self.cols, data: self.data }
    }
    /// Splits the rows into disjoint mutable chunks of at most `chunk_rows` rows each
    /// (for parallel processing of a batch).
    ///
    /// # Panics
    /// If `chunk_rows == 0`.
    pub fn into_row_chunks(self, chunk_rows: usize) -> Vec<MatMut<'a, F>> {
        assert!(chunk_rows > 0, "chunk_rows must be positive");
        let cols = self.cols;
        if cols == 0 {
            return vec![self];
        }
        self.data.chunks_mut(chunk_rows * cols).map(|d| MatMut { rows: d.len() / cols, cols, data: d }).collect()
    }
}

/// Horizontal concatenation `[a, b]` of two matrices with the same number of rows.
///
/// # Errors
/// [`CoreError::Shape`] if the row counts differ.
pub fn hcat<F: Real>(a: MatRef<'_, F>, b: MatRef<'_, F>) -> Result<Matrix<F>> {
    let mut out = Matrix::default();
    hcat_into(a, b, &mut out)?;
    Ok(out)
}

/// [`hcat`] into `out`, reusing its allocation (`out` is resized to `a.rows() x (a.cols() +
/// b.cols())`).
///
/// # Errors
/// [`CoreError::Shape`] if the row counts differ (`out` is left unchanged).
pub fn hcat_into<F: Real>(a: MatRef<'_, F>, b: MatRef<'_, F>, out: &mut Matrix<F>) -> Result<()> {
    if a.rows != b.rows {
        return Err(CoreError::Shape {
            context: "hcat".into(),
            expected: format!("{} rows", a.rows),
            got: format!("{} rows", b.rows),
        });
    }
    let cols = a.cols + b.cols;
    out.data.clear();
    out.data.reserve(a.rows * cols);
    for i in 0..a.rows {
        out.data.extend_from_slice(a.row(i));
        out.data.extend_from_slice(b.row(i));
    }
    out.rows = a.rows;
    out.cols = cols;
    Ok(())
}

/// Whether an operand of [`gemm`] is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Use the matrix as stored.
    N,
    /// Use its transpose.
    T,
}

/// General matrix multiply `C <- alpha * op(A) op(B) + beta * C` on row-major operands, by
/// the kernel chosen for this machine ([`Kernel::detect`]: the `gemm` crate's AVX-512 kernels
/// where AVX-512F is present, `matrixmultiply` elsewhere); large products use rayon's threads.
///
/// Every element of `C` is computed by the same operations in the same order whatever the
/// shape, the storage of the operands and the thread count (see [`crate::gemm_kernels`]; with
/// `matrixmultiply`, for `alpha == 1`): a row of a batch gives the same bits alone or in any
/// batch, `A B^T` the same as `A (B^T stored)`, and [`gemm_serial`] the same as [`gemm`] (for
/// every `alpha`).
///
/// With `beta == 0` the previous contents of `C` are ignored (NaN in `C` does not propagate).
///
/// # Panics
/// If the shapes do not agree (a caller bug: shapes are validated at the API boundary).
pub fn gemm<F: Real>(alpha: F, a: MatRef<'_, F>, op_a: Op, b: MatRef<'_, F>, op_b: Op, beta: F, c: &mut MatMut<'_, F>) {
    gemm_with(kernel(), true, alpha, a, op_a, b, op_b, beta, c);
}

/// [`gemm`] on the calling thread only (never split): for callers that already run in
/// parallel, one part of a batch per thread. Same result, bit for bit.
///
/// # Panics
/// If the shapes do not agree.
pub fn gemm_serial<F: Real>(
    alpha: F,
    a: MatRef<'_, F>,
    op_a: Op,
    b: MatRef<'_, F>,
    op_b: Op,
    beta: F,
    c: &mut MatMut<'_, F>,
) {
    gemm_with(kernel(), false, alpha, a, op_a, b, op_b, beta, c);
}

/// The kernel [`gemm`] uses in this process, chosen once: the one the environment variable
/// [`Kernel::ENV`] names, else [`Kernel::detect`] (also on a value it does not accept, which
/// `phyff` reports as an error before any work).
pub fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| Kernel::from_env().ok().flatten().unwrap_or_else(Kernel::detect))
}

/// [`gemm`] by a given kernel, on rayon's threads if `parallel`; for comparing the kernels.
///
/// # Panics
/// If the shapes do not agree.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with<F: Real>(
    kernel: Kernel,
    parallel: bool,
    alpha: F,
    a: MatRef<'_, F>,
    op_a: Op,
    b: MatRef<'_, F>,
    op_b: Op,
    beta: F,
    c: &mut MatMut<'_, F>,
) {
    let (m, ka, rsa, csa) = match op_a {
        Op::N => (a.rows, a.cols, a.cols, 1),
        Op::T => (a.cols, a.rows, 1, a.cols),
    };
    let (kb, n, rsb, csb) = match op_b {
        Op::N => (b.rows, b.cols, b.cols, 1),
        Op::T => (b.cols, b.rows, 1, b.cols),
    };
    assert_eq!(ka, kb, "gemm inner dimensions differ: {ka} vs {kb}");
    assert_eq!((c.rows, c.cols), (m, n), "gemm output shape");
    if m == 0 || n == 0 {
        return;
    }
    if ka == 0 {
        for x in c.data.iter_mut() {
            *x = if beta == F::zero() { F::zero() } else { *x * beta };
        }
        return;
    }
    crate::gemm_kernels::run(kernel, parallel, (m, ka, n), alpha, (a.data, rsa, csa), (b.data, rsb, csb), beta, c.data);
}

/// Multiply-adds per thread below which a product runs on the calling thread: splitting a
/// smaller one costs more in hand-offs than it saves. Chosen on the acoustic-vowel epoch,
/// whose training runs inside rayon's pool (`Network` does that), where a hand-off
/// costs about 1 us: with 2 threads, 2^17 gave 0.89-0.92 ms per epoch, 2^19 1.07-1.08 ms and
/// no splitting 1.34-1.37 ms. From a thread outside the pool a hand-off costs about 17 us.
pub const PARALLEL_MIN_MULS: usize = 1 << 17;

/// Naive triple-loop reference of [`gemm`] (for tests and as a benchmark baseline).
pub fn gemm_naive<F: Real>(
    alpha: F,
    a: MatRef<'_, F>,
    op_a: Op,
    b: MatRef<'_, F>,
    op_b: Op,
    beta: F,
    c: &mut MatMut<'_, F>,
) {
    let at = |i: usize, p: usize| match op_a {
        Op::N => a.data[i * a.cols + p],
        Op::T => a.data[p * a.cols + i],
    };
    let bt = |p: usize, j: usize| match op_b {
        Op::N => b.data[p * b.cols + j],
        Op::T => b.data[j * b.cols + p],
    };
    let k = if op_a == Op::N { a.cols } else { a.rows };
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut s = F::zero();
            for p in 0..k {
                s += at(i, p) * bt(p, j);
            }
            let old = c.data[i * c.cols + j];
            c.data[i * c.cols + j] = alpha * s + if beta == F::zero() { F::zero() } else { beta * old };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_kernels::{crate_fuses, parallel_parts, parallel_threads};
    use proptest::prelude::*;

    /// The kernels testable here: matrixmultiply always; the `gemm` crate where its kernels
    /// fuse multiply-adds (as its AVX-512 ones, the only ones `gemm` picks, do).
    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::Matrixmultiply];
        if crate_fuses() {
            k.push(Kernel::GemmCrate);
        }
        k
    }

    proptest! {
        #[test]
        fn gemm_matches_naive(m in 1usize..9, k in 0usize..9, n in 1usize..9, ta: bool, tb: bool, seed in 0u64..1000) {
            let val = |i: usize| ((i as u64 * 2654435761 + seed * 97) % 1000) as f64 / 500.0 - 1.0;
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let a = Matrix::from_fn(ar, ac, |r, c| val(r * 31 + c));
            let b = Matrix::from_fn(br, bc, |r, c| val(r * 17 + c + 500));
            let c0 = Matrix::from_fn(m, n, |r, c| val(r * 7 + c + 900));
            let (opa, opb) = (if ta { Op::T } else { Op::N }, if tb { Op::T } else { Op::N });
            let mut c2 = c0.clone();
            gemm_naive(0.7, a.view(), opa, b.view(), opb, 0.3, &mut c2.view_mut());
            for kernel in kernels() {
                let mut c1 = c0.clone();
                gemm_with(kernel, true, 0.7, a.view(), opa, b.view(), opb, 0.3, &mut c1.view_mut());
                for (x, y) in c1.data().iter().zip(c2.data()) {
                    prop_assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()) * (k as f64 + 1.0), "{kernel:?}");
                }
            }
        }
    }

    /// A product large enough to be split across threads gives, bit for bit, the unsplit
    /// single-threaded product, whichever side is split and for every transpose
    /// (matrixmultiply's blocks of rows or columns against one call of its kernel).
    #[test]
    fn split_products_equal_the_unsplit_one() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let val = |i: usize| ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
        // Last two: the FF inner step of the acoustic configuration (forward, weight gradient).
        for (m, k, n) in [(301, 97, 45), (45, 97, 301), (128, 128, 128), (20, 40, 412), (20, 412, 40)] {
            assert!(m * n * k >= 2 * PARALLEL_MIN_MULS, "the shape must be large enough to split");
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let a = Matrix::from_fn(ar, ac, |r, c| val(r * 131 + c));
                let b = Matrix::from_fn(br, bc, |r, c| val(r * 71 + c + 5000));
                let c0 = Matrix::from_fn(m, n, |r, c| val(r * 7 + c + 900));
                let (opa, opb) = (if ta { Op::T } else { Op::N }, if tb { Op::T } else { Op::N });
                let mut split = c0.clone();
                pool.install(|| {
                    assert!(parallel_parts(m, n, k) > 1);
                    gemm_with(
                        Kernel::Matrixmultiply,
                        true,
                        0.7,
                        a.view(),
                        opa,
                        b.view(),
                        opb,
                        0.3,
                        &mut split.view_mut(),
                    );
                });
                let mut whole = c0.clone();
                let (rsa, csa) = if ta { (1, ac as isize) } else { (ac as isize, 1) };
                let (rsb, csb) = if tb { (1, bc as isize) } else { (bc as isize, 1) };
                // SAFETY: the strides describe the matrices just built.
                unsafe {
                    f32::gemm_raw(
                        m,
                        k,
                        n,
                        0.7,
                        a.data().as_ptr(),
                        rsa,
                        csa,
                        b.data().as_ptr(),
                        rsb,
                        csb,
                        0.3,
                        whole.data_mut().as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                assert_eq!(split, whole, "{m}x{k}x{n}, transposes {ta}/{tb}");
            }
        }
    }

    /// With either kernel, a product large enough to be shared among threads gives, bit for
    /// bit, the single-threaded product ([`gemm_serial`]), for every transpose, every kind of
    /// `beta` (`0` with NaN in `C`, which must not propagate, `1`, and another), and inner
    /// dimensions cut into several blocks (the FF step's gradient sums over `2n` rows).
    #[test]
    fn threaded_products_equal_the_serial_one() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let val = |i: usize| ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
        // (20, 40, 412), (20, 412, 40): the FF inner step of the acoustic configuration
        // (forward, weight gradient); (64, 1500, 80): a gradient-like product with a long inner
        // dimension; (3, 2000, 300): a thin one.
        let shapes = [
            (301, 97, 45),
            (45, 97, 301),
            (128, 128, 128),
            (20, 40, 412),
            (20, 412, 40),
            (64, 1500, 80),
            (3, 2000, 300),
        ];
        for kernel in kernels() {
            for (m, k, n) in shapes {
                let threads = pool.install(|| match kernel {
                    Kernel::GemmCrate => parallel_threads(m, n, k),
                    Kernel::Matrixmultiply => parallel_parts(m, n, k),
                });
                assert!(threads > 1, "{m}x{k}x{n} must be large enough to share");
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let a = Matrix::from_fn(ar, ac, |r, c| val(r * 131 + c));
                    let b = Matrix::from_fn(br, bc, |r, c| val(r * 71 + c + 5000));
                    let (opa, opb) = (if ta { Op::T } else { Op::N }, if tb { Op::T } else { Op::N });
                    for (alpha, beta) in [(1.0, 0.0), (0.7, 1.0), (0.7, 0.3)] {
                        let c0 = if beta == 0.0 {
                            Matrix::from_fn(m, n, |_, _| f32::NAN)
                        } else {
                            Matrix::from_fn(m, n, |r, c| val(r * 7 + c + 900))
                        };
                        let mut threaded = c0.clone();
                        pool.install(|| {
                            gemm_with(kernel, true, alpha, a.view(), opa, b.view(), opb, beta, &mut threaded.view_mut())
                        });
                        let mut serial = c0.clone();
                        gemm_with(kernel, false, alpha, a.view(), opa, b.view(), opb, beta, &mut serial.view_mut());
                        assert!(threaded.find_non_finite().is_none(), "{kernel:?} {m}x{k}x{n}: NaN in C propagated");
                        assert_eq!(threaded, serial, "{kernel:?} {m}x{k}x{n}, transposes {ta}/{tb}, beta {beta}");
                    }
                }
            }
        }
    }

    /// With either kernel, a product gives the same bits whichever way its operands are stored
    /// (`A` as `m x k` or as its transpose, the same for `B`): also for the shapes the `gemm`
    /// crate would give to its matrix-vector, dot-product or rank-1/2 kernels (a single row or
    /// column of `C`, a small `C`, `k <= 2`).
    #[test]
    fn the_storage_of_the_operands_does_not_change_the_bits() {
        let val = |i: usize| ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0;
        let transpose = |x: &Matrix<f32>| Matrix::from_fn(x.cols(), x.rows(), |r, c| x.get(c, r));
        for (m, k, n) in
            [(1, 300, 40), (40, 300, 1), (1, 7, 1), (12, 500, 20), (16, 16, 16), (3, 1, 90), (30, 2, 30), (40, 90, 30)]
        {
            let a = Matrix::from_fn(m, k, |r, c| val(r * 131 + c));
            let b = Matrix::from_fn(k, n, |r, c| val(r * 71 + c + 5000));
            let (at, bt) = (transpose(&a), transpose(&b));
            for kernel in kernels() {
                let mut want = Matrix::zeros(m, n);
                gemm_with(kernel, true, 1.0, a.view(), Op::N, b.view(), Op::N, 0.0, &mut want.view_mut());
                for (x, opa, y, opb) in [(&at, Op::T, &b, Op::N), (&a, Op::N, &bt, Op::T), (&at, Op::T, &bt, Op::T)] {
                    let mut got = Matrix::zeros(m, n);
                    gemm_with(kernel, true, 1.0, x.view(), opa, y.view(), opb, 0.0, &mut got.view_mut());
                    assert_eq!(got, want, "{kernel:?} {m}x{k}x{n}, transposes {opa:?}/{opb:?}");
                }
            }
        }
    }

    /// With either kernel, a row (or a column) of a product is the same bits computed alone,
    /// whatever the batch around it (for the `gemm` crate: the element-by-element path, one row
    /// or column, and its blocked kernel, the batch, follow one order of operations), for every
    /// kind of `beta` (and of `alpha` with the `gemm` crate), inner dimensions of one block and
    /// of several, in both precisions.
    #[test]
    fn a_row_or_column_alone_gives_the_same_bits_as_in_a_batch() {
        fn check<F: Real>(kernel: Kernel) {
            let val = |i: usize| F::c(((i as u64 * 2654435761) % 2001) as f64 / 1000.0 - 1.0);
            for (m, k, n) in [(37, 100, 45), (20, 1100, 70), (70, 513, 20), (40, 2000, 33)] {
                let a = Matrix::from_fn(m, k, |r, c| val(r * 131 + c));
                let b = Matrix::from_fn(n, k, |r, c| val(r * 71 + c + 5000));
                // matrixmultiply rounds `alpha A B + beta C` differently in whole and partial
                // panels of rows: a row alone and in a batch agree for alpha = 1 only.
                let scalars: &[(f64, f64)] = match kernel {
                    Kernel::GemmCrate => &[(1.0, 0.0), (1.0, 1.0), (0.7, 1.0), (-1.5, 0.3)],
                    Kernel::Matrixmultiply => &[(1.0, 0.0), (1.0, 1.0)],
                };
                for &(alpha, beta) in scalars {
                    let (alpha, beta) = (F::c(alpha), F::c(beta));
                    let c0 =
                        Matrix::from_fn(m, n, |r, c| if beta == F::zero() { F::nan() } else { val(r * 7 + c + 900) });
                    let mut batch = c0.clone();
                    gemm_with(kernel, true, alpha, a.view(), Op::N, b.view(), Op::T, beta, &mut batch.view_mut());
                    for i in [0, m / 2, m - 1] {
                        let mut row = c0.slice_rows(i, i + 1);
                        gemm_with(
                            kernel,
                            true,
                            alpha,
                            a.view().slice_rows(i, i + 1),
                            Op::N,
                            b.view(),
                            Op::T,
                            beta,
                            &mut row.view_mut(),
                        );
                        assert_eq!(
                            row.row(0),
                            batch.row(i),
                            "{kernel:?} {} {m}x{k}x{n} row {i}, alpha {alpha}, beta {beta}",
                            F::NAME
                        );
                    }
                    for j in [0, n - 1] {
                        let mut col = Matrix::from_fn(m, 1, |r, _| c0.get(r, j));
                        gemm_with(
                            kernel,
                            true,
                            alpha,
                            a.view(),
                            Op::N,
                            b.view().slice_rows(j, j + 1),
                            Op::T,
                            beta,
                            &mut col.view_mut(),
                        );
                        let want: Vec<F> = (0..m).map(|r| batch.get(r, j)).collect();
                        assert_eq!(
                            col.data(),
                            &want[..],
                            "{kernel:?} {} {m}x{k}x{n} column {j}, alpha {alpha}, beta {beta}",
                            F::NAME
                        );
                    }
                }
            }
        }
        for kernel in kernels() {
            check::<f32>(kernel);
            check::<f64>(kernel);
        }
    }

    /// Large products agree with the naive triple loop to within the rounding of a `k`-term
    /// sum (the proptest above covers small ones), in both precisions.
    #[test]
    fn large_products_match_naive() {
        fn check<F: Real>(kernel: Kernel, tol: f64) {
            let val = |i: usize| F::c(((i as u64 * 2654435761) % 2001) as f64 / 1000.0 - 1.0);
            for (m, k, n) in [(70, 600, 33), (33, 5, 130)] {
                let a = Matrix::from_fn(k, m, |r, c| val(r * 13 + c));
                let b = Matrix::from_fn(k, n, |r, c| val(r * 29 + c + 77));
                let c0 = Matrix::from_fn(m, n, |r, c| val(r * 3 + c + 9));
                let (mut fast, mut slow) = (c0.clone(), c0.clone());
                gemm_with(kernel, true, F::c(0.5), a.view(), Op::T, b.view(), Op::N, F::c(-2.0), &mut fast.view_mut());
                gemm_naive(F::c(0.5), a.view(), Op::T, b.view(), Op::N, F::c(-2.0), &mut slow.view_mut());
                for (x, y) in fast.data().iter().zip(slow.data()) {
                    let (x, y) = (x.to_f64().unwrap(), y.to_f64().unwrap());
                    assert!((x - y).abs() <= tol * k as f64 * (1.0 + y.abs()), "{m}x{k}x{n} {}: {x} vs {y}", F::NAME);
                }
            }
        }
        for kernel in kernels() {
            check::<f32>(kernel, 1e-6);
            check::<f64>(kernel, 1e-15);
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert!(Matrix::<f32>::from_vec(2, 3, vec![0.0; 5]).is_err());
        let a = Matrix::<f32>::zeros(2, 1);
        let b = Matrix::<f32>::zeros(3, 1);
        assert!(a.hcat(&b).is_err());
        let h = a.hcat(&Matrix::from_vec(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap()).unwrap();
        assert_eq!(h.data(), &[0.0, 1.0, 2.0, 0.0, 3.0, 4.0]);
    }
}
