//! The CSV dialect of labelled files and measured pairs (RFC 4180 through the `csv` crate):
//! quoted cells, delimiters chosen in the data spec, byte-order marks, gzip, numeric labels
//! that are one class, and errors that say which column to choose as the label.

use ff_data::{
    load, parse_delimiter, parse_labelled_csv, parse_numeric_csv, read_labelled_csv, read_pairs, CsvOptions, DataError,
    DataSpec, Dataset, HeaderMode, LabelColumn,
};
use flate2::{write::GzEncoder, Compression};
use proptest::prelude::*;
use std::io::Write;
use std::path::PathBuf;

fn parse(text: &[u8], opts: &CsvOptions) -> Result<Dataset<f64>, DataError> {
    parse_labelled_csv(text, "t.csv", opts)
}

fn with_delimiter(delimiter: u8) -> CsvOptions {
    CsvOptions { delimiter, ..CsvOptions::default() }
}

fn label(label: LabelColumn) -> CsvOptions {
    CsvOptions { label, ..CsvOptions::default() }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A fresh, empty temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff-data-csv-dialect-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_quoted_label_with_a_comma_is_one_cell() {
    let text = b"sepal,petal,species\n5.1,1.4,\"setosa, var\"\n7.0,4.7,versicolor\n4.9,1.3,\"setosa, var\"\n";
    let d = parse(text, &CsvOptions::default()).unwrap();
    assert_eq!(d.class_names, ["setosa, var", "versicolor"]);
    assert_eq!(d.y, [0, 1, 0]);
    assert_eq!(d.x.row(1), &[7.0, 4.7]);
}

#[test]
fn quoted_cells_hold_escaped_quotes_line_breaks_and_numbers() {
    let text = b"a,\"b, in \"\"cm\"\"\",label\n\"1.5\", 2 ,\"two\nlines\"\n3,4,\"say \"\"hi\"\"\"\n";
    let d = parse(text, &CsvOptions::default()).unwrap();
    assert_eq!(d.class_names, ["say \"hi\"", "two\nlines"]);
    assert_eq!(d.y, [1, 0]);
    assert_eq!(d.x.data(), &[1.5, 2.0, 3.0, 4.0]);
    // The row after a quoted line break is numbered from where it starts.
    let e = parse(b"a,b,label\n1,2,\"x\ny\"\n3,oops,z\n", &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:4: column 1 (\"b\"): \"oops\" is not a number"), "{e}");
}

#[test]
fn semicolon_and_tab_delimiters() {
    let semi = b"sepal;petal;species\n5,1;1,4;setosa\n7;4.7;versicolor\n";
    // Decimal commas are not numbers: the error names the cell.
    let e = parse(semi, &with_delimiter(b';')).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:2: column 0 (\"sepal\"): \"5,1\" is not a number"), "{e}");
    let semi = b"sepal;petal;species\n5.1;1.4;\"a;b\"\n7;4.7;versicolor\n";
    let d = parse(semi, &with_delimiter(b';')).unwrap();
    assert_eq!(d.class_names, ["a;b", "versicolor"]);
    assert_eq!(d.x.data(), &[5.1, 1.4, 7.0, 4.7]);
    let tab = b"sepal\tpetal\tspecies\n5.1\t1.4\tsetosa, var\n7\t4.7\tversicolor\n";
    let d = parse(tab, &with_delimiter(b'\t')).unwrap();
    assert_eq!(d.class_names, ["setosa, var", "versicolor"]);
    assert_eq!(d.x.data(), &[5.1, 1.4, 7.0, 4.7]);
    // Read with the default comma, a semicolon file has one column, and the error says what to do.
    let e = parse(semi, &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.contains("#delim=;") && e.contains("csv:t.csv#delim=;"), "{e}");
    let e = parse(tab, &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.contains("try csv:t.csv#delim=tab"), "{e}");
    // A delimiter that cannot separate cells is refused.
    let e = parse(semi, &with_delimiter(b'"')).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
}

