use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-sweep-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn show(settings: &[(String, toml::Value)]) -> String {
    describe(settings)
}

#[test]
fn a_grid_expands_in_key_order_with_the_seed_fastest() {
    let spec = SweepSpec::parse(
        "[set]\nepochs = 1\n[grid]\nseed = [0, 1]\nlr = [1e-3, 5e-4]\nsystem = [\"optics\", \"microwave\"]\n",
    )
    .unwrap();
    assert_eq!(spec.axes(), ["lr", "system", "seed"]);
    let points: Vec<String> = spec.expand().iter().map(|p| show(p)).collect();
    assert_eq!(points.len(), 8);
    assert_eq!(points[0], "lr = 0.001, system = \"optics\", seed = 0");
    assert_eq!(points[1], "lr = 0.001, system = \"optics\", seed = 1");
    assert_eq!(points[2], "lr = 0.001, system = \"microwave\", seed = 0");
    assert_eq!(points[7], "lr = 0.0005, system = \"microwave\", seed = 1");
    assert_eq!(spec.set, vec![("epochs".to_string(), toml::Value::Integer(1))]);
}

#[test]
fn a_list_of_points_is_crossed_with_the_grid_and_dotted_keys_reach_tables() {
    let text = "[[points]]\nsystem = \"optics\"\nhidden = 16\n[[points]]\nsystem = \"microwave\"\nhidden = 20\n\
                [grid]\nseed = [3, 4]\n";
    let spec = SweepSpec::parse(text).unwrap();
    // Keys of a table in alphabetical order (TOML tables keep no order), the seed last.
    assert_eq!(spec.axes(), ["hidden", "system", "seed"]);
    let plan = resolve(&spec, Path::new(".")).unwrap();
    let got: Vec<_> = plan.configs.iter().map(|c| (c.system.name(), c.hidden, c.seed)).collect();
    assert_eq!(got, [("optics", 16, 3), ("optics", 16, 4), ("microwave", 20, 3), ("microwave", 20, 4)]);
    // A list alone, and a key inside a table.
    let spec =
        SweepSpec::parse("[[points]]\noptics.field_size = 16\n[[points]]\n[points.optics]\nfield_size = 24\n").unwrap();
    assert_eq!(spec.axes(), ["optics.field_size"]);
    let plan = resolve(&spec, Path::new(".")).unwrap();
    assert_eq!(plan.configs.iter().map(|c| c.optics.field_size).collect::<Vec<_>>(), [16, 24]);
    assert_eq!(plan.manifest.points[1].settings["optics.field_size"], serde_json::json!(24));
    // Vector data get the microwave cavity, as with phyff train, unless a setting names a system.
    let spec = SweepSpec::parse("[set]\ndata = \"vowels\"\n[grid]\nseed = [0]\n").unwrap();
    assert_eq!(resolve(&spec, Path::new(".")).unwrap().configs[0].system, crate::config::SystemKind::Microwave);
}

