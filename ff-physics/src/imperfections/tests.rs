use super::*;
use crate::microwave::{MicrowaveCavity, MicrowaveConfig};
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::Matrix;

/// A perturbable toy system: `y_j = sum_i w_ji x_i + offset`, whose weights `perturb` jitters.
#[derive(Clone, Debug)]
struct Toy {
    w: Vec<f64>,
    n_in: usize,
    n_out: usize,
    offset: f64,
}

impl Toy {
    fn new(n_in: usize, n_out: usize, offset: f64) -> Self {
        let w = (0..n_in * n_out).map(|k| ((k * 37 % 11) as f64 - 5.0) / 10.0).collect();
        Toy { w, n_in, n_out, offset }
    }
}

impl<F: Real> PhysicalSystem<F> for Toy {
    fn name(&self) -> String {
        "toy".into()
    }
    fn input_len(&self) -> usize {
        self.n_in
    }
    fn output_len(&self) -> usize {
        self.n_out
    }
    fn forward_batch(&mut self, input: MatRef<'_, F>, mut output: MatMut<'_, F>) -> Result<(), SystemError> {
        check_batch("toy", self.n_in, self.n_out, &input, &output)?;
        for r in 0..input.rows() {
            let x = input.row(r);
            let out = output.row_mut(r);
            for (j, o) in out.iter_mut().enumerate() {
                let s: f64 = (0..self.n_in).map(|i| self.w[j * self.n_in + i] * x[i].to_f64().unwrap()).sum();
                *o = F::c(s + self.offset);
            }
        }
        Ok(())
    }
}

impl Perturbable for Toy {
    fn perturb(&mut self, strength: f64, rng: &mut Rng) {
        for w in &mut self.w {
            let n: f64 = StandardNormal.sample(rng);
            *w += strength * n;
        }
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0))
}

/// Outputs of a constant system (all-zero weights) under noise, many samples.
fn noisy_constant(level: f64, cfg: NoiseConfig, rows: usize) -> Vec<f64> {
    let mut toy = Toy::new(1, 4, level);
    toy.w.fill(0.0);
    let mut sys = Noisy::new(toy, cfg).unwrap();
    let x = Matrix::<f64>::zeros(rows, 1);
    sys.forward(x.view()).unwrap().into_vec()
}

#[test]
fn gaussian_noise_statistics() {
    // 40 000 draws: the mean is within 5 sigma/sqrt(n) = 0.0125 and the variance within
    // 5 * sqrt(2/n) = 3.5 % of the truth.
    let cfg = NoiseConfig { gaussian_sigma: 0.5, shot_gain: 0.0, seed: 3 };
    let v = noisy_constant(2.0, cfg, 10_000);
    let (m, var) = mean_var(&v);
    assert!((m - 2.0).abs() < 0.0125, "mean {m}");
    assert!((var / 0.25 - 1.0).abs() < 0.035, "variance {var}");
}

#[test]
fn shot_noise_variance_is_proportional_to_the_signal() {
    for level in [4.0, -9.0] {
        let cfg = NoiseConfig { gaussian_sigma: 0.0, shot_gain: 0.1, seed: 5 };
        let v = noisy_constant(level, cfg, 10_000);
        let (m, var) = mean_var(&v);
        let expected = 0.1 * f64::abs(level);
        assert!((m - level).abs() < 5.0 * (expected / 40_000.0).sqrt(), "mean {m}");
        assert!((var / expected - 1.0).abs() < 0.035, "variance {var} vs {expected}");
    }
    // A zero signal has no shot noise at all.
    let v = noisy_constant(0.0, NoiseConfig { gaussian_sigma: 0.0, shot_gain: 0.1, seed: 5 }, 10);
    assert!(v.iter().all(|&x| x == 0.0));
}

#[test]
fn noise_is_seeded() {
    let cfg = |seed| NoiseConfig { gaussian_sigma: 0.1, shot_gain: 0.0, seed };
    assert_eq!(noisy_constant(1.0, cfg(1), 50), noisy_constant(1.0, cfg(1), 50));
    assert_ne!(noisy_constant(1.0, cfg(1), 50), noisy_constant(1.0, cfg(2), 50));
}

#[test]
fn quantiser_hand_worked_levels() {
    // 2 bits over [0, 3]: levels 0, 1, 2, 3 (step 1); clipping at both ends; ties round up.
    let adc = AdcConfig { bits: 2, full_scale_min: 0.0, full_scale_max: 3.0 };
    let cases = [(-1.0, 0.0), (0.0, 0.0), (0.49, 0.0), (0.5, 1.0), (1.4, 1.0), (2.5, 3.0), (3.0, 3.0), (7.0, 3.0)];
    for (y, q) in cases {
        assert_eq!(adc.quantize(y), q, "Q({y})");
    }
    assert_eq!(adc.code(f64::NAN), 0);
    // 3 bits over [-1, 1]: step 2/7; 0.1 -> 3.85 steps above -1 -> code 4 -> -1 + 8/7.
    let adc = AdcConfig { bits: 3, full_scale_min: -1.0, full_scale_max: 1.0 };
    assert_eq!(adc.code(0.1), 4);
    assert!((adc.quantize(0.1) - 1.0 / 7.0).abs() < 1e-15);
    assert_eq!(adc.code(-0.999), 0);
    assert_eq!(adc.code(1.5), 7);
}

