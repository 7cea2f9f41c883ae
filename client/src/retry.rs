//! Exponential backoff with full jitter, for calls that are safe to repeat.

use std::time::Duration;

use rand::Rng;

/// When and how often a failed call is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 = no retries).
    pub attempts: u32,
    /// Backoff ceiling of the first retry; it doubles per retry.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry `retry` (1 for the first): uniform in `[0, min(max, base·2^(retry-1))]`
    /// ("full jitter": clients that failed together do not retry together).
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        ceiling.mul_f64(rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn delays_grow_exponentially_under_a_ceiling_with_jitter() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let mut rng = SmallRng::seed_from_u64(1);
        for retry in 1..40 {
            let ceiling =
                Duration::from_millis(100 * (1u64 << (retry - 1).min(20))).min(p.max_delay);
            let samples: Vec<Duration> = (0..200).map(|_| p.delay(retry, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "retry {retry}");
            // Jitter: spread over the range, not a constant.
            let max = samples.iter().max().unwrap();
            let min = samples.iter().min().unwrap();
            assert!(
                *max > ceiling.mul_f64(0.8) && *min < ceiling.mul_f64(0.2),
                "retry {retry}"
            );
        }
    }
}
