//! Generic numeric CSV files: labelled data sets, and measured input/output pairs.
//!
//! The dialect (RFC 4180, any one-byte delimiter, quotes, trimming, BOM, gzip), the values
//! accepted, how labels become classes and the bounds on what is read are described for users
//! in the crate documentation, section "CSV files" (`lib.rs`); keep the two in step.
//!
//! How: the bytes (a file, or a slice for the `parse_*` functions) go through
//! [`BoundedText`], which decompresses gzip on the fly and refuses a line longer than 16 MiB or
//! a record longer than 32 MiB, into a `csv::Reader` (no header handling, flexible widths,
//! cells trimmed) that yields one `ByteRecord` at a time ([`Records`], which skips blank
//! records). Header detection, row widths, numbers and labels are checked here, so that every
//! error names the file, the line where the record starts (1-based), the column (0-based, with
//! its header name when there is one) and the value. Numbers are parsed as `f64`, checked
//! finite, then converted to `F` with an overflow check ([`to_precision`]).

use crate::dataset::{Dataset, Layout};
use crate::error::DataError;
use crate::text::{number, open_file, show, to_precision, BoundedText};
use ff_core::{Matrix, Real};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Which column of a labelled CSV file holds the label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The column with this 0-based index.
    Index(usize),
    /// The column with this header name (exact match, else a unique case-insensitive match);
    /// requires a header.
    Name(String),
}

/// Whether the first line of a CSV file is a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderMode {
    /// Detect (the default): the first non-blank line is a header if one of its feature cells
    /// is not a number, or if the label column is chosen by name.
    #[default]
    Auto,
    /// The first non-blank line is a header.
    Present,
    /// There is no header.
    Absent,
}

/// How to read a labelled CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column.
    pub label: LabelColumn,
    /// Header handling.
    pub header: HeaderMode,
    /// The byte that separates cells: `b','` (the default), `b';'`, `b'\t'`... Any ASCII byte
    /// but `"`, `'`, `\r` and `\n` (see [`parse_delimiter`] for the names accepted in a spec).
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { label: LabelColumn::Last, header: HeaderMode::Auto, delimiter: b',' }
    }
}

/// Why `b` cannot separate cells, if it cannot.
fn delimiter_problem(b: u8) -> Option<&'static str> {
    match b {
        b'"' | b'\'' => Some("a quote character cannot separate cells (`\"` quotes them)"),
        b'\n' | b'\r' => Some("a line break cannot separate cells (it ends rows)"),
        _ if !b.is_ascii() => Some("the delimiter must be one ASCII character"),
        _ => None,
    }
}

/// Reads a delimiter as written in a data spec (`csv:FILE#delim=VALUE`): one ASCII character
/// (`;`, `|`, a literal tab), or `tab` or `\t` for a tab. The error names the value and what
/// to write instead.
///
/// # Examples
/// ```
/// assert_eq!(ff_data::parse_delimiter(";"), Ok(b';'));
/// assert_eq!(ff_data::parse_delimiter("tab"), Ok(b'\t'));
/// assert_eq!(ff_data::parse_delimiter("\\t"), Ok(b'\t'));
/// assert!(ff_data::parse_delimiter(";;").is_err());
/// ```
///
/// # Errors
/// A message for an empty value, more than one character, a non-ASCII character, a quote or a
/// line break.
pub fn parse_delimiter(value: &str) -> Result<u8, String> {
    const FIX: &str = "write one ASCII character such as #delim=; or #delim=| (#delim=tab for a tab)";
    match value {
        "tab" | "\\t" | "\t" => return Ok(b'\t'),
        "" => return Err(format!("#delim= needs a character; {FIX}")),
        _ => {}
    }
    let mut chars = value.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(format!("delimiter {value:?} is {} characters; {FIX}", value.chars().count()));
    };
    if !c.is_ascii() {
        return Err(format!("delimiter {value:?} is not an ASCII character; {FIX}"));
    }
    match delimiter_problem(c as u8) {
        Some(why) => Err(format!("delimiter {value:?}: {why}; {FIX}")),
        None => Ok(c as u8),
    }
}

