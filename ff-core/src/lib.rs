//! # ff-core: the vocabulary and the math of model-free forward-forward training
//!
//! This crate owns the traits and numerics that every other phyff crate shares:
//! - [`PhysicalSystem`]: a physical layer as a black box, queried forward in batches;
//! - [`Matrix`] and friends: row-major batches (`batch x features`), with a fast [`gemm`];
//! - goodness functions, losses and their closed-form gradients, label embedding, negative
//!   data, optimisers, and the PhyLL block schedule ([`network`]);
//! - unsupervised forward-forward: hybrid negatives ([`hybrid`]), blank-label training and
//!   block activities ([`Network::train_batch_unsupervised`], [`Network::activities`]) and a
//!   linear softmax read-out ([`readout`]).
//!
//! ## Your own system: which route to take
//! - **In Rust, in process** (a simulator you wrote, a model of your medium): implement
//!   [`PhysicalSystem`] (`input_len`, `output_len`, `forward_batch`), put one per block in a
//!   [`BlockSpec`], build a [`Network`] with [`Network::new`] (it checks the width rule of
//!   [`BlockSpec`] and names the block and the numbers when they do not fit) and train it with
//!   [`Network::fit`] on plain matrices (`samples x features`, labels `0..K`): no other phyff
//!   crate is needed. Pick [`LabelEmbedding::Prepend`] for data that did not reserve label
//!   slots. A complete program in 79 lines: `ff-train/examples/own_system.rs`
//!   (`cargo run --example own_system`).
//! - **A separate process or a lab instrument** (any language, including Python): speak the
//!   device protocol (`docs/device-protocol.md`; `ff_physics::device`) and train it with
//!   `phyff train --system device --device-cmd "..."`.
//! - **The built-in simulators**: `phyff train --system optics|microwave|acoustic|freespace|fiber|emulator`
//!   with a TOML configuration; `ff_train::run::train` is the same from Rust.
//!
//! ## Conventions
//! - Precision: generic over [`Real`] (`f32` default, `f64` available).
//! - Layout: row-major; a batch of `n` samples with `d` features is `n x d`; an affine map
//!   `z = W u + b` stores `W` as `d_out x d_in`.
//! - Randomness: every random choice takes an explicit seed ([`rng::rng_for`]); ChaCha8
//!   streams, portable bit for bit.
//! - This crate performs no I/O.

pub mod activation;
pub mod conformance;
pub mod embed;
pub mod error;
pub mod gemm_kernels;
pub mod goodness;
pub mod hybrid;
pub mod layer;
pub mod loss;
pub mod matrix;
pub mod mlp;
pub mod network;
pub mod optim;
pub mod pool;
pub mod readout;
pub mod real;
pub mod rng;
pub mod serde_real;
pub mod system;
pub mod vmath;

pub use activation::Activation;
pub use embed::{LabelEmbedding, LabelValue};
pub use error::{CoreError, Result, SystemError};
pub use goodness::Goodness;
pub use hybrid::{HybridNegatives, Hybrids, MaskShape};
pub use layer::LocalLayer;
pub use loss::Loss;
pub use matrix::{gemm, hcat, MatMut, MatRef, Matrix, Op};
pub use mlp::{softmax_cross_entropy, Mlp, MlpCache, MlpScratch};
pub use network::{
    BlockSpec, Counters, EpochReport, FitPlan, NegativeMode, Network, NetworkState, PassOn, TrainConfig,
};
pub use optim::{LrSchedule, Optimizer, OptimizerConfig};
pub use readout::{LinearReadout, ReadoutConfig, ReadoutFit};
pub use real::Real;
pub use system::{check_batch, check_vjp_shapes, Differentiable, Identity, PhysicalSystem, Zeros};
