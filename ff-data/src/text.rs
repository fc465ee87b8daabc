//! Small helpers shared by the text parsers: reading files, gzip, lines, cells and numbers.
//!
//! Text files are read as a stream of lines ([`TextLines`]): never whole, and never a line
//! longer than [`MAX_LINE`] bytes, so that an endless or binary file (`/dev/zero`) is refused
//! after its first 16 MiB instead of being read until memory runs out.

use crate::error::DataError;
use ff_core::Real;
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The two magic bytes that open every gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Longest line (in bytes, without its line break) accepted in a text data file: far above any
/// real row (a 28 x 28 image as CSV is about 3 KiB), far below a file that is not text.
pub(crate) const MAX_LINE: usize = 16 << 20;

/// `true` if `bytes` starts like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Maps an I/O error on `path` to [`DataError::NotFound`] (file absent, with `advice`) or
/// [`DataError::Io`].
pub(crate) fn io_error(path: &Path, dataset: &str, advice: &str, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound { dataset: dataset.to_string(), path: path.to_path_buf(), advice: advice.to_string() }
    } else {
        DataError::Io { path: path.to_path_buf(), source: e }
    }
}

/// Opens `path` for reading: a missing file is [`DataError::NotFound`] with `advice`, a
/// directory [`DataError::NotAFile`] (`what` says what was expected there: `"a CSV file"`).
pub(crate) fn open_file(path: &Path, dataset: &str, what: &str, advice: &str) -> Result<File, DataError> {
    let f = File::open(path).map_err(|e| io_error(path, dataset, advice, e))?;
    let meta = f.metadata().map_err(|e| io_error(path, dataset, advice, e))?;
    if meta.is_dir() {
        return Err(DataError::NotAFile {
            path: path.to_path_buf(),
            found: "a directory".into(),
            expected: what.to_string(),
            advice: "give the path of the file itself".into(),
        });
    }
    Ok(f)
}

/// Opens a text file (plain or gzip, detected by its magic bytes) as [`TextLines`].
pub(crate) fn open_text(
    path: &Path,
    dataset: &str,
    what: &str,
    advice: &str,
) -> Result<TextLines<Box<dyn BufRead>>, DataError> {
    let f = open_file(path, dataset, what, advice)?;
    TextLines::new(BufReader::with_capacity(1 << 16, f), &path.display().to_string())
}

/// Lines of a text stream (plain or gzip, told apart by the magic bytes), read one at a time
/// with their 1-based numbers, without the line terminator (`\n` or `\r\n`) and, on the first
/// line, without a UTF-8 byte-order mark. A line longer than [`MAX_LINE`] bytes, invalid
/// UTF-8 or a corrupt gzip stream is an error naming the file and the line.
pub(crate) struct TextLines<R> {
    reader: R,
    file: String,
    gzip: bool,
    line: usize,
    /// Bytes read so far (of the decompressed stream for gzip).
    offset: u64,
    buf: Vec<u8>,
}

impl<'a> TextLines<Box<dyn BufRead + 'a>> {
    /// Wraps `reader`, decompressing it when it starts with the gzip magic bytes.
    pub(crate) fn new(mut reader: impl BufRead + 'a, file: &str) -> Result<Self, DataError> {
        let head = reader.fill_buf().map_err(|e| DataError::Io { path: file.into(), source: e })?;
        let gzip = head.len() >= 2 && head[..2] == GZIP_MAGIC;
        let reader: Box<dyn BufRead + 'a> =
            if gzip { Box::new(BufReader::with_capacity(1 << 16, GzDecoder::new(reader))) } else { Box::new(reader) };
        Ok(TextLines { reader, file: file.to_string(), gzip, line: 0, offset: 0, buf: Vec::new() })
    }
}

