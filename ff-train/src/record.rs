//! The run record: what one training run of one method did. Every method and command produces
//! it: the forward-forward fits of `trainer` (supervised, unsupervised, with `keep_best`), the
//! end-to-end methods and the digital MLP of `baselines::e2e`, the reference classifiers, the
//! untrained read-out control of `run`, and every method of `phyff compare` and `phyff drift`
//! (a drift method is a record plus its drift-only extras).
//!
//! Work is booked in three [`Counters`] that never overlap: [`RunRecord::training`] (learning
//! the method's parameters), [`RunRecord::evaluation`] (every scoring of a split) and
//! [`RunRecord::twin`] (sampling the system and fitting digital twins). The sums a file or a
//! table reports are methods ([`RunRecord::total`], [`RunRecord::learning`]), so whether a
//! figure includes evaluation is said by the name that produces it, not by a convention of the
//! field. The files (`result.json`, `comparison.json`, `drift.json`) keep their own schemas and
//! are written from the record by their commands.

use crate::driver::{Driven, EpochRecord, EvalPoint};
use ff_core::Counters;
use serde::{Deserialize, Serialize};

/// `a + b`, field by field (saturating).
pub fn add_counters(a: Counters, b: Counters) -> Counters {
    Counters {
        physical_queries: a.physical_queries.saturating_add(b.physical_queries),
        digital_flops: a.digital_flops.saturating_add(b.digital_flops),
    }
}

/// The epoch a `keep_best` run kept: the best validation accuracy, the latest on ties.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptEpoch {
    /// The epoch, from 1; the record's accuracies are its network's.
    pub epoch: usize,
    /// Its accuracy on the validation split (a fraction in `[0, 1]`).
    pub validation_accuracy: f64,
}

/// One training run of one method (see the module docs for how work is booked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Method name (e.g. `"FF (PhyLL)"`, `"PAT"`).
    pub method: String,
    /// Final test accuracy, a fraction in `[0, 1]` (for the physical methods: deployed on the
    /// physical system; for unsupervised FF: of its linear read-out; with `keep_best`: of the
    /// kept epoch's network).
    pub test_accuracy: f64,
    /// Final train accuracy (`None` when it was not measured: `train_eval` off).
    pub train_accuracy: Option<f64>,
    /// Wall time of the run, evaluation and (for the methods that have one) twin fitting
    /// included, in seconds.
    pub wall_seconds: f64,
    /// Work of learning the method's parameters: physical queries of the training passes and
    /// digital FLOPs of forward, backward and optimiser steps (for unsupervised FF also the
    /// read-out's fit). Evaluation and twin fitting excluded.
    pub training: Counters,
    /// Work of evaluation: every scoring of the test split, of the validation split
    /// (`keep_best`) and the final train accuracy.
    pub evaluation: Counters,
    /// Work of sampling the system and fitting digital twins (PAT, in-silico); zero for the
    /// methods without a twin. Under drift, a refit whose queries run on the drift clock books
    /// them in `training` (they come out of the training budget) and only its FLOPs here.
    pub twin: Counters,
    /// Epochs trained (0 for a method without epochs, e.g. the k-NN reference).
    pub epochs: usize,
    /// What happened in every epoch (empty for a method without epochs).
    pub history: Vec<EpochRecord>,
    /// Every scoring of the test split during training, in order (with the training queries
    /// spent when it was measured).
    pub points: Vec<EvalPoint>,
    /// `keep_best` runs: the epoch whose network was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptEpoch>,
}

impl RunRecord {
    /// The record of a run of `method` that [`crate::driver::drive`] trained: its accuracies,
    /// wall time, the driver's books split into training and evaluation work, its history and
    /// evaluation points, and the kept epoch. No twin work (a method that fits twins adds it).
    pub fn from_driven(method: impl Into<String>, d: Driven) -> Self {
        let p = d.progress;
        RunRecord {
            method: method.into(),
            test_accuracy: p.test_accuracy,
            train_accuracy: d.train_accuracy,
            wall_seconds: p.wall_seconds,
            training: p.training(),
            evaluation: p.evaluation(),
            twin: Counters::default(),
            epochs: p.epochs_done,
            history: p.history,
            points: d.points,
            kept: d.kept.map(|(epoch, validation_accuracy)| KeptEpoch { epoch, validation_accuracy }),
        }
    }

    /// The same record under another method name.
    #[must_use]
    pub fn named(self, method: impl Into<String>) -> Self {
        RunRecord { method: method.into(), ..self }
    }

    /// All work: training, evaluation and twin fitting.
    pub fn total(&self) -> Counters {
        add_counters(add_counters(self.training, self.evaluation), self.twin)
    }

    /// All physical queries: training, evaluation and twin sampling.
    pub fn total_queries(&self) -> u64 {
        self.total().physical_queries
    }

    /// All digital FLOPs: training, evaluation and twin fitting.
    pub fn total_flops(&self) -> u64 {
        self.total().digital_flops
    }

    /// The work of learning: training and twin fitting, evaluation excluded (methods differ
    /// in how much evaluation costs, e.g. FF scores every candidate label, and how often one
    /// evaluates is a choice of the experimenter, not of the method).
    pub fn learning(&self) -> Counters {
        add_counters(self.training, self.twin)
    }

    /// The digital FLOPs of learning ([`RunRecord::learning`]).
    pub fn learning_flops(&self) -> u64 {
        self.learning().digital_flops
    }

    /// The test accuracy of every scoring in [`RunRecord::points`], in order.
    pub fn test_accuracy_history(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.test_accuracy).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::FitProgress;

    #[test]
    fn the_driver_books_split_into_training_and_evaluation_and_the_sums_say_what_they_hold() {
        let mut progress = FitProgress::start();
        progress.epochs_done = 2;
        progress.counters = Counters { physical_queries: 100, digital_flops: 1000 };
        progress.eval_physical_queries = 30;
        progress.eval_digital_flops = 300;
        progress.test_accuracy = 0.75;
        let point = |epoch, test_accuracy| EvalPoint { epoch, train_queries: 35 * epoch as u64, test_accuracy };
        let d = Driven {
            progress,
            train_accuracy: Some(0.8),
            points: vec![point(1, 0.5), point(2, 0.75)],
            kept: Some((1, 0.6)),
        };
        let mut r = RunRecord::from_driven("m", d);
        assert_eq!(r.training, Counters { physical_queries: 70, digital_flops: 700 });
        assert_eq!(r.evaluation, Counters { physical_queries: 30, digital_flops: 300 });
        assert_eq!((r.epochs, r.test_accuracy, r.train_accuracy), (2, 0.75, Some(0.8)));
        assert_eq!(r.kept, Some(KeptEpoch { epoch: 1, validation_accuracy: 0.6 }));
        assert_eq!(r.test_accuracy_history(), [0.5, 0.75]);
        r.twin = Counters { physical_queries: 5, digital_flops: 50 };
        assert_eq!((r.total_queries(), r.total_flops()), (105, 1050));
        assert_eq!(r.learning(), Counters { physical_queries: 75, digital_flops: 750 });
        assert_eq!(r.learning_flops(), 750);
        assert_eq!(r.named("n").method, "n");
    }
}
