//! The phyff side of `cargo xtask bench-peers`: seconds per PhyLL training epoch of
//! `ff_core::Network`, and everything the PyTorch peer (`ff-bench/peers/phyll_torch.py`) needs to
//! run the identical schedule on the same data, seed and shapes.
//!
//! ```text
//! cargo run --release -p ff-bench --example peer_epoch -- --config acoustic-vowels --out DIR [--quick]
//! ```
//!
//! Configurations (the paper's hyper-parameters, see docs/science.md):
//! - `acoustic-vowels`: 2 blocks, skip (`u = [p; h]`, 40 wide), affine 40 -> 20, the physical layer
//!   an MLP emulator 20 -> 100 -> 200 -> 100 -> 20 SiLU (`ff_train::systems::twin::Twin`, fitted to the
//!   measured acoustic pairs), lr 5e-4, n_inner 10, full batch of 206 vowels, alpha 4, f32.
//!   One timed unit is one whole epoch (one batch).
//! - `optics-mnist`: 2 blocks, affine 676 -> 676, phyff's `OpticsSystem` on a 51 x 51 field
//!   (MNIST with label bands, 48 x 28, tiled; block 2 upsamples the 26 x 26 output x2), pupils of
//!   15.4 px (phyff's default pupil fraction of the field), a Haar-unitary medium, amplitude
//!   detection, 3 x 3 stride 2 pad 1 pooling to 26 x 26; lr 5e-5, n_inner 20, batch 10 000,
//!   alpha 5, f64. One timed unit is one batch; seconds per epoch = seconds per batch x 6.
//!
//! Written to `DIR`: `manifest.json` (configuration, the block systems' exact parameters, the
//! initial layers and prototypes, the check values) with the arrays beside it as raw
//! little-endian files, and `phyff.json` (the timings). Before timing, both sides train one
//! check batch from the same initial state with the same negative labels; the peer compares its
//! per-block losses with phyff's, which shows that the two run the same computation.
//! Evaluation is never timed.

use anyhow::{bail, ensure, Context, Result};
use ff_core::embed::random_wrong_labels;
use ff_core::rng::rng_for;
use ff_core::{
    hcat, BlockSpec, LabelEmbedding, LocalLayer, Matrix, Network, Optimizer, PhysicalSystem, Real, TrainConfig,
};
use ff_data::{epoch_order, read_pairs, Dataset, Layout};
use ff_physics::fft::FftReal;
use ff_physics::optics::{draw_transmission, pupil_indices};
use ff_physics::slm::SlmMap;
use ff_physics::{Detection, Encoding, MediumKind, OpticsConfig, Pooling};
use ff_train::config::{ExperimentConfig, Precision, SystemKind};
use ff_train::run::prepare;
use ff_train::systems::twin::{Twin, TwinConfig};
use ff_train::systems::{build_blocks, optics_for_block};
use rand::Rng as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

const USAGE: &str = "usage: peer_epoch --config acoustic-vowels|optics-mnist --out DIR [options]

  --quick              fewer repetitions; optics: batch 1 000 instead of 10 000
  --warmup N           untimed units before timing (default: acoustic 10, optics 0)
  --repeats N          timed units; the median is reported (default: acoustic 50, optics 3)
  --seed N             seed of the data split, weights, prototypes, negatives and medium (default 0)
  --vowels FILE        a vowel file (default: the 7-vowel subset built into phyff)
  --acoustic-pairs DIR x_data.csv and y_data.csv, the measured pairs the emulator is fitted to
                       (default: the measured acoustic pairs built into phyff)
  --mnist DIR          MNIST IDX files (default data/mnist); random data of MNIST's shape if absent";

