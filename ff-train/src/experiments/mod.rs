//! Experiments that run several methods side by side on the same blocks, data split and seed:
//! [`compare`](mod@compare) (forward-forward against the baselines of [`crate::baselines`], with their costs)
//! and [`drift`] (FF against PAT while the physical system changes under them).

pub mod compare;
pub mod drift;

pub use compare::{compare, CompareOptions, CompareReport, MethodSummary};
pub use drift::{drift_experiment, DriftOptions, DriftReport};
