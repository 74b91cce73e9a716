//! Per-mailbox throttling: concurrency cap, Graph's rolling window, shared Retry-After gate
//! and backoff (reference §6: Outlook allows 4 concurrent requests and 10,000 requests per 10
//! minutes per app and mailbox).
//!
//! The window is tracked as Graph counts it — the requests of the last 10 minutes — so nothing
//! waits while fewer than 10,000 were sent (a backlog runs at the concurrency bound); when the
//! server says otherwise (a 429 with `Retry-After`) the gate holds every request of the mailbox
//! for as long as it asks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_http::Backoff;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The one `Retry-After` parser of the workspace (seconds, fractional seconds, HTTP-date;
/// clamped to an hour; hostile values never panic).
pub use mailroom_http::parse_retry_after;

/// Throttling knobs (defaults follow the documented Outlook limits).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Requests in flight per mailbox (Outlook: 4).
    pub max_in_flight: usize,
    /// Requests allowed in any `window` (Outlook: 10,000 per 10 minutes).
    pub requests_per_window: u32,
    /// The rolling window of `requests_per_window`.
    pub window: Duration,
    /// Attempts per request for retryable failures (429/503/504/transport), including the first.
    pub max_attempts: u32,
    /// First backoff; doubles each attempt, with jitter (a `Retry-After` is its floor).
    pub base_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
    /// Longest Retry-After honoured (longer values are capped).
    pub max_retry_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_in_flight: 4,
            requests_per_window: 10_000,
            window: Duration::from_secs(600),
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// Throttle state for one mailbox; share one instance among all clients of that mailbox.
#[derive(Debug)]
pub struct MailboxThrottle {
    config: ThrottleConfig,
    clock: SharedClock,
    in_flight: Semaphore,
    /// When each request of the current window was sent, oldest first.
    sent: std::sync::Mutex<std::collections::VecDeque<DateTime<Utc>>>,
    gate: std::sync::Mutex<Option<DateTime<Utc>>>,
}

fn to_std(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

impl MailboxThrottle {
    /// New throttle state.
    pub fn new(config: ThrottleConfig, clock: SharedClock) -> Self {
        MailboxThrottle {
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            sent: std::sync::Mutex::new(std::collections::VecDeque::new()),
            gate: std::sync::Mutex::new(None),
            config,
            clock,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// How long the Retry-After gate is still closed.
    pub fn gate_remaining(&self) -> Option<Duration> {
        let gate = *self.gate.lock().expect("gate lock");
        let now = self.clock.now();
        gate.filter(|g| *g > now).map(|g| to_std(g - now))
    }

    /// Closes the gate for every request of this mailbox for `wait` (keeps a later deadline).
    pub fn hold_off(&self, wait: Duration) {
        let wait = wait.min(self.config.max_retry_after);
        let until = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let mut gate = self.gate.lock().expect("gate lock");
        if gate.is_none_or(|g| g < until) {
            *gate = Some(until);
        }
    }

    /// Counts a request in the rolling window now, or says how long until the window has room.
    fn take_slot(&self) -> Option<Duration> {
        let now = self.clock.now();
        let window = chrono::Duration::from_std(self.config.window).unwrap_or_default();
        let mut sent = self.sent.lock().expect("window lock");
        while sent.front().is_some_and(|at| *at + window <= now) {
            sent.pop_front();
        }
        if sent.len() < self.config.requests_per_window.max(1) as usize {
            sent.push_back(now);
            return None;
        }
        let oldest = *sent.front().expect("a full window");
        // Never a zero wait (clock granularity): never spin.
        Some(to_std(oldest + window - now).max(Duration::from_millis(1)))
    }

    /// Requests counted in the rolling window now.
    #[cfg(test)]
    fn in_window(&self) -> usize {
        let now = self.clock.now();
        let window = chrono::Duration::from_std(self.config.window).unwrap_or_default();
        let sent = self.sent.lock().expect("window lock");
        sent.iter().filter(|at| **at + window > now).count()
    }

    /// Waits for the Retry-After gate, room in the rolling window and an in-flight slot.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        loop {
            if let Some(wait) = self.gate_remaining() {
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.take_slot() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
        let permit = self.in_flight.acquire().await.expect("semaphore open");
        // The gate may have closed while waiting for a slot.
        while let Some(wait) = self.gate_remaining() {
            tokio::time::sleep(wait).await;
        }
        permit
    }

    /// The back-off policy: `base_backoff` doubling up to `max_backoff`, jittered (backon).
    pub fn backoff_policy(&self) -> Backoff {
        Backoff::new(self.config.base_backoff, self.config.max_backoff)
    }

    /// The wait before retry `attempt` (1-based): exponential back-off with jitter, at least
    /// `retry_after` (itself capped at `max_retry_after`).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.backoff_policy().delay(
            attempt,
            retry_after.map(|r| r.min(self.config.max_retry_after)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2025, 1, 15, 9, 30, 0).unwrap();
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 09:30:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        // Used to panic in Duration::from_secs_f64.
        assert_eq!(
            parse_retry_after("1e20", now),
            Some(mailroom_http::MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn nothing_waits_under_the_window_limit_and_the_oldest_request_frees_the_next_slot() {
        let clock = mailroom_clock::ManualClock::frozen(Utc::now());
        let t = MailboxThrottle::new(
            ThrottleConfig {
                requests_per_window: 100,
                window: Duration::from_secs(10),
                ..Default::default()
            },
            clock.clone(),
        );
        // The whole window's budget at once: no request waits.
        for _ in 0..100 {
            assert_eq!(t.take_slot(), None);
        }
        assert_eq!(t.in_window(), 100);
        // The 101st waits until the oldest leaves the window.
        assert_eq!(t.take_slot(), Some(Duration::from_secs(10)));
        clock.advance(chrono::Duration::seconds(4));
        assert_eq!(t.take_slot(), Some(Duration::from_secs(6)));
        clock.advance(chrono::Duration::seconds(6));
        for _ in 0..100 {
            assert_eq!(t.take_slot(), None);
        }
        assert!(t.take_slot().is_some());
    }

    #[test]
    fn gate_keeps_the_later_deadline_and_backoff_grows() {
        let clock = mailroom_clock::ManualClock::frozen(Utc::now());
        let t = MailboxThrottle::new(ThrottleConfig::default(), clock.clone());
        t.hold_off(Duration::from_secs(10));
        t.hold_off(Duration::from_secs(2));
        assert_eq!(t.gate_remaining(), Some(Duration::from_secs(10)));
        clock.advance(chrono::Duration::seconds(11));
        assert_eq!(t.gate_remaining(), None);
        let b1 = t.backoff(1, None);
        let b4 = t.backoff(4, None);
        assert!(b1 >= Duration::from_millis(500) && b1 <= Duration::from_secs(1));
        assert!(b4 >= Duration::from_secs(4) && b4 <= Duration::from_secs(8));
        assert!(t.backoff(30, None) <= Duration::from_secs(60));
        // Retry-After is the floor, capped at max_retry_after.
        assert!(t.backoff(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(
            t.backoff(1, Some(Duration::from_secs(7200))),
            Duration::from_secs(600)
        );
    }
}