/// Command-line options.
struct Opts {
    config: String,
    out: PathBuf,
    quick: bool,
    warmup: Option<usize>,
    repeats: Option<usize>,
    seed: u64,
    /// A vowel file; `None`: the built-in subset.
    vowels: Option<PathBuf>,
    /// A directory of `x_data.csv`/`y_data.csv`; `None`: the built-in measured pairs.
    acoustic_pairs: Option<PathBuf>,
    mnist: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn parse_args() -> Result<Opts> {
    let root = workspace_root();
    let mut o = Opts {
        config: String::new(),
        out: PathBuf::new(),
        quick: false,
        warmup: None,
        repeats: None,
        seed: 0,
        vowels: None,
        acoustic_pairs: None,
        mnist: root.join("data/mnist"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--config" => o.config = value()?.clone(),
            "--out" => o.out = PathBuf::from(value()?),
            "--quick" => o.quick = true,
            "--warmup" => o.warmup = Some(value()?.parse().context("--warmup takes a count")?),
            "--repeats" => o.repeats = Some(value()?.parse().context("--repeats takes a count")?),
            "--seed" => o.seed = value()?.parse().context("--seed takes an integer")?,
            "--vowels" => o.vowels = Some(PathBuf::from(value()?)),
            "--acoustic-pairs" => o.acoustic_pairs = Some(PathBuf::from(value()?)),
            "--mnist" => o.mnist = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    ensure!(!o.config.is_empty(), "which configuration? --config acoustic-vowels|optics-mnist\n\n{USAGE}");
    ensure!(!o.out.as_os_str().is_empty(), "--out DIR is required\n\n{USAGE}");
    if o.repeats == Some(0) {
        bail!("--repeats must be at least 1");
    }
    Ok(o)
}

/// Raw little-endian arrays beside the manifest, described in it by file, dtype and shape.
struct Arrays {
    dir: PathBuf,
    /// Whether real arrays are written as f64 (else f32): the configuration's precision.
    f64: bool,
}

impl Arrays {
    fn write(&self, name: &str, dtype: &str, shape: &[usize], bytes: Vec<u8>) -> Result<Value> {
        let file = format!("{name}.bin");
        std::fs::write(self.dir.join(&file), bytes).with_context(|| format!("cannot write {file}"))?;
        Ok(json!({ "file": file, "dtype": dtype, "shape": shape }))
    }

    /// Real values in the configuration's precision.
    fn real<F: Real>(&self, name: &str, shape: &[usize], values: &[F]) -> Result<Value> {
        ensure!(shape.iter().product::<usize>() == values.len(), "array {name}: shape {shape:?} vs {}", values.len());
        let mut bytes = Vec::with_capacity(values.len() * if self.f64 { 8 } else { 4 });
        for v in values {
            let v = v.to_f64().unwrap_or(f64::NAN);
            if self.f64 {
                bytes.extend_from_slice(&v.to_le_bytes());
            } else {
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            }
        }
        self.write(name, if self.f64 { "f64" } else { "f32" }, shape, bytes)
    }

    /// Real values kept in f64 whatever the precision (the medium is drawn in f64).
    fn real64(&self, name: &str, shape: &[usize], values: impl Iterator<Item = f64>) -> Result<Value> {
        let bytes: Vec<u8> = values.flat_map(f64::to_le_bytes).collect();
        ensure!(bytes.len() == 8 * shape.iter().product::<usize>(), "array {name}: wrong length for {shape:?}");
        self.write(name, "f64", shape, bytes)
    }

    /// Integer indices or labels (`-1` marks "none").
    fn index(&self, name: &str, values: &[i64]) -> Result<Value> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(name, "i64", &[values.len()], bytes)
    }
}

/// One configuration, ready to run.
struct Setup<F: Real> {
    name: &'static str,
    precision: &'static str,
    /// Where the data came from (and whether it is real).
    data_note: String,
    /// How the physical layer was made.
    system_note: String,
    train: Dataset<F>,
    /// Training samples in one epoch (the dataset may hold only the timed batch).
    epoch_rows: usize,
    /// Row indices of the timed batch in `train` (the first batch of epoch 1).
    batch_idx: Vec<usize>,
    embedding: LabelEmbedding,
    train_config: TrainConfig,
    /// For the timed network.
    specs: Vec<BlockSpec<F>>,
    /// A second, identical set of systems for the phase breakdown.
    breakdown_specs: Vec<BlockSpec<F>>,
    /// Per block: the manifest description of its physical system.
    systems: Vec<Value>,
    /// "epoch" (the batch is the whole epoch) or "batch".
    unit: &'static str,
    warmup: usize,
    repeats: usize,
    breakdown_repeats: usize,
    check_rows: usize,
    /// Largest relative difference of the check losses that counts as "the same computation".
    check_tolerance: f64,
}

fn twin_description<F: Real>(twin: &Twin<F>, arrays: &Arrays) -> Result<Value> {
    // The twin's standardisation is private to ff-train; its serialised form carries it.
    let v = serde_json::to_value(twin).context("serialising the twin")?;
    let field = |path: &[&str]| -> Result<Vec<F>> {
        let mut cur = &v;
        for p in path {
            cur = cur.get(p).with_context(|| format!("the twin's serialised form has no {}", path.join(".")))?;
        }
        let arr = cur.as_array().with_context(|| format!("twin field {} is not an array", path.join(".")))?;
        arr.iter()
            .map(|x| x.as_f64().map(F::c).with_context(|| format!("twin field {} holds a non-number", path.join("."))))
            .collect()
    };
    let sizes = twin.mlp().sizes().to_vec();
    let acts = v
        .pointer("/mlp/activations")
        .and_then(Value::as_array)
        .context("the twin's serialised form has no mlp.activations")?
        .clone();
    let params = twin.mlp().params();
    let d_in = sizes[0];
    let d_out = *sizes.last().expect("an MLP has sizes");
    Ok(json!({
        "kind": "mlp_twin",
        "sizes": sizes,
        "activations": acts,
        "params": arrays.real("twin_params", &[params.len()], params)?,
        "in_mean": arrays.real("twin_in_mean", &[d_in], &field(&["in_mean"])?)?,
        "in_sd": arrays.real("twin_in_sd", &[d_in], &field(&["in_sd"])?)?,
        "out_mean": arrays.real("twin_out_mean", &[d_out], &field(&["out_mean"])?)?,
        "out_sd": arrays.real("twin_out_sd", &[d_out], &field(&["out_sd"])?)?,
    }))
}

/// The acoustic emulator: an MLP twin 20 -> 100 -> 200 -> 100 -> 20 (SiLU) fitted to the
/// measured pairs (the built-in ones unless `--acoustic-pairs` names others).
fn acoustic_twin<F: Real>(o: &Opts) -> Result<(Twin<F>, String)> {
    let cfg = TwinConfig {
        hidden: vec![100, 200, 100],
        epochs: 3,
        batch_size: 64,
        lr: 2e-3,
        val_fraction: 0.1,
        seed: o.seed,
        ..TwinConfig::default()
    };
    let ((x, y), from) = match &o.acoustic_pairs {
        Some(dir) => {
            let (xp, yp) = (dir.join("x_data.csv"), dir.join("y_data.csv"));
            (
                read_pairs::<F>(&xp, &yp).with_context(|| format!("reading {}", dir.display()))?,
                dir.display().to_string(),
            )
        }
        None => (ff_data::builtin_acoustic_pairs::<F>()?, "phyff's built-in measurements".to_string()),
    };
    ensure!(x.cols() == 20 && y.cols() == 20, "the acoustic pairs must be 20 -> 20, got {} -> {}", x.cols(), y.cols());
    // The first measured row is all zeros (no excitation); it is not a measurement.
    let rows: Vec<usize> = (1..x.rows()).collect();
    let (x, y) = (x.select_rows(&rows), y.select_rows(&rows));
    let (twin, fit) = Twin::fit_pairs("acoustic emulator", &x, &y, &cfg)?;
    let note = format!(
        "MLP emulator 20-100-200-100-20 SiLU fitted for {} epochs to the {} measured pairs of {from} (validation RMSE {:.4}, mean predictor {:.4})",
        cfg.epochs,
        x.rows(),
        fit.val_rmse,
        fit.val_rmse_of_mean
    );
    Ok((twin, note))
}

fn acoustic_vowels(o: &Opts, arrays: &Arrays) -> Result<Setup<f32>> {
    let cfg = ExperimentConfig {
        seed: o.seed,
        precision: Precision::F32,
        data: o.vowels.as_ref().map_or_else(|| "vowels".to_string(), |v| format!("vowels:{}", v.display())),
        system: SystemKind::Acoustic,
        blocks: 2,
        hidden: 20,
        skip: Some(true),
        batch_size: 0,
        lr: 5e-4,
        n_inner: 10,
        alpha: 4.0,
        ..ExperimentConfig::default()
    };
    cfg.validate()?;
    let prep = prepare::<f32>(&cfg)?;
    ensure!(prep.data.train.dim() == 20, "vowels: expected 20 features per sample, got {}", prep.data.train.dim());
    let (twin, system_note) = acoustic_twin::<f32>(o)?;
    let spec = |t: &Twin<f32>| BlockSpec {
        system: Box::new(t.clone()) as Box<dyn PhysicalSystem<f32>>,
        skip: true,
        out_dim: cfg.hidden,
    };
    let desc = twin_description(&twin, arrays)?;
    let n = prep.data.train.len();
    let (warmup, repeats) = if o.quick { (3, 10) } else { (10, 50) };
    Ok(Setup {
        name: "acoustic-vowels",
        precision: "f32",
        data_note: format!(
            "vowels: {} ({n} training tokens, the paper's split, seed {})",
            o.vowels.as_ref().map_or_else(|| "the built-in 7-vowel subset".to_string(), |v| v.display().to_string()),
            o.seed
        ),
        system_note,
        epoch_rows: n,
        batch_idx: (0..n).collect(),
        embedding: prep.embedding,
        train_config: cfg.train_config(),
        specs: vec![spec(&twin), spec(&twin)],
        breakdown_specs: vec![spec(&twin), spec(&twin)],
        systems: vec![desc.clone(), desc],
        train: prep.data.train,
        unit: "epoch",
        warmup: o.warmup.unwrap_or(warmup),
        repeats: o.repeats.unwrap_or(repeats),
        breakdown_repeats: o.repeats.unwrap_or(repeats),
        check_rows: n,
        check_tolerance: 1e-3,
    })
}

/// phyff's optical system for MNIST at the PhyLL table's size: 676 = 26 x 26 features.
fn mnist_optics() -> OpticsConfig {
    // phyff's default pupil passes radius 9.66 px of a 32 px field; the same fraction of 51 px.
    let r = 15.4;
    OpticsConfig {
        field_size: 51,
        encoding: Encoding::Amplitude,
        input_pupil_radius_px: r,
        output_pupil_radius_px: r,
        medium: MediumKind::Unitary,
        detection: Detection::Amplitude,
        pooling: Pooling { kernel: 3, stride: 2, padding: 1 },
        seed: 0,
        ..OpticsConfig::default()
    }
}

/// Transmission matrices already written: (ensemble, m_out, m_in, seed) -> real and imaginary arrays.
type MediaCache = Vec<((MediumKind, usize, usize, u64), Value, Value)>;

/// The manifest description of one block's optical system. `media` caches the transmission
/// matrices already drawn (every block queries the same medium; a Haar draw is a complex QR).
fn optics_description(o: &OpticsConfig, k: usize, arrays: &Arrays, media: &mut MediaCache) -> Result<Value> {
    let n = o.field_size;
    let slm = SlmMap::new(o.placement, o.input_shape, (n, n), "optics")?;
    let src: Vec<i64> = (0..n * n).map(|p| slm.source(p).map_or(-1, |s| s as i64)).collect();
    let pin = pupil_indices(n, o.input_pupil_radius_px);
    let pout = pupil_indices(n, o.output_pupil_radius_px);
    let key = (o.medium, pout.len(), pin.len(), o.seed);
    let (re, im) = match media.iter().find(|(k2, _, _)| *k2 == key) {
        Some((_, re, im)) => (re.clone(), im.clone()),
        None => {
            let t = draw_transmission(o.medium, pout.len(), pin.len(), o.seed);
            let shape = [pout.len(), pin.len()];
            let re = arrays.real64(&format!("b{k}_medium_re"), &shape, t.iter().map(|z| z.re))?;
            let im = arrays.real64(&format!("b{k}_medium_im"), &shape, t.iter().map(|z| z.im))?;
            media.push((key, re.clone(), im.clone()));
            (re, im)
        }
    };
    let to_i64 = |v: &[usize]| v.iter().map(|&i| i as i64).collect::<Vec<_>>();
    Ok(json!({
        "kind": "optics",
        "field_size": n,
        "input_shape": [o.input_shape.0, o.input_shape.1],
        "encoding": match o.encoding { Encoding::Amplitude => "amplitude", Encoding::Phase => "phase" },
        "slm_source": arrays.index(&format!("b{k}_slm_source"), &src)?,
        "pupil_in": arrays.index(&format!("b{k}_pupil_in"), &to_i64(&pin))?,
        "pupil_out": arrays.index(&format!("b{k}_pupil_out"), &to_i64(&pout))?,
        "medium_re": re,
        "medium_im": im,
        "detection": match o.detection { Detection::Amplitude => "amplitude", Detection::Intensity => "intensity" },
        "pooling": { "kernel": o.pooling.kernel, "stride": o.pooling.stride, "padding": o.pooling.padding },
        "output_side": o.output_side(),
    }))
}

/// Random data of MNIST's shape (normalised pixel values, uniform labels) when the IDX files
/// are missing.
fn random_mnist(rows: usize, seed: u64) -> Dataset<f64> {
    let mut rng = rng_for(seed, "peer random mnist");
    let (lo, hi) = (-0.1307 / 0.3081, (1.0 - 0.1307) / 0.3081);
    let x = Matrix::from_fn(rows, 784, |_, _| rng.random_range(lo..hi));
    let y = (0..rows).map(|_| rng.random_range(0..10)).collect();
    Dataset {
        name: "random".into(),
        x,
        y,
        num_classes: 10,
        class_names: (0..10).map(|c| c.to_string()).collect(),
        layout: Layout::Image { height: 28, width: 28 },
    }
}

fn optics_mnist(o: &Opts, arrays: &Arrays) -> Result<Setup<f64>> {
    let batch = if o.quick { 1_000 } else { 10_000 };
    let cfg = ExperimentConfig {
        seed: o.seed,
        precision: Precision::F64,
        data: format!("mnist:{}", o.mnist.display()),
        system: SystemKind::Optics,
        blocks: 2,
        hidden: 676,
        skip: Some(false),
        batch_size: batch,
        lr: 5e-5,
        n_inner: 20,
        alpha: 5.0,
        band_rows: 10,
        optics: mnist_optics(),
        ..ExperimentConfig::default()
    };
    cfg.validate()?;
    let have_mnist =
        o.mnist.join("train-images-idx3-ubyte").exists() || o.mnist.join("train-images-idx3-ubyte.gz").exists();
    let (train, embedding, epoch_rows, data_note) = if have_mnist {
        let prep = prepare::<f64>(&cfg)?;
        let n = prep.data.train.len();
        (prep.data.train, prep.embedding, n, format!("mnist: {} ({n} training images)", o.mnist.display()))
    } else {
        let d = random_mnist(batch, o.seed);
        let emb = LabelEmbedding::ImageBands { num_classes: 10, height: 28, width: 28, band_rows: cfg.band_rows };
        let note = format!(
            "random data of MNIST's shape (MNIST not found in {}; `cargo xtask fetch-data mnist` fetches it)",
            o.mnist.display()
        );
        (d, emb, 60_000, note)
    };
    let n = train.len();
    let batch_idx: Vec<usize> =
        if have_mnist { epoch_order(n, o.seed, 1).into_iter().take(batch).collect() } else { (0..batch).collect() };
    let raw = train.dim();
    let specs = build_blocks::<f64>(&cfg, &embedding, raw, false)?;
    let breakdown_specs = build_blocks::<f64>(&cfg, &embedding, raw, false)?;
    let shape0 = embedding.embedded_shape().context("image embedding")?;
    let side = (cfg.hidden as f64).sqrt().round() as usize;
    let mut media = Vec::new();
    let systems = [shape0, (side, side)]
        .iter()
        .enumerate()
        .map(|(k, &s)| optics_description(&optics_for_block(&cfg.optics, k, s), k, arrays, &mut media))
        .collect::<Result<Vec<_>>>()?;
    let modes = pupil_indices(cfg.optics.field_size, cfg.optics.input_pupil_radius_px).len();
    let (warmup, repeats) = if o.quick { (1, 3) } else { (0, 3) };
    Ok(Setup {
        name: "optics-mnist",
        precision: "f64",
        data_note,
        system_note: format!(
            "phyff OpticsSystem: 51 x 51 field, amplitude SLM, pupils of 15.4 px ({modes} modes), Haar-unitary medium (seed 0), |E| detection, 3x3/2 pad 1 average pooling to 26 x 26; the peer receives the same transmission matrix, pupils and SLM map"
        ),
        train,
        epoch_rows,
        batch_idx,
        embedding,
        train_config: cfg.train_config(),
        specs,
        breakdown_specs,
        systems,
        unit: "batch",
        warmup: o.warmup.unwrap_or(warmup),
        repeats: o.repeats.unwrap_or(repeats),
        breakdown_repeats: 1,
        check_rows: 256.min(batch),
        check_tolerance: 1e-6,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// Seconds of each phase of one PhyLL batch, measured on a replica of `Network::train_batch`
/// built from public pieces (the same calls in the same order).
#[derive(Default, Clone)]
struct Phases {
    labels_and_embedding: f64,
    physical: f64,
    skip_concat: f64,
    inner_steps: f64,
    pass_on: f64,
}

impl Phases {
    fn to_json(&self) -> Value {
        json!({
            "labels_and_embedding": self.labels_and_embedding,
            "physical": self.physical,
            "skip_concat": self.skip_concat,
            "inner_steps": self.inner_steps,
            "pass_on": self.pass_on,
            "total": self.labels_and_embedding + self.physical + self.skip_concat + self.inner_steps + self.pass_on,
        })
    }
}

fn breakdown_batch<F: Real>(
    specs: &mut [BlockSpec<F>],
    layers: &mut [LocalLayer<F>],
    optimizers: &mut [Optimizer<F>],
    s: &Setup<F>,
    x: &Matrix<F>,
    y: &[usize],
    rng: &mut ff_core::rng::Rng,
) -> Result<Phases> {
    let mut ph = Phases::default();
    let cfg = &s.train_config;
    let t = Instant::now();
    let neg = random_wrong_labels(y, s.embedding.num_classes(), rng);
    let (mut hp, mut hn) = (Matrix::zeros(0, 0), Matrix::zeros(0, 0));
    s.embedding.embed(x.view(), y, cfg.label_value, &mut hp)?;
    s.embedding.embed(x.view(), &neg, cfg.label_value, &mut hn)?;
    ph.labels_and_embedding += t.elapsed().as_secs_f64();
    let mut ws = ff_core::layer::Workspace::default();
    for k in 0..specs.len() {
        let t = Instant::now();
        let pp = specs[k].system.forward(hp.view())?;
        let pn = specs[k].system.forward(hn.view())?;
        ph.physical += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (up, un) =
            if specs[k].skip { (hcat(pp.view(), hp.view())?, hcat(pn.view(), hn.view())?) } else { (pp, pn) };
        ph.skip_concat += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut grad = vec![F::zero(); layers[k].num_params()];
        let mut u = Matrix::zeros(0, 0);
        ff_core::layer::stack_into(up.view(), un.view(), &mut u);
        for _ in 0..cfg.n_inner {
            let l = layers[k].loss_and_grad_stacked(&cfg.loss, u.view(), &mut ws, &mut grad);
            ensure!(l.is_finite(), "breakdown: loss of block {k} diverged");
            optimizers[k].step(layers[k].params_mut(), &grad);
        }
        ph.inner_steps += t.elapsed().as_secs_f64();
        let t = Instant::now();
        layers[k].forward(up.view(), &mut hp);
        layers[k].forward(un.view(), &mut hn);
        ph.pass_on += t.elapsed().as_secs_f64();
    }
    Ok(ph)
}

fn run<F: FftReal>(mut s: Setup<F>, o: &Opts, arrays: &Arrays) -> Result<()> {
    let raw = s.train.dim();
    let seed = o.seed;
    let specs = std::mem::take(&mut s.specs);
    let mut breakdown_specs = std::mem::take(&mut s.breakdown_specs);
    let skips: Vec<bool> = specs.iter().map(|b| b.skip).collect();
    let mut net = Network::new(raw, s.embedding, s.train_config.clone(), specs, seed)?;
    let initial = net.state();

    // The timed batch, gathered as the trainer gathers it.
    let (mut xb, mut yb) = (Matrix::zeros(0, 0), Vec::new());
    s.train.gather(&s.batch_idx, &mut xb, &mut yb);

    // Check batch: the first `check_rows` rows of the timed batch, negatives drawn as
    // `train_batch` draws them (first thing, from the rng it is given).
    let check_idx: Vec<usize> = s.batch_idx[..s.check_rows].to_vec();
    let (mut xc, mut yc) = (Matrix::zeros(0, 0), Vec::new());
    s.train.gather(&check_idx, &mut xc, &mut yc);
    let rng_check = rng_for(seed, "peer check negatives");
    let neg = random_wrong_labels(&yc, s.embedding.num_classes(), &mut rng_check.clone());
    let stats = net.train_batch(xc.view(), &yc, &mut rng_check.clone())?;

    // The manifest: everything the peer needs.
    let (adam_b1, adam_b2, adam_eps, lr) = match s.train_config.optimizer {
        ff_core::OptimizerConfig::Adam { lr, beta1, beta2, eps, .. } => (beta1, beta2, eps, lr),
        other => bail!("the peer implements Adam only, got {other:?}"),
    };
    let alpha = match s.train_config.loss {
        ff_core::Loss::Symba { alpha } => alpha,
        other => bail!("the peer implements the SymBa loss only, got {other:?}"),
    };
    ensure!(s.train_config.goodness == ff_core::Goodness::default(), "the peer implements cos(|z|, xi) only");
    ensure!(s.train_config.pass_on == ff_core::PassOn::Raw, "the peer passes the raw z on");
    let embedding = match s.embedding {
        LabelEmbedding::Overwrite { num_classes } => json!({ "kind": "overwrite", "num_classes": num_classes }),
        LabelEmbedding::ImageBands { num_classes, height, width, band_rows } => json!({
            "kind": "image_bands", "num_classes": num_classes, "height": height, "width": width, "band_rows": band_rows
        }),
        other => bail!("the peer implements the overwrite and image_bands embeddings only, got {other:?}"),
    };
    let mut blocks = Vec::new();
    for (k, (layer, sys)) in initial.layers.iter().zip(&s.systems).enumerate() {
        blocks.push(json!({
            "d_in": layer.d_in(),
            "d_out": layer.d_out(),
            "skip": skips[k],
            "weights": arrays.real(&format!("b{k}_weights"), &[layer.d_out(), layer.d_in()], layer.weights().to_owned().data())?,
            "bias": arrays.real(&format!("b{k}_bias"), &[layer.d_out()], layer.bias())?,
            "prototype": arrays.real(&format!("b{k}_prototype"), &[layer.d_out()], layer.prototype())?,
            "system": sys,
        }));
    }
    let to_i64 = |v: &[usize]| v.iter().map(|&i| i as i64).collect::<Vec<_>>();
    let batches_per_epoch = s.epoch_rows.div_ceil(s.batch_idx.len());
    let manifest = json!({
        "config": s.name,
        "precision": s.precision,
        "seed": seed,
        "data": s.data_note,
        "system": s.system_note,
        "raw_len": raw,
        "embedding": embedding,
        "label_value": "batch_max_abs",
        "x": arrays.real("x", &[xb.rows(), raw], xb.data())?,
        "y": arrays.index("y", &to_i64(&yb))?,
        "batch_size": s.batch_idx.len(),
        "epoch_rows": s.epoch_rows,
        "batches_per_epoch": batches_per_epoch,
        "unit": s.unit,
        "n_inner": s.train_config.n_inner,
        "lr": lr,
        "adam": { "beta1": adam_b1, "beta2": adam_b2, "eps": adam_eps },
        "alpha": alpha,
        "cosine_eps": ff_core::goodness::COSINE_EPS,
        "blocks": blocks,
        "check": {
            "rows": s.check_rows,
            "negatives": arrays.index("check_negatives", &to_i64(&neg))?,
            "block_loss": stats.block_loss,
            "tolerance": s.check_tolerance,
        },
        "timing": { "warmup": s.warmup, "repeats": s.repeats },
    });
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(arrays.dir.join("manifest.json"), text).context("cannot write manifest.json")?;
    eprintln!("peer_epoch {}: check batch of {} rows, block losses {:?}", s.name, s.check_rows, stats.block_loss);

    // Timing: `warmup` then `repeats` units (gather + train_batch, as ff_train::trainer::fit).
    let mut samples = Vec::with_capacity(s.repeats);
    for r in 0..s.warmup + s.repeats {
        let mut rng = rng_for(seed, &format!("negatives/{}", r + 1));
        let t = Instant::now();
        s.train.gather(&s.batch_idx, &mut xb, &mut yb);
        net.train_batch(xb.view(), &yb, &mut rng)?;
        let dt = t.elapsed().as_secs_f64();
        if r >= s.warmup {
            samples.push(dt);
            if s.unit == "batch" {
                eprintln!("peer_epoch {}: phyff batch {}/{}: {dt:.3} s", s.name, r + 1 - s.warmup, s.repeats);
            }
        }
    }
    let per_unit = median(&samples);
    let per_epoch = per_unit * batches_per_epoch as f64;

    // Phase breakdown on a replica of the schedule (separate systems, the trained layers).
    let state = net.state();
    let (mut layers, mut opts) = (state.layers, state.optimizers);
    let mut phases = Vec::new();
    for r in 0..s.breakdown_repeats {
        let mut rng = rng_for(seed, &format!("breakdown/{r}"));
        phases.push(breakdown_batch(&mut breakdown_specs, &mut layers, &mut opts, &s, &xb, &yb, &mut rng)?);
    }
    let pick = |f: fn(&Phases) -> f64| median(&phases.iter().map(f).collect::<Vec<_>>());
    let ph = Phases {
        labels_and_embedding: pick(|p| p.labels_and_embedding),
        physical: pick(|p| p.physical),
        skip_concat: pick(|p| p.skip_concat),
        inner_steps: pick(|p| p.inner_steps),
        pass_on: pick(|p| p.pass_on),
    };
    let out = json!({
        "side": "phyff",
        "config": s.name,
        "unit": s.unit,
        "batches_per_epoch": batches_per_epoch,
        "samples_seconds": samples,
        "seconds_per_unit": per_unit,
        "seconds_per_epoch": per_epoch,
        "breakdown_seconds_per_batch": ph.to_json(),
        "breakdown_repeats": s.breakdown_repeats,
        "threads": {
            "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "RAYON_NUM_THREADS": std::env::var("RAYON_NUM_THREADS").ok(),
        },
    });
    std::fs::write(arrays.dir.join("phyff.json"), serde_json::to_string_pretty(&out)?)
        .context("cannot write phyff.json")?;
    println!(
        "phyff {}: {per_unit:.6} s per {} (median of {}), {per_epoch:.6} s per epoch",
        s.name,
        s.unit,
        samples.len()
    );
    Ok(())
}

fn main() {
    if let Err(e) = main_() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn main_() -> Result<()> {
    let o = parse_args()?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    match o.config.as_str() {
        "acoustic-vowels" => {
            let arrays = Arrays { dir: o.out.clone(), f64: false };
            let s = acoustic_vowels(&o, &arrays)?;
            run(s, &o, &arrays)
        }
        "optics-mnist" => {
            let arrays = Arrays { dir: o.out.clone(), f64: true };
            let s = optics_mnist(&o, &arrays)?;
            run(s, &o, &arrays)
        }
        other => bail!("unknown configuration {other:?}; expected acoustic-vowels or optics-mnist"),
    }
}
