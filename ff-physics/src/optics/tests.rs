//! Tests of the optical system: pupils and layout by hand, the fast pipeline against a slow
//! reference built from the naive DFT, power conservation, conformance and determinism.

use super::*;
use crate::fft::{dft2_naive, fftshift2, ifftshift2};
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_input<F: FftReal>(rows: usize, cols: usize, seed: u64) -> Matrix<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| F::c(rng.random::<f64>()))
}

fn small_config() -> OpticsConfig {
    OpticsConfig {
        field_size: 8,
        input_shape: (3, 5),
        placement: Placement::Tile,
        encoding: Encoding::Amplitude,
        input_pupil_radius_px: 2.5,
        output_pupil_radius_px: 1.5,
        medium: MediumKind::Gaussian,
        detection: Detection::Amplitude,
        pooling: Pooling { kernel: 3, stride: 2, padding: 1 },
        seed: 4,
    }
}

#[test]
fn pupil_mode_counts() {
    // Gauss circle counts: r = 0 -> 1, r = 1 -> 5, r = sqrt 2 -> 9, r = 2 -> 13.
    assert_eq!(pupil_mode_count(32, 0.0), 1);
    assert_eq!(pupil_mode_count(32, 1.0), 5);
    assert_eq!(pupil_mode_count(32, 2f64.sqrt()), 9);
    assert_eq!(pupil_mode_count(32, 2.0), 13);
    // The feasibility setup: radius 9.66 px on 32 x 32 passes 293 modes (any radius in
    // [sqrt 90, sqrt 97) = [9.487, 9.849) does).
    assert_eq!(pupil_mode_count(32, 9.66), 293);
    assert_eq!(OpticsConfig::default().input_modes(), 293);
    // Fully open: the farthest pixel from (16, 16) is (0, 0) at 16 sqrt 2.
    assert_eq!(pupil_mode_count(32, 16.0 * 2f64.sqrt()), 1024);
    assert_eq!(pupil_mode_count(51, 51.0), 51 * 51);
}

#[test]
fn pupil_indices_agree_with_an_explicit_fftshift() {
    // Mark each unshifted pixel with its own index, shift, and read the centred disc.
    for n in [7usize, 8] {
        let mut marks: Vec<usize> = (0..n * n).collect();
        fftshift2(&mut marks, n, n);
        let c = (n / 2) as f64;
        let want: Vec<usize> = (0..n * n)
            .filter(|p| {
                let (di, dj) = ((p / n) as f64 - c, (p % n) as f64 - c);
                di * di + dj * dj <= 2.3 * 2.3
            })
            .map(|p| marks[p])
            .collect();
        assert_eq!(pupil_indices(n, 2.3), want, "n = {n}");
        assert_eq!(pupil_indices(n, 0.0), vec![0], "the zero radius keeps only DC");
    }
}

/// The model written out literally: naive 2-D DFT, explicit shifts, a loop for `T x`.
fn reference_forward(cfg: &OpticsConfig, x: &[f64]) -> (Vec<Complex<f64>>, Vec<f64>) {
    let n = cfg.field_size;
    let slm = SlmMap::new(cfg.placement, cfg.input_shape, (n, n), "t").unwrap();
    let mut field = vec![Complex::new(0.0, 0.0); n * n];
    slm.encode(x, cfg.encoding, &mut field);
    let mut spec = dft2_naive(&field, n, n, Direction::Forward);
    fftshift2(&mut spec, n, n);
    let c = (n / 2) as f64;
    let inside = |p: usize, r: f64| {
        let (di, dj) = ((p / n) as f64 - c, (p % n) as f64 - c);
        di * di + dj * dj <= r * r
    };
    let pin: Vec<usize> = (0..n * n).filter(|&p| inside(p, cfg.input_pupil_radius_px)).collect();
    let pout: Vec<usize> = (0..n * n).filter(|&p| inside(p, cfg.output_pupil_radius_px)).collect();
    let t = draw_transmission(cfg.medium, pout.len(), pin.len(), cfg.seed);
    let mut out_spec = vec![Complex::new(0.0, 0.0); n * n];
    for (o, &po) in pout.iter().enumerate() {
        out_spec[po] = pin.iter().enumerate().map(|(i, &pi)| t[o * pin.len() + i] * spec[pi]).sum();
    }
    ifftshift2(&mut out_spec, n, n);
    let cam = dft2_naive(&out_spec, n, n, Direction::Inverse);
    let det: Vec<f64> = cam.iter().map(|&e| cfg.detection.apply(e)).collect();
    let side = cfg.output_side();
    let mut pooled = vec![0.0; side * side];
    cfg.pooling.apply(&det, n, n, &mut pooled);
    (cam, pooled)
}

