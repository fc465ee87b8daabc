use super::*;
use crate::baselines::e2e::initial_input_ranges;
use crate::baselines::E2eData;
use crate::baselines::{train_end_to_end, Twin};
use crate::run::build_network;
use crate::trainer::{fit, FitOptions};

fn small_config() -> ExperimentConfig {
    let mut cfg = ExperimentConfig { epochs: 2, hidden: 16, ..ExperimentConfig::default() };
    cfg.optics.field_size = 16;
    cfg.optics.input_pupil_radius_px = 4.0;
    cfg.optics.output_pupil_radius_px = 4.0;
    cfg
}

fn small_options() -> DriftOptions {
    DriftOptions {
        period: 700,
        slow_strength: 0.1,
        sudden_at: 0.4,
        sudden_strength: 1.0,
        evals: 4,
        twin: TwinConfig { samples: 64, epochs: 1, ..TwinConfig::default() },
        ..DriftOptions::default()
    }
}

fn pt(queries: u64, test_accuracy: f64) -> DriftPoint {
    DriftPoint { queries, test_accuracy }
}

#[test]
fn summary_reads_the_change_off_the_points() {
    let pts =
        [pt(0, 0.1), pt(400, 0.80), pt(900, 0.90), pt(1000, 0.40), pt(1500, 0.70), pt(2100, 0.885), pt(3000, 0.95)];
    let s = summarize(&pts, 1000).unwrap();
    assert_eq!(s.accuracy_before_change, 0.90);
    assert_eq!(s.min_accuracy_after_change, 0.40);
    assert_eq!(s.final_accuracy, 0.95);
    assert_eq!(s.recovery_queries, Some(1100), "0.885 is within 2 points of 0.90");
    // Exactly 2 points below counts; a hair more does not.
    assert_eq!(summarize(&[pt(0, 0.5), pt(10, 0.48)], 5).unwrap().recovery_queries, Some(5));
    assert_eq!(summarize(&[pt(0, 0.5), pt(10, 0.4799)], 5).unwrap().recovery_queries, None);
    // Never recovered, and points that do not straddle the change.
    assert_eq!(summarize(&[pt(0, 0.9), pt(10, 0.5), pt(20, 0.6)], 10).unwrap().recovery_queries, None);
    assert!(summarize(&[pt(10, 0.9)], 10).is_none());
    assert!(summarize(&[pt(0, 0.9)], 10).is_none());
}

#[test]
fn relative_rmse_is_one_for_the_mean_and_zero_for_the_truth() {
    let actual = Matrix::<f64>::from_fn(4, 2, |r, c| (r * (c + 1)) as f64);
    let mean = Matrix::from_fn(4, 2, |_, c| 1.5 * (c + 1) as f64);
    assert!((relative_rmse_of(&mean, &actual) - 1.0).abs() < 1e-12);
    assert_eq!(relative_rmse_of(&actual, &actual), 0.0);
    let off = Matrix::from_fn(4, 2, |r, c| actual.get(r, c) + 2.0 * (actual.get(r, c) - mean.get(r, c)));
    assert!((relative_rmse_of(&off, &actual) - 2.0).abs() < 1e-12);
    let flat = Matrix::<f64>::from_fn(3, 1, |_, _| 1.0);
    assert_eq!(relative_rmse_of(&flat, &flat), 0.0);
    assert!(relative_rmse_of(&Matrix::from_fn(3, 1, |_, _| 2.0), &flat).is_infinite());
}

#[test]
fn marks_cover_the_budget_and_the_change() {
    assert_eq!(eval_marks(100, 4, 30), vec![25, 30, 50, 75, 100]);
    assert_eq!(eval_marks(100, 4, 50), vec![25, 50, 75, 100]);
    assert!(DriftOptions { sudden_at: 1.0, ..DriftOptions::default() }.validate().is_err());
    assert!(DriftOptions { evals: 0, ..DriftOptions::default() }.validate().is_err());
    assert!(DriftOptions { sudden_strength: -1.0, ..DriftOptions::default() }.validate().is_err());
}

