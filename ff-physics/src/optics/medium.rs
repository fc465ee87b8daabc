//! The multimode medium: a seeded complex transmission matrix and its batched product.
//!
//! The matrix `T` (`m_out x m_in`) maps the input-pupil mode amplitudes `x` to the
//! output-pupil mode amplitudes `y = T x`. For a batch stored as rows (`X: batch x m_in`)
//! the product is `Y = X T^T`, done with three real GEMMs on split real/imaginary planes
//! (Gauss's trick, see [`Medium::apply`]).
//!
//! Measured in release (`optics_speed` test, f32, m = 293) per row, over four runs on 2 cores
//! shared with other builds (load 3-7, so only the ordering is meaningful): Gauss's three GEMMs
//! 13-20 us, one real block GEMM `[Re X | Im X] [[Re T^T, Im T^T], [-Im T^T, Re T^T]]` 17-30 us,
//! four real GEMMs 18-31 us, nalgebra's complex product 87-146 us. Gauss was fastest or tied
//! in most comparisons and does 25 % fewer flops than the other real forms, so it is used, on
//! chunks of 64 rows; its extra rounding (the cancellation in `P3 - P1 - P2`) stays far below
//! the f32 tolerances of the tests.

use crate::fft::FftReal;
use ff_core::rng::{rng_for, Rng};
use ff_core::{gemm, Matrix, Op};
use nalgebra::DMatrix;
use num_complex::Complex;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The random ensemble the transmission matrix is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediumKind {
    /// A Haar-random unitary (lossless medium, all modes coupled); needs `m_out == m_in`.
    /// Drawn as the QR decomposition of a complex Gaussian matrix with the phases of the
    /// diagonal of `R` moved into `Q` (Mezzadri 2007), which makes the distribution exactly Haar.
    Unitary,
    /// I.i.d. circular complex Gaussian entries of variance `1/m_in` (`E|T_ij|^2 = 1/m_in`),
    /// so the expected output power equals the input power; any `m_out`.
    Gaussian,
}

/// Draws a transmission matrix (row-major `m_out x m_in`, in `f64` so that `f32` and `f64`
/// systems with the same seed share the same medium) from the stream `"optics medium"` of `seed`.
///
/// # Panics
/// For [`MediumKind::Unitary`] with `m_out != m_in` (configurations are validated first).
pub fn draw_transmission(kind: MediumKind, m_out: usize, m_in: usize, seed: u64) -> Vec<Complex<f64>> {
    let mut rng = rng_for(seed, "optics medium");
    let mut gauss = |sd: f64| {
        let re: f64 = StandardNormal.sample(&mut rng);
        let im: f64 = StandardNormal.sample(&mut rng);
        Complex::new(re * sd, im * sd)
    };
    match kind {
        MediumKind::Gaussian => {
            let sd = (0.5 / m_in as f64).sqrt();
            (0..m_out * m_in).map(|_| gauss(sd)).collect()
        }
        MediumKind::Unitary => {
            assert_eq!(m_out, m_in, "a unitary transmission matrix must be square");
            let m = m_in;
            let sd = 0.5f64.sqrt();
            let z = DMatrix::from_row_iterator(m, m, (0..m * m).map(|_| gauss(sd)));
            let mut t = vec![Complex::new(0.0, 0.0); m * m];
            unitary_factor(z, &mut t);
            t
        }
    }
}

/// Writes into `t` (row-major `m x m`) the unitary factor `Q D` of the QR decomposition
/// `Z = Q R` of a square `z`, with `D` the phases of `R`'s diagonal, i.e. the `Q` of the unique
/// QR decomposition whose `R` has a positive real diagonal (Mezzadri 2007). For a complex
/// Gaussian `z` the result is Haar-distributed, and `unitary_factor(U z) = U unitary_factor(z)`
/// for any unitary `U`.
fn unitary_factor(z: DMatrix<Complex<f64>>, t: &mut [Complex<f64>]) {
    let m = z.nrows();
    let qr = z.qr();
    let (q, r) = (qr.q(), qr.r());
    for j in 0..m {
        let d = r[(j, j)];
        let phase = if d.norm() > 0.0 { d / d.norm() } else { Complex::new(1.0, 0.0) };
        for i in 0..m {
            t[i * m + j] = q[(i, j)] * phase;
        }
    }
}