#[test]
fn fast_pipeline_matches_the_literal_reference() {
    let mut configs = vec![small_config()];
    configs.push(OpticsConfig {
        field_size: 7,
        input_shape: (2, 2),
        placement: Placement::Upsample { factor: 3 },
        encoding: Encoding::Phase,
        input_pupil_radius_px: 2.0,
        output_pupil_radius_px: 2.0,
        medium: MediumKind::Unitary,
        detection: Detection::Intensity,
        pooling: Pooling::NONE,
        seed: 9,
    });
    configs.push(OpticsConfig { input_shape: (4, 4), placement: Placement::Center, ..small_config() });
    for cfg in configs {
        let sys = OpticsSystem::<f64>::new(cfg.clone()).unwrap();
        let x = random_input::<f64>(3, sys.input_len(), 17);
        let mut fast = sys.camera_field(x.view()).unwrap();
        let mut sys = sys;
        let y = sys.forward(x.view()).unwrap();
        let n2 = cfg.field_size * cfg.field_size;
        for r in 0..3 {
            let (cam, pooled) = reference_forward(&cfg, x.row(r));
            let f = &mut fast[r * n2..(r + 1) * n2];
            let scale = cam.iter().map(|z| z.norm()).fold(0.0, f64::max);
            for (a, b) in f.iter().zip(&cam) {
                // Small sizes: the FFT and the naive DFT agree to ~1e-15 relative; 1e-12.
                assert!((a - b).norm() <= 1e-12 * scale, "{cfg:?}: field {a} vs {b}");
            }
            for (a, b) in y.row(r).iter().zip(&pooled) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{cfg:?}: output {a} vs {b}");
            }
        }
    }
}

fn open_lossless(n: usize, seed: u64) -> OpticsConfig {
    OpticsConfig {
        field_size: n,
        input_shape: (5, 3),
        input_pupil_radius_px: n as f64,
        output_pupil_radius_px: n as f64,
        medium: MediumKind::Unitary,
        detection: Detection::Intensity,
        pooling: Pooling::NONE,
        seed,
        ..OpticsConfig::default()
    }
}

fn check_power_conservation<F: FftReal>(tol: f64) {
    let cfg = open_lossless(12, 2);
    let mut sys = OpticsSystem::<F>::new(cfg.clone()).unwrap();
    assert_eq!(sys.medium().m_in(), 144, "all N^2 modes pass");
    let x = random_input::<F>(4, sys.input_len(), 5);
    let y = sys.forward(x.view()).unwrap();
    let fields = sys.camera_field(x.view()).unwrap();
    let slm = SlmMap::new(cfg.placement, cfg.input_shape, (12, 12), "t").unwrap();
    for r in 0..4 {
        let p_in: f64 = (0..144).map(|p| slm.source(p).map_or(0.0, |s| x.get(r, s).to_f64().unwrap().powi(2))).sum();
        let p_out: f64 = y.row(r).iter().map(|v| v.to_f64().unwrap()).sum();
        let p_field: f64 = fields[r * 144..(r + 1) * 144].iter().map(|z| z.norm_sqr().to_f64().unwrap()).sum();
        assert!((p_out - p_in).abs() <= tol * p_in, "{}: detected power {p_out} vs input {p_in}", F::NAME);
        assert!((p_field - p_in).abs() <= tol * p_in, "{}: field power {p_field} vs {p_in}", F::NAME);
    }
}

#[test]
fn power_is_conserved_with_open_pupils_and_a_unitary_medium() {
    check_power_conservation::<f64>(1e-10);
    check_power_conservation::<f32>(1e-5);
}

#[test]
fn closing_the_pupils_loses_power() {
    // The same medium with pupils of radius 3 (29 modes out of 144) must pass less power:
    // the test above would also pass for a system that ignores the pupils otherwise.
    let cfg = OpticsConfig { input_pupil_radius_px: 3.0, output_pupil_radius_px: 3.0, ..open_lossless(12, 2) };
    let mut sys = OpticsSystem::<f64>::new(cfg).unwrap();
    let x = random_input::<f64>(1, sys.input_len(), 5);
    let p_in: f64 = x.data().iter().map(|v| v * v).sum::<f64>() * 144.0 / 15.0;
    let p_out: f64 = sys.forward(x.view()).unwrap().data().iter().sum();
    assert!(p_out < 0.999 * p_in, "{p_out} vs {p_in}");
}

