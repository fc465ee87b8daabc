//! Small 2-D geometry helpers shared by the cavity simulators: wall outlines and seeded
//! placement of point objects with a minimum separation.

use ff_core::rng::Rng;
use rand::Rng as _;

/// A point in the plane, `[x, y]`, in the simulator's length unit.
pub(crate) type Point = [f64; 2];

/// Euclidean distance.
pub(crate) fn dist(a: Point, b: Point) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Points evenly spread along the outline of the rectangle `[0, width] x [0, height]`, at most
/// `spacing` apart along each side (each side gets `ceil(len / spacing)` intervals), corners once.
pub(crate) fn rectangle_outline(width: f64, height: f64, spacing: f64) -> Vec<Point> {
    let nx = (width / spacing).ceil().max(1.0) as usize;
    let ny = (height / spacing).ceil().max(1.0) as usize;
    let (dx, dy) = (width / nx as f64, height / ny as f64);
    let mut pts = Vec::with_capacity(2 * (nx + ny));
    for i in 0..nx {
        pts.push([i as f64 * dx, 0.0]); // bottom, left to right
    }
    for i in 0..ny {
        pts.push([width, i as f64 * dy]); // right, bottom to top
    }
    for i in 0..nx {
        pts.push([width - i as f64 * dx, height]); // top, right to left
    }
    for i in 0..ny {
        pts.push([0.0, height - i as f64 * dy]); // left, top to bottom
    }
    pts
}

/// Draws a point uniformly in `[x0, x1] x [y0, y1]` that is at least `min_dist` from every
/// point in `taken`, by rejection (at most 10 000 draws).
///
/// # Errors
/// A message naming `what` if no such point was found (the region is too crowded).
pub(crate) fn place_point(
    rng: &mut Rng,
    region: [f64; 4],
    min_dist: f64,
    taken: &[Point],
    what: &str,
) -> Result<Point, String> {
    let [x0, x1, y0, y1] = region;
    if x1 <= x0 || y1 <= y0 {
        return Err(format!("no room to place the {what}: the allowed region is empty"));
    }
    for _ in 0..10_000 {
        let p = [rng.random_range(x0..x1), rng.random_range(y0..y1)];
        if taken.iter().all(|&q| dist(p, q) >= min_dist) {
            return Ok(p);
        }
    }
    Err(format!(
        "could not place the {what} at least {min_dist} from all other objects after 10000 tries; \
         enlarge the cavity or place fewer objects"
    ))
}

/// Minimum distance between any two points (infinity for fewer than two).
pub(crate) fn min_pair_distance(points: &[Point]) -> f64 {
    let mut m = f64::INFINITY;
    for i in 0..points.len() {
        for j in 0..i {
            m = m.min(dist(points[i], points[j]));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_of_a_rectangle() {
        let pts = rectangle_outline(2.0, 1.0, 0.5);
        assert_eq!(pts.len(), 2 * (4 + 2));
        assert_eq!(pts[0], [0.0, 0.0]);
        assert_eq!(pts[4], [2.0, 0.0]);
        assert!((min_pair_distance(&pts) - 0.5).abs() < 1e-12);
        // Each side: spacing at most the requested one.
        let pts = rectangle_outline(1.0, 1.0, 0.3);
        assert_eq!(pts.len(), 16);
        assert!((min_pair_distance(&pts) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn placement_respects_distance_and_fails_clearly() {
        let mut rng = ff_core::rng::rng_for(1, "test");
        let mut taken = vec![[0.5, 0.5]];
        for _ in 0..5 {
            let p = place_point(&mut rng, [0.0, 1.0, 0.0, 1.0], 0.2, &taken, "dot").unwrap();
            taken.push(p);
        }
        assert!(min_pair_distance(&taken) >= 0.2);
        let err = place_point(&mut rng, [0.0, 0.1, 0.0, 0.1], 5.0, &taken, "dot").unwrap_err();
        assert!(err.contains("dot"));
    }
}
