//! Unit tests of the vowel parsers, selection and preprocessing on in-memory fixtures.

use super::*;

/// A miniature `vowdata.dat`: header block, CRLF line ends, 2 women x 2 vowels, a man, a girl,
/// and a woman's token with an unmeasurable F3.
const VOWDATA: &str = "(c) 1995 James Hillenbrand\r\n\r\ncol1:  filename\r\n\
  1    2   3    4    5    6    7    8    9   10    11  12   13    14  15   16\r\n\
w01ae 300 200  600 2300 2900 4000  610 2310 2910  620 2320 2920  630 2330 2930 \r\n\
w02ae 310 210  700 2200 3000 4100  710 2210 3010  720 2220 3020  730 2230 3030 \r\n\
w01iy 250 220  400 2800 3300 4200  410 2810 3310  420 2820 3320  430 2830 3330 \r\n\
w02iy 260 230  440 2700    0 4300  450 2710    0  460 2720    0  470 2730    0 \r\n\
w03iy 270 240  420 2900 3400 4400  430 2910 3410  440 2920 3420  450 2930 3430 \r\n\
m01ae 280 120  550 1800 2500 3500  560 1810 2510  570 1820 2520  580 1830 2530 \r\n\
g01iy 240 250  450 3000 3500 4500  460 3010 3510  470 3020 3520  480 3030 3530 \r\n";

fn opts(vowels: &[&str], groups: &[SpeakerGroup], missing: MissingPolicy) -> VowelOptions {
    VowelOptions { groups: groups.to_vec(), vowels: vowels.iter().map(|s| s.to_string()).collect(), missing }
}

fn women(vowels: &[&str], missing: MissingPolicy) -> VowelOptions {
    opts(vowels, &[SpeakerGroup::Women], missing)
}

fn parse(text: &str, o: &VowelOptions) -> Result<Dataset<f64>, DataError> {
    parse_vowels(text, "v.dat", VowelFormat::Vowdata, o)
}

#[test]
fn vowdata_selects_groups_and_vowels_in_file_order() {
    let d = parse(VOWDATA, &women(&["ae", "iy"], MissingPolicy::Drop)).unwrap();
    assert_eq!(d.len(), 4); // w02iy dropped
    assert_eq!(d.y, [0, 0, 1, 1]);
    assert_eq!(d.class_names, ["ae", "iy"]);
    assert_eq!(
        d.x.row(0),
        &[600.0, 2300.0, 2900.0, 610.0, 2310.0, 2910.0, 620.0, 2320.0, 2920.0, 630.0, 2330.0, 2930.0]
    );
    // Class order follows the options, not the file.
    let d = parse(VOWDATA, &women(&["iy", "ae"], MissingPolicy::Drop)).unwrap();
    assert_eq!(d.y, [1, 1, 0, 0]);
    let all = opts(&["ae", "iy"], &SpeakerGroup::ALL, MissingPolicy::Drop);
    assert_eq!(parse(VOWDATA, &all).unwrap().len(), 6);
    let men = opts(&["ae"], &[SpeakerGroup::Men], MissingPolicy::Drop);
    assert_eq!(parse(VOWDATA, &men).unwrap().x.row(0)[0], 550.0);
}

#[test]
fn impute_replaces_zeros_by_the_class_mean() {
    let d = parse(VOWDATA, &women(&["ae", "iy"], MissingPolicy::Impute)).unwrap();
    assert_eq!(d.len(), 5);
    let w02iy = d.x.row(3);
    assert_eq!(w02iy[0], 440.0);
    // F3 steady of the measured women's iy: 3300 and 3400.
    assert_eq!(w02iy[2], 3350.0);
    assert_eq!(w02iy[5], 3360.0);
    assert!(d.x.data().iter().all(|&v| v > 0.0));
}

#[test]
fn impute_fails_when_a_class_never_has_the_feature() {
    let text = VOWDATA.replace("w03iy 270 240  420 2900 3400", "w03iy 270 240  420 2900    0");
    let text = text.replace("w01iy 250 220  400 2800 3300", "w01iy 250 220  400 2800    0");
    let e = parse(&text, &women(&["iy"], MissingPolicy::Impute)).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("f3_steady"), "{e}");
}

/// Replaces `old` by `new` in the fixture and returns the error message.
fn broken(old: &str, new: &str) -> String {
    assert!(VOWDATA.contains(old), "fixture lacks {old:?}");
    parse(&VOWDATA.replacen(old, new, 1), &VowelOptions::default()).unwrap_err().to_string()
}