#[test]
fn delimiters_in_the_spec_in_any_order() {
    let p = |s: &str| s.parse::<DataSpec>();
    let csv = |path: &str, label: LabelColumn, delimiter: u8| DataSpec::Csv { path: path.into(), label, delimiter };
    assert_eq!(p("csv:a.csv#delim=;").unwrap(), csv("a.csv", LabelColumn::Last, b';'));
    assert_eq!(p("csv:a.tsv#delim=tab").unwrap(), csv("a.tsv", LabelColumn::Last, b'\t'));
    assert_eq!(p("csv:a.tsv#delim=\\t").unwrap(), csv("a.tsv", LabelColumn::Last, b'\t'));
    assert_eq!(p("csv:a.csv#delim=|#label=0").unwrap(), csv("a.csv", LabelColumn::Index(0), b'|'));
    assert_eq!(p("csv:a.csv#label=vowel#delim=;").unwrap(), csv("a.csv", LabelColumn::Name("vowel".into()), b';'));
    assert_eq!(p("csv:a.csv#label=last#delim=,").unwrap(), csv("a.csv", LabelColumn::Last, b','));
    assert_eq!(p("csv:d#1/a.csv#label=y").unwrap(), csv("d#1/a.csv", LabelColumn::Name("y".into()), b','));
    let err = |s: &str| match p(s) {
        Err(DataError::Spec { message, .. }) => message,
        other => panic!("{s}: {other:?}"),
    };
    let e = err("csv:a.csv#delim=;;");
    assert!(e.contains("\";;\"") && e.contains("one ASCII character") && e.contains("#delim=tab"), "{e}");
    let e = err("csv:a.csv#delim=§");
    assert!(e.contains("\"§\" is not an ASCII character") && e.contains("#delim=;"), "{e}");
    let e = err("csv:a.csv#delim=\"");
    assert!(e.contains("quote") && e.contains("#delim=;"), "{e}");
    assert!(err("csv:a.csv#delim=").contains("needs a character"));
    assert!(err("csv:a.csv#delim=;#delim=,").contains("twice"));
    assert!(err("csv:a.csv#label=a#label=b").contains("twice"));
    assert!(err("csv:#delim=;").contains("needs a file"));
    assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
    assert_eq!(parse_delimiter("|"), Ok(b'|'));
}

