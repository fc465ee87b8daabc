//! `phyff sweep`: the command line of [`ff_train::sweep`] (docs/sweeps.md).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ff_train::sweep::{self, Manifest, PointRun, RunEvent};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct SweepArgs {
    #[command(subcommand)]
    command: SweepCommand,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Write one validated configuration per point of a sweep file, and the manifest
    /// (DIR/manifest.json, DIR/points.tsv). Every point is checked before anything is written.
    Plan {
        /// The sweep file: a base configuration, settings of every point, the axes of a grid
        /// and/or a list of points (docs/sweeps.md).
        sweep: PathBuf,
        /// Directory of the plan (new or empty; planning the same sweep again into it changes nothing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run every unfinished point on this machine, N processes at a time (finished points are
    /// skipped, interrupted ones resume from their checkpoint).
    Run {
        /// The plan's directory (from `phyff sweep plan`).
        dir: PathBuf,
        /// Concurrent processes. Default: this machine's cores divided by the plan's threads per run.
        #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
        jobs: Option<usize>,
        /// The phyff executable each point runs (default: this one).
        #[arg(long, value_name = "PATH")]
        phyff: Option<PathBuf>,
    },
    /// Run one point of a plan (what each Slurm array task, or any other scheduler's job, runs):
    /// skipped when finished, resumed when checkpointed. Exits non-zero when the point fails.
    RunPoint {
        /// The plan's directory.
        dir: PathBuf,
        /// The point's index in the manifest (0 to points - 1; Slurm: $SLURM_ARRAY_TASK_ID).
        #[arg(allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
        index: usize,
        /// The phyff executable that trains the point (default: this one).
        #[arg(long, value_name = "PATH")]
        phyff: Option<PathBuf>,
    },
    /// Write a Slurm batch script for a job array over the unfinished points (DIR/sweep.sbatch),
    /// and with --submit submit it with sbatch.
    Slurm {
        /// The plan's directory.
        dir: PathBuf,
        /// Submit the script with `sbatch` (on a machine where Slurm's commands work).
        #[arg(long)]
        submit: bool,
        /// Most array tasks running at once (the %N of --array).
        #[arg(long, value_name = "N", default_value_t = 16, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
        max_running: usize,
        /// Time limit of each task (Slurm's format, e.g. 0-02:00:00). Default: the plan's
        /// conservative estimate from the configuration (docs/sweeps.md).
        #[arg(long, value_name = "D-HH:MM:SS")]
        time: Option<String>,
        /// Memory of each task (Slurm's format, e.g. 4G). Default: 1.5 x the configuration's
        /// memory estimate + 512M.
        #[arg(long, value_name = "SIZE")]
        mem: Option<String>,
        /// Job name.
        #[arg(long, default_value = "phyff-sweep")]
        job_name: String,
        /// Further sbatch option written as an #SBATCH line after phyff's own (which it then
        /// overrides), e.g. --sbatch-arg=--partition=gpu --sbatch-arg=--account=lab. Repeatable.
        #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
        sbatch_arg: Vec<String>,
        /// The phyff executable the tasks run (default: the absolute path of this one); it
        /// must exist at that path on the compute nodes.
        #[arg(long, value_name = "PATH")]
        phyff: Option<PathBuf>,
        /// Where to write the script (default: DIR/sweep.sbatch).
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
    },
    /// Tabulate every point's result, with mean +- sd over seeds per setting: DIR/results.md,
    /// results.csv, summary.csv, results.json and plot-AXIS.svg/.png; lists failed and missing points.
    Collect {
        /// The plan's directory.
        dir: PathBuf,
    },
}

fn this_exe(given: &Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(p) => std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display())),
        None => std::env::current_exe().context("cannot find the running phyff executable; give --phyff PATH"),
    }
}

fn describe(m: &Manifest, index: usize) -> String {
    let p = &m.points[index];
    let s: Vec<String> =
        m.axes.iter().filter_map(|k| p.settings.get(k).map(|v| format!("{k} = {}", sweep::show_value(v)))).collect();
    format!("point {} ({})", p.id, s.join(", "))
}

