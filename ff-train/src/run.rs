//! Orchestration of `phyff train` and `phyff eval`: data, systems, network, training, outputs.

use crate::baselines::reference::{references, References};
use crate::checkpoint::{load_checkpoint, Checkpoint, CHECKPOINT_FILE, CHECKPOINT_FORMAT, CHECKPOINT_VERSION};
use crate::config::{CheckedConfig, ExperimentConfig, Mode, ToChecked};
use crate::io::write_atomic;
use crate::model::{ModelFile, MODEL_FORMAT, MODEL_VERSION};
use crate::output::report::TrainResult;
use crate::record::RunRecord;
use crate::standardize::Standardization;
use crate::systems::build_blocks;
use crate::trainer::{
    fit, fit_readout, fit_selecting, fit_unsupervised_from, EpochRecord, FitProgress, Selection, UnsupervisedOptions,
};
use anyhow::{Context, Result};
use ff_core::{Counters, HybridNegatives, LabelEmbedding, Matrix, Network, Real};
use ff_data::{load, DataSpec, Dataset, Layout, TrainTest};
use ff_physics::fft::FftReal;
use std::path::Path;

/// Prepared data: the split, the label embedding, and how many label slots were prepended.
pub struct Prepared<F: Real> {
    /// Train and test sets (with label slots when prepended).
    pub data: TrainTest<F>,
    /// The embedding that writes labels into samples.
    pub embedding: LabelEmbedding,
    /// Zero columns prepended to vector data that reserved no label entries.
    pub prepended: usize,
    /// The standardisation applied to the features (CSV data with `standardize = true`).
    pub standardization: Option<Standardization>,
    /// `keep_best`: the validation split, carved from the training split (which no longer
    /// holds it), embedded like it.
    pub validation: Option<Dataset<F>>,
}

/// Mixed into the seed of the split that carves the validation set out of the training split,
/// so that it draws from another stream than the train/test split.
const VALIDATION_SEED: u64 = 0x5641_4c49_4441_5445;

/// Loads the configured dataset, standardises CSV features when `cfg.standardize` (fitting the
/// transform to the training split; a constant feature is dropped with a note on stderr) and
/// chooses the label embedding for its layout.
///
/// # Errors
/// Data loading errors (which say how to obtain a missing dataset) and invalid embeddings.
pub fn prepare<F: Real>(cfg: &ExperimentConfig) -> Result<Prepared<F>> {
    prepare_with(cfg, None)
}

