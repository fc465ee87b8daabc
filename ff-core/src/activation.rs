//! Element-wise activations applied before a goodness is measured.

use crate::real::Real;
use crate::vmath::SLICE_CHUNK;
use serde::{Deserialize, Serialize};

/// An element-wise activation `a = f(z)` with its derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `|z|` (the rectification of PhyLL's cosine goodness). Derivative `sign(z)`, 0 at 0.
    #[default]
    Abs,
    /// `max(z, 0)`. Derivative 1 for `z > 0`, else 0.
    Relu,
    /// GELU, tanh form: `0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))`
    /// (PyTorch's `approximate="tanh"`), with its exact derivative.
    Gelu,
    /// `z` unchanged.
    Identity,
    /// SiLU (swish): `z sigma(z)` with `sigma` the logistic function (PyTorch's `SiLU`, used
    /// by the public PhyLL code's acoustic emulator). Derivative `sigma(z) (1 + z (1 - sigma(z)))`.
    Silu,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

impl Activation {
    /// `f(z)`.
    #[inline]
    pub fn apply<F: Real>(self, z: F) -> F {
        match self {
            Activation::Abs => z.abs(),
            Activation::Relu => z.max(F::zero()),
            Activation::Identity => z,
            Activation::Silu => z / (F::one() + (-z).exp()),
            Activation::Gelu => {
                let u = F::c(SQRT_2_OVER_PI) * (z + F::c(GELU_C) * z * z * z);
                F::c(0.5) * z * (F::one() + u.tanh())
            }
        }
    }

    /// `f` applied in place to every entry of `zs`. Equal to [`Activation::apply`] entry by
    /// entry, except that SiLU takes its exponentials from [`Real::exp_slice`] (vectorised in
    /// `f32`, within about 2 ulp of the scalar `exp`).
    pub fn apply_slice<F: Real>(self, zs: &mut [F]) {
        match self {
            Activation::Identity => {}
            Activation::Silu => F::silu_slice(zs),
            _ => zs.iter_mut().for_each(|z| *z = self.apply(*z)),
        }
    }

    /// `d[i] *= f'(z[i])` for every entry (the chain rule through the activation in a
    /// backward pass). SiLU takes its exponentials from [`Real::exp_slice`], as in
    /// [`Activation::apply_slice`].
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn mul_derivative_slice<F: Real>(self, z: &[F], d: &mut [F]) {
        assert_eq!(z.len(), d.len(), "activation derivative: lengths differ");
        match self {
            Activation::Identity => {}
            Activation::Silu => {
                let mut e = [F::zero(); SLICE_CHUNK];
                for (zc, dc) in z.chunks(SLICE_CHUNK).zip(d.chunks_mut(SLICE_CHUNK)) {
                    let e = &mut e[..zc.len()];
                    for (t, &z) in e.iter_mut().zip(zc) {
                        *t = -z;
                    }
                    F::exp_slice(e);
                    for ((dv, &z), &t) in dc.iter_mut().zip(zc).zip(e.iter()) {
                        let s = F::one() / (F::one() + t);
                        *dv *= s * (F::one() + z * (F::one() - s));
                    }
                }
            }
            _ => d.iter_mut().zip(z).for_each(|(dv, &z)| *dv *= self.derivative(z)),
        }
    }

    /// `f'(z)`.
    #[inline]
    pub fn derivative<F: Real>(self, z: F) -> F {
        match self {
            Activation::Abs => {
                if z > F::zero() {
                    F::one()
                } else if z < F::zero() {
                    -F::one()
                } else {
                    F::zero()
                }
            }
            Activation::Relu => {
                if z > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
            Activation::Identity => F::one(),
            Activation::Silu => {
                let s = F::one() / (F::one() + (-z).exp());
                s * (F::one() + z * (F::one() - s))
            }
            Activation::Gelu => {
                let u = F::c(SQRT_2_OVER_PI) * (z + F::c(GELU_C) * z * z * z);
                let t = u.tanh();
                let du = F::c(SQRT_2_OVER_PI) * (F::one() + F::c(3.0 * GELU_C) * z * z);
                F::c(0.5) * (F::one() + t) + F::c(0.5) * z * (F::one() - t * t) * du
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn derivative_matches_central_difference(z in -4.0f64..4.0, k in 0usize..5) {
            let act = [Activation::Abs, Activation::Relu, Activation::Gelu, Activation::Identity, Activation::Silu][k];
            // Stay away from the kinks of abs/relu, where the derivative is one-sided.
            prop_assume!(z.abs() > 1e-3);
            let h = 1e-6;
            let fd = (act.apply(z + h) - act.apply(z - h)) / (2.0 * h);
            let an = act.derivative(z);
            prop_assert!((fd - an).abs() <= 1e-7 * (1.0 + an.abs()), "{act:?} at {z}: fd {fd} vs {an}");
        }
    }

    proptest! {
        /// The slice forms agree with the scalar ones: exactly in f64 (same `exp`), within the
        /// vectorised `exp`'s rounding in f32.
        #[test]
        fn slice_forms_match_scalar_forms(zs in proptest::collection::vec(-30.0f64..30.0, 0..600), k in 0usize..5) {
            let act = [Activation::Abs, Activation::Relu, Activation::Gelu, Activation::Identity, Activation::Silu][k];
            let mut a = zs.clone();
            act.apply_slice(&mut a);
            let mut d = vec![1.5; zs.len()];
            act.mul_derivative_slice(&zs, &mut d);
            for (i, &z) in zs.iter().enumerate() {
                prop_assert_eq!(a[i], act.apply(z));
                prop_assert_eq!(d[i], 1.5 * act.derivative(z));
            }
            let z32: Vec<f32> = zs.iter().map(|&z| z as f32).collect();
            let mut a32 = z32.clone();
            act.apply_slice(&mut a32);
            let mut d32 = vec![1.0f32; z32.len()];
            act.mul_derivative_slice(&z32, &mut d32);
            for (i, &z) in z32.iter().enumerate() {
                let (fa, fd) = (act.apply(z), act.derivative(z));
                // SiLU: 2.5 ulp from the exponential plus the roundings of both forms; the
                // derivative's `1 + z (1 - s)` amplifies an error in `s` by up to `1 + 2 |z|`.
                let sig = 1.0 / (1.0 + (-z).exp());
                prop_assert!((a32[i] - fa).abs() <= 6.0 * f32::EPSILON * fa.abs(), "{act:?}({z}) {} vs {fa}", a32[i]);
                prop_assert!(
                    (d32[i] - fd).abs() <= 8.0 * f32::EPSILON * (1.0 + z.abs()) * (fd.abs() + sig),
                    "{act:?}'({z}) {} vs {fd}", d32[i]
                );
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(Activation::Abs.apply(-2.0f64), 2.0);
        assert_eq!(Activation::Relu.apply(-2.0f64), 0.0);
        assert!((Activation::Gelu.apply(1.0f64) - 0.841_191_990_607_477_2).abs() < 1e-12);
        assert_eq!(Activation::Abs.derivative(0.0f64), 0.0);
        // SiLU(1) = 1 / (1 + e^-1); SiLU'(0) = 1/2.
        assert!((Activation::Silu.apply(1.0f64) - 0.731_058_578_630_004_9).abs() < 1e-12);
        assert!((Activation::Silu.derivative(0.0f64) - 0.5).abs() < 1e-15);
    }
}
