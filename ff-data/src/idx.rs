//! The IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//!
//! An IDX file is a big-endian header, then the data: the magic number `0x0000TTDD` (`TT` the
//! element type, `08` = unsigned byte; `DD` the number of dimensions), one `u32` per dimension,
//! then the elements in row-major order. Image files have 3 dimensions (count, rows, columns),
//! label files 1 (count).
//!
//! The readers stream: pixels go from a 64 KiB buffer straight into the `Matrix<F>` through a
//! 256-entry lookup table, so the only large allocation is the result (no intermediate byte or
//! `f64` copy). Gzip is detected by its magic bytes `1f 8b`, not by the file name. Byte offsets in
//! errors count from the start of the (decompressed) IDX stream.

use crate::error::DataError;
use crate::text::{io_error, is_gzip, open_file, GZIP_MAGIC};
use ff_core::{Matrix, Real};
use flate2::read::GzDecoder;
use std::io::{BufReader, Read};
use std::path::Path;

/// Mean pixel value of the MNIST training images (pixels in `[0, 1]`), the usual normalisation.
pub const MNIST_MEAN: f64 = 0.1307;
/// Standard deviation of the MNIST training pixels (in `[0, 1]`).
pub const MNIST_STD: f64 = 0.3081;
/// Mean pixel value of the Fashion-MNIST training images (pixels in `[0, 1]`), for reference:
/// the project normalises Fashion-MNIST with the MNIST constants, as the public PhyLL code
/// (`DNNs/main.py`) does, so results stay comparable.
pub const FASHION_MNIST_MEAN: f64 = 0.2860;
/// Standard deviation of the Fashion-MNIST training pixels, for reference (see
/// [`FASHION_MNIST_MEAN`]).
pub const FASHION_MNIST_STD: f64 = 0.3530;

/// Largest dimension accepted in an IDX header: larger values are corruption, not data.
const MAX_DIM: u32 = 1 << 28;
/// Largest number of elements accepted in an IDX file (4 Gi: MNIST's training images are
/// 47 Mi); a header announcing more is corruption, not data.
const MAX_ELEMENTS: u64 = 1 << 32;
/// Deflate cannot expand data more than about 1032-fold: a bound on a gzip file's content.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Size of the streaming buffer.
const CHUNK: usize = 1 << 16;

/// Pixel normalisation: a byte `p` becomes `(p / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Subtracted after scaling to `[0, 1]`.
    pub mean: f64,
    /// Divides after subtracting the mean.
    pub std: f64,
}

impl Normalisation {
    /// MNIST's mean 0.1307 and standard deviation 0.3081: the project's default for MNIST and
    /// Fashion-MNIST alike.
    pub const MNIST: Normalisation = Normalisation { mean: MNIST_MEAN, std: MNIST_STD };
    /// Fashion-MNIST's own statistics (mean 0.2860, std 0.3530), for experiments that want them.
    pub const FASHION_MNIST: Normalisation = Normalisation { mean: FASHION_MNIST_MEAN, std: FASHION_MNIST_STD };
    /// Plain scaling to `[0, 1]`.
    pub const UNIT: Normalisation = Normalisation { mean: 0.0, std: 1.0 };

    /// The value of each possible byte.
    fn table<F: Real>(self) -> Result<[F; 256], DataError> {
        if !(self.std > 0.0 && self.std.is_finite() && self.mean.is_finite()) {
            return Err(DataError::invalid(
                "normalisation",
                format!("need a finite mean and a positive std, got mean {} std {}", self.mean, self.std),
            ));
        }
        Ok(std::array::from_fn(|p| F::c((p as f64 / 255.0 - self.mean) / self.std)))
    }
}

/// Images read from an IDX file: `count x (rows * cols)`, row-major pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages<F> {
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// One image per row, normalised.
    pub x: Matrix<F>,
}

