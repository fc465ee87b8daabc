//! Tests of the NLSE solver against analytic solutions (soliton, dispersive Gaussian),
//! conservation laws and the order of the scheme, and of the fibre system.

use super::*;
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::Matrix;

type C64 = Complex<f64>;

/// Standard fibre at 1550 nm and a 1 ps soliton: L_D = T0^2 / |beta2| = 0.05 km,
/// P0 = |beta2| / (gamma T0^2) = 15.4 W for N = 1; soliton period z0 = (pi/2) L_D.
const BETA2: f64 = -20.0;
const GAMMA: f64 = 1.3;
const T0: f64 = 1.0;
const L_D: f64 = T0 * T0 / 20.0;

fn smf(gamma: f64, alpha: f64) -> FiberParams {
    FiberParams { beta2_ps2_per_km: BETA2, gamma_per_w_km: gamma, alpha_per_km: alpha }
}

/// 512 samples over 40 T0: dt = 0.078 T0, the sech tails are e^-20 at the edges and its
/// spectrum is ~e^-60 at the Nyquist frequency, so the grid error is far below the tests'.
fn grid() -> TimeGrid {
    TimeGrid { points: 512, window_ps: 40.0 * T0 }
}

fn soliton(order: f64) -> Vec<C64> {
    Pulse { shape: PulseShape::Sech, t0_ps: T0, peak_power_w: order * order * BETA2.abs() / (GAMMA * T0 * T0) }
        .envelope(&grid())
}

fn energy(a: &[C64], dt: f64) -> f64 {
    a.iter().map(|z| z.norm_sqr()).sum::<f64>() * dt
}

fn run(a0: &[C64], params: &FiberParams, length: f64, steps: usize) -> Vec<C64> {
    let mut a = a0.to_vec();
    SplitStep::<f64>::new(params, &grid(), length, steps).unwrap().propagate(&mut a);
    a
}

fn max_abs_diff(a: &[C64], b: &[C64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max)
}

#[test]
fn fundamental_soliton_keeps_its_shape_over_five_periods() {
    let a0 = soliton(1.0);
    let length = 5.0 * PI / 2.0 * L_D;
    // 400 steps over 5 periods (h = L_D / 51): error ~2e-5 (2000 steps: 8e-7).
    let a = run(&a0, &smf(GAMMA, 0.0), length, 400);
    let peak = a0.iter().map(|z| z.norm()).fold(0.0, f64::max);
    let err = a.iter().zip(&a0).map(|(x, y)| (x.norm() - y.norm()).abs()).fold(0.0, f64::max) / peak;
    eprintln!("soliton shape error after 5 z0 with 400 steps: {err:e}");
    assert!(err < 1e-3, "max | |A| - |A0| | / max |A0| = {err:e}");
    // The phase rotates as exp(i z / (2 L_D)) (checked at the peak, sample n/2).
    let c = a.len() / 2;
    let want = C64::from_polar(a0[c].norm(), length / (2.0 * L_D));
    assert!((a[c] - want).norm() < 1e-3 * peak, "{} vs {want}", a[c]);
}

#[test]
fn dispersion_broadens_a_gaussian_as_t0_sqrt_1_plus_z_over_ld_squared() {
    let g = grid();
    let a0 = Pulse { shape: PulseShape::Gaussian, t0_ps: T0, peak_power_w: 1.0 }.envelope(&g);
    // |A|^2 = exp(-T^2 / T1^2) has <T^2> = T1^2 / 2, so the width is T1 = sqrt(2 <T^2>).
    let width = |a: &[C64]| {
        let t = g.times_ps();
        let (m2, p) = a.iter().zip(&t).fold((0.0, 0.0), |(m, p), (z, t)| (m + z.norm_sqr() * t * t, p + z.norm_sqr()));
        (2.0 * m2 / p).sqrt()
    };
    assert!((width(&a0) / T0 - 1.0).abs() < 1e-9);
    for z_over_ld in [0.5, 1.0, 3.0] {
        let a = run(&a0, &smf(0.0, 0.0), z_over_ld * L_D, 10);
        let want = T0 * (1.0 + z_over_ld * z_over_ld).sqrt();
        let got = width(&a);
        assert!((got / want - 1.0).abs() < 0.01, "z = {z_over_ld} L_D: width {got} vs {want}");
        // Dispersion alone is solved exactly by the scheme: much better than 1 %.
        assert!((got / want - 1.0).abs() < 1e-8, "z = {z_over_ld} L_D: width {got} vs {want}");
    }
}

