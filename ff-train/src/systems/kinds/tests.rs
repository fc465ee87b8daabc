use super::*;
use crate::memory::{estimate, DataShape};
use crate::sweep::time_estimate;

/// Every variant has a row whose entry is its own, and whose name is the one serde (TOML
/// files, `result.json`) and clap (`--system`) read and write.
#[test]
fn every_kind_has_an_entry_whose_name_round_trips() {
    let mut names = Vec::new();
    for kind in SystemKind::ALL {
        let spec = kind.spec();
        assert_eq!(spec.kind(), kind, "the row of {kind:?} holds another kind's entry");
        let name = spec.name();
        assert_eq!(kind.name(), name);
        let cfg = ExperimentConfig::from_toml(&format!("system = \"{name}\"\n")).unwrap();
        assert_eq!(cfg.system, kind, "{name}");
        let written = ExperimentConfig { system: kind, ..ExperimentConfig::default() }.to_toml();
        assert!(written.contains(&format!("system = \"{name}\"\n")), "{name}: {written}");
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<SystemKind>(&format!("\"{name}\"")).unwrap(), kind);
        #[cfg(feature = "cli")]
        {
            use clap::ValueEnum;
            assert_eq!(SystemKind::from_str(name, false).unwrap(), kind, "{name}");
            assert_eq!(kind.to_possible_value().unwrap().get_name(), name);
        }
        assert!(!names.contains(&name), "{name} twice");
        names.push(name);
    }
    // Every variant is in `ALL` (clap lists the variants of the enum itself).
    #[cfg(feature = "cli")]
    assert_eq!(<SystemKind as clap::ValueEnum>::value_variants(), SystemKind::ALL.as_slice());
}

/// The default system of each data shape is one kind: optics for images, the microwave cavity
/// for vectors.
#[test]
fn one_default_system_per_sample_shape() {
    for shape in [SampleShape::Image, SampleShape::Vector] {
        let claimed: Vec<_> = SystemKind::ALL.into_iter().filter(|k| k.spec().default_for() == Some(shape)).collect();
        assert_eq!(claimed.len(), 1, "{shape:?}: {claimed:?}");
    }
    use crate::config::default_system_for;
    for (data, kind) in [
        ("digits", SystemKind::Optics),
        ("mnist", SystemKind::Optics),
        ("fashion:/data/f", SystemKind::Optics),
        ("vowels", SystemKind::Microwave),
        ("vowels:v.csv", SystemKind::Microwave),
        ("csv:t.csv#label=y", SystemKind::Microwave),
        ("no such data", SystemKind::Optics),
    ] {
        assert_eq!(default_system_for(data), kind, "{data}");
    }
}

/// The defaults and flags each kind had before the table held them.
#[test]
fn skips_physicality_drift_and_adjoints() {
    use SystemKind::*;
    for (kind, skip, physical, drift, exact) in [
        (Optics, false, true, true, true),
        (Microwave, true, true, true, false),
        (Acoustic, true, true, true, false),
        (Freespace, false, true, false, false),
        (Fiber, true, true, false, false),
        (Device, false, true, false, false),
        (Emulator, true, true, false, false),
        (Digital, false, false, false, false),
    ] {
        let s = kind.spec();
        assert_eq!(
            (s.default_skip(), s.is_physical(), s.has_drift_model(), s.has_exact_adjoint()),
            (skip, physical, drift, exact),
            "{kind:?}"
        );
        assert_eq!(ExperimentConfig { system: kind, ..ExperimentConfig::default() }.skip(), skip);
    }
    assert_eq!(names_where(|s| s.has_drift_model()), "optics, microwave or acoustic");
    assert_eq!(names_where(|s| s.has_exact_adjoint()), "optics");
    assert_eq!(names_where(|_| false), "");
}

/// A kind builds a drifting or an exact model exactly when its entry says it has one.
#[test]
fn drift_models_and_adjoints_are_built_where_declared() {
    let shape = (28, 8); // the labelled 8x8 digits, bands of 10 rows above and below
    for kind in SystemKind::ALL {
        let cfg = ExperimentConfig { system: kind, hidden: 16, ..ExperimentConfig::default() };
        let spec = kind.spec();
        let builder = kind.builder::<f32>();
        match builder.build_perturbable(&cfg, 0, shape) {
            Some(system) => {
                assert!(spec.has_drift_model(), "{kind:?}");
                assert_eq!(system.unwrap().input_len(), 224, "{kind:?}");
            }
            None => assert!(!spec.has_drift_model(), "{kind:?}"),
        }
        match builder.build_exact(&cfg, 0, shape) {
            Some(model) => {
                assert!(spec.has_exact_adjoint(), "{kind:?}");
                let m = model.unwrap();
                assert_eq!(m.system.input_len(), 224, "{kind:?}");
                assert!(m.vjp_flops > 0, "{kind:?}");
            }
            None => assert!(!spec.has_exact_adjoint(), "{kind:?}"),
        }
    }
}

