//! Tests of the FFT helpers, three layers deep: the naive DFT on spectra worked by hand, the
//! fast plans against the naive DFT, then identities (Parseval, round trip, shifts).

use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type C64 = Complex<f64>;

fn c(re: f64, im: f64) -> C64 {
    Complex::new(re, im)
}

/// Largest absolute difference between two complex sequences.
fn max_abs_diff<F: Real>(a: &[Complex<F>], b: &[Complex<F>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (to_c64(*x) - to_c64(*y)).norm()).fold(0.0, f64::max)
}

/// Relative L2 error `||a - b|| / ||b||`.
fn rel_l2<F: Real>(a: &[Complex<F>], b: &[Complex<F>]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (to_c64(*x) - to_c64(*y)).norm_sqr()).sum();
    let den: f64 = b.iter().map(|y| to_c64(*y).norm_sqr()).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn random_field<F: Real>(n: usize, seed: u64) -> Vec<Complex<F>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| Complex::new(F::c(rng.random::<f64>() * 2.0 - 1.0), F::c(rng.random::<f64>() * 2.0 - 1.0))).collect()
}

/// Tolerance of the fast transforms against the oracle, as a relative L2 error: the FFT's
/// rounding error grows like `eps * log2(n)` (the oracle accumulates in f64, so for f64 its own
/// error of order `eps * sqrt(n)` is covered by the `sqrt(n)` factor). `C = 4`.
fn fft_tol(eps: f64, n: usize) -> f64 {
    4.0 * eps * (n as f64).sqrt().max((n as f64).log2()).max(1.0)
}

// ---------- layer 1: the oracle on spectra worked by hand ----------

#[test]
fn naive_dft_of_a_delta_is_constant_and_of_a_constant_is_a_delta() {
    for n in [1usize, 2, 5, 8] {
        let mut delta = vec![c(0.0, 0.0); n];
        delta[0] = c(1.0, 0.0);
        let spec = dft_naive(&delta, Direction::Forward);
        assert!(spec.iter().all(|z| (*z - c(1.0, 0.0)).norm() < 1e-15), "n = {n}: {spec:?}");

        let constant = vec![c(2.0, -1.0); n];
        let spec = dft_naive(&constant, Direction::Forward);
        assert!((spec[0] - c(2.0 * n as f64, -(n as f64))).norm() < 1e-13);
        assert!(spec[1..].iter().all(|z| z.norm() < 1e-13), "n = {n}: {spec:?}");
    }
}

#[test]
fn naive_dft_of_a_shifted_delta_is_a_linear_phase_with_negative_sign() {
    // x[j] = delta(j - 1) -> X[k] = exp(-2 pi i k / n): the forward sign is negative.
    let n = 8;
    let mut x = vec![c(0.0, 0.0); n];
    x[1] = c(1.0, 0.0);
    let spec = dft_naive(&x, Direction::Forward);
    assert!((spec[2] - c(0.0, -1.0)).norm() < 1e-15, "X[2] = exp(-i pi/2) = -i, got {}", spec[2]);
    assert!((spec[4] - c(-1.0, 0.0)).norm() < 1e-15);
}

#[test]
fn naive_dft_of_a_cosine_and_a_sine_has_two_bins() {
    let (n, k0) = (16usize, 3usize);
    let w = |j: usize| 2.0 * PI * (k0 * j) as f64 / n as f64;
    let cos: Vec<C64> = (0..n).map(|j| c(w(j).cos(), 0.0)).collect();
    let sin: Vec<C64> = (0..n).map(|j| c(w(j).sin(), 0.0)).collect();
    let (cs, ss) = (dft_naive(&cos, Direction::Forward), dft_naive(&sin, Direction::Forward));
    let half = n as f64 / 2.0;
    for k in 0..n {
        let (ec, es) = if k == k0 {
            (c(half, 0.0), c(0.0, -half))
        } else if k == n - k0 {
            (c(half, 0.0), c(0.0, half))
        } else {
            (c(0.0, 0.0), c(0.0, 0.0))
        };
        assert!((cs[k] - ec).norm() < 1e-12, "cos bin {k}: {} vs {ec}", cs[k]);
        assert!((ss[k] - es).norm() < 1e-12, "sin bin {k}: {} vs {es}", ss[k]);
    }
}

#[test]
fn naive_dft_of_1234_matches_the_hand_computation() {
    // X[k] = sum_j (j+1) (-i)^{jk}: [10, -2+2i, -2, -2-2i].
    let x = [c(1.0, 0.0), c(2.0, 0.0), c(3.0, 0.0), c(4.0, 0.0)];
    let spec = dft_naive(&x, Direction::Forward);
    let want = [c(10.0, 0.0), c(-2.0, 2.0), c(-2.0, 0.0), c(-2.0, -2.0)];
    assert!(max_abs_diff(&spec, &want) < 1e-14, "{spec:?}");
    let back = dft_naive(&spec, Direction::Inverse);
    assert!(max_abs_diff(&back, &x) < 1e-14, "inverse is scaled by 1/n: {back:?}");
}