impl<R: BufRead> TextLines<R> {
    /// The file name used in errors.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// The next line and its number, `None` at the end of the stream.
    pub(crate) fn next_line(&mut self) -> Result<Option<(usize, &str)>, DataError> {
        self.buf.clear();
        let limit = MAX_LINE as u64 + 2; // the line, "\r\n", and one byte more to tell
        let n = match (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf) {
            Ok(n) => n,
            Err(e) if self.gzip => {
                return Err(DataError::Gzip {
                    file: self.file.clone(),
                    decompressed: self.offset + self.buf.len() as u64,
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(DataError::Io { path: self.file.clone().into(), source: e }),
        };
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let start = self.offset;
        self.offset += n as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE {
            return Err(DataError::parse(
                &self.file,
                self.line,
                format!(
                    "line {} is longer than {} MiB (no line break in its first {} bytes): this is not a text \
                     data file, or not one phyff reads; check the path",
                    self.line,
                    MAX_LINE >> 20,
                    self.buf.len()
                ),
            ));
        }
        let mut text: &[u8] = &self.buf;
        if self.line == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        match std::str::from_utf8(text) {
            Ok(s) => Ok(Some((self.line, s))),
            Err(e) => {
                let at = start + (self.buf.len() - text.len() + e.valid_up_to()) as u64;
                Err(DataError::parse(
                    &self.file,
                    self.line,
                    format!("invalid UTF-8 at byte offset {at}; expected a text file"),
                ))
            }
        }
    }
}

/// A [`Read`] adapter that bounds how much of a text stream a record parser (the `csv` crate)
/// may buffer: it counts the bytes since the last `\n` and since the start of the current
/// record, and fails with an I/O error wrapping a [`DataError::Parse`] when a line is longer
/// than [`MAX_LINE`] bytes (not counting its `\r\n`) or a record (several lines joined by a
/// quoted cell) longer than [`MAX_RECORD`] bytes. So an endless file without line breaks
/// (`/dev/zero`) fails after 16 MiB, and a quote that is never closed fails after 32 MiB,
/// instead of being read until memory runs out. A gzip stream is decompressed on the fly
/// (detected by its magic bytes); its errors become [`DataError::Gzip`], other read errors
/// [`DataError::Io`]. Recover the [`DataError`] from an I/O error with [`BoundedText::error`].
pub(crate) struct BoundedText<R> {
    inner: R,
    file: String,
    gzip: bool,
    /// Bytes handed out so far (of the decompressed stream for gzip).
    total: u64,
    /// 1-based number of the line being read.
    line: u64,
    /// Bytes since the last `\n`.
    since_newline: u64,
    /// Where the record being parsed starts (byte offset and line), set by the parser.
    record_start: std::cell::Cell<(u64, u64)>,
}

/// Longest record (a row, possibly over several lines joined by a quoted cell) accepted in a
/// text data file, in bytes.
pub(crate) const MAX_RECORD: usize = 32 << 20;

impl<'a> BoundedText<Box<dyn Read + 'a>> {
    /// Wraps `reader`, decompressing it when it starts with the gzip magic bytes.
    pub(crate) fn new(mut reader: impl BufRead + 'a, file: &str) -> Result<Self, DataError> {
        let head = reader.fill_buf().map_err(|e| DataError::Io { path: file.into(), source: e })?;
        let gzip = is_gzip(head);
        let inner: Box<dyn Read + 'a> = if gzip { Box::new(GzDecoder::new(reader)) } else { Box::new(reader) };
        Ok(BoundedText {
            inner,
            file: file.to_string(),
            gzip,
            total: 0,
            line: 1,
            since_newline: 0,
            record_start: std::cell::Cell::new((0, 1)),
        })
    }
}

impl<R> BoundedText<R> {
    /// Tells the adapter that the next record starts at byte `offset` of the stream, on `line`.
    pub(crate) fn record_starts(&self, offset: u64, line: u64) {
        self.record_start.set((offset, line));
    }

    /// Whether the byte before `offset` (a position in the stream already read) ends a line:
    /// `true` when bytes were read past it (a record parser stops inside the data only after a
    /// line break), else when the last byte read is `\n`.
    pub(crate) fn line_ended_at(&self, offset: u64) -> bool {
        offset > 0 && (offset < self.total || self.since_newline == 0)
    }

    /// The [`DataError`] carried by an I/O error of this adapter, or the error as
    /// [`DataError::Io`] on `file`.
    pub(crate) fn error(e: std::io::Error, file: &str) -> DataError {
        e.downcast::<DataError>().unwrap_or_else(|e| DataError::Io { path: file.into(), source: e })
    }

    fn too_long(&self, line: u64, bytes: u64) -> std::io::Error {
        std::io::Error::other(DataError::parse(
            &self.file,
            line as usize,
            format!(
                "line {line} is longer than {} MiB (no line break in its first {bytes} bytes): this is not a text \
                 data file, or not one phyff reads; check the path",
                MAX_LINE >> 20
            ),
        ))
    }
}

impl<R: Read> Read for BoundedText<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            // The csv reader's buffer does not retry: retry here.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return self.read(buf),
            Err(e) if self.gzip => {
                return Err(std::io::Error::other(DataError::Gzip {
                    file: self.file.clone(),
                    decompressed: self.total,
                    message: e.to_string(),
                }))
            }
            Err(e) => return Err(std::io::Error::other(DataError::Io { path: self.file.clone().into(), source: e })),
        };
        // A line may end in "\r\n": allow MAX_LINE bytes and the '\r'.
        let limit = MAX_LINE as u64 + 1;
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let len = self.since_newline + i as u64;
            if len > limit {
                return Err(self.too_long(self.line, len));
            }
            self.line += 1;
            self.since_newline = 0;
            rest = &rest[i + 1..];
        }
        self.since_newline += rest.len() as u64;
        if self.since_newline > limit {
            return Err(self.too_long(self.line, self.since_newline));
        }
        self.total += n as u64;
        let (start, line) = self.record_start.get();
        if self.total.saturating_sub(start) > MAX_RECORD as u64 {
            return Err(std::io::Error::other(DataError::parse(
                &self.file,
                line as usize,
                format!(
                    "the record that starts on line {line} runs on for more than {} MiB (to line {}): a \
                     quote (\") that is never closed? A quoted cell runs to the next quote, across line breaks",
                    MAX_RECORD >> 20,
                    self.line
                ),
            )));
        }
        Ok(n)
    }
}