#[test]
fn the_experiment_runs_end_to_end_and_writes_its_records() {
    let cfg = small_config();
    let dir = std::env::temp_dir().join(format!("phyff-drift-{}", std::process::id()));
    // The data-driven twin inputs (the default, box, is checked bit for bit below).
    let opts =
        DriftOptions { out: Some(dir.clone()), twin_inputs: TwinInputs::Data { jitter: 0.25 }, ..small_options() };
    let mut seen = Vec::new();
    let report = drift_experiment::<f32>(&cfg, &opts, |m, q, _| seen.push((m.to_string(), q)), |_| {}).unwrap();
    let b = report.budget_queries;
    assert_eq!(b, 2 * 2 * 1437 * 2, "2 passes x 2 blocks x 1437 training digits x 2 epochs");
    assert_eq!(report.sudden_at_queries, (0.4 * b as f64).round() as u64);
    let names: Vec<&str> = report.methods.iter().map(|m| m.run.method.as_str()).collect();
    assert_eq!(names, [FF_METHOD, PAT_METHOD]);
    // Per FF mini-batch: 256 samples x 2 passes x 2 blocks; per PAT mini-batch 32 x 2 blocks.
    for (m, per_batch) in report.methods.iter().zip([1024u64, 64]) {
        assert!(
            m.run.training.physical_queries >= b && m.run.training.physical_queries < b + per_batch,
            "{}: {}",
            m.run.method,
            m.run.training.physical_queries
        );
        assert_eq!(m.points[0].queries, 0, "{}: evaluated before training", m.run.method);
        assert_eq!(m.points.last().unwrap().queries, m.run.training.physical_queries);
        assert!(m.points.windows(2).all(|w| w[0].queries < w[1].queries), "{}", m.run.method);
        assert!(m.points.iter().all(|p| (0.0..=1.0).contains(&p.test_accuracy)), "{}", m.run.method);
        // One point per mark at most (marks: B/4, S, B/2, 3B/4, B) plus the one at 0.
        assert!((4..=6).contains(&m.points.len()), "{}: {} points", m.run.method, m.points.len());
        let s = report.sudden_at_queries;
        let first_after = m.points.iter().find(|p| p.queries >= s).unwrap();
        assert!(
            first_after.queries < s + per_batch,
            "{}: first point after the change at {}",
            m.run.method,
            first_after.queries
        );
        assert_eq!(m.change, summarize(&m.points, s).unwrap());
        assert!(m.run.evaluation.physical_queries > 0);
    }
    assert_eq!(report.methods[0].run.twin.physical_queries, 0);
    assert!(report.methods[1].run.twin.physical_queries >= 2 * 64, "PAT sampled the device for its twins");
    assert_eq!(report.twin_inputs, "data");
    assert_eq!(report.twins.iter().map(|t| t.block).collect::<Vec<_>>(), [1, 2]);
    assert!(report.twins.iter().all(|t| t.val_rmse.is_finite() && t.val_rmse_of_mean > 0.0));
    // PAT's twin error at every evaluation, per block; none for FF.
    let pat = &report.methods[1];
    assert_eq!(
        pat.twin_error.iter().map(|e| e.queries).collect::<Vec<_>>(),
        pat.points.iter().map(|p| p.queries).collect::<Vec<_>>()
    );
    assert!(pat
        .twin_error
        .iter()
        .all(|e| e.relative_rmse.len() == 2 && e.relative_rmse.iter().all(|v| v.is_finite() && *v >= 0.0)));
    assert!(report.methods[0].twin_error.is_empty());
    assert_eq!(seen.len(), report.methods.iter().map(|m| m.points.len()).sum::<usize>());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("drift.json")).unwrap()).unwrap();
    for f in ["budget_queries", "sudden_at_queries", "drift_period", "methods"] {
        assert!(json.get(f).is_some(), "drift.json lacks {f}");
    }
    for m in json["methods"].as_array().unwrap() {
        for f in ["method", "points", "accuracy_before_change", "min_accuracy_after_change", "final_accuracy"] {
            assert!(m.get(f).is_some(), "drift.json method record lacks {f}");
        }
        assert!(m["recovery_queries"].is_null() || m["recovery_queries"].is_u64());
        assert!(m["points"][0].get("queries").is_some() && m["points"][0].get("test_accuracy").is_some());
    }
    // The file is the report, and read back and written again it is the same file.
    assert_eq!(serde_json::to_value(&report).unwrap(), json);
    let back: DriftReport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    for (b, m) in back.methods.iter().zip(&report.methods) {
        assert_eq!((&b.run.method, b.run.test_accuracy), (&m.run.method, m.change.final_accuracy));
        assert_eq!(
            (b.run.training.physical_queries, b.run.twin.physical_queries),
            (m.run.training.physical_queries, m.run.twin.physical_queries)
        );
    }
    // The record holds what the file does not: the FLOPs, PAT's twin fits included.
    assert!(report.methods.iter().all(|m| m.run.training.digital_flops > 0 && m.run.evaluation.digital_flops > 0));
    assert_eq!(report.methods[0].run.twin, ff_core::Counters::default());
    assert!(report.methods[1].run.twin.digital_flops > 0);
    let svg = std::fs::read_to_string(dir.join("drift.svg")).unwrap();
    // The change is a dashed grey line (many short segments) with its label; both methods named.
    let dashes = svg.lines().filter(|l| l.contains("<polyline") && l.contains("stroke=\"#555555\"")).count();
    assert!(dashes >= 10 && svg.contains("sudden change"), "{dashes} dashes");
    assert!(svg.contains(FF_METHOD) && svg.contains("PAT"));
    assert!(std::fs::read(dir.join("drift.png")).unwrap().starts_with(b"\x89PNG"));
    assert!(drift_table(&report).contains("recovery"));
    let _ = std::fs::remove_dir_all(dir);
}

