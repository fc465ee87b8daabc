//! The vowel loaders on the data the repository ships (`ff-data/data/vowels/`) and on a
//! `vowdata.dat`-format file that the tests write themselves from it (the authors' full file is
//! not redistributed). A missing data file fails the test: nothing is skipped.

use ff_data::{
    builtin_vowels, load, load_vowels, read_vowels, DataSpec, Layout, MissingPolicy, SpeakerGroup, VowelOptions,
    VowelPreprocessing, PAPER_VOWELS,
};
use std::path::{Path, PathBuf};

/// The shipped CSV (the same bytes that `builtin_vowels` compiles in).
const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/vowels/hillenbrand-women-7.csv");

fn csv() -> PathBuf {
    let p = Path::new(CSV);
    assert!(p.is_file(), "the shipped vowel file {CSV} is missing from the repository");
    p.to_path_buf()
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phyff-vowels-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the shipped CSV's tokens in the authors' `vowdata.dat` layout (file name, duration,
/// F0, F1-F4 steady, then F1-F3 at 20/50/80 %), plus one man's token and one woman's token with
/// an unmeasurable formant (0), so the file exercises group selection and the missing policy.
fn write_vowdata(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(csv()).unwrap();
    let mut out =
        String::from("(c) test fixture in the layout of Hillenbrand et al. (1995)\r\n\r\nFilenames: ...\r\n\r\n");
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        // token, speaker, vowel, f1..f3 steady, f1..f3 at 20, 50, 80 %.
        out.push_str(&format!(
            "{} 250 200 {} {} {} 4000 {} {} {} {} {} {} {} {} {} \r\n",
            c[0], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14]
        ));
    }
    out.push_str("m01ae 280 120  550 1800 2500 3500  560 1810 2510  570 1820 2520  580 1830 2530 \r\n");
    out.push_str("w99iy 260 230  440 2700    0 4300  450 2710    0  460 2720    0  470 2730    0 \r\n");
    let path = dir.join("vowdata.dat");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn the_shipped_csv_has_258_women_tokens_of_7_vowels_and_is_the_built_in_set() {
    let d = read_vowels::<f64>(&csv(), &VowelOptions::default()).unwrap();
    assert_eq!((d.len(), d.dim()), (258, 12));
    assert_eq!(d.class_names, PAPER_VOWELS);
    assert_eq!(d.class_counts(), [37, 37, 37, 37, 37, 37, 36]);
    // First data line: w01ae,w01,ae,678,2293,2861,681,2295,2868,711,2160,2867,705,1968,2906
    assert_eq!(
        d.x.row(0),
        &[678.0, 2293.0, 2861.0, 681.0, 2295.0, 2868.0, 711.0, 2160.0, 2867.0, 705.0, 1968.0, 2906.0]
    );
    let built_in = builtin_vowels::<f64>(&VowelOptions::default()).unwrap();
    assert_eq!((built_in.x.data(), &built_in.y), (d.x.data(), &d.y));
}

#[test]
fn a_vowdata_file_gives_the_same_tokens_as_the_csv() {
    let dir = scratch("dat");
    let dat = write_vowdata(&dir);
    let from_csv = read_vowels::<f64>(&csv(), &VowelOptions::default()).unwrap();
    let dropped = read_vowels::<f64>(&dat, &VowelOptions::default()).unwrap();
    assert_eq!((dropped.x.data(), &dropped.y), (from_csv.x.data(), &from_csv.y), "the extra w99iy has a 0");
    let imputed =
        read_vowels::<f64>(&dat, &VowelOptions { missing: MissingPolicy::Impute, ..VowelOptions::default() }).unwrap();
    assert_eq!(imputed.len(), 259);
    let men = VowelOptions { groups: vec![SpeakerGroup::Men], vowels: vec!["ae".into()], ..VowelOptions::default() };
    let m = read_vowels::<f32>(&dat, &men).unwrap();
    assert_eq!((m.len(), m.x.row(0)[0]), (1, 550.0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn paper_preprocessing_gives_206_52_vectors_of_20() {
    let tt = load_vowels::<f32>(&csv(), &VowelOptions::default(), VowelPreprocessing::Paper, 1).unwrap();
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
    let raw = load_vowels::<f32>(&csv(), &VowelOptions::default(), VowelPreprocessing::Raw, 1).unwrap();
    assert_eq!((raw.train.len(), raw.test.len(), raw.train.dim()), (206, 52, 12));
}

#[test]
fn data_specs_load_the_built_in_set_a_csv_and_a_vowdata_file_alike() {
    let built_in = load::<f32>(&"vowels".parse::<DataSpec>().unwrap(), 7).unwrap();
    let spec: DataSpec = format!("vowels:{}", csv().display()).parse().unwrap();
    let from_file = load::<f32>(&spec, 7).unwrap();
    assert_eq!((from_file.train.len(), from_file.test.len()), (206, 52));
    assert_eq!(built_in, from_file, "same tokens, same seed: same split");
    let dir = scratch("spec");
    let spec: DataSpec = format!("vowels:{}", write_vowdata(&dir).display()).parse().unwrap();
    assert_eq!(load::<f32>(&spec, 7).unwrap(), from_file, "format detected from the content");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_vowel_file_names_the_path_and_the_built_in_alternative() {
    let e = load::<f32>(&DataSpec::Vowels("/nonexistent/v.csv".into()), 0).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/v.csv") && msg.contains("`vowels` (no path)"), "{msg}");
}
