//! Seed handling. Every random choice in phyff takes an explicit seed; there is no global RNG.
//!
//! The generator is ChaCha8 (`rand_chacha`), whose output stream is portable across platforms
//! and versions, so the same seed gives the same bits everywhere.

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng;

/// The generator type used throughout the workspace.
pub type Rng = ChaCha8Rng;

/// A generator for `seed`, on an independent stream per `purpose` tag.
///
/// Different purposes (weight init, prototypes, negatives, data split, the medium's
/// transmission matrix...) get statistically independent streams from one user seed, so
/// adding a random draw in one place never shifts the numbers of another.
pub fn rng_for(seed: u64, purpose: &str) -> Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(h);
    r
}
