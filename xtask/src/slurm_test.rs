//! `cargo xtask slurm-test [--keep]`: `phyff sweep` on a real Slurm. Opt-in (not part of `cargo
//! test` or CI): it needs root, Debian's packages and a few minutes.
//!
//! It installs Debian's `slurm-wlm` (and with it munge) when missing, starts a one-node cluster
//! on this machine as children of this process (munged, slurmctld, slurmd in the foreground, a
//! configuration, key, sockets, state and logs under `target/slurm-test/`, ports 16817 and
//! 16818, no systemd, no cgroups, no accounting daemon), plans a 6-point sweep of the default
//! job (digits, optics; 3 seeds x 2 learning rates, 2 epochs) twice, submits one plan as a job
//! array with `phyff sweep slurm --submit`, waits for it with `squeue`, runs the other with
//! `phyff sweep run --jobs 2`, collects both and checks that every point finished and the
//! collected tables (`results.md`, `results.csv`, `summary.csv`) are the same bytes. The
//! daemons it started are stopped at the end, on failure too. `--keep` keeps
//! `target/slurm-test/` for inspection (it is removed at the start of the next run anyway).

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sweep: the default job with 2 epochs, 3 seeds x 2 learning rates.
const SWEEP: &str = "# cargo xtask slurm-test: the default job (digits, optics), shortened to 2 epochs.
threads = 1

[set]
epochs = 2

[grid]
lr = [1e-3, 5e-4]
seed = [0, 1, 2]
";

/// The longest wait for the array to finish.
const JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Daemons started by this task, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Default)]
struct Daemons {
    children: Vec<(String, Child)>,
}

impl Daemons {
    fn start(&mut self, name: &str, cmd: &mut Command, log: &Path) -> Result<()> {
        let out = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        println!("slurm-test: started {name} (pid {})", child.id());
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Fails when a daemon has already exited, naming its log.
    fn check_alive(&mut self, logs: &Path) -> Result<()> {
        for (name, c) in &mut self.children {
            if let Some(status) = c.try_wait()? {
                bail!("{name} exited ({status}); see its log in {}", logs.display());
            }
        }
        Ok(())
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        // The last started first: slurmd, slurmctld, munged.
        for (name, mut c) in self.children.drain(..).rev() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
            println!("slurm-test: stopped {name} (pid {pid})");
        }
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        o.status.success(),
        "{cmd:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn status(cmd: &mut Command) -> Result<()> {
    let s = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(s.success(), "{cmd:?} failed ({s})");
    Ok(())
}

/// Installs `slurm-wlm` with apt-get unless `slurmctld`, `slurmd`, `munged` and `sbatch` are there.
fn install() -> Result<()> {
    let have = |p: &str| Path::new(p).exists();
    if ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"].iter().all(|p| have(p)) {
        println!("slurm-test: slurm-wlm and munge are installed");
        return Ok(());
    }
    println!("slurm-test: installing slurm-wlm (apt-get; needs root)");
    status(Command::new("apt-get").arg("update").arg("-q"))?;
    status(Command::new("apt-get").args(["install", "-y", "-q", "slurm-wlm"]).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `MemTotal` of /proc/meminfo in MiB.
fn mem_mib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no MemTotal in /proc/meminfo")?;
    Ok(kb / 1024)
}

fn slurm_conf(work: &Path, host: &str, cpus: usize, mem: u64) -> String {
    let w = work.display();
    format!(
        "# One-node cluster of cargo xtask slurm-test (no systemd, no cgroups, no accounting).
ClusterName=phyfftest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={w}/munge.sock
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/slurmctld.pid
SlurmdPidFile={w}/slurmd.pid
SlurmctldLogFile={w}/log/slurmctld.log
SlurmdLogFile={w}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"
    )
}

/// Runs the test; see the module documentation.
pub fn run(args: &[String]) -> Result<()> {
    let mut keep = false;
    for a in args {
        match a.as_str() {
            "--keep" => keep = true,
            other => bail!("unknown slurm-test argument {other:?}; usage: cargo xtask slurm-test [--keep]"),
        }
    }
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = std::path::absolute(target)?;
    install()?;
    for daemon in ["slurmctld", "slurmd"] {
        if Command::new("pgrep").args(["-x", daemon]).output().is_ok_and(|o| o.status.success()) {
            bail!("a {daemon} is already running on this machine; stop it first (this test starts its own one-node cluster)");
        }
    }

    println!("slurm-test: building phyff");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(&cargo).current_dir(&root).args(["build", "-q", "-p", "ff-train", "--bin", "phyff"]))?;
    let phyff = target.join("debug/phyff");
    ensure!(phyff.exists(), "{} was not built", phyff.display());