#[test]
fn a_spec_with_a_delimiter_loads_the_file() {
    let dir = temp_dir("spec");
    let path = dir.join("v.tsv");
    let mut text = String::from("vowel\tf1\tf2\n");
    for i in 0..20 {
        text.push_str(&format!("{}\t{}\t{}\n", if i % 2 == 0 { "iy" } else { "ae" }, 300 + i, 2000 - i));
    }
    std::fs::write(&path, text).unwrap();
    let tt = load::<f32>(&format!("csv:{}#delim=tab#label=vowel", path.display()).parse().unwrap(), 1).unwrap();
    assert_eq!((tt.train.len(), tt.test.len(), tt.train.dim()), (16, 4, 2));
    assert_eq!(tt.train.class_names, ["ae", "iy"]);
    // The same file read without the label option: the error names the column and the fix.
    let e = load::<f32>(&format!("csv:{}#delim=tab", path.display()).parse().unwrap(), 1).unwrap_err().to_string();
    let want = format!(
        "{}:2: column 0 (\"vowel\"): \"iy\" is not a number; if this column holds the labels, choose it with \
         csv:{}#delim=tab#label=vowel or #label=0",
        path.display(),
        path.display()
    );
    assert_eq!(e, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let text = "\u{feff}\"name, full\",x,label\n1,2,a\n3,4,b\n";
    let e = parse(text.as_bytes(), &label(LabelColumn::Name("name, full".into()))).unwrap_err().to_string();
    // The first header cell is `name, full`, not `\u{feff}name, full`: found by name, it is the
    // label, and column 2 holds text.
    assert!(e.contains("column 2 (\"label\"): \"a\" is not a number"), "{e}");
    let d = parse(text.as_bytes(), &CsvOptions::default()).unwrap();
    assert_eq!(d.x.data(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(d.class_names, ["a", "b"]);
    // Behind gzip too.
    assert_eq!(parse(&gz(text.as_bytes()), &CsvOptions::default()).unwrap(), d);
}

#[test]
fn labels_that_denote_the_same_number_are_one_class() {
    let text = b"a,label\n1,1\n2,1.0\n3, 01 \n4,2\n5,10\n6,\"1e0\"\n7,-0\n8,0\n9,+2\n";
    let d = parse(text, &CsvOptions::default()).unwrap();
    // Numeric order; each class named by the first spelling of its number in the file.
    assert_eq!(d.class_names, ["-0", "1", "2", "10"]);
    assert_eq!(d.y, [1, 1, 1, 2, 3, 1, 0, 0, 2]);
    assert_eq!(d.num_classes, 4);
    // A text label among them makes every label text: lexicographic order, spellings distinct.
    let d = parse(b"a,label\n1,1\n2,1.0\n3,x\n", &CsvOptions::default()).unwrap();
    assert_eq!(d.class_names, ["1", "1.0", "x"]);
}

#[test]
fn text_labels_in_the_first_column_by_name_or_index() {
    let text = b"vowel,f1,f2\n\"iy, long\",300,2500\nae,700,1800\n\"iy, long\",310,2400\n";
    let by_name = parse(text, &label(LabelColumn::Name("vowel".into()))).unwrap();
    let by_index = parse(text, &label(LabelColumn::Index(0))).unwrap();
    assert_eq!(by_name, by_index);
    assert_eq!(by_name.class_names, ["ae", "iy, long"]);
    assert_eq!(by_name.y, [1, 0, 1]);
    assert_eq!(by_name.x.data(), &[300.0, 2500.0, 700.0, 1800.0, 310.0, 2400.0]);
    // Without a header, by index.
    let d = parse(b"iy;300;2500\nae;700;1800\n", &CsvOptions { label: LabelColumn::Index(0), ..with_delimiter(b';') })
        .unwrap();
    assert_eq!((d.class_names.clone(), d.y.clone()), (vec!["ae".to_string(), "iy".into()], vec![1, 0]));
}

#[test]
fn a_misplaced_label_error_names_the_column_and_the_fix() {
    let text = b"vowel,f1,f2\niy,300,2500\nae,700,1800\n";
    let e = parse(text, &CsvOptions::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.csv:2: column 0 (\"vowel\"): \"iy\" is not a number; if this column holds the labels, choose it with \
         csv:t.csv#label=vowel or #label=0"
    );
    // Without a header only the index can name the column.
    let e = parse(b"1,iy,300\n2,ae,700\n", &CsvOptions { header: HeaderMode::Absent, ..CsvOptions::default() })
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.csv:1: column 1: \"iy\" is not a number; if this column holds the labels, choose it with csv:t.csv#label=1"
    );
    // A header name that a spec cannot name (all digits) is left out; the delimiter is kept.
    let e = parse(b"7;f1;f2\niy;300;2500\n", &with_delimiter(b';')).unwrap_err().to_string();
    assert!(e.ends_with("choose it with csv:t.csv#delim=;#label=0"), "{e}");
}

#[test]
fn a_row_of_another_width_names_the_line_and_quoting() {
    let e = parse(b"a,b,label\n1,2,x\n3,4,setosa, var\n", &CsvOptions::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.csv:3: expected 3 cells (as on line 1), found 4; a cell containing the delimiter (',') must be \
         quoted: \"a,b\""
    );
    let e = parse(b"a;b;label\n1;2;x\n3;4\n", &with_delimiter(b';')).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:3: expected 3 cells (as on line 1), found 2") && e.contains("(';')"), "{e}");
    let e = parse_numeric_csv::<f32>(b"1,2\n3,4,5\n", "p.csv").unwrap_err().to_string();
    assert!(e.starts_with("p.csv:2: expected 2 cells (as on line 1), found 3") && e.contains("quoted"), "{e}");
}

#[test]
fn empty_labels_and_bad_values_name_file_line_and_column() {
    let e = parse(b"a,b,label\n1,2,x\n3,4,\"\"\n", &CsvOptions::default()).unwrap_err().to_string();
    assert_eq!(e, "t.csv:3: column 2 (\"label\"): the label is empty; every row needs a label");
    let e = parse(b"a,b,label\n1,,x\n", &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:2: column 1 (\"b\"): the cell is empty"), "{e}");
    for (bad, what) in [("NaN", "NaN"), ("inf", "inf"), ("-infinity", "-inf"), ("1e999", "inf")] {
        let text = format!("a,b,label\n1,2,x\n3,{bad},y\n");
        let e = parse(text.as_bytes(), &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("t.csv:3: column 1 (\"b\"): value \"{bad}\" is {what}; only finite numbers are accepted")
        );
    }
}

#[test]
fn values_that_overflow_f32_name_file_line_column_and_value() {
    let text = b"a,b,label\n1,2,x\n3,1e39,y\n";
    let e = parse_labelled_csv::<f32>(text, "t.csv", &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:3: column 1 (\"b\"): value 1e39 overflows f32"), "{e}");
    assert!(e.contains("precision = \"f64\""), "{e}");
    // At f64 the value is kept.
    assert_eq!(parse(text, &CsvOptions::default()).unwrap().x.row(1), &[3.0, 1e39]);
    let e = parse_numeric_csv::<f32>(b"1,2\n-1e39,4\n", "p.csv").unwrap_err().to_string();
    assert!(e.starts_with("p.csv:2: column 0: value -1e39 overflows f32"), "{e}");
}

#[test]
fn gzip_csv_with_quotes_and_delimiters_is_read_from_a_file() {
    let dir = temp_dir("gzip");
    let path = dir.join("iris.csv.gz");
    let text = "\u{feff}sepal;petal;species\r\n5.1;1.4;\"setosa; var\"\r\n7.0;4.7;\"versi\r\ncolor\"\r\n";
    std::fs::write(&path, gz(text.as_bytes())).unwrap();
    let d = read_labelled_csv::<f32>(&path, &with_delimiter(b';')).unwrap();
    assert_eq!(d.name, "iris");
    assert_eq!(d.class_names, ["setosa; var", "versi\r\ncolor"]);
    assert_eq!(d.x.data(), &[5.1, 1.4, 7.0, 4.7]);
    // A truncated gzip file is a gzip error.
    let bytes = gz((text.to_string() + &"1;2;x\r\n".repeat(10_000)).as_bytes());
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_labelled_csv::<f32>(&path, &with_delimiter(b';')).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    // Measured pairs in gzip, with quoted numbers.
    let (x, y) = (dir.join("x.csv.gz"), dir.join("y.csv"));
    std::fs::write(&x, gz(b"\"1\",2\n3,\"4\"\n")).unwrap();
    std::fs::write(&y, b"5\n6\n").unwrap();
    let (xm, ym) = read_pairs::<f64>(&x, &y).unwrap();
    assert_eq!((xm.data(), ym.data()), (&[1.0, 2.0, 3.0, 4.0][..], &[5.0, 6.0][..]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One cell of a generated table: its text and whether it is written with quotes.
fn label_text() -> impl Strategy<Value = String> {
    // Text labels (never numbers), with the characters that need quoting: the delimiters,
    // quotes and line breaks, inside; no white space at the ends (cells are trimmed).
    "[a-z]([a-z ,;|\t\"\n]{0,6}[a-z])?"
}

fn feature() -> impl Strategy<Value = f64> {
    prop_oneof![-1e6..1e6f64, (-1000i32..1000).prop_map(f64::from), Just(0.0), -1e-30..1e-30f64]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any table written by `csv::Writer` (quoted where needed, or every cell quoted), with any
    /// of the delimiters and the label in any column, reads back to the same matrix and labels.
    #[test]
    fn tables_written_by_csv_writer_read_back(
        rows in proptest::collection::vec((label_text(), proptest::collection::vec(feature(), 3)), 1..12),
        d in 1usize..4,
        label_col in 0usize..4,
        delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t'), Just(b'|')],
        quote_all in any::<bool>(),
        header in any::<bool>(),
        gzip in any::<bool>(),
    ) {
        let label_col = label_col.min(d);
        let style = if quote_all { csv::QuoteStyle::Always } else { csv::QuoteStyle::Necessary };
        let mut w = csv::WriterBuilder::new().delimiter(delimiter).quote_style(style).from_writer(Vec::new());
        let row_of = |label: &str, cells: Vec<String>| {
            let mut r = cells;
            r.insert(label_col, label.to_string());
            r
        };
        if header {
            let names = (0..d).map(|c| format!("feature, {c}")).collect();
            w.write_record(row_of("class \"name\"", names)).unwrap();
        }
        for (label, values) in &rows {
            w.write_record(row_of(label, values[..d].iter().map(|v| v.to_string()).collect())).unwrap();
        }
        let mut bytes = w.into_inner().unwrap();
        if gzip {
            bytes = gz(&bytes);
        }
        let opts = CsvOptions { label: LabelColumn::Index(label_col), header: HeaderMode::Auto, delimiter };
        let got = parse_labelled_csv::<f64>(&bytes, "p.csv", &opts).unwrap();
        let mut names: Vec<&str> = rows.iter().map(|(l, _)| l.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        prop_assert_eq!(&got.class_names, &names);
        let want_y: Vec<usize> = rows.iter().map(|(l, _)| names.iter().position(|n| n == l).unwrap()).collect();
        prop_assert_eq!(&got.y, &want_y);
        let want_x: Vec<f64> = rows.iter().flat_map(|(_, v)| v[..d].to_vec()).collect();
        prop_assert_eq!(got.x.data(), &want_x[..]);
        prop_assert_eq!((got.x.rows(), got.x.cols()), (rows.len(), d));
    }
}

#[test]
fn blank_lines_are_skipped_and_errors_name_the_line_a_record_starts_on() {
    let d = parse(b"a,label\r\n\r\n1,x\n   \n\t\n2,y\r\n3,x\r\n\n", &CsvOptions::default()).unwrap();
    assert_eq!(d.x.data(), &[1.0, 2.0, 3.0]);
    assert_eq!(d.y, [0, 1, 0]);
    // Line numbers count every line break: blank lines, CRLF, line breaks inside quoted cells
    // (also at a cell's edge), with and without a final line break.
    for end in ["", "\n", "\r\n"] {
        for nl in ["\n", "\r\n"] {
            let text = format!("a,b,label{nl}{nl}1,2,\"x{nl}\"{nl} {nl}{nl}\"{nl}5\",3,\"{nl}y{nl}\"{nl}4,oops,z{end}");
            let e = parse(text.as_bytes(), &CsvOptions::default()).unwrap_err().to_string();
            assert!(e.starts_with("t.csv:11: column 1 (\"b\"): \"oops\""), "{text:?}: {e}");
            let text = format!("a,b,label{nl}1,2,x{nl}{nl}{nl}3,4{end}");
            let e = parse(text.as_bytes(), &CsvOptions::default()).unwrap_err().to_string();
            assert!(e.starts_with("t.csv:5: expected 3 cells"), "{text:?}: {e}");
        }
    }
    // A row of empty cells is not blank: its cells are missing.
    let e = parse(b"a,label\n1,x\n,\n", &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:3: column 0 (\"a\"): the cell is empty"), "{e}");
}