/// How a delimiter is written in a spec: `""` for the default `,`, else `#delim=X`.
pub(crate) fn delimiter_option(delimiter: u8) -> String {
    match delimiter {
        b',' => String::new(),
        b'\t' => "#delim=tab".into(),
        d => format!("#delim={}", d as char),
    }
}

/// How a delimiter is named in a message.
fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".into(),
        d => format!("'{}'", d as char),
    }
}

/// What to do about a CSV file that is not there: phyff never fetches these.
const CSV_ADVICE: &str = "check the path (phyff does not fetch CSV files)";

/// The non-blank records of a CSV stream (plain or gzip), read with the `csv` crate through a
/// [`BoundedText`] that bounds lines and records.
struct Records<'a> {
    rdr: csv::Reader<BoundedText<Box<dyn Read + 'a>>>,
    record: csv::ByteRecord,
    file: String,
}

impl<'a> Records<'a> {
    fn new(reader: impl BufRead + 'a, file: &str, delimiter: u8) -> Result<Self, DataError> {
        if let Some(why) = delimiter_problem(delimiter) {
            return Err(DataError::invalid("delimiter", format!("byte {delimiter:#04x}: {why}")));
        }
        // Records end at `\n` only (a `\r` before it stays in the last cell and is trimmed away
        // with the white space), and the cells are trimmed here rather than by the reader: so
        // that the line a record starts on can be told from where it ends and the line breaks
        // in its cells (the reader's own record position is that of the previous record's end,
        // before any blank lines).
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .delimiter(delimiter)
            .from_reader(BoundedText::new(reader, file)?);
        Ok(Records { rdr, record: csv::ByteRecord::new(), file: file.to_string() })
    }

    /// Reads the next record that is not blank; returns the line it starts on.
    fn next(&mut self) -> Result<Option<usize>, DataError> {
        loop {
            let more = match self.rdr.read_byte_record(&mut self.record) {
                Ok(more) => more,
                Err(e) => return Err(self.error(e)),
            };
            if !more {
                return Ok(None);
            }
            let end = self.rdr.position();
            let bounded = self.rdr.get_ref();
            bounded.record_starts(end.byte(), end.line());
            if self.record.len() == 1 && self.record[0].trim_ascii().is_empty() {
                continue;
            }
            // `end` is past the record's `\n`, if it has one, and its cells hold every line
            // break between its first byte and its last.
            let breaks = self.record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
            let ended_by_newline = u64::from(bounded.line_ended_at(end.byte()));
            return Ok(Some(end.line().saturating_sub(ended_by_newline + breaks).max(1) as usize));
        }
    }

    fn error(&self, e: csv::Error) -> DataError {
        let line = e.position().map_or(0, |p| p.line() as usize);
        match e.into_kind() {
            csv::ErrorKind::Io(e) => BoundedText::<()>::error(e, &self.file),
            other => DataError::parse(&self.file, line, format!("{other:?}")),
        }
    }

    /// Cells in the current record.
    fn len(&self) -> usize {
        self.record.len()
    }

    /// Cell `c` of the current record (which starts on `line`) as text, trimmed of ASCII white
    /// space.
    fn cell(&self, c: usize, line: usize) -> Result<&str, DataError> {
        std::str::from_utf8(self.record[c].trim_ascii()).map_err(|e| {
            DataError::parse(
                &self.file,
                line,
                format!("column {c}: invalid UTF-8 at byte {} of the cell; expected a text file", e.valid_up_to()),
            )
        })
    }

    /// The cells of the current record as text.
    fn cells(&self, line: usize) -> Result<Vec<&str>, DataError> {
        (0..self.len()).map(|c| self.cell(c, line)).collect()
    }
}

