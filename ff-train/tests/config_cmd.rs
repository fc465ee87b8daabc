//! `phyff config`: the default configuration with a comment on every key, which parses back to
//! the defaults and which `phyff train --config` accepts, commented-out keys included.

use ff_train::config::ExperimentConfig;
use std::process::{Command, Output};

fn phyff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyff")).args(args).output().expect("phyff runs")
}

#[test]
fn config_prints_commented_toml_that_train_accepts() {
    let o = phyff(&["config"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    // Keys and headers of several sections carry their comment in the comment lines above them.
    for (line, comment) in [
        ("lr = 0.001", "# Adam learning rate"),
        ("[optics]", "# Multimode optical system"),
        ("field_size = 32", "# Side N of the square SLM"),
        ("points = 1024", "# Number of time samples"),
        ("timeout_ms = 30000", "# Time allowed for one request, in milliseconds"),
        ("hidden = [100, 200, 100]", "# Hidden layer widths"),
    ] {
        let i = lines.iter().position(|l| *l == line).unwrap_or_else(|| panic!("no `{line}` in\n{text}"));
        let start = lines[..i].iter().rposition(|l| !l.starts_with('#')).map_or(0, |j| j + 1);
        assert!(lines[start..i].iter().any(|l| l.starts_with(comment)), "`{line}` is not under `{comment}`:\n{text}");
    }
    // Optional keys, unset by default, are shown commented out.
    for unset in
        ["# skip = true", "# squares = ", "# train_limit = 1000", "# test_limit = 500", "# tcp = ", "# inputs = "]
    {
        assert!(lines.iter().any(|l| l.starts_with(unset)), "no `{unset}` in\n{text}");
    }
    assert_eq!(ExperimentConfig::from_toml(&text).unwrap(), ExperimentConfig::default());

    // The binary accepts the file, with two of its commented-out keys switched on (they make the
    // run small) and a flag on top.
    let dir = std::env::temp_dir().join(format!("phyff-config-cmd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("phyff.toml");
    let edited = text
        .replace("\n# train_limit = 1000\n", "\ntrain_limit = 300\n")
        .replace("\n# test_limit = 500\n", "\ntest_limit = 100\n");
    std::fs::write(&file, edited).unwrap();
    let out = dir.join("run");
    let o = phyff(&[
        "train",
        "--config",
        file.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--no-ablation",
        "--no-train-eval",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let cfg = &result["config"];
    assert_eq!((cfg["train_limit"].as_u64(), cfg["test_limit"].as_u64()), (Some(300), Some(100)), "{cfg}");
    assert_eq!((cfg["epochs"].as_u64(), cfg["hidden"].as_u64()), (Some(1), Some(16)), "{cfg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
