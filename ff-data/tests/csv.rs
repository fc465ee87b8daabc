//! Generic labelled CSV files and measured input/output pairs.

use ff_data::{
    load, parse_labelled_csv, parse_numeric_csv, read_labelled_csv, read_pairs, read_pairs_checked, CsvOptions,
    DataError, DataSpec, HeaderMode, LabelColumn, Layout,
};
use std::path::{Path, PathBuf};

fn parse(text: &str, label: LabelColumn, header: HeaderMode) -> Result<ff_data::Dataset<f64>, DataError> {
    parse_labelled_csv(text.as_bytes(), "t.csv", &CsvOptions { label, header, ..CsvOptions::default() })
}

fn auto(text: &str) -> Result<ff_data::Dataset<f64>, DataError> {
    parse(text, LabelColumn::Last, HeaderMode::Auto)
}

/// A fresh, empty temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff-data-csv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const IRIS: &str =
    "sepal,petal,species\r\n5.1,1.4,setosa\r\n7.0,4.7,versicolor\r\n\r\n6.3,6.0,virginica\r\n4.9,1.4,\"setosa\"\r\n";

#[test]
fn header_is_detected_and_string_labels_sorted() {
    let d = auto(IRIS).unwrap();
    assert_eq!(d.len(), 4);
    assert_eq!(d.dim(), 2);
    assert_eq!(d.class_names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(d.y, [0, 1, 2, 0]);
    assert_eq!(d.x.row(2), &[6.3, 6.0]);
    assert_eq!(d.layout, Layout::Vector { reserved_leading: 0 });
}

#[test]
fn label_by_name_index_or_last() {
    let by_name = parse(IRIS, LabelColumn::Name("species".into()), HeaderMode::Auto).unwrap();
    assert_eq!(by_name, auto(IRIS).unwrap());
    let case = parse(IRIS, LabelColumn::Name("SPECIES".into()), HeaderMode::Auto).unwrap();
    assert_eq!(case.y, by_name.y);
    let text = "label,a,b\n2,0.5,1\n10,0.25,2\n1,0,3\n";
    let d = parse(text, LabelColumn::Index(0), HeaderMode::Auto).unwrap();
    // Numeric labels in numeric order: 1, 2, 10.
    assert_eq!(d.class_names, ["1", "2", "10"]);
    assert_eq!(d.y, [1, 2, 0]);
    assert_eq!(d.x.row(1), &[0.25, 2.0]);
}

#[test]
fn header_autodetection_keeps_numeric_first_rows() {
    let d = auto("1,2,0\n3,4,1\n").unwrap();
    assert_eq!(d.len(), 2);
    // Forcing a header drops the first row.
    assert_eq!(parse("1,2,0\n3,4,1\n", LabelColumn::Last, HeaderMode::Present).unwrap().len(), 1);
    // Forcing no header makes the header row an error.
    let e = parse(IRIS, LabelColumn::Last, HeaderMode::Absent).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.csv:1: column 0: \"sepal\" is not a number; if this column holds the labels, choose it with \
         csv:t.csv#label=0"
    );
}

#[test]
fn gzip_csv_is_read() {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(IRIS.as_bytes()).unwrap();
    let d = parse_labelled_csv::<f64>(&e.finish().unwrap(), "t.csv.gz", &CsvOptions::default()).unwrap();
    assert_eq!(d, auto(IRIS).unwrap());
}

#[test]
fn labelled_csv_errors_name_file_and_line() {
    let e = auto("a,b,c\n1,2,x\n3,4\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.csv:3: expected 3 cells (as on line 1), found 2; a cell containing the delimiter (',') must be \
         quoted: \"a,b\""
    );
    let e = auto("a,b,c\n1,2,x\n3,oops,y\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.csv:3: column 1 (\"b\"): \"oops\" is not a number; if this column holds the labels, choose it with \
         csv:t.csv#label=b or #label=1"
    );
    let e = auto("a,b,c\n1,NaN,x\n").unwrap_err().to_string();
    assert!(e.starts_with("t.csv:2: column 1") && e.contains("only finite"), "{e}");
    let e = auto("a,b,c\n1,2,\n").unwrap_err().to_string();
    assert_eq!(e, "t.csv:2: column 2 (\"c\"): the label is empty; every row needs a label");
    let e = parse(IRIS, LabelColumn::Name("kind".into()), HeaderMode::Auto).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:1: no header column named \"kind\""), "{e}");
    let e = parse(IRIS, LabelColumn::Index(3), HeaderMode::Auto).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:1: label column index 3 does not exist"), "{e}");
    let e = parse(IRIS, LabelColumn::Name("species".into()), HeaderMode::Absent).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    assert!(matches!(auto(""), Err(DataError::Empty { .. })));
    assert!(matches!(auto("a,b,c\n"), Err(DataError::Empty { .. })));
    assert!(matches!(auto("1\n2\n"), Err(DataError::Empty { .. })));
}

