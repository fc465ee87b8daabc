//! Measures how long loading an IDX data set takes, and the peak memory.
//!
//! ```text
//! cargo run --release -p ff-data --example load_time -- mnist:data/mnist
//! ```
//! Prints the wall time of `ff_data::load::<f32>` and, on Linux, the peak resident memory
//! (`VmHWM`) against the size of the loaded matrices.

use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "mnist".to_string());
    let spec: ff_data::DataSpec = match arg.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let before = peak_rss_kib();
    let t = Instant::now();
    let tt = match ff_data::load::<f32>(&spec, 0) {
        Ok(tt) => tt,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let dt = t.elapsed();
    let bytes = (tt.train.x.data().len() + tt.test.x.data().len()) * std::mem::size_of::<f32>();
    println!(
        "{arg}: {} train + {} test samples of {} features loaded in {:.1} ms",
        tt.train.len(),
        tt.test.len(),
        tt.train.dim(),
        dt.as_secs_f64() * 1e3
    );
    if let (Some(b), Some(a)) = (before, peak_rss_kib()) {
        println!(
            "peak resident memory {:.1} MiB (before loading {:.1} MiB); the f32 matrices take {:.1} MiB",
            a as f64 / 1024.0,
            b as f64 / 1024.0,
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
}
