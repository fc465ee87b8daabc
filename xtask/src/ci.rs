//! `cargo xtask ci`: the same checks on every machine, in the order that fails fastest.

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

/// One step of the pipeline: a name, the cargo arguments, and extra environment.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STEPS: &[Step] = &[
    Step { name: "format", args: &["fmt", "--all", "--", "--check"], env: &[] },
    Step { name: "lint", args: &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], env: &[] },
    Step { name: "tests (unit, integration, doc)", args: &["test", "--workspace"], env: &[] },
    Step { name: "docs", args: &["doc", "--workspace", "--no-deps"], env: &[("RUSTDOCFLAGS", "-D warnings")] },
    Step { name: "benchmarks compile", args: &["bench", "--workspace", "--no-run"], env: &[] },
    // The paper's experiments in their reduced form, end to end through the release `phyff`
    // (about 30 s after the build; experiments whose data are absent are skipped, not failed).
    Step {
        name: "reproduce (quick)",
        args: &["xtask", "reproduce", "--quick", "--out", "target/reproduce/ci"],
        env: &[],
    },
];

/// Runs every step; stops at the first failure.
pub fn run(args: &[String]) -> Result<()> {
    let only: Option<&str> = args.first().map(String::as_str);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let total = Instant::now();
    for step in STEPS {
        if let Some(o) = only {
            if !step.name.starts_with(o) {
                continue;
            }
        }
        eprintln!("==> xtask ci: {} (cargo {})", step.name, step.args.join(" "));
        let t = Instant::now();
        let mut cmd = Command::new(&cargo);
        cmd.args(step.args);
        for (k, v) in step.env {
            cmd.env(k, v);
        }
        let status = cmd.status().with_context(|| format!("cannot run {cargo}"))?;
        if !status.success() {
            bail!("step '{}' failed ({status})", step.name);
        }
        eprintln!("    ok in {:.1} s", t.elapsed().as_secs_f64());
    }
    eprintln!("==> xtask ci: all steps passed in {:.1} s", total.elapsed().as_secs_f64());
    Ok(())
}
