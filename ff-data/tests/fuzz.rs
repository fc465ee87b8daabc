//! Fuzzing smoke run: every parser, fed arbitrary bytes and mutated valid files, returns `Ok` or
//! `Err` and never panics (nor aborts on a huge allocation). Plus round-trip and split
//! properties. Cases: 1 000 arbitrary byte strings (each also behind a valid gzip layer) and
//! 1 000 IDX-like headers, 400 mutated valid files of 8 kinds, 400 of each round-trip/split
//! property: about 33 000 parser runs, about 1 s with the test profile. For a longer run, raise
//! the `cases` below (the config is explicit, so `PROPTEST_CASES` does not override it).

use ff_core::Matrix;
use ff_data::{
    parse_digits, parse_idx_images, parse_idx_labels, parse_labelled_csv, parse_numeric_csv, parse_vowels,
    split_indices, CsvOptions, DataSpec, HeaderMode, LabelColumn, MissingPolicy, Normalisation, SpeakerGroup,
    VowelFormat, VowelOptions,
};
use flate2::{write::GzEncoder, Compression};
use proptest::prelude::*;
use std::io::Write;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend((0..n * rows * cols).map(|i| (i * 7 % 256) as u8));
    v
}

fn idx_labels(n: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1, 0, 0, 0, n];
    v.extend((0..n).map(|i| i % 10));
    v
}

const VOWDATA: &str = "(c) 1995 James Hillenbrand\r\n\r\ncol1:  filename\r\n\
  1    2   3    4    5    6    7    8    9   10    11  12   13    14  15   16\r\n\
w01ae 300 200  600 2300 2900 4000  610 2310 2910  620 2320 2920  630 2330 2930 \r\n\
w02ae 310 210  700 2200 3000 4100  710 2210 3010  720 2220 3020  730 2230 3030 \r\n\
w01iy 250 220  400 2800 3300 4200  410 2810 3310  420 2820 3320  430 2830 3330 \r\n\
w02iy 260 230  440 2700    0 4300  450 2710    0  460 2720    0  470 2730    0 \r\n";

const VOWEL_CSV: &str =
    "token,speaker,vowel,f1_steady,f2_steady,f3_steady,f1_20,f2_20,f3_20,f1_50,f2_50,f3_50,f1_80,f2_80,f3_80\r\n\
w01ae,w01,ae,678,2293,2861,681,2295,2868,711,2160,2867,705,1968,2906\r\n\
w01iy,w01,iy,441,2806,3260,446,2767,3193,441,2815,3260,439,2822,3264\r\n";

const LABELLED: &str = "a,b,label\n0.5,1,x\n2,3e2,y\n-1,4,x\n";

