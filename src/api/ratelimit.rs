//! A client-side request rate limit, shared by every crawl of a run: the service
//! counts throttling per account, so concurrent scopes must share one budget.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next_slot: Mutex<Instant>,
}

/// The slowest rate a limiter takes: one request a day. A slower one is a
/// mistake (1e-300 for 1e3, say), and its interval would overflow a `Duration`.
pub const SLOWEST_RATE: f64 = 1.0 / 86_400.0;

/// `per_second` if a limiter takes it (finite, from [`SLOWEST_RATE`] on), else
/// why not, naming the flag or key that set it.
pub fn check_rate(setting: &str, per_second: f64) -> Result<f64, String> {
    if per_second.is_finite() && per_second >= SLOWEST_RATE {
        Ok(per_second)
    } else {
        Err(format!(
            "{setting} is requests a second, one a day (0.0000116) at least, not {per_second}"
        ))
    }
}

impl RateLimiter {
    /// `per_second` requests a second at most, evenly spaced (no bursts); see
    /// [`check_rate`].
    pub fn new(per_second: f64) -> Self {
        assert!(
            check_rate("rate", per_second).is_ok(),
            "a rate limit from one a day on"
        );
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next free slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_evenly_spaced() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // Slots at 0, 100, 200, 300 and 400 ms (virtual time: no real waiting).
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
