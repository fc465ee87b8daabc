//! Small helpers shared by the text parsers: reading files, gzip, lines, cells and numbers.

use crate::error::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// The two magic bytes that open every gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `true` if `bytes` starts like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Reads a whole file; a missing file becomes [`DataError::NotFound`] with `fetch` as the advice.
pub(crate) fn read_file(path: &Path, dataset: &str, fetch: &str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| io_error(path, dataset, fetch, e))
}

/// Maps an I/O error on `path` to [`DataError::NotFound`] (file absent) or [`DataError::Io`].
pub(crate) fn io_error(path: &Path, dataset: &str, fetch: &str, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound { dataset: dataset.to_string(), path: path.to_path_buf(), fetch: fetch.to_string() }
    } else {
        DataError::Io { path: path.to_path_buf(), source: e }
    }
}

/// Decompresses a complete gzip stream held in memory.
pub(crate) fn gunzip(bytes: &[u8], file: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    let mut dec = GzDecoder::new(bytes);
    // Read in chunks so that a failure can report how far decompression got.
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(DataError::Gzip {
                    file: file.to_string(),
                    decompressed: out.len() as u64,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Decompresses `bytes` if they are gzip, else borrows them unchanged.
pub(crate) fn maybe_gunzip<'a>(bytes: &'a [u8], file: &str) -> Result<std::borrow::Cow<'a, [u8]>, DataError> {
    if is_gzip(bytes) {
        Ok(std::borrow::Cow::Owned(gunzip(bytes, file)?))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}

/// Interprets `bytes` as UTF-8 text (a leading byte-order mark is skipped); an invalid sequence
/// is reported with its line.
pub(crate) fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        DataError::parse(file, line, format!("invalid UTF-8 at byte offset {at}; expected a text file"))
    })
}

/// The lines of `text` with their 1-based numbers, without the line terminator (`\n` or `\r\n`).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// The comma-separated cells of a line, trimmed, with one pair of surrounding double quotes
/// removed (quoted cells may not contain commas).
pub(crate) fn cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|c| {
        let c = c.trim();
        c.strip_prefix('"').and_then(|c| c.strip_suffix('"')).unwrap_or(c)
    })
}

/// Shortens a cell for an error message.
pub(crate) fn show(cell: &str) -> String {
    let mut s: String = cell.chars().take(40).collect();
    if s.len() < cell.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// Parses a finite number; `what` names the column for the message (`"column 3"`, `"F1_50"`),
/// and is only called on failure.
pub(crate) fn number(cell: &str, file: &str, line: usize, what: impl FnOnce() -> String) -> Result<f64, DataError> {
    match cell.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(DataError::parse(
            file,
            line,
            format!("{}: value {} is {v}; only finite numbers are accepted", what(), show(cell)),
        )),
        Err(_) => Err(DataError::parse(file, line, format!("{}: {} is not a number", what(), show(cell)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_crlf_and_count_from_one() {
        let v: Vec<_> = lines("a\r\nb\nc").collect();
        assert_eq!(v, [(1, "a"), (2, "b"), (3, "c")]);
    }

    #[test]
    fn cells_trim_and_unquote() {
        let v: Vec<_> = cells(" 1, \"x\" ,\"\",2 ").collect();
        assert_eq!(v, ["1", "x", "", "2"]);
    }

    #[test]
    fn number_rejects_non_finite_and_garbage() {
        assert_eq!(number(" 2.5 ", "f", 1, || "c".into()).unwrap(), 2.5);
        for bad in ["nan", "NaN", "inf", "-infinity", "1e999", "abc", ""] {
            let e = number(bad, "f.csv", 7, || "column 2".into()).unwrap_err().to_string();
            assert!(e.starts_with("f.csv:7: column 2"), "{e}");
        }
    }

    #[test]
    fn utf8_error_names_the_line() {
        let e = utf8(b"ok\nok\n\xff", "t.csv").unwrap_err().to_string();
        assert!(e.starts_with("t.csv:3:"), "{e}");
        assert_eq!(utf8(b"\xEF\xBB\xBFa,b", "t").unwrap(), "a,b");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let e = gunzip(&[0x1f, 0x8b, 8, 0, 0, 0], "x.gz").unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    }
}