/// The first lines of the built-in digits, as plain text.
fn digits_text() -> String {
    let d = ff_data::digits::<f64>().unwrap();
    let mut s = String::new();
    for i in 0..20 {
        let px: Vec<String> = d.x.row(i).iter().map(|v| format!("{}", v * 16.0)).collect();
        s.push_str(&format!("{},{}\n", px.join(","), d.y[i]));
    }
    s
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn mutate(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for e in edits {
        let len = v.len();
        match *e {
            Edit::Flip(i, b) if len > 0 => v[i % len] ^= b | 1,
            Edit::Insert(i, b) => v.insert(i % (len + 1), b),
            Edit::Delete(i) if len > 0 => {
                v.remove(i % len);
            }
            Edit::Truncate(i) => v.truncate(i % (len + 1)),
            _ => {}
        }
    }
    v
}

/// Runs every parser on `bytes`; each must return (Ok or Err) without panicking.
fn all_parsers(bytes: &[u8]) {
    let _ = parse_idx_images::<f32>(bytes, "f", Normalisation::MNIST);
    let _ = parse_idx_labels(bytes, "f", 10);
    let _ = parse_digits::<f32>(bytes, "f");
    let _ = parse_numeric_csv::<f64>(bytes, "f");
    for label in [LabelColumn::Last, LabelColumn::Index(1), LabelColumn::Name("b".into())] {
        let _ = parse_labelled_csv::<f32>(
            bytes,
            "f",
            &CsvOptions { label, header: HeaderMode::Auto, ..CsvOptions::default() },
        );
    }
    for delimiter in [b';', b'\t'] {
        let _ = parse_labelled_csv::<f64>(bytes, "f", &CsvOptions { delimiter, ..CsvOptions::default() });
    }
    let text = String::from_utf8_lossy(bytes);
    let impute = VowelOptions {
        groups: SpeakerGroup::ALL.to_vec(),
        vowels: vec!["ae".into(), "iy".into()],
        missing: MissingPolicy::Impute,
    };
    for format in [VowelFormat::Csv, VowelFormat::Vowdata] {
        let _ = parse_vowels::<f32>(&text, "f", format, &VowelOptions::default());
        let _ = parse_vowels::<f64>(&text, "f", format, &impute);
    }
    let _ = text.parse::<DataSpec>();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&bytes);
        // The same behind a valid gzip layer.
        all_parsers(&gz(&bytes));
    }

    #[test]
    fn idx_like_headers_never_panic(
        magic in prop_oneof![Just([0u8, 0, 8, 3]), Just([0u8, 0, 8, 1]), any::<[u8; 4]>()],
        dims in proptest::collection::vec(any::<u32>(), 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut b = magic.to_vec();
        for d in dims {
            // Mostly small dimensions, sometimes huge ones.
            let d = if d % 4 == 0 { d } else { d % 6 };
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend(tail);
        let _ = parse_idx_images::<f32>(&b, "f", Normalisation::MNIST);
        let _ = parse_idx_labels(&b, "f", 10);
        let _ = parse_idx_images::<f64>(&gz(&b), "f", Normalisation::MNIST);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_files_never_panic(which in 0usize..8, edits in proptest::collection::vec(edit(), 1..6)) {
        let base: Vec<u8> = match which {
            0 => idx_images(3, 4, 5),
            1 => idx_labels(9),
            2 => gz(&idx_images(2, 3, 3)),
            3 => VOWDATA.as_bytes().to_vec(),
            4 => VOWEL_CSV.as_bytes().to_vec(),
            5 => LABELLED.as_bytes().to_vec(),
            6 => digits_text().into_bytes(),
            _ => gz(LABELLED.as_bytes()),
        };
        let bytes = mutate(&base, &edits);
        all_parsers(&bytes);
        if which <= 1 {
            // Mutated IDX content behind an intact gzip layer.
            all_parsers(&gz(&bytes));
        }
    }

    #[test]
    fn idx_round_trip(n in 1u32..5, rows in 1u32..6, cols in 1u32..6) {
        let b = idx_images(n, rows, cols);
        let im = parse_idx_images::<f64>(&b, "f", Normalisation::UNIT).unwrap();
        prop_assert_eq!((im.rows, im.cols, im.x.rows()), (rows as usize, cols as usize, n as usize));
        for (k, &v) in im.x.data().iter().enumerate() {
            prop_assert_eq!(v, f64::from(b[16 + k]) / 255.0);
        }
    }

    #[test]
    fn numeric_csv_round_trip(rows in 1usize..8, cols in 1usize..6, seed in any::<u64>()) {
        let mut r = ff_core::rng::rng_for(seed, "fuzz");
        let m: Matrix<f64> = Matrix::from_fn(rows, cols, |_, _| {
            use rand::Rng;
            r.random_range(-1e6..1e6)
        });
        let text: String = (0..rows)
            .map(|i| m.row(i).iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",") + "\n")
            .collect();
        prop_assert_eq!(parse_numeric_csv::<f64>(text.as_bytes(), "f").unwrap(), m);
    }

    #[test]
    fn splits_partition_and_stratify(
        labels in proptest::collection::vec(0usize..4, 2..200),
        frac in 0.05f64..0.95,
        seed in any::<u64>(),
        stratified in any::<bool>(),
    ) {
        let n = labels.len();
        let Ok((train, test)) = split_indices(&labels, 4, frac, seed, stratified) else {
            // Only a split that would leave one side empty may fail.
            let n_test = (frac * n as f64).ceil() as usize;
            prop_assert!(n_test == 0 || n_test >= n);
            return Ok(());
        };
        prop_assert_eq!(test.len(), (frac * n as f64).ceil() as usize);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        if stratified {
            for c in 0..4 {
                let total = labels.iter().filter(|&&l| l == c).count();
                let in_test = test.iter().filter(|&&i| labels[i] == c).count();
                let ideal = test.len() as f64 * total as f64 / n as f64;
                prop_assert!((in_test as f64 - ideal).abs() < 1.0 + 1e-9,
                    "class {} has {} test samples, ideal {}", c, in_test, ideal);
            }
        }
        prop_assert_eq!(split_indices(&labels, 4, frac, seed, stratified).unwrap(), (train, test));
    }
}
