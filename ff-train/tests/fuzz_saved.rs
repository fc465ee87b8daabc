//! Fuzzing the model and checkpoint loaders (issue 19, item 5): files that parse as JSON but
//! whose parts do not fit together must be refused with an error, never a panic, and a file
//! that loads must be usable.
//!
//! Four real files are made by training tiny networks on the built-in digits (supervised and
//! unsupervised, each a `model.json` and a mid-run `checkpoint.json`). Each case applies 1 to 3
//! random edits to one of them: change a number (to a neighbour, 0, a negative, a huge integer,
//! a value that overflows `f32`, or one beyond `f64`'s range), truncate or extend an array,
//! drop a field, swap two values, or give a value another JSON type. The configuration
//! (`config`) is left alone: its values are checked by `ExperimentConfig::validate`, and the
//! sizes it sets are issue 19's item 7. The edited file is then evaluated (`run::eval`), and a
//! checkpoint is also resumed for its remaining epoch (`run::resume`, which steps the
//! optimiser state), each inside `catch_unwind`: `Ok` or `Err` are both fine, a panic is not.
//!
//! The cases are drawn by proptest strategies from a fixed seed (same files on every run) and
//! all run, so that the test reports every panic rather than the first one.

use ff_train::config::{ExperimentConfig, Mode, SystemKind};
use ff_train::run::{eval, resume, train};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Mutated files per base file (four base files).
const CASES_PER_BASE: usize = 250;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phyff-fuzz-saved-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny, fast run: 2 digital blocks of 8, 40 training and 20 test samples, 3 epochs.
fn tiny(mode: Mode) -> ExperimentConfig {
    ExperimentConfig {
        system: SystemKind::Digital,
        mode,
        blocks: 2,
        hidden: 8,
        epochs: 3,
        batch_size: 16,
        n_inner: 2,
        eval_every: 1,
        ablation: false,
        supervised_baseline: false,
        readout_epochs: 2,
        // A checkpoint after every epoch: the bases read the one of epoch 2 mid-run.
        checkpoint_every: 0.0,
        train_limit: Some(40),
        test_limit: Some(20),
        ..ExperimentConfig::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Model,
    Checkpoint,
}

struct Base {
    name: String,
    kind: Kind,
    json: Value,
}

/// The base files, made once for the tests of this file.
fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(make_bases)
}

/// The model after 3 epochs and the checkpoint after 2 (one epoch left to resume).
fn make_bases() -> Vec<Base> {
    let mut out = Vec::new();
    for mode in [Mode::Supervised, Mode::Unsupervised] {
        let dir = tmp(&format!("base-{}", mode.name()));
        let ck_path = dir.join(ff_train::checkpoint::CHECKPOINT_FILE);
        let mut mid_run = None;
        train::<f32>(&tiny(mode), Some(&dir), |label, r| {
            // Told before the epoch's checkpoint is written: the file still holds epoch 2.
            if label == "pnn" && r.epoch == 3 {
                mid_run = Some(std::fs::read_to_string(&ck_path).unwrap());
            }
        })
        .unwrap();
        let model = std::fs::read_to_string(dir.join("model.json")).unwrap();
        let ck = mid_run.expect("the checkpoint of epoch 2");
        out.push(Base { name: format!("{} model", mode.name()), kind: Kind::Model, json: parse(&model) });
        out.push(Base { name: format!("{} checkpoint", mode.name()), kind: Kind::Checkpoint, json: parse(&ck) });
        std::fs::remove_dir_all(&dir).unwrap();
    }
    out
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A new value for a number.
#[derive(Clone, Debug)]
enum Num {
    /// The old value plus this.
    Plus(i64),
    /// The old value times this.
    Times(f64),
    /// This value.
    Set(f64),
    /// This integer.
    SetInt(u64),
    /// A number beyond `f64`'s range (`1e400`), which JSON can write.
    BeyondF64,
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        (-3i64..=3).prop_map(Num::Plus),
        prop_oneof![Just(-1.0), Just(0.5), Just(2.0), Just(1e3)].prop_map(Num::Times),
        prop_oneof![Just(0.0), Just(-1.0), Just(0.5), Just(1e39), Just(-1e39), Just(3.4e38), Just(1e300)]
            .prop_map(Num::Set),
        prop_oneof![Just(1u64 << 31), Just(1 << 32), Just(1 << 40), Just(u64::MAX), Just(u64::MAX / 2 + 1)]
            .prop_map(Num::SetInt),
        Just(Num::BeyondF64),
    ]
}

