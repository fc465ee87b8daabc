//! Reading is bounded (issue 19, item 10): a text loader given an endless file (`/dev/zero`)
//! fails fast with a clear message instead of reading it whole, and an IDX file allocates
//! for the data it holds, not for what its header claims.
//!
//! The bound is measured, not timed: this test binary counts the bytes its allocations ask for
//! (refused requests too) and refuses any allocation that would take the live total past
//! [`CAP`], so that a loader that reads without bound fails here at once instead of taking the
//! machine's memory. The checks run one after another in a single test, so the counts belong
//! to one check at a time.

use ff_data::{
    load, parse_idx_images, parse_labelled_csv, read_labelled_csv, read_pairs, read_vowels, CsvOptions, DataSpec,
    Normalisation, VowelOptions,
};
use flate2::{write::GzEncoder, Compression};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Live bytes this process may hold at once.
const CAP: usize = 1 << 30;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts (and refuses past `CAP`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        if live > CAP {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract of `alloc`.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract of `dealloc`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak of live bytes above those live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1 << 20;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_header(dims: [u32; 3]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

#[test]
fn endless_and_lying_files_fail_fast_within_a_memory_bound() {
    let zero = Path::new("/dev/zero");
    assert!(zero.exists(), "this test needs /dev/zero");

    // A CSV that never ends and has no line break: refused at the first line.
    let (e, peak) = peak_of(|| load::<f32>(&"csv:/dev/zero".parse::<DataSpec>().unwrap(), 0).unwrap_err());
    let msg = e.to_string();
    assert!(msg.starts_with("/dev/zero:1: line 1 is longer than 16 MiB"), "{msg}");
    assert!(msg.contains("not a text data file"), "{msg}");
    assert!(peak < 64 * MIB, "csv:/dev/zero peaked at {peak} bytes");
    let (e, peak) = peak_of(|| read_labelled_csv::<f64>(zero, &CsvOptions::default()).unwrap_err());
    assert!(e.to_string().contains("longer than 16 MiB"), "{e}");
    assert!(peak < 64 * MIB, "{peak}");

    // The same for measured pairs and vowel files.
    let (e, peak) = peak_of(|| read_pairs::<f32>(zero, zero).unwrap_err());
    assert!(e.to_string().starts_with("/dev/zero:1: line 1 is longer than 16 MiB"), "{e}");
    assert!(peak < 64 * MIB, "{peak}");
    let (e, peak) = peak_of(|| read_vowels::<f32>(zero, &VowelOptions::default()).unwrap_err());
    assert!(e.to_string().contains("longer than 16 MiB"), "{e}");
    assert!(peak < 64 * MIB, "{peak}");

    // A quote that is never closed makes the rest of the file one cell: refused after 32 MiB.
    let mut open_quote = b"a,b\n1,\"".to_vec();
    open_quote.extend(b"1,2\n".repeat(12 * MIB));
    let (e, peak) = peak_of(|| {
        parse_labelled_csv::<f32>(&open_quote, "quote.csv", &CsvOptions::default()).unwrap_err().to_string()
    });
    assert!(e.starts_with("quote.csv:2: the record that starts on line 2 runs on for more than 32 MiB"), "{e}");
    assert!(e.contains("never closed"), "{e}");
    assert!(peak < 96 * MIB, "an open quote peaked at {peak} bytes");
    drop(open_quote);

    // A 64 KiB gzip IDX whose header announces 16384 x 16384 pixels but holds 64 KiB: the
    // truncation is reported, and no more is allocated than for the data that is there.
    let mut noise = idx_header([1, 16384, 16384]);
    let mut x = 12345u32;
    noise.extend((0..64 * 1024).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    let lying = gz(&noise);
    assert!(lying.len() > 60 * 1024, "{}", lying.len());
    let (e, peak) = peak_of(|| parse_idx_images::<f32>(&lying, "lying.gz", Normalisation::MNIST).unwrap_err());
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(peak < 16 * MIB, "a header's claim of 256 M pixels made the loader allocate {peak} bytes");

    // A header of 1 x 100 x 100 before 64 MiB of zeros: decompression stops after the
    // announced pixels, with an error, and nothing near 64 MiB is held.
    let mut bomb = idx_header([1, 100, 100]);
    bomb.resize(bomb.len() + 64 * MIB, 0);
    let bomb = gz(&bomb);
    assert!(bomb.len() < MIB, "{}", bomb.len());
    let (e, peak) = peak_of(|| parse_idx_images::<f32>(&bomb, "bomb.gz", Normalisation::MNIST).unwrap_err());
    assert!(e.to_string().contains("unexpected data after the last element"), "{e}");
    assert!(peak < 4 * MIB, "{peak}");

    // Honest files still load, plain and gzip.
    let mut ok = idx_header([3, 4, 5]);
    ok.extend(0..60u8);
    let plain = parse_idx_images::<f32>(&ok, "ok", Normalisation::UNIT).unwrap();
    assert_eq!(plain, parse_idx_images::<f32>(&gz(&ok), "ok.gz", Normalisation::UNIT).unwrap());
    assert_eq!((plain.x.rows(), plain.x.cols()), (3, 20));
}