#[test]
fn unknown_vowel_code_names_file_and_line() {
    let e = broken("w02ae 310", "w02zz 310");
    assert!(e.starts_with("v.dat:6: unknown vowel code \"zz\""), "{e}");
}

#[test]
fn wrong_field_count_names_file_and_line() {
    let e = broken("4100  710", "4100");
    assert!(e.starts_with("v.dat:6: token w02ae: expected 16"), "{e}");
    assert!(e.contains("found 15"), "{e}");
}

#[test]
fn bad_numbers_are_errors() {
    let e = broken("w01iy 250 220  400", "w01iy 250 220  4o0");
    assert!(e.starts_with("v.dat:7: token w01iy, column 4 (F1 steady): \"4o0\" is not a number"), "{e}");
    assert!(broken("w01iy 250 220  400", "w01iy 250 220  NaN").contains("only finite"));
    assert!(broken("w01iy 250 220  400", "w01iy 250 220  inf").contains("only finite"));
    assert!(broken("w01iy 250 220  400", "w01iy 250 220  -40").contains("negative value -40"));
    // An unused column is checked too.
    assert!(broken("w01iy 250 220", "w01iy xyz 220").contains("(duration)"));
}

#[test]
fn garbage_after_the_data_starts_is_an_error() {
    let e = broken("m01ae 280", "x01ae 280");
    assert!(e.starts_with("v.dat:10: expected a token line"), "{e}");
}

#[test]
fn empty_class_and_empty_file_are_errors() {
    let e = parse(VOWDATA, &women(&["ae", "uw"], MissingPolicy::Drop)).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }));
    assert!(e.to_string().contains("vowel class \"uw\" has no tokens"), "{e}");
    let e = parse("just a header\n", &VowelOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e}");
}

#[test]
fn bad_options_are_rejected() {
    for o in [
        women(&["ae", "zz"], MissingPolicy::Drop),
        women(&["ae", "ae"], MissingPolicy::Drop),
        women(&[], MissingPolicy::Drop),
        opts(&["ae"], &[], MissingPolicy::Drop),
    ] {
        assert!(matches!(parse(VOWDATA, &o), Err(DataError::Invalid { .. })), "{o:?}");
    }
}

const CSV: &str =
    "token,speaker,vowel,f1_steady,f2_steady,f3_steady,f1_20,f2_20,f3_20,f1_50,f2_50,f3_50,f1_80,f2_80,f3_80\r\n\
w01ae,w01,ae,678,2293,2861,681,2295,2868,711,2160,2867,705,1968,2906\r\n\
w01iy,w01,iy,441,2806,3260,446,2767,3193,441,2815,3260,439,2822,3264\r\n";

fn parse_csv(text: &str) -> Result<Dataset<f32>, DataError> {
    parse_vowels(text, "v.csv", VowelFormat::Csv, &women(&["ae", "iy"], MissingPolicy::Drop))
}

#[test]
fn csv_reads_columns_by_name() {
    let d = parse_csv(CSV).unwrap();
    assert_eq!(d.y, [0, 1]);
    assert_eq!(d.x.row(1)[0], 441.0);
    assert_eq!(d.x.row(1)[11], 3264.0);
    // Columns in another order, an extra column, no token column.
    let text =
        "vowel,extra,speaker,f3_80,f2_80,f1_80,f3_50,f2_50,f1_50,f3_20,f2_20,f1_20,F3_STEADY,f2_steady,f1_steady\n\
                iy,x,w07,1,2,3,4,5,6,7,8,9,10,11,12\nae,y,w07,1,2,3,4,5,6,7,8,9,10,11,12\n";
    let d = parse_csv(text).unwrap();
    assert_eq!(d.y, [1, 0]);
    assert_eq!(d.x.row(0)[0], 12.0);
    assert_eq!(d.x.row(0)[11], 1.0);
}

