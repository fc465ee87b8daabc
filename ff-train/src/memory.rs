//! The memory a configuration needs, estimated before anything is built, against the memory
//! of the machine.
//!
//! A size typed by mistake (`--hidden 1000000000`) used to reach the allocator: a 980 GB request
//! aborts the process, a size past `usize` panics on capacity overflow. [`check`] runs in
//! [`ExperimentConfig::validate`] (so every command gets it) and again once the data are loaded
//! (their real shape), and refuses a configuration whose estimate overflows 64-bit arithmetic or
//! exceeds the machine's memory (`MemTotal` in `/proc/meminfo`; skipped where that is not
//! available), naming the setting that makes it large.
//!
//! The estimate counts what grows with the settings, in checked arithmetic: the blocks'
//! parameters with their gradients and Adam moments, the activations of a mini-batch (positives
//! and negatives stacked) or of an evaluation chunk, the data, the read-out's activities in
//! unsupervised mode, and the buffers of the physical systems (the optical transmission matrix,
//! `m_out x m_in` complex, and its batch fields; the cavities' per-frequency inverses and dense
//! solves; the free-space transfer functions; the emulator's fit). What a system answers with
//! and what it holds are counted by its kind's entry in [`crate::systems::kinds`]
//! ([`SystemKindSpec::output_len`], [`SystemKindSpec::memory_parts`]). It is an order of
//! magnitude, not an accounting: small buffers, threads' scratch and file text are left out.

use crate::config::{ExperimentConfig, Mode, Precision};
#[cfg(doc)]
use crate::systems::SystemKindSpec;
use anyhow::{bail, Result};
use ff_data::{DataSpec, Layout, TrainTest};
use std::ops::{Add, Mul};

/// The memory of this machine, from `/proc/meminfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineMemory {
    /// `MemTotal`, in bytes.
    pub total: u64,
    /// `MemAvailable`, in bytes, when reported.
    pub available: Option<u64>,
}

impl MachineMemory {
    /// Reads `MemTotal` and `MemAvailable` (in kB) from the text of `/proc/meminfo`; `None`
    /// without a `MemTotal` line.
    pub fn parse(meminfo: &str) -> Option<Self> {
        let field = |name: &str| {
            meminfo.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                kb.checked_mul(1024)
            })
        };
        Some(MachineMemory { total: field("MemTotal")?, available: field("MemAvailable") })
    }

    /// This machine's memory, read once per process; `None` where `/proc/meminfo` is not
    /// available (not Linux), and the comparison with the machine is then skipped.
    pub fn this_machine() -> Option<Self> {
        static MACHINE: std::sync::OnceLock<Option<MachineMemory>> = std::sync::OnceLock::new();
        *MACHINE.get_or_init(|| std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| Self::parse(&t)))
    }
}

/// The shape of a data set, as far as it is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataShape {
    /// Values per sample as the network's first block reads it, before label bands (0: unknown).
    pub raw_len: usize,
    /// `(height, width)` of image samples (label bands are added above and below); `None` for
    /// vectors.
    pub image: Option<(usize, usize)>,
    /// Training samples (0: unknown).
    pub train: usize,
    /// Test samples (0: unknown).
    pub test: usize,
}

impl DataShape {
    /// What `cfg.data` implies before anything is read: the shapes and split sizes of the
    /// built-in digits and of MNIST and Fashion-MNIST (reduced by `train_limit` and
    /// `test_limit`); for a file (`vowels:`, `csv:`) and an invalid spec, unknown (zeros):
    /// [`DataShape::of`] tells after loading.
    pub fn guess(cfg: &ExperimentConfig) -> Self {
        let known = match cfg.data.parse::<DataSpec>() {
            Ok(DataSpec::Digits) => DataShape { raw_len: 64, image: Some((8, 8)), train: 1437, test: 360 },
            Ok(DataSpec::Mnist(_) | DataSpec::Fashion(_)) => {
                DataShape { raw_len: 784, image: Some((28, 28)), train: 60_000, test: 10_000 }
            }
            _ => DataShape::default(),
        };
        DataShape {
            train: cfg.train_limit.map_or(known.train, |n| n.min(known.train)),
            test: cfg.test_limit.map_or(known.test, |n| n.min(known.test)),
            ..known
        }
    }

