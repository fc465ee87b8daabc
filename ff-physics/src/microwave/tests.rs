use super::*;
use ff_core::conformance::{check_conformance, Conformance};
use ff_core::Matrix;
use rand::Rng as _;

/// A smaller cavity than the default so the tests stay fast.
fn small() -> MicrowaveConfig {
    MicrowaveConfig {
        n_inputs: 6,
        n_freqs: 7,
        cavity_width: 3.0,
        cavity_height: 2.5,
        wall_spacing: 0.2,
        n_scatterers: 3,
        seed: 7,
        ..MicrowaveConfig::default()
    }
}

fn random_bits(n: usize, seed: u64) -> Vec<bool> {
    let mut rng = rng_for(seed, "test bits");
    (0..n).map(|_| rng.random::<bool>()).collect()
}

/// Reference: full dense solve of `W p = e_t` over all dipoles.
fn naive_channel(sys: &MicrowaveCavity, bits: &[bool], f: f64, coupled: &dyn Fn(usize, usize) -> bool) -> Complex64 {
    let d = sys.dipoles(bits);
    let t = sys.env.len();
    let r = t + 1;
    let w = interaction_matrix(&d, f, coupled);
    let mut e = DVector::zeros(d.len());
    e[t] = Complex64::new(1.0, 0.0);
    let p = w.clone().lu().solve(&e).unwrap();
    w[(r, r)] * p[r]
}

fn rel(a: Complex64, b: Complex64) -> f64 {
    (a - b).norm() / b.norm()
}

#[test]
fn schur_path_matches_full_solve() {
    let sys = MicrowaveCavity::new(small()).unwrap();
    let mut cases: Vec<Vec<bool>> = (0..3).map(|seed| random_bits(12, seed)).collect();
    cases.push(vec![false; 12]);
    cases.push(vec![true; 12]);
    cases.push((0..12).map(|i| i != 4).collect()); // majority on: the all-on reference
    for bits in cases {
        let fast = sys.channel(&bits).unwrap();
        for (h, &f) in fast.iter().zip(sys.frequencies()) {
            let h_ref = naive_channel(&sys, &bits, f, &|_, _| true);
            assert!(rel(*h, h_ref) < 1e-10, "f = {f}: {h} vs {h_ref}");
        }
    }
}

#[test]
fn reciprocity_s21_equals_s12() {
    let sys = MicrowaveCavity::new(small()).unwrap();
    let mut swapped = sys.clone();
    std::mem::swap(&mut swapped.tx.pos, &mut swapped.rx.pos);
    swapped.cache = swapped.build_cache().unwrap();
    let bits = random_bits(12, 3);
    let (a, b) = (sys.channel(&bits).unwrap(), swapped.channel(&bits).unwrap());
    let mut differs_from_zero = false;
    for (x, y) in a.iter().zip(&b) {
        assert!(rel(*x, *y) < 1e-9, "S21 = {x}, S12 = {y}");
        differs_from_zero |= x.norm() > 1e-3;
    }
    assert!(differs_from_zero);
}

#[test]
fn uncoupled_environment_leaves_the_direct_green_function_path() {
    // Keep only the tx-rx coupling: the walls and the metasurface become invisible and the
    // channel must equal H = G alpha_t / (1 - alpha_t alpha_r G^2), G = -j k^2/4 H0^(2)(k r).
    let sys = MicrowaveCavity::new(small()).unwrap();
    let (t, r) = (sys.env.len(), sys.env.len() + 1);
    let only_direct = move |i: usize, j: usize| (i == r && j == t) || (i == t && j == r);
    let bits = random_bits(12, 5);
    for &f in sys.frequencies() {
        let h = naive_channel(&sys, &bits, f, &only_direct);
        let k = 2.0 * PI * f;
        let g = -Complex64::new(0.0, k * k / 4.0) * hankel2_0(k * dist(sys.tx.pos, sys.rx.pos));
        let (at, ar) = (1.0 / sys.tx.w_diag(f), 1.0 / sys.rx.w_diag(f));
        let expected = g * at / (1.0 - at * ar * g * g);
        assert!(rel(h, expected) < 1e-12, "f = {f}: {h} vs {expected}");
        // The full cavity is very different from free space (the walls matter).
        let full = naive_channel(&sys, &bits, f, &|_, _| true);
        assert!(rel(full, expected) > 0.05);
    }
}

#[test]
fn power_balance_and_passivity() {
    // -Im p_t = (k^2/4) p^H J0 p + sum 2 pi f gamma_i |p_i|^2 / chi_i^2, each term >= 0.
    let sys = MicrowaveCavity::new(small()).unwrap();
    for seed in 0..2 {
        let bits = random_bits(12, seed);
        let d = sys.dipoles(&bits);
        let t = sys.env.len();
        for &f in sys.frequencies() {
            let w = interaction_matrix(&d, f, &|_, _| true);
            let mut e = DVector::zeros(d.len());
            e[t] = Complex64::new(1.0, 0.0);
            let p = w.lu().solve(&e).unwrap();
            let k = 2.0 * PI * f;
            let n = d.len();
            let kernel = DMatrix::from_fn(n, n, |i, j| {
                if i == j {
                    1.0
                } else {
                    crate::special::bessel_j0_y0(k * dist(d[i].pos, d[j].pos)).0
                }
            });
            let pj = kernel.map(|v| Complex64::new(v, 0.0)) * &p;
            let radiated = k * k / 4.0 * p.dotc(&pj).re;
            let absorbed: f64 =
                d.iter().zip(p.iter()).map(|(di, pi)| k * di.p.gamma / (di.p.chi * di.p.chi) * pi.norm_sqr()).sum();
            let supplied = -p[t].im;
            assert!(radiated >= 0.0 && absorbed >= 0.0);
            assert!(
                (supplied - radiated - absorbed).abs() < 1e-9 * supplied,
                "f = {f}: supplied {supplied}, radiated {radiated}, absorbed {absorbed}"
            );
            if seed == 0 && f == sys.frequencies()[0] {
                let eig = kernel.symmetric_eigenvalues();
                assert!(eig.min() > -1e-9 * eig.max(), "J0 kernel not PSD: {}", eig.min());
            }
        }
    }
}

