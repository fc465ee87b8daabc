//! Element-wise maths over slices, written so the compiler vectorises it.
//!
//! The only function here is a single-precision `exp` over a slice: the scalar `expf` of the
//! C library is not vectorised and was the largest single cost of the acoustic emulator's
//! SiLU layers (a quarter of an acoustic-vowel epoch). [`exp_f32`] uses the classic Cody-Waite
//! range reduction `x = n ln 2 + r`, `|r| <= ln 2 / 2`, a degree-7 polynomial for `e^r`
//! (the minimax coefficients of the Cephes library's `expf`), and an exact scaling by `2^n`
//! through the exponent bits, split in two factors so that subnormal results underflow
//! gradually and large arguments overflow to infinity.
//!
//! Accuracy, checked by the tests against `f64::exp`: relative error below `2.5e-7`
//! (about 2 ulp) wherever the result is a normal number; absolute error below `2^-148` where it
//! is subnormal; `exp(x) = +inf` for `x > 88.73`, `0` for `x < -104`; NaN in, NaN out.
//!
//! The same arithmetic runs on every x86-64 machine (no fused multiply-add is used, so the
//! AVX2 and baseline SSE2 paths give the same bits): same input, same output.
//! [`silu_f32`] applies SiLU with this exponential in the same vectorised loop.

/// Entries per stack buffer in the generic slice loops that feed these kernels
/// ([`crate::Real::silu_slice`], [`crate::Activation::mul_derivative_slice`]).
pub(crate) const SLICE_CHUNK: usize = 256;

/// `log2(e)`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in a part exact in few bits and a correction (Cody-Waite).
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding it rounds a float of magnitude below `2^22` to the nearest integer,
/// which then sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Arguments are clamped to this range before the reduction: beyond it the result is `+inf`
/// (above `ln(f32::MAX) = 88.7228`) or rounds to 0 (below `ln(2^-150) = -103.97`).
const X_MIN: f32 = -104.0;
const X_MAX: f32 = 88.8;

/// `e^x` of one value by the slice algorithm (see the module documentation).
#[inline(always)]
fn exp1(x: f32) -> f32 {
    // `clamp` keeps NaN, which then flows through to the result.
    let xc = x.clamp(X_MIN, X_MAX);
    let t = xc * LOG2E + ROUND_MAGIC;
    let n_f = t - ROUND_MAGIC;
    // The integer n in [-150, 129] read from the mantissa bits of `t`.
    let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = xc - n_f * LN2_HI - n_f * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r
        + 0.5;
    let e = p * r2 + r + 1.0;
    // 2^n as 2^(n >> 1) * 2^(n - (n >> 1)): both factors are normal numbers for every n here.
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    e * s1 * s2
}

#[inline(always)]
fn exp_body(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = exp1(*x);
    }
}

/// SiLU `z / (1 + e^-z)` of one value, with [`exp1`].
#[inline(always)]
fn silu1(z: f32) -> f32 {
    z / (1.0 + exp1(-z))
}

#[inline(always)]
fn silu_body(zs: &mut [f32]) {
    for z in zs.iter_mut() {
        *z = silu1(*z);
    }
}

/// Runs `body` on `xs` compiled for AVX2 when the CPU has it (the result is the same: no fused
/// multiply-adds are formed). AVX-512 is not used: on the EPYC machine this was measured on, the
/// 512-bit build of these loops made the acoustic-vowel epoch 1.7x slower.
macro_rules! dispatch {
    ($body:ident, $xs:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            fn avx2(xs: &mut [f32]) {
                $body(xs)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { avx2($xs) }
            } else {
                $body($xs)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        $body($xs)
    }};
}

/// Replaces every `x` in `xs` by `e^x` (single precision, about 2 ulp; see the module
/// documentation for the exact guarantees).
pub fn exp_f32(xs: &mut [f32]) {
    dispatch!(exp_body, xs)
}

