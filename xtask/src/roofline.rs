//! `cargo xtask roofline [--quick]`: builds and runs ff-bench's `roofline` binary in release,
//! which measures the machine's FMA peak and every kernel and simulator against it in one
//! process, prints the table and writes `target/roofline.json` (`name`, `achieved_gflops`,
//! `bound_gflops`, `ratio`, `bound_kind`, `best_gemm_gflops` per record).

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Runs the roofline binary; `--quick` is a smoke run with small shapes.
pub fn run(args: &[String]) -> Result<()> {
    let mut pass = Vec::new();
    for a in args {
        match a.as_str() {
            "--quick" => pass.push(a.clone()),
            other => bail!("unknown roofline argument {other:?}; usage: cargo xtask roofline [--quick]"),
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    let out = root.join("target").join("roofline.json");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(["run", "--release", "-p", "ff-bench", "--bin", "roofline", "--"])
        .args(&pass)
        .arg("--out")
        .arg(&out)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("the roofline run failed ({status})");
    }
    Ok(())
}