#[test]
fn energy_is_conserved_without_loss_and_decays_as_exp_minus_alpha_z_with_it() {
    let g = grid();
    let a0 = soliton(2.3);
    let e0 = energy(&a0, g.dt_ps());
    let a = run(&a0, &smf(GAMMA, 0.0), 2.0 * L_D, 300);
    let e = energy(&a, g.dt_ps());
    assert!((e / e0 - 1.0).abs() < 1e-10, "energy ratio {}", e / e0);
    let alpha = 4.6; // 20 dB/km: visible over 0.1 km
    let a = run(&a0, &smf(GAMMA, alpha), 2.0 * L_D, 300);
    let e = energy(&a, g.dt_ps());
    let want = e0 * (-alpha * 2.0 * L_D).exp();
    assert!((e / want - 1.0).abs() < 1e-10, "lossy energy {e} vs {want}");
}

#[test]
fn halving_the_step_divides_the_error_by_about_four() {
    // A second-order soliton over half a period (strong nonlinear reshaping), compared with a
    // reference computed with 64 times smaller steps.
    let a0 = soliton(2.0);
    let length = PI / 4.0 * L_D;
    let p = smf(GAMMA, 0.0);
    let reference = run(&a0, &p, length, 64 * 64);
    let e1 = max_abs_diff(&run(&a0, &p, length, 64), &reference);
    let e2 = max_abs_diff(&run(&a0, &p, length, 128), &reference);
    let e3 = max_abs_diff(&run(&a0, &p, length, 256), &reference);
    eprintln!("errors {e1:e} {e2:e} {e3:e}, ratios {} {}", e1 / e2, e2 / e3);
    assert!((3.0..=5.0).contains(&(e1 / e2)), "ratio {} ({e1:e} / {e2:e})", e1 / e2);
    assert!((3.0..=5.0).contains(&(e2 / e3)), "ratio {} ({e2:e} / {e3:e})", e2 / e3);
}

/// Long: a third-order soliton returns to its launch shape after one soliton period.
/// Run with `PHYFF_LONG_TESTS=1`.
#[test]
fn third_order_soliton_is_periodic_long() {
    if std::env::var("PHYFF_LONG_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set PHYFF_LONG_TESTS=1");
        return;
    }
    let a0 = soliton(3.0);
    let a = run(&a0, &smf(GAMMA, 0.0), PI / 2.0 * L_D, 40_000);
    let peak = a0.iter().map(|z| z.norm()).fold(0.0, f64::max);
    let err = a.iter().zip(&a0).map(|(x, y)| (x.norm() - y.norm()).abs()).fold(0.0, f64::max) / peak;
    assert!(err < 1e-3, "N = 3 after z0: shape error {err:e}");
}

#[test]
fn optical_frequency_order_puts_the_carrier_in_the_middle() {
    // freq_index of bins 0..6: 0 1 2 -3 -2 -1; optical offset -freq_index: 0 -1 -2 3 2 1, the
    // Nyquist bin 3 being +-3. It comes first, so the carrier (bin 0) is at position n/2 = 3.
    let order = optical_frequency_order(6);
    assert_eq!(order, vec![3, 2, 1, 0, 5, 4]);
    assert_eq!(order[3], 0);
    // Odd n: offsets -2..=2, carrier at position 2.
    assert_eq!(optical_frequency_order(5), vec![2, 1, 0, 4, 3]);
    for n in 2..40 {
        let order = optical_frequency_order(n);
        assert_eq!(order[n / 2], 0, "n = {n}");
        for (pos, &k) in order.iter().enumerate() {
            let o = pos as i64 - (n / 2) as i64;
            assert!(optical_offset(k, n) == o || optical_offset(k, n) == -o && 2 * o == -(n as i64), "n = {n}");
        }
    }
}

