//! The vowel loaders on the shared data files (`<repo>/../shared/data/vowels/`). Each test is
//! skipped, with a note, when the shared folder is not beside the repository.

use ff_data::{
    load, load_vowels, read_vowels, DataSpec, Layout, MissingPolicy, SpeakerGroup, VowelOptions, VowelPreprocessing,
    PAPER_VOWELS, VOWEL_CODES,
};
use std::path::{Path, PathBuf};

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/vowels/hillenbrand-women-7.csv");
const VOWDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/vowels/vowdata.dat");

/// The path if the shared file exists, else `None` after printing why the test is skipped.
fn shared(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.exists() {
        Some(p.to_path_buf())
    } else {
        eprintln!("note: skipping, shared data file {path} is absent");
        None
    }
}

#[test]
fn csv_has_258_women_tokens_of_7_vowels() {
    let Some(path) = shared(CSV) else { return };
    let d = read_vowels::<f64>(&path, &VowelOptions::default()).unwrap();
    assert_eq!(d.len(), 258);
    assert_eq!(d.dim(), 12);
    assert_eq!(d.class_names, PAPER_VOWELS);
    assert_eq!(d.class_counts(), [37, 37, 37, 37, 37, 37, 36]);
    // First data line: w01ae,w01,ae,678,2293,2861,681,2295,2868,711,2160,2867,705,1968,2906
    assert_eq!(
        d.x.row(0),
        &[678.0, 2293.0, 2861.0, 681.0, 2295.0, 2868.0, 711.0, 2160.0, 2867.0, 705.0, 1968.0, 2906.0]
    );
}

#[test]
fn vowdata_women_7_contains_every_csv_token() {
    let (Some(csv), Some(dat)) = (shared(CSV), shared(VOWDATA)) else {
        return;
    };
    let from_csv = read_vowels::<f64>(&csv, &VowelOptions::default()).unwrap();
    let dropped = read_vowels::<f64>(&dat, &VowelOptions::default()).unwrap();
    let imputed =
        read_vowels::<f64>(&dat, &VowelOptions { missing: MissingPolicy::Impute, ..VowelOptions::default() }).unwrap();
    // 48 women x 7 vowels; 20 tokens have an unmeasurable formant.
    assert_eq!(imputed.len(), 336);
    assert_eq!(dropped.len(), 316);
    let rows = |d: &ff_data::Dataset<f64>| -> Vec<(usize, Vec<u64>)> {
        (0..d.len()).map(|i| (d.y[i], d.x.row(i).iter().map(|v| v.to_bits()).collect())).collect()
    };
    let dat_rows = rows(&dropped);
    for (i, r) in rows(&from_csv).iter().enumerate() {
        assert!(dat_rows.contains(r), "CSV token {i} not found in vowdata.dat");
    }
}

#[test]
fn vowdata_all_groups_and_vowels() {
    let Some(dat) = shared(VOWDATA) else { return };
    let opts = VowelOptions {
        groups: SpeakerGroup::ALL.to_vec(),
        vowels: VOWEL_CODES.iter().map(|s| s.to_string()).collect(),
        missing: MissingPolicy::Impute,
    };
    let d = read_vowels::<f32>(&dat, &opts).unwrap();
    assert_eq!(d.len(), 1668);
    assert_eq!(d.num_classes, 12);
    let men = VowelOptions { groups: vec![SpeakerGroup::Men], ..opts };
    assert_eq!(read_vowels::<f32>(&dat, &men).unwrap().len(), 45 * 12);
}

#[test]
fn paper_preprocessing_gives_206_52_vectors_of_20() {
    let Some(path) = shared(CSV) else { return };
    let tt = load_vowels::<f32>(&path, &VowelOptions::default(), VowelPreprocessing::Paper, 1).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (206, 52));
    for part in [&tt.train, &tt.test] {
        assert_eq!(part.dim(), 20);
        assert_eq!(part.layout, Layout::Vector { reserved_leading: 8 });
        for i in 0..part.len() {
            assert!(part.x.row(i)[..8].iter().all(|&v| v == 0.0));
            assert!(part.x.row(i)[8..].iter().all(|&v| v >= 0.0));
        }
    }
    // Each feature, over train and test together, has population std 1 after the z-score.
    for j in 8..20 {
        let col: Vec<f64> =
            [&tt.train, &tt.test].iter().flat_map(|p| (0..p.len()).map(move |i| f64::from(p.x.row(i)[j]))).collect();
        let m = col.iter().sum::<f64>() / col.len() as f64;
        let s = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        assert!((s - 1.0).abs() < 1e-5, "feature {j}: std {s}");
    }
    let raw = load_vowels::<f32>(&path, &VowelOptions::default(), VowelPreprocessing::Raw, 1).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (206, 52));
    assert_eq!(raw.train.dim(), 12);
}

#[test]
fn data_spec_loads_both_formats_with_the_paper_preprocessing() {
    let (Some(csv), Some(dat)) = (shared(CSV), shared(VOWDATA)) else {
        return;
    };
    let spec: DataSpec = format!("vowels:{}", csv.display()).parse().unwrap();
    let tt = load::<f32>(&spec, 7).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (206, 52));
    assert_eq!(tt, load::<f32>(&spec, 7).unwrap());
    let spec: DataSpec = format!("vowels:{}", dat.display()).parse().unwrap();
    let tt = load::<f32>(&spec, 7).unwrap();
    // 316 tokens: floor(0.8 * 316) = 252 train.
    assert_eq!((tt.train.len(), tt.test.len()), (252, 64));
    assert_eq!(tt.train.dim(), 20);
}

#[test]
fn missing_vowel_file_says_where_the_data_is() {
    let e = load::<f32>(&DataSpec::Vowels("/nonexistent/v.csv".into()), 0).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/v.csv") && msg.contains("shared/data/vowels"), "{msg}");
}