    /// The shape of loaded data (label slots prepended to vectors included).
    pub fn of<F: ff_core::Real>(data: &TrainTest<F>) -> Self {
        let image = match data.train.layout {
            Layout::Image { height, width } => Some((height, width)),
            Layout::Vector { .. } => None,
        };
        DataShape { raw_len: data.train.dim(), image, train: data.train.len(), test: data.test.len() }
    }
}

/// A count (of values or bytes) in checked arithmetic: `None` once anything overflowed `u64`.
/// Sums and products of sizes stay `None` once one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub Option<u64>);

/// `v` as a [`Size`].
pub(crate) fn sz(v: usize) -> Size {
    Size(u64::try_from(v).ok())
}

impl Add for Size {
    type Output = Size;
    fn add(self, o: Size) -> Size {
        Size(self.0.zip(o.0).and_then(|(a, b)| a.checked_add(b)))
    }
}

impl Mul for Size {
    type Output = Size;
    fn mul(self, o: Size) -> Size {
        Size(self.0.zip(o.0).and_then(|(a, b)| a.checked_mul(b)))
    }
}

impl Size {
    /// The larger of two sizes (`None` when either is).
    pub fn max(self, o: Size) -> Size {
        Size(self.0.zip(o.0).map(|(a, b)| a.max(b)))
    }
    /// The smaller of two sizes (`None` when either is).
    pub fn min(self, o: Size) -> Size {
        Size(self.0.zip(o.0).map(|(a, b)| a.min(b)))
    }
}

/// A count from a floating-point expression (geometry): saturates, so that an absurd value
/// overflows the products it enters; non-finite or negative values count 0 (the system's own
/// validation names them).
fn from_f64(v: f64) -> Size {
    if v.is_finite() && v >= 0.0 {
        Size(Some(v.ceil() as u64)) // `as` saturates at u64::MAX
    } else {
        Size(Some(0))
    }
}

/// Bytes of one complex value in double precision (how the systems keep their matrices).
pub(crate) const COMPLEX64: u64 = 16;
/// Rows of a network evaluation chunk (`Network::accuracy`, `Network::activities`).
const EVAL_ROWS: usize = 4096;

/// One part of an estimate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// What it holds ("block weights, gradients and Adam state").
    pub what: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The run-wide sizes that a system's buffers scale with ([`SystemKindSpec::memory_parts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryScale {
    /// Number of blocks (each block holds its own system).
    pub blocks: Size,
    /// Rows in flight through a block at once: the larger of a mini-batch (positives and
    /// negatives stacked) and an evaluation chunk.
    pub rows: Size,
    /// Bytes of one real value at the run's precision (4 or 8).
    pub real_bytes: Size,
}

/// The memory a configuration needs, part by part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The parts, largest first.
    pub parts: Vec<Part>,
    /// Their sum, in bytes.
    pub total: u64,
}

/// An estimate that does not fit in 64 bits: the part that overflowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// What the part holds.
    pub what: &'static str,
}

/// Pixels of an `n x n` grid within `r` pixels of its centre `(n/2, n/2)` (as
/// `ff_physics::optics::pupil_mode_count`, up to rounding at the rim), in `O(min(n, r))`
/// steps; the whole grid for grids too large to walk.
pub(crate) fn pupil_modes(n: usize, r: f64) -> Size {
    let all = sz(n) * sz(n);
    if !(r.is_finite() && r >= 0.0) {
        return Size(Some(0));
    }
    if n > 1 << 24 || r > f64::from(1u32 << 24) {
        return all;
    }
    let (n, c) = (n as i64, (n / 2) as i64);
    let ri = r.floor() as i64;
    let mut count: u64 = 0;
    for i in (c - ri).max(0)..=(c + ri).min(n - 1) {
        let di = (i - c) as f64;
        let half = (r * r - di * di).max(0.0).sqrt().floor() as i64;
        let (lo, hi) = ((c - half).max(0), (c + half).min(n - 1));
        if hi >= lo {
            count += (hi - lo + 1) as u64;
        }
    }
    Size(Some(count)).min(all)
}

/// Dipoles on the outline of a `w x h` rectangle at `spacing` (as the cavities place them).
pub(crate) fn outline(w: f64, h: f64, spacing: f64) -> Size {
    let side = |l: f64| if spacing > 0.0 { from_f64((l / spacing).max(1.0)) } else { Size(Some(0)) };
    sz(2) * (side(w) + side(h))
}

