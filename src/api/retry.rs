//! When and how long to wait before trying a call again: exponential back-off with
//! jitter, or the service's own wait (`x-acs-retry-after`) when it sends one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// The shortest back-off wait, as in the SDKs (unless the ceiling is lower).
const MIN_DELAY: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The back-off ceiling before jitter is `base_delay * 2^(attempt-1)`.
    pub base_delay: Duration,
    /// No back-off wait is longer.
    pub max_delay: Duration,
    /// A wait the service asks for is honoured up to this (the SDKs' `maxDelay`,
    /// 120 s by default), as long as it fits in what is left of `max_elapsed`:
    /// a call gives up rather than wait past its budget.
    pub max_retry_after: Duration,
    /// No call spends longer than this in retries, so a run always ends.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over at most two minutes: enough to ride out a throttling
    /// burst or a short outage, short enough for a job that runs every 15 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_retry_after);
        }
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.max_delay);
        // Jitter spreads the retries of many clients over the window; the floor
        // (the SDKs' 100 ms) keeps a retry from following its failure at once.
        let floor = ceiling.min(MIN_DELAY).as_millis() as u64;
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rng.random_range(floor..=millis))
    }
}

/// What the client did, for the run summary and metrics.
#[derive(Debug, Default)]
pub struct CallStats {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

impl CallStats {
    pub fn record_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer that refused the call for the rate: counted whether or not
    /// it is retried (the last one of a call that gives up is not retried).
    pub fn record_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..=40 {
            let d = p.delay(attempt, None, &mut rng);
            let ceiling = (p.base_delay * 2u32.saturating_pow(attempt - 1)).min(p.max_delay);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            assert!(d >= MIN_DELAY, "attempt {attempt}: {d:?} below the floor");
        }
        // The service's wait wins, beyond the back-off ceiling, up to its own cap.
        let after = Duration::from_millis(1500);
        assert_eq!(p.delay(3, Some(after), &mut rng), after);
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(30)), &mut rng),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(600)), &mut rng),
            p.max_retry_after
        );
        // A ceiling under the floor (fast test policies) is kept.
        let fast = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        assert_eq!(fast.delay(9, None, &mut rng), Duration::from_millis(20));
    }
}
