//! # ff-train: the trainer, the experiment runner and the `phyff` command line
//!
//! - [`config::ExperimentConfig`]: every knob of a run (TOML file and flags);
//!   [`config_doc`]: the same as TOML with a comment on every key (`phyff config`);
//! - [`trainer::fit`]: epochs of the PhyLL schedule with periodic evaluation and accounting;
//!   [`trainer::fit_unsupervised_from`]: the same without labels (hybrid negatives), then a
//!   linear read-out on the block activities;
//! - [`record::RunRecord`]: what one run of one method did (accuracies, training, evaluation
//!   and twin work, history), the record every method and command produces;
//! - [`run::train`] / [`run::eval`]: data + physical systems + network, result and model files;
//! - [`checkpoint`]: per-epoch checkpoints and exact resume (`phyff train --resume DIR`);
//! - [`systems`]: builds each block's physical system from the configuration;
//!   [`systems::kinds`]: the table of system kinds, one entry per kind holding everything
//!   particular to it (checks, defaults, builders, memory, FLOPs, energy);
//! - [`memory`]: the memory a configuration needs, checked against the machine's before building.
//! - [`export`]: a model's tensors as safetensors or npz (`phyff export`).
//! - [`standardize`]: per-feature standardisation of CSV data, fitted on the training split.
//! - [`sweep`]: sweeps over seeds and settings, run here or as a Slurm job array, collected
//!   into one table (`phyff sweep`).
//!
//! Library errors are `anyhow` here: this crate is the application layer.

#![allow(clippy::module_name_repetitions)]

pub mod baselines;
pub mod checkpoint;
pub mod config;
pub mod config_doc;
pub mod driver;
pub mod experiments;
pub mod export;
pub mod io;
pub mod memory;
pub mod model;
pub mod output;
pub mod record;
pub mod run;
pub mod standardize;
pub mod sweep;
pub mod systems;
pub mod trainer;

/// Old path of [`baselines::reference`], kept so that code written against it still builds.
pub use baselines::reference;
/// Old path of [`output::report`], kept so that code written against it still builds.
pub use output::report;
pub use record::RunRecord;