#[test]
fn a_bad_value_names_the_point_and_the_key_and_nothing_is_written() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = dir.join("s.toml");
    let err = |text: &str| {
        std::fs::write(&sweep, text).unwrap();
        let e = format!("{:#}", plan(&sweep, &dir.join("plan")).unwrap_err());
        assert!(!dir.join("plan").exists(), "a refused plan wrote files: {e}");
        e
    };
    let e = err("[grid]\nhidden = [16, 15, 25]\n");
    assert!(
        e.contains("point 1 of 3 (hidden = 15)") && e.contains("invalid hidden") && e.contains("perfect square"),
        "{e}"
    );
    let e = err("[grid]\nseed = [0, 1]\nlr = [1e-3, -1.0]\n");
    assert!(e.contains("point 2 of 4 (lr = -1.0, seed = 0)") && e.contains("lr"), "{e}");
    let e = err("[grid]\nlr = [\"fast\"]\n");
    assert!(e.contains("point 0") && e.contains("invalid lr") && e.contains("fast"), "{e}");
    let e = err("[grid]\nlrr = [1e-3]\n");
    assert!(e.contains("lrr") && e.contains("phyff config") && e.contains("expected one of"), "{e}");
    let e = err("[grid]\nmicrowave.n_freq = [40]\n");
    assert!(e.contains("n_freq") && e.contains("microwave"), "{e}");
    let e = err("seed = [0, 1]\n");
    assert!(e.contains("unknown key `seed`") && e.contains("[grid]"), "{e}");
    let e = err("[grid]\nseed = 3\n");
    assert!(e.contains("seed") && e.contains("non-empty list"), "{e}");
    let e = err("[set]\nepochs = 1\n");
    assert!(e.contains("no [grid] axis"), "{e}");
    let e = err("[grid\nseed = [0]\n");
    assert!(e.contains("not valid TOML"), "{e}");
    let e = err("base = \"missing.toml\"\n[grid]\nseed = [0]\n");
    assert!(e.contains("missing.toml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_plan_is_written_once_and_read_back() {
    let dir = tmp("plan");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("base.toml"), "epochs = 3\nhidden = 16\n").unwrap();
    let sweep = dir.join("s.toml");
    std::fs::write(&sweep, "base = \"base.toml\"\nthreads = 2\n[grid]\nseed = [0, 1]\n").unwrap();
    let out = dir.join("plan");
    let (p, done) = plan(&sweep, &out).unwrap();
    assert_eq!(done, Planned::Written);
    let m = Manifest::read(&out).unwrap();
    assert_eq!(m, p.manifest);
    assert_eq!((m.threads, m.points.len(), m.points[1].dir.as_str()), (2, 2, "points/001"));
    let cfg = ExperimentConfig::from_toml(&std::fs::read_to_string(out.join(&m.points[1].config)).unwrap()).unwrap();
    assert_eq!((cfg.epochs, cfg.hidden, cfg.seed), (3, 16, 1));
    assert!(std::fs::read_to_string(out.join(POINTS_TSV)).unwrap().contains("1\tpoints/001\tseed=1"));
    // The same plan again changes nothing; another one is refused.
    assert_eq!(plan(&sweep, &out).unwrap().1, Planned::Unchanged);
    std::fs::write(&sweep, "base = \"base.toml\"\n[grid]\nseed = [0, 1, 2]\n").unwrap();
    let e = plan(&sweep, &out).unwrap_err().to_string();
    assert!(e.contains("already holds another plan"), "{e}");
    // A manifest of another version is refused with the fix.
    let text = std::fs::read_to_string(out.join(MANIFEST_FILE)).unwrap().replace("\"version\": 1", "\"version\": 99");
    std::fs::write(out.join(MANIFEST_FILE), text).unwrap();
    let e = Manifest::read(&out).unwrap_err().to_string();
    assert!(e.contains("version 99") && e.contains("plan the sweep again"), "{e}");
    let e = Manifest::read(&dir.join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn manifest(axes: &[&str], points: &[serde_json::Value]) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        phyff_version: "test".into(),
        threads: 2,
        axes: axes.iter().map(|a| a.to_string()).collect(),
        points: points
            .iter()
            .enumerate()
            .map(|(i, s)| PointEntry {
                index: i,
                id: format!("{i:03}"),
                dir: format!("points/{i:03}"),
                config: format!("points/{i:03}/config.toml"),
                settings: s.as_object().unwrap().clone(),
                memory_bytes: 100 << 20,
                time_seconds: 3725 + i as u64,
            })
            .collect(),
    }
}

