//! `roofline [--quick] [--out FILE]`: measures the machine's FMA peak and every kernel and
//! simulator against it in this process, prints a table and writes the records as JSON
//! (default `target/roofline.json`). Run it through `cargo xtask roofline`.

use anyhow::{bail, Context, Result};
use ff_bench::roofline::{measure_all, table};
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut quick = false;
    let mut out = PathBuf::from("target/roofline.json");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = args.next().context("--out needs a file path")?.into(),
            other => bail!("unknown argument {other:?}; usage: roofline [--quick] [--out FILE]"),
        }
    }
    eprintln!(
        "roofline: {} rayon threads, {} mode; each line is a median of several runs, its ratio against the \
         first peak measurement (the table's: against the faster of two, at the start and at the end)",
        rayon::current_num_threads(),
        if quick { "quick (smoke, small shapes)" } else { "full" }
    );
    let records = measure_all(quick, |r| {
        eprintln!(
            "  {:<84} {:>8.2} GFLOP/s{}",
            r.name,
            r.achieved_gflops,
            r.ratio.map_or(String::new(), |x| format!("  {x:.3} of {}", r.bound_kind))
        )
    });
    println!("{}", table(&records));
    ff_train::io::write_atomic(&out, serde_json::to_string_pretty(&records)?.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
