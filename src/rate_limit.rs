//! Per-client rate limiting (a keyed GCRA limiter from `governor`).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl ClientLimiter {
    /// `None` when `per_second` is 0 (limiting off).
    pub fn new(per_second: u32) -> Option<ClientLimiter> {
        let rate = NonZeroU32::new(per_second)?;
        Some(ClientLimiter {
            limiter: RateLimiter::dashmap(Quota::per_second(rate)),
            clock: DefaultClock::default(),
        })
    }

    /// `Err(wait)` when the client is over its rate.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        // The limiter is keyed by owned Strings; look-up by &str is not offered.
        self.limiter
            .check_key(&client.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients that have not been seen lately, so many distinct
    /// client ids cannot grow the limiter's map without bound.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_client_separately() {
        let l = ClientLimiter::new(5).unwrap();
        for _ in 0..5 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn zero_means_off() {
        assert!(ClientLimiter::new(0).is_none());
    }
}
