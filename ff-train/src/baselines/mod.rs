//! Baselines (docs/science.md, "Baselines"): the methods forward-forward is measured against.
//! [`e2e`]: ideal backprop through the exact model of the physics, physics-aware training (PAT)
//! and in-silico training with a digital twin, and a digital MLP; [`reference`](mod@reference): the k-nearest-
//! neighbour and logistic-regression rows of every training table; [`energy`]: the energy model
//! that prices physical queries and digital FLOPs. Every method reports its run as a
//! [`crate::record::RunRecord`]. The experiments that run them beside FF live in
//! [`crate::experiments`].

pub mod e2e;
pub mod energy;
pub mod reference;

// Old paths: the experiments, the plots and the twin lived here before they got rooms of
// their own (`crate::experiments`, `crate::output`, `crate::systems`). Code written against
// `ff_train::baselines::...` still builds.
pub use crate::experiments::compare::{self, compare, CompareOptions, CompareReport, MethodSummary};
pub use crate::experiments::drift::{self, drift_experiment, DriftOptions, DriftReport};
pub use crate::output::plot;
pub use crate::systems::twin::{self, Twin, TwinConfig, TwinFit};
pub use e2e::{
    train_digital_mlp, train_end_to_end, BlockModel, E2eData, E2eLearner, E2eOptions, E2eTrainer, MlpLearner,
    TwinInputs,
};
pub use energy::EnergyModel;

use ff_physics::optics::OpticsConfig;

/// Digital FLOPs per row of a forward pass (or of its exact VJP, which has the same stages
/// in reverse) of a simulated optical system: two `N x N` complex FFTs at `5 N^2 log2(N^2)`
/// each, the complex mode product as a real GEMM (`8 m_in m_out`), and ~20 FLOPs per pixel
/// for encoding, pupils, detection and pooling.
pub fn optics_vjp_flops(cfg: &OpticsConfig) -> u64 {
    let n2 = (cfg.field_size * cfg.field_size) as f64;
    let fft = 5.0 * n2 * n2.log2().max(1.0);
    (2.0 * fft + 8.0 * (cfg.input_modes() * cfg.output_modes()) as f64 + 20.0 * n2) as u64
}