#[test]
fn csv_errors_name_file_and_line() {
    let e = parse_csv(&CSV.replace("w01,iy", "w01,zz")).unwrap_err().to_string();
    assert!(e.starts_with("v.csv:3: unknown vowel code \"zz\""), "{e}");
    let e = parse_csv(&CSV.replace(",3264", "")).unwrap_err().to_string();
    assert!(e.starts_with("v.csv:3: expected 15 comma-separated cells"), "{e}");
    let e = parse_csv(&CSV.replace("2806", "abc")).unwrap_err().to_string();
    assert_eq!(e, "v.csv:3: column \"f2_steady\": \"abc\" is not a number");
    let e = parse_csv(&CSV.replace("2806", "inf")).unwrap_err().to_string();
    assert!(e.contains("only finite"), "{e}");
    let e = parse_csv(&CSV.replace("f2_20", "f2_21")).unwrap_err().to_string();
    assert!(e.starts_with("v.csv:1: header has no \"f2_20\" column"), "{e}");
    let e = parse_csv(&CSV.replace("w01,iy", "x01,iy")).unwrap_err().to_string();
    assert!(e.contains("speaker group letter"), "{e}");
    assert!(matches!(parse_csv(""), Err(DataError::Empty { .. })));
    assert!(matches!(parse_csv(CSV.lines().next().unwrap()), Err(DataError::Empty { .. })));
}

#[test]
fn format_detection() {
    assert_eq!(VowelFormat::detect(None, CSV), VowelFormat::Csv);
    assert_eq!(VowelFormat::detect(None, VOWDATA), VowelFormat::Vowdata);
    assert_eq!(VowelFormat::detect(Some(Path::new("a.CSV")), VOWDATA), VowelFormat::Csv);
    assert_eq!(VowelFormat::detect(Some(Path::new("a.dat")), CSV), VowelFormat::Vowdata);
    assert_eq!(VowelFormat::detect(Some(Path::new("noext")), CSV), VowelFormat::Csv);
}

#[test]
fn paper_preprocessing_matches_the_public_code() {
    // 10 tokens of 2 features: z-score by population std, shift by the global min.
    let x = Matrix::from_fn(10, 2, |r, c| if c == 0 { r as f64 } else { (r * r) as f64 });
    let data = Dataset {
        name: "t".into(),
        x: x.clone(),
        y: (0..10).map(|i| i % 2).collect(),
        num_classes: 2,
        class_names: vec!["a".into(), "b".into()],
        layout: Layout::Vector { reserved_leading: 0 },
    };
    let tt = paper_preprocess(&data, 3).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (8, 2));
    assert_eq!(tt.train.dim(), 10);
    assert_eq!(tt.train.layout, Layout::Vector { reserved_leading: 8 });
    // Expected values, computed independently: feature 0 is 0..9 (mean 4.5, std sqrt(8.25)).
    let std0 = 8.25f64.sqrt();
    let sq: Vec<f64> = (0..10).map(|r| (r * r) as f64).collect();
    let m1 = sq.iter().sum::<f64>() / 10.0;
    let std1 = (sq.iter().map(|v| (v - m1).powi(2)).sum::<f64>() / 10.0).sqrt();
    let min = f64::min(-4.5 / std0, -m1 / std1);
    for part in [&tt.train, &tt.test] {
        for i in 0..part.len() {
            let row = part.x.row(i);
            assert!(row[..8].iter().all(|&v| v == 0.0));
            // Recover the original token from feature 0 and check both features and label.
            let r = ((row[8] + min) * std0 + 4.5).round() as usize;
            assert!((row[8] - ((r as f64 - 4.5) / std0 - min)).abs() < 1e-12);
            assert!((row[9] - (((r * r) as f64 - m1) / std1 - min)).abs() < 1e-12);
            assert_eq!(part.y[i], r % 2);
        }
    }
    let all: Vec<f64> = tt.train.x.data().iter().chain(tt.test.x.data()).copied().collect();
    assert_eq!(all.iter().copied().fold(f64::INFINITY, f64::min), 0.0);
    assert_eq!(tt, paper_preprocess(&data, 3).unwrap());
    assert_ne!(tt.train.y, paper_preprocess(&data, 4).unwrap().train.y);
}

#[test]
fn paper_preprocessing_rejects_constant_features_and_tiny_sets() {
    let mut data = Dataset {
        name: "t".into(),
        x: Matrix::from_fn(4, 2, |r, c| if c == 0 { r as f64 } else { 1.0 }),
        y: vec![0, 1, 0, 1],
        num_classes: 2,
        class_names: vec!["a".into(), "b".into()],
        layout: Layout::Vector { reserved_leading: 0 },
    };
    assert!(matches!(paper_preprocess(&data, 0), Err(DataError::Invalid { .. })));
    data.x = Matrix::from_fn(1, 2, |_, c| c as f64);
    data.y = vec![0];
    assert!(matches!(paper_preprocess(&data, 0), Err(DataError::Invalid { .. })));
}
