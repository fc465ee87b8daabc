//! The Python device module (`python/phyff_device.py`) against the Rust client: training
//! through the toy instrument (`python/examples/toy_instrument.py`) over stdio and over TCP,
//! and a device error reaching the client. These tests need `python3` (3.8 or later, standard
//! library only) on the PATH and fail, with a message saying so, when it is missing.

use ff_core::{Matrix, PhysicalSystem, SystemError};
use ff_physics::device::{DeviceConfig, DeviceSystem, Transport};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The repository's `python/` folder.
fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("python")
}

/// The toy instrument script, quoted as one word of a device command line.
fn toy_instrument() -> String {
    let script = python_dir().join("examples").join("toy_instrument.py");
    assert!(script.is_file(), "{} is missing", script.display());
    let s = script.to_str().expect("a UTF-8 path").to_string();
    assert!(
        !s.contains('\''),
        "the repository's path {s:?} holds a single quote, which the device command cannot quote"
    );
    format!("'{s}'")
}

/// Checks that `python3` runs and is at least 3.8; panics with the fix otherwise.
fn require_python3() {
    let check = Command::new("python3")
        .args(["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match check {
        Ok(s) if s.success() => {}
        Ok(_) => panic!("python3 is older than 3.8; the Python device module needs Python 3.8 or later"),
        Err(e) => panic!(
            "python3 cannot be run ({e}): these tests drive the Python device module and need Python 3.8 or later \
             (standard library only) on the PATH"
        ),
    }
}

fn phyff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyff")).args(args).output().expect("phyff runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-python-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json written");
    serde_json::from_str(&text).expect("valid JSON")
}

/// A small run: 300 training and 100 test samples, one epoch, hidden 16, no ablation.
const SMALL: [&str; 14] = [
    "train",
    "--system",
    "device",
    "--epochs",
    "1",
    "--hidden",
    "16",
    "--train-limit",
    "300",
    "--test-limit",
    "100",
    "--no-ablation",
    "--no-train-eval",
    "--device-attempts",
];

/// Checks a finished run: success, a test accuracy in [0, 1], and every training sample
/// (positive and negative) sent through every one of `blocks` devices.
fn check_run(o: &Output, out: &Path, blocks: u64) -> f64 {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "phyff train through the Python device failed:\n{stderr}");
    let r = result(out);
    let acc = r["test_accuracy"].as_f64().unwrap_or_else(|| panic!("result.json has no test accuracy: {r}"));
    assert!((0.0..=1.0).contains(&acc), "test accuracy {acc}");
    assert_eq!(r["physical_queries"].as_u64(), Some(300 * 2 * blocks), "{r}");
    acc
}

#[test]
fn phyff_trains_through_the_toy_instrument_over_stdio() {
    require_python3();
    let out = tmp("stdio");
    let cmd = format!(
        "python3 {} --block {{block}} --input-shape {{rows}}x{{cols}} --output-len 16 --noise 0.01",
        toy_instrument()
    );
    let mut args = SMALL.to_vec();
    args.extend(["1", "--device-timeout-ms", "20000", "--device-cmd", &cmd, "--out", out.to_str().unwrap()]);
    let o = phyff(&args);
    check_run(&o, &out, 2);
    let stderr = String::from_utf8_lossy(&o.stderr);
    for block in 0..2 {
        let said = format!("serving toy instrument (block {block}, seed 0, noise 0.01)");
        assert!(stderr.contains(&said), "the device's log (stderr) lacks {said:?}:\n{stderr}");
    }
    assert!(stderr.contains("(224 -> 16 values, f64)") && stderr.contains("(16 -> 16 values, f64)"), "{stderr}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// Kills the device if the test ends early.
struct Device(Child);

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn phyff_trains_through_the_toy_instrument_over_tcp_in_f32() {
    require_python3();
    let script = python_dir().join("examples").join("toy_instrument.py");
    let child = Command::new("python3")
        .arg(&script)
        .args(["--input-len", "224", "--output-len", "16", "--precision", "f32", "--tcp", "127.0.0.1:0"])
        .args(["--sessions", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut device = Device(child);
    let mut log = BufReader::new(device.0.stderr.take().expect("piped stderr"));
    let mut seen = String::new();
    let port = loop {
        let mut line = String::new();
        if log.read_line(&mut line).expect("the device's stderr") == 0 {
            panic!("the device ended before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(addr) = line.trim().strip_prefix("phyff_device: listening on ") {
            break addr.rsplit(':').next().unwrap().parse::<u16>().expect("a port number");
        }
    };
    let out = tmp("tcp");
    let addr = format!("127.0.0.1:{port}");
    let mut args = SMALL.to_vec();
    args.extend(["1", "--device-timeout-ms", "20000", "--blocks", "1", "--precision", "f32"]);
    args.extend(["--device-tcp", &addr, "--out", out.to_str().unwrap()]);
    let o = phyff(&args);
    check_run(&o, &out, 1);
    // One session served every query; then the device (--sessions 1) ends by itself.
    let status = device.0.wait().expect("the device ends");
    log.read_to_string(&mut seen).unwrap();
    assert!(status.success(), "the device failed ({status}):\n{seen}");
    assert!(seen.contains("(224 -> 16 values, f32)") && seen.contains(" 0 errors"), "{seen}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// A device whose `forward` raises: the Rust client reports the Python exception with the
/// query's number, and the query before it got its exact f32 outputs.
#[test]
fn a_python_exception_reaches_the_rust_client_as_a_device_error() {
    require_python3();
    let dir = python_dir().to_str().expect("a UTF-8 path").to_string();
    assert!(!dir.contains('\''), "{dir:?}");
    let script = format!(
        "import sys; sys.path.insert(0, \"{dir}\"); import phyff_device as pd; n = [0]\n\
         def forward(batch):\n    n[0] += 1\n    if n[0] == 2: raise RuntimeError(\"shutter stuck\")\n    \
         return [[x[0] + x[1], x[2] * 0.5] for x in batch]\n\
         pd.serve(forward, 3, 2, name=\"raises on query 2\", precision=\"f32\")\n"
    );
    let line = format!("python3 -c '{script}'");
    let config =
        DeviceConfig { timeout_ms: 20_000, attempts: 1, ..DeviceConfig::new(Transport::command_line(&line).unwrap()) };
    let mut dev = DeviceSystem::<f64>::connect(config).expect("the Python device answers the hello");
    assert_eq!((dev.input_len(), dev.output_len(), dev.info().width), (3, 2, 4));
    assert_eq!(dev.info().name, "raises on query 2");
    let x = Matrix::from_fn(2, 3, |r, c| (r * 3 + c) as f64 + 0.1);
    let y = dev.forward(x.view()).unwrap();
    // f64 -> f32 on the way in, computed in Python's f64, rounded to f32 on the way out.
    let f32_of = |v: f64| f64::from(v as f32);
    for r in 0..2 {
        let (a, b, c) = (f32_of(x.get(r, 0)), f32_of(x.get(r, 1)), f32_of(x.get(r, 2)));
        assert_eq!(y.get(r, 0), f32_of(a + b));
        assert_eq!(y.get(r, 1), f32_of(c * 0.5));
    }
    match dev.forward(x.view()) {
        Err(SystemError::Device { message, .. }) => {
            assert!(message.contains("query #2: forward raised RuntimeError: shutter stuck"), "{message}")
        }
        other => panic!("expected a device error, got {other:?}"),
    }
}
