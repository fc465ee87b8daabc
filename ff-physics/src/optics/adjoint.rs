//! The exact vector-Jacobian product of [`OpticsSystem`]: the adjoint of every stage of the
//! forward model, applied in reverse order (simulation only; real optics has no adjoint).
//!
//! Convention: the gradient of a real loss `L` with respect to a complex value `E` is held as
//! `g_E = dL/dRe E + i dL/dIm E`; for a complex-linear map `y = A x` it back-propagates as
//! `g_x = A^H g_y`. Stages, output to input:
//! 1. **Pooling** (linear, real): scatter `g_out / kernel^2` over every pixel of its window.
//! 2. **Detection**: amplitude `|E|` gives `g_E = g_d E / |E|` (the subgradient 0 at `E = 0`);
//!    intensity `|E|^2` gives `g_E = 2 g_d E`.
//! 3. **Inverse FFT** `E = (1/N^2) F^H S` (`F` the unnormalised DFT matrix): `g_S = F g_E / N^2`,
//!    a forward FFT scaled by `1/N^2`; then gather the output-pupil pixels.
//! 4. **Medium** `y = T x`: `g_x = T^H g_y` ([`super::Medium::apply_adjoint`]).
//! 5. **Input pupil** (a gather): scatter the mode gradients into an empty spectrum.
//! 6. **Forward FFT** `S = F E_slm`: `g_E = F^H g_S = N^2 ifft(g_S)`.
//! 7. **SLM**: amplitude `E = v` gives `g_v = sum over the pixels showing v of Re g_E`;
//!    phase `E = exp(i pi v)` gives `g_v = sum Re(conj(g_E) i pi E)`. Padding pixels carry no
//!    input and receive nothing.

use super::{OpticsSystem, Workspace, CHUNK_ROWS};
use crate::camera::{Detection, Pooling};
use crate::fft::{Direction, FftReal};
use crate::slm::Encoding;
use ff_core::{check_vjp_shapes, Differentiable, MatMut, MatRef, PhysicalSystem, SystemError};
use num_complex::Complex;
use rayon::prelude::*;

impl<F: FftReal> OpticsSystem<F> {
    /// Vector-Jacobian product of up to [`CHUNK_ROWS`] rows.
    fn vjp_chunk(
        &self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        grad_input: &mut MatMut<'_, F>,
        ws: &mut Workspace<F>,
    ) {
        let rows = input.rows();
        let n = self.n;
        let n2 = n * n;
        let m_out = self.pupil_out.len();
        let zero = Complex::new(F::zero(), F::zero());
        // Forward to the camera field (kept in ws.fields), then detection + pooling adjoints in place.
        self.propagate_chunk(input, ws);
        let det = self.config.detection;
        for (r, field) in ws.fields[..rows * n2].chunks_exact_mut(n2).enumerate() {
            pooling_adjoint(&self.config.pooling, grad_output.row(r), n, &mut ws.detected);
            for (e, &g) in field.iter_mut().zip(&ws.detected) {
                *e = match det {
                    Detection::Amplitude => {
                        let a = e.norm_sqr().sqrt();
                        if a > F::zero() {
                            e.scale(g / a)
                        } else {
                            zero
                        }
                    }
                    Detection::Intensity => e.scale(g + g),
                };
            }
        }
        let fields = &mut ws.fields[..rows * n2];
        // Adjoint of the inverse FFT: forward FFT / N^2; gather the output pupil.
        self.fft.process_with_scratch(fields, &mut ws.scratch, Direction::Forward);
        let inv_n2 = F::one() / F::c(n2 as f64);
        ws.modes_out.resize(rows, m_out);
        for (r, field) in fields.chunks_exact(n2).enumerate() {
            let (re, im) = (ws.modes_out.re.row_mut(r), ws.modes_out.im.row_mut(r));
            for ((a, b), &p) in re.iter_mut().zip(im.iter_mut()).zip(&self.pupil_out) {
                *a = field[p].re * inv_n2;
                *b = field[p].im * inv_n2;
            }
        }
        // Medium adjoint: g_x = T^H g_y.
        self.medium.apply_adjoint(&ws.modes_out, &mut ws.modes_in);
        // Input-pupil adjoint (scatter), then the forward FFT's adjoint N^2 ifft.
        fields.fill(zero);
        for (r, field) in fields.chunks_exact_mut(n2).enumerate() {
            let (re, im) = (ws.modes_in.re.row(r), ws.modes_in.im.row(r));
            for ((&a, &b), &p) in re.iter().zip(im).zip(&self.pupil_in) {
                field[p] = Complex::new(a, b);
            }
        }
        self.fft.process_with_scratch(fields, &mut ws.scratch, Direction::Inverse);
        let n2f = F::c(n2 as f64);
        // SLM adjoint: accumulate each pixel's contribution into the input value it shows.
        let pi = F::c(std::f64::consts::PI);
        for (r, field) in fields.chunks_exact(n2).enumerate() {
            let x = input.row(r);
            let g = grad_input.row_mut(r);
            g.fill(F::zero());
            for (p, &ge) in field.iter().enumerate() {
                if let Some(s) = self.slm.source(p) {
                    let ge = ge.scale(n2f);
                    g[s] += match self.config.encoding {
                        Encoding::Amplitude => ge.re,
                        Encoding::Phase => {
                            // Re(conj(g) i pi E), E = exp(i pi v).
                            let e = Complex::from_polar(F::one(), pi * x[s]);
                            (ge.conj() * Complex::new(F::zero(), pi) * e).re
                        }
                    };
                }
            }
        }
    }
}