#[test]
fn band_pixels_are_centred_on_the_carrier_and_share_boundary_bins() {
    let share = |bin, group, weight| BandShare { bin, group, weight };
    // 8 bins: offsets 0 -1 -2 -3 +-4 3 2 1 (bins 0..8). A band of 4 spacings, [-2, 2], in 2
    // pixels [-2, 0] and [0, 2]: offsets -2 and 2 are on the band edge (half inside), the
    // carrier on the pixel boundary (half in each).
    assert_eq!(
        band_groups(8, 4, 2),
        vec![
            share(0, 0, 0.5),
            share(0, 1, 0.5),
            share(1, 0, 1.0),
            share(2, 0, 0.5),
            share(6, 1, 0.5),
            share(7, 1, 1.0)
        ]
    );
    // An odd band of 5 spacings in 1 pixel: offsets -2..=2 whole.
    let mut bins: Vec<usize> = band_groups(8, 5, 1).iter().map(|s| s.bin).collect();
    bins.sort();
    assert_eq!(bins, vec![0, 1, 2, 6, 7]);
    // The whole spectrum: the Nyquist bin counts half at each end, every bin once in total.
    for (n, g) in [(8, 2), (8, 3), (9, 4), (256, 20)] {
        let mut total = vec![0.0; n];
        for s in band_groups(n, n, g) {
            total[s.bin] += s.weight;
        }
        assert!(total.iter().all(|&w| w == 1.0), "n = {n}, {g} groups: {total:?}");
    }
    // Every pixel has the same width bins / groups, and the band is mirror-symmetric: bin of
    // offset o in pixel g with weight w <=> bin of offset -o in pixel G-1-g with weight w.
    for (n, bins, groups) in [(256, 160, 20), (256, 41, 20), (256, 161, 20), (64, 33, 7), (64, 30, 4)] {
        let shares = band_groups(n, bins, groups);
        let mut width = vec![0.0; groups];
        for s in &shares {
            width[s.group] += s.weight;
        }
        let want = bins as f64 / groups as f64;
        // A pixel holds the bins whose centres it covers: within one bin of its width.
        assert!(width.iter().all(|&w| (w - want).abs() <= 1.0), "{bins}/{groups}: {width:?}");
        assert_eq!(width.iter().sum::<f64>(), bins as f64);
        let key = |o: i64, g: usize, w: f64| (o, g, (w * 2.0) as i64);
        let mut direct: Vec<_> = shares.iter().map(|s| key(optical_offset(s.bin, n), s.group, s.weight)).collect();
        let mut mirror: Vec<_> =
            shares.iter().map(|s| key(-optical_offset(s.bin, n), groups - 1 - s.group, s.weight)).collect();
        direct.sort();
        mirror.sort();
        assert_eq!(direct, mirror, "{bins} bins in {groups} pixels");
    }
}

