//! Injectable time.
//!
//! Logic that depends on "now" (token expiry, retry countdowns, subscription renewal, the
//! sandbox's code lifetimes) takes a [`Clock`] instead of calling `Utc::now()` itself, so that
//! tests and the sandbox can move time deliberately.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Returns the system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that follows the wall clock plus an adjustable offset, or stays frozen.
///
/// `advance` moves it forward (the sandbox's "move the clock near expiry" switch);
/// `freeze` stops it at a fixed instant for fully deterministic tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    offset: Duration,
    frozen: Option<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock equal to the wall clock until it is advanced.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A clock frozen at `at`.
    pub fn frozen(at: DateTime<Utc>) -> Arc<Self> {
        let clock = Self::default();
        clock.state.lock().expect("clock lock").frozen = Some(at);
        Arc::new(clock)
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state.lock().expect("clock lock");
        match state.frozen.as_mut() {
            Some(at) => *at += by,
            None => state.offset += by,
        }
    }

    /// How far this clock is ahead of the wall clock (zero when frozen).
    pub fn offset(&self) -> Duration {
        self.state.lock().expect("clock lock").offset
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let state = self.state.lock().expect("clock lock");
        state.frozen.unwrap_or_else(|| Utc::now() + state.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_advanced() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::frozen(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::days(2));
        assert_eq!(clock.now(), start + Duration::days(2));
    }

    #[test]
    fn running_clock_keeps_its_offset() {
        let clock = ManualClock::new();
        clock.advance(Duration::hours(1));
        let ahead = clock.now() - Utc::now();
        assert!(ahead > Duration::minutes(59) && ahead <= Duration::hours(1));
    }
}