/// Transpose of [`Pooling::apply`] on an `n x n` image: every output gradient is spread over
/// its window with the weight `1/kernel^2` (padded pixels drop out). Writes all of `dst`.
fn pooling_adjoint<F: FftReal>(pool: &Pooling, grad_out: &[F], n: usize, dst: &mut [F]) {
    dst.fill(F::zero());
    if *pool == Pooling::NONE {
        dst.copy_from_slice(grad_out);
        return;
    }
    let o = pool.output_side(n).expect("validated pooling");
    let (k, s, p) = (pool.kernel, pool.stride, pool.padding);
    let inv = F::one() / F::c((k * k) as f64);
    let range = |o: usize| (o * s).saturating_sub(p)..(o * s + k).saturating_sub(p).min(n);
    for oi in 0..o {
        for oj in 0..o {
            let g = grad_out[oi * o + oj] * inv;
            for r in range(oi) {
                for v in &mut dst[r * n + range(oj).start..r * n + range(oj).end] {
                    *v += g;
                }
            }
        }
    }
}

impl<F: FftReal> Differentiable<F> for OpticsSystem<F> {
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError> {
        check_vjp_shapes(&self.name(), self.input_len(), self.output_len(), &input, &grad_output, &grad_input)?;
        let this = &*self;
        let chunks = grad_input.into_row_chunks(CHUNK_ROWS);
        chunks.into_par_iter().enumerate().for_each_init(
            || Workspace::new(this),
            |ws, (c, mut g)| {
                let start = c * CHUNK_ROWS;
                let end = start + g.rows();
                this.vjp_chunk(input.slice_rows(start, end), grad_output.slice_rows(start, end), &mut g, ws);
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optics::{MediumKind, OpticsConfig};
    use crate::slm::Placement;
    use ff_core::conformance::check_vjp;
    use ff_core::Matrix;

    fn small(encoding: Encoding, detection: Detection, placement: Placement, shape: (usize, usize)) -> OpticsConfig {
        OpticsConfig {
            field_size: 8,
            input_shape: shape,
            placement,
            encoding,
            input_pupil_radius_px: 2.5,
            output_pupil_radius_px: 2.5,
            medium: MediumKind::Unitary,
            detection,
            pooling: Pooling { kernel: 3, stride: 2, padding: 1 },
            seed: 4,
        }
    }

    #[test]
    fn vjp_matches_finite_differences_for_every_encoding_and_detection() {
        // f64, step 1e-6: central differences of a smooth map are accurate to ~1e-9
        // relative; the bound 1e-6 leaves room and still catches any missing factor.
        for enc in [Encoding::Amplitude, Encoding::Phase] {
            for det in [Detection::Amplitude, Detection::Intensity] {
                for (placement, shape) in [(Placement::Tile, (3, 5)), (Placement::Upsample { factor: 2 }, (4, 4))] {
                    let mut sys = OpticsSystem::<f64>::new(small(enc, det, placement, shape)).unwrap();
                    check_vjp(&mut sys, (0.1, 1.0), 3, 1e-6, 1e-6, 7);
                }
            }
        }
    }

    #[test]
    fn gaussian_medium_and_unequal_pupils_also_match() {
        let cfg = OpticsConfig {
            output_pupil_radius_px: 3.2,
            medium: MediumKind::Gaussian,
            pooling: Pooling { kernel: 2, stride: 2, padding: 0 },
            ..small(Encoding::Amplitude, Detection::Amplitude, Placement::Center, (5, 5))
        };
        let mut sys = OpticsSystem::<f64>::new(cfg).unwrap();
        check_vjp(&mut sys, (-1.0, 1.0), 2, 1e-6, 1e-6, 3);
    }

    #[test]
    fn large_batches_use_chunks_and_agree_with_row_by_row() {
        let mut sys =
            OpticsSystem::<f64>::new(small(Encoding::Amplitude, Detection::Amplitude, Placement::Tile, (3, 5)))
                .unwrap();
        let rows = CHUNK_ROWS + 5;
        let x = Matrix::from_fn(rows, 15, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0);
        let w = Matrix::from_fn(rows, sys.output_len(), |i, j| ((i + 2 * j) % 5) as f64 - 2.0);
        let mut g = Matrix::zeros(rows, 15);
        sys.vjp(x.view(), w.view(), g.view_mut()).unwrap();
        for i in [0, CHUNK_ROWS - 1, CHUNK_ROWS, rows - 1] {
            let mut gi = Matrix::zeros(1, 15);
            sys.vjp(x.view().slice_rows(i, i + 1), w.view().slice_rows(i, i + 1), gi.view_mut()).unwrap();
            assert_eq!(gi.row(0), g.row(i), "row {i}");
        }
        let bad = Matrix::zeros(rows, 3);
        assert!(sys.vjp(x.view(), bad.view(), g.view_mut()).is_err());
    }
}
