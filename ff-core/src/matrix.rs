//! Dense row-major matrices: the batch format of the whole workspace.
//!
//! A batch of `n` samples of `d` features is an `n x d` matrix stored row by row, so each
//! sample is one contiguous slice. Weights of an affine map `z = W u + b` are stored as
//! `W: d_out x d_in`, also row-major.

use crate::error::{CoreError, Result};
use crate::real::Real;
use rayon::prelude::*;
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

/// General matrix multiply `C <- alpha * op(A) op(B) + beta * C` on row-major operands.
///
/// With `beta == 0` the previous contents of `C` are ignored (NaN in `C` does not propagate).
///
/// # Panics
/// If the shapes do not agree (a caller bug: shapes are validated at the API boundary).
pub fn gemm<F: Real>(alpha: F, a: MatRef<'_, F>, op_a: Op, b: MatRef<'_, F>, op_b: Op, beta: F, c: &mut MatMut<'_, F>) {
    gemm_impl(true, alpha, a, op_a, b, op_b, beta, c);
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
    gemm_impl(false, alpha, a, op_a, b, op_b, beta, c);
}

#[allow(clippy::too_many_arguments)]
fn gemm_impl<F: Real>(
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
        Op::N => (a.rows, a.cols, a.cols as isize, 1isize),
        Op::T => (a.cols, a.rows, 1isize, a.cols as isize),
    };
    let (kb, n, rsb, csb) = match op_b {
        Op::N => (b.rows, b.cols, b.cols as isize, 1isize),
        Op::T => (b.cols, b.rows, 1isize, b.cols as isize),
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
    let cs = c.cols as isize;
    let parts = if parallel { parallel_parts(m, n, ka) } else { 1 };
    if parts <= 1 {
        // SAFETY: shapes and strides were checked above; `c` is a unique borrow distinct from a and b.
        unsafe {
            F::gemm_raw(
                m,
                ka,
                n,
                alpha,
                a.data.as_ptr(),
                rsa,
                csa,
                b.data.as_ptr(),
                rsb,
                csb,
                beta,
                c.data.as_mut_ptr(),
                cs,
                1,
            );
        }
        return;
    }
    // Split the longer side of C into `parts` disjoint blocks, one product each. Every element
    // of C is still accumulated over the whole inner dimension by the same kernel, so the
    // result is bit for bit the single-threaded one.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let step = len.div_ceil(parts).next_multiple_of(SPLIT_ALIGN).min(len);
    let (pa, pb, pc) = (a.data.as_ptr() as usize, b.data.as_ptr() as usize, c.data.as_mut_ptr() as usize);
    (0..len.div_ceil(step)).into_par_iter().for_each(|p| {
        let start = p * step;
        let count = step.min(len - start);
        // SAFETY: the block [start, start + count) of C's rows (or columns) is disjoint from every
        // other block, lies inside C, and reads the matching rows of op(A) (or columns of op(B)),
        // which lie inside A (or B); A and B are only read.
        unsafe {
            if split_rows {
                let off = start as isize;
                F::gemm_raw(
                    count,
                    ka,
                    n,
                    alpha,
                    (pa as *const F).offset(off * rsa),
                    rsa,
                    csa,
                    pb as *const F,
                    rsb,
                    csb,
                    beta,
                    (pc as *mut F).offset(off * cs),
                    cs,
                    1,
                );
            } else {
                let off = start as isize;
                F::gemm_raw(
                    m,
                    ka,
                    count,
                    alpha,
                    pa as *const F,
                    rsa,
                    csa,
                    (pb as *const F).offset(off * csb),
                    rsb,
                    csb,
                    beta,
                    (pc as *mut F).offset(off),
                    cs,
                    1,
                );
            }
        }
    });
}

/// Multiply-adds per thread below which a product runs on the calling thread: splitting a
/// smaller one costs more in hand-offs than it saves. Chosen on the acoustic-vowel epoch,
/// whose training runs inside rayon's pool (`Network` does that), where a hand-off
/// costs about 1 us: with 2 threads, 2^17 gave 0.89-0.92 ms per epoch, 2^19 1.07-1.08 ms and
/// no splitting 1.34-1.37 ms. From a thread outside the pool a hand-off costs about 17 us.
pub const PARALLEL_MIN_MULS: usize = 1 << 17;

/// Blocks of a split product are whole multiples of this many rows or columns (a multiple of
/// every GEMM micro-kernel's panel width): matrixmultiply's kernels for whole and partial
/// panels round `alpha A B + beta C` differently, so a split inside a panel would change bits
/// (caught by `split_products_equal_the_unsplit_one` with 8).
const SPLIT_ALIGN: usize = 16;

/// How many blocks [`gemm`] splits an `m x k` by `k x n` product into: one per rayon thread
/// for large products, fewer for small ones, one below [`PARALLEL_MIN_MULS`].
fn parallel_parts(m: usize, n: usize, k: usize) -> usize {
    let muls = m.saturating_mul(n).saturating_mul(k);
    let min_muls = PARALLEL_MIN_MULS;
    if muls < 2 * min_muls {
        return 1;
    }
    let by_size = muls / min_muls;
    let by_shape = m.max(n).div_ceil(SPLIT_ALIGN);
    rayon::current_num_threads().min(by_size).min(by_shape).max(1)
}

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
    use proptest::prelude::*;

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
            let mut c1 = c0.clone();
            let mut c2 = c0.clone();
            gemm(0.7, a.view(), opa, b.view(), opb, 0.3, &mut c1.view_mut());
            gemm_naive(0.7, a.view(), opa, b.view(), opb, 0.3, &mut c2.view_mut());
            for (x, y) in c1.data().iter().zip(c2.data()) {
                prop_assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()) * (k as f64 + 1.0));
            }
        }
    }

    /// A product large enough to be split across threads gives, bit for bit, the unsplit
    /// single-threaded product, whichever side is split and for every transpose.
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
                    gemm(0.7, a.view(), opa, b.view(), opb, 0.3, &mut split.view_mut());
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
