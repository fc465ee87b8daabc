//! Bessel functions of order zero and the 2-D Hankel functions built from them.
//!
//! Two regimes, both accurate to about 1e-15 absolute (so ~1e-13 relative away from zeros):
//! - `x < ASYMPTOTIC_FROM`: Miller's backward recurrence for `J_n(x)`, normalised by the sum
//!   rule `J0 + 2 sum_k J_2k = 1`; `Y0` from the Neumann series
//!   `Y0 = (2/pi)(ln(x/2) + gamma) J0 - (4/pi) sum_k (-1)^k J_2k / k` (Abramowitz & Stegun 9.1.88)
//!   over the same recurrence values. Every term is bounded by 1, so there is no cancellation
//!   of large terms as in the plain power series.
//! - `x >= ASYMPTOTIC_FROM`: Hankel's asymptotic expansion (A&S 9.2.5, 9.2.9, 9.2.10), whose
//!   smallest term there is about `exp(-2x) < 1e-17`.

use num_complex::Complex64;
use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// Switch point between the recurrence and the asymptotic expansion.
const ASYMPTOTIC_FROM: f64 = 20.0;
/// Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `(J0(x), Y0(x))` for `x > 0`.
///
/// # Panics
/// If `x` is not positive and finite (a caller bug: `Y0` is singular at 0).
pub(crate) fn bessel_j0_y0(x: f64) -> (f64, f64) {
    assert!(x > 0.0 && x.is_finite(), "bessel_j0_y0 needs a positive finite argument, got {x}");
    if x < ASYMPTOTIC_FROM {
        miller(x)
    } else {
        asymptotic(x)
    }
}

/// `H0^(2)(x) = J0(x) - i Y0(x)`: the outgoing wave for the `exp(+j omega t)` convention.
pub(crate) fn hankel2_0(x: f64) -> Complex64 {
    let (j, y) = bessel_j0_y0(x);
    Complex64::new(j, -y)
}

/// `H0^(1)(x) = J0(x) + i Y0(x)`: the outgoing wave for the `exp(-i omega t)` convention.
pub(crate) fn hankel1_0(x: f64) -> Complex64 {
    let (j, y) = bessel_j0_y0(x);
    Complex64::new(j, y)
}

fn miller(x: f64) -> (f64, f64) {
    // Start order: J_N(x) ~ (e x / 2N)^N must be negligible; N = 1.5 x + 30 gives < 1e-20 on (0, 20).
    let n_start = 2 * (((1.5 * x + 30.0) / 2.0).ceil() as usize);
    let (mut j_next, mut j_cur) = (0.0_f64, 1e-30_f64); // J_{n+1}, J_n (unnormalised)
    let mut norm = 0.0; // J0 + 2 sum J_2k
    let mut neumann = 0.0; // sum_k (-1)^k J_2k / k
    for n in (1..=n_start).rev() {
        // At this point j_cur = J_n.
        if n % 2 == 0 {
            norm += 2.0 * j_cur;
            let k = (n / 2) as f64;
            let sign = if (n / 2) % 2 == 0 { 1.0 } else { -1.0 };
            neumann += sign * j_cur / k;
        }
        let j_prev = 2.0 * n as f64 / x * j_cur - j_next;
        j_next = j_cur;
        j_cur = j_prev;
        if j_cur.abs() > 1e250 {
            // Rescale everything accumulated so far; the ratio is all that matters.
            j_cur *= 1e-250;
            j_next *= 1e-250;
            norm *= 1e-250;
            neumann *= 1e-250;
        }
    }
    norm += j_cur;
    let j0 = j_cur / norm;
    let y0 = (2.0 / PI) * (((0.5 * x).ln() + EULER_GAMMA) * j0 - 2.0 * neumann / norm);
    (j0, y0)
}

