//! FFT helpers shared by every FFT-based simulator: 1-D and 2-D plans, shifts, frequency
//! grids, and a naive DFT oracle for the tests.
//!
//! # Conventions
//! - Forward transform (unnormalised, negative exponent):
//!   `X[k] = sum_j x[j] exp(-2 pi i j k / n)`.
//! - Inverse transform (positive exponent, scaled by `1/n`):
//!   `x[j] = (1/n) sum_k X[k] exp(+2 pi i j k / n)`, so `inverse(forward(x)) == x`.
//! - 2-D: an `rows x cols` field is stored row-major; the forward 2-D transform is the 1-D
//!   transform of every row followed by the 1-D transform of every column, and the inverse is
//!   scaled by `1/(rows cols)`. Parseval then reads `sum |X|^2 = rows cols sum |x|^2`.
//! - Frequency index `k` of an unshifted spectrum stands for the frequency `k` (for
//!   `k < ceil(n/2)`) or `k - n` (otherwise), as in NumPy's `fftfreq`; [`fftshift`] moves the
//!   zero frequency to index `n / 2` (integer division).
//!
//! Plans are built once ([`Fft1d::new`], [`Fft2d::new`]) and are immutable, `Send + Sync` and
//! cheap to clone; the `*_with_scratch` methods never allocate (the caller keeps a scratch
//! buffer of length `scratch_len()`), the plain methods allocate their scratch per call.

use ff_core::Real;
use num_complex::Complex;
use rustfft::{Fft, FftNum, FftPlanner};
use std::f64::consts::PI;
use std::sync::Arc;

/// The scalar of every FFT-based simulator: a [`Real`] that `rustfft` can transform
/// (`f32` and `f64`).
pub trait FftReal: Real + FftNum {}
impl<T: Real + FftNum> FftReal for T {}

/// Direction of a transform (see the module conventions for signs and scaling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `exp(-2 pi i j k / n)`, unnormalised.
    Forward,
    /// `exp(+2 pi i j k / n)`, scaled by `1/n` (`1/(rows cols)` in 2-D).
    Inverse,
}

/// A 1-D FFT plan of length `n`, applied to one or many contiguous signals.
#[derive(Clone)]
pub struct Fft1d<F: FftReal> {
    n: usize,
    fwd: Arc<dyn Fft<F>>,
    inv: Arc<dyn Fft<F>>,
    scratch_len: usize,
}

impl<F: FftReal> std::fmt::Debug for Fft1d<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fft1d").field("n", &self.n).finish()
    }
}

impl<F: FftReal> Fft1d<F> {
    /// Plans forward and inverse transforms of length `n`.
    ///
    /// # Panics
    /// If `n == 0` (a caller bug; configurations validate their sizes first).
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "FFT length must be positive");
        let mut planner = FftPlanner::<F>::new();
        let fwd = planner.plan_fft_forward(n);
        let inv = planner.plan_fft_inverse(n);
        let scratch_len = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        Fft1d { n, fwd, inv, scratch_len }
    }

    /// The transform length `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always `false` (a plan has a positive length); present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Length of the scratch buffer the `*_with_scratch` methods need.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// A zeroed scratch buffer of length [`Fft1d::scratch_len`].
    pub fn make_scratch(&self) -> Vec<Complex<F>> {
        vec![Complex::new(F::zero(), F::zero()); self.scratch_len]
    }

    /// Transforms in place every length-`n` signal of `data` (batched: `data.len()` must be a
    /// multiple of `n`), in the given direction, without allocating.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of `n` or `scratch` is shorter than
    /// [`Fft1d::scratch_len`].
    pub fn process_with_scratch(&self, data: &mut [Complex<F>], scratch: &mut [Complex<F>], dir: Direction) {
        assert_eq!(data.len() % self.n, 0, "data length {} is not a multiple of {}", data.len(), self.n);
        if data.is_empty() {
            return;
        }
        let scratch = &mut scratch[..self.scratch_len];
        match dir {
            Direction::Forward => self.fwd.process_with_scratch(data, scratch),
            Direction::Inverse => {
                self.inv.process_with_scratch(data, scratch);
                scale(data, F::one() / F::c(self.n as f64));
            }
        }
    }

    /// Forward transform in place (allocates its scratch; see [`Fft1d::process_with_scratch`]).
    pub fn forward(&self, data: &mut [Complex<F>]) {
        self.process_with_scratch(data, &mut self.make_scratch(), Direction::Forward);
    }

    /// Inverse transform in place, scaled by `1/n` (allocates its scratch).
    pub fn inverse(&self, data: &mut [Complex<F>]) {
        self.process_with_scratch(data, &mut self.make_scratch(), Direction::Inverse);
    }
}