#[test]
fn naive_2d_dft_of_hand_made_fields() {
    // A 3 x 4 delta at the origin -> all ones; a constant -> rows*cols at (0, 0).
    let (r, cc) = (3usize, 4usize);
    let mut delta = vec![c(0.0, 0.0); r * cc];
    delta[0] = c(1.0, 0.0);
    assert!(dft2_naive(&delta, r, cc, Direction::Forward).iter().all(|z| (*z - c(1.0, 0.0)).norm() < 1e-15));
    let spec = dft2_naive(&vec![c(1.0, 0.0); r * cc], r, cc, Direction::Forward);
    assert!((spec[0] - c(12.0, 0.0)).norm() < 1e-13 && spec[1..].iter().all(|z| z.norm() < 1e-13));
    // A plane wave along the columns, cos(2 pi j / 4), constant down the rows:
    // two bins (0, 1) and (0, 3) of height rows*cols/2 = 6.
    let wave: Vec<C64> = (0..r * cc).map(|p| c((2.0 * PI * (p % cc) as f64 / 4.0).cos(), 0.0)).collect();
    let spec = dft2_naive(&wave, r, cc, Direction::Forward);
    for (p, z) in spec.iter().enumerate() {
        let want = if p == 1 || p == 3 { 6.0 } else { 0.0 };
        assert!((*z - c(want, 0.0)).norm() < 1e-13, "bin {p}: {z}");
    }
}

// ---------- layer 2: fast transforms against the oracle ----------

const PRIMES: [usize; 6] = [67, 89, 97, 101, 127, 251];

#[test]
fn fft1d_matches_naive_dft_for_sizes_1_to_64_and_primes() {
    let mut worst = 0.0f64;
    for n in (1..=64).chain(PRIMES) {
        let plan = Fft1d::<f64>::new(n);
        let x = random_field::<f64>(n, n as u64);
        for dir in [Direction::Forward, Direction::Inverse] {
            let mut fast = x.clone();
            plan.process_with_scratch(&mut fast, &mut plan.make_scratch(), dir);
            let err = rel_l2(&fast, &dft_naive(&x, dir));
            worst = worst.max(err / fft_tol(f64::EPSILON, n));
            assert!(err <= fft_tol(f64::EPSILON, n), "n = {n} {dir:?}: rel err {err:e}");
        }
    }
    eprintln!("fft1d f64: worst error / tolerance = {worst:.3}");
}

#[test]
fn fft1d_f32_matches_naive_dft() {
    for n in (1..=64).chain(PRIMES) {
        let plan = Fft1d::<f32>::new(n);
        let x = random_field::<f32>(n, 7 + n as u64);
        let mut fast = x.clone();
        plan.forward(&mut fast);
        let err = rel_l2(&fast, &dft_naive(&x, Direction::Forward));
        assert!(err <= fft_tol(f32::EPSILON as f64, n), "n = {n}: rel err {err:e}");
    }
}

#[test]
fn fft2d_matches_naive_dft_on_many_shapes() {
    let mut shapes: Vec<(usize, usize)> = (1..=64).map(|n| (n, 1 + n % 5)).collect();
    shapes.extend((1..=64).map(|n| (1 + n % 3, n)));
    shapes.extend((1..=16).map(|n| (n, n)));
    shapes.extend([(32, 32), (13, 17), (31, 2), (3, 61), (51, 51)]);
    for (r, cc) in shapes {
        let plan = Fft2d::<f64>::new(r, cc);
        let x = random_field::<f64>(r * cc, (r * 1000 + cc) as u64);
        for dir in [Direction::Forward, Direction::Inverse] {
            let mut fast = x.clone();
            plan.process_with_scratch(&mut fast, &mut plan.make_scratch(), dir);
            let err = rel_l2(&fast, &dft2_naive(&x, r, cc, dir));
            assert!(err <= fft_tol(f64::EPSILON, r * cc), "{r} x {cc} {dir:?}: rel err {err:e}");
        }
    }
}

#[test]
fn fft2d_batched_equals_one_field_at_a_time_bit_for_bit() {
    let (r, cc, batch) = (6usize, 10usize, 4usize);
    let plan = Fft2d::<f32>::new(r, cc);
    let x = random_field::<f32>(r * cc * batch, 3);
    let mut all = x.clone();
    plan.forward(&mut all);
    for (b, field) in x.chunks_exact(r * cc).enumerate() {
        let mut one = field.to_vec();
        plan.forward(&mut one);
        assert_eq!(one.as_slice(), &all[b * r * cc..(b + 1) * r * cc], "field {b}");
    }
}

