//! Model files: the configuration plus the trained state, enough to rebuild the network
//! exactly (the physical systems are re-created from the seeded configuration).

use crate::config::ExperimentConfig;
use anyhow::{anyhow, bail, Context, Result};
use ff_core::{LabelEmbedding, LinearReadout, NetworkState, Real};
use serde::de::DeserializeOwned;
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
    /// The standardisation the features went through before label slots were prepended (CSV
    /// data with `standardize = true`), applied as saved when the model is evaluated or
    /// resumed; absent for other data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardization: Option<crate::standardize::Standardization>,
}

impl<F: Real> ModelFile<F> {
    /// Serialises to JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("model files always serialise")
    }

    /// Checks that the parts fit together and with the configuration, beyond what reading
    /// each part checks (every layer's sizes, every optimiser state against its layer, the
    /// read-out's sizes): as many layers as `config.blocks`, each putting out `config.hidden`
    /// values; an embedding that fits `raw_len`; a read-out on as many features as the blocks
    /// put out together, onto the embedding's classes. Each layer's input width is checked
    /// against its block's system when the network is assembled
    /// ([`ff_core::Network::from_state`]).
    ///
    /// # Errors
    /// The first part that does not fit, naming the fields and both numbers.
    pub fn validate(&self) -> Result<()> {
        let (cfg, layers) = (&self.config, &self.state.layers);
        if layers.len() != cfg.blocks {
            bail!("state.layers holds {} layers but config.blocks is {}", layers.len(), cfg.blocks);
        }
        if let Some((k, l)) = layers.iter().enumerate().find(|(_, l)| l.d_out() != cfg.hidden) {
            bail!("state.layers[{k}].d_out is {} but config.hidden is {}", l.d_out(), cfg.hidden);
        }
        self.embedding
            .validate(self.raw_len)
            .map_err(|e| anyhow!("embedding does not fit raw_len {}: {e}", self.raw_len))?;
        let k = self.embedding.num_classes();
        if self.prepended_label_slots != 0 && self.prepended_label_slots != k {
            bail!(
                "prepended_label_slots is {}; it is 0 or the number of classes ({k} in the embedding)",
                self.prepended_label_slots
            );
        }
        if let Some(r) = &self.readout {
            let features: usize = layers.iter().map(|l| l.d_out()).sum();
            if r.input_len() != features {
                bail!(
                    "the read-out takes {} features (readout.linear.sizes[0]) but the blocks put out {features} together",
                    r.input_len()
                );
            }
            if r.num_classes() != k {
                bail!("the read-out has {} classes but the embedding {k}", r.num_classes());
            }
        }
        if let Some(s) = &self.standardization {
            s.validate()?;
            if s.kept.len() + self.prepended_label_slots != self.raw_len {
                bail!(
                    "standardization keeps {} features and {} label slots are prepended, but raw_len is {}",
                    s.kept.len(),
                    self.prepended_label_slots,
                    self.raw_len
                );
            }
        }
        Ok(())
    }
}

/// Parses JSON `text` read from `path` as a `what` (`"model file"`), naming in an error the
/// file, the field (`state.layers[1]`) and what is wrong with it.
///
/// # Errors
/// Malformed JSON, a missing or mistyped field, a part that fails its own checks.
pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, text: &str, what: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let at = if field == "." { String::new() } else { format!(" at {field}") };
        anyhow!("malformed {what} {}{at}: {}", path.display(), e.inner())
    })?;
    de.end().map_err(|e| anyhow!("malformed {what} {}: {e}", path.display()))?;
    Ok(value)
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
    let model: ModelFile<F> = parse_json(path, text, "model file")?;
    model.validate().with_context(|| format!("model file {} does not fit together", path.display()))?;
    Ok(model)
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
