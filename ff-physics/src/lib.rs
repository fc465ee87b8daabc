//! # ff-physics: FFT-based wave simulators behind the `PhysicalSystem` trait
//!
//! Each simulator turns a physical wave system into a black-box map from a real input vector to
//! a real output vector, with a documented encoding of the input for the hardware and a
//! documented detection of the output, and implements [`ff_core::PhysicalSystem`]:
//! - [`optics`]: SLM -> multimode medium (transmission matrix between Fourier pupils) -> camera;
//! - [`microwave`]: a reverberating 2-D cavity with a programmable metasurface (PhysFad
//!   coupled-dipole model): 2-bit metasurface encoding in, `|S21|` at several frequencies out;
//! - [`acoustic`]: a chaotic 2-D cavity of rigid scatterers with nonlinear (Duffing) membrane
//!   scatterers: 20 tone amplitudes in, 20 spectral amplitudes at a microphone out;
//! - [`freespace`]: free-space propagation by the angular-spectrum method through a stack of
//!   phase masks (a diffractive network), camera detection;
//! - [`fiber`]: a nonlinear fibre (split-step Fourier solution of the NLSE), spectral-phase
//!   encoding in, binned output spectrum out;
//! - [`imperfections`]: detector noise, ADC quantisation and drift as wrappers around any system;
//! - [`device`]: hardware in the loop, a system answered by an external process over a small protocol;
//! - [`adapt`]: fits a block's input width to a system's native number of channels.
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
//! - Precision: generic over `F: Real + rustfft::FftNum` (`f32`, `f64`), see [`fft::FftReal`];
//!   the cavity simulators compute in `f64` internally whatever the batch precision `F`.
//! - FFT: forward `exp(-2 pi i jk/n)` unnormalised, inverse scaled by `1/n` (see [`fft`]).
//! - Units are in field names or field docs; every random choice (a transmission matrix, a
//!   geometry, noise, drift) takes an explicit seed through [`ff_core::rng::rng_for`]; the same
//!   configuration gives the same bits, independent of the batch size and the thread count.
//! - Configurations are plain data with `Default` and serde, checked by `validate()`;
//!   invalid values are rejected with [`ff_core::CoreError::Config`] naming the field.

mod check;
mod geometry;
mod linalg;
mod special;

pub mod acoustic;
pub mod adapt;
pub mod camera;
pub mod device;
pub mod fft;
pub mod fiber;
pub mod freespace;
pub mod imperfections;
pub mod microwave;
pub mod optics;
pub mod slm;

pub use acoustic::{AcousticCavity, AcousticConfig};
pub use camera::{Detection, Pooling};
pub use fiber::{FiberConfig, FiberSystem};
pub use freespace::{FreeSpaceConfig, FreeSpaceSystem};
pub use imperfections::{
    AdcConfig, ClockPause, Drift, DriftClock, DriftConfig, NoiseConfig, Noisy, Perturbable, PerturbableSystem,
    Quantized,
};
pub use microwave::{DipoleParams, MicrowaveCavity, MicrowaveConfig};
pub use optics::{MediumKind, OpticsConfig, OpticsSystem};
pub use slm::{Encoding, Placement};
