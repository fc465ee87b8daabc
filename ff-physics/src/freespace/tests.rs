//! Tests of free-space propagation (analytic beams and plane waves, power, composition) and
//! of the diffractive system.

use super::*;
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::Matrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type C64 = Complex<f64>;

fn power(f: &[C64]) -> f64 {
    f.iter().map(|z| z.norm_sqr()).sum()
}

fn rel_l2(a: &[C64], b: &[C64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    (num / power(b)).sqrt()
}

/// The beam of the tests: w0 = 50 um at 1 um wavelength (Rayleigh range
/// zR = pi w0^2 / lambda = 7.85 mm, far-field half-angle 6.4 mrad: paraxial), sampled at
/// 5 um (10 pixels per w0) on 256 x 256 (1.28 mm window), padded x2.
const W0: f64 = 50e-6;
const LAMBDA: f64 = 1e-6;

fn beam_grid(padding_factor: usize) -> OpticalGrid {
    OpticalGrid { n: 256, dx_m: 5e-6, wavelength_m: LAMBDA, padding_factor }
}

/// `E = exp(-r^2 / w0^2)` centred on pixel (n/2, n/2): intensity `exp(-2 r^2 / w0^2)`.
fn gaussian(grid: &OpticalGrid) -> Vec<C64> {
    let n = grid.n;
    (0..n * n)
        .map(|p| {
            let (y, x) = (((p / n) as f64 - (n / 2) as f64) * grid.dx_m, ((p % n) as f64 - (n / 2) as f64) * grid.dx_m);
            C64::new((-(x * x + y * y) / (W0 * W0)).exp(), 0.0)
        })
        .collect()
}

/// The 1/e^2 intensity radius from the second moment. For `I ~ exp(-2 r^2 / w^2)`,
/// `<x^2> = <y^2> = w^2 / 4`, so `<r^2> = w^2 / 2` and `w = sqrt(2 <r^2>) = 2 sqrt(<x^2>)`.
fn second_moment_radius(field: &[C64], grid: &OpticalGrid) -> f64 {
    let n = grid.n;
    let (mut m2, mut p) = (0.0, 0.0);
    for (i, z) in field.iter().enumerate() {
        let (y, x) = (((i / n) as f64 - (n / 2) as f64) * grid.dx_m, ((i % n) as f64 - (n / 2) as f64) * grid.dx_m);
        m2 += z.norm_sqr() * (x * x + y * y);
        p += z.norm_sqr();
    }
    (2.0 * m2 / p).sqrt()
}

#[test]
fn gaussian_beam_spreads_as_w0_sqrt_1_plus_z_over_zr_squared() {
    let grid = beam_grid(2);
    let z_r = PI * W0 * W0 / LAMBDA;
    let e0 = gaussian(&grid);
    let w_start = second_moment_radius(&e0, &grid);
    assert!((w_start / W0 - 1.0).abs() < 1e-6, "sampled beam radius {w_start}");
    for z in [0.5 * z_r, z_r, 2.0 * z_r] {
        let mut e = e0.clone();
        AngularSpectrum::<f64>::new(&grid, z).unwrap().propagate(&mut e);
        let w = second_moment_radius(&e, &grid);
        let want = W0 * (1.0 + (z / z_r).powi(2)).sqrt();
        // Spec: 1 %. The non-paraxial correction is of order (lambda / pi w0)^2 ~ 4e-5.
        assert!((w / want - 1.0).abs() < 0.01, "z = {z}: w = {w}, paraxial {want}");
        assert!((w / want - 1.0).abs() < 1e-3, "z = {z}: w = {w}, paraxial {want}");
        // The beam stays well inside the window, so no power is lost to the aperture.
        assert!((power(&e) / power(&e0) - 1.0).abs() < 1e-6, "power ratio {}", power(&e) / power(&e0));
    }
}

#[test]
fn plane_waves_gain_phase_and_evanescent_waves_decay() {
    // Periodic 16 x 16 grid of 0.3 um pixels at 1 um: frequencies up to 1.67 / um, so the
    // window holds evanescent components (|f| > 1 / lambda = 1 / um).
    let grid = OpticalGrid { n: 16, dx_m: 0.3e-6, wavelength_m: LAMBDA, padding_factor: 1 };
    let z = 0.7e-6;
    let k = 2.0 * PI / LAMBDA;
    let l = grid.n as f64 * grid.dx_m;
    for (mx, my) in [(2i64, 1i64), (5, 3), (-4, 0)] {
        let (kx, ky) = (2.0 * PI * mx as f64 / l, 2.0 * PI * my as f64 / l);
        let wave: Vec<C64> = (0..256)
            .map(|p| {
                let (y, x) = ((p / 16) as f64 * grid.dx_m, (p % 16) as f64 * grid.dx_m);
                C64::from_polar(1.0, kx * x + ky * y)
            })
            .collect();
        let mut e = wave.clone();
        AngularSpectrum::<f64>::new(&grid, z).unwrap().propagate(&mut e);
        let d = k * k - kx * kx - ky * ky;
        let h = if d >= 0.0 { C64::from_polar(1.0, z * d.sqrt()) } else { C64::new((-z * (-d).sqrt()).exp(), 0.0) };
        let want: Vec<C64> = wave.iter().map(|w| w * h).collect();
        assert!(rel_l2(&e, &want) < 1e-12, "mode ({mx}, {my}): H = {h}, err {:e}", rel_l2(&e, &want));
        if d < 0.0 {
            assert!(h.re < 0.5, "(5, 3) is evanescent and decays: {h}");
        }
    }
}

fn random_field(n: usize, seed: u64) -> Vec<C64> {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * n).map(|_| C64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5)).collect()
}

