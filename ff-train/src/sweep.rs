//! Sweeps: many runs of one experiment over seeds and settings, planned into a directory, run
//! on this machine or as a Slurm job array (or by any scheduler that reads the manifest), and
//! collected into one table (`phyff sweep`; docs/sweeps.md).
//!
//! - [`plan`]: a sweep file (a base configuration, settings for every point, a grid of axes and
//!   a list of points) becomes one validated configuration per point and a [`Manifest`]; every
//!   point is checked before anything is written.
//! - [`run_point`]: one point as a subprocess `phyff train` of the given executable, with the
//!   plan's thread count; a finished point (its `result.json` exists) is skipped, an interrupted
//!   one (a `checkpoint.json` without result) resumed, a failure recorded in the point's
//!   [`FAILURE_FILE`]. [`run_all`] runs every point with N concurrent processes;
//!   [`slurm_script`] writes the batch script of a job array whose tasks call `phyff sweep
//!   run-point`, so both runners share [`run_point`].
//! - [`collect`]: every point's result, mean and sample standard deviation over seeds per
//!   setting, as Markdown, CSV and JSON ([`Collected`]), and plots against each swept axis.
//!
//! The tables hold only values that do not depend on the runner (accuracies, queries, FLOPs):
//! local and Slurm runs of one plan give identical files. Wall times go to the JSON only, under
//! `nondeterministic`.

use crate::config::ExperimentConfig;
use crate::memory::DataShape;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The manifest of a plan, in the plan's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `format` of a manifest.
pub const MANIFEST_FORMAT: &str = "phyff-sweep";
/// `version` of the manifest format this phyff reads and writes.
pub const MANIFEST_VERSION: u32 = 1;
/// The points as tab-separated text (index, directory, settings), for shell schedulers.
pub const POINTS_TSV: &str = "points.tsv";
/// Written into a point's directory when its run fails (removed when a later attempt succeeds).
pub const FAILURE_FILE: &str = "failure.json";
/// The setting over which collect averages.
pub const SEED_KEY: &str = "seed";
/// Environment variables set to the plan's threads per run for every point's process.
pub const THREAD_VARS: [&str; 3] = ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"];

/// Keys of a sweep file's top level.
const SWEEP_KEYS: [&str; 5] = ["base", "threads", "set", "grid", "points"];

/// A parsed sweep file (see docs/sweeps.md).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    /// The base configuration file, relative to the sweep file; `None`: the defaults.
    pub base: Option<PathBuf>,
    /// Threads of each run (`RAYON_NUM_THREADS`).
    pub threads: usize,
    /// Settings of every point (`[set]`), as dotted keys.
    pub set: Vec<(String, toml::Value)>,
    /// The axes of the grid (`[grid]`): key and values, in key order with `seed` last.
    pub grid: Vec<(String, Vec<toml::Value>)>,
    /// The listed points (`[[points]]`), each crossed with the grid.
    pub points: Vec<Vec<(String, toml::Value)>>,
}

/// Every leaf of `t` as `(dotted key, value)`; tables are walked into.
fn flatten(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            _ => out.push((key, v.clone())),
        }
    }
}

