//! Timing helpers shared by the sections: repeated samples and their summary.

use std::time::{Duration, Instant};

/// Samples of one measured quantity.
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Runs `work` `count` times and records each duration.
    pub fn collect(count: usize, mut work: impl FnMut()) -> Self {
        Samples(
            (0..count)
                .map(|_| {
                    let start = Instant::now();
                    work();
                    start.elapsed()
                })
                .collect(),
        )
    }

    /// One sample.
    pub fn of(duration: Duration) -> Self {
        Samples(vec![duration])
    }

    /// All samples of several collections, as one.
    pub fn merge(parts: Vec<Samples>) -> Self {
        Samples(parts.into_iter().flat_map(|s| s.0).collect())
    }

    /// The median sample.
    pub fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }

    /// `median X (min A, max B, n N)`, in milliseconds.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let min = self.0.iter().min().copied().unwrap_or_default();
        let max = self.0.iter().max().copied().unwrap_or_default();
        format!(
            "median {:.2} ms (min {:.2}, max {:.2}, n {})",
            ms(self.median()),
            ms(min),
            ms(max),
            self.0.len()
        )
    }
}

/// `a / b` of two medians.
pub fn ratio(a: &Samples, b: &Samples) -> f64 {
    a.median().as_secs_f64() / b.median().as_secs_f64()
}
