//! Generic numeric CSV files: labelled data sets, and measured input/output pairs.
//!
//! The dialect: comma-separated cells, one record per line (`\n` or `\r\n`), cells trimmed,
//! one pair of surrounding double quotes removed (a quoted cell may not contain a comma or a line
//! break), blank lines ignored, an optional UTF-8 byte-order mark skipped, gzip-compressed files
//! accepted (detected by magic bytes). Feature cells must be finite numbers that fit the
//! precision loaded (`1e39` does not fit `f32`). Files are read line by line, never whole; a
//! line longer than 16 MiB is refused (an endless file such as `/dev/zero` fails at once).

use crate::dataset::{Dataset, Layout};
use crate::error::DataError;
use crate::text::{cells, number, open_text, to_precision, TextLines};
use ff_core::{Matrix, Real};
use std::collections::HashMap;
use std::io::BufRead;
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column.
    pub label: LabelColumn,
    /// Header handling.
    pub header: HeaderMode,
}

/// What to do about a CSV file that is not there: phyff never fetches these.
const CSV_ADVICE: &str = "check the path (phyff does not fetch CSV files)";

/// Reads a labelled CSV file: one sample per line, numeric features in every column but the
/// label's. See [`parse_labelled_csv`] for the rules. The file is read line by line (never
/// whole); a line longer than 16 MiB is an error.
///
/// # Errors
/// [`DataError::NotFound`] / [`DataError::NotAFile`] / [`DataError::Io`] if the file cannot be
/// read; otherwise as [`parse_labelled_csv`].
pub fn read_labelled_csv<F: Real>(path: &Path, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    let lines = open_text(path, "CSV file", "a CSV file", CSV_ADVICE)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".csv").to_string())
        .unwrap_or_else(|| "csv".into());
    let mut d = labelled_from(lines, opts)?;
    d.name = name;
    Ok(d)
}

/// Parses a labelled CSV file (plain or gzip bytes).
///
/// **Classes.** The label cells are strings; each distinct string is a class. Classes are
/// numbered in increasing numeric order when every label is a number (`"1","2","10"` become
/// 0, 1, 2), else in lexicographic order; `class_names` holds the strings. The result has
/// `Layout::Vector { reserved_leading: 0 }` and is named `"csv"`.
///
/// # Errors
/// [`DataError::Parse`] naming the line for a row with another number of cells than the first,
/// a non-numeric, NaN or infinite feature, a feature that overflows `F` (`1e39` in `f32`), an
/// empty label, a label column that does not exist, a line longer than 16 MiB;
/// [`DataError::Invalid`] for a label chosen by name with [`HeaderMode::Absent`];
/// [`DataError::Empty`] if there is no data row or no feature column; [`DataError::Gzip`] for a
/// corrupt compressed file.
pub fn parse_labelled_csv<F: Real>(bytes: &[u8], file: &str, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    labelled_from(TextLines::new(bytes, file)?, opts)
}