impl SweepSpec {
    /// Parses the text of a sweep file.
    ///
    /// # Errors
    /// TOML syntax, an unknown top-level key, a grid axis that is not a non-empty list, a bad
    /// `threads`, or a sweep with neither `[grid]` nor `[[points]]`.
    pub fn parse(text: &str) -> Result<Self> {
        let top: toml::Table = text.parse().map_err(|e| anyhow!("not valid TOML: {e}"))?;
        for k in top.keys() {
            if !SWEEP_KEYS.contains(&k.as_str()) {
                bail!(
                    "unknown key `{k}` at the top of the sweep file; it takes {}: put an axis under [grid] (e.g. [grid] {k} = [...]), a setting of every point under [set]",
                    SWEEP_KEYS.join(", ")
                );
            }
        }
        let base = match top.get("base") {
            None => None,
            Some(toml::Value::String(s)) => Some(PathBuf::from(s)),
            Some(v) => {
                bail!("invalid base: the path of a configuration file as a string (e.g. base = \"base.toml\"), got {v}")
            }
        };
        let threads = match top.get("threads") {
            None => 1,
            Some(toml::Value::Integer(n)) if *n >= 1 => usize::try_from(*n)?,
            Some(v) => {
                bail!("invalid threads: threads of each run, a whole number of at least 1 (e.g. threads = 1), got {v}")
            }
        };
        let table = |name: &str| -> Result<Vec<(String, toml::Value)>> {
            match top.get(name) {
                None => Ok(Vec::new()),
                Some(toml::Value::Table(t)) => {
                    let mut out = Vec::new();
                    flatten("", t, &mut out);
                    Ok(out)
                }
                Some(v) => bail!("invalid {name}: a table ([{name}] followed by key = value lines), got {v}"),
            }
        };
        let set = table("set")?;
        let mut grid = Vec::new();
        for (key, v) in table("grid")? {
            match v {
                toml::Value::Array(values) if !values.is_empty() => grid.push((key, values)),
                other => bail!(
                    "invalid [grid] axis `{key}`: a non-empty list of the values to sweep (e.g. {key} = [{other}, ...]), got {other}"
                ),
            }
        }
        // Key order (the TOML table's), then the seed innermost: seeds of one setting are adjacent.
        grid.sort_by_key(|(k, _)| k == SEED_KEY);
        let points = match top.get("points") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::Table(t) => {
                        let mut out = Vec::new();
                        flatten("", t, &mut out);
                        Ok(out)
                    }
                    v => bail!(
                        "invalid points entry {i}: a table of settings ([[points]] then key = value lines), got {v}"
                    ),
                })
                .collect::<Result<_>>()?,
            Some(v) => bail!("invalid points: a list of tables ([[points]] blocks), got {v}"),
        };
        if grid.is_empty() && points.is_empty() {
            bail!("the sweep file has no [grid] axis and no [[points]]: give at least one, e.g.\n[grid]\nseed = [0, 1, 2]");
        }
        Ok(SweepSpec { base, threads, set, grid, points })
    }

    /// The settings of every point, in plan order: each listed point (or one empty point)
    /// crossed with the grid, the last axis varying fastest.
    pub fn expand(&self) -> Vec<Vec<(String, toml::Value)>> {
        let listed = if self.points.is_empty() { vec![Vec::new()] } else { self.points.clone() };
        let mut out = Vec::new();
        for p in &listed {
            let mut combos: Vec<Vec<(String, toml::Value)>> = vec![p.clone()];
            for (key, values) in &self.grid {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.retain(|(k, _)| k != key);
                            c.push((key.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            out.extend(combos);
        }
        out
    }

    /// The swept keys, in column order: those of the listed points (first appearance), then
    /// the grid's.
    pub fn axes(&self) -> Vec<String> {
        let mut axes: Vec<String> = Vec::new();
        for k in self.points.iter().flatten().map(|(k, _)| k).chain(self.grid.iter().map(|(k, _)| k)) {
            if !axes.contains(k) {
                axes.push(k.clone());
            }
        }
        axes
    }
}

/// Sets the dotted `key` of `root` to `value`, creating missing tables.
fn set_key(root: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut t = root;
    for p in parts {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry.as_table_mut().ok_or_else(|| {
            anyhow!("`{key}`: `{p}` is a value of the configuration, not a table, so it has no key inside it")
        })?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// A setting's value as the tables show it: strings bare, anything else as JSON.
pub fn show_value(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key = value, key = value` for messages.
fn describe(settings: &[(String, toml::Value)]) -> String {
    settings.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
}

/// The configuration of one point: `base` with `settings` applied, the default system chosen by
/// the data when nothing names one (as `phyff train` does), validated.
fn point_config(
    base: &toml::Table,
    settings: &[(String, toml::Value)],
    names_system: bool,
) -> Result<ExperimentConfig> {
    let mut t = base.clone();
    for (k, v) in settings {
        set_key(&mut t, k, v.clone())?;
    }
    let mut cfg: ExperimentConfig = serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if inner.contains("unknown field") {
            anyhow!("unknown key at `{path}`: {inner} (`phyff config` prints every key with its meaning)")
        } else {
            anyhow!("invalid {path}: {inner}")
        }
    })?;
    if !names_system && !settings.iter().any(|(k, _)| k == "system") {
        cfg.system = crate::config::default_system_for(&cfg.data);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// One point of a plan, as the manifest lists it. Paths are relative to the plan's directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointEntry {
    /// Index from 0 (the Slurm array task id).
    pub index: usize,
    /// The point's name: its index with leading zeros (`007`).
    pub id: String,
    /// Its directory (`points/007`): `phyff train --out` of the point.
    pub dir: String,
    /// Its configuration file (`points/007/config.toml`).
    pub config: String,
    /// The swept settings of the point (keys of [`Manifest::axes`]), as JSON values.
    pub settings: serde_json::Map<String, Json>,
    /// The memory estimate of the run (`ff_train::memory::estimate`), bytes.
    pub memory_bytes: u64,
    /// The time estimate of the run on one thread ([`time_estimate`]), seconds.
    pub time_seconds: u64,
}

/// The manifest of a plan (`DIR/manifest.json`): everything a scheduler needs to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`] of the phyff that wrote it.
    pub version: u32,
    /// The phyff version that planned it.
    pub phyff_version: String,
    /// Threads of each run: every runner sets [`THREAD_VARS`] to it.
    pub threads: usize,
    /// The swept keys, in column order.
    pub axes: Vec<String>,
    /// The points, by index.
    pub points: Vec<PointEntry>,
}

impl Manifest {
    /// Reads `DIR/manifest.json`, checking its format and version.
    ///
    /// # Errors
    /// A missing directory or manifest, bad JSON, another format or version.
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a directory; give the DIR of `phyff sweep plan SWEEP.toml --out DIR`", dir.display());
        }
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow!(
                "cannot read {}: {e}; is {} a plan? (`phyff sweep plan SWEEP.toml --out DIR` writes one)",
                path.display(),
                dir.display()
            )
        })?;
        let v: Json = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        if v.get("format").and_then(Json::as_str) != Some(MANIFEST_FORMAT) {
            bail!("{} is not a phyff sweep manifest (no \"format\": \"{MANIFEST_FORMAT}\")", path.display());
        }
        let version = v.get("version").and_then(Json::as_u64);
        if version != Some(u64::from(MANIFEST_VERSION)) {
            bail!(
                "{} has manifest version {}, this phyff reads version {MANIFEST_VERSION}; plan the sweep again with this phyff (`phyff sweep plan SWEEP.toml --out NEW_DIR`) or use the phyff that planned it",
                path.display(),
                version.map_or("(none)".into(), |v| v.to_string())
            );
        }
        serde_json::from_value(v).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// The largest memory estimate of a point, bytes.
    pub fn max_memory_bytes(&self) -> u64 {
        self.points.iter().map(|p| p.memory_bytes).max().unwrap_or(0)
    }

    /// The largest time estimate of a point, seconds.
    pub fn max_time_seconds(&self) -> u64 {
        self.points.iter().map(|p| p.time_seconds).max().unwrap_or(0)
    }

    /// A point by index, or an error saying which exist.
    ///
    /// # Errors
    /// `index` out of range.
    pub fn point(&self, index: usize) -> Result<&PointEntry> {
        self.points.get(index).ok_or_else(|| {
            anyhow!(
                "no point {index}: the plan has {} points, 0 to {}",
                self.points.len(),
                self.points.len().saturating_sub(1)
            )
        })
    }
}

/// Effective rate assumed by [`time_estimate`]: 1 GFLOP/s on one thread. A debug build of
/// phyff runs the default job at about 12 GFLOP/s of counted digital work on one thread of a
/// 2-core cloud machine; a slow or shared core, unvectorised code and the work not counted
/// (data loading, bookkeeping) fit well within the factor.
pub const ASSUMED_FLOPS_PER_SECOND: f64 = 1e9;