#[test]
fn default_and_second_block_shapes() {
    let sys = OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap();
    assert_eq!((sys.input_len(), sys.output_len()), (224, 256));
    assert_eq!((sys.medium().m_in(), sys.medium().m_out()), (293, 293));
    let second = OpticsSystem::<f32>::new(OpticsConfig::second_block(1)).unwrap();
    assert_eq!((second.input_len(), second.output_len()), (256, 256));
}

#[test]
fn conformance_f32_and_f64() {
    check_conformance::<f32, _, _>(
        || OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap(),
        &Conformance::default(),
    );
    check_conformance::<f64, _, _>(
        || OpticsSystem::<f64>::new(OpticsConfig::default()).unwrap(),
        &Conformance::default(),
    );
    let phase = OpticsConfig {
        encoding: Encoding::Phase,
        medium: MediumKind::Gaussian,
        output_pupil_radius_px: 5.0,
        ..OpticsConfig::second_block(3)
    };
    check_conformance::<f32, _, _>(|| OpticsSystem::<f32>::new(phase.clone()).unwrap(), &Conformance::default());
    // A batch larger than a chunk goes through the parallel path.
    let big = Conformance { batch: 2 * CHUNK_ROWS + 3, ..Conformance::default() };
    check_conformance::<f64, _, _>(|| OpticsSystem::<f64>::new(small_config()).unwrap(), &big);
}

#[test]
fn same_bits_whatever_the_thread_count_and_the_batch_split() {
    let batch = 3 * CHUNK_ROWS + 5;
    let x = random_input::<f32>(batch, 224, 21);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap().forward(x.view()).unwrap())
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.data(), two.data(), "1 vs 2 threads");
    // A row queried alone gives the same bits as inside the batch.
    let mut sys = OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap();
    for r in [0, CHUNK_ROWS - 1, CHUNK_ROWS, batch - 1] {
        let alone = sys.forward(x.slice_rows(r, r + 1).view()).unwrap();
        assert_eq!(alone.data(), one.row(r), "row {r}");
    }
}

#[test]
fn rows_across_a_medium_block_boundary_match_rows_queried_alone() {
    // A batch of more than BLOCK_ROWS rows is split into several medium GEMMs.
    let batch = BLOCK_ROWS + CHUNK_ROWS + 7;
    let x = random_input::<f64>(batch, 15, 22);
    let mut sys = OpticsSystem::<f64>::new(small_config()).unwrap();
    let all = sys.forward(x.view()).unwrap();
    for r in [0, CHUNK_ROWS, BLOCK_ROWS - 1, BLOCK_ROWS, batch - 1] {
        let alone = sys.forward(x.slice_rows(r, r + 1).view()).unwrap();
        assert_eq!(alone.data(), all.row(r), "row {r}");
    }
}

#[test]
fn different_seeds_give_different_media() {
    let a = OpticsSystem::<f64>::new(OpticsConfig::default()).unwrap();
    let b = OpticsSystem::<f64>::new(OpticsConfig { seed: 1, ..OpticsConfig::default() }).unwrap();
    assert_ne!(a.medium().get(0, 0), b.medium().get(0, 0));
    let x = random_input::<f64>(2, 224, 1);
    let (mut a, mut b) = (a, b);
    assert_ne!(a.forward(x.view()).unwrap(), b.forward(x.view()).unwrap());
}

#[test]
fn bad_inputs_are_errors() {
    let mut sys = OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap();
    let mut x = random_input::<f32>(2, 224, 1);
    x.data_mut()[5] = f32::NAN;
    assert!(matches!(sys.forward(x.view()), Err(SystemError::NonFinite { row: 0, col: 5, .. })));
    assert!(matches!(sys.camera_field(x.view()), Err(SystemError::NonFinite { .. })));
    let wide = random_input::<f32>(2, 225, 1);
    assert!(matches!(sys.forward(wide.view()), Err(SystemError::Shape { expected: 224, got: 225, .. })));
    assert!(sys.camera_field(wide.view()).is_err());
}