#[test]
fn the_slurm_script_runs_one_point_per_task_with_the_plan_s_resources() {
    let m =
        manifest(&["lr"], &[serde_json::json!({"lr": 1}), serde_json::json!({"lr": 2}), serde_json::json!({"lr": 3})]);
    let opts = SlurmOptions {
        exe: PathBuf::from("/opt/phyff it's/phyff"),
        max_running: 4,
        time: None,
        mem: None,
        job_name: "phyff-sweep".into(),
        extra: vec!["--partition=gpu".into(), "--time=1:00:00".into()],
    };
    let s = slurm_script(Path::new("/scratch/plan"), &m, &[0, 1, 2], &opts).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "#!/bin/bash");
    for want in [
        "#SBATCH --array=0-2%4",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=662M",
        "#SBATCH --time=0-01:02:07",
        "#SBATCH --output=/scratch/plan/slurm/%A_%a.out",
        "export RAYON_NUM_THREADS=2",
        "exec '/opt/phyff it'\\''s/phyff' sweep run-point '/scratch/plan' \"$SLURM_ARRAY_TASK_ID\"",
    ] {
        assert!(lines.contains(&want), "{want:?} not in\n{s}");
    }
    // Options passed through come after phyff's own (sbatch keeps the last), before any command.
    let at = |l: &str| lines.iter().position(|x| *x == l).unwrap();
    assert!(at("#SBATCH --partition=gpu") > at("#SBATCH --time=0-01:02:07"));
    assert!(at("#SBATCH --time=1:00:00") < at("set -euo pipefail"));
    // Only the unfinished points, given resources.
    let opts = SlurmOptions { time: Some("2:00:00".into()), mem: Some("4G".into()), extra: vec![], ..opts };
    let s = slurm_script(Path::new("/scratch/plan"), &m, &[0, 2], &opts).unwrap();
    assert!(s.contains("--array=0,2%4\n") && s.contains("--time=2:00:00\n") && s.contains("--mem=4G\n"), "{s}");
    assert!(slurm_script(Path::new("/scratch/plan"), &m, &[], &opts)
        .unwrap_err()
        .to_string()
        .contains("nothing to submit"));
    assert!(slurm_script(Path::new("plan"), &m, &[0], &opts).is_err());
    assert_eq!(array_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    assert_eq!(slurm_time(90_061), "1-01:01:01");
    assert_eq!(slurm_mem(0), "512M");
}

#[test]
fn time_estimates_are_conservative_and_grow_with_the_work() {
    let small = ExperimentConfig { epochs: 2, ..Default::default() };
    let big = ExperimentConfig { epochs: 200, ..Default::default() };
    let mnist = ExperimentConfig { data: "mnist".into(), ..Default::default() };
    assert_eq!(time_estimate(&small), 600, "at least 10 minutes");
    assert!(time_estimate(&big) > time_estimate(&ExperimentConfig::default()));
    assert!(time_estimate(&mnist) > 10 * time_estimate(&ExperimentConfig::default()) / 2);
    let huge = ExperimentConfig { epochs: usize::MAX, ..Default::default() };
    assert_eq!(time_estimate(&huge), 30_000_000);
}

fn write_result(dir: &Path, i: usize, acc: f64, train: Option<f64>) {
    let r = serde_json::json!({
        "test_accuracy": acc, "train_accuracy": train, "ablation_test_accuracy": null,
        "physical_queries": 100, "eval_physical_queries": 50, "digital_flops": 1000 + i, "wall_seconds": 1.5,
    });
    let p = dir.join(format!("points/{i:03}"));
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("result.json"), r.to_string()).unwrap();
}

