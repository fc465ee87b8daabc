//! `phyff export`: a model's digital parameters as a safetensors or an npz file, for numpy,
//! PyTorch and any other reader of those formats. The JSON model file stays the exact,
//! resumable format (optimiser states, configuration); an export holds the tensors and,
//! as string metadata, what is needed to rebuild the digital forward computation.
//!
//! # Tensors
//! Every tensor is stored in the model's precision (`F32` / `<f4` or `F64` / `<f8`),
//! little-endian, C order (row-major), with the values bit for bit those of the model file:
//!
//! | name | shape | what |
//! | --- | --- | --- |
//! | `block{k}.weight` | `d_out x d_in` | `W_k` of block `k` (0-based): `z = W_k u + b_k`, the orientation of PyTorch's `nn.Linear.weight` |
//! | `block{k}.bias` | `d_out` | `b_k` |
//! | `block{k}.prototype` | `d_out` | the fixed unit-norm prototype `xi_k` of the cosine goodness (saved for every goodness; only the cosine reads it) |
//! | `readout.weight` | `classes x features` | unsupervised models: the linear read-out on the standardised block activities |
//! | `readout.bias` | `classes` | its bias |
//! | `readout.mean`, `readout.std` | `features` | the read-out's standardisation: `s = (a - mean) / std` |
//!
//! Input standardisation (`input.mean`, `input.std`, one entry per raw feature) is part of
//! the naming scheme for models that hold one; today's model files hold no input transform
//! besides the label slots (`prepended_label_slots` and `label_embedding` in the metadata),
//! so no `input.*` tensor is written.
//!
//! # Metadata
//! A map of string keys to string values ([`metadata`]): in safetensors the header's
//! `__metadata__`, in npz a `metadata.json` entry (a JSON object; numpy's `np.load` returns
//! its bytes). Structured values (goodness, loss, label embedding, skip flags, the whole
//! configuration) are JSON text.

use crate::config::{ExperimentConfig, Objective, Precision};
use crate::io::write_atomic;
use crate::model::ModelFile;
use crate::run::SavedModel;
use anyhow::{bail, Context, Result};
use ff_core::Real;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the export layout (tensor names and metadata keys), written as the
/// `export_version` metadata entry.
pub const EXPORT_VERSION: u32 = 1;

/// File format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportFormat {
    /// safetensors: an 8-byte little-endian header length, a JSON header (dtype, shape and
    /// byte range of every tensor, plus `__metadata__`), then the raw tensor bytes.
    Safetensors,
    /// npz: an uncompressed (stored) zip archive of `NAME.npy` files (npy format 1.0), plus a
    /// `metadata.json` entry.
    Npz,
}

impl ExportFormat {
    /// The file extension (and format name): `safetensors` or `npz`.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Safetensors => "safetensors",
            ExportFormat::Npz => "npz",
        }
    }
}

/// Element type of an exported tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE 754 binary32, 4 bytes little-endian.
    F32,
    /// IEEE 754 binary64, 8 bytes little-endian.
    F64,
}

impl Dtype {
    /// The safetensors name: `F32` or `F64`.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
        }
    }

    /// The npy `descr`: `<f4` or `<f8` (little-endian).
    pub fn npy_descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// A precision the exporters can write: [`Real`] plus its dtype and little-endian bytes.