#[test]
fn data_spec_csv_syntax() {
    let p = |s: &str| s.parse::<DataSpec>();
    let csv = |path: &str, label: LabelColumn| DataSpec::Csv { path: path.into(), label, delimiter: b',' };
    assert_eq!(p("csv:a.csv").unwrap(), csv("a.csv", LabelColumn::Last));
    assert_eq!(p("csv:a.csv#label=species").unwrap(), csv("a.csv", LabelColumn::Name("species".into())));
    assert_eq!(p("csv:a.csv#label=3").unwrap(), csv("a.csv", LabelColumn::Index(3)));
    assert_eq!(p("csv:a.csv#label=last").unwrap(), csv("a.csv", LabelColumn::Last));
    assert_eq!(p("csv:d#1/a.csv#label=y").unwrap(), csv("d#1/a.csv", LabelColumn::Name("y".into())));
    for bad in
        ["csv:", "csv", "csv:#label=y", "csv:a.csv#label=", "csv:a#label=99999999999999999999999", "nope:x", "digits:x"]
    {
        let e = p(bad).unwrap_err();
        assert!(matches!(e, DataError::Spec { .. }), "{bad}: {e}");
    }
}

#[test]
fn csv_spec_loads_a_stratified_split() {
    let dir = temp_dir("spec");
    let path = dir.join("blobs.csv");
    let mut text = String::from("x,y,class\n");
    for i in 0..50 {
        text.push_str(&format!("{},{},{}\n", i, i * 2, if i % 5 == 0 { "rare" } else { "common" }));
    }
    std::fs::write(&path, text).unwrap();
    let spec: DataSpec = format!("csv:{}#label=class", path.display()).parse().unwrap();
    let tt = load::<f32>(&spec, 3).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (40, 10));
    assert_eq!(tt.test.class_counts(), [8, 2]);
    assert_eq!(tt.train.name, "blobs");
    let by_x = read_labelled_csv::<f32>(&path, &CsvOptions { label: LabelColumn::Index(0), ..CsvOptions::default() })
        .unwrap_err()
        .to_string();
    // With the label in column 0 the text column becomes a feature.
    assert!(
        by_x.ends_with(&format!(
            "blobs.csv:2: column 2 (\"class\"): \"rare\" is not a number; if this column holds the labels, \
             choose it with csv:{}#label=class or #label=2",
            path.display()
        )),
        "{by_x}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn numeric_csv_rules() {
    let m = parse_numeric_csv::<f32>(b"0,0.5\r\n1,2\r\n\r\n", "p.csv").unwrap();
    assert_eq!((m.rows(), m.cols()), (2, 2));
    assert_eq!(m.row(1), &[1.0, 2.0]);
    let e = parse_numeric_csv::<f32>(b"1,2\n3\n", "p.csv").unwrap_err().to_string();
    assert!(e.starts_with("p.csv:2: expected 2 cells (as on line 1), found 1; "), "{e}");
    let e = parse_numeric_csv::<f32>(b"a,b\n1,2\n", "p.csv").unwrap_err().to_string();
    assert!(e.contains("must not have a header"), "{e}");
    let e = parse_numeric_csv::<f32>(b"1,2\n1,inf\n", "p.csv").unwrap_err().to_string();
    assert!(e.starts_with("p.csv:2: column 1") && e.contains("only finite"), "{e}");
    assert!(matches!(parse_numeric_csv::<f32>(b"\n", "p.csv"), Err(DataError::Empty { .. })));
}

#[test]
fn pairs_must_have_the_same_number_of_rows() {
    let dir = temp_dir("pairs");
    let (x, y) = (dir.join("x.csv"), dir.join("y.csv"));
    std::fs::write(&x, "0,0\n1,0\n0,1\n").unwrap();
    std::fs::write(&y, "0,0,0\n1,1,1\n").unwrap();
    let e = read_pairs::<f32>(&x, &y).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Mismatch { .. }));
    assert!(msg.contains("x.csv") && msg.contains("y.csv") && msg.contains("3 input rows but 2 output rows"), "{msg}");
    std::fs::write(&y, "0,0,0\n1,1,1\n2,2,2\n").unwrap();
    let (a, b) = read_pairs::<f64>(&x, &y).unwrap();
    assert_eq!((a.rows(), a.cols(), b.rows(), b.cols()), (3, 2, 3, 3));
    assert!(read_pairs_checked::<f64>(&x, &y, 2, 3).is_ok());
    let e = read_pairs_checked::<f64>(&x, &y, 2, 20).unwrap_err().to_string();
    assert!(e.contains("y.csv") && e.contains("rows have 3 values, expected 20"), "{e}");
    let e = read_pairs::<f32>(&x, &dir.join("nope.csv")).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shipped_acoustic_pairs_read_as_files_equal_the_built_in_ones() {
    let base = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/phyll-acoustic"));
    let (x, y) = (base.join("x_data.csv.gz"), base.join("y_data.csv.gz"));
    assert!(x.is_file() && y.is_file(), "the shipped acoustic pairs are missing from {}", base.display());
    let (xm, ym) = read_pairs_checked::<f32>(&x, &y, 20, 20).unwrap();
    assert_eq!((xm.rows(), ym.rows()), (10_001, 10_001));
    assert!(xm.row(0).iter().all(|&v| v == 0.0), "the first input row is all zeros");
    assert!(xm.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(ym.data().iter().all(|&v| v >= 0.0));
    let (bx, by) = ff_data::builtin_acoustic_pairs::<f32>().unwrap();
    assert_eq!((bx.data(), by.data()), (xm.data(), ym.data()));
}
