//! The files are read back by readers written here from the format descriptions
//! (safetensors: header length, JSON header, byte buffer; npz: zip local headers, central
//! directory and npy 1.0 headers), sharing no code with the writers, and every value is
//! compared bit for bit with the model's own parameters.

use super::*;
use crate::config::SystemKind;
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
        let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
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
        let start = header.find(&format!("'{key}': ")).unwrap_or_else(|| panic!("{key} in {header}")) + key.len() + 4;
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
    let optimizers = layers.iter().map(|l| Optimizer::new(config.train_config().optimizer, l.num_params())).collect();
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
            assert!((z.get(r, o) - want).abs() <= 1e-12 * want.abs().max(1.0), "({r}, {o}): {} vs {want}", z.get(r, o));
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
    let has_numpy =
        std::process::Command::new("python3").args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
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