/// Replaces every `z` in `zs` by SiLU `z / (1 + e^-z)`, with the exponential of [`exp_f32`].
pub fn silu_f32(zs: &mut [f32]) {
    dispatch!(silu_body, zs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Relative error of `exp_f32(x)` against the exactly rounded reference, or the
    /// absolute error in units of the smallest subnormal where the reference is subnormal.
    fn check(x: f32) -> Result<(), String> {
        let mut v = [x];
        exp_f32(&mut v);
        let got = v[0];
        let want = (x as f64).exp();
        if want > f32::MAX as f64 * (1.0 + 1e-7) {
            return if got == f32::INFINITY { Ok(()) } else { Err(format!("exp({x}) = {got}, want inf")) };
        }
        if want < f32::MIN_POSITIVE as f64 {
            let err = (got as f64 - want).abs() / f64::from(f32::from_bits(1));
            return if err <= 2.0 {
                Ok(())
            } else {
                Err(format!("exp({x}) = {got:e}, want {want:e} ({err} subnormal ulps)"))
            };
        }
        let rel = (got as f64 - want).abs() / want;
        if rel <= 2.5e-7 {
            Ok(())
        } else {
            Err(format!("exp({x}) = {got:e}, want {want:e} (relative error {rel:e})"))
        }
    }

    #[test]
    fn dense_sweep_is_within_two_ulp() {
        // Every 2^-10 over the whole finite range, plus the neighbourhood of the reduction's
        // breakpoints (odd multiples of ln2/2).
        let mut x = -110.0f32;
        while x < 90.0 {
            check(x).unwrap();
            x += 1.0 / 1024.0;
        }
        for k in -300..=260 {
            let b = (k as f32 + 0.5) * std::f32::consts::LN_2 / 2.0;
            for x in [b.next_down(), b, b.next_up()] {
                check(x).unwrap();
            }
        }
    }

    #[test]
    fn special_values() {
        let mut v = [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 88.72, 88.73, 1e30, -1e30, 1.0];
        exp_f32(&mut v);
        assert_eq!(v[0], 1.0);
        assert_eq!(v[1], 1.0);
        assert_eq!(v[2], f32::INFINITY);
        assert_eq!(v[3], 0.0);
        assert!(v[4].is_nan());
        assert!(v[5].is_finite() && v[5] > 3.3e38);
        assert_eq!(v[6], f32::INFINITY);
        assert_eq!(v[7], f32::INFINITY);
        assert_eq!(v[8], 0.0);
        assert!((v[9] - std::f32::consts::E).abs() <= 2.0 * f32::EPSILON);
    }

    #[test]
    fn slice_and_scalar_paths_agree_bit_for_bit() {
        // The dispatched (possibly AVX2) path against the baseline loop, on a ragged length.
        let xs: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.173).collect();
        let mut a = xs.clone();
        let mut b = xs.clone();
        exp_f32(&mut a);
        exp_body(&mut b);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn silu_is_the_slice_exponential_composed() {
        let zs: Vec<f32> =
            (0..1003).map(|i| (i as f32 - 500.0) * 0.173).chain([f32::NAN, 0.0, -200.0, 200.0]).collect();
        let mut got = zs.clone();
        silu_f32(&mut got);
        for (&z, &s) in zs.iter().zip(&got) {
            let mut e = [-z];
            exp_f32(&mut e);
            let want = z / (1.0 + e[0]);
            assert!(want.to_bits() == s.to_bits() || (want.is_nan() && s.is_nan()), "silu({z}) = {s}, want {want}");
        }
        assert_eq!(got[zs.len() - 2], -0.0);
        assert_eq!(got[zs.len() - 1], 200.0);
    }

    proptest! {
        #[test]
        fn random_arguments_are_within_two_ulp(x in -105.0f32..90.0) {
            prop_assert!(check(x).is_ok(), "{}", check(x).unwrap_err());
        }
    }
}