    let work = target.join("slurm-test");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    }
    for d in ["state", "spool", "log"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let result = cluster_and_sweep(&work, &phyff, started);
    if result.is_err() {
        for log in ["slurmctld.log", "slurmd.log", "munged.log"] {
            let text = std::fs::read_to_string(work.join("log").join(log)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("--- last lines of {log} ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    } else if !keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn cluster_and_sweep(work: &Path, phyff: &Path, started: Instant) -> Result<()> {
    let host = output(Command::new("hostname").arg("-s"))?.trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Slurm drains a node that reports less memory than configured: leave a margin.
    let mem = mem_mib()? * 9 / 10;
    let conf = work.join("slurm.conf");
    std::fs::write(&conf, slurm_conf(work, &host, cpus, mem))?;
    let key = work.join("munge.key");
    if Command::new("mungekey").arg("-c").arg("-k").arg(&key).status().map_or(true, |s| !s.success()) {
        status(
            Command::new("dd").arg("if=/dev/urandom").arg(format!("of={}", key.display())).args(["bs=1", "count=1024"]),
        )?;
    }
    status(Command::new("chmod").arg("600").arg(&key))?;
    let log = work.join("log");
    let mut daemons = Daemons::default();
    daemons.start(
        "munged",
        Command::new("munged")
            .arg("-F")
            .arg(format!("--socket={}", work.join("munge.sock").display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", work.join("munged.pid").display()))
            .arg(format!("--seed-file={}", work.join("munged.seed").display()))
            .arg(format!("--log-file={}", log.join("munged.log").display())),
        &log.join("munged.out"),
    )?;
    let socket = work.join("munge.sock");
    let t0 = Instant::now();
    while !socket.exists() {
        daemons.check_alive(&log)?;
        ensure!(t0.elapsed() < Duration::from_secs(20), "munged did not create {}", socket.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The Slurm commands and phyff's sbatch find the cluster by SLURM_CONF.
    std::env::set_var("SLURM_CONF", &conf);
    daemons.start(
        "slurmctld",
        Command::new("slurmctld").arg("-D").arg("-i").arg("-f").arg(&conf),
        &log.join("slurmctld.out"),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    daemons.start("slurmd", Command::new("slurmd").arg("-D").arg("-f").arg(&conf), &log.join("slurmd.out"))?;
    let t0 = Instant::now();
    loop {
        daemons.check_alive(&log)?;
        let state = Command::new("sinfo").args(["-h", "-N", "-o", "%T"]).output();
        let state = state.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        if state.starts_with("idle") {
            println!("slurm-test: node {host} idle ({cpus} CPUs, {mem} MiB) after {:.1} s", t0.elapsed().as_secs_f64());
            break;
        }
        if state.contains("drain") || state.starts_with("down") {
            let _ = Command::new("scontrol").args(["update", &format!("nodename={host}"), "state=resume"]).status();
        }
        ensure!(t0.elapsed() < Duration::from_secs(90), "the node is not idle after 90 s (sinfo: {state:?})");
        std::thread::sleep(Duration::from_millis(500));
    }

    let sweep = work.join("sweep.toml");
    std::fs::write(&sweep, SWEEP)?;
    let (slurm_plan, local_plan) = (work.join("plan-slurm"), work.join("plan-local"));
    for plan in [&slurm_plan, &local_plan] {
        status(Command::new(phyff).arg("sweep").arg("plan").arg(&sweep).arg("--out").arg(plan))?;
    }

    let t_slurm = Instant::now();
    let out = output(Command::new(phyff).args(["sweep", "slurm"]).arg(&slurm_plan).args([
        "--submit",
        "--max-running",
        "2",
        "--sbatch-arg=--partition=debug",
    ]))?;
    print!("{out}");
    let job = out
        .lines()
        .find_map(|l| l.strip_prefix("job_id="))
        .context("phyff sweep slurm --submit printed no job_id= line")?
        .to_string();
    let script = std::fs::read_to_string(slurm_plan.join("sweep.sbatch"))?;
    println!("slurm-test: the script:\n{script}");
    let result = wait_for_job(&job, &slurm_plan, &mut daemons, &log);
    if result.is_err() {
        let _ = Command::new("scancel").arg(&job).status();
    }
    result?;
    let slurm_seconds = t_slurm.elapsed().as_secs_f64();
    let outs = std::fs::read_dir(slurm_plan.join("slurm"))?.count();
    ensure!(outs == 6, "expected 6 task output files in {}, found {outs}", slurm_plan.join("slurm").display());

    let t_local = Instant::now();
    status(Command::new(phyff).args(["sweep", "run"]).arg(&local_plan).args(["--jobs", "2"]))?;
    let local_seconds = t_local.elapsed().as_secs_f64();
    // A second run finds every point finished and reruns none.
    let again = output(Command::new(phyff).args(["sweep", "run"]).arg(&local_plan).args(["--jobs", "2"]))?;
    ensure!(again.matches("already finished, not rerun").count() == 6, "a second run reran points:\n{again}");

    for plan in [&slurm_plan, &local_plan] {
        output(Command::new(phyff).args(["sweep", "collect"]).arg(plan))?;
    }
    let md = std::fs::read_to_string(slurm_plan.join("results.md"))?;
    ensure!(md.contains("6 points: 6 finished, 0 failed"), "not every point finished on Slurm:\n{md}");
    for file in ["results.md", "results.csv", "summary.csv"] {
        let (a, b) = (std::fs::read(slurm_plan.join(file))?, std::fs::read(local_plan.join(file))?);
        ensure!(
            a == b,
            "{file} differs between the Slurm run ({}) and the local run ({})",
            slurm_plan.join(file).display(),
            local_plan.join(file).display()
        );
    }
    println!("{md}");
    println!(
        "slurm-test: passed: results.md, results.csv and summary.csv of the Slurm array (job {job}, {slurm_seconds:.0} s) and of phyff sweep run --jobs 2 ({local_seconds:.0} s) are identical; total wall time {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until `squeue` no longer lists the job, printing progress.
fn wait_for_job(job: &str, plan: &Path, daemons: &mut Daemons, log: &Path) -> Result<()> {
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        daemons.check_alive(log)?;
        let q = match output(Command::new("squeue").args(["-h", "-j", job, "-o", "%i %T %r"])) {
            Ok(q) => q,
            // A job that ended some time ago is forgotten: squeue calls its id invalid.
            Err(e) if format!("{e:#}").contains("Invalid job id") => String::new(),
            Err(e) => {
                println!("slurm-test: squeue failed, retrying: {e:#}");
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        let done = std::fs::read_dir(plan.join("points"))?
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("result.json").exists()))
            .count();
        let line = format!("{done}/6 points finished; squeue: {}", q.lines().collect::<Vec<_>>().join("; "));
        if line != last {
            println!("slurm-test: [{:>4.0} s] {line}", t0.elapsed().as_secs_f64());
            last = line;
        }
        if q.trim().is_empty() {
            return Ok(());
        }
        ensure!(t0.elapsed() < JOB_TIMEOUT, "job {job} still queued or running after {} s", JOB_TIMEOUT.as_secs());
        std::thread::sleep(Duration::from_secs(2));
    }
}
