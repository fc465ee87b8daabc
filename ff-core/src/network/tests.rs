use super::*;
use crate::matrix::hcat;
use crate::rng::epoch_order;
use crate::system::{Identity, Zeros};
use rand::Rng as _;

/// Two Gaussian blobs per class in 6-D with 3 classes; reserved leading entries for labels.
fn toy(n: usize, seed: u64) -> (Matrix<f64>, Vec<usize>) {
    let mut rng = rng_for(seed, "toy");
    let mut y = Vec::new();
    let x = Matrix::from_fn(n, 9, |i, c| {
        let label = i % 3;
        if c == 0 {
            y.push(label);
        }
        if c < 3 {
            0.0
        } else {
            let centre = if (c - 3) / 2 == label { 2.0 } else { 0.0 };
            centre + 0.3 * rng.random_range(-1.0..1.0)
        }
    });
    (x, y)
}

fn net(seed: u64) -> Network<f64> {
    let specs = vec![
        BlockSpec { system: Box::new(Identity::new(9)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 8 },
        BlockSpec { system: Box::new(Zeros::new(8, 2)), skip: true, out_dim: 8 },
    ];
    let cfg = TrainConfig { optimizer: OptimizerConfig::adam(0.02), ..TrainConfig::default() };
    Network::new(9, LabelEmbedding::Overwrite { num_classes: 3 }, cfg, specs, seed).unwrap()
}

#[test]
fn learns_a_separable_toy_problem_deterministically() {
    let (x, y) = toy(90, 1);
    let run = |seed| {
        let mut n = net(seed);
        let mut rng = rng_for(seed, "negatives");
        for _ in 0..60 {
            n.train_batch(x.view(), &y, &mut rng).unwrap();
        }
        (n.accuracy(x.view(), &y).unwrap(), n.state())
    };
    let (acc, s1) = run(3);
    assert!(acc > 0.9, "accuracy {acc}");
    let (_, s2) = run(3);
    assert_eq!(s1, s2, "same seed must give the same bits");
}

#[test]
fn every_negative_mode_and_weight_decay_learn_the_toy_problem_deterministically() {
    let (x, y) = toy(90, 1);
    let run = |negatives, optimizer| {
        let specs = vec![
            BlockSpec { system: Box::new(Tanh(9)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 8 },
            BlockSpec { system: Box::new(Tanh(8)), skip: true, out_dim: 6 },
        ];
        let cfg = TrainConfig { optimizer, negatives, negative_temperature: 0.5, ..TrainConfig::default() };
        let mut n = Network::new(9, LabelEmbedding::Overwrite { num_classes: 3 }, cfg, specs, 3).unwrap();
        let mut rng = rng_for(3, "negatives");
        for _ in 0..60 {
            n.train_batch(x.view(), &y, &mut rng).unwrap();
        }
        (n.accuracy(x.view(), &y).unwrap(), n.counters(), n.state())
    };
    let adam = OptimizerConfig::adam(0.02);
    let (_, random, _) = run(NegativeMode::Random, adam);
    for (mode, opt) in [
        (NegativeMode::Hardest, adam),
        (NegativeMode::Sampled, adam),
        (NegativeMode::Random, OptimizerConfig::adamw(0.02, 0.1)),
    ] {
        let (acc, counters, state) = run(mode, opt);
        assert!(acc > 0.9, "{mode:?} {opt:?}: accuracy {acc}");
        assert_eq!(run(mode, opt).2, state, "{mode:?} {opt:?}: same seed, same bits");
        // Choosing by score runs every label through both blocks: K x L = 6 queries per
        // sample and batch more than random negatives (and the final accuracy's 6 per sample).
        let extra = if mode == NegativeMode::Random { 0 } else { 60 * 90 * 6 };
        assert_eq!(counters.physical_queries, random.physical_queries + extra, "{mode:?}");
    }
    let bad = TrainConfig { negative_temperature: 0.0, ..TrainConfig::default() }.validate().unwrap_err();
    assert!(bad.to_string().contains("negative_temperature"), "{bad}");
}

#[test]
fn the_same_bits_on_one_thread_and_on_three() {
    // 90 pairs: the inner steps run in two pieces (`pieces`), in parallel on three threads.
    assert_eq!(pieces(90), [(0, 45), (45, 90)]);
    let (x, y) = toy(90, 2);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut n = net(5);
            let mut rng = rng_for(5, "negatives");
            let losses: Vec<u64> = (0..5)
                .flat_map(|_| n.train_batch(x.view(), &y, &mut rng).unwrap().block_loss)
                .map(f64::to_bits)
                .collect();
            (losses, n.state())
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn two_pieces_train_as_the_whole_batch_up_to_rounding() {
    // The inner steps of one block, by hand on the whole stacked batch, against the network's
    // two pieces: the same updates up to the order of the gradient sums.
    let (x, y) = toy(90, 4);
    let mut a = net(6);
    let b = net(6);
    let neg = random_wrong_labels(&y, 3, &mut rng_for(6, "negatives"));
    a.train_batch(x.view(), &y, &mut rng_for(6, "negatives")).unwrap();
    // Reference for block 0 (identity system, no skip): embed, stack, n_inner steps.
    let value = x.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut hp, mut hn) = (Matrix::zeros(0, 0), Matrix::zeros(0, 0));
    b.embedding.embed_with_value(x.view(), &y, value, &mut hp).unwrap();
    b.embedding.embed_with_value(x.view(), &neg, value, &mut hn).unwrap();
    let mut u = Matrix::zeros(0, 0);
    crate::layer::stack_into(hp.view(), hn.view(), &mut u);
    let mut layer = b.blocks[0].layer.clone();
    let mut opt = b.blocks[0].optimizer.clone();
    let mut ws = Workspace::default();
    let mut grad = vec![0.0; layer.num_params()];
    for _ in 0..b.config.n_inner {
        layer.loss_and_grad_stacked(&b.config.loss, u.view(), &mut ws, &mut grad);
        opt.step(layer.params_mut(), &grad);
    }
    let got = a.blocks[0].layer.params();
    let max_diff = got.iter().zip(layer.params()).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
    assert!(max_diff < 1e-9, "pieces and whole batch differ by {max_diff}");
    assert_ne!(got, layer.params(), "the test should exercise a different order of sums");
}

#[test]
fn stacks_positives_and_negatives_piece_by_piece() {
    let hp = Matrix::from_fn(70, 2, |i, c| (10 * i + c) as f64);
    let hn = Matrix::from_fn(70, 2, |i, c| -((10 * i + c) as f64));
    let mut u = Matrix::zeros(0, 0);
    stack_pieces_into(hp.view(), hn.view(), &mut u);
    assert_eq!(pieces(70), [(0, 35), (35, 70)]);
    assert_eq!(u.row(0), hp.row(0));
    assert_eq!(u.row(34), hp.row(34));
    assert_eq!(u.row(35), hn.row(0));
    assert_eq!(u.row(70), hp.row(35));
    assert_eq!(u.row(105), hn.row(35));
    assert_eq!(u.row(139), hn.row(69));
    // Below the threshold: one piece, the plain stacking.
    let mut plain = Matrix::zeros(0, 0);
    stack_pieces_into(hp.view().slice_rows(0, 10), hn.view().slice_rows(0, 10), &mut u);
    crate::layer::stack_into(hp.view().slice_rows(0, 10), hn.view().slice_rows(0, 10), &mut plain);
    assert_eq!(u, plain);
}

#[test]
fn scores_from_a_later_block_count_only_its_goodness() {
    let (x, y) = toy(30, 7);
    let mut n = net(8);
    let mut rng = rng_for(8, "negatives");
    for _ in 0..5 {
        n.train_batch(x.view(), &y, &mut rng).unwrap();
    }
    let all = n.scores(x.view()).unwrap();
    assert_eq!(n.scores_from(x.view(), 0).unwrap(), all);
    let later = n.scores_from(x.view(), 1).unwrap();
    // By hand: block 1 sees [Zeros(z0); z0] (skip) with z0 block 0's output.
    let value = x.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for c in 0..3 {
        let mut h = Matrix::zeros(0, 0);
        n.embedding.embed_with_value(x.view(), &vec![c; x.rows()], value, &mut h).unwrap();
        let (mut z0, mut z1, mut g) = (Matrix::zeros(0, 0), Matrix::zeros(0, 0), Vec::new());
        n.blocks[0].layer.forward(h.view(), &mut z0);
        let u1 = hcat(Matrix::zeros(x.rows(), 2).view(), z0.view()).unwrap();
        n.blocks[1].layer.forward(u1.view(), &mut z1);
        n.blocks[1].layer.goodness_batch(z1.view(), &mut g);
        for (i, &gi) in g.iter().enumerate() {
            let got = later.row(i)[c];
            assert!((got - gi).abs() < 1e-12, "sample {i} label {c}: {got} vs {gi}");
        }
    }
    assert_ne!(later, all);
    let err = n.scores_from(x.view(), 2).unwrap_err().to_string();
    assert!(err.contains("0 to 1") && err.contains("got 2"), "{err}");
    assert_eq!(n.accuracy_from(x.view(), &y, 0).unwrap().to_bits(), n.accuracy(x.view(), &y).unwrap().to_bits());
}

#[test]
fn rejects_bad_input_and_bad_config() {
    let mut n = net(0);
    let mut rng = rng_for(0, "n");
    let x = Matrix::<f64>::zeros(2, 8);
    assert!(n.train_batch(x.view(), &[0, 1], &mut rng).is_err());
    let mut x = Matrix::<f64>::zeros(2, 9);
    assert!(matches!(n.train_batch(x.view(), &[0, 3], &mut rng), Err(CoreError::Label { label: 3, .. })));
    // Evaluation checks the labels itself and the samples through `scores_from`.
    assert!(matches!(n.accuracy(x.view(), &[0, 3]), Err(CoreError::Label { label: 3, row: 1, .. })));
    assert!(matches!(n.accuracy(x.view(), &[0]), Err(CoreError::Shape { .. })));
    assert!(matches!(n.accuracy(Matrix::<f64>::zeros(2, 8).view(), &[0, 1]), Err(CoreError::Shape { .. })));
    x.data_mut()[5] = f64::NAN;
    assert!(n.train_batch(x.view(), &[0, 1], &mut rng).is_err());
    let err = n.accuracy(x.view(), &[0, 1]).unwrap_err().to_string();
    assert!(err.contains("non-finite") && err.contains("row 0"), "{err}");
    let bad = TrainConfig { n_inner: 0, ..TrainConfig::default() };
    let specs =
        vec![BlockSpec { system: Box::new(Identity::new(9)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 4 }];
    assert!(Network::new(9, LabelEmbedding::Overwrite { num_classes: 3 }, bad, specs, 0).is_err());
    let specs =
        vec![BlockSpec { system: Box::new(Identity::new(5)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 4 }];
    let e = Network::new(9, LabelEmbedding::Overwrite { num_classes: 3 }, TrainConfig::default(), specs, 0);
    assert!(matches!(e, Err(CoreError::Shape { .. })));
}

#[test]
fn a_saved_state_that_does_not_fit_the_blocks_is_refused() {
    let n = net(1);
    let state = n.state();
    let cfg = n.config().clone();
    let systems = || {
        vec![(Box::new(Identity::new(9)) as Box<dyn PhysicalSystem<f64>>, false), (Box::new(Zeros::new(8, 2)), true)]
    };
    let restore = |s: NetworkState<f64>| {
        let emb = LabelEmbedding::Overwrite { num_classes: 3 };
        Network::from_state(9, emb, cfg.clone(), systems(), s).map(|_| ()).unwrap_err().to_string()
    };
    // Through a file: the optimiser state of block 1 is one short, a layer is missing.
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<NetworkState<f64>>(&json).unwrap(), state);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["optimizers"][1]["m"].as_array_mut().unwrap().pop();
    v["optimizers"][1]["v"].as_array_mut().unwrap().pop();
    let e = serde_json::from_value::<NetworkState<f64>>(v.clone()).unwrap_err().to_string();
    assert!(e.contains("block 1: optimizers[1]") && e.contains("88 parameters of layers[1] (10 -> 8)"), "{e}");
    assert!(e.contains("state for 87"), "{e}");
    v["layers"].as_array_mut().unwrap().pop();
    let e = serde_json::from_value::<NetworkState<f64>>(v).unwrap_err().to_string();
    assert!(e.contains("one optimiser state per layer (1 layers)") && e.contains("2 optimiser states"), "{e}");
    // Built by hand (no file): the same check.
    let mut s = state.clone();
    s.optimizers[0] = Optimizer::new(cfg.optimizer, 3);
    assert!(restore(s).contains("block 0: optimizers[0]"));
    // Block 0 put out 7 values where block 1's system takes 8.
    let mut s = state.clone();
    let g = cfg.goodness;
    s.layers[0] = LocalLayer::from_parts(9, 7, vec![0.0; 70], vec![0.5; 7], g).unwrap();
    s.optimizers[0] = Optimizer::new(cfg.optimizer, 70);
    let e = restore(s);
    assert!(e.contains("block 1 (") && e.contains("input_len 7") && e.contains("block 0's out_dim"), "{e}");
    // Block 1's layer reads 11 values where the system gives 2 and the skip 8.
    let mut s = state.clone();
    s.layers[1] = LocalLayer::from_parts(11, 8, vec![0.0; 96], vec![0.5; 8], g).unwrap();
    s.optimizers[1] = Optimizer::new(cfg.optimizer, 96);
    let e = restore(s);
    assert!(e.contains("block 1 layer d_in") && e.contains("system's 2 outputs + the block input 8 (skip)"), "{e}");
    assert!(e.contains("got 11"), "{e}");
    // Another goodness or another optimiser than configured.
    let mut s = state.clone();
    let other = Goodness::MeanSquares { activation: crate::Activation::Relu };
    s.layers[0] = LocalLayer::from_parts(9, 8, state.layers[0].params().to_vec(), vec![0.5; 8], other).unwrap();
    assert!(restore(s).contains("block 0 layer goodness"));
    let mut s = state.clone();
    s.optimizers[1] = Optimizer::new(OptimizerConfig::adam(0.5), 88);
    assert!(restore(s).contains("block 1 optimiser"));
}

/// An element-wise `tanh`: a nonlinear stand-in counted as a physical system.
struct Tanh(usize);

impl PhysicalSystem<f64> for Tanh {
    fn name(&self) -> String {
        format!("tanh({})", self.0)
    }
    fn input_len(&self) -> usize {
        self.0
    }
    fn output_len(&self) -> usize {
        self.0
    }
    fn forward_batch(
        &mut self,
        input: MatRef<'_, f64>,
        mut output: crate::MatMut<'_, f64>,
    ) -> std::result::Result<(), crate::SystemError> {
        crate::check_batch("tanh", self.0, self.0, &input, &output)?;
        output.data_mut().iter_mut().zip(input.data()).for_each(|(o, i)| *o = i.tanh());
        Ok(())
    }
}

fn tanh_net(seed: u64) -> Network<f64> {
    let specs = vec![
        BlockSpec { system: Box::new(Tanh(9)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 8 },
        BlockSpec { system: Box::new(Tanh(8)), skip: true, out_dim: 6 },
    ];
    let cfg = TrainConfig { optimizer: OptimizerConfig::adam(0.02), n_inner: 3, ..TrainConfig::default() };
    Network::new(9, LabelEmbedding::Overwrite { num_classes: 3 }, cfg, specs, seed).unwrap()
}

#[test]
fn unsupervised_training_changes_the_weights_deterministically() {
    let (x, _) = toy(30, 4);
    let hybrids = crate::hybrid::HybridNegatives::vector(9);
    let run = |seed| {
        let mut n = tanh_net(seed);
        let before = n.state();
        let mut rng = rng_for(seed, "hybrids");
        let mut losses = Vec::new();
        for _ in 0..5 {
            let neg = hybrids.generate(x.view(), &mut rng).unwrap();
            losses.push(n.train_batch_unsupervised(x.view(), neg.x.view()).unwrap().block_loss);
        }
        (before, n.state(), losses, n.counters())
    };
    let (before, after, losses, counters) = run(2);
    for (b, a) in before.layers.iter().zip(&after.layers) {
        assert_ne!(b.params(), a.params(), "every block must learn");
    }
    assert!(losses.iter().flatten().all(|l| l.is_finite()));
    // 5 batches x (positives + negatives) x 30 samples x 2 physical blocks.
    assert_eq!(counters.physical_queries, 5 * 2 * 30 * 2);
    let (before2, after2, losses2, _) = run(2);
    assert_eq!((before, after.clone()), (before2, after2), "same seed must give the same bits");
    assert_eq!(losses, losses2);
    let (_, other, _, _) = run(3);
    assert_ne!(after, other);
}

#[test]
fn activities_are_the_passed_on_outputs_with_blank_labels() {
    let (x, _) = toy(5, 6);
    let mut n = tanh_net(1);
    let a = n.activities(x.view()).unwrap();
    assert_eq!((a.rows(), a.cols()), (5, 8 + 6));
    assert_eq!(n.activity_len(), 14);
    assert_eq!(n.counters().physical_queries, 5 * 2);
    // By hand: all label entries zero, then block by block.
    let mut h = x.clone();
    for i in 0..5 {
        h.row_mut(i)[..3].fill(0.0);
    }
    let mut col = 0;
    for b in 0..2 {
        let mut u = Matrix::default();
        n.physical_input(b, &h, &mut u).unwrap();
        let mut z = Matrix::zeros(0, 0);
        n.blocks[b].layer.forward(u.view(), &mut z);
        h = n.pass_on(b, z);
        for i in 0..5 {
            assert_eq!(&a.row(i)[col..col + h.cols()], h.row(i));
        }
        col += h.cols();
    }
    // A value in a label slot is a feature the blank label would destroy: an error.
    let mut noisy = x.clone();
    noisy.row_mut(2)[1] = 7.0;
    let err = n.activities(noisy.view()).unwrap_err().to_string();
    assert!(err.contains("row 2, column 1"), "{err}");
    // Bad input.
    assert!(n.activities(Matrix::<f64>::zeros(2, 4).view()).is_err());
    let e = n.train_batch_unsupervised(x.view(), x.slice_rows(0, 3).view());
    assert!(matches!(e, Err(CoreError::Shape { .. })), "{e:?}");
}

#[test]
fn overwrite_on_data_without_reserved_slots_is_an_error_and_prepend_keeps_the_features() {
    // The toy features without their 3 reserved zero columns: the class sits in columns 0..6.
    let (x, y) = toy(90, 1);
    let features = Matrix::from_fn(90, 6, |r, c| x.get(r, c + 3));
    let specs =
        |d| vec![BlockSpec { system: Box::new(Tanh(d)) as Box<dyn PhysicalSystem<f64>>, skip: true, out_dim: 8 }];
    let cfg = TrainConfig { optimizer: OptimizerConfig::adam(0.02), ..TrainConfig::default() };
    let overwrite = LabelEmbedding::Overwrite { num_classes: 3 };
    let mut n = Network::new(6, overwrite, cfg.clone(), specs(6), 1).unwrap();
    let mut rng = rng_for(1, "negatives");
    let err = n.train_batch(features.view(), &y, &mut rng).unwrap_err().to_string();
    assert!(err.contains("column 0") && err.contains("Prepend"), "{err}");
    assert!(n.scores(features.view()).is_err());
    let plan = FitPlan { epochs: 1, batch_size: 30, seed: 1 };
    assert!(n.fit(features.view(), &y, plan, |_, _| Ok(())).is_err());
    assert_eq!(n.counters(), Counters::default(), "nothing may be trained or queried");
    // Prepend: 3 label entries + 6 features, the same embedded vectors as the reserved toy.
    let prepend = LabelEmbedding::Prepend { num_classes: 3 };
    let mut p = Network::new(6, prepend, cfg.clone(), specs(9), 1).unwrap();
    let mut r = Network::new(9, overwrite, cfg, specs(9), 1).unwrap();
    for _ in 0..30 {
        let a = p.train_batch(features.view(), &y, &mut rng_for(2, "n")).unwrap();
        let b = r.train_batch(x.view(), &y, &mut rng_for(2, "n")).unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(p.state(), r.state());
    assert!(p.accuracy(features.view(), &y).unwrap() > 0.9);
}

#[test]
fn the_width_rule_is_checked_when_the_network_is_built() {
    // Block 1 is given a system of input_len 10 where block 0 passes on out_dim = 8: the
    // usual slip is to count the skip (8 + 2) into the next block's input.
    let specs = vec![
        BlockSpec { system: Box::new(Zeros::new(9, 2)) as Box<dyn PhysicalSystem<f64>>, skip: true, out_dim: 8 },
        BlockSpec { system: Box::new(Tanh(10)), skip: true, out_dim: 6 },
    ];
    let emb = LabelEmbedding::Overwrite { num_classes: 3 };
    let err = Network::new(9, emb, TrainConfig::default(), specs, 0).err().expect("widths disagree");
    assert!(matches!(err, CoreError::Shape { .. }), "{err:?}");
    let msg = err.to_string();
    for part in
        ["block 1 (tanh(10)", "input_len 10", "output_len 10", "skip = true", "input_len 8", "block 0's out_dim"]
    {
        assert!(msg.contains(part), "missing {part:?} in: {msg}");
    }
    assert!(msg.contains("output_len + 8 = 18"), "{msg}");
    // Block 0 takes the embedded sample: with Prepend that is K + raw_len.
    let specs = vec![BlockSpec { system: Box::new(Tanh(6)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 4 }];
    let msg = Network::new(6, LabelEmbedding::Prepend { num_classes: 3 }, TrainConfig::default(), specs, 0)
        .err()
        .expect("block 0 too narrow")
        .to_string();
    for part in ["block 0 (tanh(6)", "input_len 9", "3 label entries (Prepend) + raw_len 6", "skip = false"] {
        assert!(msg.contains(part), "missing {part:?} in: {msg}");
    }
    // Zero widths are named too.
    let specs =
        vec![BlockSpec { system: Box::new(Zeros::new(9, 0)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 4 }];
    let msg = Network::new(9, emb, TrainConfig::default(), specs, 0).err().expect("no layer input").to_string();
    assert!(msg.contains("block 0") && msg.contains("output_len 0") && msg.contains("skip = true"), "{msg}");
    let specs = vec![BlockSpec { system: Box::new(Tanh(9)) as Box<dyn PhysicalSystem<f64>>, skip: false, out_dim: 0 }];
    let msg = Network::new(9, emb, TrainConfig::default(), specs, 0).err().expect("no output").to_string();
    assert!(msg.contains("out_dim") && msg.contains("block 0"), "{msg}");
}

#[test]
fn fit_is_the_epoch_loop_of_shuffled_mini_batches() {
    let (x, y) = toy(50, 3);
    let plan = FitPlan { epochs: 3, batch_size: 16, seed: 4 };
    let mut seen = Vec::new();
    let mut a = tanh_net(2);
    let reports = a
        .fit(x.view(), &y, plan, |net, r| {
            seen.push((r.epoch, r.batches, net.accuracy(x.view(), &y)?));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), vec![(1, 4), (2, 4), (3, 4)]);
    assert_eq!(reports.len(), 3);
    // By hand: the per-epoch order cut into 16, 16, 16, 2; negatives from `negatives/{epoch}`.
    let mut b = tanh_net(2);
    for epoch in 1..=3u64 {
        let mut rng = rng_for(4, &format!("negatives/{epoch}"));
        let mut loss = [0.0; 2];
        for idx in epoch_order(50, 4, epoch).chunks(16) {
            let xb = x.select_rows(idx);
            let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            let s = b.train_batch(xb.view(), &yb, &mut rng).unwrap();
            loss.iter_mut().zip(&s.block_loss).for_each(|(t, l)| *t += l / 4.0);
        }
        let got = &reports[epoch as usize - 1].loss;
        assert!(got.iter().zip(&loss).all(|(g, l)| (g - l).abs() < 1e-12), "{got:?} vs {loss:?}");
    }
    assert_eq!(a.state(), b.state(), "evaluating in the callback must not change training");
    // A batch of the whole set trains on the samples in their own order, one batch an epoch.
    let mut c = tanh_net(2);
    let whole = c.fit(x.view(), &y, FitPlan { batch_size: 0, ..plan }, |_, _| Ok(())).unwrap();
    assert!(whole.iter().all(|r| r.batches == 1));
    let mut d = tanh_net(2);
    for epoch in 1..=3 {
        d.train_batch(x.view(), &y, &mut rng_for(4, &format!("negatives/{epoch}"))).unwrap();
    }
    assert_eq!(c.state(), d.state());
    // Errors: no epochs, no samples, wrong labels, and the callback's own error.
    assert!(c.fit(x.view(), &y, FitPlan { epochs: 0, ..plan }, |_, _| Ok(())).is_err());
    let empty = Matrix::<f64>::zeros(0, 9);
    assert!(c.fit(empty.view(), &[], plan, |_, _| Ok(())).is_err());
    assert!(matches!(c.fit(x.view(), &y[1..], plan, |_, _| Ok(())), Err(CoreError::Shape { .. })));
    let mut calls = 0;
    let stop = c.fit(x.view(), &y, plan, |_, _| {
        calls += 1;
        Err(CoreError::config("stop", "asked to"))
    });
    assert!(matches!(stop, Err(CoreError::Config { .. })) && calls == 1);
}

#[test]
fn stacked_scores_equal_per_label_scores() {
    let (x, _) = toy(7, 2);
    let mut n = net(5);
    let s = n.scores(x.view()).unwrap();
    // Score each label separately by running one sample at a time with a fixed label value.
    let value = x.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for c in 0..3 {
        let mut h = Matrix::zeros(0, 0);
        n.embedding.embed_with_value(x.view(), &[c; 7], value, &mut h).unwrap();
        let mut total = [0.0; 7];
        for b in 0..2 {
            let mut u = Matrix::default();
            n.physical_input(b, &h, &mut u).unwrap();
            let mut z = Matrix::zeros(0, 0);
            n.blocks[b].layer.forward(u.view(), &mut z);
            let mut g = Vec::new();
            n.blocks[b].layer.goodness_batch(z.view(), &mut g);
            total.iter_mut().zip(&g).for_each(|(t, v)| *t += v);
            h = n.pass_on(b, z);
        }
        for (i, t) in total.iter().enumerate() {
            assert!((s.get(i, c) - t).abs() < 1e-12);
        }
    }
    assert_eq!(argmax(&[1.0, 3.0, 3.0, f64::NAN]), 1);
}
