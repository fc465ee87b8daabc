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

use crate::config::{ExperimentConfig, Objective, Precision, SystemKind};
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
    vec![cfg.system != SystemKind::Digital && cfg.skip(); cfg.blocks]
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
mod tests {
    //! The files are read back by readers written here from the format descriptions
    //! (safetensors: header length, JSON header, byte buffer; npz: zip local headers, central
    //! directory and npy 1.0 headers), sharing no code with the writers, and every value is
    //! compared bit for bit with the model's own parameters.

    use super::*;
    use crate::model::{MODEL_FORMAT, MODEL_VERSION};
    use ff_core::{LabelEmbedding, LinearReadout, LocalLayer, Matrix, NetworkState, Optimizer, ReadoutConfig};

    /// A decoded tensor: its dtype name, shape and values widened to `f64` bits-preserving
    /// (`f32` values are kept as their own bits in the low 32 bits).
    #[derive(Debug, PartialEq)]
    struct Read {
        dtype: String,
        shape: Vec<usize>,
        bits: Vec<u64>,
    }

    fn decode(dtype: &str, bytes: &[u8]) -> Vec<u64> {
        match dtype {
            "F32" | "<f4" => {
                assert_eq!(bytes.len() % 4, 0);
                bytes.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap()))).collect()
            }
            "F64" | "<f8" => {
                assert_eq!(bytes.len() % 8, 0);
                bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
            }
            other => panic!("unexpected dtype {other}"),
        }
    }

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Reads a safetensors file: every tensor and the `__metadata__` map. Checks the header
    /// length, the padding, and that the byte ranges tile the data buffer without holes or
    /// overlaps.
    fn read_safetensors(file: &[u8]) -> (BTreeMap<String, Read>, BTreeMap<String, String>) {
        let n = usize::try_from(u64::from_le_bytes(file[..8].try_into().unwrap())).unwrap();
        assert_eq!(n % 8, 0, "header padded to 8 bytes");
        let header_text = std::str::from_utf8(&file[8..8 + n]).unwrap();
        assert!(header_text.starts_with('{'));
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_str(header_text.trim_end()).unwrap();
        let buffer = &file[8 + n..];
        let mut meta = BTreeMap::new();
        let (mut tensors, mut ranges) = (BTreeMap::new(), Vec::new());
        for (name, v) in &header {
            if name == "__metadata__" {
                for (k, s) in v.as_object().unwrap() {
                    meta.insert(k.clone(), s.as_str().expect("metadata values are strings").to_string());
                }
                continue;
            }
            let dtype = v["dtype"].as_str().unwrap().to_string();
            let shape: Vec<usize> =
                v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            let off = v["data_offsets"].as_array().unwrap();
            let (a, b) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
            let size = if dtype == "F32" { 4 } else { 8 };
            assert_eq!(b - a, shape.iter().product::<usize>() * size, "{name}: byte range against shape");
            ranges.push((a, b));
            tensors.insert(name.clone(), Read { bits: decode(&dtype, &buffer[a..b]), dtype, shape });
        }
        ranges.sort_unstable();
        let mut at = 0;
        for (a, b) in ranges {
            assert_eq!(a, at, "tensors must be contiguous, without holes or overlaps");
            at = b;
        }
        assert_eq!(at, buffer.len(), "the tensors fill the buffer");
        (tensors, meta)
    }

    /// CRC-32 bit by bit (the zip checksum), written independently of the writer's table.
    fn crc_bitwise(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        !crc
    }

    /// Parses an npy 1.0 file: descr, shape (C order is required) and the values.
    fn read_npy(b: &[u8]) -> Read {
        assert_eq!(&b[..6], b"\x93NUMPY", "npy magic");
        assert_eq!((b[6], b[7]), (1, 0), "npy version 1.0");
        let len = u16_at(b, 8);
        assert_eq!((10 + len) % 64, 0, "data aligned to 64 bytes");
        let header = std::str::from_utf8(&b[10..10 + len]).unwrap();
        assert!(header.ends_with('\n'), "{header:?}");
        let field = |key: &str| {
            let start =
                header.find(&format!("'{key}': ")).unwrap_or_else(|| panic!("{key} in {header}")) + key.len() + 4;
            &header[start..]
        };
        let descr = field("descr");
        let descr = &descr[1..1 + descr[1..].find('\'').unwrap()];
        assert!(field("fortran_order").starts_with("False"), "{header}");
        let shape = field("shape");
        let shape = &shape[1..shape.find(')').unwrap()];
        let shape: Vec<usize> =
            shape.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        Read { bits: decode(descr, &b[10 + len..]), dtype: descr.to_string(), shape }
    }

    /// Reads an npz file by walking its local file headers, checking every entry's CRC, the
    /// central directory and its end record; returns the arrays and the metadata entry.
    fn read_npz(file: &[u8]) -> (BTreeMap<String, Read>, BTreeMap<String, String>) {
        let (mut at, mut locals) = (0usize, Vec::new());
        let (mut arrays, mut meta) = (BTreeMap::new(), BTreeMap::new());
        while u32_at(file, at) == 0x0403_4b50 {
            assert_eq!(u16_at(file, at + 8), 0, "stored, no compression");
            let (crc, csize, usize_) = (u32_at(file, at + 14), u32_at(file, at + 18), u32_at(file, at + 22));
            assert_eq!(csize, usize_);
            let (name_len, extra_len) = (u16_at(file, at + 26), u16_at(file, at + 28));
            let name = std::str::from_utf8(&file[at + 30..at + 30 + name_len]).unwrap().to_string();
            let start = at + 30 + name_len + extra_len;
            let data = &file[start..start + csize as usize];
            assert_eq!(crc_bitwise(data), crc, "CRC-32 of {name}");
            locals.push((name.clone(), at, crc));
            if let Some(stem) = name.strip_suffix(".npy") {
                arrays.insert(stem.to_string(), read_npy(data));
            } else {
                assert_eq!(name, "metadata.json");
                meta = serde_json::from_slice(data).unwrap();
            }
            at = start + csize as usize;
        }
        // Central directory: one record per local entry, pointing back at it.
        let cd_start = at;
        for (name, offset, crc) in &locals {
            assert_eq!(u32_at(file, at), 0x0201_4b50, "central record of {name}");
            assert_eq!(u32_at(file, at + 16), *crc);
            let (n, e, c) = (u16_at(file, at + 28), u16_at(file, at + 30), u16_at(file, at + 32));
            assert_eq!(u32_at(file, at + 42) as usize, *offset, "local header offset of {name}");
            assert_eq!(&file[at + 46..at + 46 + n], name.as_bytes());
            at += 46 + n + e + c;
        }
        assert_eq!(u32_at(file, at), 0x0605_4b50, "end of central directory");
        assert_eq!(u16_at(file, at + 10), locals.len(), "entry count");
        assert_eq!(u32_at(file, at + 12) as usize, at - cd_start, "central directory size");
        assert_eq!(u32_at(file, at + 16) as usize, cd_start, "central directory offset");
        assert_eq!(at + 22, file.len(), "nothing after the end record");
        (arrays, meta)
    }

    fn bits<F: Element>(v: &[F]) -> Vec<u64> {
        v.iter()
            .map(|x| {
                if F::DTYPE == Dtype::F32 {
                    u64::from(x.to_f32().unwrap().to_bits())
                } else {
                    x.to_f64().unwrap().to_bits()
                }
            })
            .collect()
    }

    /// A 2-block digital model (5 -> 3 -> 3, label slots 3) with awkward values (signed
    /// zero, subnormal, extremes) and an unsupervised read-out fitted on random activities.
    fn known_model<F: Element>(precision: Precision, with_readout: bool) -> ModelFile<F> {
        let special = [F::c(-0.0), F::min_positive_value() / F::c(8.0), F::max_value(), F::c(1.0 / 3.0), F::epsilon()];
        let value = |k: usize, i: usize| {
            if i < special.len() && k == 0 {
                special[i]
            } else {
                F::c(((k * 31 + i * 7) % 19) as f64 / 7.0 - 1.3)
            }
        };
        let (d_out, dims) = (3, [5, 3]);
        let layers: Vec<LocalLayer<F>> = dims
            .iter()
            .enumerate()
            .map(|(k, &d_in)| {
                let params = (0..d_out * d_in + d_out).map(|i| value(k, i)).collect();
                let proto = (0..d_out).map(|i| F::c(0.5 + k as f64 + i as f64 / 10.0)).collect();
                LocalLayer::from_parts(d_in, d_out, params, proto, ff_core::Goodness::default()).unwrap()
            })
            .collect();
        let config = ExperimentConfig {
            system: SystemKind::Digital,
            blocks: 2,
            hidden: d_out,
            precision,
            ..ExperimentConfig::default()
        };
        let optimizers =
            layers.iter().map(|l| Optimizer::new(config.train_config().optimizer, l.num_params())).collect();
        let readout = with_readout.then(|| {
            let features = Matrix::from_fn(12, 6, |r, c| F::c(((r * 5 + c * 3) % 11) as f64 - 4.0));
            let labels: Vec<usize> = (0..12).map(|r| r % 3).collect();
            let cfg = ReadoutConfig { epochs: 2, batch_size: 4, lr: 1e-2 };
            LinearReadout::fit(features.view(), &labels, 3, &cfg, 7).unwrap().0
        });
        ModelFile {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            config,
            raw_len: 5,
            prepended_label_slots: 3,
            embedding: LabelEmbedding::Overwrite { num_classes: 3 },
            ablation: false,
            state: NetworkState { layers, optimizers },
            readout,
            standardization: Some(crate::standardize::Standardization {
                raw_len: 3,
                kept: vec![0, 2],
                mean: vec![1.5, -2.25],
                sd: vec![0.5, 4.0],
            }),
        }
    }

    /// Every tensor the model should export, from the model's own accessors (not from
    /// [`tensors`]).
    fn expected<F: Element>(m: &ModelFile<F>) -> BTreeMap<String, Read> {
        let dtype = if F::DTYPE == Dtype::F32 { "F32" } else { "F64" };
        let read = |shape: Vec<usize>, v: &[F]| Read { dtype: dtype.into(), shape, bits: bits(v) };
        let mut e = BTreeMap::new();
        for (k, l) in m.state.layers.iter().enumerate() {
            let w = l.weights();
            let w: Vec<F> = (0..w.rows()).flat_map(|r| w.row(r).iter().copied()).collect();
            e.insert(format!("block{k}.weight"), read(vec![l.d_out(), l.d_in()], &w));
            e.insert(format!("block{k}.bias"), read(vec![l.d_out()], l.bias()));
            e.insert(format!("block{k}.prototype"), read(vec![l.d_out()], l.prototype()));
        }
        if let Some(r) = &m.readout {
            let (mean, std) = r.standardisation();
            let (d, c) = (r.input_len(), r.num_classes());
            let p = r.linear().params();
            e.insert("readout.weight".into(), read(vec![c, d], &p[..c * d]));
            e.insert("readout.bias".into(), read(vec![c], &p[c * d..]));
            e.insert("readout.mean".into(), read(vec![d], mean));
            e.insert("readout.std".into(), read(vec![d], std));
        }
        if let Some(s) = &m.standardization {
            let f = |v: &[f64]| v.iter().map(|&x| F::c(x)).collect::<Vec<F>>();
            e.insert("input.mean".into(), read(vec![s.kept.len()], &f(&s.mean)));
            e.insert("input.std".into(), read(vec![s.kept.len()], &f(&s.sd)));
        }
        e
    }

    fn with_npy_dtype(mut e: BTreeMap<String, Read>) -> BTreeMap<String, Read> {
        for r in e.values_mut() {
            r.dtype = if r.dtype == "F32" { "<f4" } else { "<f8" }.into();
        }
        e
    }

    fn round_trip<F: Element>(precision: Precision) {
        for with_readout in [false, true] {
            let m = known_model::<F>(precision, with_readout);
            let want = expected(&m);
            assert_eq!(want.len(), if with_readout { 12 } else { 8 });
            let (_, st) = export_bytes(&m, None, ExportFormat::Safetensors).unwrap();
            let (got, st_meta) = read_safetensors(&st);
            assert_eq!(got, want, "safetensors, {precision:?}, read-out {with_readout}");
            let (_, npz) = export_bytes(&m, Some(4), ExportFormat::Npz).unwrap();
            let (got, npz_meta) = read_npz(&npz);
            assert_eq!(got, with_npy_dtype(expected(&m)), "npz, {precision:?}, read-out {with_readout}");
            // The same metadata in both, apart from where the parameters came from.
            let differ: Vec<_> = st_meta.keys().filter(|k| st_meta.get(*k) != npz_meta.get(*k)).collect();
            assert_eq!(differ, ["epochs_done", "source"]);
            assert_eq!(npz_meta["source"], "phyff-checkpoint");
            assert_eq!(npz_meta["epochs_done"], "4");
            assert_eq!(st_meta["precision"], F::NAME);
            assert_eq!(st_meta["skip"], "[false,false]");
            assert_eq!(st_meta["num_classes"], "3");
            assert_eq!(st_meta["prepended_label_slots"], "3");
            assert_eq!(st_meta["input_kept"], "[0,2]");
            assert_eq!(st_meta["pass_on"], "raw");
            let goodness: ff_core::Goodness = serde_json::from_str(&st_meta["goodness"]).unwrap();
            assert_eq!(goodness, m.config.train_config().goodness);
            let config: ExperimentConfig = serde_json::from_str(&st_meta["config"]).unwrap();
            assert_eq!(config, m.config);
            // Same model, same bytes.
            assert_eq!(export_bytes(&m, Some(4), ExportFormat::Npz).unwrap().1, npz);
        }
    }

    #[test]
    fn every_tensor_reads_back_bit_for_bit_f32() {
        round_trip::<f32>(Precision::F32);
    }

    #[test]
    fn every_tensor_reads_back_bit_for_bit_f64() {
        round_trip::<f64>(Precision::F64);
    }

    #[test]
    fn exported_weights_compute_the_blocks_affine_map() {
        // z = W u + b with the decoded tensors equals the layer's own forward pass.
        let m = known_model::<f64>(Precision::F64, false);
        let (tensors, _) = read_safetensors(&export_bytes(&m, None, ExportFormat::Safetensors).unwrap().1);
        let layer = &m.state.layers[1];
        let u = Matrix::from_fn(2, 3, |r, c| (r as f64) - 0.5 * c as f64);
        let mut z = Matrix::zeros(0, 0);
        layer.forward(u.view(), &mut z);
        let w = &tensors["block1.weight"];
        let b = &tensors["block1.bias"];
        assert_eq!(w.shape, [3, 3]);
        for r in 0..2 {
            for o in 0..3 {
                let dot: f64 = (0..3).map(|i| f64::from_bits(w.bits[o * 3 + i]) * u.get(r, i)).sum();
                let want = dot + f64::from_bits(b.bits[o]);
                assert!(
                    (z.get(r, o) - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "({r}, {o}): {} vs {want}",
                    z.get(r, o)
                );
            }
        }
    }

    #[test]
    fn crc_and_npy_headers_follow_the_formats() {
        // The standard check value of CRC-32.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc_bitwise(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let t = Tensor::new::<f32>("x".into(), vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = npy_bytes(&t).unwrap();
        // 10 bytes of magic, version and length, the 60-byte dict, padding and '\n': 128 bytes
        // (numpy writes the same), then 6 x 4 bytes.
        assert_eq!(b.len(), 128 + 24);
        assert_eq!(&b[..10], b"\x93NUMPY\x01\x00\x76\x00");
        assert_eq!(b[127], b'\n');
        let header = std::str::from_utf8(&b[10..128]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "{header:?}");
        let v = Tensor::new::<f64>("v".into(), vec![4], &[0.0; 4]);
        assert!(std::str::from_utf8(&npy_bytes(&v).unwrap()[10..128]).unwrap().contains("'shape': (4,), }"));
    }

    #[test]
    fn a_corrupt_layer_never_reaches_the_exporter() {
        // A layer whose parameters do not fit its sizes is refused when the file is read, so
        // `tensors` only ever sees layers that fit together.
        let m = known_model::<f32>(Precision::F32, false);
        let mut layer = serde_json::to_value(&m.state.layers[1]).unwrap();
        layer["params"].as_array_mut().unwrap().pop();
        let err = serde_json::from_value::<LocalLayer<f32>>(layer).unwrap_err().to_string();
        assert!(err.contains("expected 12 values") && err.contains("got 11"), "{err}");
    }

    #[test]
    fn skip_flags_match_the_blocks_the_runner_builds() {
        let embedding = LabelEmbedding::Overwrite { num_classes: 3 };
        for (system, skip) in [
            (SystemKind::Digital, None),
            (SystemKind::Digital, Some(true)),
            (SystemKind::Optics, None),
            (SystemKind::Optics, Some(true)),
            (SystemKind::Microwave, None),
            (SystemKind::Microwave, Some(false)),
        ] {
            let cfg = ExperimentConfig { system, skip, blocks: 2, hidden: 16, ..ExperimentConfig::default() };
            let specs = crate::systems::build_blocks::<f32>(&cfg, &embedding, 20, false).unwrap();
            let built: Vec<bool> = specs.iter().map(|s| s.skip).collect();
            assert_eq!(block_skips(&cfg), built, "{system:?} skip {skip:?}");
        }
    }

    #[test]
    fn numpy_loads_the_npz_when_available() {
        // An extra check by numpy itself; the readers above run whether or not it is installed.
        let has_numpy = std::process::Command::new("python3")
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_numpy {
            println!("note: python3 with numpy not found; skipping the numpy check (the Rust readers ran)");
            return;
        }
        let m = known_model::<f32>(Precision::F32, true);
        let (_, npz) = export_bytes(&m, None, ExportFormat::Npz).unwrap();
        let path = std::env::temp_dir().join(format!("phyff-export-{}.npz", std::process::id()));
        std::fs::write(&path, npz).unwrap();
        // numpy prints every value as its bit pattern; compare with the model's.
        let script = "import sys, json, numpy as np\n\
            z = np.load(sys.argv[1])\n\
            meta = json.loads(z['metadata.json'])\n\
            out = {k: [str(z[k].dtype), list(z[k].shape), [int(b) for b in z[k].view(np.uint32).ravel()]] for k in z.files if k != 'metadata.json'}\n\
            print(json.dumps({'meta': meta, 'arrays': out}))";
        let o = std::process::Command::new("python3").args(["-c", script, path.to_str().unwrap()]).output().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["meta"]["precision"], "f32");
        let want = expected(&m);
        assert_eq!(v["arrays"].as_object().unwrap().len(), want.len());
        for (name, r) in want {
            let a = &v["arrays"][&name];
            assert_eq!(a[0], "float32", "{name}");
            assert_eq!(a[1], serde_json::json!(r.shape), "{name}");
            assert_eq!(a[2], serde_json::json!(r.bits), "{name}");
        }
    }
}
