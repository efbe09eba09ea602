//! Brute-force limits: per username, after `free` failures inside the window each further
//! attempt waits a delay doubling from 1 s up to a cap (never a permanent lock; a success
//! clears the count); per client IP, a token bucket. Both counters live in the store.

use std::time::Duration;

/// How failures of one username are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserThrottle {
    /// Failures allowed before delays start (5).
    pub free: i64,
    /// Failures older than this (since the last one) are forgotten (15 min).
    pub window: Duration,
    /// The longest delay (15 min).
    pub max_delay: Duration,
}

impl UserThrottle {
    /// The wait imposed after `count` failures: none up to `free`, then 1 s, 2 s, 4 s, … up
    /// to `max_delay`.
    pub fn delay(&self, count: i64) -> Duration {
        if count < self.free {
            return Duration::ZERO;
        }
        let doublings = u32::try_from(count - self.free).unwrap_or(u32::MAX).min(30);
        Duration::from_secs(1u64 << doublings).min(self.max_delay)
    }

    /// Until when (Unix ms) a username with `count` failures, the last at `last_at`, is held.
    pub fn held_until(&self, count: i64, last_at: i64) -> i64 {
        last_at.saturating_add(self.delay(count).as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_to_the_cap() {
        let t = UserThrottle {
            free: 5,
            window: Duration::from_secs(900),
            max_delay: Duration::from_secs(900),
        };
        let rows = [
            (0, 0),
            (4, 0),
            (5, 1),
            (6, 2),
            (7, 4),
            (14, 512),
            (15, 900),
            (100, 900),
            (i64::MAX, 900),
        ];
        for (count, secs) in rows {
            assert_eq!(t.delay(count), Duration::from_secs(secs), "{count}");
        }
        assert_eq!(t.held_until(6, 10_000), 12_000);
        assert_eq!(t.held_until(3, 10_000), 10_000);
    }
}