/// A conservative wall-time bound of a run of `cfg` on one thread, seconds: the arithmetic of
/// the physical queries and the affine maps (forward and backward, `n_inner` steps) of every
/// epoch, of each evaluation (every label through every block) and of the final train
/// evaluation, plus the ablation (affine maps only) and what the system spends once before
/// training (the emulator's fit), counted at 1 GFLOP/s ([`ASSUMED_FLOPS_PER_SECOND`]), then
/// doubled, plus 5 minutes, at least 10 minutes. Data of unknown size (files) count as 60 000
/// training and 10 000 test samples of 784 values. The system's part is counted by its kind's
/// entry ([`crate::systems::SystemKindSpec::query_flops`] and
/// [`setup_flops`](crate::systems::SystemKindSpec::setup_flops)).
pub fn time_estimate(cfg: &ExperimentConfig) -> u64 {
    use crate::config::Mode;
    let spec = cfg.system.spec();
    let shape = DataShape::guess(cfg);
    let (train, test) = if shape.train == 0 { (60_000.0, 10_000.0) } else { (shape.train as f64, shape.test as f64) };
    let raw = if shape.raw_len == 0 { 784.0 } else { shape.raw_len as f64 };
    let first_in = match shape.image {
        Some((h, w)) => ((h + 2 * cfg.band_rows) * w) as f64,
        None => raw + 10.0,
    };
    let hidden = cfg.hidden as f64;
    let blocks = cfg.blocks as f64;
    let q = spec.query_flops(cfg);
    // A block's input width after the system: its answer (at most the field or channels) and the skip.
    let width = first_in.max(hidden) + if cfg.skip() { first_in.max(hidden) } else { 0.0 };
    let affine = 2.0 * width * hidden;
    let classes = 10.0_f64.max(cfg.band_rows as f64);
    let rows_per_epoch = 2.0 * train * blocks;
    let train_epoch = rows_per_epoch * (q + 2.0 * (cfg.n_inner as f64 + 1.0) * affine);
    let evaluations = (cfg.epochs / cfg.eval_every.max(1)) as f64 + 1.0;
    let eval = evaluations * classes * test * blocks * (q + affine)
        + if cfg.train_eval { classes * train * blocks * (q + affine) } else { 0.0 };
    let mut total = cfg.epochs as f64 * train_epoch + eval;
    // A digital-only network is its own ablation.
    if cfg.ablation && spec.is_physical() {
        total += cfg.epochs as f64 * rows_per_epoch * 2.0 * (cfg.n_inner as f64 + 1.0) * affine
            + evaluations * classes * test * blocks * affine;
    }
    if cfg.mode == Mode::Unsupervised && cfg.supervised_baseline {
        total *= 2.0;
    }
    total += spec.setup_flops(cfg);
    let seconds = 2.0 * total / ASSUMED_FLOPS_PER_SECOND + 300.0;
    if !seconds.is_finite() || seconds > 3.0e7 {
        return 30_000_000;
    }
    (seconds.ceil() as u64).max(600)
}

/// A plan, resolved and validated, before it is written.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The manifest to write.
    pub manifest: Manifest,
    /// Each point's configuration, by index.
    pub configs: Vec<ExperimentConfig>,
}

/// Resolves a sweep: the base configuration (relative to `sweep_dir`), every point's settings
/// applied and validated. Nothing is written.
///
/// # Errors
/// An unreadable or invalid base; at the first bad point, its index, settings and the key.
pub fn resolve(spec: &SweepSpec, sweep_dir: &Path) -> Result<Plan> {
    let (base_cfg, names_system) = match &spec.base {
        None => (ExperimentConfig::default(), false),
        Some(p) => {
            let path = sweep_dir.join(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the base configuration {} (base = {:?})", path.display(), p))?;
            let c = ExperimentConfig::from_toml(&text)
                .with_context(|| format!("invalid base configuration {}", path.display()))?;
            (c, text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("system")))
        }
    };
    let base = match toml::Value::try_from(&base_cfg)? {
        toml::Value::Table(t) => t,
        _ => bail!("the configuration does not serialise as a table"),
    };
    let axes = spec.axes();
    let all = spec.expand();
    let width = all.len().saturating_sub(1).to_string().len().max(3);
    let mut points = Vec::with_capacity(all.len());
    let mut configs = Vec::with_capacity(all.len());
    for (i, swept) in all.iter().enumerate() {
        let mut settings = spec.set.clone();
        settings.extend(swept.iter().cloned());
        let cfg = point_config(&base, &settings, names_system).map_err(|e| {
            let what = if swept.is_empty() { String::new() } else { format!(" ({})", describe(swept)) };
            anyhow!("point {i} of {}{what}: {e:#}", all.len())
        })?;
        let id = format!("{i:0width$}");
        let mut map = serde_json::Map::new();
        for (k, v) in swept {
            map.insert(k.clone(), serde_json::to_value(v)?);
        }
        points.push(PointEntry {
            index: i,
            dir: format!("points/{id}"),
            config: format!("points/{id}/config.toml"),
            id,
            settings: map,
            memory_bytes: crate::memory::estimate(&cfg, &DataShape::guess(&cfg)).map_or(0, |m| m.total),
            time_seconds: time_estimate(&cfg),
        });
        configs.push(cfg);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        phyff_version: env!("CARGO_PKG_VERSION").into(),
        threads: spec.threads,
        axes,
        points,
    };
    Ok(Plan { manifest, configs })
}

/// What [`plan`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The plan was written.
    Written,
    /// `DIR` already held this very plan; nothing was changed.
    Unchanged,
}

