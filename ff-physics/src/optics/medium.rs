//! The multimode medium: a seeded complex transmission matrix and its batched product.
//!
//! The matrix `T` (`m_out x m_in`) maps the input-pupil mode amplitudes `x` to the
//! output-pupil mode amplitudes `y = T x`. For a batch stored as rows (`X: batch x m_in`)
//! the product is `Y = X T^T`, done as one real GEMM on the packed layout
//! `[Re X | Im X] (batch x 2 m_in)` times the real block matrix
//! `[[Re T^T, Im T^T], [-Im T^T, Re T^T]] (2 m_in x 2 m_out)`, giving `[Re Y | Im Y]`.
//!
//! Measured (`optics_speed` test, f32, m = 293, 2 shared cores, noisy) per row of a batch of
//! 32 (the chunk size): block GEMM 17-34 us, four real GEMMs on split planes 53-57 us, three
//! (Gauss) 33-70 us, nalgebra's complex product 380-510 us. Three GEMMs win slightly only from
//! batches of ~256 (16-30 us vs 23-35 us), so the block form is used with 32-row chunks.

use crate::fft::FftReal;
use ff_core::{gemm, rng::rng_for, MatMut, MatRef, Matrix, Op};
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
            let qr = z.qr();
            let (q, r) = (qr.q(), qr.r());
            let mut t = vec![Complex::new(0.0, 0.0); m * m];
            for j in 0..m {
                let d = r[(j, j)];
                let phase = if d.norm() > 0.0 { d / d.norm() } else { Complex::new(1.0, 0.0) };
                for i in 0..m {
                    t[i * m + j] = q[(i, j)] * phase;
                }
            }
            t
        }
    }
}

/// A transmission matrix prepared for batched products.
#[derive(Clone, Debug)]
pub struct Medium<F: FftReal> {
    m_in: usize,
    m_out: usize,
    /// The block matrix `[[Re T^T, Im T^T], [-Im T^T, Re T^T]]`, `2 m_in x 2 m_out`.
    block: Matrix<F>,
}

impl<F: FftReal> Medium<F> {
    /// Prepares a row-major `m_out x m_in` complex matrix.
    ///
    /// # Panics
    /// If `t.len() != m_out * m_in`.
    pub fn new(t: &[Complex<f64>], m_out: usize, m_in: usize) -> Self {
        assert_eq!(t.len(), m_out * m_in, "transmission matrix length");
        let mut block = Matrix::zeros(2 * m_in, 2 * m_out);
        for o in 0..m_out {
            for i in 0..m_in {
                let (re, im) = (F::c(t[o * m_in + i].re), F::c(t[o * m_in + i].im));
                let d = block.data_mut();
                d[i * 2 * m_out + o] = re;
                d[i * 2 * m_out + m_out + o] = im;
                d[(m_in + i) * 2 * m_out + o] = -im;
                d[(m_in + i) * 2 * m_out + m_out + o] = re;
            }
        }
        Medium { m_in, m_out, block }
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
        Complex::new(self.block.get(i, o), self.block.get(i, self.m_out + o))
    }

    /// `Y = X T^T` on packed rows: `x` is `batch x 2 m_in` (`[Re | Im]` per row), `y` is
    /// `batch x 2 m_out`. Each output row depends only on its input row.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn apply(&self, x: MatRef<'_, F>, y: &mut MatMut<'_, F>) {
        gemm(F::one(), x, Op::N, self.block.view(), Op::N, F::zero(), y);
    }

    /// The adjoint product `G_X = G_Y B^T` on packed rows (`g_y`: `batch x 2 m_out`,
    /// `g_x`: `batch x 2 m_in`), i.e. `g_x = T^H g_y` in complex form.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn apply_adjoint(&self, g_y: MatRef<'_, F>, g_x: &mut MatMut<'_, F>) {
        gemm(F::one(), g_y, Op::N, self.block.view(), Op::T, F::zero(), g_x);
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
    fn packed_gemm_matches_a_naive_complex_loop() {
        let (m_out, m_in, batch) = (7, 9, 5);
        let t = draw_transmission(MediumKind::Gaussian, m_out, m_in, 8);
        let x: Vec<Complex<f64>> = draw_transmission(MediumKind::Gaussian, batch, m_in, 9);
        let med = Medium::<f64>::new(&t, m_out, m_in);
        let packed =
            Matrix::from_fn(
                batch,
                2 * m_in,
                |b, c| {
                    if c < m_in {
                        x[b * m_in + c].re
                    } else {
                        x[b * m_in + c - m_in].im
                    }
                },
            );
        let mut y = Matrix::zeros(batch, 2 * m_out);
        med.apply(packed.view(), &mut y.view_mut());
        for b in 0..batch {
            for o in 0..m_out {
                let want: Complex<f64> = (0..m_in).map(|i| t[o * m_in + i] * x[b * m_in + i]).sum();
                let got = Complex::new(y.get(b, o), y.get(b, m_out + o));
                // m_in = 9 terms of size ~1/3: rounding ~ 9 eps; tolerance 1e-14 absolute.
                assert!((got - want).norm() < 1e-14, "({b}, {o}): {got} vs {want}");
            }
        }
        assert_eq!(med.get(3, 4), Complex::new(t[3 * m_in + 4].re, t[3 * m_in + 4].im));
    }
}
