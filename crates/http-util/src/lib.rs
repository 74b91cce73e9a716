//! HTTP helpers shared by Mailroom's service clients (Microsoft Graph, HaloPSA) and the engine.
//!
//! * [`parse_retry_after`] — the one `Retry-After` parser: delta-seconds (integer or
//!   fractional, as Graph sends `2.128`) or an HTTP-date, clamped to [`MAX_RETRY_AFTER`].
//!   Hostile values (`1e20`, `inf`, `NaN`, negative, garbage, a date in the year 9999) never
//!   panic: they are ignored (`None`) or clamped.
//! * [`saturating_secs_f64`] / [`saturating_mul_f64`] — `Duration` from floating-point seconds
//!   without the panics of `Duration::from_secs_f64` / `Duration::mul_f64` (NaN and negatives
//!   give zero, overflow gives the given maximum). The workspace bans the panicking constructor.
//! * [`Backoff`] — the exponential back-off policy (first delay, doubling, ceiling, optional
//!   jitter) on the `backon` crate, with `Retry-After` as its floor. The Graph throttle, the PSA
//!   client and the engine's retry scheduling all compute their waits with it.

use std::time::Duration;

use backon::BackoffBuilder as _;
use chrono::{DateTime, Utc};

/// The longest wait a `Retry-After` header can ask for; longer values are clamped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Duration` from floating-point seconds that never panics: NaN, negative and -inf give
/// zero; values beyond `max` (including +inf) give `max`.
pub fn saturating_secs_f64(secs: f64, max: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .min(max)
}

/// `duration × factor` that never panics (see [`saturating_secs_f64`]), capped at `max`.
pub fn saturating_mul_f64(duration: Duration, factor: f64, max: Duration) -> Duration {
    saturating_secs_f64(duration.as_secs_f64() * factor, max)
}

/// Parses a `Retry-After` header value at `now`: delta-seconds (`120`, `2.128`) or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime, per RFC 9110 §10.2.3). A date in the past gives zero. The
/// result is clamped to [`MAX_RETRY_AFTER`]. `None` for anything else: negative numbers,
/// `inf`/`NaN`, garbage, an empty value.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+')
    {
        // Plain decimal (or exponent) notation only: "inf", "NaN", "-1", "0x10" are refused
        // by the byte check or by the finiteness check below.
        let secs: f64 = value.parse().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(saturating_secs_f64(secs, MAX_RETRY_AFTER));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Exponential back-off: `first`, doubling per step, never above `max`. With `jitter`, each
/// delay gets a random extra of up to 100 % (backon's jitter), still capped at `max`.
///
/// Every retry loop of the workspace computes its waits here: use [`Backoff::delays`] for a
/// loop that keeps its own iterator, or [`Backoff::delay`] when only the attempt number is
/// known (e.g. a retry scheduled in the database).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub first: Duration,
    /// The ceiling of every delay (jitter included; a `Retry-After` floor may exceed it).
    pub max: Duration,
    /// Random extra of up to one delay, so that many clients do not retry in lockstep.
    pub jitter: bool,
    /// Seed of the jitter RNG (reproducible runs); a random seed when `None`.
    pub seed: Option<u64>,
}

impl Backoff {
    /// `first` doubling up to `max`, with jitter.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            jitter: true,
            seed: None,
        }
    }

    /// The same policy without jitter (exact delays).
    pub const fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The same policy with a seeded jitter RNG.
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The endless sequence of delays of this policy: step 1, 2, 3, ...
    pub fn delays(&self) -> Delays {
        let max = self.max.max(self.first);
        let mut builder = backon::ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.first)
            .with_max_delay(max)
            .without_max_times();
        if self.jitter {
            builder = builder.with_jitter();
            if let Some(seed) = self.seed {
                builder = builder.with_jitter_seed(seed);
            }
        }
        Delays {
            inner: builder.build(),
            max,
        }
    }

    /// The delay before retry number `attempt` (1-based; 0 counts as 1), at least `floor`
    /// (a server's `Retry-After`).
    pub fn delay(&self, attempt: u32, floor: Option<Duration>) -> Duration {
        // The sequence reaches `max` after at most ~64 doublings; stop walking there.
        let steps = attempt.clamp(1, 64) as usize;
        let delay = self.delays().nth(steps - 1).unwrap_or(self.max);
        with_floor(delay, floor)
    }
}

/// `delay`, raised to `floor` when the server asked for a longer wait.
pub fn with_floor(delay: Duration, floor: Option<Duration>) -> Duration {
    match floor {
        Some(floor) => delay.max(floor),
        None => delay,
    }
}

/// The delays of a [`Backoff`] (endless; each at most the policy's `max`).
#[derive(Debug)]
pub struct Delays {
    inner: backon::ExponentialBackoff,
    max: Duration,
}