/// `phyff sweep plan SWEEP --out DIR`: reads the sweep file, validates every point, then
/// writes `DIR/points/NNN/config.toml`, `DIR/points.tsv`, a copy of the sweep file
/// (`DIR/sweep.toml`) and, last, `DIR/manifest.json`.
///
/// # Errors
/// Everything [`SweepSpec::parse`] and [`resolve`] refuse; a `DIR` that holds another plan or
/// other files; I/O errors.
pub fn plan(sweep_file: &Path, out: &Path) -> Result<(Plan, Planned)> {
    let text = std::fs::read_to_string(sweep_file)
        .map_err(|e| anyhow!("cannot read the sweep file {}: {e}", sweep_file.display()))?;
    let spec = SweepSpec::parse(&text).with_context(|| format!("invalid sweep file {}", sweep_file.display()))?;
    let dir = sweep_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let plan = resolve(&spec, dir).with_context(|| format!("invalid sweep file {}", sweep_file.display()))?;
    if out.join(MANIFEST_FILE).exists() {
        let old = Manifest::read(out)?;
        let same_configs = plan
            .manifest
            .points
            .iter()
            .zip(&plan.configs)
            .all(|(p, c)| std::fs::read_to_string(out.join(&p.config)).is_ok_and(|t| t == c.to_toml()));
        if old.points.len() == plan.manifest.points.len()
            && old.axes == plan.manifest.axes
            && old.threads == plan.manifest.threads
            && old.points.iter().zip(&plan.manifest.points).all(|(a, b)| a.settings == b.settings && a.dir == b.dir)
            && same_configs
        {
            return Ok((plan, Planned::Unchanged));
        }
        bail!(
            "{} already holds another plan (its manifest.json and configurations differ from this sweep's); plan into a new directory, or remove {} first (its finished points would be lost)",
            out.display(),
            out.display()
        );
    }
    if out.exists() {
        if !out.is_dir() {
            bail!("--out {} is a file; give a directory for the plan", out.display());
        }
        if std::fs::read_dir(out)?.next().is_some() {
            bail!("--out {} is not empty and holds no plan; give a new or empty directory", out.display());
        }
    }
    for (p, cfg) in plan.manifest.points.iter().zip(&plan.configs) {
        crate::io::write_atomic(&out.join(&p.config), cfg.to_toml().as_bytes())?;
    }
    let mut tsv = String::from("index\tdir\tsettings\n");
    for p in &plan.manifest.points {
        let s: Vec<String> = plan
            .manifest
            .axes
            .iter()
            .filter_map(|k| p.settings.get(k).map(|v| format!("{k}={}", show_value(v))))
            .collect();
        let _ = writeln!(tsv, "{}\t{}\t{}", p.index, p.dir, s.join(" "));
    }
    crate::io::write_atomic(&out.join(POINTS_TSV), tsv.as_bytes())?;
    crate::io::write_atomic(&out.join("sweep.toml"), text.as_bytes())?;
    let json = serde_json::to_string_pretty(&plan.manifest)?;
    crate::io::write_atomic(&out.join(MANIFEST_FILE), json.as_bytes())?;
    Ok((plan, Planned::Written))
}

/// A failed run of a point, as its [`FAILURE_FILE`] records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `exit status N`, or `killed by signal N`.
    pub status: String,
    /// The last lines the run wrote to stderr.
    pub stderr_tail: String,
    /// Whether the attempt resumed from a checkpoint.
    pub resumed: bool,
}

impl Failure {
    /// One line for lists: the status and the last line of stderr that says something.
    pub fn summary(&self) -> String {
        let last = self.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)");
        format!("{}: {}", self.status, last.trim())
    }
}

/// What became of one point in [`run_point`].
#[derive(Clone, Debug, PartialEq)]
pub enum PointRun {
    /// Its `result.json` existed: not run again.
    AlreadyFinished,
    /// It ran (or resumed) to the end.
    Finished {
        /// Whether it resumed from a checkpoint.
        resumed: bool,
        /// Its wall time, seconds.
        seconds: f64,
        /// The test accuracy of its result.
        test_accuracy: Option<f64>,
    },
    /// It failed (recorded in its [`FAILURE_FILE`]).
    Failed(Failure),
}

fn test_accuracy(result: &Path) -> Option<f64> {
    let v: Json = serde_json::from_str(&std::fs::read_to_string(result).ok()?).ok()?;
    v.get("test_accuracy")?.as_f64()
}

/// Runs point `index` of the plan in `dir` as a subprocess of `exe` (a phyff executable):
/// nothing when its `result.json` exists; `phyff train --resume` when a checkpoint exists;
/// otherwise `phyff train --config POINT/config.toml --out POINT`, with [`THREAD_VARS`] set to
/// the plan's threads. Its stdout and stderr are appended to `POINT/train.log` and
/// `POINT/train.err`; a failure is written to `POINT/failure.json` (and removed by a later
/// success). `on_start(resumed)` is called just before the process starts.
///
/// # Errors
/// A bad index, or a process that cannot be started (the failure of a started run is
/// [`PointRun::Failed`], not an error).
pub fn run_point(
    dir: &Path,
    manifest: &Manifest,
    index: usize,
    exe: &Path,
    on_start: impl FnOnce(bool),
) -> Result<PointRun> {
    use std::io::Write;
    let p = manifest.point(index)?;
    let pdir = dir.join(&p.dir);
    let result = pdir.join("result.json");
    if result.exists() {
        return Ok(PointRun::AlreadyFinished);
    }
    let resumed = pdir.join(crate::checkpoint::CHECKPOINT_FILE).exists();
    let mut cmd = std::process::Command::new(exe);
    if resumed {
        cmd.arg("train").arg("--resume").arg(&pdir);
    } else {
        cmd.arg("train").arg("--config").arg(dir.join(&p.config)).arg("--out").arg(&pdir);
    }
    for var in THREAD_VARS {
        cmd.env(var, manifest.threads.to_string());
    }
    std::fs::create_dir_all(&pdir).with_context(|| format!("cannot create {}", pdir.display()))?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(pdir.join(name))
            .with_context(|| format!("cannot open {}", pdir.join(name).display()))
    };
    let (mut out, mut err) = (open("train.log")?, open("train.err")?);
    let err_start = err.metadata().map(|m| m.len()).unwrap_or(0);
    let header = format!("=== phyff sweep: point {}, {} ===\n", p.id, if resumed { "resumed" } else { "started" });
    out.write_all(header.as_bytes())?;
    err.write_all(header.as_bytes())?;
    cmd.stdout(out).stderr(err).stdin(std::process::Stdio::null());
    on_start(resumed);
    let started = std::time::Instant::now();
    let status = cmd.status().with_context(|| format!("cannot start {}", exe.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let failure_path = pdir.join(FAILURE_FILE);
    if status.success() && result.exists() {
        let _ = std::fs::remove_file(&failure_path);
        return Ok(PointRun::Finished { resumed, seconds, test_accuracy: test_accuracy(&result) });
    }
    let stderr = std::fs::read(pdir.join("train.err")).unwrap_or_default();
    let text = String::from_utf8_lossy(stderr.get(err_start as usize..).unwrap_or(&[]));
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    let status = match status.code() {
        Some(0) => "exit status 0 without result.json".to_string(),
        Some(c) => format!("exit status {c}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            format!("killed by signal {}", status.signal().unwrap_or(0))
        }
    };
    let failure = Failure { status, stderr_tail: tail, resumed };
    crate::io::write_atomic(&failure_path, serde_json::to_string_pretty(&failure)?.as_bytes())?;
    Ok(PointRun::Failed(failure))
}

/// An event of [`run_all`], for progress lines.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// A point's process started.
    Started {
        /// The point.
        index: usize,
        /// Whether it resumes from a checkpoint.
        resumed: bool,
    },
    /// A point ended (or was found finished).
    Done {
        /// The point.
        index: usize,
        /// How.
        run: PointRun,
    },
}