/// Estimates the memory of a run of `cfg` on data of shape `data`.
///
/// # Errors
/// [`Overflow`] when a part does not fit in 64 bits.
pub fn estimate(cfg: &ExperimentConfig, data: &DataShape) -> std::result::Result<MemoryEstimate, Overflow> {
    let f = sz(match cfg.precision {
        Precision::F32 => 4,
        Precision::F64 => 8,
    });
    let (hidden, later) = (sz(cfg.hidden), sz(cfg.blocks.saturating_sub(1)));
    // The first block reads the labelled sample: an image with bands above and below, or the vector.
    let first_in = match data.image {
        Some((h, w)) => (sz(h) + sz(2) * sz(cfg.band_rows)) * sz(w),
        None => sz(data.raw_len),
    };
    let spec = cfg.system.spec();
    // What the system of a block reading `d` values answers with (0: not known before it runs).
    let system_out = |d: Size| spec.output_len(cfg, d);
    // The digital-only network has no skip connection.
    let skip = cfg.skip() && spec.is_physical();
    let width_in = |d: Size| system_out(d) + if skip { d } else { Size(Some(0)) };
    // Per block: W and b, their gradient and the two Adam moments; the prototype.
    let weights = |d: Size| hidden * (width_in(d) + sz(1)) * sz(4) + hidden;
    // Per block and row: its input, the system's answer, the affine map's input, z and its gradient.
    let row = |d: Size| d + system_out(d) + width_in(d) + sz(2) * hidden;
    let batch = match (cfg.batch_size, data.train) {
        (0, n) => sz(n),
        (b, 0) => sz(b),
        (b, n) => sz(b.min(n)),
    };
    let rows = (sz(2) * batch).max(sz(EVAL_ROWS));
    let samples = sz(data.train) + sz(data.test);

    let mut parts: Vec<(&'static str, Size)> = vec![
        ("block weights, gradients and Adam state", (weights(first_in) + later * weights(hidden)) * f),
        ("activations of a mini-batch", rows * (row(first_in) + later * row(hidden)) * f),
        ("data", samples * sz(data.raw_len) * f),
    ];
    if cfg.mode == Mode::Unsupervised {
        let blocks = sz(cfg.blocks);
        parts.push(("block activities for the read-out", samples * blocks * hidden * f));
    }
    parts.extend(spec.memory_parts(cfg, &MemoryScale { blocks: sz(cfg.blocks), rows, real_bytes: f }));
    let mut total = Size(Some(0));
    let mut out = Vec::with_capacity(parts.len());
    for (what, size) in parts {
        let Some(bytes) = size.0 else { return Err(Overflow { what }) };
        total = total + size;
        out.push(Part { what, bytes });
    }
    let Some(total) = total.0 else { return Err(Overflow { what: "the whole run" }) };
    out.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    Ok(MemoryEstimate { parts: out, total })
}

/// `bytes` in binary units with one decimal ("14.6 TiB").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A setting that can make a run large: its key, its flag, its value as shown, and how to put
/// it back to its default. The generic ones are listed here, those of a system's section by its
/// kind ([`SystemKindSpec::memory_settings`]); the crate's `setting!` macro writes one.
pub struct Setting {
    /// Dotted key in the configuration file (`"optics.field_size"`).
    pub key: &'static str,
    /// The command-line flag that sets it, if any (`"--field"`).
    pub flag: Option<&'static str>,
    /// Its value in `cfg`, as shown in a message.
    pub value: fn(&ExperimentConfig) -> String,
    /// Sets it in the first configuration to its value in the second (the defaults).
    pub reset: fn(&mut ExperimentConfig, &ExperimentConfig),
}

/// `setting!("optics.field_size", Some("--field"), optics.field_size)`: the [`Setting`] of a
/// configuration field, by its key, its flag and its field path.
macro_rules! setting {
    ($key:literal, $flag:expr, $($field:ident).+) => {
        $crate::memory::Setting {
            key: $key,
            flag: $flag,
            value: |c| format!("{:?}", c.$($field).+),
            reset: |c, d| c.$($field).+ = d.$($field).+.clone(),
        }
    };
}
pub(crate) use setting;