fn asymptotic(x: f64) -> (f64, f64) {
    // t_k = prod_{m=1..k} (mu - (2m-1)^2) / (k! (8x)^k) with mu = 4 nu^2 = 0.
    let (mut p, mut q) = (1.0, 0.0);
    let mut t = 1.0_f64;
    let mut last = f64::INFINITY;
    for k in 1..60 {
        let odd = (2 * k - 1) as f64;
        t *= -odd * odd / (k as f64 * 8.0 * x);
        if t.abs() >= last || t.abs() < 1e-18 {
            break; // the series is asymptotic: stop at the smallest term
        }
        last = t.abs();
        // P = sum_{k even} (-1)^{k/2} t_k, Q = sum_{k odd} (-1)^{(k-1)/2} t_k
        match k % 4 {
            0 => p += t,
            1 => q += t,
            2 => p -= t,
            _ => q -= t,
        }
    }
    let chi = x - FRAC_PI_4;
    let amp = (1.0 / (FRAC_PI_2 * x)).sqrt();
    let (s, c) = chi.sin_cos();
    (amp * (p * c - q * s), amp * (p * s + q * c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from mpmath 1.3.0 (`besselj(0, x)`, `bessely(0, x)`, 30 digits).
    #[allow(clippy::excessive_precision)] // digits exactly as printed by mpmath
    const REFERENCE: &[(f64, f64, f64)] = &[
        (1e-6, 0.99999999999975, -8.86903148165944373),
        (0.01, 0.999975000156249566, -3.00545563708364594),
        (0.5, 0.938469807240812904, -0.444518733506706557),
        (1.0, 0.7651976865579666, 0.08825696421567696),
        (3.0, -0.260051954901933438, 0.376850010012790382),
        (5.0, -0.177596771314338304, -0.30851762524903378),
        (7.5, 0.266339657880378397, 0.117313286148208631),
        (10.0, -0.2459357644513483, 0.05567116728359939),
        (15.0, -0.0142244728267807732, 0.205464296038918265),
        (19.9, 0.172877756392618462, 0.0457620941593854787),
        (20.0, 0.167024664340583155, 0.0626405968093838312),
        (20.1, 0.159536067937297091, 0.0788105924287502926),
        (25.0, 0.0962667832759581162, -0.127249432268006138),
        (33.3, 0.0633384859475212517, 0.122897499135037326),
        (50.0, 0.055812327669251815, -0.098064995470077079),
        (80.0, -0.0697421655122100228, -0.05562033908977),
    ];

    #[test]
    fn j0_y0_match_reference_values() {
        for &(x, j_ref, y_ref) in REFERENCE {
            let (j, y) = bessel_j0_y0(x);
            assert!((j - j_ref).abs() <= 1e-9 * j_ref.abs(), "J0({x}) = {j}, expected {j_ref}");
            // The last reference is given to 13 digits only.
            let tol = if x == 80.0 { 1e-12 } else { 1e-9 };
            assert!((y - y_ref).abs() <= tol * y_ref.abs().max(1e-3), "Y0({x}) = {y}, expected {y_ref}");
        }
    }

    #[test]
    fn first_zero_of_j0() {
        let (j, y) = bessel_j0_y0(2.404825557695773);
        assert!(j.abs() < 1e-14, "J0 at its first zero: {j}");
        assert!((y - 0.509_924_383_448_479).abs() < 1e-13);
    }

    #[test]
    fn regimes_agree_at_the_switch_point() {
        let below = miller(ASYMPTOTIC_FROM);
        let above = asymptotic(ASYMPTOTIC_FROM);
        assert!((below.0 - above.0).abs() < 1e-14 && (below.1 - above.1).abs() < 1e-14);
        // The recurrence keeps working past the switch, which checks both independently.
        for x in [22.0, 27.5] {
            let (m, a) = (miller(x), asymptotic(x));
            assert!((m.0 - a.0).abs() < 1e-13 && (m.1 - a.1).abs() < 1e-13, "x = {x}: {m:?} vs {a:?}");
        }
    }

    #[test]
    fn wronskian_of_hankel_pair() {
        // J0 Y0' - J0' Y0 = 2/(pi x), with J0' = -J1, Y0' = -Y1; check it numerically via central
        // differences of our own functions (step 1e-5, truncation error ~1e-10).
        for x in [0.3, 1.7, 6.0, 19.0, 21.0, 40.0] {
            let h = 1e-5;
            let (jp, yp) = bessel_j0_y0(x + h);
            let (jm, ym) = bessel_j0_y0(x - h);
            let (j, y) = bessel_j0_y0(x);
            let (dj, dy) = ((jp - jm) / (2.0 * h), (yp - ym) / (2.0 * h));
            let w = j * dy - dj * y;
            assert!((w - 2.0 / (PI * x)).abs() < 1e-8, "Wronskian at {x}: {w}");
        }
    }

    #[test]
    fn hankel_conventions() {
        let (j, y) = bessel_j0_y0(1.3);
        assert_eq!(hankel2_0(1.3), Complex64::new(j, -y));
        assert_eq!(hankel1_0(1.3), hankel2_0(1.3).conj());
    }
}