/// Counts of [`run_all`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Points run to the end now.
    pub finished: usize,
    /// Points found finished and not rerun.
    pub skipped: usize,
    /// Points that failed.
    pub failed: usize,
}

/// Runs every point of the plan in `dir` with at most `jobs` concurrent processes (each
/// [`run_point`]), in index order; `report` hears every start and end.
///
/// # Errors
/// A process that cannot be started (the other points still run).
pub fn run_all(
    dir: &Path,
    manifest: &Manifest,
    jobs: usize,
    exe: &Path,
    report: &(dyn Fn(&RunEvent) + Sync),
) -> Result<RunCounts> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let counts = Mutex::new(RunCounts::default());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(manifest.points.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= manifest.points.len() {
                    break;
                }
                match run_point(dir, manifest, i, exe, |resumed| report(&RunEvent::Started { index: i, resumed })) {
                    Ok(run) => {
                        {
                            let mut c = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            match run {
                                PointRun::AlreadyFinished => c.skipped += 1,
                                PointRun::Finished { .. } => c.finished += 1,
                                PointRun::Failed(_) => c.failed += 1,
                            }
                        }
                        report(&RunEvent::Done { index: i, run });
                    }
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(format!("point {i}: {e:#}")),
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(counts.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Options of [`slurm_script`].
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmOptions {
    /// The phyff executable the tasks run (an absolute path).
    pub exe: PathBuf,
    /// Most tasks running at once (`%N` of `--array`).
    pub max_running: usize,
    /// `--time`; `None`: the plan's largest estimate.
    pub time: Option<String>,
    /// `--mem`; `None`: from the plan's largest memory estimate.
    pub mem: Option<String>,
    /// `--job-name`.
    pub job_name: String,
    /// Further `#SBATCH` options, written after phyff's own (so they override them).
    pub extra: Vec<String>,
}

/// Seconds as Slurm's `D-HH:MM:SS`.
pub fn slurm_time(seconds: u64) -> String {
    let (d, rest) = (seconds / 86_400, seconds % 86_400);
    format!("{d}-{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The `--mem` of a run whose estimate is `bytes`: 1.5 times it plus 512 MiB (the process, its
/// data files and allocator slack), in whole MiB.
pub fn slurm_mem(bytes: u64) -> String {
    let mib = (bytes as f64 * 1.5 / 1_048_576.0).ceil() as u64 + 512;
    format!("{mib}M")
}

/// Indices as Slurm's array list: runs compressed (`0-3,5,7-9`).
pub fn array_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { indices[i].to_string() } else { format!("{}-{}", indices[i], indices[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The batch script of a Slurm job array over `todo` (point indices; every unfinished point),
/// one task per point: `#SBATCH --array=LIST%max_running`, `--cpus-per-task` = the plan's
/// threads, `--mem` and `--time` from the estimates (unless given), output to
/// `DIR/slurm/%A_%a.out`; the task runs `phyff sweep run-point DIR $SLURM_ARRAY_TASK_ID`.
/// `dir` must be absolute (the tasks may start anywhere).
///
/// # Errors
/// No points to run, or a relative `dir` or executable.
pub fn slurm_script(dir: &Path, manifest: &Manifest, todo: &[usize], opts: &SlurmOptions) -> Result<String> {
    if todo.is_empty() {
        bail!(
            "every point of {} is finished; nothing to submit (`phyff sweep collect {}` tabulates them)",
            dir.display(),
            dir.display()
        );
    }
    if !dir.is_absolute() || !opts.exe.is_absolute() {
        bail!("the plan directory and the phyff executable must be absolute paths in a batch script");
    }
    let d = dir.display().to_string();
    let time = opts.time.clone().unwrap_or_else(|| slurm_time(manifest.max_time_seconds()));
    let mem = opts.mem.clone().unwrap_or_else(|| slurm_mem(manifest.max_memory_bytes()));
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(s, "# phyff sweep: {} points of {d}, written by `phyff sweep slurm`.", manifest.points.len());
    let _ = writeln!(s, "# Each array task runs one point (its index in manifest.json); a finished point is skipped,");
    let _ = writeln!(s, "# an interrupted one resumes from its checkpoint. Resubmit this script to finish the rest.");
    let _ = writeln!(s, "#SBATCH --job-name={}", opts.job_name);
    let _ = writeln!(s, "#SBATCH --array={}%{}", array_ranges(todo), opts.max_running.max(1));
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", manifest.threads);
    let _ = writeln!(s, "#SBATCH --mem={mem}");
    let _ = writeln!(s, "#SBATCH --time={time}");
    let _ = writeln!(s, "#SBATCH --output={d}/slurm/%A_%a.out");
    for e in &opts.extra {
        let _ = writeln!(s, "#SBATCH {e}");
    }
    s.push_str("set -euo pipefail\n");
    for var in THREAD_VARS {
        let _ = writeln!(s, "export {var}={}", manifest.threads);
    }
    let _ = writeln!(
        s,
        "exec {} sweep run-point {} \"$SLURM_ARRAY_TASK_ID\"",
        shell_quote(&opts.exe.display().to_string()),
        shell_quote(&d)
    );
    Ok(s)
}

/// Indices of the points without a `result.json`.
pub fn unfinished(dir: &Path, manifest: &Manifest) -> Vec<usize> {
    manifest.points.iter().filter(|p| !dir.join(&p.dir).join("result.json").exists()).map(|p| p.index).collect()
}

/// Submits `script` with `sbatch --parsable`; returns the job id.
///
/// # Errors
/// `sbatch` missing or refusing, with its message.
pub fn submit(script: &Path) -> Result<String> {
    let o = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| anyhow!("cannot run sbatch: {e}; is Slurm installed here (a login node of the cluster)? The script is {}: submit it with `sbatch {}` where Slurm is", script.display(), script.display()))?;
    if !o.status.success() {
        bail!("sbatch refused {}: {}", script.display(), String::from_utf8_lossy(&o.stderr).trim());
    }
    let out = String::from_utf8_lossy(&o.stdout);
    Ok(out.trim().split(';').next().unwrap_or("").to_string())
}

/// The deterministic numbers of one finished point (from its `result.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Test accuracy of the physical network.
    pub test_accuracy: f64,
    /// Its train accuracy, when measured.
    pub train_accuracy: Option<f64>,
    /// Test accuracy of the physics-removed ablation, when run.
    pub ablation_test_accuracy: Option<f64>,
    /// Physical queries of training.
    pub physical_queries: u64,
    /// Physical queries of evaluation.
    pub eval_physical_queries: u64,
    /// Digital FLOPs of the physical network's run.
    pub digital_flops: u64,
}

/// The state of one point at collection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `result.json` exists.
    Finished,
    /// Its last run failed (`failure.json`).
    Failed,
    /// Stopped after a checkpoint: run again to resume.
    Interrupted,
    /// Never run.
    Missing,
}

impl Status {
    /// The word of the tables.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Missing => "missing",
        }
    }
}

/// Swept keys with their values, in axis order.
pub type Settings = Vec<(String, Json)>;

/// One point as collected.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointResult {
    /// Its index.
    pub index: usize,
    /// Its name (`007`).
    pub id: String,
    /// Its swept settings, in axis order (absent keys: `null`).
    pub settings: Vec<(String, Json)>,
    /// Its state.
    pub status: Status,
    /// Its numbers, when finished.
    pub metrics: Option<Metrics>,
    /// Why it is not finished (failure, interruption), if known.
    pub error: Option<String>,
    /// Its wall time (training and ablation), seconds; not in the tables (it depends on the machine).
    #[serde(skip)]
    pub wall_seconds: Option<f64>,
}

/// Mean and sample standard deviation of some values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanSd {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (`n - 1` in the denominator); `None` for fewer than 2.
    pub sd: Option<f64>,
}

impl MeanSd {
    /// Of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(MeanSd { n, mean, sd })
    }

    fn show(m: Option<&MeanSd>) -> String {
        match m {
            None => "-".into(),
            Some(MeanSd { mean, sd: Some(sd), .. }) => format!("{mean:.4} ± {sd:.4}"),
            Some(MeanSd { mean, sd: None, .. }) => format!("{mean:.4}"),
        }
    }
}