/// [`prepare`] for a saved model or checkpoint: `saved` is its standardisation (`Some(None)`:
/// it had none), applied as saved instead of fitted again.
///
/// # Errors
/// As [`prepare`]; also data whose width no longer fits the saved standardisation.
pub fn prepare_with<F: Real>(cfg: &ExperimentConfig, saved: Option<Option<&Standardization>>) -> Result<Prepared<F>> {
    let spec: DataSpec = cfg.data.parse().with_context(|| format!("invalid data spec {:?}", cfg.data))?;
    let mut data = load::<F>(&spec, cfg.seed).with_context(|| format!("cannot load data {:?}", cfg.data))?;
    // Reduced runs: the first samples of each split (the splits are already shuffled, or in the
    // data set's own order for MNIST-style sets).
    for (set, limit) in [(&mut data.train, cfg.train_limit), (&mut data.test, cfg.test_limit)] {
        if let Some(n) = limit.filter(|&n| n < set.len()) {
            *set = set.subset(&(0..n).collect::<Vec<_>>());
        }
    }
    let standardization = match saved {
        Some(s) => s.cloned(),
        None if cfg.standardize && matches!(spec, DataSpec::Csv { .. }) => {
            let s = Standardization::fit(&data.train.x).with_context(|| format!("data {:?}", cfg.data))?;
            let dropped = s.dropped();
            if !dropped.is_empty() {
                eprintln!(
                    "note: data {:?}: feature{} {} (0-based, label column excluded) constant over the training split, dropped",
                    cfg.data,
                    if dropped.len() == 1 { "" } else { "s" },
                    dropped.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            Some(s)
        }
        None => None,
    };
    if let Some(s) = &standardization {
        data.train.x = s.apply(&data.train.x, "training").with_context(|| format!("data {:?}", cfg.data))?;
        data.test.x = s.apply(&data.test.x, "test").with_context(|| format!("data {:?}", cfg.data))?;
    }
    // Carved after standardising (whose moments are the whole training split's, as saved)
    // and before the label slots, which the validation samples get like the others.
    let mut validation = None;
    if cfg.keep_best {
        let t = &data.train;
        let (fit, val) =
            ff_data::split_indices(&t.y, t.num_classes, cfg.validation_fraction, cfg.seed ^ VALIDATION_SEED, true)
                .with_context(|| {
                    format!(
                        "keep_best: carving validation_fraction {} of {} training samples",
                        cfg.validation_fraction,
                        t.len()
                    )
                })?;
        validation = Some(t.subset(&val));
        data.train = t.subset(&fit);
    }
    let k = data.train.num_classes;
    let (embedding, prepended) = match data.train.layout {
        Layout::Image { height, width } => {
            if cfg.band_rows < k {
                anyhow::bail!(
                    "invalid band_rows: {} rows cannot hold {k} classes; use --band-rows {k} or more",
                    cfg.band_rows
                );
            }
            (LabelEmbedding::ImageBands { num_classes: k, height, width, band_rows: cfg.band_rows }, 0)
        }
        Layout::Vector { reserved_leading } if reserved_leading >= k => {
            (LabelEmbedding::Overwrite { num_classes: k }, 0)
        }
        Layout::Vector { .. } => {
            data.train = prepend_zeros(&data.train, k);
            data.test = prepend_zeros(&data.test, k);
            validation = validation.map(|v| prepend_zeros(&v, k));
            (LabelEmbedding::Overwrite { num_classes: k }, k)
        }
    };
    // The data's real shape (a CSV's width, the sizes of the splits) may make the run larger
    // than the configuration's guess: check again before anything is built.
    let shape = crate::memory::DataShape::of(&data);
    crate::memory::check(cfg, Some(&shape), crate::memory::MachineMemory::this_machine())?;
    Ok(Prepared { data, embedding, prepended, standardization, validation })
}

fn prepend_zeros<F: Real>(d: &Dataset<F>, k: usize) -> Dataset<F> {
    let x = Matrix::from_fn(d.len(), d.dim() + k, |r, c| if c < k { F::zero() } else { d.x.get(r, c - k) });
    Dataset { x, layout: Layout::Vector { reserved_leading: k }, ..d.clone() }
}

/// Builds a fresh network (or the physics-removed ablation) for prepared data.
///
/// # Errors
/// Invalid configurations and system construction errors.
pub fn build_network<F: FftReal>(cfg: &ExperimentConfig, prep: &Prepared<F>, ablation: bool) -> Result<Network<F>> {
    let raw = prep.data.train.dim();
    let specs = build_blocks::<F>(cfg, &prep.embedding, raw, ablation)?;
    Ok(Network::new(raw, prep.embedding, cfg.train_config(), specs, cfg.seed)?)
}

/// The hybrid-negative generator and read-out of unsupervised mode for prepared data: image
/// masks for image data, masks along the vector for vector data (label slots included; they
/// are zero in both parents).
pub fn unsupervised_options<F: Real>(cfg: &ExperimentConfig, prep: &Prepared<F>) -> UnsupervisedOptions {
    let hybrids = match prep.data.train.layout {
        Layout::Image { height, width } => HybridNegatives::image(height, width),
        Layout::Vector { .. } => HybridNegatives::vector(prep.data.train.dim()),
    };
    UnsupervisedOptions { hybrids: hybrids.with_blur_passes(cfg.blur_passes), readout: cfg.readout_config() }
}

/// Method name of the physics-removed ablation's record (as `phyff compare` names it).
pub const ABLATION_METHOD: &str = "physics removed (FF)";

/// Method name of the record of unsupervised mode's control.
pub const UNTRAINED_METHOD: &str = "untrained network + read-out";

/// Outcome of [`train`]: every run as a [`RunRecord`].
pub struct TrainOutcome<F: Real> {
    /// The physical network's run (in the configured mode; unsupervised: accuracies of its
    /// read-out), named `trainer::FF_METHOD` or `trainer::FF_UNSUPERVISED_METHOD`.
    pub pnn: RunRecord,
    /// The ablation's run (same mode), when requested, named [`ABLATION_METHOD`].
    pub ablation: Option<RunRecord>,
    /// Unsupervised mode: the supervised network's run, when `supervised_baseline` is set.
    pub supervised: Option<RunRecord>,
    /// Unsupervised mode: the control, the same read-out on the activities of the untrained
    /// network, named [`UNTRAINED_METHOD`]: no epochs, no history; the test activities'
    /// queries are its evaluation work, everything else its training work.
    pub untrained: Option<RunRecord>,
    /// The reference classifiers on the same split (k-NN and logistic regression).
    pub references: References,
    /// The result document (what `result.json` holds), filled from the records above.
    pub result: TrainResult,
    /// The trained physical network's model file.
    pub model: ModelFile<F>,
}

/// Trains the configured physical network (and its ablation; in unsupervised mode also the
/// supervised network for comparison, and the read-out on the untrained network as a
/// control) and optionally writes
/// `result.json` and `model.json` into `out`, plus `checkpoint.json` (every `checkpoint_every` seconds, after the last epoch, and with the last completed epoch when training fails; see
/// [`resume`]). `progress` is told about every epoch, with a label saying which model is
/// training.
///
/// # Errors
/// Any configuration, data, system or training error; I/O errors when writing outputs.
///
/// # Examples
/// The default optical network on the built-in digits, one epoch, no files written:
/// ```
/// use ff_train::config::ExperimentConfig;
///
/// let cfg = ExperimentConfig { epochs: 1, hidden: 16, ablation: false, ..ExperimentConfig::default() };
/// let run = ff_train::run::train::<f32>(&cfg, None, |model, record| {
///     println!("{model}: epoch {}, loss {:?}", record.epoch, record.loss);
/// })?;
/// assert!(run.pnn.test_accuracy > 0.2, "above chance (0.1) after one epoch");
/// assert!(run.result.reference_knn_accuracy.is_some());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn train<F: FftReal>(
    cfg: &impl ToChecked,
    out: Option<&Path>,
    progress: impl FnMut(&str, &EpochRecord),
) -> Result<TrainOutcome<F>> {
    train_from(&*cfg.to_checked()?, out, None, progress)
}

/// Continues the run checkpointed in `dir` (`dir/checkpoint.json`) up to `epochs` epochs
/// (default: the configured number), then writes the outputs as [`train`] does. For a
/// deterministic system the model ends with the same bits as an uninterrupted run. The
/// ablation and the supervised comparison, when configured, are not checkpointed and are
/// trained from scratch; in unsupervised mode the read-out is fitted after the last epoch.
///
/// # Errors
/// A missing or foreign checkpoint, data that no longer match it, a new `epochs` that would
/// change the learning rate of epochs already trained (a non-constant `lr_schedule` scales
/// with the total), and everything [`train`] can fail with.
pub fn resume<F: FftReal>(
    dir: &Path,
    epochs: Option<usize>,
    progress: impl FnMut(&str, &EpochRecord),
) -> Result<TrainOutcome<F>> {
    let ck = load_checkpoint::<F>(&dir.join(CHECKPOINT_FILE))?;
    let mut cfg = ck.model.config.clone();
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    resume_loaded(dir, ck, &cfg, progress)
}

/// Continues the run checkpointed in `dir` under `cfg`: the saved configuration, in which only
/// the number of epochs and the way to reach a device (`cfg.device`: command, address,
/// timeout, attempts) may differ. The checkpoint and the model then record `cfg`.
///
/// # Errors
/// As [`resume`]; also if `cfg` differs from the saved configuration in anything else (naming
/// the settings), or if `cfg.epochs` would give the epochs already trained other learning rates
/// under the run's schedule.
pub fn resume_as<F: FftReal>(
    dir: &Path,
    cfg: &impl ToChecked,
    progress: impl FnMut(&str, &EpochRecord),
) -> Result<TrainOutcome<F>> {
    resume_loaded(dir, load_checkpoint::<F>(&dir.join(CHECKPOINT_FILE))?, cfg, progress)
}

/// [`resume_as`] of a checkpoint already read from `dir`.
fn resume_loaded<F: FftReal>(
    dir: &Path,
    ck: Checkpoint<F>,
    cfg: &impl ToChecked,
    progress: impl FnMut(&str, &EpochRecord),
) -> Result<TrainOutcome<F>> {
    let (checkable, cfg) = (cfg, cfg.config());
    let saved = &ck.model.config;
    let mut comparable = cfg.clone();
    comparable.epochs = saved.epochs;
    comparable.checkpoint_every = saved.checkpoint_every;
    comparable.device = saved.device.clone();
    if comparable != *saved {
        let (a, b) = (toml::Value::try_from(saved)?, toml::Value::try_from(&comparable)?);
        let keys: Vec<String> = match (a.as_table(), b.as_table()) {
            // Both tables come from the same struct: each key once, in the saved order.
            (Some(a), Some(b)) => a.keys().filter(|k| a.get(*k) != b.get(*k)).cloned().collect(),
            _ => Vec::new(),
        };
        anyhow::bail!(
            "cannot resume {}: the configuration differs from the saved one in {}; only epochs, checkpoint_every and [device] may change on resume",
            dir.display(),
            if keys.is_empty() { "some setting".to_string() } else { keys.join(", ") }
        );
    }
    let (s, done, old, e) = (cfg.lr_schedule, ck.progress.epochs_done, saved.epochs, cfg.epochs);
    anyhow::ensure!(
        (1..=done).all(|k| s.factor(k, old) == s.factor(k, e)),
        "cannot resume with --epochs {e}: the run's lr_schedule \"{}\" was planned for {old} epochs, and {done} epochs were trained with it; {e} epochs would have given them other learning rates. Resume without --epochs (or start a new run)",
        s.name()
    );
    train_from(&*checkable.to_checked()?, Some(dir), Some(ck), progress)
}

fn train_from<F: FftReal>(
    cfg: &CheckedConfig,
    out: Option<&Path>,
    resume_from: Option<Checkpoint<F>>,
    mut progress: impl FnMut(&str, &EpochRecord),
) -> Result<TrainOutcome<F>> {
    if let Some(dir) = out {
        crate::io::check_out_dir(dir)?;
    }
    // A resumed run applies the standardisation it was trained with.
    let saved = resume_from.as_ref().map(|ck| ck.model.standardization.as_ref());
    let prep = prepare_with::<F>(cfg, saved)?;
    let opts = cfg.fit_options();
    let model_file = |state, readout| ModelFile {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        config: ExperimentConfig::clone(cfg),
        raw_len: prep.data.train.dim(),
        prepended_label_slots: prep.prepended,
        embedding: prep.embedding,
        ablation: false,
        state,
        readout,
        standardization: prep.standardization.clone(),
    };
    let (mut net, start, best_state) = match resume_from {
        None => (build_network(cfg, &prep, false)?, None, None),
        Some(ck) => {
            data_match(cfg, &prep, ck.model.raw_len, &ck.model.embedding, "checkpoint")?;
            let specs = build_blocks::<F>(cfg, &prep.embedding, ck.model.raw_len, false)?;
            let systems = specs.into_iter().map(|s| (s.system, s.skip)).collect();
            let net =
                Network::from_state(ck.model.raw_len, prep.embedding, cfg.train_config(), systems, ck.model.state)?;
            (net, Some(ck.progress), ck.best_state)
        }
    };
    // keep_best: the checkpoint also holds the best epoch's state, so a resumed run keeps it.
    let best_for_checkpoint = std::cell::RefCell::new(best_state.clone());
    // The checkpoint of the last completed epoch, written when `checkpoint_every` seconds have
    // passed since the last write, after the last epoch, or when training stops on an error.
    let unsaved: std::cell::RefCell<Option<Checkpoint<F>>> = std::cell::RefCell::new(None);
    let last_write = std::cell::Cell::new(std::time::Instant::now());
    let checkpoint = |r: &EpochRecord, net: &Network<F>, p: &FitProgress| {
        progress("pnn", r);
        // Only a run that writes checkpoints needs its own copy of the best state.
        if out.is_some() && p.best_epoch == Some(r.epoch) {
            *best_for_checkpoint.borrow_mut() = Some(net.state());
        }
        if let Some(dir) = out {
            let ck = Checkpoint {
                format: CHECKPOINT_FORMAT.into(),
                version: CHECKPOINT_VERSION,
                model: model_file(net.state(), None),
                progress: p.clone(),
                best_state: best_for_checkpoint.borrow().clone(),
            };
            let due = r.epoch >= cfg.epochs || last_write.get().elapsed().as_secs_f64() >= cfg.checkpoint_every;
            if due {
                ck.save(&dir.join(CHECKPOINT_FILE))?;
                last_write.set(std::time::Instant::now());
                *unsaved.borrow_mut() = None;
            } else {
                *unsaved.borrow_mut() = Some(ck);
            }
        }
        Ok(())
    };
    // Training stopped on an error: save the last completed epoch before reporting it.
    let save_unsaved = |e: anyhow::Error| -> anyhow::Error {
        match (out, unsaved.borrow_mut().take()) {
            (Some(dir), Some(ck)) => match ck.save(&dir.join(CHECKPOINT_FILE)) {
                Ok(()) => e.context(format!(
                    "training stopped after epoch {}; {} holds that epoch, `phyff train --resume {}` continues from it",
                    ck.progress.epochs_done,
                    dir.join(CHECKPOINT_FILE).display(),
                    dir.display()
                )),
                Err(w) => {
                    e.context(format!("the checkpoint of the last completed epoch could not be written either: {w:#}"))
                }
            },
            _ => e,
        }
    };
    let unsup = unsupervised_options(cfg, &prep);
    let (train_set, test_set) = (&prep.data.train, &prep.data.test);
    let (pnn, readout) = match cfg.mode {
        Mode::Supervised => {
            let selection = prep.validation.as_ref().map(|validation| Selection { validation, best_state });
            (
                fit_selecting(&mut net, train_set, test_set, &opts, selection, start, checkpoint)
                    .map_err(save_unsaved)?,
                None,
            )
        }
        Mode::Unsupervised => {
            let u = fit_unsupervised_from(&mut net, train_set, test_set, &opts, &unsup, start, checkpoint)
                .map_err(save_unsaved)?;
            (u.record, Some(u.readout))
        }
    };
    let model = model_file(net.state(), readout);
    if let Some(dir) = out {
        // Save the model before the ablation runs: an interrupted ablation loses nothing.
        write_atomic(&dir.join("model.json"), model.to_json().as_bytes())?;
    }
    // A digital-only network is its own ablation.
    let ablation = if cfg.ablation && cfg.system.spec().is_physical() {
        let mut abl = build_network(cfg, &prep, true)?;
        Some(
            match cfg.mode {
                Mode::Supervised => {
                    let selection =
                        prep.validation.as_ref().map(|validation| Selection { validation, best_state: None });
                    fit_selecting(&mut abl, train_set, test_set, &opts, selection, None, |r, _, _| {
                        progress("ablation", r);
                        Ok(())
                    })?
                }
                Mode::Unsupervised => {
                    fit_unsupervised_from(&mut abl, train_set, test_set, &opts, &unsup, None, |r, _, _| {
                        progress("ablation", r);
                        Ok(())
                    })?
                    .record
                }
            }
            .named(ABLATION_METHOD),
        )
    } else {
        None
    };
    // The control of unsupervised mode: the same read-out on the untrained network's
    // activities (random physical features), which says what the FF phase adds.
    let untrained = if cfg.mode == Mode::Unsupervised {
        let started = std::time::Instant::now();
        let mut fresh = build_network(cfg, &prep, false)?;
        let r = fit_readout(&mut fresh, train_set, test_set, &unsup.readout, cfg.seed)?;
        Some(RunRecord {
            method: UNTRAINED_METHOD.into(),
            test_accuracy: r.test_accuracy,
            train_accuracy: Some(r.train_accuracy),
            wall_seconds: started.elapsed().as_secs_f64(),
            training: Counters {
                physical_queries: r.train_physical_queries,
                digital_flops: fresh.counters().digital_flops + r.readout_flops,
            },
            evaluation: Counters { physical_queries: r.eval_physical_queries, digital_flops: 0 },
            twin: Counters::default(),
            epochs: 0,
            history: Vec::new(),
            points: Vec::new(),
            kept: None,
        })
    } else {
        None
    };
    let supervised = if cfg.mode == Mode::Unsupervised && cfg.supervised_baseline {
        let mut sup = build_network(cfg, &prep, false)?;
        Some(fit(&mut sup, train_set, test_set, &opts, |r| progress("supervised", r))?)
    } else {
        None
    };
    // What a trivial classifier gets on the same split, so the table can say whether the
    // physical network earns its place.
    let refs = references(train_set, test_set, cfg.seed)?;
    let result = TrainResult {
        phyff_version: env!("CARGO_PKG_VERSION").into(),
        test_accuracy: pnn.test_accuracy,
        train_accuracy: pnn.train_accuracy,
        ablation_test_accuracy: ablation.as_ref().map(|a| a.test_accuracy),
        ablation_train_accuracy: ablation.as_ref().and_then(|a| a.train_accuracy),
        epochs: pnn.epochs,
        wall_seconds: pnn.wall_seconds,
        ablation_wall_seconds: ablation.as_ref().map(|a| a.wall_seconds),
        physical_queries: pnn.training.physical_queries,
        eval_physical_queries: pnn.evaluation.physical_queries,
        digital_flops: pnn.total_flops(),
        seed: cfg.seed,
        train_samples: prep.data.train.len(),
        test_samples: prep.data.test.len(),
        config: ExperimentConfig::clone(cfg),
        history: pnn.history.clone(),
        supervised_test_accuracy: supervised.as_ref().map(|s| s.test_accuracy),
        supervised_train_accuracy: supervised.as_ref().and_then(|s| s.train_accuracy),
        supervised_wall_seconds: supervised.as_ref().map(|s| s.wall_seconds),
        untrained_test_accuracy: untrained.as_ref().map(|u| u.test_accuracy),
        reference_knn_accuracy: Some(refs.knn.test_accuracy),
        reference_logistic_accuracy: Some(refs.logistic.test_accuracy),
        keep_best: cfg.keep_best,
        kept_epoch: pnn.kept.map(|k| k.epoch),
        validation_accuracy: pnn.kept.map(|k| k.validation_accuracy),
        validation_samples: prep.validation.as_ref().map(Dataset::len),
        ablation_kept_epoch: ablation.as_ref().and_then(|a| a.kept.map(|k| k.epoch)),
    };
    if let Some(dir) = out {
        let json = serde_json::to_string_pretty(&result)?;
        write_atomic(&dir.join("result.json"), json.as_bytes())?;
    }
    Ok(TrainOutcome { pnn, ablation, supervised, untrained, references: refs, result, model })
}

/// Result of [`eval`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOutcome {
    /// Test accuracy of the reloaded model.
    pub test_accuracy: f64,
    /// Train accuracy of the reloaded model.
    pub train_accuracy: f64,
    /// Test set size.
    pub test_samples: usize,
    /// When the file was a checkpoint: the epochs it had completed.
    pub checkpoint_epochs: Option<usize>,
}