/// The message for a row of `found` cells where `expected` were, as on line `first`.
fn width_message(expected: usize, found: usize, first: usize, delimiter: u8) -> String {
    let d = delimiter as char;
    let example = if delimiter == b'\t' { "\"a<tab>b\"".to_string() } else { format!("\"a{d}b\"") };
    format!(
        "expected {expected} cells (as on line {first}), found {found}; a cell containing the delimiter ({}) \
         must be quoted: {example}",
        delimiter_name(delimiter)
    )
}

/// Reads a labelled CSV file (plain or gzip): one sample per row, numeric features in every
/// column but the label's. See [`parse_labelled_csv`] for the rules. The file is read as a
/// stream (never whole); a line longer than 16 MiB is an error.
///
/// # Errors
/// [`DataError::NotFound`] / [`DataError::NotAFile`] / [`DataError::Io`] if the file cannot be
/// read; otherwise as [`parse_labelled_csv`].
pub fn read_labelled_csv<F: Real>(path: &Path, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    let f = open_file(path, "CSV file", "a CSV file", CSV_ADVICE)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".csv").to_string())
        .unwrap_or_else(|| "csv".into());
    let records = Records::new(BufReader::with_capacity(1 << 16, f), &path.display().to_string(), opts.delimiter)?;
    let mut d = labelled_from(records, opts)?;
    d.name = name;
    Ok(d)
}

/// Parses a labelled CSV file (plain or gzip bytes) in the dialect of the
/// [crate documentation](crate#csv-files).
///
/// **Header.** With [`HeaderMode::Auto`] the first row is a header if one of its feature cells
/// is not a number or the label is chosen by name.
///
/// **Classes.** Each row's label cell (empty is an error) names its class. When every label is
/// a finite number, labels that denote the same number (`1`, `1.0`, `01`, `+1`, `1e0`) are one
/// class, classes are numbered in increasing numeric order (`"1","2","10"` become 0, 1, 2) and
/// each class is named by the first spelling of its number in the file. Otherwise each distinct
/// text is a class, numbered in lexicographic (byte) order of the texts. `class_names` holds the
/// names. The result has `Layout::Vector { reserved_leading: 0 }` and is named `"csv"`.
///
/// # Errors
/// [`DataError::Parse`] naming the line for a row with another number of cells than the first,
/// a non-numeric, empty, NaN or infinite feature (a text feature suggests choosing that column
/// as the label: `csv:FILE#label=NAME` or `#label=INDEX`), a feature that overflows `F` (`1e39`
/// in `f32`), an empty label, a label column that does not exist, invalid UTF-8, a line longer
/// than 16 MiB; [`DataError::Invalid`] for a label chosen by name with [`HeaderMode::Absent`],
/// or a delimiter that cannot separate cells; [`DataError::Empty`] if there is no data row or
/// no feature column; [`DataError::Gzip`] for a corrupt compressed file.
pub fn parse_labelled_csv<F: Real>(bytes: &[u8], file: &str, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    labelled_from(Records::new(bytes, file, opts.delimiter)?, opts)
}

/// The message for a first row of one cell: a labelled file needs two, and the delimiter may be
/// the wrong one.
fn one_column_message(line: usize, cell: &str, file: &str, delimiter: u8) -> String {
    let found = [b';', b'\t', b'|', b',', b' ']
        .into_iter()
        .find(|&d| d != delimiter && cell.as_bytes().contains(&d))
        .map_or(String::new(), |d| {
            format!(" The row contains {}: try csv:{file}{}.", delimiter_name(d), delimiter_option(d))
        });
    format!(
        "line {line} has 1 cell ({}) separated by {}; a labelled file needs a label and at least one feature. \
         If the cells are separated by another character, choose it with csv:FILE#delim=; (or #delim=tab).{found}",
        show(cell),
        delimiter_name(delimiter)
    )
}

/// The rows of a labelled file as they are read.
struct Labelled<'h, F> {
    file: &'h str,
    width: usize,
    first_line: usize,
    label_col: usize,
    header: Option<&'h [String]>,
    delimiter: u8,
    data: Vec<F>,
    /// Each row's label as an index into `names`, the distinct labels in order of appearance.
    label_ids: Vec<usize>,
    names: Vec<String>,
    ids: HashMap<String, usize>,
}