/// Moves a transmission matrix (row-major `m_out x m_in`, drawn from `kind` as by
/// [`draw_transmission`]) towards an independent fresh draw of the same ensemble, in place:
/// the slow drift or the sudden change of a multimode medium (temperature, strain, a knock).
///
/// With `s = min(strength, 1)` and `c = sqrt(1 - s^2)`:
/// - [`MediumKind::Gaussian`]: `T <- c T + s G`, `G` a fresh matrix of the same ensemble
///   (i.i.d. circular Gaussian, `E|G_ij|^2 = 1/m_in`). The entries stay i.i.d. with the same
///   variance, and each new entry has correlation `c` with the old one.
/// - [`MediumKind::Unitary`]: `T <- Q(c T + s G)`, `G` complex Gaussian with `E|G_ij|^2 = 1/m`
///   and `Q(A)` the unitary factor of the QR decomposition of `A` whose `R` has a positive
///   diagonal (the construction [`draw_transmission`] uses). Since `Q(c T + s G) =
///   T Q(c I + s T^H G)` and `T^H G` is again Gaussian and independent of `T`, the result is
///   `T W` with a random unitary `W` independent of `T` (and close to `I` for small `s`): a Haar
///   `T` stays Haar and exactly unitary (to rounding; lossless), and `s = 1` gives an
///   independent Haar medium. (The polar factor, the nearest unitary, would do as well but its
///   SVD costs about five times the QR decomposition: 0.8 s against 0.17 s for 293 modes,
///   measured on a shared 2-core machine.)
///
/// So `strength` is dimensionless: the amplitude fraction of the medium replaced by a fresh one
/// (`0` none, `1` all of it; larger values act as `1`, negative or NaN ones as `0`). The
/// generator is always advanced by the same `2 m_out m_in` normal draws, whatever `strength`
/// (so later perturbations do not depend on the size of this one), and `strength = 0` leaves
/// `t` untouched bit for bit.
///
/// # Panics
/// If `t.len() != m_out * m_in`, or for [`MediumKind::Unitary`] with `m_out != m_in`.
pub fn perturb_transmission(
    kind: MediumKind,
    t: &mut [Complex<f64>],
    m_out: usize,
    m_in: usize,
    strength: f64,
    rng: &mut Rng,
) {
    assert_eq!(t.len(), m_out * m_in, "transmission matrix length");
    let sd = (0.5 / m_in as f64).sqrt();
    let fresh: Vec<Complex<f64>> = (0..m_out * m_in)
        .map(|_| {
            let re: f64 = StandardNormal.sample(rng);
            let im: f64 = StandardNormal.sample(rng);
            Complex::new(re * sd, im * sd)
        })
        .collect();
    let s = if strength > 0.0 { strength.min(1.0) } else { 0.0 };
    if s == 0.0 {
        return;
    }
    let c = (1.0 - s * s).sqrt();
    for (a, g) in t.iter_mut().zip(&fresh) {
        *a = *a * c + g * s;
    }
    if kind == MediumKind::Unitary {
        assert_eq!(m_out, m_in, "a unitary transmission matrix must be square");
        unitary_factor(DMatrix::from_row_slice(m_in, m_in, t), t);
    }
}

/// A batch of complex mode vectors in split form: `re` and `im` are `batch x m` row-major,
/// `aux` is working space of the same shape.
#[derive(Clone, Debug)]
pub struct ModeBatch<F: FftReal> {
    /// Real parts, `batch x m`.
    pub re: Matrix<F>,
    /// Imaginary parts, `batch x m`.
    pub im: Matrix<F>,
    /// Working space, `batch x m` (contents unspecified).
    pub aux: Matrix<F>,
}

impl<F: FftReal> ModeBatch<F> {
    /// A zeroed batch of `rows` vectors of `m` modes.
    pub fn zeros(rows: usize, m: usize) -> Self {
        ModeBatch { re: Matrix::zeros(rows, m), im: Matrix::zeros(rows, m), aux: Matrix::zeros(rows, m) }
    }

    /// Reshapes to `rows x m`, reusing the allocations (contents unspecified).
    pub fn resize(&mut self, rows: usize, m: usize) {
        self.re.resize(rows, m);
        self.im.resize(rows, m);
        self.aux.resize(rows, m);
    }
}

/// A transmission matrix prepared for batched products.
#[derive(Clone, Debug)]
pub struct Medium<F: FftReal> {
    m_in: usize,
    m_out: usize,
    /// `Re T`, `Im T` and `Re T + Im T`, each `m_out x m_in`.
    re: Matrix<F>,
    im: Matrix<F>,
    sum: Matrix<F>,
}

impl<F: FftReal> Medium<F> {
    /// Prepares a row-major `m_out x m_in` complex matrix.
    ///
    /// # Panics
    /// If `t.len() != m_out * m_in`.
    pub fn new(t: &[Complex<f64>], m_out: usize, m_in: usize) -> Self {
        assert_eq!(t.len(), m_out * m_in, "transmission matrix length");
        let plane = |f: &dyn Fn(Complex<f64>) -> f64| Matrix::from_fn(m_out, m_in, |o, i| F::c(f(t[o * m_in + i])));
        Medium { m_in, m_out, re: plane(&|z| z.re), im: plane(&|z| z.im), sum: plane(&|z| z.re + z.im) }
    }

