//! `phyff sweep` end to end: plan a 2-point sweep of a tiny run, run it with 2 processes, run it
//! again (nothing rerun), resume an interrupted point, collect; a failing point is listed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn phyff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyff")).args(args).output().expect("phyff runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn accuracy(dir: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    v["test_accuracy"].as_f64().unwrap().to_bits()
}

/// A run of about a second: one epoch of a small network on part of the digits.
const TINY: &str = "[set]\nepochs = 1\nhidden = 16\nablation = false\ntrain_eval = false\ntrain_limit = 400\n";

#[test]
fn plan_run_rerun_resume_and_collect() {
    let root = tmp("e2e");
    let sweep = root.join("sweep.toml");
    std::fs::write(&sweep, format!("{TINY}[grid]\nseed = [0, 1]\n")).unwrap();
    let plan = root.join("plan");
    let dir = plan.to_str().unwrap();
    let out = ok(&phyff(&["sweep", "plan", sweep.to_str().unwrap(), "--out", dir]));
    assert!(out.contains("planned: 2 points over seed"), "{out}");

    let out = ok(&phyff(&["sweep", "run", dir, "--jobs", "2"]));
    for id in ["000", "001"] {
        assert!(out.contains(&format!("point {id} (seed = {}) started", &id[2..])), "{out}");
        assert!(out.contains(&format!("point {id} (seed = {}) finished in", &id[2..])), "{out}");
    }
    let (p0, p1) = (plan.join("points/000"), plan.join("points/001"));
    let (a0, a1) = (accuracy(&p0), accuracy(&p1));
    let modified = |p: &Path| std::fs::metadata(p.join("result.json")).unwrap().modified().unwrap();
    let before = modified(&p0);

    // Run again: nothing is rerun.
    let out = ok(&phyff(&["sweep", "run", dir, "--jobs", "2"]));
    assert_eq!(out.matches("already finished, not rerun").count(), 2, "{out}");
    assert!(!out.contains("started"), "{out}");
    assert_eq!(modified(&p0), before);

    // An interrupted point (a checkpoint, no result) resumes and ends with the same bits.
    std::fs::remove_file(p1.join("result.json")).unwrap();
    let out = ok(&phyff(&["sweep", "run-point", dir, "1"]));
    assert!(out.is_empty(), "run-point reports on stderr: {out}");
    assert_eq!(accuracy(&p1), a1);
    assert!(std::fs::read_to_string(p1.join("train.err")).unwrap().contains("point 001, resumed"));

    let out = ok(&phyff(&["sweep", "collect", dir]));
    assert!(out.contains("2 points: 2 finished, 0 failed, 0 interrupted, 0 missing"), "{out}");
    let mean = (f64::from_bits(a0) + f64::from_bits(a1)) / 2.0;
    assert!(out.contains(&format!("| 2/2 | {mean:.4} ± ")), "{out}");
    for f in ["results.md", "results.csv", "summary.csv", "results.json", "plot-seed.svg", "plot-seed.png"] {
        assert!(plan.join(f).exists(), "{f} not written");
    }
    let csv = std::fs::read_to_string(plan.join("results.csv")).unwrap();
    assert!(csv.contains(&format!("\n000,0,finished,{},", f64::from_bits(a0))), "{csv}");

    // The Slurm script of a finished plan: nothing to submit.
    let o = phyff(&["sweep", "slurm", dir]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nothing to submit"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_failed_point_is_recorded_and_listed_and_a_bad_plan_writes_nothing() {
    let root = tmp("fail");
    let sweep = root.join("sweep.toml");
    let missing = root.join("missing.csv");
    std::fs::write(
        &sweep,
        format!("{TINY}[[points]]\ndata = \"digits\"\n[[points]]\ndata = \"csv:{}\"\n", missing.display()),
    )
    .unwrap();
    let plan = root.join("plan");
    let dir = plan.to_str().unwrap();
    ok(&phyff(&["sweep", "plan", sweep.to_str().unwrap(), "--out", dir]));
    let o = phyff(&["sweep", "run", dir, "--jobs", "1"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("point 001 (data = csv:") && out.contains("FAILED, exit status 2"), "{out}");
    assert!(plan.join("points/001/failure.json").exists());
    let out = ok(&phyff(&["sweep", "collect", dir]));
    assert!(out.contains("2 points: 1 finished, 1 failed"), "{out}");
    assert!(out.contains("## Failed or missing") && out.contains("missing.csv"), "{out}");

    // A bad value: the point and the key are named, nothing is written, exit status 2.
    std::fs::write(&sweep, format!("{TINY}[grid]\nhidden = [16, 17]\n")).unwrap();
    let other = root.join("other");
    let o = phyff(&["sweep", "plan", sweep.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("point 1 of 2 (hidden = 17)") && err.contains("invalid hidden"), "{err}");
    assert!(!other.exists());
    let o = phyff(&["sweep", "collect", root.join("nowhere").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a directory"));
    std::fs::remove_dir_all(&root).unwrap();
}