/// PAT with twins refitted after the change is PAT, bit for bit, up to the evaluation at
/// the change; then its refit's queries run on the clock.
#[test]
fn refitted_pat_follows_pat_until_the_change_then_pays_for_the_refit() {
    let cfg = small_config();
    let opts = DriftOptions { refit_twins: true, ..small_options() };
    let report = drift_experiment::<f32>(&cfg, &opts, |_, _, _| {}, |_| {}).unwrap();
    let names: Vec<&str> = report.methods.iter().map(|m| m.run.method.as_str()).collect();
    assert_eq!(names, [FF_METHOD, PAT_METHOD, PAT_REFIT_METHOD]);
    let (pat, refit) = (&report.methods[1], &report.methods[2]);
    let s = report.sudden_at_queries;
    // PAT's mini-batch: 32 samples x 2 blocks; the evaluation at the change comes first.
    let upto = |m: &DriftMethod| m.points.iter().filter(|p| p.queries < s + 64).copied().collect::<Vec<_>>();
    assert_eq!(upto(pat), upto(refit));
    assert!(upto(pat).last().unwrap().queries >= s);
    assert_eq!(
        refit.run.twin.physical_queries, pat.run.twin.physical_queries,
        "the refit is paid from the budget, not counted here"
    );
    assert_eq!(report.refit_twins.len(), 2);
    assert!(report.refit_twins.iter().all(|t| t.val_rmse.is_finite()));
    // Box refit: 256 rows per block for the ranges and 64 samples per block, on the clock.
    let next = refit.points.iter().find(|p| p.queries >= s + 64).unwrap();
    assert!(next.queries >= s + 2 * 256 + 2 * 64, "first point after the refit at {}", next.queries);
    assert!(refit.run.training.physical_queries >= report.budget_queries);
    assert_ne!(pat.twin_error.last(), refit.twin_error.last(), "errors are of the refitted twins");
}

/// The oracle's refit is the refit, for free: PAT until the change, then new twins without
/// spending training queries on them or ageing the device while they are fitted.
#[test]
fn the_oracle_refits_like_the_refitted_pat_but_off_the_clock() {
    let cfg = small_config();
    let opts = DriftOptions { refit_twins: true, oracle_twins: true, ..small_options() };
    let report = drift_experiment::<f32>(&cfg, &opts, |_, _, _| {}, |_| {}).unwrap();
    let names: Vec<&str> = report.methods.iter().map(|m| m.run.method.as_str()).collect();
    assert_eq!(names, [FF_METHOD, PAT_METHOD, PAT_REFIT_METHOD, PAT_ORACLE_METHOD]);
    let (pat, refit, oracle) = (&report.methods[1], &report.methods[2], &report.methods[3]);
    let s = report.sudden_at_queries;
    let upto = |m: &DriftMethod| m.points.iter().filter(|p| p.queries < s + 64).copied().collect::<Vec<_>>();
    assert_eq!(upto(pat), upto(oracle));
    // Box refit: 256 rows per block for the ranges and 64 samples per block, counted as twin
    // queries, not on the clock: the next mark (B/2) is reached at the same batch as PAT's.
    assert_eq!(oracle.run.twin.physical_queries, 2 * pat.run.twin.physical_queries);
    assert_eq!(pat.run.twin.physical_queries, 2 * 256 + 2 * 64);
    let next = |m: &DriftMethod| m.points.iter().find(|p| p.queries >= s + 64).unwrap().queries;
    assert_eq!(next(oracle), next(pat));
    assert!(next(refit) > next(oracle));
    assert!(
        oracle.run.training.physical_queries >= report.budget_queries
            && oracle.run.training.physical_queries < report.budget_queries + 64
    );
    // From the first evaluation after the refit on, the errors are those of the new twins.
    let first_err = |m: &DriftMethod| m.twin_error.iter().find(|e| e.queries >= s + 64).unwrap().clone();
    assert_ne!(first_err(oracle).relative_rmse, first_err(pat).relative_rmse);
    assert_eq!((report.refit_twins.len(), report.oracle_twins.len()), (2, 2));
    // The paid refit samples a device that keeps drifting (a slow step every 700 queries,
    // its 640 queries cross one); the oracle's sees one frozen device, so the fits differ.
    assert_ne!(report.refit_twins, report.oracle_twins);
}