#[test]
fn power_is_conserved_without_evanescent_content() {
    // 1 um pixels at 500 nm: the whole window is propagating (|f| <= 0.71 / um < 2 / um).
    let grid = OpticalGrid { n: 32, dx_m: 1e-6, wavelength_m: 0.5e-6, padding_factor: 1 };
    let e0 = random_field(32, 3);
    let mut e = e0.clone();
    AngularSpectrum::<f64>::new(&grid, 40e-6).unwrap().propagate(&mut e);
    let ratio = power(&e) / power(&e0);
    assert!((ratio - 1.0).abs() < 1e-6, "power ratio {ratio}");
    assert!(rel_l2(&e, &e0) > 0.1, "the field did change");
}

#[test]
fn propagating_z1_then_z2_equals_z1_plus_z2() {
    // Periodic: exact up to rounding, for any content (evanescent included).
    let grid = OpticalGrid { n: 24, dx_m: 0.4e-6, wavelength_m: 1e-6, padding_factor: 1 };
    let e0 = random_field(24, 8);
    let (z1, z2) = (3e-6, 5.5e-6);
    let mut two = e0.clone();
    AngularSpectrum::<f64>::new(&grid, z1).unwrap().propagate(&mut two);
    AngularSpectrum::<f64>::new(&grid, z2).unwrap().propagate(&mut two);
    let mut one = e0.clone();
    AngularSpectrum::<f64>::new(&grid, z1 + z2).unwrap().propagate(&mut one);
    assert!(rel_l2(&two, &one) < 1e-12, "periodic: {:e}", rel_l2(&two, &one));
    // Padded: the crop between the steps loses only the beam's negligible tails.
    let grid = beam_grid(2);
    let z_r = PI * W0 * W0 / LAMBDA;
    let e0 = gaussian(&grid);
    let mut two = e0.clone();
    AngularSpectrum::<f64>::new(&grid, 0.3 * z_r).unwrap().propagate(&mut two);
    AngularSpectrum::<f64>::new(&grid, 0.9 * z_r).unwrap().propagate(&mut two);
    let mut one = e0;
    AngularSpectrum::<f64>::new(&grid, 1.2 * z_r).unwrap().propagate(&mut one);
    assert!(rel_l2(&two, &one) < 1e-9, "padded: {:e}", rel_l2(&two, &one));
}

#[test]
fn f32_propagation_tracks_f64() {
    let grid = beam_grid(2);
    let e0 = gaussian(&grid);
    let mut e64 = e0.clone();
    AngularSpectrum::<f64>::new(&grid, 5e-3).unwrap().propagate(&mut e64);
    let mut e32: Vec<Complex<f32>> = e0.iter().map(|z| Complex::new(z.re as f32, z.im as f32)).collect();
    AngularSpectrum::<f32>::new(&grid, 5e-3).unwrap().propagate(&mut e32);
    let back: Vec<C64> = e32.iter().map(|z| C64::new(z.re as f64, z.im as f64)).collect();
    // f32 rounding through two 512^2 FFTs: ~1e-6 relative; tolerance 1e-5.
    assert!(rel_l2(&back, &e64) < 1e-5, "{:e}", rel_l2(&back, &e64));
}

#[test]
fn distances_of_zero_image_the_slm_onto_the_camera() {
    // With every distance 0 the field reaches the camera unchanged, and zero-phase masks do
    // nothing: the output is the binned |SLM field|^2.
    let n = 8;
    let cfg = FreeSpaceConfig {
        grid: OpticalGrid { n, dx_m: 4e-6, wavelength_m: 1e-6, padding_factor: 2 },
        input_shape: (4, 4),
        placement: Placement::Upsample { factor: 2 },
        encoding: Encoding::Amplitude,
        masks: PhaseMasks::Custom { phases_rad: vec![vec![0.0; n * n]] },
        distances_m: vec![0.0, 0.0],
        detection: Detection::Intensity,
        output_shape: (4, 4),
        seed: 0,
    };
    let mut sys = FreeSpaceSystem::<f64>::new(cfg).unwrap();
    let x = Matrix::from_fn(2, 16, |r, c| (r * 16 + c) as f64 / 32.0);
    let y = sys.forward(x.view()).unwrap();
    for (a, b) in y.data().iter().zip(x.data()) {
        // Each output bin is a 2 x 2 block of one input pixel: 4 v^2.
        assert!((a - 4.0 * b * b).abs() < 1e-12, "{a} vs {}", 4.0 * b * b);
    }
}

