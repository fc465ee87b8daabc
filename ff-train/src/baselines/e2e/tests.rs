use super::*;
use ff_core::{check_batch, check_vjp_shapes, MatMut, MatRef, SystemError};

/// `y = c x^a` element-wise (x > 0), with its exact VJP.
struct Power {
    c: f64,
    a: f64,
    physical: bool,
}

impl PhysicalSystem<f64> for Power {
    fn name(&self) -> String {
        format!("{} x^{}", self.c, self.a)
    }
    fn input_len(&self) -> usize {
        1
    }
    fn output_len(&self) -> usize {
        1
    }
    fn is_physical(&self) -> bool {
        self.physical
    }
    fn forward_batch(&mut self, x: MatRef<'_, f64>, mut y: MatMut<'_, f64>) -> Result<(), SystemError> {
        check_batch(&self.name(), 1, 1, &x, &y)?;
        for (o, &v) in y.data_mut().iter_mut().zip(x.data()) {
            *o = self.c * v.powf(self.a);
        }
        Ok(())
    }
}

impl Differentiable<f64> for Power {
    fn vjp(&mut self, x: MatRef<'_, f64>, g: MatRef<'_, f64>, mut gi: MatMut<'_, f64>) -> Result<(), SystemError> {
        check_vjp_shapes(&self.name(), 1, 1, &x, &g, &gi)?;
        for ((o, &v), &gv) in gi.data_mut().iter_mut().zip(x.data()).zip(g.data()) {
            *o = gv * self.c * self.a * v.powf(self.a - 1.0);
        }
        Ok(())
    }
}

/// Fits the gain `w` of `y = P(w x)` to targets made by the real system with `w* = 1.5`,
/// by gradient descent through the block model's train forward and backward.
fn fit_gain(mut b: BlockModel<f64>) -> f64 {
    let x = Matrix::from_fn(8, 1, |r, _| 0.5 + 0.1 * r as f64);
    let mut reality = Power { c: 2.0, a: 1.1, physical: true };
    let target = reality.forward(Matrix::from_fn(8, 1, |r, _| 1.5 * x.get(r, 0)).view()).unwrap();
    let mut w = 1.0;
    let mut t = Counters::default();
    for _ in 0..3000 {
        let u = Matrix::from_fn(8, 1, |r, _| w * x.get(r, 0));
        let y = b.train_forward(&u, &mut t).unwrap();
        let g = Matrix::from_fn(8, 1, |r, _| 2.0 * (y.get(r, 0) - target.get(r, 0)) / 8.0);
        let gu = b.backward(&u, &g, &mut t).unwrap();
        let gw: f64 = (0..8).map(|r| gu.get(r, 0) * x.get(r, 0)).sum();
        w -= 0.05 * gw;
    }
    w
}

/// `y_i = |sum_j sin(i + 2 j) x_j|`, physical, recording every input row it is queried on.
struct Recording {
    d_in: usize,
    d_out: usize,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<f64>>>>,
}

