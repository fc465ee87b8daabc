use super::*;

/// A learner that counts: each trained sample costs one query and one FLOP, each scored sample
/// one query; its accuracy is a fixed function of the samples seen so far.
#[derive(Default)]
struct Counting {
    seen: Vec<usize>,
    counters: Counters,
    epochs: Vec<(usize, Option<usize>)>,
    validation: Vec<f64>,
}

impl Learner for Counting {
    type State = Vec<usize>;

    fn start_epoch(&mut self, epoch: usize, planned: Option<usize>) -> Result<()> {
        self.epochs.push((epoch, planned));
        Ok(())
    }

    fn train_batch(&mut self, batch: &[usize]) -> Result<Vec<f64>> {
        self.seen.extend_from_slice(batch);
        self.counters.physical_queries += batch.len() as u64;
        self.counters.digital_flops += batch.len() as u64;
        Ok(vec![batch.len() as f64])
    }

    fn accuracy(&mut self, split: Split) -> Result<f64> {
        self.counters.physical_queries += 3;
        Ok(match split {
            Split::Train => 0.5,
            Split::Test => self.seen.len() as f64 / 1000.0,
            Split::Validation => self.validation.get(self.epochs.len().saturating_sub(1)).copied().unwrap_or(0.0),
        })
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn state(&self) -> Vec<usize> {
        self.seen.clone()
    }

    fn restore(&mut self, state: Vec<usize>) -> Result<()> {
        self.seen = state;
        Ok(())
    }
}

fn plan(stop: Stop, eval: EvalSchedule, n: usize, batch: usize) -> Plan {
    Plan { stop, eval, batches: MiniBatches::new(n, batch, 1), train_eval: true, select: false, name: None }
}

#[test]
fn epochs_batches_and_the_books_of_training_and_evaluation() {
    let mut l = Counting::default();
    let d = drive(&mut l, &plan(Stop::Epochs(4), EvalSchedule::EveryEpochs(3), 10, 4), None, None, &mut []).unwrap();
    assert_eq!(l.epochs, vec![(1, Some(4)), (2, Some(4)), (3, Some(4)), (4, Some(4))]);
    assert_eq!(l.seen.len(), 40);
    // Scored after epochs 3 (test) and 4 (train and test), 3 queries each.
    let p = &d.progress;
    assert_eq!((p.train_queries(), p.eval_physical_queries, p.counters.digital_flops), (40, 9, 40));
    let evaluated: Vec<usize> = p.history.iter().filter(|r| r.test_accuracy.is_some()).map(|r| r.epoch).collect();
    assert_eq!(evaluated, vec![3, 4]);
    assert_eq!(d.train_accuracy, Some(0.5));
    assert_eq!(p.history[1].loss, vec![(4.0 + 4.0 + 2.0) / 3.0]);
    assert_eq!(p.history[3].train_physical_queries, 40);
}

#[test]
fn a_query_budget_stops_at_the_first_batch_boundary_past_it_and_marks_are_scored_once() {
    let mut l = Counting::default();
    let mut seen = Vec::new();
    let mut obs = OnEval(|p: &EvalPoint| seen.push((p.epoch, p.train_queries)));
    let eval = EvalSchedule::AtQueries(vec![5, 6, 23]);
    let d = drive(&mut l, &plan(Stop::Queries(25), eval, 10, 4), None, None, &mut [&mut obs]).unwrap();
    // Batches of 4, 4, 2 per epoch: 4, 8, 10, 14, 18, 20, 24, 28 queries.
    assert_eq!(d.progress.train_queries(), 28);
    assert_eq!(seen, vec![(0, 0), (1, 8), (3, 24)]);
    assert_eq!(l.epochs, vec![(1, None), (2, None), (3, None)]);
}

#[test]
fn an_epoch_that_spends_nothing_never_reaches_a_budget() {
    struct Idle;
    impl Learner for Idle {
        type State = ();
        fn start_epoch(&mut self, _: usize, _: Option<usize>) -> Result<()> {
            Ok(())
        }
        fn train_batch(&mut self, _: &[usize]) -> Result<Vec<f64>> {
            Ok(vec![0.0])
        }
        fn accuracy(&mut self, _: Split) -> Result<f64> {
            Ok(0.0)
        }
        fn counters(&self) -> Counters {
            Counters::default()
        }
        fn state(&self) {}
        fn restore(&mut self, _: ()) -> Result<()> {
            Ok(())
        }
    }
    let mut p = plan(Stop::Queries(10), EvalSchedule::Never, 4, 2);
    p.name = Some("idle".into());
    let e = drive(&mut Idle, &p, None, None, &mut []).err().expect("refused");
    assert!(format!("{e:#}").contains("idle: epoch 1 made no physical queries"), "{e:#}");
}

#[test]
fn selection_keeps_the_latest_best_epoch_and_measures_it_again() {
    let mut l = Counting { validation: vec![0.2, 0.7, 0.7, 0.1], ..Counting::default() };
    let mut p = plan(Stop::Epochs(4), EvalSchedule::EveryEpochs(1), 6, 0);
    p.select = true;
    let d = drive(&mut l, &p, None, None, &mut []).unwrap();
    assert_eq!(d.kept, Some((3, 0.7)));
    assert_eq!(l.seen.len(), 18, "epoch 3's state is back");
    assert_eq!(d.progress.test_accuracy, 0.018);
}

#[test]
fn a_resumed_run_ends_with_the_books_of_the_uninterrupted_one() {
    // Without the final train score, which the first part would take after its epoch 2.
    let quiet = |epochs| Plan { train_eval: false, ..plan(Stop::Epochs(epochs), EvalSchedule::EveryEpochs(2), 7, 3) };
    let p = quiet(5);
    let whole = drive(&mut Counting::default(), &p, None, None, &mut []).unwrap().progress;
    let first = drive(&mut Counting::default(), &quiet(2), None, None, &mut []).unwrap().progress;
    let rest = drive(&mut Counting::default(), &p, Some(first), None, &mut []).unwrap().progress;
    assert_eq!(rest.counters, whole.counters);
    assert_eq!(rest.eval_physical_queries, whole.eval_physical_queries);
    assert_eq!(rest.history.len(), 5);
    let epochs = |h: &[EpochRecord]| {
        h.iter().map(|r| (r.epoch, r.train_physical_queries, r.test_accuracy.is_some())).collect::<Vec<_>>()
    };
    assert_eq!(epochs(&rest.history), epochs(&whole.history));
    assert!(drive(
        &mut Counting::default(),
        &plan(Stop::Epochs(1), EvalSchedule::Never, 7, 3),
        Some(rest),
        None,
        &mut []
    )
    .is_err());
}