/// One edit of a JSON document; each `Index` picks a node among the candidates of the moment.
#[derive(Clone, Debug)]
enum Edit {
    Number(Index, Num),
    Truncate(Index, Index),
    Extend(Index, u8),
    Drop(Index),
    Swap(Index, Index),
    Retype(Index, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), num()).prop_map(|(i, n)| Edit::Number(i, n)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, k)| Edit::Truncate(i, k)),
        2 => (any::<Index>(), 1u8..4).prop_map(|(i, k)| Edit::Extend(i, k)),
        2 => any::<Index>().prop_map(Edit::Drop),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        1 => (any::<Index>(), 0u8..5).prop_map(|(i, t)| Edit::Retype(i, t)),
    ]
}

/// JSON pointers of the nodes that may be edited: everything but the configuration; of long
/// arrays (the weights) only the first, second, middle and last entries, so that the edits
/// reach the structure as often as the numbers.
fn candidates(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if k == "config" {
                        continue;
                    }
                    let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    walk(child, &p, out);
                }
            }
            Value::Array(a) => {
                let picked: Vec<usize> = if a.len() > 8 {
                    let mut v = vec![0, 1, a.len() / 2, a.len() - 1];
                    v.dedup();
                    v
                } else {
                    (0..a.len()).collect()
                };
                for i in picked {
                    let p = format!("{path}/{i}");
                    out.push(p.clone());
                    walk(&a[i], &p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

/// Pointers of the arrays among the candidates (and the root's descendants).
fn arrays(v: &Value) -> Vec<String> {
    candidates(v).into_iter().filter(|p| v.pointer(p).is_some_and(Value::is_array)).collect()
}

fn numbers(v: &Value) -> Vec<String> {
    candidates(v).into_iter().filter(|p| v.pointer(p).is_some_and(Value::is_number)).collect()
}

const BEYOND_F64: &str = "@@beyond-f64@@";

/// Applies `e` to `doc`; returns a description of what was done (for failure reports).
fn apply(doc: &mut Value, e: &Edit) -> String {
    match e {
        Edit::Number(i, n) => {
            let list = numbers(doc);
            if list.is_empty() {
                return "no number".into();
            }
            let p = &list[i.index(list.len())];
            let node = doc.pointer_mut(p).unwrap();
            let old = node.as_f64().unwrap_or(0.0);
            *node = match n {
                Num::Plus(d) => match node.as_i64() {
                    Some(x) => Value::from(x.saturating_add(*d)),
                    None => Value::from(old + *d as f64),
                },
                Num::Times(f) => Value::from(old * f),
                Num::Set(x) => Value::from(*x),
                Num::SetInt(x) => Value::from(*x),
                Num::BeyondF64 => Value::from(BEYOND_F64),
            };
            format!("{p}: {old} -> {n:?}")
        }
        Edit::Truncate(i, k) => {
            let list = arrays(doc);
            if list.is_empty() {
                return "no array".into();
            }
            let p = &list[i.index(list.len())];
            let a = doc.pointer_mut(p).unwrap().as_array_mut().unwrap();
            let len = a.len();
            let new = k.index(len.max(1));
            a.truncate(new);
            format!("{p}: truncated from {len} to {new}")
        }
        Edit::Extend(i, k) => {
            let list = arrays(doc);
            if list.is_empty() {
                return "no array".into();
            }
            let p = &list[i.index(list.len())];
            let a = doc.pointer_mut(p).unwrap().as_array_mut().unwrap();
            let extra = a.last().cloned().unwrap_or(Value::from(0.0));
            for _ in 0..*k {
                a.push(extra.clone());
            }
            format!("{p}: extended by {k}")
        }
        Edit::Drop(i) => {
            let list = candidates(doc);
            let p = &list[i.index(list.len())];
            let (parent, key) = p.rsplit_once('/').unwrap();
            match doc.pointer_mut(parent).unwrap() {
                Value::Object(m) => {
                    m.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Value::Array(a) => {
                    a.remove(key.parse::<usize>().unwrap());
                }
                _ => unreachable!("a parent is a container"),
            }
            format!("{p}: dropped")
        }
        Edit::Swap(a, b) => {
            let list = candidates(doc);
            let (pa, pb) = (&list[a.index(list.len())], &list[b.index(list.len())]);
            if pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str()) {
                return format!("{pa} <-> {pb}: nested, skipped");
            }
            let va = doc.pointer(pa).unwrap().clone();
            let vb = std::mem::replace(doc.pointer_mut(pb).unwrap(), va);
            *doc.pointer_mut(pa).unwrap() = vb;
            format!("{pa} <-> {pb}")
        }
        Edit::Retype(i, t) => {
            let list = candidates(doc);
            let p = &list[i.index(list.len())];
            let new = match t {
                0 => Value::Null,
                1 => Value::from("x"),
                2 => Value::from(true),
                3 => Value::Array(Vec::new()),
                _ => Value::Object(serde_json::Map::new()),
            };
            *doc.pointer_mut(p).unwrap() = new;
            format!("{p}: -> {t}")
        }
    }
}

/// What a mutated file did.
enum Outcome {
    Ok,
    Err,
    Panic(String),
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Loads and uses one file; a panic is caught and described.
fn run_case(kind: Kind, text: &str, dir: &Path) -> Outcome {
    let result = catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<()> {
        match kind {
            Kind::Model => {
                let path = dir.join("model.json");
                std::fs::write(&path, text).unwrap();
                eval::<f32>(&path)?;
            }
            Kind::Checkpoint => {
                let path = dir.join(ff_train::checkpoint::CHECKPOINT_FILE);
                std::fs::write(&path, text).unwrap();
                // Evaluating an unsupervised checkpoint fails (it has no read-out yet) where
                // resuming it works: both must not panic, resuming must work.
                let _ = eval::<f32>(&path);
                resume::<f32>(dir, None, |_, _| {})?;
            }
        }
        Ok(())
    }));
    match result {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(_)) => Outcome::Err,
        Err(_) => Outcome::Panic(LAST_PANIC.lock().unwrap().take().unwrap_or_default()),
    }
}

#[test]
fn mutated_models_and_checkpoints_load_or_fail_but_never_panic() {
    let bases = bases();
    let dir = tmp("cases");
    // Every base file loads and works as it is.
    for b in bases {
        assert!(
            matches!(run_case(b.kind, &b.json.to_string(), &dir), Outcome::Ok),
            "the unmutated {} must load and run",
            b.name
        );
    }
    // Panics of this test are recorded (and reported at the end), those of others printed.
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> = Arc::from(std::panic::take_hook());
    let me = std::thread::current().id();
    let others = Arc::clone(&previous);
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            *LAST_PANIC.lock().unwrap() = Some(info.to_string());
        } else {
            others(info);
        }
    }));
    // A fixed seed: the same files on every run.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config { failure_persistence: None, ..Config::default() }, rng);
    let strategy = proptest::collection::vec(edit(), 1..=3);
    let (mut tried, mut ok, mut err) = (0usize, 0usize, 0usize);
    let mut panics: Vec<String> = Vec::new();
    for b in bases {
        for _ in 0..CASES_PER_BASE {
            let edits = strategy.new_tree(&mut runner).unwrap().current();
            let mut doc = b.json.clone();
            let done: Vec<String> = edits.iter().map(|e| apply(&mut doc, e)).collect();
            let text = doc.to_string().replace(&format!("\"{BEYOND_F64}\""), "1e400");
            tried += 1;
            match run_case(b.kind, &text, &dir) {
                Outcome::Ok => ok += 1,
                Outcome::Err => err += 1,
                Outcome::Panic(msg) => panics.push(format!("{}: {done:?}\n    {msg}", b.name)),
            }
        }
    }
    std::panic::set_hook(Box::new(move |info| previous(info)));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{tried} mutated files: {ok} loaded and ran, {err} refused with an error, {} panicked", panics.len());
    assert!(
        panics.is_empty(),
        "{} of {tried} mutated files panicked; the first ones:\n{}",
        panics.len(),
        panics.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
    // Neither side is empty, or the edits would not be testing anything.
    assert!(ok > 0 && err > 0, "{ok} loaded, {err} refused");
}