/// A 2-D FFT plan for `rows x cols` row-major complex fields, applied to one or many fields
/// stored back to back.
///
/// Rows are transformed with a length-`cols` plan; columns are transposed into scratch,
/// transformed with a length-`rows` plan (one batched call) and transposed back.
#[derive(Clone)]
pub struct Fft2d<F: FftReal> {
    rows: usize,
    cols: usize,
    row_plan: Fft1d<F>,
    col_plan: Fft1d<F>,
}

impl<F: FftReal> std::fmt::Debug for Fft2d<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fft2d").field("rows", &self.rows).field("cols", &self.cols).finish()
    }
}

impl<F: FftReal> Fft2d<F> {
    /// Plans 2-D transforms of `rows x cols` fields.
    ///
    /// # Panics
    /// If `rows == 0` or `cols == 0`.
    pub fn new(rows: usize, cols: usize) -> Self {
        assert!(rows > 0 && cols > 0, "2-D FFT shape must be positive, got {rows} x {cols}");
        Fft2d { rows, cols, row_plan: Fft1d::new(cols), col_plan: Fft1d::new(rows) }
    }

    /// Number of rows of a field.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns of a field.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Length of the scratch buffer the `*_with_scratch` methods need: one transposed field
    /// plus the larger of the two 1-D scratch lengths.
    pub fn scratch_len(&self) -> usize {
        self.rows * self.cols + self.row_plan.scratch_len().max(self.col_plan.scratch_len())
    }

    /// A zeroed scratch buffer of length [`Fft2d::scratch_len`].
    pub fn make_scratch(&self) -> Vec<Complex<F>> {
        vec![Complex::new(F::zero(), F::zero()); self.scratch_len()]
    }

    /// Transforms in place every `rows x cols` field of `fields` (batched: `fields.len()` must
    /// be a multiple of `rows * cols`), without allocating.
    ///
    /// # Panics
    /// If `fields.len()` is not a multiple of `rows * cols` or `scratch` is shorter than
    /// [`Fft2d::scratch_len`].
    pub fn process_with_scratch(&self, fields: &mut [Complex<F>], scratch: &mut [Complex<F>], dir: Direction) {
        let (r, c) = (self.rows, self.cols);
        let size = r * c;
        assert_eq!(fields.len() % size, 0, "data length {} is not a multiple of {r} x {c}", fields.len());
        assert!(scratch.len() >= self.scratch_len(), "scratch too short");
        if fields.is_empty() {
            return;
        }
        let (tbuf, fft_scratch) = scratch.split_at_mut(size);
        // Rows: one batched call over all fields. Scaling is applied once at the end.
        if c > 1 {
            let plan = &self.row_plan;
            match dir {
                Direction::Forward => plan.fwd.process_with_scratch(fields, &mut fft_scratch[..plan.scratch_len]),
                Direction::Inverse => plan.inv.process_with_scratch(fields, &mut fft_scratch[..plan.scratch_len]),
            }
        }
        if r > 1 {
            let plan = &self.col_plan;
            for field in fields.chunks_exact_mut(size) {
                transpose(field, tbuf, r, c);
                match dir {
                    Direction::Forward => plan.fwd.process_with_scratch(tbuf, &mut fft_scratch[..plan.scratch_len]),
                    Direction::Inverse => plan.inv.process_with_scratch(tbuf, &mut fft_scratch[..plan.scratch_len]),
                }
                transpose(tbuf, field, c, r);
            }
        }
        if dir == Direction::Inverse {
            scale(fields, F::one() / F::c(size as f64));
        }
    }

    /// Forward 2-D transform in place (allocates its scratch).
    pub fn forward(&self, fields: &mut [Complex<F>]) {
        self.process_with_scratch(fields, &mut self.make_scratch(), Direction::Forward);
    }

    /// Inverse 2-D transform in place, scaled by `1/(rows cols)` (allocates its scratch).
    pub fn inverse(&self, fields: &mut [Complex<F>]) {
        self.process_with_scratch(fields, &mut self.make_scratch(), Direction::Inverse);
    }
}

/// Out-of-place transpose of a row-major `rows x cols` matrix into `dst` (`cols x rows`).
fn transpose<T: Copy>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    debug_assert!(src.len() == rows * cols && dst.len() >= rows * cols);
    for (i, row) in src.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            dst[j * rows + i] = v;
        }
    }
}

fn scale<F: FftReal>(data: &mut [Complex<F>], s: F) {
    for z in data {
        *z = z.scale(s);
    }
}

/// Moves the zero frequency of an unshifted 1-D spectrum to index `n / 2` (in place, no
/// allocation): element `k` goes to `(k + n/2) mod n`. Same as NumPy's `fftshift`.
pub fn fftshift<T>(data: &mut [T]) {
    let n = data.len();
    data.rotate_right(n / 2);
}