/// Evaluations neither count nor move the drift: runs that evaluate at different moments end
/// with the same training queries and the same final accuracy, and same seed, same bits.
#[test]
fn evaluation_does_not_advance_the_drift_and_runs_repeat_exactly() {
    let cfg = small_config();
    let run = |evals: usize| {
        let mut r =
            drift_experiment::<f32>(&cfg, &DriftOptions { evals, ..small_options() }, |_, _, _| {}, |_| {}).unwrap();
        for m in &mut r.methods {
            m.run.wall_seconds = 0.0;
            m.run.history.iter_mut().for_each(|e| e.wall_seconds = 0.0);
        }
        r
    };
    let (few, many) = (run(2), run(7));
    for (a, b) in few.methods.iter().zip(&many.methods) {
        assert!(b.points.len() > a.points.len() + 3, "{}", a.run.method);
        assert_eq!(a.run.training.physical_queries, b.run.training.physical_queries, "{}", a.run.method);
        assert_eq!(a.points.last(), b.points.last(), "{}: the final accuracy depends on the evaluations", a.run.method);
    }
    assert_eq!(run(2), few, "same seed, same bits");
}

/// With the drift switched off, the experiment's FF is `phyff train`'s FF and its PAT is
/// `phyff compare`'s PAT: same final test accuracy, bit for bit.
#[test]
fn without_drift_the_methods_are_the_usual_ones() {
    let cfg = small_config();
    // Box-sampled twins, rebuilt below with `Twin::fit_system` independently of `fit_block_twins`.
    let opts =
        DriftOptions { period: 0, sudden_strength: 0.0, evals: 1, twin_inputs: TwinInputs::Box, ..small_options() };
    let report = drift_experiment::<f32>(&cfg, &opts, |_, _, _| {}, |_| {}).unwrap();

    let prep = prepare::<f32>(&cfg).unwrap();
    let mut net = build_network(&cfg, &prep, false).unwrap();
    let fo = FitOptions { eval_every: 1, train_eval: false, ..cfg.fit_options() };
    let ff = fit(&mut net, &prep.data.train, &prep.data.test, &fo, |_| {}).unwrap();
    assert_eq!(report.methods[0].change.final_accuracy, ff.test_accuracy);

    // PAT: the same twins, then `train_end_to_end` for the epochs the budget buys (2 x FF's).
    let (train_x, test_x) = (blank(&prep, &prep.data.train.x).unwrap(), blank(&prep, &prep.data.test.x).unwrap());
    let eo = E2eOptions { epochs: 2 * cfg.epochs, ..E2eOptions::of(&cfg, 32) };
    let mut phys: Vec<Box<dyn PhysicalSystem<f32>>> =
        build_blocks::<f32>(&cfg, &prep.embedding, prep.data.train.dim(), false)
            .unwrap()
            .into_iter()
            .map(|b| b.system)
            .collect();
    let (ranges, _) = initial_input_ranges(&mut phys, &train_x, &eo).unwrap();
    let mut blocks = Vec::new();
    for (k, (mut sys, &range)) in phys.into_iter().zip(&ranges).enumerate() {
        let tc = TwinConfig { seed: cfg.seed + 1000 * k as u64, ..opts.twin.clone() };
        let (twin, _) = Twin::<f32>::fit_system(sys.as_mut(), range, &tc).unwrap();
        let vjp_flops = twin.flops_vjp(1);
        blocks.push(BlockModel::Pat { physical: sys, twin: Box::new(twin), vjp_flops });
    }
    let data = E2eData::new(&train_x, &test_x, &prep.data);
    let pat = train_end_to_end("PAT", blocks, &data, &eo, |_, _| {}).unwrap();
    assert_eq!(report.methods[1].run.training.physical_queries, pat.training.physical_queries);
    assert_eq!(report.methods[1].change.final_accuracy, pat.test_accuracy);
}
