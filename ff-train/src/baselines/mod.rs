//! Baselines (docs/science.md, "Baselines"): the methods forward-forward is measured against.
//! [`e2e`]: ideal backprop through the exact model of the physics, physics-aware training (PAT)
//! and in-silico training with a digital twin, and a digital MLP; [`reference`]: the k-nearest-
//! neighbour and logistic-regression rows of every training table; [`energy`]: the energy model
//! that prices physical queries and digital FLOPs. The experiments that run them beside FF live
//! in [`crate::experiments`].

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
use serde::{Deserialize, Serialize};

/// One training run of one method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodRun {
    /// Method name (e.g. `"PAT"`).
    pub method: String,
    /// Final test accuracy (deployed on the physical system).
    pub test_accuracy: f64,
    /// Final train accuracy (`null` when it was not measured: `train_eval = false`).
    pub train_accuracy: Option<f64>,
    /// Wall time of the run, twin fitting included, in seconds.
    pub wall_seconds: f64,
    /// Physical queries spent on training (twin sampling excluded: see `twin_queries`).
    pub train_physical_queries: u64,
    /// Physical queries spent on evaluation.
    pub eval_physical_queries: u64,
    /// Digital FLOPs of training (forward, backward, optimiser; evaluation and twin fitting
    /// excluded: see `eval_flops` and `twin_flops`).
    pub digital_flops: u64,
    /// Digital FLOPs of evaluation (every test-accuracy measurement and the final train accuracy).
    #[serde(default)]
    pub eval_flops: u64,
    /// Digital FLOPs of fitting the twins (PAT, in-silico).
    pub twin_flops: u64,
    /// Physical queries spent sampling the system to fit the twins.
    pub twin_queries: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Test accuracy after every epoch.
    pub test_accuracy_history: Vec<f64>,
}

impl MethodRun {
    /// All physical queries: training, evaluation and twin sampling.
    pub fn total_queries(&self) -> u64 {
        self.train_physical_queries + self.eval_physical_queries + self.twin_queries
    }

    /// All digital FLOPs: training, evaluation and twin fitting.
    pub fn total_flops(&self) -> u64 {
        self.digital_flops + self.eval_flops + self.twin_flops
    }

    /// The digital cost of learning: training and twin fitting, evaluation excluded (methods
    /// differ in how much evaluation costs, e.g. FF scores every candidate label, and how
    /// often one evaluates is a choice of the experimenter, not of the method).
    pub fn learning_flops(&self) -> u64 {
        self.digital_flops + self.twin_flops
    }
}

/// Digital FLOPs per row of a forward pass (or of its exact VJP, which has the same stages
/// in reverse) of a simulated optical system: two `N x N` complex FFTs at `5 N^2 log2(N^2)`
/// each, the complex mode product as a real GEMM (`8 m_in m_out`), and ~20 FLOPs per pixel
/// for encoding, pupils, detection and pooling.
pub fn optics_vjp_flops(cfg: &OpticsConfig) -> u64 {
    let n2 = (cfg.field_size * cfg.field_size) as f64;
    let fft = 5.0 * n2 * n2.log2().max(1.0);
    (2.0 * fft + 8.0 * (cfg.input_modes() * cfg.output_modes()) as f64 + 20.0 * n2) as u64
}