/// The points of one setting (the swept values but the seed) summarised over their seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingSummary {
    /// The setting: the swept keys but `seed`, with their values.
    pub settings: Vec<(String, Json)>,
    /// Points of the setting.
    pub points: usize,
    /// Of them, finished.
    pub finished: usize,
    /// Test accuracy over the finished seeds.
    pub test_accuracy: Option<MeanSd>,
    /// Train accuracy over the finished seeds that measured it.
    pub train_accuracy: Option<MeanSd>,
    /// Ablation test accuracy over the finished seeds that ran it.
    pub ablation_test_accuracy: Option<MeanSd>,
    /// Mean training queries.
    pub physical_queries: Option<MeanSd>,
    /// Mean digital FLOPs.
    pub digital_flops: Option<MeanSd>,
}

/// Everything [`collect`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Collected {
    /// The swept keys.
    pub axes: Vec<String>,
    /// Every point.
    pub points: Vec<PointResult>,
    /// Every setting, in order of its first point.
    pub settings: Vec<SettingSummary>,
}

/// Reads every point's state and result in the plan `dir` and summarises each setting over
/// its seeds.
///
/// # Errors
/// A bad manifest, or a `result.json` that is not valid JSON.
pub fn collect(dir: &Path, manifest: &Manifest) -> Result<Collected> {
    let mut points = Vec::new();
    for p in &manifest.points {
        let pdir = dir.join(&p.dir);
        let settings: Vec<(String, Json)> =
            manifest.axes.iter().map(|k| (k.clone(), p.settings.get(k).cloned().unwrap_or(Json::Null))).collect();
        let result = pdir.join("result.json");
        let (status, metrics, error, wall) = if result.exists() {
            let text = std::fs::read_to_string(&result)?;
            let v: Json =
                serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", result.display()))?;
            let f = |k: &str| v.get(k).and_then(Json::as_f64);
            let u = |k: &str| v.get(k).and_then(Json::as_u64).unwrap_or(0);
            let m = Metrics {
                test_accuracy: f("test_accuracy")
                    .with_context(|| format!("{} has no test_accuracy", result.display()))?,
                train_accuracy: f("train_accuracy"),
                ablation_test_accuracy: f("ablation_test_accuracy"),
                physical_queries: u("physical_queries"),
                eval_physical_queries: u("eval_physical_queries"),
                digital_flops: u("digital_flops"),
            };
            let wall = f("wall_seconds").map(|w| w + f("ablation_wall_seconds").unwrap_or(0.0));
            (Status::Finished, Some(m), None, wall)
        } else if let Ok(text) = std::fs::read_to_string(pdir.join(FAILURE_FILE)) {
            let e = serde_json::from_str::<Failure>(&text)
                .map_or_else(|e| format!("unreadable failure.json: {e}"), |f| f.summary());
            (Status::Failed, None, Some(e), None)
        } else if pdir.join(crate::checkpoint::CHECKPOINT_FILE).exists() {
            (
                Status::Interrupted,
                None,
                Some("stopped after a checkpoint (still running, or interrupted: run the plan again to resume)".into()),
                None,
            )
        } else {
            (Status::Missing, None, Some("not run yet".into()), None)
        };
        points.push(PointResult {
            index: p.index,
            id: p.id.clone(),
            settings,
            status,
            metrics,
            error,
            wall_seconds: wall,
        });
    }
    let mut groups: Vec<(Settings, Vec<&PointResult>)> = Vec::new();
    for p in &points {
        let key: Vec<(String, Json)> = p.settings.iter().filter(|(k, _)| k != SEED_KEY).cloned().collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    let settings = groups
        .into_iter()
        .map(|(settings, members)| {
            let done: Vec<&Metrics> = members.iter().filter_map(|p| p.metrics.as_ref()).collect();
            let stat =
                |g: &dyn Fn(&Metrics) -> Option<f64>| MeanSd::of(&done.iter().filter_map(|m| g(m)).collect::<Vec<_>>());
            SettingSummary {
                settings,
                points: members.len(),
                finished: done.len(),
                test_accuracy: stat(&|m| Some(m.test_accuracy)),
                train_accuracy: stat(&|m| m.train_accuracy),
                ablation_test_accuracy: stat(&|m| m.ablation_test_accuracy),
                physical_queries: stat(&|m| Some(m.physical_queries as f64)),
                digital_flops: stat(&|m| Some(m.digital_flops as f64)),
            }
        })
        .collect();
    Ok(Collected { axes: manifest.axes.clone(), points, settings })
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Collected {
    /// Setting columns of the summary: the axes but the seed.
    fn setting_axes(&self) -> Vec<&String> {
        self.axes.iter().filter(|k| *k != SEED_KEY).collect()
    }

    /// Points not finished.
    pub fn unfinished(&self) -> Vec<&PointResult> {
        self.points.iter().filter(|p| p.status != Status::Finished).collect()
    }

    /// The Markdown report: the summary per setting, every point, and the points that failed
    /// or are missing with their error. Only runner-independent values.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Sweep results\n\n");
        let count = |st: Status| self.points.iter().filter(|p| p.status == st).count();
        let _ = writeln!(
            s,
            "{} points: {} finished, {} failed, {} interrupted, {} missing. Accuracies are mean ± sample standard deviation over the finished seeds of each setting.\n",
            self.points.len(),
            count(Status::Finished),
            count(Status::Failed),
            count(Status::Interrupted),
            count(Status::Missing)
        );
        s.push_str("## Per setting\n\n|");
        let axes = self.setting_axes();
        for a in &axes {
            let _ = write!(s, " {a} |");
        }
        s.push_str(
            " seeds | test accuracy | train accuracy | ablation test accuracy | training queries | digital FLOPs |\n|",
        );
        s.push_str(&"---|".repeat(axes.len() + 6));
        s.push('\n');
        for g in &self.settings {
            s.push('|');
            for (_, v) in &g.settings {
                let _ = write!(s, " {} |", show_value(v));
            }
            let mean = |m: &Option<MeanSd>| m.as_ref().map_or("-".to_string(), |m| format!("{:.0}", m.mean));
            let _ = writeln!(
                s,
                " {}/{} | {} | {} | {} | {} | {} |",
                g.finished,
                g.points,
                MeanSd::show(g.test_accuracy.as_ref()),
                MeanSd::show(g.train_accuracy.as_ref()),
                MeanSd::show(g.ablation_test_accuracy.as_ref()),
                mean(&g.physical_queries),
                mean(&g.digital_flops)
            );
        }
        s.push_str("\n## Every point\n\n| point |");
        for a in &self.axes {
            let _ = write!(s, " {a} |");
        }
        s.push_str(" status | test accuracy | train accuracy | ablation test accuracy | training queries | evaluation queries | digital FLOPs |\n|");
        s.push_str(&"---|".repeat(self.axes.len() + 8));
        s.push('\n');
        for p in &self.points {
            let _ = write!(s, "| {} |", p.id);
            for (_, v) in &p.settings {
                let _ = write!(s, " {} |", show_value(v));
            }
            let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
            match &p.metrics {
                Some(m) => {
                    let _ = writeln!(
                        s,
                        " {} | {} | {} | {} | {} | {} | {} |",
                        p.status.name(),
                        f(Some(m.test_accuracy)),
                        f(m.train_accuracy),
                        f(m.ablation_test_accuracy),
                        m.physical_queries,
                        m.eval_physical_queries,
                        m.digital_flops
                    );
                }
                None => {
                    let _ = writeln!(s, " {} | - | - | - | - | - | - |", p.status.name());
                }
            }
        }
        let bad = self.unfinished();
        if !bad.is_empty() {
            s.push_str("\n## Failed or missing\n\n");
            for p in bad {
                let what: Vec<String> = p.settings.iter().map(|(k, v)| format!("{k} = {}", show_value(v))).collect();
                let _ = writeln!(
                    s,
                    "- point {} ({}): {}: {}",
                    p.id,
                    what.join(", "),
                    p.status.name(),
                    p.error.as_deref().unwrap_or("")
                );
            }
        }
        s
    }

    /// Every point as CSV (full-precision numbers; empty cells for absent values).
    pub fn points_csv(&self) -> String {
        let mut s = String::from("point");
        for a in &self.axes {
            let _ = write!(s, ",{}", csv_cell(a));
        }
        s.push_str(",status,test_accuracy,train_accuracy,ablation_test_accuracy,physical_queries,eval_physical_queries,digital_flops,error\n");
        for p in &self.points {
            s.push_str(&p.id);
            for (_, v) in &p.settings {
                let _ = write!(s, ",{}", csv_cell(&show_value(v)));
            }
            let _ = write!(s, ",{}", p.status.name());
            match &p.metrics {
                Some(m) => {
                    let _ = write!(
                        s,
                        ",{},{},{},{},{},{}",
                        m.test_accuracy,
                        opt(m.train_accuracy),
                        opt(m.ablation_test_accuracy),
                        m.physical_queries,
                        m.eval_physical_queries,
                        m.digital_flops
                    );
                }
                None => s.push_str(",,,,,,"),
            }
            let _ = writeln!(s, ",{}", csv_cell(p.error.as_deref().unwrap_or("")));
        }
        s
    }

    /// The summary per setting as CSV: mean and sd columns, full precision.
    pub fn summary_csv(&self) -> String {
        let mut s = String::new();
        for a in self.setting_axes() {
            let _ = write!(s, "{},", csv_cell(a));
        }
        s.push_str("points,finished");
        for m in ["test_accuracy", "train_accuracy", "ablation_test_accuracy", "physical_queries", "digital_flops"] {
            let _ = write!(s, ",{m}_mean,{m}_sd");
        }
        s.push('\n');
        for g in &self.settings {
            for (_, v) in &g.settings {
                let _ = write!(s, "{},", csv_cell(&show_value(v)));
            }
            let _ = write!(s, "{},{}", g.points, g.finished);
            for m in
                [&g.test_accuracy, &g.train_accuracy, &g.ablation_test_accuracy, &g.physical_queries, &g.digital_flops]
            {
                let _ = write!(s, ",{},{}", opt(m.map(|m| m.mean)), opt(m.and_then(|m| m.sd)));
            }
            s.push('\n');
        }
        s
    }

    /// Everything as JSON; the wall times (which depend on the machine) only under
    /// `nondeterministic`.
    pub fn json(&self) -> Json {
        let walls: serde_json::Map<String, Json> =
            self.points.iter().map(|p| (p.id.clone(), p.wall_seconds.map_or(Json::Null, Json::from))).collect();
        serde_json::json!({
            "axes": self.axes,
            "settings": self.settings,
            "points": self.points,
            "nondeterministic": { "wall_seconds": walls },
        })
    }

    /// One plot per swept axis (the seed only when it is the only axis): mean test accuracy
    /// over seeds against the axis's values, one series per combination of the other axes.
    /// Non-numeric values are placed at 0, 1, ... and named in the axis label. Returns
    /// `(axis, plot)`.
    pub fn plots(&self) -> Vec<(String, crate::output::plot::XyPlot)> {
        let mut axes: Vec<&String> = self.setting_axes();
        if axes.is_empty() {
            axes = self.axes.iter().collect();
        }
        let mut out = Vec::new();
        for axis in axes {
            // The groups: the seed averaged over unless it is the axis plotted.
            let rows: Vec<(Settings, Json, f64)> = if axis == SEED_KEY {
                self.points
                    .iter()
                    .filter_map(|p| {
                        let m = p.metrics.as_ref()?;
                        let v = p.settings.iter().find(|(k, _)| k == axis)?.1.clone();
                        Some((Vec::new(), v, m.test_accuracy))
                    })
                    .collect()
            } else {
                self.settings
                    .iter()
                    .filter_map(|g| {
                        let acc = g.test_accuracy?.mean;
                        let v = g.settings.iter().find(|(k, _)| k == axis)?.1.clone();
                        let rest = g.settings.iter().filter(|(k, _)| k != axis).cloned().collect();
                        Some((rest, v, acc))
                    })
                    .collect()
            };
            let mut categories: Vec<Json> = Vec::new();
            let numeric = rows.iter().all(|(_, v, _)| v.is_number());
            let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            for (rest, v, acc) in rows {
                let x = if numeric {
                    v.as_f64().unwrap_or(f64::NAN)
                } else {
                    match categories.iter().position(|c| *c == v) {
                        Some(i) => i as f64,
                        None => {
                            categories.push(v.clone());
                            (categories.len() - 1) as f64
                        }
                    }
                };
                let name = if rest.is_empty() {
                    "test accuracy".to_string()
                } else {
                    rest.iter().map(|(k, v)| format!("{k}={}", show_value(v))).collect::<Vec<_>>().join(", ")
                };
                match series.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, pts)) => pts.push((x, acc)),
                    None => series.push((name, vec![(x, acc)])),
                }
            }
            // Small or widely spread positive values (learning rates): a log10 axis, whose ticks
            // read as numbers.
            let xs: Vec<f64> = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).collect();
            let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0_f64), |(a, b), &x| (a.min(x), b.max(x)));
            let log = numeric && lo > 0.0 && (hi < 0.01 || hi / lo > 100.0);
            for (_, pts) in &mut series {
                if log {
                    pts.iter_mut().for_each(|p| p.0 = p.0.log10());
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let x_label = if log {
                format!("log10({axis})")
            } else if numeric {
                axis.clone()
            } else {
                let names: Vec<String> =
                    categories.iter().enumerate().map(|(i, c)| format!("{i} = {}", show_value(c))).collect();
                format!("{axis} ({})", names.join(", "))
            };
            let title = if axis == SEED_KEY {
                "test accuracy per seed".to_string()
            } else {
                format!("test accuracy against {axis} (mean over seeds)")
            };
            out.push((
                axis.clone(),
                crate::output::plot::XyPlot {
                    title,
                    x_label,
                    y_label: "test accuracy".into(),
                    series,
                    markers: Vec::new(),
                },
            ));
        }
        out
    }

    /// Writes `results.md`, `results.csv` (every point), `summary.csv` (per setting),
    /// `results.json` and `plot-AXIS.svg`/`.png` into `dir`; returns the files written.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut files = vec![
            (dir.join("results.md"), self.markdown().into_bytes()),
            (dir.join("results.csv"), self.points_csv().into_bytes()),
            (dir.join("summary.csv"), self.summary_csv().into_bytes()),
            (dir.join("results.json"), serde_json::to_string_pretty(&self.json())?.into_bytes()),
        ];
        for (axis, plot) in self.plots() {
            let name: String =
                axis.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
            files.push((dir.join(format!("plot-{name}.svg")), plot.svg().into_bytes()));
            files.push((dir.join(format!("plot-{name}.png")), plot.png()));
        }
        for (path, bytes) in &files {
            crate::io::write_atomic(path, bytes)?;
        }
        Ok(files.into_iter().map(|f| f.0).collect())
    }
}

#[cfg(test)]
mod tests;