#[test]
fn bad_configs_name_the_field_and_value() {
    let msg = |c: OpticsConfig| c.validate().unwrap_err().to_string();
    let m = msg(OpticsConfig { output_pupil_radius_px: 5.0, ..OpticsConfig::default() });
    assert!(m.contains("optics.medium") && m.contains("293") && m.contains("gaussian"), "{m}");
    let m = msg(OpticsConfig { input_pupil_radius_px: -1.0, ..OpticsConfig::default() });
    assert!(m.contains("optics.input_pupil_radius_px") && m.contains("-1"), "{m}");
    let m = msg(OpticsConfig { field_size: 0, ..OpticsConfig::default() });
    assert!(m.contains("optics.field_size"), "{m}");
    let m = msg(OpticsConfig { placement: Placement::Center, field_size: 16, ..OpticsConfig::default() });
    assert!(m.contains("28 x 8") && m.contains("16 x 16"), "{m}");
    let m = msg(OpticsConfig { pooling: Pooling { kernel: 2, stride: 0, padding: 0 }, ..OpticsConfig::default() });
    assert!(m.contains("optics.pooling.stride"), "{m}");
    assert!(OpticsSystem::<f32>::new(OpticsConfig { field_size: 0, ..OpticsConfig::default() }).is_err());
}

