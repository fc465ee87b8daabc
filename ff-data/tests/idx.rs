//! IDX (MNIST format) parsing on small fixtures written by the tests.

use ff_data::{
    load, load_idx_dir, parse_idx_images, parse_idx_labels, DataError, DataSpec, ImageSet, Layout, Normalisation,
    MNIST_MEAN, MNIST_STD,
};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::PathBuf;

fn idx_images(n: u32, rows: u32, cols: u32, pixel: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend((0..(n * rows * cols) as usize).map(pixel));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A fresh, empty temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff-data-idx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_images(bytes: &[u8]) -> String {
    parse_idx_images::<f32>(bytes, "imgs", Normalisation::MNIST).unwrap_err().to_string()
}

#[test]
fn pixels_are_normalised_with_the_mnist_constants() {
    let bytes = idx_images(2, 3, 4, |i| [0u8, 255, 51][i % 3]);
    let im = parse_idx_images::<f64>(&bytes, "t", Normalisation::MNIST).unwrap();
    assert_eq!((im.rows, im.cols, im.x.rows(), im.x.cols()), (3, 4, 2, 12));
    let z = |p: f64| (p / 255.0 - MNIST_MEAN) / MNIST_STD;
    assert_eq!(im.x.row(0)[..3], [z(0.0), z(255.0), z(51.0)]);
    assert_eq!(im.x.row(1)[0], z([0.0, 255.0, 51.0][12 % 3]));
    let unit = parse_idx_images::<f32>(&bytes, "t", Normalisation::UNIT).unwrap();
    assert_eq!(unit.x.row(0)[..3], [0.0, 1.0, 0.2]);
    assert!(parse_idx_images::<f32>(&bytes, "t", Normalisation { mean: 0.0, std: 0.0 }).is_err());
}

#[test]
fn gzip_and_plain_give_the_same_result() {
    let bytes = idx_images(7, 5, 6, |i| (i * 37 % 256) as u8);
    let a = parse_idx_images::<f32>(&bytes, "p", Normalisation::MNIST).unwrap();
    let b = parse_idx_images::<f32>(&gz(&bytes), "g", Normalisation::MNIST).unwrap();
    assert_eq!(a, b);
    let l = idx_labels(&[3, 1, 4, 1, 5, 9, 2]);
    assert_eq!(parse_idx_labels(&l, "l", 10).unwrap(), [3, 1, 4, 1, 5, 9, 2]);
    assert_eq!(parse_idx_labels(&gz(&l), "l", 10).unwrap(), [3, 1, 4, 1, 5, 9, 2]);
}

#[test]
fn bad_magic_numbers_are_reported_at_offset_0() {
    let labels = idx_labels(&[1, 2]);
    let e = err_images(&labels);
    assert!(e.starts_with("imgs at byte offset 0: bad IDX magic number 0x00000801"), "{e}");
    let e = parse_idx_labels(&idx_images(1, 2, 2, |_| 0), "lbl", 10).unwrap_err().to_string();
    assert!(e.starts_with("lbl at byte offset 0: bad IDX magic number 0x00000803"), "{e}");
    let mut b = idx_images(1, 2, 2, |_| 0);
    b[2] = 0x0d; // float elements
    assert!(err_images(&b).contains("bad IDX magic"));
    assert!(err_images(&[0, 0]).contains("ends inside the 4-byte IDX magic"));
    assert!(err_images(&[]).contains("offset 0"));
}

#[test]
fn zero_and_absurd_dimensions_name_their_offset() {
    let e = err_images(&idx_images(0, 28, 28, |_| 0));
    assert!(e.starts_with("imgs at byte offset 4: IDX dimension 1 is 0"), "{e}");
    let e = err_images(&idx_images(1, 28, 0, |_| 0));
    assert!(e.starts_with("imgs at byte offset 12: IDX dimension 3 is 0"), "{e}");
    let mut b = idx_images(1, 2, 2, |_| 0);
    b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(err_images(&b).starts_with("imgs at byte offset 4: IDX dimension 1 is 4294967295"));
    // A header cut short.
    assert!(err_images(&idx_images(1, 2, 2, |_| 0)[..10]).contains("offset 8: file ends inside the IDX header"));
}

#[test]
fn truncation_and_trailing_bytes_are_errors() {
    let b = idx_images(3, 4, 4, |_| 7);
    let e = err_images(&b[..b.len() - 5]);
    assert!(e.starts_with("imgs at byte offset 59: truncated"), "{e}");
    // The same inside gzip: the offset is in the decompressed stream.
    let e = err_images(&gz(&b[..b.len() - 5]));
    assert!(e.contains("offset 59") && e.contains("decompressed"), "{e}");
    let mut long = b.clone();
    long.push(0);
    let e = err_images(&long);
    assert!(e.starts_with("imgs at byte offset 64: unexpected data after the last element"), "{e}");
    let l = idx_labels(&[1, 2, 3]);
    assert!(parse_idx_labels(&l[..l.len() - 1], "l", 10).unwrap_err().to_string().contains("truncated"));
}

#[test]
fn a_huge_announced_count_does_not_allocate_it() {
    // 200 million images of 28 x 28 announced, 20 bytes present: an error, not an abort.
    let mut b = idx_images(1, 28, 28, |_| 0);
    b[4..8].copy_from_slice(&200_000_000u32.to_be_bytes());
    b.truncate(20);
    assert!(err_images(&b).contains("truncated"));
    assert!(err_images(&gz(&b)).contains("truncated"));
}

#[test]
fn dimensions_whose_product_overflows_u64_are_an_error() {
    // Found by the fuzz smoke run: 3 x 2^28 multiplied in u64 overflowed.
    let mut b = vec![0, 0, 8, 3];
    for _ in 0..3 {
        b.extend_from_slice(&(1u32 << 28).to_be_bytes());
    }
    let e = err_images(&b);
    assert!(e.starts_with("imgs at byte offset 4: the header announces"), "{e}");
}

#[test]
fn corrupt_gzip_is_a_gzip_error() {
    let g = gz(&idx_images(4, 8, 8, |i| i as u8));
    let e = parse_idx_images::<f32>(&g[..g.len() / 2], "x.gz", Normalisation::MNIST).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. } | DataError::Binary { .. }), "{e}");
    let mut bad = g.clone();
    let k = bad.len() - 6; // inside the CRC trailer
    bad[k] ^= 0xff;
    let e = parse_idx_images::<f32>(&bad, "x.gz", Normalisation::MNIST).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
}