/// Reads a whole text file through [`TextLines`] (lines bounded by [`MAX_LINE`], lines joined
/// by `\n`), refusing files above `max_total` bytes of text.
pub(crate) fn read_text(
    path: &Path,
    dataset: &str,
    what: &str,
    advice: &str,
    max_total: usize,
) -> Result<String, DataError> {
    let mut lines = open_text(path, dataset, what, advice)?;
    let mut text = String::new();
    while let Some((ln, line)) = lines.next_line()? {
        if text.len() + line.len() + 1 > max_total {
            return Err(DataError::parse(
                lines.file(),
                ln,
                format!("the file is larger than {} MiB, more than {what} holds; check the path", max_total >> 20),
            ));
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// `v`, read from `file` at `line` (`what` names the column), in precision `F`: a value that
/// is finite but overflows `F` (`1e39` in `f32`) is an error naming the file, the line, the
/// column and the value, and what to do.
pub(crate) fn to_precision<F: Real>(
    v: f64,
    file: &str,
    line: usize,
    what: impl FnOnce() -> String,
) -> Result<F, DataError> {
    ff_core::real::to_real::<F>(v)
        .ok_or_else(|| DataError::parse(file, line, format!("{}: {}", what(), ff_core::real::overflow_message::<F>(v))))
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

    fn all_lines(bytes: &[u8]) -> Result<Vec<(usize, String)>, DataError> {
        let mut t = TextLines::new(bytes, "t.csv")?;
        let mut out = Vec::new();
        while let Some((n, l)) = t.next_line()? {
            out.push((n, l.to_string()));
        }
        Ok(out)
    }

    #[test]
    fn text_lines_stream_plain_and_gzip_alike() {
        let want = vec![(1, "a".to_string()), (2, "b,c".into()), (3, "".into()), (4, "d".into())];
        assert_eq!(all_lines(b"\xEF\xBB\xBFa\r\nb,c\n\nd").unwrap(), want);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, b"a\nb,c\n\nd\n").unwrap();
        assert_eq!(all_lines(&e.finish().unwrap()).unwrap(), want);
        let e = all_lines(b"ok\nok\n\xff").unwrap_err().to_string();
        assert_eq!(e, "t.csv:3: invalid UTF-8 at byte offset 6; expected a text file");
        assert!(matches!(all_lines(&[0x1f, 0x8b, 8, 0, 0, 0]), Err(DataError::Gzip { .. })));
    }

    #[test]
    fn a_line_longer_than_the_bound_is_refused_after_reading_it_only() {
        let mut text = vec![b'1'; MAX_LINE];
        text.extend_from_slice(b"\r\n2\n");
        assert_eq!(all_lines(&text).unwrap().len(), 2, "a line of exactly MAX_LINE bytes is fine");
        // An endless line: only MAX_LINE + 2 bytes of it are read.
        let mut endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let mut t = TextLines::new(&mut endless, "endless").unwrap();
        let e = t.next_line().unwrap_err().to_string();
        assert!(
            e.starts_with("endless:1: line 1 is longer than 16 MiB (no line break in its first 16777218 bytes)"),
            "{e}"
        );
    }

    fn read_bounded(bytes: &[u8]) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        let mut r = BoundedText::new(bytes, "t.csv")?;
        r.read_to_end(&mut out).map_err(|e| BoundedText::<()>::error(e, "t.csv"))?;
        Ok(out)
    }

    #[test]
    fn bounded_text_refuses_a_line_past_the_bound_only() {
        let mut text = vec![b'1'; MAX_LINE];
        text.extend_from_slice(b"\r\n2\n");
        assert_eq!(read_bounded(&text).unwrap(), text, "a line of exactly MAX_LINE bytes and CRLF is fine");
        let mut long = b"ok\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 2));
        long.push(b'\n');
        let e = read_bounded(&long).unwrap_err().to_string();
        assert!(e.starts_with("t.csv:2: line 2 is longer than 16 MiB"), "{e}");
        // Gzip is decompressed; a corrupt stream is a gzip error.
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut g, b"a,b\n1,2\n").unwrap();
        let g = g.finish().unwrap();
        assert_eq!(read_bounded(&g).unwrap(), b"a,b\n1,2\n");
        assert!(matches!(read_bounded(&g[..g.len() - 9]), Err(DataError::Gzip { .. })));
    }

    #[test]
    fn values_that_overflow_the_precision_name_the_place() {
        assert_eq!(to_precision::<f32>(2.5, "f", 1, || "c".into()).unwrap(), 2.5);
        let e = to_precision::<f32>(1e39, "f.csv", 4, || "column 2".into()).unwrap_err().to_string();
        assert!(e.starts_with("f.csv:4: column 2: value 1e39 overflows f32"), "{e}");
        assert_eq!(to_precision::<f64>(1e39, "f", 1, || "c".into()).unwrap(), 1e39);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let e = gunzip(&[0x1f, 0x8b, 8, 0, 0, 0], "x.gz").unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    }
}
