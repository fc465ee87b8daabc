//! `cargo xtask bench-peers [--quick] [--config NAME]... [--repeats N] [--threads N]`:
//! phyff against a PyTorch implementation of the identical PhyLL schedule, side by side on the
//! same data, seed and shapes. Opt-in: CI never runs it.
//!
//! 1. A virtual environment at `target/peers-venv` (`python3 -m venv`) gets
//!    `ff-bench/peers/requirements.txt` from PyPI, once (a stamp file remembers what was installed).
//! 2. MNIST is fetched with `cargo xtask fetch-data mnist` if it is not in `data/mnist`; if that
//!    fails, the optics configuration runs on random data of MNIST's shape and says so.
//! 3. The phyff side (`ff-bench/examples/peer_epoch.rs`) is built in release and run per
//!    configuration; it writes the configuration, data and exact system parameters into
//!    `target/peers/NAME/` and times `ff_core::Network` there. Then the peer
//!    (`ff-bench/peers/phyll_torch.py`) reads the same directory, checks that its losses on one
//!    batch match phyff's, and times itself. The two never run at the same time.
//! 4. A table is printed and `target/bench-peers.json` written atomically: one record per
//!    configuration with `config`, `phyff_seconds_per_epoch`, `torch_seconds_per_epoch` and
//!    `ratio` (torch / phyff), plus the data, the method and each side's phase breakdown.

use crate::fetch::workspace_root;
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask bench-peers [--quick] [--config NAME]... [--repeats N] [--threads N]

  --quick            fewer repetitions; optics-mnist with batches of 1 000 instead of 10 000
  --config NAME      acoustic-vowels or optics-mnist (repeatable; default: both)
  --repeats N        timed epochs (acoustic) or batches (optics) per side, median reported
  --threads N        threads of each side (default 2: both cores): torch.set_num_threads(N) for the
                     peer, RAYON_NUM_THREADS=N for phyff (its GEMMs split over rayon)
The peer runs with OMP_WAIT_POLICY=PASSIVE unless the variable is set.

Installs torch from PyPI into target/peers-venv on first use (several GB).
Writes target/bench-peers.json and target/peers/NAME/.";

/// The configurations, with the speed-up the issue asks of phyff.
const CONFIGS: [(&str, f64); 2] = [("acoustic-vowels", 20.0), ("optics-mnist", 1.5)];

struct Opts {
    quick: bool,
    configs: Vec<String>,
    repeats: Option<usize>,
    threads: usize,
}

fn parse(args: &[String]) -> Result<Option<Opts>> {
    let mut o = Opts { quick: false, configs: Vec::new(), repeats: None, threads: 2 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--config" => {
                let c = value()?;
                ensure!(
                    CONFIGS.iter().any(|(n, _)| n == c),
                    "unknown configuration {c:?}; expected one of: {}",
                    CONFIGS.map(|(n, _)| n).join(", ")
                );
                o.configs.push(c.clone());
            }
            "--repeats" => {
                let n: usize = value()?.parse().context("--repeats takes a count")?;
                ensure!(n >= 1, "--repeats must be at least 1");
                o.repeats = Some(n);
            }
            "--threads" => {
                let n: usize = value()?.parse().context("--threads takes a count")?;
                ensure!(n >= 1, "--threads must be at least 1");
                o.threads = n;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    if o.configs.is_empty() {
        o.configs = CONFIGS.iter().map(|(n, _)| n.to_string()).collect();
    }
    Ok(Some(o))
}

/// Runs a command, failing with its name and status.
fn run_cmd(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {what} ({cmd:?})"))?;
    ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// The venv's python, after installing the requirements if they changed since the last install.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/peers-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("==> bench-peers: creating {}", venv.display());
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")
            .context("the PyTorch peer needs python3 with the venv module")?;
    }
    let req = root.join("ff-bench/peers/requirements.txt");
    let wanted = fs::read_to_string(&req).with_context(|| format!("cannot read {}", req.display()))?;
    let stamp = venv.join(".phyff-requirements");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("==> bench-peers: pip install -r {} (from PyPI; torch is large)", req.display());
        run_cmd(
            Command::new(&python).args(["-m", "pip", "install", "--disable-pip-version-check", "-r"]).arg(&req),
            "pip install",
        )?;
        fs::write(&stamp, &wanted).context("writing the venv stamp")?;
    }
    Ok(python)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("invalid JSON in {}", path.display()))
}