#[test]
fn quantiser_is_idempotent_through_the_wrapper() {
    let adc = AdcConfig { bits: 12, full_scale_min: -2.0, full_scale_max: 2.0 };
    let mut once = Quantized::new(Toy::new(3, 5, 0.3), adc.clone()).unwrap();
    let x = Matrix::<f32>::from_fn(40, 3, |i, j| ((i * 13 + j * 7) % 17) as f32 / 4.0 - 2.0);
    let y1 = once.forward(x.view()).unwrap();
    let mut levels = 0;
    for &v in y1.data() {
        let v = f64::from(v);
        assert!((-2.0..=2.0).contains(&v));
        assert_eq!(f64::from(adc.quantize(v) as f32), v, "not idempotent at {v}");
        levels += usize::from(v.abs() < 2.0);
    }
    assert!(levels > 0, "every output clipped: the test would prove nothing");
}

#[test]
fn drift_changes_the_output_at_the_stated_counts_only() {
    let cfg = DriftConfig { period: 10, slow_strength: 0.01, sudden_at: Some(25), sudden_strength: 1.0, seed: 9 };
    let x = Matrix::<f64>::from_fn(32, 3, |_, j| 1.0 + j as f64);
    let baseline = PhysicalSystem::<f64>::forward(&mut Toy::new(3, 2, 0.0), x.slice_rows(0, 1).view()).unwrap();
    let mut d = Drift::new(Toy::new(3, 2, 0.0), cfg.clone()).unwrap();
    let y = d.forward(x.view()).unwrap();
    assert_eq!(d.queried(), 32);
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f64>();
    for r in 0..10 {
        assert_eq!(y.row(r), baseline.row(0), "sample {r} changed before the first drift step");
    }
    let step = |r: usize| diff(y.row(r), y.row(r - 1));
    for r in 1..32 {
        let changed = step(r) > 0.0;
        let expected = r % 10 == 0 || r == 25;
        assert_eq!(changed, expected, "sample {r}: change {}", step(r));
    }
    assert!(step(25) > 10.0 * step(20), "sudden {} vs slow {}", step(25), step(20));

    // Same answers when the same sequence is queried in other batch sizes.
    let mut d2 = Drift::new(Toy::new(3, 2, 0.0), cfg).unwrap();
    let mut rows = Vec::new();
    for (a, b) in [(0, 1), (1, 8), (8, 21), (21, 32)] {
        rows.extend(d2.forward(x.slice_rows(a, b).view()).unwrap().into_vec());
    }
    assert_eq!(rows, y.into_vec());
}

#[test]
fn drift_on_the_microwave_cavity() {
    let mw = MicrowaveConfig {
        n_inputs: 4,
        n_freqs: 5,
        cavity_width: 2.5,
        cavity_height: 2.5,
        wall_spacing: 0.25,
        n_scatterers: 2,
        ..MicrowaveConfig::default()
    };
    let cfg = DriftConfig { period: 0, sudden_at: Some(3), sudden_strength: 0.02, ..DriftConfig::default() };
    let mut d = Drift::new(MicrowaveCavity::new(mw).unwrap(), cfg).unwrap();
    let x = Matrix::<f64>::from_fn(5, 4, |_, j| j as f64);
    let y = d.forward(x.view()).unwrap();
    assert_eq!(y.row(0), y.row(2));
    assert_ne!(y.row(2), y.row(3));
    assert_eq!(y.row(3), y.row(4));
}

