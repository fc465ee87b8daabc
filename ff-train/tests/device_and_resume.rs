//! Hardware in the loop through `phyff-device` and TCP devices, and exact checkpoint/resume.

use ff_core::LrSchedule;
use ff_core::{MatMut, MatRef, PhysicalSystem, SystemError};
use ff_physics::device::serve_listener;
use ff_physics::{OpticsConfig, OpticsSystem};
use ff_train::checkpoint::{checkpoint_config, load_checkpoint, CHECKPOINT_FILE};
use ff_train::config::{ExperimentConfig, Objective, Squares, SystemKind};
use ff_train::run::{resume, resume_as, train};
use ff_train::systems::optics_for_block;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn small(epochs: usize) -> ExperimentConfig {
    ExperimentConfig {
        epochs,
        hidden: 16,
        n_inner: 2,
        batch_size: 512,
        eval_every: 1,
        ablation: false,
        ..ExperimentConfig::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bits<T: serde::Serialize>(state: &T) -> String {
    serde_json::to_string(state).unwrap()
}

#[test]
fn two_epochs_then_resume_equals_four_epochs_bit_for_bit() {
    let straight = train::<f32>(&small(4), None, |_, _| {}).unwrap();
    let dir = tmp("resume");
    train::<f32>(&small(2), Some(&dir), |_, _| {}).unwrap();
    let ck = load_checkpoint::<f32>(&dir.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(ck.progress.epochs_done, 2);
    assert_eq!(checkpoint_config(&dir.join(CHECKPOINT_FILE)).unwrap().epochs, 2);
    let resumed = resume::<f32>(&dir, Some(4), |_, _| {}).unwrap();
    assert_eq!(bits(&straight.model.state), bits(&resumed.model.state));
    assert_eq!(resumed.pnn.history.len(), 4);
    assert_eq!(straight.pnn.history[3].loss, resumed.pnn.history[3].loss);
    assert_eq!(straight.pnn.training.physical_queries, resumed.pnn.training.physical_queries);
    assert_eq!(load_checkpoint::<f32>(&dir.join(CHECKPOINT_FILE)).unwrap().progress.epochs_done, 4);
    let err = resume::<f32>(&dir, Some(3), |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("resume with --epochs 4 or more"), "{err}");
    assert!(resume::<f32>(&tmp("no-checkpoint"), None, |_, _| {}).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_as_refuses_a_changed_run_naming_each_setting_once() {
    let dir = tmp("resume-as");
    let cfg = ExperimentConfig { system: SystemKind::Digital, ..small(1) };
    train::<f32>(&cfg, Some(&dir), |_, _| {}).unwrap();
    let changed = ExperimentConfig { lr: 99.0, seed: 7, ..cfg.clone() };
    let err = resume_as::<f32>(&dir, &changed, |_, _| {}).err().unwrap().to_string();
    assert!(
        err.contains("differs from the saved one in") && err.contains("only epochs, checkpoint_every and [device]"),
        "{err}"
    );
    assert_eq!((err.matches("lr").count(), err.matches("seed").count()), (1, 1), "{err}");
    // More epochs are allowed.
    let longer = ExperimentConfig { epochs: 2, ..cfg };
    assert_eq!(resume_as::<f32>(&dir, &longer, |_, _| {}).unwrap().pnn.history.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_ablation_of_a_system_without_skip_is_the_digital_network_so_it_can_run_checkpointed() {
    // Optics passes on only the camera image (no skip), so its ablation puts the block input
    // where the physical output was: exactly `system = "digital"` with the same configuration.
    // The full-scale ablation can therefore run as a digital run, with checkpoints and resume.
    let optics = train::<f32>(&ExperimentConfig { ablation: true, ..small(2) }, None, |_, _| {}).unwrap();
    let digital = train::<f32>(&ExperimentConfig { system: SystemKind::Digital, ..small(2) }, None, |_, _| {}).unwrap();
    let ablation = optics.ablation.unwrap();
    let curve =
        |s: &ff_train::RunRecord| s.history.iter().map(|r| (r.loss.clone(), r.test_accuracy)).collect::<Vec<_>>();
    assert_eq!(curve(&ablation), curve(&digital.pnn));
    assert_eq!(
        (ablation.test_accuracy, ablation.train_accuracy),
        (digital.pnn.test_accuracy, digital.pnn.train_accuracy)
    );
    assert_ne!(curve(&optics.pnn), curve(&digital.pnn), "the optics must change the run");
}

#[test]
fn a_decaying_learning_rate_resumes_bit_for_bit_and_refuses_a_new_length() {
    // Hinton's objective with the sum of squares, so `squares` and `lr_schedule` both take part.
    let cfg = ExperimentConfig {
        system: SystemKind::Digital,
        objective: Objective::Hinton,
        squares: Some(Squares::Sum),
        theta: 16.0,
        lr_schedule: LrSchedule::LinearDecay,
        // A checkpoint after every epoch: the test copies the one of epoch 3.
        checkpoint_every: 0.0,
        ..small(4)
    };
    let straight = train::<f32>(&cfg, None, |_, _| {}).unwrap();
    let constant =
        train::<f32>(&ExperimentConfig { lr_schedule: LrSchedule::Constant, ..cfg.clone() }, None, |_, _| {}).unwrap();
    // Epochs 1-2 run at the full rate in both; epochs 3-4 are slower with the decay.
    assert_eq!(straight.pnn.history[1].loss, constant.pnn.history[1].loss);
    assert_ne!(bits(&straight.model.state), bits(&constant.model.state));

    // Stop after epoch 3 of the 4-epoch plan (the checkpoint written then), then resume. The
    // progress line of epoch 4 comes before its checkpoint, so the file then holds epoch 3.
    let dir = tmp("resume-decay");
    let mut seen = 0;
    let stop = train::<f32>(&cfg, Some(&dir), |_, r| {
        seen = r.epoch;
        if r.epoch == 4 {
            std::fs::copy(dir.join(CHECKPOINT_FILE), dir.join("at-3.json")).unwrap();
        }
    });
    assert!(stop.is_ok() && seen == 4);
    std::fs::rename(dir.join("at-3.json"), dir.join(CHECKPOINT_FILE)).unwrap();
    let err = resume::<f32>(&dir, Some(6), |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("--epochs 6") && err.contains("linear-decay"), "{err}");
    let resumed = resume::<f32>(&dir, None, |_, _| {}).unwrap();
    assert_eq!(bits(&straight.model.state), bits(&resumed.model.state));
    assert_eq!(straight.pnn.history[3].loss, resumed.pnn.history[3].loss);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An in-process optical block that fails with a device error while `broken` is set.
struct Flaky {
    inner: OpticsSystem<f32>,
    broken: Arc<AtomicBool>,
}

impl PhysicalSystem<f32> for Flaky {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn output_len(&self) -> usize {
        self.inner.output_len()
    }
    fn forward_batch(&mut self, input: MatRef<'_, f32>, output: MatMut<'_, f32>) -> Result<(), SystemError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(SystemError::Device { system: self.name(), message: "detector saturated".into() });
        }
        self.inner.forward_batch(input, output)
    }
}

#[test]
fn a_device_failure_mid_run_loses_nothing_and_resume_matches_in_process_training() {
    let reference = train::<f32>(&small(4), None, |_, _| {}).unwrap();
    let broken = Arc::new(AtomicBool::new(false));
    let mut addrs = Vec::new();
    for (k, shape) in [(0, (28, 8)), (1, (4, 4))] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        let b = broken.clone();
        std::thread::spawn(move || {
            let inner = OpticsSystem::new(optics_for_block(&OpticsConfig::default(), k, shape)).unwrap();
            serve_listener::<f32, _>(&mut Flaky { inner, broken: b }, &l, None)
        });
    }
    let mut cfg = small(4);
    cfg.system = SystemKind::Device;
    cfg.device.tcp = Some(addrs.join(","));
    cfg.device.timeout_ms = 30_000; // generous: the failure replies at once, and a loaded machine must not time out first
    cfg.device.attempts = 2;
    let dir = tmp("device-failure");
    let err = train::<f32>(&cfg, Some(&dir), |_, r| {
        if r.epoch == 2 {
            broken.store(true, Ordering::SeqCst);
        }
    })
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("detector saturated") && msg.contains("after 2 attempts"), "{msg}");
    assert_eq!(load_checkpoint::<f32>(&dir.join(CHECKPOINT_FILE)).unwrap().progress.epochs_done, 2);
    broken.store(false, Ordering::SeqCst);
    let resumed = resume::<f32>(&dir, None, |_, _| {}).unwrap();
    assert_eq!(bits(&reference.model.state), bits(&resumed.model.state));
    assert_eq!(reference.pnn.test_accuracy, resumed.pnn.test_accuracy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn phyff_device_over_stdio_crashing_every_few_queries_trains_the_same_bits() {
    let reference = train::<f32>(&small(1), None, |_, _| {}).unwrap();
    let mut cfg = small(1);
    cfg.system = SystemKind::Device;
    cfg.device.command = Some(format!(
        "{} --stdio --system optics --block {{block}} --input-shape {{rows}}x{{cols}} --fail-after 3",
        env!("CARGO_BIN_EXE_phyff-device")
    ));
    cfg.device.timeout_ms = 20_000;
    cfg.device.attempts = 2;
    let out = train::<f32>(&cfg, None, |_, _| {}).unwrap();
    assert_eq!(bits(&reference.model.state), bits(&out.model.state));
    // Without retries the injected crash is a clear error.
    cfg.device.attempts = 1;
    let err = format!("{:#}", train::<f32>(&cfg, None, |_, _| {}).err().unwrap());
    assert!(err.contains("closed the connection") && err.contains("after 1 attempts"), "{err}");
}

/// A device that sends one reply twice (`--duplicate-reply`): the repeat is recognised by its
/// query number and dropped, so training sees every query's own outputs and ends with the
/// same bits as in-process training.
#[test]
fn phyff_device_duplicating_a_reply_trains_the_same_bits() {
    let reference = train::<f32>(&small(1), None, |_, _| {}).unwrap();
    let mut cfg = small(1);
    cfg.system = SystemKind::Device;
    cfg.device.command = Some(format!(
        "{} --stdio --system optics --block {{block}} --input-shape {{rows}}x{{cols}} --duplicate-reply 2",
        env!("CARGO_BIN_EXE_phyff-device")
    ));
    cfg.device.timeout_ms = 20_000;
    cfg.device.attempts = 1;
    let out = train::<f32>(&cfg, None, |_, _| {}).unwrap();
    assert_eq!(bits(&reference.model.state), bits(&out.model.state));
}

#[test]
fn device_settings_are_checked() {
    let mut cfg = small(1);
    cfg.system = SystemKind::Device;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("--device-cmd") && e.contains("--device-tcp"), "{e}");
    cfg.device.tcp = Some("not-an-address".into());
    let e = format!("{:#}", train::<f32>(&cfg, None, |_, _| {}).err().unwrap());
    assert!(e.contains("invalid device address \"not-an-address\""), "{e}");
    let back = ExperimentConfig::from_toml(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
}

/// `checkpoint_every` seconds between checkpoints: none while the interval has not passed, one
/// after the last epoch; 0 writes one after every epoch.
#[test]
fn checkpoints_follow_the_interval_and_the_last_epoch() {
    let dir = tmp("checkpoint-every");
    let cfg = ExperimentConfig { system: SystemKind::Digital, checkpoint_every: 1e6, ..small(3) };
    let mut present = Vec::new();
    train::<f32>(&cfg, Some(&dir), |_, r| present.push((r.epoch, dir.join(CHECKPOINT_FILE).exists()))).unwrap();
    // The progress line of an epoch comes before its checkpoint.
    assert_eq!(present, vec![(1, false), (2, false), (3, false)]);
    assert_eq!(load_checkpoint::<f32>(&dir.join(CHECKPOINT_FILE)).unwrap().progress.epochs_done, 3);
    std::fs::remove_dir_all(&dir).unwrap();
    let every = ExperimentConfig { checkpoint_every: 0.0, ..cfg };
    let mut present = Vec::new();
    train::<f32>(&every, Some(&dir), |_, r| present.push((r.epoch, dir.join(CHECKPOINT_FILE).exists()))).unwrap();
    assert_eq!(present, vec![(1, false), (2, true), (3, true)]);
    std::fs::remove_dir_all(&dir).unwrap();
    let bad = ExperimentConfig { checkpoint_every: -1.0, ..every };
    assert!(format!("{:#}", bad.validate().unwrap_err()).contains("invalid checkpoint_every"));
}
