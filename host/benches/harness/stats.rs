//! Latency samples and their percentiles. Criterion reports means and
//! confidence intervals, not tail latency, so the harness keeps every sample.
use std::time::Duration;

/// Latencies of individual operations, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    nanos: Vec<u64>,
}

impl Samples {
    /// Room for `n` samples up front, so recording never reallocates mid-run.
    pub fn with_capacity(n: usize) -> Self {
        Samples {
            nanos: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.nanos
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.nanos.extend(other.nanos);
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// The nearest-rank percentile `p` (0–100); `None` without samples.
    pub fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.nanos.is_empty() {
            return None;
        }
        self.nanos.sort_unstable();
        let rank = ((p / 100.0) * self.nanos.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.nanos.len()) - 1;
        Some(Duration::from_nanos(self.nanos[index]))
    }

    /// p50 and p99 in microseconds.
    pub fn p50_p99_us(&mut self) -> (Option<f64>, Option<f64>) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        (self.percentile(50.0).map(us), self.percentile(99.0).map(us))
    }

    /// p50 and p99 in milliseconds.
    pub fn p50_p99_ms(&mut self) -> (Option<f64>, Option<f64>) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (self.percentile(50.0).map(ms), self.percentile(99.0).map(ms))
    }
}