/// A byte stream that counts how far it got, and knows how to describe its failures.
struct Stream<R> {
    inner: R,
    offset: u64,
    file: String,
    gzip: bool,
    /// Upper bound on the stream's total length (to cap allocations on corrupt headers).
    bound: u64,
}

impl<R: Read> Stream<R> {
    /// Reads until `buf` is full or the stream ends; returns the number of bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let at = self.offset + got as u64;
                    return Err(if self.gzip {
                        DataError::Gzip { file: self.file.clone(), decompressed: at, message: e.to_string() }
                    } else {
                        DataError::binary(&self.file, at, format!("read failed: {e}"))
                    });
                }
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    fn where_(&self) -> &'static str {
        if self.gzip {
            " (offset in the decompressed data)"
        } else {
            ""
        }
    }

    /// Reads the magic number and the dimensions of an IDX header.
    fn header(&mut self, kind: &str, want_dims: u8) -> Result<Vec<u32>, DataError> {
        let mut magic = [0u8; 4];
        let got = self.fill(&mut magic)?;
        if got < 4 {
            return Err(DataError::binary(
                &self.file,
                got as u64,
                format!("file ends inside the 4-byte IDX magic number (expected an {kind} file)"),
            ));
        }
        let want = [0, 0, 0x08, want_dims];
        if magic != want {
            return Err(DataError::binary(
                &self.file,
                0,
                format!(
                    "bad IDX magic number 0x{:08x}: an {kind} file starts with 0x{:08x} \
                     (unsigned bytes, {want_dims} dimension{})",
                    u32::from_be_bytes(magic),
                    u32::from_be_bytes(want),
                    if want_dims == 1 { "" } else { "s" }
                ),
            ));
        }
        let mut dims = Vec::with_capacity(usize::from(want_dims));
        for k in 0..want_dims {
            let mut b = [0u8; 4];
            let at = self.offset;
            if self.fill(&mut b)? < 4 {
                return Err(DataError::binary(
                    &self.file,
                    at,
                    format!("file ends inside the IDX header (dimension {} of {want_dims}){}", k + 1, self.where_()),
                ));
            }
            let d = u32::from_be_bytes(b);
            if d == 0 || d > MAX_DIM {
                return Err(DataError::binary(
                    &self.file,
                    at,
                    format!("IDX dimension {} is {d}; expected 1..={MAX_DIM}{}", k + 1, self.where_()),
                ));
            }
            dims.push(d);
        }
        Ok(dims)
    }

    /// Checks that nothing follows the data.
    fn expect_end(&mut self) -> Result<(), DataError> {
        let at = self.offset;
        let mut b = [0u8; 1];
        if self.fill(&mut b)? > 0 {
            return Err(DataError::binary(
                &self.file,
                at,
                format!("unexpected data after the last element{}", self.where_()),
            ));
        }
        Ok(())
    }

    /// Reads `total` data bytes, handing each chunk to `sink`. Exactly `total` bytes are asked
    /// of the stream (a gzip stream is decompressed no further), [`Stream::expect_end`] then
    /// checks for one more.
    fn data(&mut self, total: u64, mut sink: impl FnMut(&[u8]) -> Result<(), DataError>) -> Result<(), DataError> {
        let start = self.offset;
        let mut buf = vec![0u8; CHUNK];
        let mut left = total;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let got = self.fill(&mut buf[..want])?;
            sink(&buf[..got])?;
            left -= got as u64;
            if got < want {
                return Err(DataError::binary(
                    &self.file,
                    self.offset,
                    format!(
                        "truncated: the header announces {total} data bytes from offset {start}, \
                         the file ends after {}{}",
                        total - left,
                        self.where_()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reserves room for `more` values in `v`, growing it at most to twice what it holds (and at
/// least by a chunk), never beyond `total`: memory follows the data that has arrived, not the
/// size a header announces, and ends at exactly `total` when all of it has.
fn grow<T>(v: &mut Vec<T>, more: usize, total: u64, file: &str) -> Result<(), DataError> {
    let need = v.len() + more;
    if need <= v.capacity() {
        return Ok(());
    }
    let target = (v.len().max(CHUNK) * 2).max(need) as u64;
    let target = target.min(total).max(need as u64) as usize;
    v.try_reserve_exact(target - v.len()).map_err(|_| {
        DataError::binary(file, 4, format!("cannot allocate memory for {target} of the {total} elements announced"))
    })
}

fn images_from<F: Real, R: Read>(mut s: Stream<R>, norm: Normalisation) -> Result<IdxImages<F>, DataError> {
    let table = norm.table::<F>()?;
    let dims = s.header("image (idx3-ubyte)", 3)?;
    let (n, rows, cols) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    // Each dimension is at most 2^28, so the product fits in a u128 but not always in a u64.
    let total = u128::from(dims[0]) * u128::from(dims[1]) * u128::from(dims[2]);
    let Ok(total) = u64::try_from(total) else {
        return Err(DataError::binary(
            &s.file,
            4,
            format!("the header announces {n} images of {rows} x {cols}: {total} bytes is absurd"),
        ));
    };
    // Plain data must fit in the file; a gzip stream cannot hold more than ~1032x its size.
    if !s.gzip && total.saturating_add(16) > s.bound {
        return Err(DataError::binary(
            &s.file,
            s.bound,
            format!(
                "truncated: the header announces {n} images of {rows} x {cols} ({total} bytes after the \
                 16-byte header) but the file has {} bytes",
                s.bound
            ),
        ));
    }
    if s.gzip && total.saturating_add(16) > s.bound {
        return Err(DataError::binary(
            &s.file,
            4,
            format!(
                "the header announces {n} images of {rows} x {cols} ({total} bytes) but {MAX_DEFLATE_RATIO} x the \
                 compressed size is only {} bytes: the file is truncated or the header corrupt",
                s.bound
            ),
        ));
    }
    // Checked after the size checks, so that a short file is reported as truncated.
    if total > MAX_ELEMENTS {
        return Err(DataError::binary(
            &s.file,
            4,
            format!(
                "the header announces {n} images of {rows} x {cols}: {total} pixels is more than the \
                 {MAX_ELEMENTS} an IDX file may hold; the header is corrupt"
            ),
        ));
    }
    let mut data: Vec<F> = Vec::new();
    let file = s.file.clone();
    s.data(total, |chunk| {
        grow(&mut data, chunk.len(), total, &file)?;
        data.extend(chunk.iter().map(|&p| table[usize::from(p)]));
        Ok(())
    })?;
    s.expect_end()?;
    let x = Matrix::from_vec(n, rows * cols, data).map_err(|e| DataError::binary(&s.file, 16, e.to_string()))?;
    Ok(IdxImages { rows, cols, x })
}

fn labels_from<R: Read>(mut s: Stream<R>, num_classes: usize) -> Result<Vec<usize>, DataError> {
    let dims = s.header("label (idx1-ubyte)", 1)?;
    let total = u64::from(dims[0]);
    if !s.gzip && total.saturating_add(8) > s.bound {
        return Err(DataError::binary(
            &s.file,
            s.bound,
            format!("truncated: the header announces {total} labels but the file has {} bytes", s.bound),
        ));
    }
    if s.gzip && total.saturating_add(8) > s.bound {
        return Err(DataError::binary(
            &s.file,
            4,
            format!(
                "the header announces {total} labels but {MAX_DEFLATE_RATIO} x the compressed size is only {} \
                 bytes: the file is truncated or the header corrupt",
                s.bound
            ),
        ));
    }
    let mut y: Vec<usize> = Vec::new();
    let file = s.file.clone();
    let suffix = s.where_();
    s.data(total, |chunk| {
        grow(&mut y, chunk.len(), total, &file)?;
        for &b in chunk {
            let label = usize::from(b);
            if label >= num_classes {
                return Err(DataError::binary(
                    &file,
                    8 + y.len() as u64,
                    format!("label {label} is out of range 0..{num_classes}{suffix}"),
                ));
            }
            y.push(label);
        }
        Ok(())
    })?;
    s.expect_end()?;
    Ok(y)
}

/// Wraps in-memory bytes (plain or gzip) as a stream.
fn stream_bytes<'a>(bytes: &'a [u8], file: &str) -> Stream<Box<dyn Read + 'a>> {
    let gzip = is_gzip(bytes);
    let len = bytes.len() as u64;
    Stream {
        inner: if gzip { Box::new(GzDecoder::new(bytes)) } else { Box::new(bytes) },
        offset: 0,
        file: file.to_string(),
        gzip,
        bound: if gzip { len.saturating_mul(MAX_DEFLATE_RATIO) } else { len },
    }
}

/// Opens a file (plain or gzip) as a stream; `dataset` and the command `fetch` describe a
/// missing file.
fn stream_file(path: &Path, dataset: &str, fetch: &str) -> Result<Stream<Box<dyn Read>>, DataError> {
    let advice = format!("fetch it with `{fetch}`");
    let f = open_file(path, dataset, "an IDX file", &advice)?;
    let len = f.metadata().map_err(|e| io_error(path, dataset, &advice, e))?.len();
    let mut r = BufReader::with_capacity(CHUNK, f);
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, dataset, &advice, e)),
        }
    }
    let gzip = got == 2 && head == GZIP_MAGIC;
    // Put the peeked bytes back in front of the rest.
    let r = std::io::Cursor::new(head[..got].to_vec()).chain(r);
    Ok(Stream {
        inner: if gzip { Box::new(GzDecoder::new(r)) } else { Box::new(r) },
        offset: 0,
        file: path.display().to_string(),
        gzip,
        bound: if gzip { len.saturating_mul(MAX_DEFLATE_RATIO) } else { len },
    })
}