/// Every setting the estimate of `cfg`'s system grows with: the generic ones, then its kind's.
fn settings(cfg: &ExperimentConfig) -> Vec<Setting> {
    let mut all = vec![
        setting!("hidden", Some("--hidden"), hidden),
        setting!("blocks", Some("--blocks"), blocks),
        setting!("batch_size", Some("--batch-size"), batch_size),
        setting!("band_rows", Some("--band-rows"), band_rows),
    ];
    all.extend(cfg.system.spec().memory_settings());
    all
}

/// The setting whose default value shrinks the estimate most (`None` when none does).
fn culprit(cfg: &ExperimentConfig, data: Option<&DataShape>) -> Option<Setting> {
    let defaults = ExperimentConfig::default();
    let cost = |c: &ExperimentConfig| {
        let shape = data.copied().unwrap_or_else(|| DataShape::guess(c));
        estimate(c, &shape).map_or(u128::MAX, |e| u128::from(e.total))
    };
    let now = cost(cfg);
    let mut best: Option<(u128, Setting)> = None;
    for s in settings(cfg) {
        let mut c = cfg.clone();
        (s.reset)(&mut c, &defaults);
        let v = cost(&c);
        if v < now && best.as_ref().is_none_or(|(b, _)| v < *b) {
            best = Some((v, s));
        }
    }
    best.map(|(_, s)| s)
}