impl PhysicalSystem<f64> for Recording {
    fn name(&self) -> String {
        format!("recording {}->{}", self.d_in, self.d_out)
    }
    fn input_len(&self) -> usize {
        self.d_in
    }
    fn output_len(&self) -> usize {
        self.d_out
    }
    fn forward_batch(&mut self, x: MatRef<'_, f64>, mut y: MatMut<'_, f64>) -> Result<(), SystemError> {
        check_batch(&self.name(), self.d_in, self.d_out, &x, &y)?;
        let mut seen = self.seen.lock().unwrap();
        for r in 0..x.rows() {
            seen.push(x.row(r).to_vec());
            for (i, o) in y.row_mut(r).iter_mut().enumerate() {
                *o = x.row(r).iter().enumerate().map(|(j, v)| ((i + 2 * j) as f64).sin() * v).sum::<f64>().abs();
            }
        }
        Ok(())
    }
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<Vec<f64>>>>;

fn recording_blocks(dims: &[(usize, usize)]) -> (Vec<Box<dyn PhysicalSystem<f64>>>, Vec<Seen>) {
    let seen: Vec<Seen> = dims.iter().map(|_| Seen::default()).collect();
    let systems = dims
        .iter()
        .zip(&seen)
        .map(|(&(d_in, d_out), s)| Box::new(Recording { d_in, d_out, seen: s.clone() }) as Box<dyn PhysicalSystem<f64>>)
        .collect();
    (systems, seen)
}

#[test]
fn data_twin_inputs_are_the_blocks_own_inputs() {
    let x = Matrix::<f64>::from_fn(40, 6, |r, c| ((r * 7 + c * 3) % 11) as f64 / 11.0);
    let opts = E2eOptions {
        epochs: 1,
        batch_size: 8,
        lr: 1e-3,
        weight_decay: 0.0,
        lr_schedule: LrSchedule::Constant,
        hidden: 4,
        skip: false,
        seed: 3,
    };
    let twin = crate::baselines::TwinConfig { samples: 100, epochs: 2, hidden: vec![8], ..Default::default() };
    let dims = [(6, 5), (4, 5)];
    let (mut systems, seen) = recording_blocks(&dims);
    let (twins, fits, prop_queries) =
        fit_block_twins(&mut systems, &x, &opts, &twin, 3, TwinInputs::Data { jitter: 0.0 }).unwrap();
    assert_eq!((twins.len(), fits.len()), (2, 2));
    // Propagation: block 1 is queried once on the data (block 2 only for its twin).
    assert_eq!(prop_queries, 40);
    assert_eq!(fits.iter().map(|(_, f)| f.physical_queries).collect::<Vec<_>>(), [100, 100]);
    let (s1, s2) = (seen[0].lock().unwrap().clone(), seen[1].lock().unwrap().clone());
    assert_eq!((s1.len(), s2.len()), (140, 100));
    // Block 1's twin inputs are data rows; block 2's are block 1's outputs through the
    // initial affine map that end-to-end training starts from (E2eTrainer, same seed).
    let data_rows: Vec<Vec<f64>> = (0..x.rows()).map(|r| x.row(r).to_vec()).collect();
    assert!(s1[40..].iter().all(|row| data_rows.contains(row)), "block 1 twin inputs are data rows");
    let (mut plain, _) = recording_blocks(&dims);
    let mut t = Counters::default();
    let blocks: Vec<BlockModel<f64>> = plain
        .drain(..)
        .map(|p| BlockModel::Pat {
            physical: p,
            twin: Box::new(Power { c: 1.0, a: 1.0, physical: false }),
            vjp_flops: 0,
        })
        .collect();
    let trainer = E2eTrainer::new(&blocks, 6, 3, &opts).unwrap();
    let mut first = Recording { d_in: 6, d_out: 5, seen: Seen::default() };
    let p = query(&mut first, &x, &mut t).unwrap();
    let h1 = trainer.net.affine[0].forward(p.view()).unwrap();
    let h1_rows: Vec<Vec<f64>> = (0..h1.rows()).map(|r| h1.row(r).to_vec()).collect();
    assert!(s2.iter().all(|row| h1_rows.contains(row)), "block 2 twin inputs are block 1's outputs");
    // Every data row is used (100 samples cycle through all 40).
    assert!(h1_rows.iter().all(|row| s2.contains(row)));
    // Same seed, same twins and inputs; another seed, another order.
    let (mut again, seen_again) = recording_blocks(&dims);
    let (twins_again, ..) = fit_block_twins(&mut again, &x, &opts, &twin, 3, TwinInputs::Data { jitter: 0.0 }).unwrap();
    assert_eq!(twins_again, twins);
    assert_eq!(*seen_again[1].lock().unwrap(), s2);
    let (mut other, seen_other) = recording_blocks(&dims);
    fit_block_twins(&mut other, &x, &opts, &twin, 4, TwinInputs::Data { jitter: 0.0 }).unwrap();
    assert_ne!(*seen_other[1].lock().unwrap(), s2);
    assert!(TwinInputs::from_flag("data", -0.1).is_err() && TwinInputs::from_flag("grid", 0.1).is_err());

    // Mixed: the first half uniform in the box of `initial_input_ranges`, the second half
    // block 2's own inputs (jitter 0).
    let (mut mixed, seen_mixed) = recording_blocks(&dims);
    let (ranges, _) = initial_input_ranges(&mut recording_blocks(&dims).0, &x, &opts).unwrap();
    fit_block_twins(&mut mixed, &x, &opts, &twin, 3, TwinInputs::Mixed { jitter: 0.0 }).unwrap();
    let s2m = seen_mixed[1].lock().unwrap().clone();
    let twin_rows = &s2m[s2m.len() - 100..];
    let (lo, hi) = ranges[1];
    assert!(twin_rows[..50].iter().flatten().all(|&v| lo <= v && v < hi));
    assert!(!twin_rows[..50].iter().any(|row| h1_rows.contains(row)), "box rows are not data rows");
    assert!(twin_rows[50..].iter().all(|row| h1_rows.contains(row)));
}

#[test]
fn twin_check_scores_the_twin_against_the_physics_and_the_mean_predictor() {
    let x = Matrix::from_fn(4, 1, |r, _| 1.0 + r as f64);
    let real = || Box::new(Power { c: 2.0, a: 1.0, physical: true });
    let mut t = Counters::default();
    // A perfect twin: RMSE 0; the mean predictor's is the sd of 2 x over x = 1..4.
    let mut exact =
        BlockModel::Pat { physical: real(), twin: Box::new(Power { c: 2.0, a: 1.0, physical: false }), vjp_flops: 0 };
    let (rmse, mean) = exact.twin_check(&x, &mut t).unwrap().unwrap();
    assert_eq!(rmse, 0.0);
    assert!((mean - 2.0 * 1.25f64.sqrt()).abs() < 1e-12, "{mean}");
    assert_eq!(t.physical_queries, 4, "the check queries the physics once per input");
    // A twin off by 10 %: RMSE 0.2 x in output units.
    let mut off = BlockModel::InSilico {
        physical: real(),
        twin: Box::new(Power { c: 2.2, a: 1.0, physical: false }),
        forward_flops: 0,
        vjp_flops: 0,
    };
    let (rmse, _) = off.twin_check(&x, &mut t).unwrap().unwrap();
    assert!((rmse - 0.2 * 7.5f64.sqrt()).abs() < 1e-12, "{rmse}");
    let mut ideal = BlockModel::Exact { system: Box::new(Power { c: 2.0, a: 1.0, physical: true }), vjp_flops: 0 };
    assert!(ideal.twin_check(&x, &mut t).unwrap().is_none());
}

#[test]
fn jitter_is_gaussian_at_the_stated_fraction_of_each_features_sd() {
    // Column 0 takes 0 or 2 (sd 1), column 1 is constant (sd 0, no jitter).
    let h = Matrix::<f64>::from_fn(2, 2, |r, c| if c == 0 { 2.0 * r as f64 } else { 5.0 });
    let m = jittered_rows(&h, 20_000, 0.1, 7);
    assert_eq!(m, jittered_rows(&h, 20_000, 0.1, 7), "deterministic for a seed");
    let res: Vec<f64> = (0..m.rows()).map(|r| m.get(r, 0) - if m.get(r, 0) > 1.0 { 2.0 } else { 0.0 }).collect();
    let mean = res.iter().sum::<f64>() / res.len() as f64;
    let sd = (res.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / res.len() as f64).sqrt();
    assert!(mean.abs() < 0.005 && (sd - 0.1).abs() < 0.005, "residual mean {mean}, sd {sd}");
    assert!((0..m.rows()).all(|r| m.get(r, 1) == 5.0));
    let ones = (0..m.rows()).filter(|&r| m.get(r, 0) > 1.0).count();
    assert_eq!(ones, 10_000, "rows are cycled, each source row equally often");
}

#[test]
fn pat_recovers_the_true_parameter_where_in_silico_does_not() {
    // Wright et al.'s reference setting: reality 2 x^1.1, twin 2.01 x^1.1 (0.5 % off).
    let twin = || Box::new(Power { c: 2.01, a: 1.1, physical: false });
    let real = || Box::new(Power { c: 2.0, a: 1.1, physical: true });
    let w_pat = fit_gain(BlockModel::Pat { physical: real(), twin: twin(), vjp_flops: 1 });
    let w_sil = fit_gain(BlockModel::InSilico { physical: real(), twin: twin(), forward_flops: 1, vjp_flops: 1 });
    // PAT's fixed point is where the *physical* output matches the target: w = 1.5.
    assert!((w_pat - 1.5).abs() < 1e-6, "PAT gain {w_pat}");
    // In-silico's is where the *twin* matches: 2.01 (w x)^1.1 = 2 (1.5 x)^1.1, so
    // w = 1.5 (2/2.01)^(1/1.1) = 1.49322..., 0.0068 off the true gain.
    let w_expected = 1.5 * (2.0f64 / 2.01).powf(1.0 / 1.1);
    assert!((w_sil - w_expected).abs() < 1e-6, "in-silico gain {w_sil} vs {w_expected}");
    assert!((w_sil - 1.5).abs() > 5e-3, "in-silico should miss the true gain, got {w_sil}");
}
