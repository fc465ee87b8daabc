//! Measures queries per second of the microwave and acoustic simulators at their default
//! configurations (batch of 200 random inputs, f32). Run with
//! `cargo run --release -p ff-physics --example throughput`.

use ff_core::{Matrix, PhysicalSystem};
use ff_physics::{AcousticCavity, AcousticConfig, MicrowaveCavity, MicrowaveConfig};
use rand::Rng;
use std::time::Instant;

fn measure<S: PhysicalSystem<f32>>(name: &str, build: impl Fn() -> S) {
    let t = Instant::now();
    let mut sys = build();
    let built = t.elapsed();
    let mut rng = ff_core::rng::rng_for(0, "throughput");
    let x = Matrix::<f32>::from_fn(200, sys.input_len(), |_, _| rng.random::<f32>());
    sys.forward(x.view()).expect("warm-up query");
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        sys.forward(x.view()).expect("query");
    }
    let per_batch = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{name}: build {:.0} ms, batch of 200 in {:.1} ms, {:.0} queries/s ({} threads)",
        built.as_secs_f64() * 1e3,
        per_batch * 1e3,
        200.0 / per_batch,
        rayon::current_num_threads()
    );
}

fn main() {
    measure("microwave (default)", || MicrowaveCavity::new(MicrowaveConfig::default()).expect("default config"));
    measure("acoustic (default)", || AcousticCavity::new(AcousticConfig::default()).expect("default config"));
}