    /// Number of input modes.
    pub fn m_in(&self) -> usize {
        self.m_in
    }

    /// Number of output modes.
    pub fn m_out(&self) -> usize {
        self.m_out
    }

    /// Element `T[o, i]` (output mode `o`, input mode `i`).
    pub fn get(&self, o: usize, i: usize) -> Complex<F> {
        Complex::new(self.re.get(o, i), self.im.get(o, i))
    }

    /// The whole matrix as row-major `m_out x m_in` complex values (e.g. for an exact adjoint,
    /// `T^H`, together with [`crate::optics::OpticsSystem::camera_field`]).
    pub fn to_dense(&self) -> Vec<Complex<F>> {
        self.re.data().iter().zip(self.im.data()).map(|(&a, &b)| Complex::new(a, b)).collect()
    }

    /// `Y = X T^T` for a batch of row vectors (`x`: `batch x m_in`, `y`: `batch x m_out`), by
    /// Gauss's three real products: `P1 = Re X Re T^T`, `P2 = Im X Im T^T`,
    /// `P3 = (Re X + Im X)(Re T + Im T)^T`, `Re Y = P1 - P2`, `Im Y = P3 - P1 - P2`.
    /// Each output row depends only on its input row. Uses `x.aux` and `y.aux` as scratch.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn apply(&self, x: &mut ModeBatch<F>, y: &mut ModeBatch<F>) {
        let rows = x.re.rows();
        assert_eq!((x.re.cols(), x.im.rows(), x.im.cols()), (self.m_in, rows, self.m_in), "input modes");
        y.resize(rows, self.m_out);
        for ((s, &a), &b) in x.aux.data_mut().iter_mut().zip(x.re.data()).zip(x.im.data()) {
            *s = a + b;
        }
        let (one, zero) = (F::one(), F::zero());
        gemm(one, x.re.view(), Op::N, self.re.view(), Op::T, zero, &mut y.re.view_mut());
        gemm(one, x.im.view(), Op::N, self.im.view(), Op::T, zero, &mut y.aux.view_mut());
        gemm(one, x.aux.view(), Op::N, self.sum.view(), Op::T, zero, &mut y.im.view_mut());
        let (p1, p3, p2) = (y.re.data_mut(), y.im.data_mut(), y.aux.data());
        for ((re, im), &b) in p1.iter_mut().zip(p3.iter_mut()).zip(p2) {
            *im -= *re + b;
            *re -= b;
        }
    }

    /// The adjoint product `g_x = T^H g_y` for a batch of row vectors (`g_y`: `batch x m_out`,
    /// `g_x`: `batch x m_in`): in row form `G_X = G_Y conj(T)`, i.e.
    /// `Re G_X = Re G_Y Re T + Im G_Y Im T` and `Im G_X = Im G_Y Re T - Re G_Y Im T`.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn apply_adjoint(&self, g_y: &ModeBatch<F>, g_x: &mut ModeBatch<F>) {
        let rows = g_y.re.rows();
        assert_eq!((g_y.re.cols(), g_y.im.rows(), g_y.im.cols()), (self.m_out, rows, self.m_out), "output modes");
        g_x.resize(rows, self.m_in);
        let (one, zero) = (F::one(), F::zero());
        gemm(one, g_y.re.view(), Op::N, self.re.view(), Op::N, zero, &mut g_x.re.view_mut());
        gemm(one, g_y.im.view(), Op::N, self.im.view(), Op::N, one, &mut g_x.re.view_mut());
        gemm(one, g_y.im.view(), Op::N, self.re.view(), Op::N, zero, &mut g_x.im.view_mut());
        gemm(-one, g_y.re.view(), Op::N, self.im.view(), Op::N, one, &mut g_x.im.view_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `||T^H T - I||_max` for a square row-major matrix.
    fn unitarity_error(t: &[Complex<f64>], m: usize) -> f64 {
        let mut worst = 0.0f64;
        for a in 0..m {
            for b in 0..m {
                let s: Complex<f64> = (0..m).map(|k| t[k * m + a].conj() * t[k * m + b]).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                worst = worst.max((s - want).norm());
            }
        }
        worst
    }

    #[test]
    fn unitary_draw_is_unitary_to_roundoff() {
        let m = 60;
        let t = draw_transmission(MediumKind::Unitary, m, m, 3);
        let err = unitarity_error(&t, m);
        assert!(err < 1e-12, "|T^H T - I|_max = {err:e}");
    }

    #[test]
    fn phase_correction_keeps_q_r_equal_to_the_gaussian_matrix() {
        // The construction relies on Z = Q R; check it for the decomposition used here.
        let m = 12;
        let mut rng = rng_for(0, "qr check");
        let z = DMatrix::<Complex<f64>>::from_fn(m, m, |_, _| {
            Complex::new(StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng))
        });
        let qr = z.clone().qr();
        let err = (qr.q() * qr.r() - &z).iter().map(|e| e.norm()).fold(0.0, f64::max);
        assert!(err < 1e-12, "|QR - Z|_max = {err:e}");
    }

    #[test]
    fn unitary_draw_has_haar_moments() {
        // For Haar unitaries E|T_ij|^2 = 1/m and the phases are uniform, so the mean of T_ij
        // vanishes. With m^2 = 10^4 entries the sample mean of |T_ij|^2 m is 1 +- ~1 %
        // (tolerance 5 %), the mean of T_ij sqrt(m) is 0 +- ~1 % (tolerance 5 %).
        let m = 100;
        let t = draw_transmission(MediumKind::Unitary, m, m, 11);
        let p: f64 = t.iter().map(|z| z.norm_sqr()).sum::<f64>() / (m * m) as f64 * m as f64;
        assert!((p - 1.0).abs() < 0.05, "mean |T|^2 m = {p}");
        let mean: Complex<f64> = t.iter().sum::<Complex<f64>>() / (m * m) as f64 * (m as f64).sqrt();
        assert!(mean.norm() < 0.05, "mean T sqrt(m) = {mean}");
        // The diagonal is where a QR phase convention would show: with R's diagonal left
        // negative-real-times-phase (LAPACK style) the diagonal mean times sqrt(m) is about
        // -0.89; Haar gives 0 with sd 0.1 for m = 100 (tolerance 3.5 sd).
        let diag: Complex<f64> = (0..m).map(|i| t[i * m + i]).sum::<Complex<f64>>() / m as f64 * (m as f64).sqrt();
        assert!(diag.norm() < 0.35, "diagonal mean {diag} (sd ~0.1)");
    }

    #[test]
    fn gaussian_draw_has_variance_one_over_m_in() {
        let (m_out, m_in) = (150, 200);
        let t = draw_transmission(MediumKind::Gaussian, m_out, m_in, 5);
        let var = t.iter().map(|z| z.norm_sqr()).sum::<f64>() / t.len() as f64;
        // 30 000 samples of an exponential variable: relative sd ~0.6 %; tolerance 3 %.
        assert!((var * m_in as f64 - 1.0).abs() < 0.03, "variance x m_in = {}", var * m_in as f64);
    }

    #[test]
    fn seeds_select_different_media_and_same_seed_same_bits() {
        let a = draw_transmission(MediumKind::Unitary, 10, 10, 1);
        let b = draw_transmission(MediumKind::Unitary, 10, 10, 2);
        let a2 = draw_transmission(MediumKind::Unitary, 10, 10, 1);
        assert_ne!(a, b);
        assert_eq!(a, a2);
    }

    #[test]
    fn gauss_product_matches_a_naive_complex_loop() {
        let (m_out, m_in, batch) = (7, 9, 5);
        let t = draw_transmission(MediumKind::Gaussian, m_out, m_in, 8);
        let x: Vec<Complex<f64>> = draw_transmission(MediumKind::Gaussian, batch, m_in, 9);
        let med = Medium::<f64>::new(&t, m_out, m_in);
        let mut xb = ModeBatch::zeros(batch, m_in);
        xb.re = Matrix::from_fn(batch, m_in, |b, i| x[b * m_in + i].re);
        xb.im = Matrix::from_fn(batch, m_in, |b, i| x[b * m_in + i].im);
        let mut y = ModeBatch::zeros(0, 0);
        med.apply(&mut xb, &mut y);
        for b in 0..batch {
            for o in 0..m_out {
                let want: Complex<f64> = (0..m_in).map(|i| t[o * m_in + i] * x[b * m_in + i]).sum();
                let got = Complex::new(y.re.get(b, o), y.im.get(b, o));
                // m_in = 9 terms of size ~1/3: rounding ~ 9 eps; tolerance 1e-14 absolute.
                assert!((got - want).norm() < 1e-14, "({b}, {o}): {got} vs {want}");
            }
        }
        assert_eq!(med.get(3, 4), Complex::new(t[3 * m_in + 4].re, t[3 * m_in + 4].im));
        assert_eq!(med.to_dense(), t);
    }
}
