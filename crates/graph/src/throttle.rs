//! Per-mailbox throttling: concurrency cap, token bucket, shared Retry-After gate and backoff
//! (reference §6: Outlook allows 4 concurrent requests and 10,000 requests per 10 minutes per
//! app and mailbox).

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
    /// Requests allowed per `window` (Outlook: 10,000 per 10 minutes).
    pub requests_per_window: u32,
    /// The window of `requests_per_window`.
    pub window: Duration,
    /// Bucket capacity (burst). Burst + rate × window never exceeds `requests_per_window`.
    pub burst: u32,
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
            burst: 100,
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: DateTime<Utc>,
}

/// Throttle state for one mailbox; share one instance among all clients of that mailbox.
#[derive(Debug)]
pub struct MailboxThrottle {
    config: ThrottleConfig,
    clock: SharedClock,
    in_flight: Semaphore,
    bucket: std::sync::Mutex<Bucket>,
    gate: std::sync::Mutex<Option<DateTime<Utc>>>,
}

fn to_std(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

impl MailboxThrottle {
    /// New throttle state.
    pub fn new(config: ThrottleConfig, clock: SharedClock) -> Self {
        let now = clock.now();
        MailboxThrottle {
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            bucket: std::sync::Mutex::new(Bucket {
                tokens: config.burst.max(1) as f64,
                last: now,
            }),
            gate: std::sync::Mutex::new(None),
            config,
            clock,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn rate_per_sec(&self) -> f64 {
        let c = &self.config;
        let budget = c.requests_per_window.saturating_sub(c.burst).max(1) as f64;
        budget / c.window.as_secs_f64().max(1.0)
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

    fn take_token(&self) -> Option<Duration> {
        let rate = self.rate_per_sec();
        let capacity = self.config.burst.max(1) as f64;
        let now = self.clock.now();
        let mut b = self.bucket.lock().expect("bucket lock");
        let elapsed = to_std(now - b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            // `rate` is at least 1 per window, so this is finite; saturate all the same.
            Some(mailroom_http::saturating_secs_f64(
                (1.0 - b.tokens) / rate,
                self.config.window,
            ))
        }
    }

    /// Waits for the Retry-After gate, a bucket token and an in-flight slot.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        loop {
            if let Some(wait) = self.gate_remaining() {
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.take_token() {
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
    fn bucket_budget_stays_under_the_window_limit() {
        let clock = mailroom_clock::ManualClock::frozen(Utc::now());
        let t = MailboxThrottle::new(
            ThrottleConfig {
                requests_per_window: 100,
                window: Duration::from_secs(10),
                burst: 5,
                ..Default::default()
            },
            clock.clone(),
        );
        for _ in 0..5 {
            assert_eq!(t.take_token(), None);
        }
        let wait = t.take_token().expect("bucket empty");
        // 95 tokens per 10 s → one token every ~105 ms.
        assert!(wait > Duration::from_millis(100) && wait < Duration::from_millis(110));
        clock.advance(chrono::Duration::seconds(10));
        // Refill is capped at the burst size.
        for _ in 0..5 {
            assert_eq!(t.take_token(), None);
        }
        assert!(t.take_token().is_some());
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