#[test]
fn collect_averages_over_seeds_and_lists_failed_and_missing_points() {
    let dir = tmp("collect");
    let pts: Vec<_> =
        [("optics", 0), ("optics", 1), ("optics", 2), ("microwave", 0), ("microwave", 1), ("microwave", 2)]
            .iter()
            .map(|(s, seed)| serde_json::json!({"system": s, "seed": seed}))
            .collect();
    let m = manifest(&["system", "seed"], &pts);
    write_result(&dir, 0, 0.5, Some(0.6));
    write_result(&dir, 1, 0.7, Some(0.8));
    write_result(&dir, 2, 0.9, None);
    write_result(&dir, 3, 0.25, None);
    let failure = Failure {
        status: "exit status 2".into(),
        stderr_tail: "line\nerror: cannot read data\n".into(),
        resumed: false,
    };
    std::fs::create_dir_all(dir.join("points/004")).unwrap();
    std::fs::write(dir.join("points/004").join(FAILURE_FILE), serde_json::to_string(&failure).unwrap()).unwrap();
    let c = collect(&dir, &m).unwrap();
    assert_eq!(c.settings.len(), 2);
    let optics = &c.settings[0];
    assert_eq!((optics.points, optics.finished), (3, 3));
    let t = optics.test_accuracy.unwrap();
    assert_eq!(t.n, 3);
    assert!((t.mean - 0.7).abs() < 1e-12 && (t.sd.unwrap() - 0.2).abs() < 1e-12, "{t:?}");
    assert_eq!(optics.train_accuracy.unwrap().n, 2);
    let mw = &c.settings[1];
    assert_eq!((mw.finished, mw.test_accuracy.unwrap().mean, mw.test_accuracy.unwrap().sd), (1, 0.25, None));
    assert_eq!(c.points[4].status, Status::Failed);
    assert_eq!(c.points[5].status, Status::Missing);
    let md = c.markdown();
    assert!(md.contains("6 points: 4 finished, 1 failed, 0 interrupted, 1 missing"), "{md}");
    assert!(md.contains("| optics | 3/3 | 0.7000 ± 0.2000 | 0.7000 ± 0.1414 | - | 100 | 1001 |"), "{md}");
    assert!(md.contains("| microwave | 1/3 | 0.2500 | - | - | 100 | 1003 |"), "{md}");
    assert!(
        md.contains("- point 004 (system = microwave, seed = 1): failed: exit status 2: error: cannot read data"),
        "{md}"
    );
    assert!(md.contains("- point 005 (system = microwave, seed = 2): missing: not run yet"), "{md}");
    assert!(!md.contains("1.5"), "wall times stay out of the tables: {md}");
    let csv = c.points_csv();
    assert!(csv.starts_with("point,system,seed,status,test_accuracy,"), "{csv}");
    assert!(csv.contains("\n000,optics,0,finished,0.5,0.6,,100,50,1000,\n"), "{csv}");
    assert!(csv.contains("\n005,microwave,2,missing,,,,,,,not run yet\n"), "{csv}");
    let summary = c.summary_csv();
    assert!(summary.starts_with("system,points,finished,test_accuracy_mean,test_accuracy_sd,"), "{summary}");
    assert!(summary.contains("\nmicrowave,3,1,0.25,,"), "{summary}");
    assert_eq!(c.json()["nondeterministic"]["wall_seconds"]["000"], serde_json::json!(1.5));
    let plots = c.plots();
    assert_eq!(plots.len(), 1);
    assert_eq!(plots[0].1.x_label, "system (0 = optics, 1 = microwave)");
    let xy = &plots[0].1.series[0].1;
    assert_eq!((xy.len(), xy[0].0, xy[1]), (2, 0.0, (1.0, 0.25)));
    assert!((xy[0].1 - 0.7).abs() < 1e-12, "{xy:?}");
    let lr = Collected {
        axes: vec!["lr".into()],
        points: Vec::new(),
        settings: [1e-3, 1e-4]
            .iter()
            .map(|&lr| SettingSummary { settings: vec![("lr".into(), serde_json::json!(lr))], ..c.settings[0].clone() })
            .collect(),
    };
    let plots = lr.plots();
    assert_eq!(plots[0].1.x_label, "log10(lr)");
    assert_eq!(plots[0].1.series[0].1.iter().map(|p| p.0.round()).collect::<Vec<_>>(), [-4.0, -3.0]);
    let files = c.write(&dir).unwrap();
    assert!(files.iter().any(|f| f.ends_with("plot-system.png")), "{files:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
