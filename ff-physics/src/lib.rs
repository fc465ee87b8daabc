//! # ff-physics: FFT-based wave simulators behind the `PhysicalSystem` trait
//!
//! Each simulator turns a real input vector into a real output vector through a documented
//! encoding, wave propagation and detection, and implements [`ff_core::PhysicalSystem`].
//!
//! ## Quick start
//! ```
//! use ff_core::{Matrix, PhysicalSystem};
//! use ff_physics::{OpticsConfig, OpticsSystem};
//!
//! // The feasibility setup: 28 x 8 labelled image tiled on 32 x 32, 293 modes, 16 x 16 out.
//! let mut optics = OpticsSystem::<f32>::new(OpticsConfig::default())?;
//! let batch = Matrix::<f32>::zeros(4, optics.input_len());
//! let features = optics.forward(batch.view())?;
//! assert_eq!((features.rows(), features.cols()), (4, 256));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Conventions
//! - Precision: generic over `F: Real + rustfft::FftNum` (`f32`, `f64`), see [`fft::FftReal`].
//! - FFT: forward `exp(-2 pi i jk/n)` unnormalised, inverse scaled by `1/n` (see [`fft`]).
//! - Units are in field names (`wavelength_m`, `length_km`); every random choice (e.g. a
//!   transmission matrix) takes an explicit seed and uses [`ff_core::rng::rng_for`].
//! - Configurations are plain data with `Default` and serde, checked by `validate()`;
//!   invalid values are rejected with [`ff_core::CoreError::Config`] naming the field.

pub mod camera;
pub mod fft;
pub mod fiber;
pub mod freespace;
pub mod optics;
pub mod slm;

pub use camera::{Detection, Pooling};
pub use fiber::{FiberConfig, FiberSystem};
pub use freespace::{FreeSpaceConfig, FreeSpaceSystem};
pub use optics::{MediumKind, OpticsConfig, OpticsSystem};
pub use slm::{Encoding, Placement};