/// Loads `doc` edited by `edit` as a file of `kind` and returns the error message.
fn refusal(kind: Kind, doc: &Value, edit: impl FnOnce(&mut Value), name: &str) -> (String, PathBuf) {
    let dir = tmp(name);
    let mut doc = doc.clone();
    edit(&mut doc);
    let file = match kind {
        Kind::Model => "model.json",
        Kind::Checkpoint => ff_train::checkpoint::CHECKPOINT_FILE,
    };
    let path = dir.join(file);
    std::fs::write(&path, doc.to_string()).unwrap();
    let msg = format!("{:#}", eval::<f32>(&path).expect_err("the edited file must be refused"));
    if kind == Kind::Checkpoint {
        let Err(again) = resume::<f32>(&dir, None, |_, _| {}) else { panic!("resume must refuse it too") };
        let again = format!("{again:#}");
        assert_eq!(again, msg, "eval and resume say the same");
    }
    (msg, path)
}

#[test]
fn parts_that_do_not_fit_are_refused_naming_the_file_the_field_and_the_numbers() {
    let bases = bases();
    let (sup_model, sup_ck, unsup_model) = (&bases[0].json, &bases[1].json, &bases[2].json);
    assert_eq!((bases[0].kind, bases[1].kind, bases[2].kind), (Kind::Model, Kind::Checkpoint, Kind::Model));
    let params = |v: &mut Value, k: usize| v["state"]["layers"][k]["params"].as_array_mut().unwrap().pop();

    // A short `params`: the layer's sizes, the count it needs and the count it has.
    let (m, path) = refusal(Kind::Model, sup_model, |v| drop(params(v, 0)), "short-params");
    let want = format!("malformed model file {} at state.layers[0]: shape mismatch in layer params", path.display());
    assert!(m.starts_with(&want), "{m}");
    assert!(m.contains("expected 1800 values for a 224 -> 8 layer (W 8 x 224, then b 8), got 1799 values"), "{m}");

    // One changed digit of `d_out`.
    let (m, _) = refusal(Kind::Model, sup_model, |v| v["state"]["layers"][1]["d_out"] = 9.into(), "d-out");
    assert!(
        m.contains("at state.layers[1]") && m.contains("81 values for a 8 -> 9 layer") && m.contains("got 72"),
        "{m}"
    );

    // A short prototype; a short Adam `v`.
    let (m, _) = refusal(
        Kind::Model,
        sup_model,
        |v| drop(v["state"]["layers"][1]["prototype"].as_array_mut().unwrap().pop()),
        "prototype",
    );
    assert!(
        m.contains("at state.layers[1]") && m.contains("expected 8 values (one per output, d_out = 8), got 7"),
        "{m}"
    );
    let (m, path) = refusal(
        Kind::Checkpoint,
        sup_ck,
        |v| drop(v["model"]["state"]["optimizers"][0]["v"].as_array_mut().unwrap().pop()),
        "adam-v",
    );
    let want = format!(
        "malformed checkpoint {} at model.state.optimizers[0]: shape mismatch in Adam state m, v",
        path.display()
    );
    assert!(m.starts_with(&want) && m.contains("m (1800), got 1799 in v"), "{m}");

    // `m` and `v` both short: consistent with each other, not with the layer.
    let (m, _) = refusal(
        Kind::Checkpoint,
        sup_ck,
        |v| {
            for key in ["m", "v"] {
                v["model"]["state"]["optimizers"][1][key].as_array_mut().unwrap().pop();
            }
        },
        "adam-both",
    );
    assert!(
        m.contains("block 1: optimizers[1]")
            && m.contains("72 parameters of layers[1] (8 -> 8)")
            && m.contains("state for 71"),
        "{m}"
    );

    // A whole block that fits itself but not the configuration (hidden = 8).
    let (m, path) = refusal(
        Kind::Model,
        sup_model,
        |v| {
            let layer = &mut v["state"]["layers"][1];
            layer["d_out"] = 9.into();
            layer["params"].as_array_mut().unwrap().extend(std::iter::repeat_n(Value::from(0.0), 9));
            layer["prototype"].as_array_mut().unwrap().push(0.5.into());
            for key in ["m", "v"] {
                v["state"]["optimizers"][1][key]
                    .as_array_mut()
                    .unwrap()
                    .extend(std::iter::repeat_n(Value::from(0.0), 9));
            }
        },
        "hidden",
    );
    assert_eq!(
        m,
        format!(
            "model file {} does not fit together: state.layers[1].d_out is 9 but config.hidden is 8",
            path.display()
        )
    );

    // A weight that overflows f32: the field, the entry and the value, and the way out.
    let (m, _) = refusal(Kind::Model, sup_model, |v| v["state"]["layers"][0]["params"][5] = 1e39.into(), "f32");
    assert!(m.contains("at state.layers[0].params: entry 5: value 1e39 overflows f32"), "{m}");
    assert!(m.contains("rescale the values or use precision = \"f64\""), "{m}");

    // A read-out on more features than the blocks put out.
    let (m, _) = refusal(
        Kind::Model,
        unsup_model,
        |v| {
            let r = &mut v["readout"];
            r["linear"]["sizes"][0] = 17.into();
            r["linear"]["params"].as_array_mut().unwrap().extend(std::iter::repeat_n(Value::from(0.0), 10));
            r["mean"].as_array_mut().unwrap().push(0.0.into());
            r["sd"].as_array_mut().unwrap().push(1.0.into());
        },
        "readout",
    );
    assert!(
        m.ends_with("the read-out takes 17 features (readout.linear.sizes[0]) but the blocks put out 16 together"),
        "{m}"
    );

    // Progress that does not fit the run: more epochs done than configured (which made the
    // check of the learning-rate schedule under `--resume --epochs` loop over them), or evaluation counts above
    // the totals they are part of (which made the trainer's subtraction overflow).
    let (m, path) = refusal(Kind::Checkpoint, sup_ck, |v| v["progress"]["epochs_done"] = (1u64 << 60).into(), "epochs");
    assert_eq!(
        m,
        format!(
            "checkpoint {} does not fit together: progress.epochs_done is 1152921504606846976 but model.config.epochs is 3",
            path.display()
        )
    );
    let (m, _) =
        refusal(Kind::Checkpoint, sup_ck, |v| v["progress"]["eval_physical_queries"] = u64::MAX.into(), "eval-queries");
    assert!(
        m.contains("progress.eval_physical_queries (18446744073709551615) exceeds progress.counters.physical_queries"),
        "{m}"
    );
}
