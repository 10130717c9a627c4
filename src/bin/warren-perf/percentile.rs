//! Nearest-rank percentiles of sorted samples: the one definition every scenario's latency
//! figures use, and `examples/relay_floor.rs` too, so their p99s can be set side by side.

/// The sample at rank `p` (0.0-1.0) of `sorted`, rounding to the nearest rank; 0 when empty.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * p).round() as usize].into(),
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn ranks_round_to_the_nearest_sample() {
        let s: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&s, 0.5), 51.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&s, 1.0), 100.0);
        assert_eq!(percentile::<u32>(&[], 0.99), 0.0);
        assert_eq!(percentile(&[2.5f64], 0.5), 2.5);
    }
}