/// Inverse of [`fftshift`] (differs from it for odd lengths): element `k` goes to
/// `(k - n/2) mod n`.
pub fn ifftshift<T>(data: &mut [T]) {
    let n = data.len();
    data.rotate_left(n / 2);
}

/// 2-D [`fftshift`] of a row-major `rows x cols` array in place: the zero frequency moves
/// from `(0, 0)` to `(rows/2, cols/2)`.
///
/// # Panics
/// If `data.len() != rows * cols`.
pub fn fftshift2<T>(data: &mut [T], rows: usize, cols: usize) {
    assert_eq!(data.len(), rows * cols, "fftshift2: data is not {rows} x {cols}");
    if cols > 0 {
        for row in data.chunks_exact_mut(cols) {
            row.rotate_right(cols / 2);
        }
    }
    data.rotate_right((rows / 2) * cols);
}

/// Inverse of [`fftshift2`]: the zero frequency moves from `(rows/2, cols/2)` back to `(0, 0)`.
///
/// # Panics
/// If `data.len() != rows * cols`.
pub fn ifftshift2<T>(data: &mut [T], rows: usize, cols: usize) {
    assert_eq!(data.len(), rows * cols, "ifftshift2: data is not {rows} x {cols}");
    if cols > 0 {
        for row in data.chunks_exact_mut(cols) {
            row.rotate_left(cols / 2);
        }
    }
    data.rotate_left((rows / 2) * cols);
}

/// The signed integer frequency index of bin `k` of an unshifted length-`n` spectrum:
/// `k` for `k < ceil(n/2)`, `k - n` otherwise (NumPy's `fftfreq(n) * n`).
pub fn freq_index(k: usize, n: usize) -> i64 {
    if k < n.div_ceil(2) {
        k as i64
    } else {
        k as i64 - n as i64
    }
}

/// Frequencies of the bins of an unshifted length-`n` spectrum for sample spacing `d`, in
/// cycles per unit of `d` (NumPy's `fftfreq(n, d)`); multiply by `2 pi` for angular frequency.
pub fn fftfreq(n: usize, d: f64) -> Vec<f64> {
    (0..n).map(|k| freq_index(k, n) as f64 / (n as f64 * d)).collect()
}

/// `exp(sign * 2 pi i (jk mod n) / n)` in `f64`, reducing `jk` first so large products stay exact.
fn twiddle(jk: usize, n: usize, sign: f64) -> Complex<f64> {
    let theta = sign * 2.0 * PI * ((jk % n) as f64) / n as f64;
    Complex::new(theta.cos(), theta.sin())
}

fn to_c64<F: Real>(z: Complex<F>) -> Complex<f64> {
    Complex::new(z.re.to_f64().unwrap_or(f64::NAN), z.im.to_f64().unwrap_or(f64::NAN))
}

fn from_c64<F: Real>(z: Complex<f64>) -> Complex<F> {
    Complex::new(F::c(z.re), F::c(z.im))
}

/// The naive O(n^2) DFT, the oracle of the tests: the definition summed term by term, with
/// `f64` twiddles and accumulation whatever `F` is. Same conventions as the fast transforms.
pub fn dft_naive<F: Real>(input: &[Complex<F>], dir: Direction) -> Vec<Complex<F>> {
    let n = input.len();
    let (sign, norm) = match dir {
        Direction::Forward => (-1.0, 1.0),
        Direction::Inverse => (1.0, 1.0 / n.max(1) as f64),
    };
    (0..n)
        .map(|k| {
            let s: Complex<f64> = input.iter().enumerate().map(|(j, &x)| to_c64(x) * twiddle(j * k, n, sign)).sum();
            from_c64(s * norm)
        })
        .collect()
}

/// The naive 2-D DFT of a row-major `rows x cols` field, summed as a double sum over all
/// pixels for every output bin (O((rows cols)^2); independent of the separable fast path).
///
/// # Panics
/// If `input.len() != rows * cols`.
pub fn dft2_naive<F: Real>(input: &[Complex<F>], rows: usize, cols: usize, dir: Direction) -> Vec<Complex<F>> {
    assert_eq!(input.len(), rows * cols, "dft2_naive: input is not {rows} x {cols}");
    let (sign, norm) = match dir {
        Direction::Forward => (-1.0, 1.0),
        Direction::Inverse => (1.0, 1.0 / (rows * cols).max(1) as f64),
    };
    let mut out = Vec::with_capacity(rows * cols);
    for kr in 0..rows {
        for kc in 0..cols {
            let mut s = Complex::new(0.0, 0.0);
            for jr in 0..rows {
                let tr = twiddle(jr * kr, rows, sign);
                for jc in 0..cols {
                    s += to_c64(input[jr * cols + jc]) * tr * twiddle(jc * kc, cols, sign);
                }
            }
            out.push(from_c64(s * norm));
        }
    }
    out
}

#[cfg(test)]
mod tests;