/// Throughput and complex-GEMM variants; run with
/// `cargo test -p ff-physics --release optics_speed -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn optics_speed() {
    use ff_core::{gemm, Op};
    use std::time::Instant;
    let m = 293;
    let t = draw_transmission(MediumKind::Unitary, m, m, 0);
    let med = Medium::<f32>::new(&t, m, m);
    let tre = Matrix::<f32>::from_fn(m, m, |o, i| t[o * m + i].re as f32);
    let tim = Matrix::<f32>::from_fn(m, m, |o, i| t[o * m + i].im as f32);
    // The block form [[Re T^T, Im T^T], [-Im T^T, Re T^T]] for one real GEMM on [Re X | Im X].
    let block = Matrix::<f32>::from_fn(2 * m, 2 * m, |r, c| {
        let (i, o) = (r % m, c % m);
        match (r < m, c < m) {
            (true, true) | (false, false) => tre.get(o, i),
            (true, false) => tim.get(o, i),
            (false, true) => -tim.get(o, i),
        }
    });
    let tn = nalgebra::DMatrix::<Complex<f32>>::from_fn(m, m, |i, o| {
        Complex::new(t[o * m + i].re as f32, t[o * m + i].im as f32)
    });
    for batch in [32usize, 64, 256] {
        let x = random_input::<f32>(batch, 2 * m, 1);
        let mut xb = ModeBatch::zeros(batch, m);
        xb.re = Matrix::from_fn(batch, m, |b, i| x.get(b, i));
        xb.im = Matrix::from_fn(batch, m, |b, i| x.get(b, m + i));
        let xn =
            nalgebra::DMatrix::<Complex<f32>>::from_fn(batch, m, |b, i| Complex::new(x.get(b, i), x.get(b, m + i)));
        let reps = 20_000 / batch;
        let time = |name: &str, f: &mut dyn FnMut()| {
            f();
            let t0 = Instant::now();
            for _ in 0..reps {
                f();
            }
            let per_row = t0.elapsed().as_secs_f64() / (reps * batch) as f64;
            eprintln!("batch {batch:4} {name:10}: {:7.2} us/row", per_row * 1e6);
        };
        let mut yb = ModeBatch::zeros(batch, m);
        time("gauss (3)", &mut || med.apply(&mut xb, &mut yb));
        let mut y = Matrix::<f32>::zeros(batch, 2 * m);
        time("block (1)", &mut || gemm(1.0, x.view(), Op::N, block.view(), Op::N, 0.0, &mut y.view_mut()));
        let (mut yre, mut yim) = (Matrix::zeros(batch, m), Matrix::zeros(batch, m));
        time("4 gemm", &mut || {
            gemm(1.0, xb.re.view(), Op::N, tre.view(), Op::T, 0.0, &mut yre.view_mut());
            gemm(-1.0, xb.im.view(), Op::N, tim.view(), Op::T, 1.0, &mut yre.view_mut());
            gemm(1.0, xb.re.view(), Op::N, tim.view(), Op::T, 0.0, &mut yim.view_mut());
            gemm(1.0, xb.im.view(), Op::N, tre.view(), Op::T, 1.0, &mut yim.view_mut());
        });
        time("nalgebra", &mut || {
            let _ = std::hint::black_box(&xn * &tn);
        });
    }
    for batch in [1usize, 32, 1024] {
        let mut sys = OpticsSystem::<f32>::new(OpticsConfig::default()).unwrap();
        let x = random_input::<f32>(batch, 224, 1);
        let reps = (4096 / batch).max(1);
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(sys.forward(x.view()).unwrap());
        }
        let rows = (reps * batch) as f64;
        eprintln!("optics default f32, batch {batch:5}: {:9.0} rows/s", rows / t0.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------------------------------------
// Perturbation (drift of the medium)
// ---------------------------------------------------------------------------------------------

/// Pearson correlation of two equally long output vectors.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The small setup of the perturbation tests: 6 x 6 inputs tiled on a 16 x 16 field, pupils of
/// radius 4 (49 modes), amplitude detection, 2 x 2 pooling.
fn perturb_config(medium: MediumKind) -> OpticsConfig {
    OpticsConfig {
        field_size: 16,
        input_shape: (6, 6),
        input_pupil_radius_px: 4.0,
        output_pupil_radius_px: 4.0,
        medium,
        seed: 3,
        ..OpticsConfig::default()
    }
}

#[test]
fn zero_strength_perturbation_leaves_outputs_bit_identical() {
    for medium in [MediumKind::Unitary, MediumKind::Gaussian] {
        let mut sys = OpticsSystem::<f32>::new(perturb_config(medium)).unwrap();
        let x = random_input::<f32>(20, sys.input_len(), 8);
        let before = sys.forward(x.view()).unwrap();
        let t_before = sys.medium().to_dense();
        let mut rng = ff_core::rng::rng_for(1, "drift");
        sys.perturb(0.0, &mut rng);
        assert_eq!(sys.medium().to_dense(), t_before, "{medium:?}: the medium moved");
        assert_eq!(sys.forward(x.view()).unwrap(), before, "{medium:?}: outputs changed");
        // The generator still advanced by the documented amount, so a later perturbation does
        // not depend on whether this one was empty.
        let mut fresh = ff_core::rng::rng_for(1, "drift");
        assert_ne!(rng.random::<u64>(), fresh.random::<u64>());
    }
}

#[test]
fn outputs_decorrelate_monotonically_with_strength() {
    for medium in [MediumKind::Unitary, MediumKind::Gaussian] {
        let base = OpticsSystem::<f64>::new(perturb_config(medium)).unwrap();
        let x = random_input::<f64>(32, base.input_len(), 9);
        let before = base.camera_field(x.view()).unwrap();
        let mut sys = OpticsSystem::<f64>::new(perturb_config(medium)).unwrap();
        let y0 = sys.forward(x.view()).unwrap().into_vec();
        let mut corr = Vec::new();
        let mut field_change = Vec::new();
        for s in [0.01, 0.1, 0.5, 1.0] {
            let mut p = OpticsSystem::<f64>::new(perturb_config(medium)).unwrap();
            p.perturb(s, &mut ff_core::rng::rng_for(2, "drift"));
            corr.push(correlation(&y0, &p.forward(x.view()).unwrap().into_vec()));
            let after = p.camera_field(x.view()).unwrap();
            let d: f64 = after.iter().zip(&before).map(|(a, b)| (a - b).norm_sqr()).sum::<f64>();
            let n: f64 = before.iter().map(|b| b.norm_sqr()).sum::<f64>();
            field_change.push((d / n).sqrt());
        }
        eprintln!("{medium:?}: output correlation {corr:?}, relative field change {field_change:?}");
        for w in corr.windows(2) {
            assert!(w[1] < w[0], "{medium:?}: correlation does not fall with strength: {corr:?}");
        }
        for w in field_change.windows(2) {
            assert!(w[1] > w[0], "{medium:?}: field change does not grow with strength: {field_change:?}");
        }
        // A 1 % mix barely moves the camera image; a full redraw leaves only the correlation
        // that the shared SLM layout and the non-negative detection give (well below 0.9).
        assert!(corr[0] > 0.999, "{medium:?}: strength 0.01 gives correlation {}", corr[0]);
        assert!(corr[3] < 0.9, "{medium:?}: strength 1 gives correlation {}", corr[3]);
    }
}

#[test]
fn perturbed_medium_keeps_its_statistics_and_losslessness() {
    // Unitary medium, open pupils: the perturbed system still conserves power exactly.
    let cfg = open_lossless(12, 2);
    let mut sys = OpticsSystem::<f64>::new(cfg.clone()).unwrap();
    let mut rng = ff_core::rng::rng_for(4, "drift");
    for s in [0.3, 0.05, 1.0] {
        sys.perturb(s, &mut rng);
    }
    let x = random_input::<f64>(4, sys.input_len(), 5);
    let slm = SlmMap::new(cfg.placement, cfg.input_shape, (12, 12), "t").unwrap();
    let y = sys.forward(x.view()).unwrap();
    for r in 0..4 {
        let p_in: f64 = (0..144).map(|p| slm.source(p).map_or(0.0, |s| x.get(r, s).powi(2))).sum();
        let p_out: f64 = y.row(r).iter().sum();
        assert!((p_out - p_in).abs() <= 1e-10 * p_in, "detected power {p_out} vs input {p_in} after drift");
    }
    // Unitarity of the matrix itself, and Haar moments (as for a fresh draw, see medium.rs).
    let m = 100;
    let mut t = draw_transmission(MediumKind::Unitary, m, m, 11);
    perturb_transmission(MediumKind::Unitary, &mut t, m, m, 0.5, &mut ff_core::rng::rng_for(5, "drift"));
    let mut worst = 0.0f64;
    for a in 0..m {
        for b in 0..m {
            let s: Complex<f64> = (0..m).map(|k| t[k * m + a].conj() * t[k * m + b]).sum();
            worst = worst.max((s - if a == b { 1.0 } else { 0.0 }).norm());
        }
    }
    assert!(worst < 1e-12, "|T^H T - I|_max = {worst:e}");
    let p: f64 = t.iter().map(|z| z.norm_sqr()).sum::<f64>() / m as f64;
    assert!((p - 1.0).abs() < 0.05, "mean |T|^2 m = {p}");
    let diag: Complex<f64> = (0..m).map(|i| t[i * m + i]).sum::<Complex<f64>>() / (m as f64).sqrt();
    assert!(diag.norm() < 0.35, "diagonal mean x sqrt(m) = {diag} (Haar: 0, sd ~0.1)");

    // Gaussian medium: after many small steps and one large one the entries keep variance 1/m_in.
    let (m_out, m_in) = (150, 200);
    let mut t = draw_transmission(MediumKind::Gaussian, m_out, m_in, 5);
    let mut rng = ff_core::rng::rng_for(6, "drift");
    for _ in 0..20 {
        perturb_transmission(MediumKind::Gaussian, &mut t, m_out, m_in, 0.1, &mut rng);
    }
    perturb_transmission(MediumKind::Gaussian, &mut t, m_out, m_in, 0.7, &mut rng);
    let var = t.iter().map(|z| z.norm_sqr()).sum::<f64>() / t.len() as f64;
    // 30 000 samples of an exponential variable: relative sd ~0.6 %; tolerance 3 %.
    assert!((var * m_in as f64 - 1.0).abs() < 0.03, "variance x m_in = {}", var * m_in as f64);
}

#[test]
fn perturbation_is_deterministic_and_shared_by_f32_and_f64() {
    let mut a = OpticsSystem::<f64>::new(perturb_config(MediumKind::Unitary)).unwrap();
    let mut b = OpticsSystem::<f64>::new(perturb_config(MediumKind::Unitary)).unwrap();
    let mut c = OpticsSystem::<f32>::new(perturb_config(MediumKind::Unitary)).unwrap();
    for sys_rng in [1u64, 2] {
        a.perturb(0.2, &mut ff_core::rng::rng_for(sys_rng, "drift"));
        b.perturb(0.2, &mut ff_core::rng::rng_for(sys_rng, "drift"));
        c.perturb(0.2, &mut ff_core::rng::rng_for(sys_rng, "drift"));
    }
    let x = random_input::<f64>(5, a.input_len(), 3);
    let ya = a.forward(x.view()).unwrap();
    assert_eq!(ya, b.forward(x.view()).unwrap(), "same generator, same medium, same bits");
    let xf = Matrix::<f32>::from_fn(5, c.input_len(), |r, col| x.get(r, col) as f32);
    let yc = c.forward(xf.view()).unwrap();
    for (p, q) in ya.data().iter().zip(yc.data()) {
        assert!((p - f64::from(*q)).abs() < 1e-4 * (1.0 + p.abs()), "f64 {p} vs f32 {q}");
    }
    let mut d = OpticsSystem::<f64>::new(perturb_config(MediumKind::Unitary)).unwrap();
    d.perturb(0.2, &mut ff_core::rng::rng_for(9, "drift"));
    assert_ne!(d.forward(x.view()).unwrap(), ya, "another generator, another medium");
}