impl<F: Real> Labelled<'_, F> {
    /// `column 3`, or `column 3 ("petal")` when there is a header.
    fn column(&self, c: usize) -> String {
        match self.header {
            Some(h) => format!("column {c} ({})", show(&h[c])),
            None => format!("column {c}"),
        }
    }

    /// How to choose column `c` as the label in a spec.
    fn choose(&self, c: usize) -> String {
        let base = format!("csv:{}{}", self.file, delimiter_option(self.delimiter));
        let name = self.header.map(|h| h[c].as_str()).filter(|name| {
            !name.is_empty()
                && !name.bytes().all(|b| b.is_ascii_digit())
                && *name != "last"
                && !name.contains("#label=")
                && !name.contains("#delim=")
                && self.header.and_then(|h| find_column(h, name)) == Some(c)
        });
        match name {
            Some(name) => format!("{base}#label={name} or #label={c}"),
            None => format!("{base}#label={c}"),
        }
    }

    fn feature(&self, cell: &str, line: usize, c: usize) -> Result<F, DataError> {
        if cell.is_empty() {
            return Err(DataError::parse(
                self.file,
                line,
                format!(
                    "{}: the cell is empty; every feature must be a number (fill in or drop missing values)",
                    self.column(c)
                ),
            ));
        }
        if cell.parse::<f64>().is_err() {
            return Err(DataError::parse(
                self.file,
                line,
                format!(
                    "{}: {} is not a number; if this column holds the labels, choose it with {}",
                    self.column(c),
                    show(cell),
                    self.choose(c)
                ),
            ));
        }
        let v = number(cell, self.file, line, || self.column(c))?;
        to_precision::<F>(v, self.file, line, || self.column(c))
    }

    fn push(&mut self, line: usize, row: &[&str]) -> Result<(), DataError> {
        if row.len() != self.width {
            return Err(DataError::parse(
                self.file,
                line,
                width_message(self.width, row.len(), self.first_line, self.delimiter),
            ));
        }
        for (c, cell) in row.iter().enumerate() {
            if c == self.label_col {
                if cell.is_empty() {
                    return Err(DataError::parse(
                        self.file,
                        line,
                        format!("{}: the label is empty; every row needs a label", self.column(c)),
                    ));
                }
                let id = match self.ids.get(*cell) {
                    Some(&id) => id,
                    None => {
                        self.names.push(cell.to_string());
                        self.ids.insert(cell.to_string(), self.names.len() - 1);
                        self.names.len() - 1
                    }
                };
                self.label_ids.push(id);
            } else {
                let v = self.feature(cell, line, c)?;
                self.data.push(v);
            }
        }
        Ok(())
    }
}

