//! Fitting a block's input width to a system's native number of input channels.
//!
//! A physical system has a fixed number of input channels (20 loudspeaker tones, 20 metasurface
//! value pairs, a fibre's spectral bins) while a block's input can be any width (a labelled
//! 28 x 8 image has 224 values). [`Resampled`] maps `d` block values onto the system's `m`
//! channels with a fixed, documented linear map, as the digital-to-analogue front end of a
//! real set-up would:
//! - `d >= m`: channel `j` receives the mean of the block values `[floor(j d / m), floor((j+1) d / m))`
//!   (contiguous bins; every value lands in exactly one channel);
//! - `d < m`: channel `j` receives value `floor(j d / m)` (nearest-neighbour repetition).
//!
//! The map is not trained and costs `d` additions per sample; it is counted as part of the
//! physical query, not as digital work of the network.

use ff_core::{
    check_batch, check_vjp_shapes, Differentiable, MatMut, MatRef, Matrix, PhysicalSystem, Real, SystemError,
};

/// A system behind a fixed linear resampling of its input (see the module docs).
#[derive(Clone, Debug)]
pub struct Resampled<S> {
    inner: S,
    d: usize,
    /// For each channel `j`, the half-open range of block values it averages.
    ranges: Vec<(usize, usize)>,
}

impl<S> Resampled<S> {
    /// Wraps `inner` (with `m = inner.input_len()` channels) to accept `d` values per sample.
    ///
    /// # Panics
    /// If `d == 0` (a caller bug: block widths are validated before systems are built).
    pub fn new<F: Real>(inner: S, d: usize) -> Self
    where
        S: PhysicalSystem<F>,
    {
        assert!(d > 0, "input width must be positive");
        let m = inner.input_len();
        let ranges = (0..m)
            .map(|j| {
                if d >= m {
                    (j * d / m, (j + 1) * d / m)
                } else {
                    let s = j * d / m;
                    (s, s + 1)
                }
            })
            .collect();
        Resampled { inner, d, ranges }
    }

    /// The wrapped system.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped system, mutable.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn resample<F: Real>(&self, input: MatRef<'_, F>) -> Matrix<F> {
        let m = self.ranges.len();
        let mut x = Matrix::zeros(input.rows(), m);
        for i in 0..input.rows() {
            let src = input.row(i);
            for (dst, &(a, b)) in x.row_mut(i).iter_mut().zip(&self.ranges) {
                let s: F = src[a..b].iter().copied().sum();
                *dst = s / F::from_usize(b - a).expect("small integer");
            }
        }
        x
    }
}

impl<F: Real, S: PhysicalSystem<F>> PhysicalSystem<F> for Resampled<S> {
    fn name(&self) -> String {
        format!("{} (input resampled {} -> {})", self.inner.name(), self.d, self.ranges.len())
    }
    fn input_len(&self) -> usize {
        self.d
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn is_physical(&self) -> bool {
        self.inner.is_physical()
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch(&self.name(), self.d, self.inner.output_len(), &input, &output)?;
        let x = self.resample(input);
        self.inner.forward_batch(x.view(), output)
    }
}

impl<F: Real, S: Differentiable<F>> Differentiable<F> for Resampled<S> {
    fn vjp(
        &mut self,
        input: MatRef<'_, F>,
        grad_output: MatRef<'_, F>,
        mut grad_input: MatMut<'_, F>,
    ) -> Result<(), SystemError> {
        check_vjp_shapes(&self.name(), self.d, self.inner.output_len(), &input, &grad_output, &grad_input)?;
        let x = self.resample(input);
        let mut gx = Matrix::zeros(input.rows(), self.ranges.len());
        self.inner.vjp(x.view(), grad_output, gx.view_mut())?;
        grad_input.data_mut().fill(F::zero());
        for i in 0..input.rows() {
            let g = grad_input.row_mut(i);
            for (&gj, &(a, b)) in gx.row(i).iter().zip(&self.ranges) {
                let w = gj / F::from_usize(b - a).expect("small integer");
                g[a..b].iter_mut().for_each(|v| *v += w);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_core::conformance::{check_conformance, check_vjp, Conformance};
    use ff_core::Identity;

    #[test]
    fn bins_and_repeats_by_hand() {
        let mut down = Resampled::new::<f64>(Identity::new(2), 5);
        let x = Matrix::from_vec(1, 5, vec![1.0, 2.0, 3.0, 4.0, 6.0]).unwrap();
        // Bins [0, 2) and [2, 5): means 1.5 and 13/3.
        let y = down.forward(x.view()).unwrap();
        assert_eq!(y.data(), &[1.5, 13.0 / 3.0]);
        let mut up = Resampled::new::<f64>(Identity::new(5), 2);
        let y = up.forward(Matrix::from_vec(1, 2, vec![7.0, 8.0]).unwrap().view()).unwrap();
        assert_eq!(y.data(), &[7.0, 7.0, 7.0, 8.0, 8.0]);
    }

    #[test]
    fn conforms_and_vjp_is_the_transpose() {
        check_conformance::<f32, _, _>(|| Resampled::new::<f32>(Identity::new(3), 8), &Conformance::default());
        check_vjp(&mut Resampled::new::<f64>(Identity::new(3), 8), (-1.0, 1.0), 2, 1e-6, 1e-6, 3);
        check_vjp(&mut Resampled::new::<f64>(Identity::new(7), 3), (-1.0, 1.0), 2, 1e-6, 1e-6, 4);
    }
}
