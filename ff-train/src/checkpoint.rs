//! Training checkpoints: `DIR/checkpoint.json`, written atomically after every epoch, so that a
//! device failure (or a kill) mid-run loses nothing already saved; `phyff train --resume DIR`
//! continues from it.

use crate::config::ExperimentConfig;
use crate::io::write_atomic;
use crate::model::ModelFile;
use crate::trainer::FitProgress;
use anyhow::{Context, Result};
use ff_core::Real;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the checkpoint inside an output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// Format tag of checkpoint files.
pub const CHECKPOINT_FORMAT: &str = "phyff-checkpoint";
/// Version of the checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Everything needed to continue a run exactly: the model (configuration, embedding, layers
/// and optimiser states) and the trainer's progress (epoch, counters, history). The random
/// streams of epoch `e` derive from `(seed, e)`, so no generator state is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Real")]
pub struct Checkpoint<F> {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// [`CHECKPOINT_VERSION`] when written.
    pub version: u32,
    /// The model after `progress.epochs_done` epochs.
    pub model: ModelFile<F>,
    /// Where the trainer stands.
    pub progress: FitProgress,
    /// `keep_best` runs: the state of the epoch `progress.best_epoch` (the best validation
    /// accuracy so far), kept so that a resumed run can still return it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_state: Option<ff_core::NetworkState<F>>,
}

impl<F: Real> Checkpoint<F> {
    /// Writes the checkpoint to `path` atomically (never half-written).
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string(self).context("cannot serialise the checkpoint")?;
        write_atomic(path, json.as_bytes())
    }
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    model: HeaderModel,
}

#[derive(Deserialize)]
struct HeaderModel {
    config: ExperimentConfig,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!("cannot read checkpoint {}; was the run started with --out on this directory?", path.display())
    })
}

/// The header of checkpoint text `text` read from `path` (named in the errors).
fn header(path: &Path, text: &str) -> Result<Header> {
    let h: Header =
        serde_json::from_str(text).with_context(|| format!("{} is not a phyff checkpoint", path.display()))?;
    anyhow::ensure!(
        h.format == CHECKPOINT_FORMAT && h.version == CHECKPOINT_VERSION,
        "{} has format {:?} version {}, expected {CHECKPOINT_FORMAT:?} version {CHECKPOINT_VERSION}",
        path.display(),
        h.format,
        h.version
    );
    Ok(h)
}

/// Whether `text` (a file's contents) is a checkpoint: its `format` is [`CHECKPOINT_FORMAT`].
/// `false` for anything else, JSON or not, so that the caller's own loader reports what is
/// wrong with it.
pub fn is_checkpoint_text(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    serde_json::from_str::<Format>(text).is_ok_and(|f| f.format == CHECKPOINT_FORMAT)
}

/// The configuration stored in a checkpoint (to choose the precision before loading it).
///
/// # Errors
/// A missing, unreadable or foreign file.
pub fn checkpoint_config(path: &Path) -> Result<ExperimentConfig> {
    checkpoint_config_text(path, &read(path)?)
}

/// [`checkpoint_config`] of checkpoint text already read from `path` (named in the errors).
///
/// # Errors
/// A foreign or malformed text.
pub fn checkpoint_config_text(path: &Path, text: &str) -> Result<ExperimentConfig> {
    Ok(header(path, text)?.model.config)
}

/// Loads a checkpoint at precision `F`.
///
/// # Errors
/// A missing, unreadable or foreign file, or a checkpoint written at another precision.
pub fn load_checkpoint<F: Real>(path: &Path) -> Result<Checkpoint<F>> {
    parse_checkpoint(path, &read(path)?)
}

/// [`load_checkpoint`] of checkpoint text already read from `path` (named in the errors).
///
/// # Errors
/// A foreign or malformed text, or a checkpoint written at another precision.
pub fn parse_checkpoint<F: Real>(path: &Path, text: &str) -> Result<Checkpoint<F>> {
    let h = header(path, text)?;
    let want = if F::NAME == "f64" { crate::config::Precision::F64 } else { crate::config::Precision::F32 };
    anyhow::ensure!(
        h.model.config.precision == want,
        "{} holds {:?} weights, asked to load {}",
        path.display(),
        h.model.config.precision,
        F::NAME
    );
    let ck: Checkpoint<F> = crate::model::parse_json(path, text, "checkpoint")?;
    ck.validate().with_context(|| format!("checkpoint {} does not fit together", path.display()))?;
    Ok(ck)
}

impl<F: Real> Checkpoint<F> {
    /// Checks that the parts fit together: the model ([`ModelFile::validate`]), and the
    /// progress with the model: no more epochs done than configured, one history record per
    /// epoch done, no more evaluation work than work in all.
    ///
    /// # Errors
    /// The first part that does not fit, naming the fields and both numbers.
    pub fn validate(&self) -> Result<()> {
        self.model.validate().context("in model")?;
        let (p, epochs) = (&self.progress, self.model.config.epochs);
        anyhow::ensure!(
            p.epochs_done <= epochs,
            "progress.epochs_done is {} but model.config.epochs is {epochs}",
            p.epochs_done
        );
        anyhow::ensure!(
            p.history.len() == p.epochs_done,
            "progress.history holds {} records for progress.epochs_done = {} (one per epoch)",
            p.history.len(),
            p.epochs_done
        );
        anyhow::ensure!(
            p.eval_physical_queries <= p.counters.physical_queries,
            "progress.eval_physical_queries ({}) exceeds progress.counters.physical_queries ({}), which include them",
            p.eval_physical_queries,
            p.counters.physical_queries
        );
        anyhow::ensure!(
            p.eval_digital_flops <= p.counters.digital_flops,
            "progress.eval_digital_flops ({}) exceeds progress.counters.digital_flops ({}), which include them",
            p.eval_digital_flops,
            p.counters.digital_flops
        );
        if let Some(best) = &self.best_state {
            anyhow::ensure!(
                p.best_epoch.is_some_and(|e| e >= 1 && e <= p.epochs_done),
                "best_state is present but progress.best_epoch ({:?}) is not one of the {} epochs done",
                p.best_epoch,
                p.epochs_done
            );
            let shapes = |s: &ff_core::NetworkState<F>| -> Vec<(usize, usize, usize)> {
                s.layers.iter().zip(&s.optimizers).map(|(l, o)| (l.d_in(), l.d_out(), o.num_params())).collect()
            };
            anyhow::ensure!(
                shapes(best) == shapes(&self.model.state),
                "best_state's layers do not have the sizes of model.state's"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_checkpoint_format_is_a_checkpoint() {
        assert!(is_checkpoint_text(r#"{"format":"phyff-checkpoint","version":1}"#));
        for other in [r#"{"format":"phyff-model","version":1}"#, r#"{"version":1}"#, "not json", ""] {
            assert!(!is_checkpoint_text(other), "{other:?}");
        }
    }
}
