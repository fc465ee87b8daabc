//! # ff-physics: wave simulators behind the [`ff_core::PhysicalSystem`] trait
//!
//! Each simulator turns a physical wave system into a black-box map from a real input vector to
//! a real output vector, with a documented encoding of the input for the hardware and a
//! documented detection of the output:
//! - [`microwave`]: a reverberating 2-D cavity with a programmable metasurface (PhysFad
//!   coupled-dipole model): 2-bit metasurface encoding in, `|S21|` at several frequencies out;
//! - [`acoustic`]: a chaotic 2-D cavity of rigid scatterers with nonlinear (Duffing) membrane
//!   scatterers: 20 tone amplitudes in, 20 spectral amplitudes at a microphone out;
//! - [`imperfections`]: detector noise, ADC quantisation and drift as wrappers around any system.
//!
//! ## Conventions
//! - Simulators compute in `f64` internally whatever the batch precision `F`.
//! - Every random choice (geometry, noise, drift) comes from an explicit seed through
//!   [`ff_core::rng::rng_for`]; the same configuration gives the same bits, independent of the
//!   batch size and the number of threads.
//! - Configurations are plain data (`serde`, `Default`) with a `validate()` whose errors name the
//!   offending field and value.

mod geometry;
mod linalg;
mod special;

pub mod acoustic;
pub mod imperfections;
pub mod microwave;

pub use acoustic::{AcousticCavity, AcousticConfig};
pub use imperfections::{
    AdcConfig, Drift, DriftConfig, NoiseConfig, Noisy, Perturbable, Quantized,
};
pub use microwave::{DipoleParams, MicrowaveCavity, MicrowaveConfig};