#[test]
fn system_outputs_the_energy_spectrum() {
    // Reading every bin, the outputs sum to the launched energy sum |A_j|^2 dt (the fibre is
    // lossless). Unshaped, that is 2 P0 T0 for a sech pulse, up to the sampling error of the
    // sum: by Poisson summation, relative pi w / sinh(pi w / 2) with w = 2 pi T0 / dt >= 4 pi,
    // i.e. below 2e-7.
    let d = FiberConfig::default();
    let n = d.grid.points;
    let cfg = FiberConfig { output_bins: n, ..d };
    let e_sech = energy(&cfg.pulse.envelope(&cfg.grid), cfg.grid.dt_ps());
    let e_exact = 2.0 * cfg.pulse.peak_power_w * cfg.pulse.t0_ps;
    assert!((e_sech / e_exact - 1.0).abs() < 1e-6, "{e_sech} vs {e_exact}");
    let mut sys = FiberSystem::<f64>::new(cfg.clone()).unwrap();
    let x = Matrix::from_fn(3, 20, |r, c| if r == 2 { 0.0 } else { ((r + 3 * c) % 5) as f64 / 4.0 });
    let y = sys.forward(x.view()).unwrap();
    for r in 0..3 {
        // Phase encoding keeps every bin's amplitude but the carrier's, which the two middle
        // pixels share (it passes the mean of their phase factors).
        let e_launch = energy(&sys.launched_envelope(x.row(r)), cfg.grid.dt_ps());
        let total: f64 = y.row(r).iter().sum();
        assert!((total / e_launch - 1.0).abs() < 1e-9, "row {r}: {total} pJ vs {e_launch} pJ");
        if x.get(r, 9) == x.get(r, 10) {
            assert!((e_launch / e_sech - 1.0).abs() < 1e-12, "row {r}: {e_launch} vs {e_sech}");
        }
    }
    // Phase encoding has period 2 (2 pi): inputs x and x + 2 give the same spectrum.
    let x2 = Matrix::from_fn(3, 20, |r, c| x.get(r, c) + 2.0);
    let y2 = sys.forward(x2.view()).unwrap();
    for (a, b) in y.data().iter().zip(y2.data()) {
        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // The encoding matters: a different input gives a different spectrum.
    assert!(y.row(0).iter().zip(y.row(1)).any(|(a, b)| (a - b).abs() > 1e-3 * a.abs()));
}

#[test]
fn amplitude_encoding_scales_the_band() {
    let d = FiberConfig::default();
    let n = d.grid.points;
    let cfg = FiberConfig { encoding: SpectralEncoding::Amplitude, encoded_bins: n, ..d };
    let sys = FiberSystem::<f64>::new(cfg.clone()).unwrap();
    // All ones launches the unshaped pulse; all zeros launches nothing.
    let ones = sys.launched_envelope(&[1.0; 20]);
    let want = cfg.pulse.envelope(&cfg.grid);
    assert!(max_abs_diff(&ones, &want) < 1e-9 * want[n / 2].norm());
    assert!(sys.launched_envelope(&[0.0; 20]).iter().all(|z| z.norm() == 0.0));
}

#[test]
fn conformance_f32_and_f64() {
    let quick = FiberConfig { steps: 20, ..FiberConfig::default() };
    check_conformance::<f64, _, _>(|| FiberSystem::<f64>::new(quick.clone()).unwrap(), &Conformance::default());
    let sqrt = FiberConfig { output_sqrt: true, ..quick };
    let big = Conformance { batch: 3 * ROWS_PER_JOB + 1, ..Conformance::default() };
    check_conformance::<f32, _, _>(|| FiberSystem::<f32>::new(sqrt.clone()).unwrap(), &big);
}

#[test]
fn bad_configs_name_the_field() {
    let d = FiberConfig::default();
    let msg = |c: FiberConfig| c.validate().unwrap_err().to_string();
    let m = msg(FiberConfig { steps: 0, ..d.clone() });
    assert!(m.contains("fiber.steps"), "{m}");
    let m = msg(FiberConfig { encoded_bins: 10, ..d.clone() });
    assert!(m.contains("fiber.encoded_bins") && m.contains("got 10"), "{m}");
    let n = d.grid.points;
    let m = msg(FiberConfig { output_bins: n + 1, ..d.clone() });
    assert!(m.contains("fiber.output_bins") && m.contains(&n.to_string()), "{m}");
    let m = msg(FiberConfig { params: FiberParams { alpha_per_km: -1.0, ..d.params.clone() }, ..d.clone() });
    assert!(m.contains("alpha_per_km") && m.contains("-1"), "{m}");
    let m = msg(FiberConfig { pulse: Pulse { t0_ps: 1.5 * d.grid.dt_ps(), ..d.pulse.clone() }, ..d.clone() });
    assert!(m.contains("fiber.pulse.t0_ps") && m.contains("dt"), "{m}");
    let m = msg(FiberConfig { length_km: f64::NAN, ..d.clone() });
    assert!(m.contains("fiber.length_km"), "{m}");
}

/// Throughput; run with `cargo test -p ff-physics --release fiber_speed -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn fiber_speed() {
    let mut sys = FiberSystem::<f32>::new(FiberConfig::default()).unwrap();
    let x = Matrix::<f32>::from_fn(256, 20, |r, c| ((r + c) % 10) as f32 / 10.0);
    let t0 = std::time::Instant::now();
    std::hint::black_box(sys.forward(x.view()).unwrap());
    eprintln!("fibre default f32, batch 256: {:.0} rows/s", 256.0 / t0.elapsed().as_secs_f64());
}

/// `max_g |y_g - y_{G-1-g}| / max_g |y_g|` over the rows of `y`.
fn mirror_asymmetry(y: &Matrix<f64>) -> f64 {
    let mut worst: f64 = 0.0;
    for r in 0..y.rows() {
        let row = y.row(r);
        let scale = row.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let g = row.len();
        for i in 0..g {
            worst = worst.max((row[i] - row[g - 1 - i]).abs() / scale);
        }
    }
    worst
}

