//! Seed handling. Every random choice in phyff takes an explicit seed; there is no global RNG.
//!
//! The generator is ChaCha8 (`rand_chacha`), whose output stream is portable across platforms
//! and versions, so the same seed gives the same bits everywhere. The shuffles here are written
//! out (Fisher-Yates with Lemire's unbiased bounded draw) rather than taken from `rand`'s
//! `SliceRandom`, whose algorithm may change between `rand` versions.

use rand::{RngCore, SeedableRng};
pub use rand_chacha::ChaCha8Rng;

/// The generator type used throughout the workspace.
pub type Rng = ChaCha8Rng;

/// RNG purpose tag of [`epoch_order`] (the epoch number is appended). It keeps the name it had
/// when the function lived in `ff-data`, so the orders (and every recorded run) are unchanged.
pub const PURPOSE_EPOCH: &str = "ff-data/epoch-order";

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

/// A uniform integer in `0..n` (`n > 0`), unbiased (Lemire's multiply-and-reject).
fn below(rng: &mut Rng, n: usize) -> usize {
    let n = n as u64;
    let threshold = n.wrapping_neg() % n; // = 2^64 mod n
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as usize;
        }
    }
}

/// Shuffles `v` in place (Fisher-Yates), consuming `rng`.
pub fn shuffle_in_place<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = below(rng, i + 1);
        v.swap(i, j);
    }
}

/// A uniformly random permutation of `0..n` from `rng`.
pub fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    shuffle_in_place(&mut p, rng);
    p
}

/// The sample order of epoch `epoch`: a permutation of `0..n` that depends only on
/// `(seed, epoch)` (stream [`PURPOSE_EPOCH`]`/{epoch}`). The trainers number epochs from 1 and
/// cut the order into mini-batches with `order.chunks(batch_size)`.
///
/// # Examples
/// ```
/// use ff_core::rng::epoch_order;
/// let order = epoch_order(10, 42, 1);
/// assert_eq!(order.len(), 10);
/// assert_eq!(order, epoch_order(10, 42, 1));
/// assert_ne!(order, epoch_order(10, 42, 2));
/// ```
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = rng_for(seed, &format!("{PURPOSE_EPOCH}/{epoch}"));
    permutation(n, &mut rng)
}

/// The mini-batch rule of every trainer in phyff (the forward-forward trainer, the end-to-end
/// baselines, the digital MLP, the twin fits, [`crate::Network::fit`]): `n` samples in batches of
/// `batch_size` (0 means one batch of the whole set; a size above `n` is `n`), cut from the
/// order of each epoch ([`epoch_order`], or `0..n` when one batch holds the whole set: its order
/// changes nothing but the summation order), a last batch shorter than [`MiniBatches::min_last`]
/// joining the previous one.
///
/// # Examples
/// ```
/// use ff_core::rng::MiniBatches;
/// let b = MiniBatches::new(10, 4, 7);
/// let order = b.order(1);
/// let sizes: Vec<usize> = b.split(&order).iter().map(|c| c.len()).collect();
/// assert_eq!(sizes, [4, 4, 2]);
/// let joined = MiniBatches::new(9, 4, 7).min_last(2);
/// let order = joined.order(1);
/// assert_eq!(joined.split(&order).iter().map(|c| c.len()).collect::<Vec<_>>(), [4, 5]);
/// assert_eq!(MiniBatches::new(10, 0, 7).size(), 10); // 0: the whole set
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniBatches {
    n: usize,
    size: usize,
    min_last: usize,
    seed: u64,
    first_stream: u64,
}