/// A model file or a run's checkpoint, read into memory once: its configuration tells the
/// precision to load it at, and [`eval_saved`] evaluates it without reading the file again (a
/// full-scale MNIST checkpoint is about 60 MB of JSON).
#[derive(Clone, Debug)]
pub struct SavedModel {
    path: std::path::PathBuf,
    text: String,
    checkpoint: bool,
}

impl SavedModel {
    /// Reads `path`, a model file or a checkpoint (told apart by its `format`).
    ///
    /// # Errors
    /// A missing or unreadable file, with its path.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}; give a model.json or a run's checkpoint.json", path.display()))?;
        let checkpoint = crate::checkpoint::is_checkpoint_text(&text);
        Ok(Self { path: path.to_path_buf(), text, checkpoint })
    }

    /// The saved configuration (to choose the precision).
    ///
    /// # Errors
    /// As [`crate::model::model_config_text`] or [`crate::checkpoint::checkpoint_config_text`].
    pub fn config(&self) -> Result<ExperimentConfig> {
        if self.checkpoint {
            crate::checkpoint::checkpoint_config_text(&self.path, &self.text)
        } else {
            crate::model::model_config_text(&self.path, &self.text)
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model at precision `F`, and for a checkpoint the epochs it had completed.
    ///
    /// # Errors
    /// Malformed JSON, a wrong format or version, or a precision other than `F` (read it
    /// from [`SavedModel::config`] first).
    pub fn load<F: Real>(&self) -> Result<(ModelFile<F>, Option<usize>)> {
        if self.checkpoint {
            let ck = crate::checkpoint::parse_checkpoint::<F>(&self.path, &self.text)?;
            Ok((ck.model, Some(ck.progress.epochs_done)))
        } else {
            Ok((crate::model::parse_model::<F>(&self.path, &self.text)?, None))
        }
    }
}

/// Reloads a model, rebuilds its data split and physical systems from the saved
/// configuration, and measures its accuracy (unsupervised models: of their linear read-out on
/// the block activities). `path` is a model file or a run's `checkpoint.json` (the model after
/// its last completed epoch: a run that stopped, or one still going).
///
/// # Errors
/// Model loading errors, data errors, a mismatch between the model and the data.
pub fn eval<F: FftReal>(path: &Path) -> Result<EvalOutcome> {
    eval_from::<F>(path, 0)
}

/// [`eval`] with a supervised model's predictions summing the goodness of blocks
/// `first_block..` only ([`Network::accuracy_from`]; Hinton scores MNIST with all but the first
/// hidden layer, `first_block = 1`). `0` is [`eval`].
///
/// # Errors
/// As [`eval`]; a `first_block` that is not a block index, or one above 0 for an unsupervised
/// model (its predictions come from the read-out, not from goodness).
pub fn eval_from<F: FftReal>(path: &Path, first_block: usize) -> Result<EvalOutcome> {
    eval_saved::<F>(&SavedModel::read(path)?, first_block)
}

/// Checks that the data the configuration loads today are shaped as when `what` (a model or a
/// checkpoint) was saved: the same sample length and the same label embedding.
fn data_match<F: Real>(
    cfg: &ExperimentConfig,
    prep: &Prepared<F>,
    saved_len: usize,
    saved_embedding: &LabelEmbedding,
    what: &str,
) -> Result<()> {
    let now = prep.data.train.dim();
    anyhow::ensure!(
        now == saved_len,
        "the data {:?} no longer match the {what}: its samples now hold {now} values, the {what} was trained on {saved_len}; point data (or --data) at the file the {what} was trained on",
        cfg.data
    );
    anyhow::ensure!(
        prep.embedding == *saved_embedding,
        "the data {:?} no longer match the {what}: the labels are now written into the inputs as {:?}, the {what} used {:?} (another number of classes, or another image size or band_rows); point data (or --data) at the file the {what} was trained on",
        cfg.data,
        prep.embedding,
        saved_embedding
    );
    Ok(())
}

/// [`eval_from`] of a file already read.
///
/// # Errors
/// As [`eval_from`].
pub fn eval_saved<F: FftReal>(saved: &SavedModel, first_block: usize) -> Result<EvalOutcome> {
    let path = saved.path.as_path();
    let (model, checkpoint_epochs) = saved.load::<F>()?;
    let cfg = &model.config;
    let prep = prepare_with::<F>(cfg, Some(model.standardization.as_ref()))?;
    data_match(cfg, &prep, model.raw_len, &model.embedding, "model")?;
    let specs = build_blocks::<F>(cfg, &prep.embedding, model.raw_len, model.ablation)?;
    let systems = specs.into_iter().map(|s| (s.system, s.skip)).collect();
    let mut net = Network::from_state(model.raw_len, model.embedding, cfg.train_config(), systems, model.state)?;
    let (train, test) = (&prep.data.train, &prep.data.test);
    let (test_accuracy, train_accuracy) = match (cfg.mode, &model.readout) {
        (Mode::Supervised, _) => (
            net.accuracy_from(test.x.view(), &test.y, first_block)?,
            net.accuracy_from(train.x.view(), &train.y, first_block)?,
        ),
        (Mode::Unsupervised, _) if first_block > 0 => anyhow::bail!(
            "--score-from-block {first_block}: {} is an unsupervised model, whose predictions come from its linear read-out; drop the flag",
            path.display()
        ),
        (Mode::Unsupervised, Some(r)) => (
            r.accuracy(net.activities(test.x.view())?.view(), &test.y)?,
            r.accuracy(net.activities(train.x.view())?.view(), &train.y)?,
        ),
        (Mode::Unsupervised, None) => anyhow::bail!(
            "{} is an unsupervised model without its linear read-out (saved before training finished?); finish the run with `phyff train --resume DIR`",
            path.display()
        ),
    };
    Ok(EvalOutcome { test_accuracy, train_accuracy, test_samples: prep.data.test.len(), checkpoint_epochs })
}