pub(crate) fn sweep_cmd(args: &SweepArgs) -> Result<()> {
    match &args.command {
        SweepCommand::Plan { sweep: file, out } => {
            let (plan, done) = sweep::plan(file, out)?;
            let m = &plan.manifest;
            let verb = match done {
                sweep::Planned::Written => "planned",
                sweep::Planned::Unchanged => "already planned (unchanged)",
            };
            println!(
                "{verb}: {} points over {} in {} ({} thread(s) per run; estimate per run: up to {} of memory, {} on one thread)",
                m.points.len(),
                if m.axes.is_empty() { "no axis".to_string() } else { m.axes.join(", ") },
                out.display(),
                m.threads,
                ff_train::memory::human_bytes(m.max_memory_bytes()),
                sweep::slurm_time(m.max_time_seconds())
            );
            println!(
                "next: phyff sweep run {0} --jobs N, or phyff sweep slurm {0} --submit; then phyff sweep collect {0}",
                out.display()
            );
            Ok(())
        }
        SweepCommand::Run { dir, jobs, phyff } => {
            let m = Manifest::read(dir)?;
            let exe = this_exe(phyff)?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let jobs = jobs.unwrap_or((cores / m.threads.max(1)).max(1));
            anyhow::ensure!(jobs >= 1, "invalid --jobs: at least 1 process, got 0");
            let total = m.points.len();
            println!(
                "phyff sweep run: {total} points of {}, {jobs} at a time, {} thread(s) each",
                dir.display(),
                m.threads
            );
            let report = |e: &RunEvent| match e {
                RunEvent::Started { index, resumed } => {
                    let verb = if *resumed { "resumed from its checkpoint" } else { "started" };
                    println!("[{}/{total}] {} {verb}", index + 1, describe(&m, *index));
                }
                RunEvent::Done { index, run } => {
                    let what = describe(&m, *index);
                    match run {
                        PointRun::AlreadyFinished => {
                            println!("[{}/{total}] {what} already finished, not rerun", index + 1)
                        }
                        PointRun::Finished { seconds, test_accuracy, .. } => println!(
                            "[{}/{total}] {what} finished in {seconds:.1} s: test accuracy {}",
                            index + 1,
                            test_accuracy.map_or("?".into(), |a| format!("{a:.4}"))
                        ),
                        PointRun::Failed(f) => println!(
                            "[{}/{total}] {what} FAILED, {} (see {})",
                            index + 1,
                            f.summary(),
                            dir.join(&m.points[*index].dir).join("train.err").display()
                        ),
                    }
                }
            };
            let c = sweep::run_all(dir, &m, jobs, &exe, &report)?;
            println!(
                "phyff sweep run: {} finished now, {} already finished, {} failed; phyff sweep collect {} tabulates them",
                c.finished,
                c.skipped,
                c.failed,
                dir.display()
            );
            anyhow::ensure!(
                c.failed == 0,
                "{} of {total} points failed; fix the cause and run again to retry them",
                c.failed
            );
            Ok(())
        }
        SweepCommand::RunPoint { dir, index, phyff } => {
            let m = Manifest::read(dir)?;
            let exe = this_exe(phyff)?;
            m.point(*index)?;
            let what = describe(&m, *index);
            match sweep::run_point(dir, &m, *index, &exe, |resumed| {
                eprintln!("phyff sweep: {what} {}", if resumed { "resumed from its checkpoint" } else { "started" })
            })? {
                PointRun::AlreadyFinished => eprintln!("phyff sweep: {what} already finished, not rerun"),
                PointRun::Finished { seconds, .. } => eprintln!("phyff sweep: {what} finished in {seconds:.1} s"),
                PointRun::Failed(f) => anyhow::bail!("{what} failed, {}\n{}", f.summary(), f.stderr_tail),
            }
            Ok(())
        }
        SweepCommand::Slurm { dir, submit, max_running, time, mem, job_name, sbatch_arg, phyff, script } => {
            anyhow::ensure!(*max_running >= 1, "invalid --max-running: at least 1 task at a time, got 0");
            let m = Manifest::read(dir)?;
            let abs = std::path::absolute(dir)?;
            let exe = this_exe(phyff)?;
            let opts = sweep::SlurmOptions {
                exe,
                max_running: *max_running,
                time: time.clone(),
                mem: mem.clone(),
                job_name: job_name.clone(),
                extra: sbatch_arg.clone(),
            };
            let todo = sweep::unfinished(&abs, &m);
            let text = sweep::slurm_script(&abs, &m, &todo, &opts)?;
            let path = script.clone().unwrap_or_else(|| abs.join("sweep.sbatch"));
            std::fs::create_dir_all(abs.join("slurm"))?;
            ff_train::io::write_atomic(&path, text.as_bytes())?;
            println!("wrote {} ({} of {} points to run)", path.display(), todo.len(), m.points.len());
            if *submit {
                let id = sweep::submit(&path)?;
                println!(
                    "submitted job {id}: squeue -j {id} shows it; phyff sweep collect {} tabulates the results",
                    dir.display()
                );
                println!("job_id={id}");
            } else {
                println!("submit it with: sbatch {}", path.display());
            }
            Ok(())
        }
        SweepCommand::Collect { dir } => {
            let m = Manifest::read(dir)?;
            let c = sweep::collect(dir, &m)?;
            let files = c.write(dir)?;
            print!("{}", c.markdown());
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            println!("\nwrote {}", names.join(", "));
            Ok(())
        }
    }
}
