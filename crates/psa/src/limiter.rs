//! Client-side rolling-window rate limiter and the injectable sleeper.
//!
//! HaloPSA limits each instance to N requests per *rolling* window (300 per 5 minutes by
//! default). The limiter keeps the times of the requests made within the last window; a new
//! request may start only while fewer than N are in it. When it is full, the right wait is until
//! the oldest request leaves the window — shorter waits just hit the limit again.
//!
//! Entries are stamped when a request starts and re-stamped when its reply arrives (the server
//! counted it somewhere in between), so the client's window never ends before the server's.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;

use crate::config::RollingWindow;

/// Waits for a duration. The client sleeps only through this, so tests can substitute a sleeper
/// that moves a `ManualClock` instead of waiting in real time.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Returns a future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The production sleeper: `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A granted request slot; pass it back to [`RollingLimiter::complete`] when the reply arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit(u64);

#[derive(Debug, Default)]
struct State {
    /// (permit id, time) of the requests inside the window, oldest first.
    entries: VecDeque<(u64, DateTime<Utc>)>,
    next_id: u64,
    /// Set after a 429: nobody starts a request before this instant.
    blocked_until: Option<DateTime<Utc>>,
}

/// A rolling-window limiter driven by a [`mailroom_clock::Clock`].
#[derive(Debug)]
pub struct RollingLimiter {
    limit: RollingWindow,
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    state: Mutex<State>,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn to_std(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

impl RollingLimiter {
    /// A limiter allowing `limit.requests` per `limit.window` on `clock`.
    pub fn new(limit: RollingWindow, clock: SharedClock, sleeper: Arc<dyn Sleeper>) -> Self {
        RollingLimiter {
            limit: RollingWindow {
                requests: limit.requests.max(1),
                window: limit.window,
            },
            clock,
            sleeper,
            state: Mutex::new(State::default()),
        }
    }

    fn prune(&self, state: &mut State, now: DateTime<Utc>) {
        let window = to_chrono(self.limit.window);
        while let Some((_, at)) = state.entries.front() {
            if *at + window <= now {
                state.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// The rolling window this limiter keeps (headroom = `requests - in_window()`).
    pub fn limit(&self) -> RollingWindow {
        self.limit
    }

    /// Takes a slot now if one is free, or says how long until one frees up.
    pub fn try_acquire(&self) -> Result<Permit, Duration> {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("limiter lock");
        if let Some(until) = state.blocked_until {
            if until > now {
                return Err(to_std(until - now));
            }
            state.blocked_until = None;
        }
        self.prune(&mut state, now);
        if state.entries.len() < self.limit.requests as usize {
            let id = state.next_id;
            state.next_id += 1;
            state.entries.push_back((id, now));
            return Ok(Permit(id));
        }
        let oldest = state.entries.front().map(|(_, at)| *at).unwrap_or(now);
        let wait = to_std(oldest + to_chrono(self.limit.window) - now);
        // A zero wait can only come from clock granularity; never spin.
        Err(wait.max(Duration::from_millis(1)))
    }

    /// Waits (through the sleeper) until a slot is free and takes it. Returns the slot and the
    /// total time waited.
    pub async fn acquire(&self) -> (Permit, Duration) {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_acquire() {
                Ok(permit) => return (permit, waited),
                Err(wait) => {
                    tracing::debug!(
                        ?wait,
                        "HaloPSA request limit reached; waiting for the rolling window"
                    );
                    waited += wait;
                    self.sleeper.sleep(wait).await;
                }
            }
        }
    }

    /// Re-stamps the slot with the time its reply arrived.
    pub fn complete(&self, permit: Permit) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("limiter lock");
        if let Some(entry) = state.entries.iter_mut().find(|(id, _)| *id == permit.0) {
            entry.1 = now;
        }
        // Keep the deque ordered by time after re-stamping.
        state.entries.make_contiguous().sort_by_key(|(_, at)| *at);
    }

    /// How long until the oldest request in the window leaves it (`None` when empty).
    pub fn until_oldest_expires(&self) -> Option<Duration> {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("limiter lock");
        self.prune(&mut state, now);
        state
            .entries
            .front()
            .map(|(_, at)| to_std(*at + to_chrono(self.limit.window) - now))
    }

    /// Stops every caller from starting a request for `wait` (after a 429).
    pub fn block_for(&self, wait: Duration) {
        let until = self.clock.now() + to_chrono(wait);
        let mut state = self.state.lock().expect("limiter lock");
        if state.blocked_until.is_none_or(|current| current < until) {
            state.blocked_until = Some(until);
        }
    }

    /// Number of requests currently inside the window.
    pub fn in_window(&self) -> usize {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("limiter lock");
        self.prune(&mut state, now);
        state.entries.len()
    }

    /// The sleeper used for all waits.
    pub fn sleeper(&self) -> &Arc<dyn Sleeper> {
        &self.sleeper
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_clock::{Clock, ManualClock};

    /// A sleeper that moves the manual clock instead of waiting.
    #[derive(Debug)]
    struct ClockSleeper(Arc<ManualClock>, Mutex<Vec<Duration>>);

    impl Sleeper for ClockSleeper {
        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            self.0.advance(to_chrono(duration));
            self.1.lock().unwrap().push(duration);
            Box::pin(async {})
        }
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn limiter(clock: &Arc<ManualClock>, requests: u32, secs: u64) -> RollingLimiter {
        RollingLimiter::new(
            RollingWindow {
                requests,
                window: Duration::from_secs(secs),
            },
            clock.clone(),
            Arc::new(TokioSleeper),
        )
    }

    #[test]
    fn full_window_waits_for_the_oldest_request() {
        let clock = ManualClock::frozen(start());
        let limiter = limiter(&clock, 3, 300);
        limiter.try_acquire().unwrap();
        clock.advance(chrono::Duration::seconds(10));
        limiter.try_acquire().unwrap();
        clock.advance(chrono::Duration::seconds(10));
        limiter.try_acquire().unwrap();
        // Oldest at t=0 leaves at t=300; now t=20.
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(280)));
        assert_eq!(
            limiter.until_oldest_expires(),
            Some(Duration::from_secs(280))
        );
        clock.advance(chrono::Duration::seconds(279));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(1)));
        clock.advance(chrono::Duration::seconds(1));
        assert!(limiter.try_acquire().is_ok());
        assert_eq!(limiter.in_window(), 3);
        // Next frees when the t=10 entry leaves (t=310); now t=300.
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(10)));
    }

    #[test]
    fn completion_restamps_the_entry() {
        let clock = ManualClock::frozen(start());
        let limiter = limiter(&clock, 1, 60);
        let permit = limiter.try_acquire().unwrap();
        clock.advance(chrono::Duration::seconds(5));
        limiter.complete(permit);
        // The reply arrived at t=5, so the slot frees at t=65, not t=60.
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(60)));
    }

    #[test]
    fn block_for_stops_everyone() {
        let clock = ManualClock::frozen(start());
        let limiter = limiter(&clock, 100, 60);
        limiter.block_for(Duration::from_secs(7));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(7)));
        clock.advance(chrono::Duration::seconds(7));
        assert!(limiter.try_acquire().is_ok());
        assert_eq!(
            limiter.until_oldest_expires(),
            Some(Duration::from_secs(60))
        );
    }

    #[tokio::test]
    async fn acquire_sleeps_exactly_until_a_slot_frees() {
        let clock = ManualClock::frozen(start());
        let sleeper = Arc::new(ClockSleeper(clock.clone(), Mutex::new(Vec::new())));
        let limiter = RollingLimiter::new(
            RollingWindow {
                requests: 2,
                window: Duration::from_secs(100),
            },
            clock.clone(),
            sleeper.clone(),
        );
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // Six requests at two per 100 s: two waits of 100 s each.
        assert_eq!(
            *sleeper.1.lock().unwrap(),
            vec![Duration::from_secs(100), Duration::from_secs(100)]
        );
        assert_eq!(clock.now(), start() + chrono::Duration::seconds(200));
    }
}