impl MiniBatches {
    /// Batches of `batch_size` of `n` samples (0: the whole set), shuffled per epoch from `seed`.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        let size = if batch_size == 0 { n } else { batch_size.min(n) };
        MiniBatches { n, size: size.max(1), min_last: 1, seed, first_stream: 1 }
    }

    /// Draws the order of epoch `e` (from 1) from the stream of epoch `e - 1 + first`
    /// ([`epoch_order`]); `first` is 1 by default. The twin fits have numbered their order
    /// streams from 0 since they were written, and keep it so that their fits reproduce.
    pub fn streams_from(self, first: u64) -> Self {
        MiniBatches { first_stream: first, ..self }
    }

    /// A last batch shorter than `min` samples joins the previous one (unsupervised training
    /// mixes two samples of a batch, so its batches need two).
    pub fn min_last(self, min: usize) -> Self {
        MiniBatches { min_last: min.max(1), ..self }
    }

    /// Samples per batch (the last may differ).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.n
    }

    /// The sample order of epoch `epoch` (from 1; streams as [`epoch_order`]): `0..n` when one
    /// batch holds the whole set.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.size >= self.n {
            (0..self.n).collect()
        } else {
            epoch_order(self.n, self.seed, (epoch + self.first_stream).saturating_sub(1))
        }
    }

    /// `order` cut into consecutive batches of [`MiniBatches::size`], a short last one joined to
    /// the previous one.
    pub fn split<'a>(&self, order: &'a [usize]) -> Vec<&'a [usize]> {
        let mut chunks: Vec<&[usize]> = order.chunks(self.size).collect();
        if chunks.len() >= 2 && chunks[chunks.len() - 1].len() < self.min_last {
            let last = chunks.pop().map_or(0, <[usize]>::len);
            let prev = chunks.pop().map_or(0, <[usize]>::len);
            chunks.push(&order[order.len() - last - prev..]);
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_covers_all_values() {
        let mut rng = rng_for(1, "t");
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[below(&mut rng, 7)] += 1;
        }
        // Each value expected 1000 times; 5 sigma is about 150.
        for (v, &k) in seen.iter().enumerate() {
            assert!((850..1150).contains(&k), "value {v} drawn {k} times");
        }
    }

    #[test]
    fn permutation_is_a_permutation_and_depends_on_seed() {
        let p = permutation(100, &mut rng_for(3, "t"));
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        assert_eq!(p, permutation(100, &mut rng_for(3, "t")));
        assert_ne!(p, permutation(100, &mut rng_for(4, "t")));
    }

    #[test]
    fn epoch_orders_differ_between_epochs_and_seeds_and_are_pinned() {
        assert_ne!(epoch_order(50, 1, 0), epoch_order(50, 1, 1));
        assert_ne!(epoch_order(50, 1, 0), epoch_order(50, 2, 0));
        assert_eq!(epoch_order(50, 1, 3), epoch_order(50, 1, 3));
        // The bits every recorded run was trained with (computed by the ff-data implementation
        // this one replaced).
        assert_eq!(epoch_order(8, 0, 1), [6, 4, 1, 7, 3, 5, 2, 0]);
    }

    #[test]
    fn a_short_last_batch_joins_the_previous_one() {
        let order: Vec<usize> = (0..9).collect();
        let sizes =
            |b, m| MiniBatches::new(9, b, 0).min_last(m).split(&order).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(4, 1), vec![4, 4, 1]);
        assert_eq!(sizes(4, 2), vec![4, 5]);
        assert_eq!(sizes(3, 2), vec![3, 3, 3]);
        assert_eq!(sizes(9, 2), vec![9]);
        assert_eq!(sizes(8, 2), vec![9]);
        assert_eq!(sizes(0, 1), vec![9]);
        assert_eq!(sizes(50, 1), vec![9]);
        let b = MiniBatches::new(9, 4, 0).min_last(2);
        assert_eq!(b.split(&order).concat(), order);
    }

    #[test]
    fn one_batch_of_everything_keeps_the_order_and_smaller_ones_shuffle() {
        assert_eq!(MiniBatches::new(8, 0, 0).order(1), (0..8).collect::<Vec<_>>());
        assert_eq!(MiniBatches::new(8, 8, 0).order(1), (0..8).collect::<Vec<_>>());
        assert_eq!(MiniBatches::new(8, 3, 0).order(1), epoch_order(8, 0, 1));
    }
}
