//! Element-wise activations applied before a goodness is measured.

use crate::real::Real;
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