#[test]
fn random_masks_have_the_feature_size_and_depend_on_the_seed() {
    let cfg = FreeSpaceConfig { masks: PhaseMasks::Random { planes: 2, feature_px: 4 }, ..FreeSpaceConfig::default() };
    let a = FreeSpaceSystem::<f64>::new(cfg.clone()).unwrap();
    let n = 64;
    for mask in &a.masks {
        for p in 0..n * n {
            let base = (p / n / 4 * 4) * n + (p % n) / 4 * 4;
            assert_eq!(mask[p], mask[base], "constant over 4 x 4 blocks");
        }
    }
    assert_ne!(a.masks[0], a.masks[1], "planes differ");
    let b = FreeSpaceSystem::<f64>::new(FreeSpaceConfig { seed: 1, ..cfg }).unwrap();
    assert_ne!(a.masks[0], b.masks[0], "seeds differ");
    let x = Matrix::from_fn(1, 256, |_, c| (c % 7) as f64 / 7.0);
    let (mut a, mut b) = (a, b);
    assert_ne!(a.forward(x.view()).unwrap(), b.forward(x.view()).unwrap());
}

#[test]
fn conformance_f32_and_f64() {
    check_conformance::<f32, _, _>(
        || FreeSpaceSystem::<f32>::new(FreeSpaceConfig::default()).unwrap(),
        &Conformance::default(),
    );
    let small = FreeSpaceConfig {
        grid: OpticalGrid { n: 32, ..FreeSpaceConfig::default().grid },
        input_shape: (8, 8),
        encoding: Encoding::Amplitude,
        detection: Detection::Amplitude,
        output_shape: (8, 8),
        ..FreeSpaceConfig::default()
    };
    // A batch larger than one rayon job exercises the parallel path.
    let big = Conformance { batch: 3 * ROWS_PER_JOB + 1, ..Conformance::default() };
    check_conformance::<f64, _, _>(|| FreeSpaceSystem::<f64>::new(small.clone()).unwrap(), &big);
}

#[test]
fn bad_configs_name_the_field() {
    let msg = |c: FreeSpaceConfig| c.validate().unwrap_err().to_string();
    let d = FreeSpaceConfig::default();
    let m = msg(FreeSpaceConfig { distances_m: vec![1e-3], ..d.clone() });
    assert!(m.contains("freespace.distances_m") && m.contains("3 distances"), "{m}");
    let m = msg(FreeSpaceConfig { distances_m: vec![1e-3, 1.0, 1e-3], ..d.clone() });
    assert!(m.contains("alias-free") && m.contains("padding_factor"), "{m}");
    let m = msg(FreeSpaceConfig { distances_m: vec![1e-3, -1e-3, 1e-3], ..d.clone() });
    assert!(m.contains("distance 1"), "{m}");
    let m = msg(FreeSpaceConfig { output_shape: (10, 16), ..d.clone() });
    assert!(m.contains("freespace.output_shape"), "{m}");
    let m = msg(FreeSpaceConfig {
        masks: PhaseMasks::Custom { phases_rad: vec![vec![0.0; 5]] },
        distances_m: vec![0.0; 2],
        ..d.clone()
    });
    assert!(m.contains("plane 0 has 5 phases"), "{m}");
    let m = msg(FreeSpaceConfig { grid: OpticalGrid { wavelength_m: -1.0, ..d.grid.clone() }, ..d.clone() });
    assert!(m.contains("freespace.grid.wavelength_m") && m.contains("-1"), "{m}");
    assert!(AngularSpectrum::<f64>::new(&d.grid, f64::NAN).is_err());
    // The alias-free limit of the default grid: 128 * (8 um)^2 / 800 nm * sqrt(1 - 0.05^2).
    let z = d.grid.max_alias_free_distance_m().unwrap();
    assert!((z - 10.24e-3 * (1.0f64 - 0.0025).sqrt()).abs() < 1e-12, "{z}");
    assert_eq!(OpticalGrid { dx_m: 0.4e-6, ..d.grid }.max_alias_free_distance_m(), None);
}

/// Throughput; run with `cargo test -p ff-physics --release freespace_speed -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn freespace_speed() {
    let mut sys = FreeSpaceSystem::<f32>::new(FreeSpaceConfig::default()).unwrap();
    let x = Matrix::<f32>::from_fn(256, 256, |r, c| ((r + c) % 10) as f32 / 10.0);
    let t0 = std::time::Instant::now();
    std::hint::black_box(sys.forward(x.view()).unwrap());
    eprintln!("free space default f32, batch 256: {:.0} rows/s", 256.0 / t0.elapsed().as_secs_f64());
}
