//! Model files: the configuration plus the trained state, enough to rebuild the network
//! exactly (the physical systems are re-created from the seeded configuration).

use crate::config::ExperimentConfig;
use anyhow::{bail, Context, Result};
use ff_core::{LabelEmbedding, LinearReadout, NetworkState, Real};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag written in every model file.
pub const MODEL_FORMAT: &str = "phyff-model";
/// Current model file version.
pub const MODEL_VERSION: u32 = 1;

/// A saved model (JSON). Floats are written in their shortest exact form, so a reload
/// reproduces every parameter bit for bit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(bound = "F: Real")]
pub struct ModelFile<F> {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// [`MODEL_VERSION`] at the time of writing.
    pub version: u32,
    /// The run's configuration (rebuilds the data split and the physical systems).
    pub config: ExperimentConfig,
    /// Length of a raw sample (before label embedding).
    pub raw_len: usize,
    /// Whether the data had `num_classes` zero columns prepended for the label.
    pub prepended_label_slots: usize,
    /// The label embedding.
    pub embedding: LabelEmbedding,
    /// Whether this is the physics-removed ablation.
    pub ablation: bool,
    /// Layers, prototypes and optimiser states.
    pub state: NetworkState<F>,
    /// The linear read-out on the block activities (unsupervised mode, once trained); absent
    /// from supervised models, which predict by summed goodness over the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<LinearReadout<F>>,
}

impl<F: Real> ModelFile<F> {
    /// Serialises to JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("model files always serialise")
    }
}

/// Reads the header of a model file to learn its precision without parsing the weights twice.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    config: ExperimentConfig,
}

/// Loads a model file, checking format, version and precision.
///
/// # Errors
/// Unreadable file, malformed JSON, wrong format/version, or a precision other than `F`.
pub fn load_model<F: Real>(path: &Path) -> Result<ModelFile<F>> {
    parse_model(path, &read(path)?)
}

/// [`load_model`] of model text already read from `path` (named in the errors).
///
/// # Errors
/// Malformed JSON, wrong format/version, or a precision other than `F`.
pub fn parse_model<F: Real>(path: &Path, text: &str) -> Result<ModelFile<F>> {
    let header: Header =
        serde_json::from_str(text).with_context(|| format!("{} is not a phyff model file", path.display()))?;
    if header.format != MODEL_FORMAT {
        bail!("{} has format {:?}, expected {MODEL_FORMAT:?}", path.display(), header.format);
    }
    if header.version != MODEL_VERSION {
        bail!(
            "{} is model version {}, this phyff reads version {MODEL_VERSION}; retrain with this version",
            path.display(),
            header.version
        );
    }
    let want = if F::NAME == "f64" { crate::config::Precision::F64 } else { crate::config::Precision::F32 };
    if header.config.precision != want {
        bail!("{} holds {:?} weights, asked to load {}", path.display(), header.config.precision, F::NAME);
    }
    serde_json::from_str(text).with_context(|| format!("malformed model file {}", path.display()))
}

/// Reads only the configuration of model text already read from `path` (named in the errors),
/// to pick the precision before [`parse_model`].
///
/// # Errors
/// Malformed JSON or a text that is not a model file.
pub fn model_config_text(path: &Path, text: &str) -> Result<ExperimentConfig> {
    let header: Header =
        serde_json::from_str(text).with_context(|| format!("{} is not a phyff model file", path.display()))?;
    Ok(header.config)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read model file {}", path.display()))
}