#[test]
fn a_shared_clock_counts_every_wrapper_and_pauses() {
    // Two wrappers (two blocks using one device) on one clock: the sudden change at count 6
    // hits whichever wrapper is queried at or after that count, and both see the same device.
    let cfg = DriftConfig { period: 0, sudden_at: Some(6), sudden_strength: 1.0, seed: 4, ..DriftConfig::default() };
    let clock = DriftClock::new();
    let mut a = Drift::with_clock(Toy::new(3, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
    let mut b = Drift::with_clock(Toy::new(3, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
    let x = Matrix::<f64>::from_fn(4, 3, |r, j| 1.0 + (r + j) as f64);
    let ya0 = a.forward(x.view()).unwrap(); // counts 0..4
    assert_eq!(clock.count(), 4);
    let yb = b.forward(x.view()).unwrap(); // counts 4..8: rows 2 and 3 see the change
    assert_eq!(clock.count(), 8);
    assert_eq!(yb.row(0), ya0.row(0));
    assert_eq!(yb.row(1), ya0.row(1));
    assert_ne!(yb.row(2), ya0.row(2));

    // Paused: nothing is counted, and `a` (which missed the change) catches up first.
    let pause = clock.pause();
    assert!(!clock.is_running());
    let ya_eval = a.forward(x.view()).unwrap();
    let yb_eval = b.forward(x.view()).unwrap();
    assert_eq!(clock.count(), 8, "evaluation queries must not be counted");
    assert_eq!(ya_eval, yb_eval, "both wrappers show the same perturbed device");
    assert_eq!(ya_eval.row(2), yb.row(2));
    drop(pause);
    assert!(clock.is_running());
    a.forward(x.view()).unwrap();
    assert_eq!(a.queried(), 12);
    assert_eq!(b.queried(), 12);
}

#[test]
fn paused_queries_leave_the_schedule_unchanged() {
    // The same counted query sequence with and without paused queries in between gives the
    // same bits: evaluation neither advances the drift nor consumes its generator.
    let cfg = DriftConfig { period: 5, slow_strength: 0.3, sudden_at: Some(12), sudden_strength: 1.0, seed: 2 };
    let x = Matrix::<f64>::from_fn(7, 3, |r, j| 0.5 + (r * 3 + j) as f64 / 7.0);
    let run = |evaluate: bool| {
        let mut d = Drift::new(Toy::new(3, 2, 0.1), cfg.clone()).unwrap();
        let mut counted = Vec::new();
        for _ in 0..4 {
            counted.extend(d.forward(x.view()).unwrap().into_vec());
            if evaluate {
                let _p = d.clock().pause();
                d.forward(x.view()).unwrap();
                d.forward(x.view()).unwrap();
            }
        }
        (counted, d.queried())
    };
    let (plain, n) = run(false);
    assert_eq!(n, 28);
    assert_eq!(run(true), (plain.clone(), 28));
    // The schedule did move the system (otherwise the comparison proves nothing).
    assert_ne!(plain[..6], plain[plain.len() - 6..]);
}

#[test]
fn a_wrapper_built_late_on_a_running_clock_applies_the_past_events() {
    let cfg = DriftConfig { period: 3, slow_strength: 0.2, sudden_at: None, ..DriftConfig::default() };
    let clock = DriftClock::new();
    let mut early = Drift::with_clock(Toy::new(2, 2, 0.0), cfg.clone(), clock.clone()).unwrap();
    let x = Matrix::<f64>::from_fn(10, 2, |r, j| (r + 2 * j) as f64);
    early.forward(x.view()).unwrap(); // count 10: events at 3, 6, 9 applied
    let mut late = Drift::with_clock(Toy::new(2, 2, 0.0), cfg, clock.clone()).unwrap();
    let _p = clock.pause();
    let probe = x.slice_rows(0, 2);
    assert_eq!(late.forward(probe.view()).unwrap(), early.forward(probe.view()).unwrap());
}

#[test]
fn wrappers_conform() {
    let noisy =
        || Noisy::new(Toy::new(4, 3, 0.1), NoiseConfig { gaussian_sigma: 0.1, shot_gain: 0.01, seed: 1 }).unwrap();
    let stateful = Conformance { stateless: false, ..Conformance::default() };
    check_conformance::<f32, _, _>(noisy, &stateful);
    check_conformance::<f64, _, _>(noisy, &stateful);
    let adc = || Quantized::new(Toy::new(4, 3, 0.1), AdcConfig::default()).unwrap();
    check_conformance::<f32, _, _>(adc, &Conformance::default());
    check_conformance::<f64, _, _>(adc, &Conformance::default());
    let drift = || Drift::new(Toy::new(4, 3, 0.1), DriftConfig { period: 3, ..DriftConfig::default() }).unwrap();
    check_conformance::<f32, _, _>(drift, &stateful);
    check_conformance::<f64, _, _>(drift, &stateful);
}

#[test]
fn bad_configs_name_the_field() {
    let err =
        Noisy::new(Toy::new(1, 1, 0.0), NoiseConfig { gaussian_sigma: -1.0, ..NoiseConfig::default() }).unwrap_err();
    assert!(matches!(err, CoreError::Config { ref field, .. } if field == "gaussian_sigma"));
    for (adc, field) in [
        (AdcConfig { bits: 0, ..AdcConfig::default() }, "bits"),
        (AdcConfig { full_scale_max: 0.0, ..AdcConfig::default() }, "full_scale_max"),
    ] {
        let err = Quantized::new(Toy::new(1, 1, 0.0), adc).unwrap_err();
        assert!(matches!(err, CoreError::Config { field: ref f, .. } if f == field), "{err}");
    }
    let err =
        Drift::new(Toy::new(1, 1, 0.0), DriftConfig { slow_strength: f64::NAN, ..DriftConfig::default() }).unwrap_err();
    assert!(err.to_string().contains("slow_strength"));
}