pub trait Element: Real {
    /// The dtype of tensors of this element.
    const DTYPE: Dtype;
    /// Appends the little-endian bytes of `self` to `out` (the exact bits, NaN payloads included).
    fn put_le(self, out: &mut Vec<u8>);
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Element for f64 {
    const DTYPE: Dtype = Dtype::F64;
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// One named tensor, ready to write: C-order (row-major) little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name (`block0.weight`, ...; see the module documentation).
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product() x dtype.size()` bytes.
    pub data: Vec<u8>,
}

impl Tensor {
    fn new<F: Element>(name: String, shape: Vec<usize>, values: &[F]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        let mut data = Vec::with_capacity(values.len() * F::DTYPE.size());
        for &v in values {
            v.put_le(&mut data);
        }
        Tensor { name, dtype: F::DTYPE, shape, data }
    }
}

/// The skip flag of every block, as the runner builds the blocks: the configured (or the
/// system's default) skip for physical systems, none for the digital-only network.
pub fn block_skips(cfg: &ExperimentConfig) -> Vec<bool> {
    vec![cfg.system.spec().is_physical() && cfg.skip(); cfg.blocks]
}

/// The tensors of `model`, in the order they are written: every block's weight, bias and
/// prototype, then the read-out when the model has one.
///
/// # Errors
/// A model whose parts have inconsistent lengths (a corrupt or hand-edited file), naming the
/// part and both numbers.
pub fn tensors<F: Element>(model: &ModelFile<F>) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    for (k, layer) in model.state.layers.iter().enumerate() {
        let (d_in, d_out) = (layer.d_in(), layer.d_out());
        let (params, proto) = (layer.params(), layer.prototype());
        if params.len() != d_out * d_in + d_out || proto.len() != d_out {
            bail!(
                "state.layers[{k}] is {d_in} -> {d_out} but holds {} parameters (expected {}) and {} prototype entries (expected {d_out}); the model file is corrupt, export it again from its run",
                params.len(),
                d_out * d_in + d_out,
                proto.len()
            );
        }
        out.push(Tensor::new(format!("block{k}.weight"), vec![d_out, d_in], &params[..d_out * d_in]));
        out.push(Tensor::new(format!("block{k}.bias"), vec![d_out], &params[d_out * d_in..]));
        out.push(Tensor::new(format!("block{k}.prototype"), vec![d_out], proto));
    }
    if let Some(r) = &model.readout {
        let sizes = r.linear().sizes();
        let (mean, std) = r.standardisation();
        let params = r.linear().params();
        let [d, c] = sizes else {
            bail!("the read-out has layer sizes {sizes:?}; a linear read-out has two (features, classes)");
        };
        let (d, c) = (*d, *c);
        if params.len() != c * d + c || mean.len() != d || std.len() != d {
            bail!(
                "the read-out maps {d} features to {c} classes but holds {} parameters (expected {}), {} means and {} standard deviations (expected {d}); the model file is corrupt",
                params.len(),
                c * d + c,
                mean.len(),
                std.len()
            );
        }
        out.push(Tensor::new("readout.weight".into(), vec![c, d], &params[..c * d]));
        out.push(Tensor::new("readout.bias".into(), vec![c], &params[c * d..]));
        out.push(Tensor::new("readout.mean".into(), vec![d], mean));
        out.push(Tensor::new("readout.std".into(), vec![d], std));
    }
    if let Some(st) = &model.standardization {
        // The CSV features' transform, in the model's precision: x' = (x[kept] - mean) / std.
        st.validate().context("the model file is corrupt")?;
        let k = st.kept.len();
        let mean: Vec<F> = st.mean.iter().map(|&v| F::c(v)).collect();
        let std: Vec<F> = st.sd.iter().map(|&v| F::c(v)).collect();
        out.push(Tensor::new("input.mean".into(), vec![k], &mean));
        out.push(Tensor::new("input.std".into(), vec![k], &std));
    }
    Ok(out)
}

/// The metadata of an export of `model` (string keys and values; structured values as JSON
/// text). `epochs_done` is the number of epochs the parameters were trained for (a model
/// file: the configured epochs; a checkpoint: its progress).
///
/// Keys: `format` (`phyff-export`), `export_version`, `phyff_version`, `source`
/// (`phyff-model` or `phyff-checkpoint`), `epochs_done`, `precision` (`f32`/`f64`),
/// `system`, `ablation` (`true` when the physical systems were replaced by their
/// stand-ins), `mode`, `objective`, `alpha` and `theta`, `goodness`, `loss` and
/// `label_embedding` and `label_value` (JSON, as in the model file), `pass_on` (`raw` or
/// `normalized`: what each block hands the next), `blocks`, `hidden`, `skip` (JSON array, one
/// flag per block: `u = [P_k(h); h]` when set, `u = P_k(h)` otherwise), `num_classes`,
/// `raw_len` (features of a sample as the data loader gives it, label slots included),
/// `prepended_label_slots` (zero columns put before the raw features for the label),
/// `embedded_len` (length of block 0's input `h` after the label embedding), `input_kept`
/// (CSV data standardised: JSON array of the raw feature columns kept, in order, each mapped
/// to `(x - input.mean) / input.std` before the label slots are prepended; `null`: the
/// features reach the network as loaded), `seed`, `data`,
/// `config` (the whole configuration as JSON), `layout` (a one-line reminder of the layout).
pub fn metadata<F: Real>(model: &ModelFile<F>, checkpoint_epochs: Option<usize>) -> BTreeMap<String, String> {
    let cfg = &model.config;
    let tc = cfg.train_config();
    let objective = match cfg.objective {
        Objective::Phyll => "phyll",
        Objective::Hinton => "hinton",
    };
    let source = if checkpoint_epochs.is_some() { "phyff-checkpoint" } else { "phyff-model" };
    let kept = model.standardization.as_ref().map_or_else(|| "null".to_string(), |s| json(&s.kept));
    let entries: [(&str, String); 29] = [
        ("format", "phyff-export".into()),
        ("export_version", EXPORT_VERSION.to_string()),
        ("phyff_version", env!("CARGO_PKG_VERSION").into()),
        ("source", source.into()),
        ("epochs_done", checkpoint_epochs.unwrap_or(cfg.epochs).to_string()),
        ("precision", F::NAME.into()),
        ("system", cfg.system.name().into()),
        ("ablation", model.ablation.to_string()),
        ("mode", cfg.mode.name().into()),
        ("objective", objective.into()),
        ("alpha", cfg.alpha.to_string()),
        ("theta", cfg.theta.to_string()),
        ("goodness", json(&tc.goodness)),
        ("loss", json(&tc.loss)),
        ("pass_on", json(&tc.pass_on).trim_matches('"').to_string()),
        ("label_embedding", json(&model.embedding)),
        ("label_value", json(&tc.label_value)),
        ("blocks", cfg.blocks.to_string()),
        ("hidden", cfg.hidden.to_string()),
        ("skip", json(&block_skips(cfg))),
        ("num_classes", model.embedding.num_classes().to_string()),
        ("raw_len", model.raw_len.to_string()),
        ("prepended_label_slots", model.prepended_label_slots.to_string()),
        ("embedded_len", model.embedding.embedded_len(model.raw_len).to_string()),
        ("input_kept", kept),
        ("seed", cfg.seed.to_string()),
        ("data", cfg.data.clone()),
        ("config", json(cfg)),
        (
            "layout",
            "C order, little-endian; block{k}.weight is d_out x d_in (torch.nn.Linear.weight): z = W u + b".into(),
        ),
    ];
    entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// JSON text of a configuration value.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("configuration values always serialise")
}

/// A safetensors file of `tensors` with `metadata` as `__metadata__`: the header length
/// (u64 little-endian), the JSON header padded with spaces to a multiple of 8 bytes (so the
/// data start 8-byte aligned), then the tensors back to back in the given order.
pub fn to_safetensors(tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialise"));
    let mut at = 0usize;
    for t in tensors {
        let end = at + t.data.len();
        header.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype.safetensors_name(), "shape": t.shape, "data_offsets": [at, end]}),
        );
        at = end;
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(header)).expect("JSON values serialise");
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + at);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// The `.npy` (format version 1.0) bytes of one tensor: magic `\x93NUMPY`, version 1.0, the
/// header length (u16 little-endian), the header dict padded with spaces and ended by `\n`
/// so that the data start at a multiple of 64 bytes, then the data.
///
/// # Errors
/// A header longer than 65 535 bytes (a tensor of absurdly many dimensions).
pub fn npy_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let shape = match t.shape.as_slice() {
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", t.dtype.npy_descr());
    // 6 magic + 2 version + 2 length + header + '\n' = a multiple of 64.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.extend(std::iter::repeat_n(' ', total - 10 - header.len() - 1));
    header.push('\n');
    let Ok(len) = u16::try_from(header.len()) else {
        bail!("the npy header of {} is {} bytes, more than npy 1.0 allows (65535)", t.name, header.len());
    };
    let mut out = Vec::with_capacity(total + t.data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.data);
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`), the checksum of zip entries.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// An npz file: a zip archive, every entry stored (no compression), of `NAME.npy` for each
/// tensor and `metadata.json` (the metadata as a JSON object). Entries carry a fixed date
/// (1980-01-01 00:00), so the same model always gives the same bytes.
///
/// # Errors
/// An archive beyond plain zip's limits (4 GiB, 65 535 entries; no zip64 is written): use
/// safetensors for such a model.
pub fn to_npz(tensors: &[Tensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut entries = Vec::with_capacity(tensors.len() + 1);
    for t in tensors {
        entries.push((format!("{}.npy", t.name), npy_bytes(t)?));
    }
    entries.push(("metadata.json".to_string(), serde_json::to_vec_pretty(metadata).expect("strings serialise")));
    let too_big =
        || anyhow::anyhow!("the npz archive would exceed 4 GiB, beyond plain zip; export with --format safetensors");
    let u32_of = |n: usize| u32::try_from(n).map_err(|_| too_big());
    let count = u16::try_from(entries.len())
        .map_err(|_| anyhow::anyhow!("{} entries are more than a zip holds (65535)", entries.len()))?;
    const VERSION: u16 = 20; // 2.0: the zip version numpy and Python's zipfile write
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (1 << 5) | 1; // 1980-01-01
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in &entries {
        let offset = u32_of(out.len())?;
        let (crc, size, name_len) = (crc32(data), u32_of(data.len())?, name.len() as u16);
        // Local file header.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [VERSION, 0, 0, DOS_TIME, DOS_DATE] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Its central directory record.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [VERSION, VERSION, 0, 0, DOS_TIME, DOS_DATE] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, offset] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size) = (u32_of(out.len())?, u32_of(central.len())?);
    out.extend_from_slice(&central);
    // End of central directory.
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [cd_size, cd_offset] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    u32_of(out.len())?;
    Ok(out)
}

/// The bytes of an export of `model` in `format`.
///
/// # Errors
/// As [`tensors`] and [`to_npz`].
pub fn export_bytes<F: Element>(
    model: &ModelFile<F>,
    checkpoint_epochs: Option<usize>,
    format: ExportFormat,
) -> Result<(Vec<Tensor>, Vec<u8>)> {
    let ts = tensors(model)?;
    let meta = metadata(model, checkpoint_epochs);
    let bytes = match format {
        ExportFormat::Safetensors => to_safetensors(&ts, &meta),
        ExportFormat::Npz => to_npz(&ts, &meta)?,
    };
    Ok((ts, bytes))
}

/// Where `phyff export` writes by default: beside the model, its file name with the format's
/// extension (`DIR/model.json` -> `DIR/model.safetensors`, `DIR/checkpoint.json` ->
/// `DIR/checkpoint.npz`).
pub fn default_out(model: &Path, format: ExportFormat) -> PathBuf {
    model.with_extension(format.extension())
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// The model's precision.
    pub precision: Precision,
    /// Name and shape of every tensor, in file order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// For a checkpoint: the epochs it had completed.
    pub checkpoint_epochs: Option<usize>,
}

/// Exports the model file or checkpoint `saved` to `out` (written atomically) in `format`.
///
/// # Errors
/// A model that does not load (see [`SavedModel::load`]), an `out` that is the model file
/// itself, inconsistent parameters, an npz beyond zip's limits, and I/O errors naming the path.
pub fn export(saved: &SavedModel, format: ExportFormat, out: &Path) -> Result<Exported> {
    if same_file(saved.path(), out) {
        bail!(
            "--out {} is the model file itself; give another path (default: {})",
            out.display(),
            default_out(saved.path(), format).display()
        );
    }
    let precision = saved.config()?.precision;
    let (ts, bytes, checkpoint_epochs) = match precision {
        Precision::F32 => {
            let (m, e) = saved.load::<f32>()?;
            let (ts, b) = export_bytes(&m, e, format)?;
            (ts, b, e)
        }
        Precision::F64 => {
            let (m, e) = saved.load::<f64>()?;
            let (ts, b) = export_bytes(&m, e, format)?;
            (ts, b, e)
        }
    };
    write_atomic(out, &bytes).with_context(|| format!("cannot write the export {}", out.display()))?;
    Ok(Exported {
        path: out.to_path_buf(),
        bytes: bytes.len(),
        precision,
        tensors: ts.into_iter().map(|t| (t.name, t.shape)).collect(),
        checkpoint_epochs,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