fn labelled_from<F: Real>(mut records: Records<'_>, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    let file = records.file.clone();
    let file = file.as_str();
    let Some(first_line) = records.next()? else {
        return Err(DataError::empty(file, "the file is empty"));
    };
    let first: Vec<String> = records.cells(first_line)?.into_iter().map(str::to_string).collect();
    let width = first.len();
    if width < 2 {
        return Err(DataError::empty(file, one_column_message(first_line, &first[0], file, opts.delimiter)));
    }
    let label_col = match &opts.label {
        LabelColumn::Last => width - 1,
        LabelColumn::Index(i) if *i < width => *i,
        LabelColumn::Index(i) => {
            return Err(DataError::parse(
                file,
                first_line,
                format!("label column index {i} does not exist: the rows have {width} columns (0..{width})"),
            ))
        }
        LabelColumn::Name(name) => {
            if opts.header == HeaderMode::Absent {
                return Err(DataError::invalid(
                    "label",
                    format!("column {name:?} is chosen by name but the file is declared to have no header"),
                ));
            }
            find_column(&first, name).ok_or_else(|| {
                DataError::parse(
                    file,
                    first_line,
                    format!("no header column named {name:?}; columns: {}", first.join(", ")),
                )
            })?
        }
    };
    let has_header = match opts.header {
        HeaderMode::Present => true,
        HeaderMode::Absent => false,
        HeaderMode::Auto => {
            matches!(opts.label, LabelColumn::Name(_))
                || first.iter().enumerate().any(|(c, cell)| c != label_col && cell.parse::<f64>().is_err())
        }
    };
    let mut rows = Labelled::<F> {
        file,
        width,
        first_line,
        label_col,
        header: has_header.then_some(first.as_slice()),
        delimiter: opts.delimiter,
        data: Vec::new(),
        label_ids: Vec::new(),
        names: Vec::new(),
        ids: HashMap::new(),
    };
    if !has_header {
        let row: Vec<&str> = first.iter().map(String::as_str).collect();
        rows.push(first_line, &row)?;
    }
    while let Some(line) = records.next()? {
        let row = records.cells(line)?;
        rows.push(line, &row)?;
    }
    if rows.label_ids.is_empty() {
        return Err(DataError::empty(file, "no data rows"));
    }
    let (rank, class_names) = classes(&rows.names);
    let y: Vec<usize> = rows.label_ids.iter().map(|&id| rank[id]).collect();
    let n = y.len();
    let x = Matrix::from_vec(n, width - 1, rows.data).map_err(|e| DataError::empty(file, e.to_string()))?;
    Ok(Dataset {
        name: "csv".into(),
        x,
        y,
        num_classes: class_names.len(),
        class_names,
        layout: Layout::Vector { reserved_leading: 0 },
    })
}

/// Index of the header cell `name`: exact match, else a unique case-insensitive match.
fn find_column(header: &[String], name: &str) -> Option<usize> {
    if let Some(i) = header.iter().position(|h| h == name) {
        return Some(i);
    }
    let mut it = header.iter().enumerate().filter(|(_, h)| h.eq_ignore_ascii_case(name));
    match (it.next(), it.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// Numbers the distinct labels `names` (in order of first appearance). If all are finite
/// numbers, labels of the same value are one class, classes in numeric order, each named by its
/// first spelling in `names`; else each text is a class, in lexicographic order. Returns the
/// class of each entry of `names` and the class names in order.
fn classes(names: &[String]) -> (Vec<usize>, Vec<String>) {
    // `+ 0.0` turns -0 into 0, so that "-0" and "0" are one class.
    let values: Option<Vec<f64>> =
        names.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v + 0.0)).collect();
    let mut order: Vec<usize> = (0..names.len()).collect();
    match &values {
        // Ties keep the order of appearance, so the first spelling of a value comes first.
        Some(v) => order.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b))),
        None => order.sort_by(|&a, &b| names[a].cmp(&names[b])),
    }
    let mut rank = vec![0; names.len()];
    let mut class_names: Vec<String> = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let same = k > 0 && values.as_ref().is_some_and(|v| v[order[k - 1]] == v[i]);
        if !same {
            class_names.push(names[i].clone());
        }
        rank[i] = class_names.len() - 1;
    }
    (rank, class_names)
}

/// Parses a CSV file of numbers without header (plain or gzip bytes), cells separated by `,`,
/// in the dialect of the [crate documentation](crate#csv-files): every row the same width.
///
/// # Errors
/// [`DataError::Parse`] naming the line for a ragged row, a non-numeric, NaN or infinite cell,
/// a cell that overflows `F` (`1e39` in `f32`), invalid UTF-8, a line longer than 16 MiB;
/// [`DataError::Empty`] if there is no row; [`DataError::Gzip`] for a corrupt compressed file.
pub fn parse_numeric_csv<F: Real>(bytes: &[u8], file: &str) -> Result<Matrix<F>, DataError> {
    numeric_from(Records::new(bytes, file, b',')?)
}