impl Delays {
    /// The next delay, at least `floor`.
    pub fn next_with_floor(&mut self, floor: Option<Duration>) -> Duration {
        let delay = self.next().unwrap_or(self.max);
        with_floor(delay, floor)
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.inner.next().unwrap_or(self.max).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 15, 9, 30, 0).unwrap()
    }

    #[test]
    fn retry_after_seconds_fractions_and_dates() {
        let now = now();
        assert_eq!(parse_retry_after("17", now), Some(Duration::from_secs(17)));
        assert_eq!(
            parse_retry_after(" 10 ", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 09:30:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            parse_retry_after("Wednesday, 15-Jan-25 09:31:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Jan 15 09:32:00 2025", now),
            Some(Duration::from_secs(120))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 09:29:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn hostile_retry_after_values_never_panic() {
        let now = now();
        // Finite but enormous: clamped, not a panic in Duration::from_secs_f64.
        assert_eq!(parse_retry_after("1e20", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("1E308", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("99999999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("7200", now), Some(MAX_RETRY_AFTER));
        // Far-future date: clamped.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        for garbage in [
            "inf",
            "+inf",
            "-inf",
            "infinity",
            "NaN",
            "nan",
            "-1",
            "-0.5",
            "1e400",
            "",
            "   ",
            "soon",
            "0x10",
            "1,5",
            "1.2.3",
            "e",
            "+",
            "..",
            "5 s",
            "\u{0}",
            "١٢",
            "Wed, 15 Jan 2025 25:61:00 GMT",
            "Mon, 32 Foo 2025 00:00:00 GMT",
        ] {
            let parsed = parse_retry_after(garbage, now);
            assert!(
                parsed.is_none_or(|d| d <= MAX_RETRY_AFTER),
                "{garbage:?} → {parsed:?}"
            );
        }
        assert_eq!(parse_retry_after("inf", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1e400", now), None); // parses to +inf
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn saturating_durations() {
        let max = Duration::from_secs(60);
        assert_eq!(saturating_secs_f64(f64::NAN, max), Duration::ZERO);
        assert_eq!(saturating_secs_f64(-3.0, max), Duration::ZERO);
        assert_eq!(saturating_secs_f64(f64::NEG_INFINITY, max), Duration::ZERO);
        assert_eq!(saturating_secs_f64(f64::INFINITY, max), max);
        assert_eq!(saturating_secs_f64(1e20, max), max);
        assert_eq!(saturating_secs_f64(1e20, Duration::MAX), Duration::MAX);
        assert_eq!(saturating_secs_f64(1.5, max), Duration::from_millis(1500));
        assert_eq!(
            saturating_mul_f64(Duration::from_secs(10), 0.25, max),
            Duration::from_millis(2500)
        );
        assert_eq!(
            saturating_mul_f64(Duration::MAX, 2.0, Duration::MAX),
            Duration::MAX
        );
        assert_eq!(
            saturating_mul_f64(Duration::from_secs(1), f64::NAN, max),
            Duration::ZERO
        );
    }

    #[test]
    fn backoff_doubles_to_the_ceiling() {
        let policy =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).without_jitter();
        let waits: Vec<u64> = policy.delays().take(11).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(policy.delay(1, None), Duration::from_secs(1));
        assert_eq!(policy.delay(0, None), Duration::from_secs(1));
        assert_eq!(policy.delay(4, None), Duration::from_secs(8));
        assert_eq!(policy.delay(u32::MAX, None), Duration::from_secs(300));
    }

    #[test]
    fn retry_after_is_the_floor() {
        let policy =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).without_jitter();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            policy.delay(7, Some(Duration::from_secs(30))),
            Duration::from_secs(64)
        );
        // A floor above the ceiling wins: the server said so.
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
        let mut delays = policy.delays();
        assert_eq!(
            delays.next_with_floor(Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        assert_eq!(delays.next_with_floor(None), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_between_the_delay_and_the_ceiling() {
        let policy = Backoff::new(Duration::from_secs(1), Duration::from_secs(10)).with_seed(7);
        for _ in 0..50 {
            let waits: Vec<Duration> = policy.delays().take(6).collect();
            let nominal = [1u64, 2, 4, 8, 10, 10];
            for (wait, nominal) in waits.iter().zip(nominal) {
                let nominal = Duration::from_secs(nominal);
                assert!(*wait >= nominal && *wait <= (nominal * 2).min(Duration::from_secs(10)));
            }
        }
        // Seeded: reproducible.
        let a: Vec<Duration> = policy.delays().take(5).collect();
        let b: Vec<Duration> = policy.delays().take(5).collect();
        assert_eq!(a, b);
    }
}