#[test]
fn a_symmetric_spectrum_gives_mirror_symmetric_groups() {
    // The launched sech is even in T (sample n/2 is T = 0), so its spectrum is even about the
    // carrier; a mirror-symmetric input (x_g = x_{G-1-g}) keeps it even, and the NLSE keeps an
    // even pulse even. With the encoded and the read-out bands centred on the carrier, group g
    // and its mirror G-1-g then hold the same energy, to rounding (1e-12 of the largest group).
    // A band one bin off centre breaks this by several per cent.
    let symmetric = Matrix::from_fn(3, 20, |r, c| {
        let m = c.min(19 - c) as f64;
        [0.0, 0.1 * m, ((3.0 * m + r as f64) % 7.0) / 7.0][r]
    });
    let linear = FiberConfig {
        params: FiberParams { gamma_per_w_km: 0.0, ..FiberConfig::default().params },
        ..FiberConfig::default()
    };
    for (name, cfg) in [("nonlinear", FiberConfig::default()), ("linear", linear)] {
        for encoding in [SpectralEncoding::Phase, SpectralEncoding::Amplitude] {
            let mut sys = FiberSystem::<f64>::new(FiberConfig { encoding, ..cfg.clone() }).unwrap();
            let y = sys.forward(symmetric.view()).unwrap();
            let a = mirror_asymmetry(&y);
            assert!(a < 1e-12, "{name} fibre, {encoding:?} encoding: mirror groups differ by {a:e} of the largest");
        }
    }
}

/// Inputs of the grid tests: the unshaped launch (phase 0: the strongest pulse), then seeded
/// phases in [0, 0.5) and in [0, 2).
fn grid_test_inputs() -> Matrix<f64> {
    let mut rng = ff_core::rng::rng_for(19, "fibre grid test inputs");
    let v: Vec<f64> = (0..6 * 20).map(|_| rand::Rng::random::<f64>(&mut rng)).collect();
    Matrix::from_fn(6, 20, |r, c| match r {
        0 => 0.0,
        1..=2 => 0.5 * v[r * 20 + c],
        _ => 2.0 * v[r * 20 + c],
    })
}

#[test]
fn default_grid_is_converged() {
    // Four times more points over the same window (dt / 4, a band 4x wider, the same bins in
    // the encoded and read-out bands) changes the default outputs by less than 1e-3, relative,
    // in the Frobenius norm over a batch (measured 6.5e-6; the 256-point grid was 0.115, its
    // N = 2 soliton spectrum folding back from the band edge at mid-fibre). The window is the
    // model's comb period (see the module docs), so it is kept.
    let d = FiberConfig::default();
    let fine = FiberConfig { grid: TimeGrid { points: 4 * d.grid.points, ..d.grid.clone() }, ..d.clone() };
    let x = grid_test_inputs();
    let y = FiberSystem::<f64>::new(d).unwrap().forward(x.view()).unwrap();
    let y_fine = FiberSystem::<f64>::new(fine).unwrap().forward(x.view()).unwrap();
    let diff: f64 = y.data().iter().zip(y_fine.data()).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = y_fine.data().iter().map(|b| b * b).sum::<f64>().sqrt();
    eprintln!("default grid vs 4x points: relative Frobenius difference {:e}", diff / norm);
    assert!(diff < 1e-3 * norm, "relative difference {:e}", diff / norm);
}

#[test]
fn a_grid_too_coarse_for_the_spectrum_is_refused() {
    // The former default, 256 points over 12.8 ps: mid-fibre, the N = 2 soliton holds 2e-2 of
    // its energy in the outer tenth of the band (its output spectrum only 2e-5).
    let d = FiberConfig::default();
    let coarse = FiberConfig { grid: TimeGrid { points: 256, window_ps: 12.8 }, ..d.clone() };
    let err = coarse.validate().unwrap_err();
    let CoreError::Config { field, message } = &err else { panic!("expected a config error, got {err:?}") };
    assert_eq!(field, "fiber.grid.points", "{err}");
    for part in ["window_ps", "outer tenth", "more points"] {
        assert!(message.contains(part), "{part:?} missing from: {err}");
    }
    assert!(FiberSystem::<f64>::new(coarse.clone()).is_err());
    // The same pulse at a tenth of the power broadens far less: accepted on the coarse grid.
    let weak = FiberConfig { pulse: Pulse { peak_power_w: 0.1 * d.pulse.peak_power_w, ..d.pulse.clone() }, ..coarse };
    weak.validate().unwrap();
}