fn labelled_from<F: Real, R: BufRead>(mut lines: TextLines<R>, opts: &CsvOptions) -> Result<Dataset<F>, DataError> {
    let file = lines.file().to_string();
    let file = file.as_str();
    let (first_ln, first_cells) = loop {
        match lines.next_line()? {
            None => return Err(DataError::empty(file, "the file is empty")),
            Some((_, l)) if l.trim().is_empty() => {}
            Some((ln, l)) => break (ln, cells(l).map(str::to_string).collect::<Vec<String>>()),
        }
    };
    let first_cells: Vec<&str> = first_cells.iter().map(String::as_str).collect();
    let width = first_cells.len();
    if width < 2 {
        return Err(DataError::empty(
            file,
            format!("line {first_ln} has {width} column; a labelled file needs a label and at least one feature"),
        ));
    }
    let label_col = match &opts.label {
        LabelColumn::Last => width - 1,
        LabelColumn::Index(i) if *i < width => *i,
        LabelColumn::Index(i) => {
            return Err(DataError::parse(
                file,
                first_ln,
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
            find_column(&first_cells, name).ok_or_else(|| {
                DataError::parse(
                    file,
                    first_ln,
                    format!("no header column named {name:?}; columns: {}", first_cells.join(", ")),
                )
            })?
        }
    };
    let has_header = match opts.header {
        HeaderMode::Present => true,
        HeaderMode::Absent => false,
        HeaderMode::Auto => {
            matches!(opts.label, LabelColumn::Name(_))
                || first_cells.iter().enumerate().any(|(c, cell)| c != label_col && cell.trim().parse::<f64>().is_err())
        }
    };
    let d = width - 1;
    let mut data: Vec<F> = Vec::new();
    // Each row's label as an index into `names`, the distinct label strings in order of appearance.
    let mut label_ids: Vec<usize> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut add_row = |ln: usize, row: &[&str]| -> Result<(), DataError> {
        if row.len() != width {
            return Err(DataError::parse(
                file,
                ln,
                format!("expected {width} comma-separated cells (as on line {first_ln}), found {}", row.len()),
            ));
        }
        for (c, cell) in row.iter().enumerate() {
            if c == label_col {
                if cell.is_empty() {
                    return Err(DataError::parse(file, ln, format!("label (column {c}) is empty")));
                }
                let id = match ids.get(*cell) {
                    Some(&id) => id,
                    None => {
                        names.push(cell.to_string());
                        ids.insert(cell.to_string(), names.len() - 1);
                        names.len() - 1
                    }
                };
                label_ids.push(id);
            } else {
                let v = number(cell, file, ln, || format!("column {c}"))?;
                data.push(to_precision::<F>(v, file, ln, || format!("column {c}"))?);
            }
        }
        Ok(())
    };
    if !has_header {
        add_row(first_ln, &first_cells)?;
    }
    while let Some((ln, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let row: Vec<&str> = cells(line).collect();
        add_row(ln, &row)?;
    }
    if label_ids.is_empty() {
        return Err(DataError::empty(file, "no data rows"));
    }
    let (rank, class_names) = classes(&names);
    let y: Vec<usize> = label_ids.iter().map(|&id| rank[id]).collect();
    let n = y.len();
    let x = Matrix::from_vec(n, d, data).map_err(|e| DataError::empty(file, e.to_string()))?;
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
fn find_column(header: &[&str], name: &str) -> Option<usize> {
    if let Some(i) = header.iter().position(|h| *h == name) {
        return Some(i);
    }
    let mut it = header.iter().enumerate().filter(|(_, h)| h.eq_ignore_ascii_case(name));
    match (it.next(), it.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// Numbers the distinct label strings `names`: numeric order if all are numbers, else
/// lexicographic. Returns the class of each entry of `names` and the class names in order.
fn classes(names: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let numeric: Option<Vec<f64>> = sorted.iter().map(|s| s.parse::<f64>().ok()).collect();
    if let Some(values) = numeric {
        let mut order: Vec<usize> = (0..sorted.len()).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(sorted[a].cmp(sorted[b])));
        sorted = order.into_iter().map(|i| sorted[i]).collect();
    }
    let class: HashMap<&str, usize> = sorted.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let rank = names.iter().map(|s| class.get(s.as_str()).copied().unwrap_or(0)).collect();
    (rank, sorted.into_iter().map(str::to_string).collect())
}

/// Parses a CSV file of numbers without header (plain or gzip bytes): every row the same width.
///
/// # Errors
/// [`DataError::Parse`] naming the line for a ragged row, a non-numeric, NaN or infinite cell,
/// a cell that overflows `F` (`1e39` in `f32`), a line longer than 16 MiB;
/// [`DataError::Empty`] if there is no row.
pub fn parse_numeric_csv<F: Real>(bytes: &[u8], file: &str) -> Result<Matrix<F>, DataError> {
    numeric_from(TextLines::new(bytes, file)?)
}

fn numeric_from<F: Real, R: BufRead>(mut lines: TextLines<R>) -> Result<Matrix<F>, DataError> {
    let file = lines.file().to_string();
    let file = file.as_str();
    let mut width = None;
    let mut data: Vec<F> = Vec::new();
    let mut n = 0;
    while let Some((ln, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let mut k = 0;
        for cell in cells(line) {
            let what = || {
                let hint = if n == 0 { " (this file must not have a header)" } else { "" };
                format!("column {k}{hint}")
            };
            let v = number(cell, file, ln, what)?;
            data.push(to_precision::<F>(v, file, ln, what)?);
            k += 1;
        }
        match width {
            None => width = Some((k, ln)),
            Some((w, first)) if w != k => {
                return Err(DataError::parse(file, ln, format!("expected {w} cells (as on line {first}), found {k}")))
            }
            Some(_) => {}
        }
        n += 1;
    }
    let Some((w, _)) = width else {
        return Err(DataError::empty(file, "no data rows"));
    };
    Matrix::from_vec(n, w, data).map_err(|e| DataError::empty(file, e.to_string()))
}

/// Reads measured input/output pairs: two header-less numeric CSV files, row `i` of `y_path`
/// being the measured response to row `i` of `x_path` (e.g. the acoustic layer's
/// `x_data.csv` / `y_data.csv`, 10 001 x 20 each, also built in: [`crate::builtin_acoustic_pairs`]).
///
/// # Errors
/// As [`parse_numeric_csv`] for each file (each read line by line, never whole);
/// [`DataError::NotFound`] / [`DataError::NotAFile`] / [`DataError::Io`] if one cannot be read; [`DataError::Mismatch`] naming both files if their row counts differ.
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
    let x = numeric_from(open_text(x_path, "input file", "a CSV file", advice)?)?;
    let y = numeric_from(open_text(y_path, "output file", "a CSV file", advice)?)?;
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
