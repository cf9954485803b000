//! When each client sends: closed loop (next request as soon as the last one
//! is answered, plus `--interval-ms`) or open loop (a fixed arrival schedule).

use std::time::{Duration, Instant};

use super::config::BenchConfig;

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// This many requests per client.
    Requests(u64),
    /// Keep going for this long.
    After(Duration),
}

/// How a client paces its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Send, wait for the answer, pause `interval`, repeat.
    Closed { interval: Duration },
    /// `rate` requests/s in total, slots spread evenly over the clients.
    Open { rate: f64 },
}

/// The shape of a run, derived from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub clients: u32,
    pub stop: Stop,
    pub pacing: Pacing,
}

impl Plan {
    pub fn from_config(config: &BenchConfig) -> Self {
        let stop = match config.duration {
            Some(duration) => Stop::After(duration),
            None => Stop::Requests(config.requests),
        };
        let pacing = match config.rate {
            Some(rate) => Pacing::Open { rate },
            None => Pacing::Closed {
                interval: config.interval,
            },
        };
        Self {
            clients: config.clients.max(1),
            stop,
            pacing,
        }
    }
}

/// The open-loop arrival schedule. Global slot `g` is due `g / rate` seconds
/// after the start; client `c` owns slots `c, c + N, c + 2N, …` (N clients),
/// so each client runs at `rate / N` and the clients interleave evenly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSchedule {
    pub rate: f64,
    pub clients: u32,
    pub stop: Stop,
}

impl OpenSchedule {
    /// When client `client`'s `k`-th request is due, relative to the start
    /// (`None` if that is beyond what a `Duration` can hold).
    pub fn due(&self, client: u32, k: u64) -> Option<Duration> {
        let slot = f64::from(client) + k as f64 * f64::from(self.clients);
        Duration::try_from_secs_f64(slot / self.rate).ok()
    }

    /// How many slots client `client` owns.
    pub fn slots(&self, client: u32) -> u64 {
        match self.stop {
            Stop::Requests(n) => n,
            Stop::After(duration) => {
                // Slots due strictly before the end: client + k*N < D*rate.
                let room = duration.as_secs_f64() * self.rate - f64::from(client);
                if room <= 0.0 {
                    0
                } else {
                    (room / f64::from(self.clients)).ceil() as u64
                }
            }
        }
    }

    /// When the last slot of the whole run is due, relative to the start.
    pub fn end(&self) -> Option<Duration> {
        match self.stop {
            Stop::After(duration) => Some(duration),
            Stop::Requests(n) => self.due(self.clients.saturating_sub(1), n.saturating_sub(1)),
        }
    }
}

/// `start + offset`, or `None` if the clock cannot represent it (then the
/// moment is as good as never).
pub fn instant_after(start: Instant, offset: Option<Duration>) -> Option<Instant> {
    offset.and_then(|offset| start.checked_add(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, clients: u32, stop: Stop) -> OpenSchedule {
        OpenSchedule {
            rate,
            clients,
            stop,
        }
    }

    #[test]
    fn slots_over_a_duration_sum_to_rate_times_duration() {
        let s = schedule(200.0, 20, Stop::After(Duration::from_secs(1)));
        let total: u64 = (0..20).map(|c| s.slots(c)).sum();
        assert_eq!(total, 200);
        assert!((0..20).all(|c| s.slots(c) == 10));

        // Uneven split: 7 slots over 3 clients.
        let s = schedule(7.0, 3, Stop::After(Duration::from_secs(1)));
        assert_eq!([s.slots(0), s.slots(1), s.slots(2)], [3, 2, 2]);

        // More clients than slots: the late clients get none.
        let s = schedule(5.0, 20, Stop::After(Duration::from_secs(1)));
        let total: u64 = (0..20).map(|c| s.slots(c)).sum();
        assert_eq!(total, 5);
        assert_eq!(s.slots(19), 0);
    }

    #[test]
    fn slots_interleave_evenly() {
        let s = schedule(100.0, 4, Stop::Requests(3));
        assert_eq!(s.slots(2), 3);
        assert_eq!(s.due(0, 0), Some(Duration::ZERO));
        assert_eq!(s.due(1, 0), Some(Duration::from_millis(10)));
        assert_eq!(s.due(0, 1), Some(Duration::from_millis(40)));
        assert_eq!(s.due(3, 2), Some(Duration::from_millis(110)));
        assert_eq!(s.end(), Some(Duration::from_millis(110)));
    }

    #[test]
    fn absurd_schedules_do_not_panic() {
        let s = schedule(0.001, 1, Stop::Requests(u64::MAX));
        assert_eq!(s.due(0, u64::MAX - 1), None);
        assert_eq!(instant_after(Instant::now(), s.end()), None);
        assert_eq!(instant_after(Instant::now(), Some(Duration::MAX)), None);
    }
}
