//! `cargo xtask tabular`: the default `phyff train` on tables nobody tuned it for, beside the
//! two reference classifiers, written as a Markdown table (default `docs/tabular.md`).
//!
//! The tables come from the scikit-learn wheel on PyPI (a registry route; pinned version),
//! unpacked with Python's standard `zipfile` module and rewritten as the CSV files users have:
//! a header, the class name as text in the first column, the features in their physical units.
//! Fashion-MNIST runs on the repository's quick subset. Every run uses the defaults but
//! `--data` (and `--out`), so the table says what a new user gets.

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The scikit-learn release whose bundled tables are used (fixed, so the table is reproducible).
const SKLEARN: &str = "scikit-learn==1.9.1";

/// A table of the wheel: its file (under `sklearn/datasets/data/`), gzip or not, and a name.
struct Table {
    name: &'static str,
    file: &'static str,
    what: &'static str,
}

const TABLES: [Table; 4] = [
    Table { name: "iris", file: "iris.csv", what: "150 flowers, 4 lengths in cm, 3 species" },
    Table {
        name: "wine",
        file: "wine_data.csv",
        what: "178 wines, 13 chemical measurements in mixed units, 3 cultivars",
    },
    Table {
        name: "breast_cancer",
        file: "breast_cancer.csv",
        what: "569 tumours, 30 cell-nucleus measurements, 2 diagnoses",
    },
    Table {
        name: "digits",
        file: "digits.csv.gz",
        what: "1 797 handwritten digits, 64 pixel intensities 0-16, 10 classes",
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

fn gunzip(path: &Path) -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import gzip,sys; sys.stdout.write(gzip.open(sys.argv[1],'rt').read())"])
        .arg(path)
        .output()
        .context("running python3 to decompress a table")?;
    ensure!(out.status.success(), "python3 could not decompress {}", path.display());
    Ok(String::from_utf8(out.stdout)?)
}

/// Downloads the wheel and writes the tables as CSV into `dir`; returns `(name, what, path)`.
fn tables(dir: &Path) -> Result<Vec<(&'static str, &'static str, PathBuf)>> {
    let wheel_dir = dir.join("wheel");
    let unpacked = dir.join("unpacked");
    if !unpacked.join("sklearn/datasets/data").is_dir() {
        std::fs::create_dir_all(&wheel_dir)?;
        eprintln!("xtask tabular: downloading {SKLEARN} from PyPI (for its bundled tables)");
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", SKLEARN, "-d"])
            .arg(&wheel_dir)
            .status()
            .context("running python3 -m pip")?;
        ensure!(status.success(), "pip could not download {SKLEARN}; it needs PyPI (python3 -m pip download)");
        let wheel = std::fs::read_dir(&wheel_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .context("no wheel downloaded")?;
        let status = Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked).status()?;
        ensure!(status.success(), "python3 -m zipfile could not unpack {}", wheel.display());
    }
    let mut out = Vec::new();
    for t in &TABLES {
        let src = unpacked.join("sklearn/datasets/data").join(t.file);
        let text = if t.file.ends_with(".gz") {
            gunzip(&src)?
        } else {
            std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?
        };
        let csv = dir.join(format!("{}.csv", t.name));
        std::fs::write(&csv, convert(&text, t.name)?)?;
        out.push((t.name, t.what, csv));
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
    let phyff = root.join("target/release/phyff");
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
        let out = work.join("runs").join(name.split(' ').next().unwrap_or(name));
        let _ = std::fs::remove_dir_all(&out);
        eprintln!("xtask tabular: phyff train --data {data}");
        let log = work.join(format!("{}.log", name.split(' ').next().unwrap_or(name)));
        let status = Command::new(&phyff)
            .args(["train", "--data", data, "--out"])
            .arg(&out)
            .stderr(std::fs::File::create(&log)?)
            .stdout(std::process::Stdio::null())
            .status()?;
        ensure!(status.success(), "phyff train --data {data} failed; see {}", log.display());
        rows.push(read_row(name, what, data, &out)?);
    }
    let md = report(&rows);
    std::fs::write(&out_md, &md).with_context(|| format!("writing {}", out_md.display()))?;
    print!("{md}");
    eprintln!("wrote {}", out_md.display());
    Ok(())
}

fn report(rows: &[Row]) -> String {
    let mut md = String::from(
        "# Default settings on data nobody tuned for\n\n\
         Generated by `cargo xtask tabular`. Each row is one `phyff train --data DATA` with every other setting \
         at its default (the system chosen by the shape of the samples: the microwave cavity for vectors, \
         optics for images; 2 blocks, 20 epochs, seed 0, CSV features standardised on the training split), \
         on an 80/20 stratified split (Fashion-MNIST: its own test images); the reference rows are computed by the same run on \
         the same split: 5-nearest neighbours on standardised features and a logistic regression. \
         The tables are those bundled in the scikit-learn wheel (`scikit-learn==1.9.1` from PyPI), rewritten \
         as CSV files with a header and the class name as text in the first column; Fashion-MNIST is the \
         repository's quick subset (`xtask/data`). \"gap\" is the PNN's test accuracy minus the better \
         reference's, in points; one test sample is worth 100 / (test samples) points.\n\n\
         | data | what | system | test samples | PNN | ablation | 5-NN | logistic | gap (points) | PNN wall (s) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let best = r.knn.max(r.logistic);
        md += &format!(
            "| {} | {} | {} | {} | {:.4} | {} | {:.4} | {:.4} | {:+.2} | {:.1} |\n",
            r.name,
            r.what,
            r.system,
            r.test_samples,
            r.pnn,
            r.ablation.map_or("-".into(), |a| format!("{a:.4}")),
            r.knn,
            r.logistic,
            100.0 * (r.pnn - best),
            r.seconds
        );
    }
    let misses: Vec<String> = rows
        .iter()
        .filter(|r| 100.0 * (r.pnn - r.knn.max(r.logistic)) < -2.0)
        .map(|r| {
            let gap = 100.0 * (r.knn.max(r.logistic) - r.pnn);
            let samples = gap * r.test_samples as f64 / 100.0;
            format!("{} ({gap:.2} points, {samples:.0} of {} test samples)", r.name, r.test_samples)
        })
        .collect();
    let physics = rows.iter().filter(|r| r.ablation.is_some_and(|a| r.pnn > a)).count();
    md += &format!(
        "\nMore than 2 points below the better reference: {}. The PNN beats its physics-removed ablation on {physics} of {} data sets.\n",
        if misses.is_empty() { "none".to_string() } else { misses.join(", ") },
        rows.len()
    );
    md +=
        "\nThe commands, from the repository's root after `cargo xtask tabular` has written the CSV files:\n\n```sh\n";
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
}
