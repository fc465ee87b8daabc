//! Small dense complex solves without allocation, for the per-query hot paths (systems of a
//! few to a few dozen unknowns, where a general library's overhead dominates).

use num_complex::Complex64;

/// Solves `A x = b` in place by Gaussian elimination with partial pivoting: `a` is `n x n`
/// row-major and is destroyed, `b` (length `n`) is overwritten with `x`.
///
/// Returns `false` if a pivot is exactly zero or not finite (singular or broken system).
///
/// # Panics
/// If the buffer lengths do not match `n` (a caller bug).
pub(crate) fn solve_in_place(a: &mut [Complex64], b: &mut [Complex64], n: usize) -> bool {
    assert_eq!(a.len(), n * n, "solve_in_place: matrix buffer");
    assert_eq!(b.len(), n, "solve_in_place: right-hand side");
    for col in 0..n {
        let mut piv = col;
        let mut best = a[col * n + col].norm_sqr();
        for r in col + 1..n {
            let v = a[r * n + col].norm_sqr();
            if v > best {
                best = v;
                piv = r;
            }
        }
        if best == 0.0 || !best.is_finite() {
            return false;
        }
        if piv != col {
            for j in 0..n {
                a.swap(col * n + j, piv * n + j);
            }
            b.swap(col, piv);
        }
        let inv = 1.0 / a[col * n + col];
        let (top, rest) = a.split_at_mut((col + 1) * n);
        let pivot_row = &top[col * n..];
        for r in 0..n - col - 1 {
            let row = &mut rest[r * n..(r + 1) * n];
            let factor = row[col] * inv;
            if factor == Complex64::new(0.0, 0.0) {
                continue;
            }
            for j in col + 1..n {
                row[j] -= factor * pivot_row[j];
            }
            b[col + 1 + r] -= factor * b[col];
        }
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in i + 1..n {
            s -= a[i * n + j] * b[j];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn matches_a_hand_worked_system_and_nalgebra() {
        // [[0, 1], [2, 1]] x = [1, 3]  ->  x = [1, 1] (needs pivoting).
        let c = |re: f64| Complex64::new(re, 0.0);
        let mut a = vec![c(0.0), c(1.0), c(2.0), c(1.0)];
        let mut b = vec![c(1.0), c(3.0)];
        assert!(solve_in_place(&mut a, &mut b, 2));
        assert!((b[0] - c(1.0)).norm() < 1e-15 && (b[1] - c(1.0)).norm() < 1e-15);

        let mut rng = ff_core::rng::rng_for(4, "linalg test");
        let n = 17;
        let m: Vec<Complex64> =
            (0..n * n).map(|_| Complex64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5)).collect();
        let rhs: Vec<Complex64> = (0..n).map(|_| Complex64::new(rng.random(), rng.random())).collect();
        let (mut a, mut x) = (m.clone(), rhs.clone());
        assert!(solve_in_place(&mut a, &mut x, n));
        let na = nalgebra::DMatrix::from_row_slice(n, n, &m);
        let residual = &na * nalgebra::DVector::from_column_slice(&x) - nalgebra::DVector::from_column_slice(&rhs);
        assert!(residual.norm() < 1e-12, "residual {}", residual.norm());
        let mut singular = vec![c(1.0), c(2.0), c(2.0), c(4.0)];
        assert!(!solve_in_place(&mut singular, &mut [c(1.0), c(1.0)], 2));
    }
}