fn numeric_from<F: Real>(mut records: Records<'_>) -> Result<Matrix<F>, DataError> {
    let file = records.file.clone();
    let file = file.as_str();
    let mut width = None;
    let mut data: Vec<F> = Vec::new();
    let mut n = 0;
    while let Some(line) = records.next()? {
        let k = records.len();
        match width {
            None => width = Some((k, line)),
            Some((w, first)) if w != k => return Err(DataError::parse(file, line, width_message(w, k, first, b','))),
            Some(_) => {}
        }
        for c in 0..k {
            let what = || {
                let hint = if n == 0 { " (this file must not have a header)" } else { "" };
                format!("column {c}{hint}")
            };
            let v = number(records.cell(c, line)?, file, line, what)?;
            data.push(to_precision::<F>(v, file, line, what)?);
        }
        n += 1;
    }
    let Some((w, _)) = width else {
        return Err(DataError::empty(file, "no data rows"));
    };
    Matrix::from_vec(n, w, data).map_err(|e| DataError::empty(file, e.to_string()))
}

/// Opens a header-less numeric CSV file (plain or gzip) and reads it as [`parse_numeric_csv`].
fn read_numeric<F: Real>(path: &Path, dataset: &str, advice: &str) -> Result<Matrix<F>, DataError> {
    let f = open_file(path, dataset, "a CSV file", advice)?;
    numeric_from(Records::new(BufReader::with_capacity(1 << 16, f), &path.display().to_string(), b',')?)
}

/// Reads measured input/output pairs: two header-less numeric CSV files, row `i` of `y_path`
/// being the measured response to row `i` of `x_path` (e.g. the acoustic layer's
/// `x_data.csv` / `y_data.csv`, 10 001 x 20 each, also built in: [`crate::builtin_acoustic_pairs`]).
///
/// # Errors
/// As [`parse_numeric_csv`] for each file (each read as a stream, never whole);
/// [`DataError::NotFound`] / [`DataError::NotAFile`] / [`DataError::Io`] if one cannot be read;
/// [`DataError::Mismatch`] naming both files if their row counts differ.
///
/// # Examples
/// ```no_run
/// // The acoustic pairs that ff-data ships (gzip is detected), as a user's files would be read.
/// let (x, y) = ff_data::read_pairs::<f32>(
///     "ff-data/data/phyll-acoustic/x_data.csv.gz".as_ref(),
///     "ff-data/data/phyll-acoustic/y_data.csv.gz".as_ref(),
/// )?;
/// assert_eq!((x.rows(), x.cols(), y.cols()), (10_001, 20, 20));
/// # Ok::<(), ff_data::DataError>(())
/// ```
pub fn read_pairs<F: Real>(x_path: &Path, y_path: &Path) -> Result<(Matrix<F>, Matrix<F>), DataError> {
    let advice = "check the path (phyff does not fetch measured pairs)";
    let x = read_numeric(x_path, "input file", advice)?;
    let y = read_numeric(y_path, "output file", advice)?;
    if x.rows() != y.rows() {
        return Err(DataError::Mismatch {
            first: x_path.display().to_string(),
            second: y_path.display().to_string(),
            message: format!(
                "{} input rows but {} output rows; row i of the outputs must answer row i of the inputs",
                x.rows(),
                y.rows()
            ),
        });
    }
    Ok((x, y))
}

/// [`read_pairs`], also checking the widths (the physical system's input and output lengths).
///
/// # Errors
/// As [`read_pairs`], and [`DataError::Mismatch`] if a file's width is not the expected one.
pub fn read_pairs_checked<F: Real>(
    x_path: &Path,
    y_path: &Path,
    x_width: usize,
    y_width: usize,
) -> Result<(Matrix<F>, Matrix<F>), DataError> {
    let (x, y) = read_pairs::<F>(x_path, y_path)?;
    for (m, path, want, what) in [(&x, x_path, x_width, "input"), (&y, y_path, y_width, "output")] {
        if m.cols() != want {
            return Err(DataError::Mismatch {
                first: path.display().to_string(),
                second: format!("the expected {what} width"),
                message: format!("rows have {} values, expected {want}", m.cols()),
            });
        }
    }
    Ok((x, y))
}