fn num(v: &Value, key: &str) -> Result<f64> {
    v.get(key).and_then(Value::as_f64).with_context(|| format!("missing number {key:?}"))
}

/// The OpenMP wait policy the peer runs with: the caller's, else `PASSIVE`.
fn omp_wait_policy() -> String {
    std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "PASSIVE".into())
}

/// The 1-minute load average (Linux), to show how busy the shared cores were.
fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Median round trip, in nanoseconds, of a cache line bounced between two spinning threads
/// (one atomic store and its reply), over `batches` batches of `per_batch` round trips.
///
/// On this virtual machine the two vCPUs are sometimes placed close (about 90 ns, a shared L3)
/// and sometimes far apart (about 400 ns), and the placement changes every few seconds. Work
/// that hands data between the cores every few microseconds, such as the acoustic epoch, runs
/// up to 1.8x slower in the far placement while pure arithmetic does not change (measured
/// 2026-12-06), so each side's timing is recorded with the round trip measured next to it.
fn core_round_trip_ns(batches: usize, per_batch: usize) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const STOP: u64 = u64::MAX;
    let flag = AtomicU64::new(0);
    let mut times = Vec::with_capacity(batches);
    // A thread that has spun this long without an answer yields its core (when the cores are
    // busy with other work, the partner may not be running at all).
    let patience = 1 << 16;
    std::thread::scope(|sc| {
        sc.spawn(|| {
            // The replier: answers every odd value v with v + 1.
            let mut spins = 0u32;
            loop {
                let v = flag.load(Ordering::Acquire);
                if v == STOP {
                    break;
                }
                if v % 2 == 1 {
                    flag.store(v + 1, Ordering::Release);
                    spins = 0;
                }
                spins += 1;
                if spins.is_multiple_of(patience) {
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
            }
        });
        let mut v = 0u64;
        for _ in 0..batches {
            let t = std::time::Instant::now();
            for _ in 0..per_batch {
                flag.store(v + 1, Ordering::Release);
                let mut spins = 0u32;
                while flag.load(Ordering::Acquire) != v + 2 {
                    spins += 1;
                    if spins.is_multiple_of(patience) {
                        std::thread::yield_now();
                    }
                    std::hint::spin_loop();
                }
                v += 2;
            }
            times.push(t.elapsed().as_secs_f64() * 1e9 / per_batch as f64);
        }
        flag.store(STOP, Ordering::Release);
    });
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs both sides of one configuration and returns its record.
fn bench_one(root: &Path, python: &Path, o: &Opts, name: &str, target: f64) -> Result<Value> {
    let dir = root.join("target/peers").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let load_before = load_average();
    let rt_before = core_round_trip_ns(21, 10_000);
    eprintln!("==> bench-peers: {name}: phyff (core-to-core round trip {rt_before:.0} ns)");
    let mut phyff = Command::new(root.join("target/release/examples/peer_epoch"));
    phyff.args(["--config", name, "--out"]).arg(&dir).arg("--mnist").arg(root.join("data/mnist"));
    let threads = o.threads.to_string();
    phyff.env("RAYON_NUM_THREADS", &threads);
    if o.quick {
        phyff.arg("--quick");
    }
    if let Some(r) = o.repeats {
        phyff.args(["--repeats", &r.to_string()]);
    }
    run_cmd(&mut phyff, "the phyff side (peer_epoch)")?;
    let load_between = load_average();
    let rt_between = core_round_trip_ns(21, 10_000);
    eprintln!("==> bench-peers: {name}: torch (core-to-core round trip {rt_between:.0} ns)");
    let mut torch = Command::new(python);
    torch.arg(root.join("ff-bench/peers/phyll_torch.py")).arg("--dir").arg(&dir).args(["--threads", &threads]);
    // PyTorch's OpenMP threads spin at every barrier by default; on this shared 2-core machine a
    // busy core turns that into stalls several times longer than the work (measured: the acoustic
    // epoch at 0.04-0.36 s instead of 0.016 s). Sleeping waits give PyTorch its best figure here;
    // an OMP_WAIT_POLICY set by the caller is kept.
    torch.env("OMP_WAIT_POLICY", omp_wait_policy());
    if let Some(r) = o.repeats {
        torch.args(["--repeats", &r.to_string()]);
    }
    run_cmd(&mut torch, "the PyTorch peer (phyll_torch.py)")?;
    let load_after = load_average();
    let rt_after = core_round_trip_ns(21, 10_000);

    let manifest = read_json(&dir.join("manifest.json"))?;
    let p = read_json(&dir.join("phyff.json"))?;
    let t = read_json(&dir.join("torch.json"))?;
    let mut r = record(name, target, o, &manifest, &p, &t)?;
    r["load_average_1min"] =
        json!({ "before_phyff": load_before, "before_torch": load_between, "after_torch": load_after });
    r["core_round_trip_ns"] = json!({ "before_phyff": rt_before, "before_torch": rt_between, "after_torch": rt_after });
    Ok(r)
}

/// One configuration's record from the manifest and the two sides' outputs: the contract fields
/// `config`, `phyff_seconds_per_epoch`, `torch_seconds_per_epoch`, `ratio` (torch / phyff), then
/// what was measured and how.
fn record(name: &str, target: f64, o: &Opts, manifest: &Value, p: &Value, t: &Value) -> Result<Value> {
    let (ps, ts) = (num(p, "seconds_per_epoch")?, num(t, "seconds_per_epoch")?);
    ensure!(ps > 0.0 && ts > 0.0, "{name}: non-positive timing (phyff {ps}, torch {ts})");
    let ratio = ts / ps;
    let unit = p.get("unit").and_then(Value::as_str).unwrap_or("epoch");
    let bpe = num(p, "batches_per_epoch")?;
    let method = if unit == "epoch" {
        "median of whole timed epochs (one full batch each), evaluation excluded".to_string()
    } else {
        format!("median seconds of one timed batch x {bpe} batches per epoch, evaluation excluded")
    };
    Ok(json!({
        "config": name,
        "phyff_seconds_per_epoch": ps,
        "torch_seconds_per_epoch": ts,
        "ratio": ratio,
        "data": manifest.get("data"),
        "system": manifest.get("system"),
        "precision": manifest.get("precision"),
        "batch_size": manifest.get("batch_size"),
        "batches_per_epoch": manifest.get("batches_per_epoch"),
        "n_inner": manifest.get("n_inner"),
        "method": method,
        "quick": o.quick,
        "threads_per_side": o.threads,
        "target_ratio": target,
        "meets_target": ratio >= target,
        "check": t.get("check"),
        "phyff": {
            "samples_seconds": p.get("samples_seconds"),
            "seconds_per_unit": p.get("seconds_per_unit"),
            "breakdown_seconds_per_batch": p.get("breakdown_seconds_per_batch"),
            "threads": p.get("threads"),
        },
        "torch": {
            "samples_seconds": t.get("samples_seconds"),
            "seconds_per_unit": t.get("seconds_per_unit"),
            "breakdown_seconds_per_batch": t.get("breakdown_seconds_per_batch"),
            "threads": t.get("threads"),
            "omp_wait_policy": t.get("omp_wait_policy"),
            "version": t.get("torch_version"),
        },
        "machine": "2 cores shared with other work: timings are medians and still noisy",
    }))
}

/// Runs `bench-peers` with the arguments after the task name.
pub fn run(args: &[String]) -> Result<()> {
    let Some(o) = parse(args)? else {
        return Ok(());
    };
    let root = workspace_root();
    let python = ensure_venv(&root)?;
    if o.configs.iter().any(|c| c == "optics-mnist") && !root.join("data/mnist/train-images-idx3-ubyte").exists() {
        eprintln!("==> bench-peers: fetching MNIST (cargo xtask fetch-data mnist)");
        if let Err(e) = crate::fetch::run(&["mnist".to_string()]) {
            eprintln!("warning: MNIST could not be fetched ({e:#}); optics-mnist runs on random data of its shape");
        }
    }
    eprintln!("==> bench-peers: building the phyff side in release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cmd(
        Command::new(&cargo).current_dir(&root).args([
            "build",
            "--release",
            "-p",
            "ff-bench",
            "--example",
            "peer_epoch",
        ]),
        "cargo build (peer_epoch)",
    )?;
    let mut records = Vec::new();
    for name in &o.configs {
        let target = CONFIGS.iter().find(|(n, _)| n == name).map_or(1.0, |(_, t)| *t);
        records.push(bench_one(&root, &python, &o, name, target)?);
    }
    println!();
    println!(
        "{:<18} {:>18} {:>18} {:>9} {:>8} {:>14}  check",
        "config", "phyff s/epoch", "torch s/epoch", "ratio", "target", "round trip ns"
    );
    for r in &records {
        let check = match r.pointer("/check/passed").and_then(Value::as_bool) {
            Some(true) => "same losses",
            Some(false) => "LOSSES DIFFER",
            None => "-",
        };
        println!(
            "{:<18} {:>18.6} {:>18.6} {:>8.2}x {:>7}x {:>14.0}  {check}",
            r["config"].as_str().unwrap_or("?"),
            num(r, "phyff_seconds_per_epoch")?,
            num(r, "torch_seconds_per_epoch")?,
            num(r, "ratio")?,
            num(r, "target_ratio")?,
            r.pointer("/core_round_trip_ns/before_phyff").and_then(Value::as_f64).unwrap_or(f64::NAN),
        );
    }
    let out = root.join("target/bench-peers.json");
    let tmp = out.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(&Value::Array(records))?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &out).with_context(|| format!("cannot move {} into place", tmp.display()))?;
    println!("\nwrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_round_trip_probe_measures_a_positive_finite_time() {
        let ns = core_round_trip_ns(3, 100);
        assert!(ns.is_finite() && ns > 0.0, "{ns}");
    }

    #[test]
    fn parses_the_options_and_rejects_unknown_ones() {
        let o = parse(&args(&[])).unwrap().unwrap();
        assert_eq!(o.configs, ["acoustic-vowels", "optics-mnist"]);
        assert!(!o.quick && o.threads == 2 && o.repeats.is_none());
        let o = parse(&args(&["--quick", "--config", "optics-mnist", "--threads", "1", "--repeats", "5"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.configs, ["optics-mnist"]);
        assert!(o.quick && o.threads == 1 && o.repeats == Some(5));
        assert!(parse(&args(&["--config", "digits"])).is_err());
        assert!(parse(&args(&["--threads", "0"])).is_err());
        assert!(parse(&args(&["--repeats"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn record_keeps_the_contract_fields() {
        let o = parse(&args(&["--config", "optics-mnist"])).unwrap().unwrap();
        let manifest = json!({ "data": "mnist: data/mnist", "precision": "f64", "batch_size": 10000 });
        let p = json!({ "seconds_per_epoch": 300.0, "unit": "batch", "batches_per_epoch": 6 });
        let t = json!({ "seconds_per_epoch": 600.0, "check": { "passed": true } });
        let r = record("optics-mnist", 1.5, &o, &manifest, &p, &t).unwrap();
        assert_eq!(r["config"], "optics-mnist");
        assert_eq!(r["phyff_seconds_per_epoch"], 300.0);
        assert_eq!(r["torch_seconds_per_epoch"], 600.0);
        assert_eq!(r["ratio"], 2.0);
        assert_eq!(r["meets_target"], true);
        assert_eq!(r["data"], "mnist: data/mnist");
        assert!(r["method"].as_str().unwrap().contains("x 6 batches per epoch"));
        let zero = json!({ "seconds_per_epoch": 0.0, "unit": "epoch", "batches_per_epoch": 1 });
        assert!(record("optics-mnist", 1.5, &o, &manifest, &zero, &t).is_err());
    }
}