/// Refuses `cfg` when the memory it needs overflows 64-bit arithmetic, or exceeds `machine`'s
/// (when known). `data`: the loaded data's shape, or `None` to take it from `cfg.data`
/// ([`DataShape::guess`]). The message names the setting that makes the run large, the
/// estimate and the machine's memory.
///
/// # Errors
/// The refusal.
pub fn check(cfg: &ExperimentConfig, data: Option<&DataShape>, machine: Option<MachineMemory>) -> Result<()> {
    let shape = data.copied().unwrap_or_else(|| DataShape::guess(cfg));
    let named = || match culprit(cfg, data) {
        Some(s) => {
            let fix = match s.flag {
                Some(flag) => format!("lower {} ({flag})", s.key),
                None => format!("lower {}", s.key),
            };
            (format!("{} = {}", s.key, (s.value)(cfg)), fix)
        }
        None => ("configuration".to_string(), "use smaller sizes".to_string()),
    };
    match estimate(cfg, &shape) {
        Err(Overflow { what }) => {
            let (setting, fix) = named();
            bail!(
                "invalid {setting}: the memory for the {what} overflows 64-bit arithmetic (more than 16 EiB, far beyond any machine); {fix}"
            )
        }
        Ok(e) => {
            let Some(m) = machine else { return Ok(()) };
            if e.total <= m.total {
                return Ok(());
            }
            let (setting, fix) = named();
            let top = &e.parts[0];
            let available = m.available.map_or(String::new(), |a| format!(", {} available", human_bytes(a)));
            bail!(
                "invalid {setting}: the run needs about {} of memory ({} {}), more than this machine has ({} in all{available}); {fix}",
                human_bytes(e.total),
                top.what,
                human_bytes(top.bytes),
                human_bytes(m.total)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemKind;

    const GIB: u64 = 1 << 30;

    fn small_machine() -> Option<MachineMemory> {
        Some(MachineMemory { total: 8 * GIB, available: Some(6 * GIB) })
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = MachineMemory::parse("MemTotal:       24683772 kB\nMemFree: 1 kB\nMemAvailable:   23767576 kB\n");
        assert_eq!(m, Some(MachineMemory { total: 24683772 * 1024, available: Some(23767576 * 1024) }));
        assert_eq!(MachineMemory::parse("MemTotal: 1024 kB\n").unwrap().available, None);
        assert_eq!(MachineMemory::parse("nothing here"), None);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * GIB / 2), "1.5 GiB");
    }

    #[test]
    fn the_default_and_the_full_scale_runs_fit_a_small_machine() {
        let default = ExperimentConfig::default();
        let e = estimate(&default, &DataShape::guess(&default)).unwrap();
        assert!(e.total < 256 << 20, "{e:?}");
        check(&default, None, small_machine()).unwrap();
        default.validate().unwrap();
        // The largest runs of `cargo xtask reproduce` (full scale), run on machines of 24 GB.
        for toml in [
            "data = \"mnist:/data/mnist\"\nsystem = \"optics\"\nhidden = 676\nbatch_size = 10000\nprecision = \"f64\"\n\
             [optics]\nfield_size = 52\ninput_pupil_radius_px = 15.7\noutput_pupil_radius_px = 15.7\n",
            "data = \"fashion:/data/fashion\"\nsystem = \"digital\"\nhidden = 1000\nbatch_size = 10000\n",
            "data = \"mnist:/data/mnist\"\nsystem = \"digital\"\nblocks = 4\nhidden = 2000\nbatch_size = 100\n",
            "data = \"mnist:/data/mnist\"\nmode = \"unsupervised\"\nsystem = \"digital\"\nblocks = 4\nhidden = 2000\n",
            "system = \"microwave\"\nblocks = 3\nhidden = 20\nbatch_size = 0\n",
            "system = \"acoustic\"\nhidden = 20\n",
            "system = \"freespace\"\n",
            "system = \"fiber\"\n",
        ] {
            let c = ExperimentConfig::from_toml(toml).unwrap();
            let e = estimate(&c, &DataShape::guess(&c)).unwrap();
            assert!(e.total < 4 * GIB, "{toml}: {} {e:?}", human_bytes(e.total));
            check(&c, None, small_machine()).unwrap();
        }
    }

    #[test]
    fn a_huge_hidden_is_refused_naming_it_the_estimate_and_the_machine() {
        // Issue 19: this aborted on a 980 GB allocation.
        let c = ExperimentConfig { system: SystemKind::Microwave, hidden: 1_000_000_000, ..Default::default() };
        let e = check(&c, None, small_machine()).unwrap_err().to_string();
        for needle in ["invalid hidden = 1000000000", "EiB", "8.0 GiB in all", "6.0 GiB available", "--hidden"] {
            assert!(e.contains(needle), "missing {needle:?}: {e}");
        }
        // Without the machine's memory, a finite estimate passes.
        check(&c, None, None).unwrap();
        // Issue 19: this panicked on capacity overflow; it is refused on any machine.
        let c = ExperimentConfig { system: SystemKind::Digital, hidden: 1 << 62, ..Default::default() };
        let e = check(&c, None, None).unwrap_err().to_string();
        assert!(e.contains("invalid hidden = 4611686018427387904") && e.contains("overflows"), "{e}");
        assert!(c.validate().unwrap_err().to_string().contains("overflows"));
    }

    #[test]
    fn the_setting_named_is_the_one_that_makes_the_run_large() {
        let machine = small_machine();
        let mut field = ExperimentConfig::default();
        field.optics.field_size = 4096;
        let mut freqs = ExperimentConfig { system: SystemKind::Microwave, ..Default::default() };
        freqs.microwave.n_freqs = 1 << 40;
        let mut walls = ExperimentConfig { system: SystemKind::Acoustic, ..Default::default() };
        walls.acoustic.wall_spacing = 1e-9;
        let bands = ExperimentConfig { band_rows: 1 << 40, ..Default::default() };
        let blocks = ExperimentConfig { system: SystemKind::Digital, blocks: 1 << 40, ..Default::default() };
        let wide = ExperimentConfig {
            data: "mnist:/data/mnist".into(),
            system: SystemKind::Digital,
            hidden: 20_000,
            batch_size: 0,
            ..Default::default()
        };
        for (c, name) in [
            (field, "optics.field_size = 4096"),
            (freqs, "microwave.n_freqs = 1099511627776"),
            (walls, "acoustic.wall_spacing = 1e-9"),
            (bands, "band_rows = 1099511627776"),
            (blocks, "blocks = 1099511627776"),
            (wide, "hidden = 20000"),
        ] {
            let e = check(&c, None, machine).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid {name}:")), "{name}: {e}");
        }
        // The data's real shape, once loaded: a wide CSV.
        let c = ExperimentConfig {
            data: "csv:wide.csv".into(),
            system: SystemKind::Digital,
            hidden: 10_000,
            ..Default::default()
        };
        let wide = DataShape { raw_len: 100_000, image: None, train: 1000, test: 100 };
        check(&c, None, machine).unwrap();
        let e = check(&c, Some(&wide), machine).unwrap_err().to_string();
        assert!(e.starts_with("invalid hidden = 10000:"), "{e}");
    }

    #[test]
    fn pupil_modes_match_the_optics_count() {
        for (n, r) in [(32, 9.66), (52, 15.7), (16, 4.0), (8, 100.0), (33, 0.0), (64, 31.5)] {
            assert_eq!(pupil_modes(n, r), sz(ff_physics::optics::pupil_mode_count(n, r)), "n {n}, r {r}");
        }
    }
}
