//! End-to-end tests of the `phyff` binary: small runs, result files, reloading, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn phyff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyff")).args(args).output().expect("phyff runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json written");
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn train_writes_results_and_eval_reproduces_accuracy_exactly() {
    let out = tmp("train");
    let o = phyff(&["train", "--epochs", "2", "--hidden", "64", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("PNN (optics + FF)") && stdout.contains("physics removed"), "{stdout}");
    let r = result(&out);
    for key in [
        "test_accuracy",
        "train_accuracy",
        "ablation_test_accuracy",
        "epochs",
        "wall_seconds",
        "physical_queries",
        "seed",
        "config",
    ] {
        assert!(r.get(key).is_some(), "result.json lacks {key}");
    }
    let acc = r["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "2 epochs on digits should be well above chance, got {acc}");
    // 2 epochs x 1437 samples x (positive + negative) x 2 blocks.
    assert_eq!(r["physical_queries"].as_u64().unwrap(), 2 * 1437 * 2 * 2);

    let e = phyff(&["eval", "--model", out.join("model.json").to_str().unwrap()]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let text = String::from_utf8_lossy(&e.stdout);
    let line = text.lines().find(|l| l.starts_with("test_accuracy=")).expect("machine-readable line");
    let reloaded: f64 = line["test_accuracy=".len()..].parse().unwrap();
    assert_eq!(reloaded.to_bits(), acc.to_bits(), "eval must reproduce the trained accuracy exactly");

    // The run's checkpoint holds the same model after its last epoch: same bits, and says so.
    let e = phyff(&["eval", "--model", out.join("checkpoint.json").to_str().unwrap()]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(text.contains("checkpoint after 2 of 2 epochs"), "{text}");
    let line = text.lines().find(|l| l.starts_with("test_accuracy=")).expect("machine-readable line");
    let from_checkpoint: f64 = line["test_accuracy=".len()..].parse().unwrap();
    assert_eq!(from_checkpoint.to_bits(), acc.to_bits(), "the checkpoint's model is the final model");

    // Hinton's rule: the goodness of the second block only.
    let model = out.join("model.json");
    let e = phyff(&["eval", "--model", model.to_str().unwrap(), "--score-from-block", "1"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(text.contains("goodness of blocks 1.. only"), "{text}");
    let line = text.lines().find(|l| l.starts_with("test_accuracy=")).expect("machine-readable line");
    let later: f64 = line["test_accuracy=".len()..].parse().unwrap();
    assert!(later > 0.2, "block 2 alone should still beat chance (0.1), got {later}");
    let e = phyff(&["eval", "--model", model.to_str().unwrap(), "--score-from-block", "2"]);
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("0 to 1") && err.contains("got 2"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn same_seed_same_bits() {
    let (a, b) = (tmp("seed-a"), tmp("seed-b"));
    for d in [&a, &b] {
        let o = phyff(&["train", "--epochs", "1", "--hidden", "16", "--no-ablation", "--out", d.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let ma = std::fs::read(a.join("model.json")).unwrap();
    let mb = std::fs::read(b.join("model.json")).unwrap();
    assert!(ma == mb, "two runs with the same seed saved different models");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn every_system_learns_above_chance() {
    // A reduced version of `phyff train --system NAME --epochs 5` (chance is 0.1).
    for system in ["microwave", "acoustic"] {
        let out = tmp(system);
        let o = phyff(&[
            "train",
            "--system",
            system,
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--no-ablation",
            "--no-train-eval",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{system}: {}", String::from_utf8_lossy(&o.stderr));
        let r = result(&out);
        let acc = r["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.3, "{system}: test accuracy {acc}");
        // Skipped, so recorded as missing rather than as an accuracy of 0.
        assert!(r["train_accuracy"].is_null(), "{system}: {}", r["train_accuracy"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(!stdout.contains("0.0000"), "{system}: {stdout}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn unsupervised_mode_prints_itself_beside_supervised() {
    let o = phyff(&[
        "train",
        "--unsupervised",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--no-ablation",
        "--readout-epochs",
        "10",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for row in [
        "PNN (optics + FF), unsupervised",
        "PNN (optics + FF), supervised",
        "PNN (optics), untrained + read-out",
        "linear read-out (10 epochs)",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in {stdout}");
    }
    assert!(!stdout.contains("physics removed"), "{stdout}");
}

#[test]
fn bad_values_give_one_line_errors_naming_the_value() {
    for (args, needle) in [
        (vec!["train", "--lr", "-0.1"], "-0.1"),
        (vec!["train", "--epochs", "0"], "epochs"),
        (vec!["train", "--system", "warp-drive"], "warp-drive"),
        (vec!["train", "--hidden", "200"], "perfect square"),
        (vec!["train", "--data", "mnist:/nonexistent/dir"], "fetch-data"),
        (vec!["eval", "--model", "/nonexistent/model.json"], "/nonexistent/model.json"),
        (vec!["train", "--unsupervised", "--readout-epochs", "0"], "readout_epochs"),
        (vec!["train", "--unsupervised", "--hard-negatives"], "--hard-negatives"),
        (vec!["compare", "--unsupervised"], "phyff train --unsupervised"),
        (vec!["drift", "--system", "fiber"], "fiber"),
        (vec!["drift", "--sudden-at", "1.5"], "--sudden-at"),
        (vec!["train", "--train-limit", "0"], "train_limit"),
    ] {
        let o = phyff(&args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(lines.len() <= 3, "{args:?}: error should be short: {err}");
    }
}

#[test]
fn drift_writes_its_records_and_plot() {
    // The microwave cavity behind its input resampling: the whole drift path on a cavity.
    let out = tmp("drift");
    let o = phyff(&[
        "drift",
        "--system",
        "microwave",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--evals",
        "2",
        "--drift-period",
        "1000",
        "--twin-samples",
        "64",
        "--twin-epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FF (PhyLL)") && stdout.contains("PAT") && stdout.contains("recovery"), "{stdout}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("training queries, test accuracy"), "progress lines: {stderr}");
    let text = std::fs::read_to_string(out.join("drift.json")).expect("drift.json written");
    let r: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(r["system"], "microwave");
    // Budget: 1 epoch x 1437 samples x (positive + negative) x 2 blocks; the change at half.
    assert_eq!(r["budget_queries"].as_u64().unwrap(), 1437 * 2 * 2);
    assert_eq!(r["sudden_at_queries"].as_u64().unwrap(), 1437 * 2);
    let methods = r["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 2);
    for m in methods {
        assert!(m["points"].as_array().unwrap().len() >= 3, "{m}");
        assert!(m["final_accuracy"].as_f64().is_some() && m.get("recovery_queries").is_some(), "{m}");
    }
    for f in ["drift.svg", "drift.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// The progress lines of `phyff train` (`[   0.3 s] epoch    1/1 ...`) in `stderr`.
fn epoch_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("] epoch")).collect()
}

/// `progress.epochs_done` of the checkpoint in `dir`.
fn epochs_done(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).expect("checkpoint written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    v["progress"]["epochs_done"].as_u64().expect("epochs_done")
}

/// A short run into `out` (1 epoch, 16 outputs, no ablation nor final train evaluation).
fn short_run(extra: &[&str], out: &Path) -> Output {
    let mut args = vec!["train", "--epochs", "1", "--hidden", "16", "--no-ablation", "--no-train-eval"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    phyff(&args)
}

#[test]
fn resume_refuses_flags_that_would_change_the_saved_run() {
    let out = tmp("resume-flags");
    let o = short_run(&[], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = out.to_str().unwrap();
    let o = phyff(&["train", "--resume", dir, "--lr", "99", "--system", "microwave", "--epochs", "2"]);
    assert!(!o.status.success(), "a resume with --lr 99 --system microwave must not train the saved run");
    let err = String::from_utf8_lossy(&o.stderr);
    for needle in ["--lr", "--system", "saved configuration", "--out"] {
        assert!(err.contains(needle), "missing {needle:?}: {err}");
    }
    assert!(!err.contains("--epochs"), "--epochs may change on resume: {err}");
    assert!(epoch_lines(&err).is_empty(), "refused before training: {err}");
    assert_eq!(epochs_done(&out), 1);
    // The same value as saved changes nothing, and --epochs extends the run.
    let o = phyff(&["train", "--resume", dir, "--hidden", "16", "--no-ablation", "--epochs", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(epochs_done(&out), 2);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn resume_follows_a_device_that_moved() {
    let out = tmp("resume-device");
    let device = |extra: &str| {
        format!(
            "{} --stdio{extra} --block {{block}} --input-shape {{rows}}x{{cols}}",
            env!("CARGO_BIN_EXE_phyff-device")
        )
    };
    let first = device("");
    let o = short_run(&["--system", "device", "--device-cmd", &first], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = out.to_str().unwrap();
    // The new command is the one used: a device that is not there is an error naming it.
    let o = phyff(&["train", "--resume", dir, "--epochs", "2", "--device-cmd", "/nonexistent/phyff-device --stdio"]);
    assert!(!o.status.success(), "the saved device command must not be used instead of the new one");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/phyff-device"), "{err}");
    assert_eq!(epochs_done(&out), 1);
    // Another command line and timeout for the same device: the run continues.
    let moved = device(" --precision f32");
    let o = phyff(&["train", "--resume", dir, "--epochs", "2", "--device-cmd", &moved, "--device-timeout-ms", "20000"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(epochs_done(&out), 2);
    let ck: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(ck["model"]["config"]["device"]["command"], moved.as_str());
    assert_eq!(ck["model"]["config"]["device"]["timeout_ms"], 20000);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sizes_beyond_memory_are_refused_before_allocating() {
    // Each used to abort (a 980 GB allocation, exit 134) or panic (capacity overflow).
    let mut cases = vec![
        (vec!["train", "--system", "digital", "--hidden", "4611686018427387904"], "4611686018427387904"),
        (vec!["train", "--system", "microwave", "--hidden", "4611686018427387904"], "4611686018427387904"),
        (vec!["train", "--band-rows", "4611686018427387904"], "band_rows"),
    ];
    if std::fs::read_to_string("/proc/meminfo").is_ok_and(|m| m.contains("MemTotal")) {
        // Finite, but far beyond any machine of today: the machine's memory is named.
        for cmd in ["train", "compare", "drift"] {
            cases.push((vec![cmd, "--system", "microwave", "--hidden", "1000000000"], "this machine"));
        }
        cases.push((vec!["train", "--system", "digital", "--hidden", "1000000000"], "1000000000"));
    }
    for (args, needle) in cases {
        let o = phyff(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} must fail cleanly: {err}");
        assert!(err.contains(needle) && err.contains("memory"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.lines().filter(|l| !l.trim().is_empty()).count() <= 3, "{args:?}: {err}");
    }
}

#[test]
fn unknown_keys_in_system_sections_are_errors() {
    let dir = tmp("unknown-keys");
    std::fs::create_dir_all(&dir).unwrap();
    for (section, key) in [("microwave", "n_freq"), ("acoustic", "n_tone"), ("microwave.wall", "chi2")] {
        let path = dir.join(format!("{section}.toml"));
        std::fs::write(&path, format!("[{section}]\n{key} = 40\n")).unwrap();
        let o = phyff(&["train", "--config", path.to_str().unwrap(), "--epochs", "1"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "[{section}] {key} must be refused: {err}");
        assert!(err.contains(key), "{err}");
        assert!(epoch_lines(&err).is_empty(), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_output_directory_fails_before_the_first_epoch() {
    let base = tmp("unwritable");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    // Read-only permissions do not stop root, so: a file, a path under a file, and /proc.
    for out in [file.clone(), file.join("sub"), PathBuf::from("/proc/phyff-cannot-write-here")] {
        let o = short_run(&[], &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", out.display());
        assert!(epoch_lines(&err).is_empty(), "{}: must fail before the first epoch: {err}", out.display());
        assert!(err.contains(out.to_str().unwrap()) && err.contains("--out"), "{err}");
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn an_output_directory_holding_an_earlier_run_is_warned_about() {
    let out = tmp("earlier-run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("model.json"), "{\"the\": \"model of an earlier run\"}").unwrap();
    let o = short_run(&["--seed", "3"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let warning = err.lines().find(|l| l.starts_with("warning:")).unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(warning.contains("model.json") && warning.contains(out.to_str().unwrap()), "{warning}");
    let first = err.find("warning:").unwrap();
    assert!(epoch_lines(&err).iter().all(|l| err.find(l).unwrap() > first), "warned before training: {err}");
    // Its own files, resumed or not, are no earlier run's: a fresh directory gets no warning.
    let fresh = tmp("fresh-run");
    let o = short_run(&[], &fresh);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning:"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = phyff(&["train", "--resume", fresh.to_str().unwrap(), "--epochs", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning:"), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&fresh).unwrap();
}

#[test]
fn negative_numbers_reach_validation_instead_of_the_parser() {
    for (args, needles) in [
        (vec!["train", "--seed", "-1"], vec!["--seed", "-1", "negative"]),
        (vec!["train", "--hidden", "-4"], vec!["--hidden", "-4", "negative"]),
        (vec!["train", "--lr", "-1"], vec!["lr", "-1"]),
        (vec!["train", "--alpha", "-2"], vec!["alpha", "-2"]),
        (vec!["compare", "--twin-inputs", "data", "--twin-jitter", "-0.5"], vec!["--twin-jitter", "-0.5"]),
        (vec!["drift", "--drift-strength", "-1"], vec!["--drift-strength", "-1"]),
        (vec!["eval", "--model", "m.json", "--score-from-block", "-1"], vec!["--score-from-block", "negative"]),
    ] {
        let o = phyff(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: missing {n:?} in {err}");
        }
    }
}

#[test]
fn a_model_whose_data_changed_says_what_changed() {
    let dir = tmp("data-changed");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("table.csv");
    let table = |classes: usize| {
        let mut t = String::from("a,b,c,label\n");
        for i in 0..60 {
            t += &format!("{},{},{},{}\n", i % 7, (i * 3) % 5, i % 2, i % classes);
        }
        t
    };
    std::fs::write(&csv, table(2)).unwrap();
    let data = format!("csv:{}", csv.display());
    let out = dir.join("run");
    let o = short_run(&["--data", &data, "--system", "digital"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same file now holds three classes: the labels no longer fit the model's inputs.
    std::fs::write(&csv, table(3)).unwrap();
    let o = phyff(&["eval", "--model", out.join("model.json").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the file the model was trained on"), "says the fix: {err}");
    assert!(err.contains("values") || err.contains("labels"), "says what changed: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A table as users have it: text labels in the first column (one quoted, with a comma),
/// features in physical units of very different scales.
fn physical_table(path: &Path) {
    let mut t = String::from("species,length_m,mass_mg,temperature_k\n");
    for i in 0..90 {
        let c = i % 3;
        let label = ["\"setosa, var\"", "versicolor", "virginica"][c];
        let wobble = ((i * 37) % 11) as f64 / 11.0;
        t += &format!("{label},{},{},{}\n", 0.01 * (1.0 + c as f64 + wobble), 2000.0 + 900.0 * wobble, 290.0 + wobble);
    }
    std::fs::write(path, t).unwrap();
}

#[test]
fn a_csv_with_text_labels_first_trains_with_references_and_the_vector_default() {
    let dir = tmp("text-labels");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("plants.csv");
    physical_table(&csv);
    let data = format!("csv:{}#label=species", csv.display());
    let out = dir.join("run");
    let o = phyff(&["train", "--data", &data, "--epochs", "3", "--no-ablation", "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Vector samples: the microwave cavity by default; the two reference rows and the verdict.
    for needle in ["PNN (microwave + FF)", "reference: 5-nearest neighbours", "reference: logistic regression"] {
        assert!(stdout.contains(needle), "missing {needle:?}: {stdout}");
    }
    let r = result(&out);
    assert!(r["reference_knn_accuracy"].as_f64().is_some() && r["reference_logistic_accuracy"].as_f64().is_some());
    // The standardisation is in the model, and eval applies it: the same accuracy, exactly.
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["standardization"]["kept"].as_array().map(Vec::len), Some(3));
    let o = phyff(&["eval", "--model", out.join("model.json").to_str().unwrap()]);
    let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("test_accuracy=")).map(String::from);
    assert_eq!(line, Some(format!("test_accuracy={}", r["test_accuracy"].as_f64().unwrap())));
    // A configuration file that names a system keeps it.
    let cfg = dir.join("optics.toml");
    std::fs::write(&cfg, "system = \"optics\"\nepochs = 1\nablation = false\n").unwrap();
    let o = phyff(&["train", "--config", cfg.to_str().unwrap(), "--data", &data]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("PNN (optics + FF)"), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keep_best_keeps_the_best_validation_epoch_and_resumes_to_the_same_bits() {
    let dir = tmp("keep-best");
    let run = |out: &Path, epochs: &str| {
        let args = ["train", "--data", "vowels", "--system", "microwave", "--keep-best", "--epochs", epochs];
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--hidden", "16", "--no-train-eval", "--out", out.to_str().unwrap()]);
        phyff(&a)
    };
    let whole = dir.join("whole");
    let o = run(&whole, "6");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("keep_best: the PNN of epoch"));
    let r = result(&whole);
    assert_eq!(r["keep_best"], true);
    let history = r["history"].as_array().unwrap();
    let val: Vec<f64> = history.iter().map(|h| h["validation_accuracy"].as_f64().unwrap()).collect();
    // The latest epoch with the best validation accuracy, never one chosen by test accuracy.
    let best = val.iter().cloned().fold(f64::MIN, f64::max);
    let kept = val.iter().rposition(|&v| v == best).unwrap() + 1;
    assert_eq!(r["kept_epoch"].as_u64(), Some(kept as u64), "{val:?}");
    assert_eq!(r["validation_accuracy"].as_f64(), Some(best));
    assert!(r["validation_samples"].as_u64().unwrap() >= 20, "10 % of ~206 training samples");
    assert!(r["ablation_kept_epoch"].as_u64().is_some());
    // The saved model is the kept one: eval measures the same test accuracy, exactly.
    let o = phyff(&["eval", "--model", whole.join("model.json").to_str().unwrap()]);
    let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("test_accuracy=")).map(String::from);
    assert_eq!(line, Some(format!("test_accuracy={}", r["test_accuracy"].as_f64().unwrap())));
    // Stopped after 3 epochs and resumed to 6: the same kept network, bit for bit.
    let halves = dir.join("halves");
    assert!(run(&halves, "3").status.success());
    let o = phyff(&["train", "--resume", halves.to_str().unwrap(), "--epochs", "6"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = result(&halves);
    assert_eq!(
        (h["kept_epoch"].clone(), h["test_accuracy"].clone()),
        (r["kept_epoch"].clone(), r["test_accuracy"].clone())
    );
    let state = |d: &Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("model.json")).unwrap()).unwrap();
        m["state"].clone()
    };
    assert_eq!(state(&halves), state(&whole));
    std::fs::remove_dir_all(&dir).unwrap();
}