#[test]
fn transmission_depends_nonlinearly_on_the_configuration() {
    let sys = MicrowaveCavity::new(small()).unwrap();
    let base = vec![false; 12];
    let mag = |bits: &[bool]| -> Vec<f64> { sys.channel(bits).unwrap().iter().map(|h| h.norm()).collect() };
    let s0 = mag(&base);
    let (mut a, mut b) = (base.clone(), base.clone());
    a[5] = true;
    b[6] = true;
    let mut ab = base.clone();
    ab[5] = true;
    ab[6] = true;
    let (sa, sb, sab) = (mag(&a), mag(&b), mag(&ab));
    let mut interaction = 0.0_f64;
    let mut single = 0.0_f64;
    for i in 0..s0.len() {
        interaction = interaction.max((sab[i] - sa[i] - sb[i] + s0[i]).abs());
        single = single.max((sa[i] - s0[i]).abs().max((sb[i] - s0[i]).abs()));
    }
    // Solver accuracy is ~1e-12 relative; the interaction is many orders larger and a
    // sizable fraction of the single-flip effect.
    assert!(interaction > 1e-4, "interaction {interaction}");
    assert!(interaction > 0.05 * single, "interaction {interaction} vs single-flip {single}");
}

#[test]
fn encoding_follows_the_documented_bins() {
    let x = [0.0, 0.1, 0.25, 0.26, 0.5, 0.75, 0.76, 1.0];
    let mut bits = vec![false; 16];
    encode_2bit(&x, &mut bits);
    let codes: Vec<u8> = bits.chunks(2).map(|c| 2 * c[0] as u8 + c[1] as u8).collect();
    assert_eq!(codes, vec![0, 1, 1, 2, 2, 2, 3, 3]);
    // Scale and offset invariance, constant sample -> all off.
    let y: Vec<f64> = x.iter().map(|v| 3.0 * v - 7.0).collect();
    let mut bits2 = vec![false; 16];
    encode_2bit(&y, &mut bits2);
    assert_eq!(bits, bits2);
    encode_2bit(&[4.0; 8], &mut bits2);
    assert!(bits2.iter().all(|b| !b));
}

#[test]
fn invalid_configs_are_rejected_with_the_field_name() {
    let bad = |c: MicrowaveConfig, field: &str| match MicrowaveCavity::new(c) {
        Err(CoreError::Config { field: f, message }) => {
            assert_eq!(f, field, "{message}");
        }
        other => panic!("expected a config error on {field}, got {other:?}"),
    };
    bad(MicrowaveConfig { n_inputs: 0, ..small() }, "n_inputs");
    bad(MicrowaveConfig { freq_min: -1.0, ..small() }, "freq_min");
    bad(MicrowaveConfig { freq_max: 0.5, ..small() }, "freq_max");
    bad(MicrowaveConfig { meta_spacing: 1.0, ..small() }, "meta_spacing");
    bad(MicrowaveConfig { wall_spacing: 0.001, ..small() }, "wall_spacing");
    let mut c = small();
    c.wall.chi = 0.0;
    bad(c, "wall.chi");
    bad(MicrowaveConfig { n_scatterers: 500, ..small() }, "n_scatterers");
}

#[test]
fn conformance_f32_and_f64() {
    let opts = Conformance { batch: 4, ..Conformance::default() };
    check_conformance::<f32, _, _>(|| MicrowaveCavity::new(small()).unwrap(), &opts);
    check_conformance::<f64, _, _>(|| MicrowaveCavity::new(small()).unwrap(), &opts);
}

#[test]
fn perturbation_changes_the_output_deterministically() {
    let mut a = MicrowaveCavity::new(small()).unwrap();
    let mut b = a.clone();
    let x = Matrix::<f64>::from_fn(2, 6, |i, j| ((i * 7 + j * 3) % 5) as f64);
    let y0 = PhysicalSystem::<f64>::forward(&mut a, x.view()).unwrap();
    a.perturb(0.01, &mut rng_for(1, "drift"));
    b.perturb(0.01, &mut rng_for(1, "drift"));
    let (ya, yb) = (a.forward(x.view()).unwrap(), b.forward(x.view()).unwrap());
    assert_eq!(ya, yb);
    let change: f64 = ya.data().iter().zip(y0.data()).map(|(p, q)| (p - q).abs()).sum();
    assert!(change > 1e-4, "perturbation had no effect: {change}");
}