/// What the `match`es the table replaced computed for a kind's default configuration (main at
/// da7d2fd).
#[derive(Clone, Copy)]
struct Before {
    kind: SystemKind,
    /// Memory estimates, bytes: on the built-in digits, on `vowels` (a file: its shape is not
    /// known before loading), on a loaded vector data set (20 values, 1000 + 300 samples).
    memory: [u64; 3],
    /// The system's own parts of the digits estimate, largest first.
    parts: &'static [(&'static str, u64)],
    /// FLOPs of one query.
    query_flops: f64,
    /// Time estimates, seconds: digits, `vowels`.
    time: [u64; 2],
}

/// The memory estimates, FLOPs per query and time estimates of each kind's default
/// configuration are those of the code before the table.
#[test]
fn estimates_and_flops_of_the_default_configurations_are_unchanged() {
    use SystemKind::*;
    let b = |kind, memory, parts, query_flops, time| Before { kind, memory, parts, query_flops, time };
    let optics_parts = &[("optical fields of a batch", 62_357_504), ("optical transmission matrices", 6_181_128)];
    let expected = [
        b(Optics, [112_524_808, 108_394_760, 108_826_440], optics_parts, 1_224_373.528311147, [2093, 191_761]),
        b(
            Microwave,
            [39_785_984, 31_068_416, 31_909_696],
            &[("microwave cavities", 3_369_216)],
            256_000.0,
            [3097, 352_523],
        ),
        b(Acoustic, [36_877_824, 28_160_256, 29_001_536], &[("acoustic cavities", 461_056)], 5760.0, [3007, 349_020]),
        b(
            Freespace,
            [62_598_400, 58_468_352, 58_900_032],
            &[("free-space propagators and fields", 18_612_224)],
            6_881_280.0,
            [4126, 270_958],
        ),
        b(Fiber, [38_513_920, 29_796_352, 30_637_632], &[("fibre grids", 2_097_152)], 6_553_600.0, [5361, 440_689]),
        b(Device, [25_111_808, 20_981_760, 21_413_440], &[], 5e6, [3450, 244_620]),
        b(Emulator, [51_582_208, 42_864_640, 43_705_920], &[("emulator fit", 16_640_000)], 80_000.0, [3178, 350_203]),
        b(Digital, [42_806_528, 30_418_944, 31_587_904], &[], 0.0, [980, 87_948]),
    ];
    assert_eq!(expected.map(|e| e.kind), SystemKind::ALL);
    let generic = ["block weights, gradients and Adam state", "activations of a mini-batch", "data"];
    for Before { kind, memory, parts, query_flops, time } in expected {
        let digits = ExperimentConfig { system: kind, ..ExperimentConfig::default() };
        let vowels = ExperimentConfig { data: "vowels".into(), ..digits.clone() };
        let loaded = DataShape { raw_len: 20, image: None, train: 1000, test: 300 };
        let e = estimate(&digits, &DataShape::guess(&digits)).unwrap();
        let got = [
            e.total,
            estimate(&vowels, &DataShape::guess(&vowels)).unwrap().total,
            estimate(&vowels, &loaded).unwrap().total,
        ];
        assert_eq!(got, memory, "{kind:?}: memory");
        let own: Vec<(&str, u64)> =
            e.parts.iter().filter(|p| !generic.contains(&p.what)).map(|p| (p.what, p.bytes)).collect();
        assert_eq!(own, parts, "{kind:?}: the system's parts");
        assert_eq!(kind.spec().query_flops(&digits).to_bits(), query_flops.to_bits(), "{kind:?}: FLOPs per query");
        assert_eq!([time_estimate(&digits), time_estimate(&vowels)], time, "{kind:?}: time estimate");
    }
}

/// `phyff config` names every kind in the docs of `system`, and each under its default in the
/// docs of `skip` (false before "true for", true after).
#[test]
fn the_configuration_docs_name_every_kind() {
    let doc = |path: &str| crate::config_doc::KEY_DOCS.iter().find(|k| k.path == path).unwrap().doc;
    let (no_skip, skip) = doc("skip").split_once("true for").unwrap();
    for kind in SystemKind::ALL {
        let name = kind.name();
        assert!(doc("system").contains(&format!("\"{name}\"")), "{name}");
        let listed = if kind.spec().default_skip() { skip } else { no_skip };
        assert!(listed.contains(name), "skip docs: {name}");
    }
}