/// Parses an IDX image file held in memory (plain or gzip), normalising the pixels.
///
/// # Errors
/// [`DataError::Binary`] with the byte offset for a bad magic number, a zero or absurd dimension,
/// truncation or trailing data; [`DataError::Gzip`] for a corrupt compressed stream;
/// [`DataError::Invalid`] for a bad normalisation.
pub fn parse_idx_images<F: Real>(bytes: &[u8], file: &str, norm: Normalisation) -> Result<IdxImages<F>, DataError> {
    images_from(stream_bytes(bytes, file), norm)
}

/// Parses an IDX label file held in memory (plain or gzip); every label must be `< num_classes`.
///
/// # Errors
/// As [`parse_idx_images`], and [`DataError::Binary`] for a label out of range (with its offset).
pub fn parse_idx_labels(bytes: &[u8], file: &str, num_classes: usize) -> Result<Vec<usize>, DataError> {
    labels_from(stream_bytes(bytes, file), num_classes)
}

/// Reads an IDX image file (plain or gzip, detected by content), normalising the pixels.
///
/// # Errors
/// [`DataError::NotFound`] (advising to fetch it with the command `fetch`),
/// [`DataError::NotAFile`] (a directory) or [`DataError::Io`] if the file cannot be
/// opened; otherwise as [`parse_idx_images`].
pub fn read_idx_images<F: Real>(path: &Path, norm: Normalisation, fetch: &str) -> Result<IdxImages<F>, DataError> {
    images_from(stream_file(path, "IDX image file", fetch)?, norm)
}

/// Reads an IDX label file (plain or gzip, detected by content).
///
/// # Errors
/// As [`read_idx_images`] and [`parse_idx_labels`].
pub fn read_idx_labels(path: &Path, num_classes: usize, fetch: &str) -> Result<Vec<usize>, DataError> {
    labels_from(stream_file(path, "IDX label file", fetch)?, num_classes)
}
