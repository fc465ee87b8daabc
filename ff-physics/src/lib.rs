//! # ff-physics: FFT-based wave simulators behind the `PhysicalSystem` trait
//!
//! Each simulator turns a real input vector into a real output vector through a documented
//! encoding, wave propagation and detection, and implements [`ff_core::PhysicalSystem`].
//!
//! ## Conventions
//! - Precision: generic over `F: Real + rustfft::FftNum` (`f32`, `f64`), see [`fft::FftReal`].
//! - FFT: forward `exp(-2 pi i jk/n)` unnormalised, inverse scaled by `1/n` (see [`fft`]).
//! - Units are in field names (`wavelength_m`, `length_km`); every random choice (e.g. a
//!   transmission matrix) takes an explicit seed and uses [`ff_core::rng::rng_for`].
//! - Configurations are plain data with `Default` and serde, checked by `validate()`;
//!   invalid values are rejected with [`ff_core::CoreError::Config`] naming the field.

pub mod fft;