// ---------- layer 3: identities ----------

#[test]
fn shifts_move_the_zero_frequency_to_the_centre_and_back() {
    for n in [1usize, 2, 5, 6, 7] {
        let idx: Vec<i64> = (0..n).map(|k| freq_index(k, n)).collect();
        let mut shifted = idx.clone();
        fftshift(&mut shifted);
        assert_eq!(shifted[n / 2], 0, "n = {n}: {shifted:?}");
        assert!(shifted.windows(2).all(|w| w[1] == w[0] + 1), "shifted frequencies ascend: {shifted:?}");
        ifftshift(&mut shifted);
        assert_eq!(shifted, idx);
    }
    assert_eq!(fftfreq(5, 0.5), vec![0.0, 0.4, 0.8, -0.8, -0.4]);
    // 2-D: with r x c = 3 x 4, pixel (0, 0) moves to (1, 2); the inverse undoes it.
    let (r, cc) = (3usize, 4usize);
    let orig: Vec<usize> = (0..r * cc).collect();
    let mut a = orig.clone();
    fftshift2(&mut a, r, cc);
    assert_eq!(a[r / 2 * cc + cc / 2], 0);
    for (p, &v) in a.iter().enumerate() {
        let (i, j) = (p / cc, p % cc);
        assert_eq!(v, ((i + r - r / 2) % r) * cc + (j + cc - cc / 2) % cc);
    }
    ifftshift2(&mut a, r, cc);
    assert_eq!(a, orig);
}

fn power<F: Real>(x: &[Complex<F>]) -> f64 {
    x.iter().map(|z| to_c64(*z).norm_sqr()).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Fast vs naive on random shapes and contents (f64 and f32).
    #[test]
    fn fft2d_random_inputs_match_naive(r in 1usize..20, cc in 1usize..20, seed in any::<u64>()) {
        let x = random_field::<f64>(r * cc, seed);
        let mut fast = x.clone();
        Fft2d::<f64>::new(r, cc).forward(&mut fast);
        let err = rel_l2(&fast, &dft2_naive(&x, r, cc, Direction::Forward));
        prop_assert!(err <= fft_tol(f64::EPSILON, r * cc), "{} x {}: {:e}", r, cc, err);

        let x32 = random_field::<f32>(r * cc, seed);
        let mut fast32 = x32.clone();
        Fft2d::<f32>::new(r, cc).forward(&mut fast32);
        let err32 = rel_l2(&fast32, &dft2_naive(&x32, r, cc, Direction::Forward));
        prop_assert!(err32 <= fft_tol(f32::EPSILON as f64, r * cc), "f32 {} x {}: {:e}", r, cc, err32);
    }

    /// Parseval: sum |X|^2 = rows cols sum |x|^2 (relative 1e-12 in f64).
    #[test]
    fn fft2d_parseval(r in 1usize..40, cc in 1usize..40, seed in any::<u64>()) {
        let x = random_field::<f64>(r * cc, seed);
        let mut spec = x.clone();
        Fft2d::<f64>::new(r, cc).forward(&mut spec);
        let (px, ps) = (power(&x), power(&spec) / (r * cc) as f64);
        prop_assert!((px - ps).abs() <= 1e-12 * px, "{} vs {}", px, ps);
    }

    /// inverse(forward(x)) == x (relative L2 1e-14 in f64, 1e-6 in f32).
    #[test]
    fn fft2d_round_trip(r in 1usize..40, cc in 1usize..40, seed in any::<u64>()) {
        let x = random_field::<f64>(r * cc, seed);
        let plan = Fft2d::<f64>::new(r, cc);
        let mut y = x.clone();
        let mut scratch = plan.make_scratch();
        plan.process_with_scratch(&mut y, &mut scratch, Direction::Forward);
        plan.process_with_scratch(&mut y, &mut scratch, Direction::Inverse);
        prop_assert!(rel_l2(&y, &x) <= 1e-14);

        let x32 = random_field::<f32>(r * cc, seed);
        let plan32 = Fft2d::<f32>::new(r, cc);
        let mut y32 = x32.clone();
        plan32.forward(&mut y32);
        plan32.inverse(&mut y32);
        prop_assert!(rel_l2(&y32, &x32) <= 1e-6);
    }

    /// 1-D round trip and Parseval on random lengths, including large primes.
    #[test]
    fn fft1d_round_trip_and_parseval(n in 1usize..300, seed in any::<u64>()) {
        let x = random_field::<f64>(n, seed);
        let plan = Fft1d::<f64>::new(n);
        let mut y = x.clone();
        plan.forward(&mut y);
        prop_assert!((power(&y) / n as f64 - power(&x)).abs() <= 1e-12 * power(&x));
        plan.inverse(&mut y);
        prop_assert!(rel_l2(&y, &x) <= 1e-14);
    }
}