#[test]
fn labels_out_of_range_name_their_offset() {
    let e = parse_idx_labels(&idx_labels(&[1, 2, 10, 3]), "lbl", 10).unwrap_err().to_string();
    assert_eq!(e, "lbl at byte offset 10: label 10 is out of range 0..10");
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A miniature MNIST directory: 5 training and 3 test images of 28 x 28, mixing plain, gzip and
/// the dotted file-name variant.
fn mini_mnist(name: &str) -> PathBuf {
    let d = temp_dir(name);
    write(&d, "train-images-idx3-ubyte.gz", &gz(&idx_images(5, 28, 28, |i| (i % 256) as u8)));
    write(&d, "train-labels-idx1-ubyte", &idx_labels(&[5, 0, 4, 1, 9]));
    write(&d, "t10k-images.idx3-ubyte", &idx_images(3, 28, 28, |i| (i % 7) as u8));
    write(&d, "t10k-labels-idx1-ubyte.gz", &gz(&idx_labels(&[7, 2, 1])));
    d
}

#[test]
fn a_directory_loads_as_the_standard_split() {
    let d = mini_mnist("ok");
    let tt = load_idx_dir::<f32>(&d, ImageSet::Mnist, Normalisation::MNIST).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (5, 3));
    assert_eq!(tt.train.y, [5, 0, 4, 1, 9]);
    assert_eq!(tt.test.y, [7, 2, 1]);
    assert_eq!(tt.train.layout, Layout::Image { height: 28, width: 28 });
    assert_eq!(tt.train.dim(), 784);
    assert_eq!(tt.train.name, "mnist");
    let spec: DataSpec = format!("fashion:{}", d.display()).parse().unwrap();
    let f = load::<f64>(&spec, 0).unwrap();
    assert_eq!(f.train.class_names[9], "Ankle boot");
    // Same normalisation for Fashion-MNIST.
    assert_eq!(f.train.x.cast::<f32>(), tt.train.x);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn image_and_label_counts_must_agree() {
    let d = mini_mnist("mismatch");
    write(&d, "train-labels-idx1-ubyte", &idx_labels(&[5, 0, 4, 1]));
    let e = load_idx_dir::<f32>(&d, ImageSet::Mnist, Normalisation::MNIST).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte.gz") && msg.contains("train-labels-idx1-ubyte"), "{msg}");
    assert!(msg.ends_with("5 images but 4 labels"), "{msg}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_missing_file_names_the_fetch_command() {
    let d = mini_mnist("missing");
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_idx_dir::<f32>(&d, ImageSet::Mnist, Normalisation::MNIST).unwrap_err();
    let expected = format!(
        "MNIST not found: {} does not exist; fetch it with `cargo xtask fetch-data mnist --dir {}`",
        d.join("t10k-labels-idx1-ubyte").display(),
        d.display()
    );
    assert_eq!(e.to_string(), expected);
    std::fs::remove_dir_all(&d).unwrap();
    let e = load::<f32>(&"fashion:/nonexistent/fm".parse().unwrap(), 0).unwrap_err().to_string();
    assert!(e.contains("`cargo xtask fetch-data fashion-mnist --dir /nonexistent/fm`"), "{e}");
}

#[test]
fn data_spec_directories() {
    let p = |s: &str| s.parse::<DataSpec>();
    assert_eq!(p("mnist").unwrap(), DataSpec::Mnist("data/mnist".into()));
    assert_eq!(p("mnist:/d/m").unwrap(), DataSpec::Mnist("/d/m".into()));
    assert_eq!(p("fashion").unwrap(), DataSpec::Fashion("data/fashion-mnist".into()));
    assert_eq!(p("fashion-mnist:x").unwrap(), DataSpec::Fashion("x".into()));
    assert!(p("mnist:").is_err());
}
