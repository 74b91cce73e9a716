//! Back-off after HaloPSA's 429, shared by every request of a client (token requests included).
//!
//! HaloPSA's rate limit is a rolling window shared with every other integration of the
//! instance, and its documented 429 is a plain-text "Rate Limit Reached - 300 Requests per
//! rolling 5 minute window" (whether it sends `Retry-After` is unconfirmed). So the client cannot
//! know when capacity frees up; it finds out by asking:
//!
//! * The first 429 opens a *back-off episode*: nobody starts a request for the first delay of
//!   the policy (1 s by default), or for `Retry-After` when HaloPSA sends a longer one.
//! * When the delay has passed, exactly one request — the *probe* — goes out; every other
//!   caller waits for its result instead of hammering the PSA.
//! * The probe answered with anything but 429: the episode ends and everyone resumes. The probe
//!   answered 429: the next delay doubles (jittered, up to the window length, at least
//!   `Retry-After`) and the next probe waits for it. The probe got no answer (connection
//!   failure) or its caller gave up (its future was dropped): the next waiter probes instead.
//!
//! Every wait goes through the client's [`Sleeper`] and every time comes from its clock, so tests
//! are deterministic; every wait is cancellation-safe (dropping the future ends it at once, and a
//! dropped probe hands its turn on).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailroom_clock::SharedClock;
use mailroom_http::{Backoff, Delays};
use tokio::sync::watch;

use crate::limiter::Sleeper;

/// A snapshot of the client's 429 back-off, for monitoring ([`crate::PsaClient::throttle_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Whether a back-off episode is under way (requests wait for the probe).
    pub backing_off: bool,
    /// Back-off step of the episode (1 after the first 429, +1 per refused probe); 0 when open.
    pub step: u32,
    /// When the next probe may start (during an episode).
    pub resume_at: Option<DateTime<Utc>>,
    /// Whether a probe request is in flight.
    pub probe_in_flight: bool,
    /// The `Retry-After` of the latest 429, if it had one.
    pub last_retry_after: Option<Duration>,
    /// HaloPSA's text of the latest 429 (e.g. "Rate Limit Reached - …").
    pub last_message: Option<String>,
    /// 429 replies seen since the client was built.
    pub rate_limited_total: u64,
    /// Probe requests sent since the client was built.
    pub probes_total: u64,
    /// Back-off episodes since the client was built.
    pub episodes_total: u64,
}

struct Episode {
    delays: Delays,
    step: u32,
    resume_at: DateTime<Utc>,
    probe: Option<u64>,
}

#[derive(Default)]
struct State {
    episode: Option<Episode>,
    next_probe: u64,
    last_retry_after: Option<Duration>,
    last_message: Option<String>,
    rate_limited_total: u64,
    probes_total: u64,
    episodes_total: u64,
}

/// How a request admitted by [`Throttle::admit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// HTTP 429, with its `Retry-After` (parsed) and HaloPSA's text.
    RateLimited {
        retry_after: Option<Duration>,
        message: Option<String>,
    },
    /// Any other HTTP reply: the PSA accepts requests again.
    Answered,
    /// No reply (connection failure, timeout): says nothing about the rate limit.
    NoAnswer,
}

/// The caller's budget ran out before the back-off would let it send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OverBudget {
    /// When the next probe may go.
    pub resume_at: DateTime<Utc>,
}

pub(crate) struct Throttle {
    policy: Backoff,
    clock: SharedClock,
    sleeper: Arc<dyn Sleeper>,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A request let through by the throttle. Report its result with [`Admission::finish`];
/// dropping it unreported (the caller was cancelled) hands a probe's turn to the next waiter.
pub(crate) struct Admission<'a> {
    throttle: &'a Throttle,
    probe: Option<u64>,
    finished: bool,
}

impl Admission<'_> {
    /// Whether this request is the probe of a back-off episode.
    #[cfg(test)]
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// Records how the request ended.
    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.throttle.record(self.probe, outcome);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle.record(self.probe, Outcome::NoAnswer);
        }
    }
}

enum Next {
    Go(Option<u64>),
    Sleep(Duration, DateTime<Utc>),
    WaitForProbe,
}

impl Throttle {
    pub fn new(policy: Backoff, clock: SharedClock, sleeper: Arc<dyn Sleeper>) -> Self {
        Throttle {
            policy,
            clock,
            sleeper,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("throttle lock")
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until a request may start: at once when no episode is under way; otherwise until
    /// the back-off delay has passed and this caller is the probe, or the probe succeeded.
    /// Fails without waiting when the next probe could only go after `deadline`.
    pub async fn admit(&self, deadline: DateTime<Utc>) -> Result<Admission<'_>, OverBudget> {
        loop {
            // Subscribe before reading the state so no change between the two is missed.
            let mut changed = self.changed.subscribe();
            let next = {
                let now = self.clock.now();
                let mut state = self.lock();
                let mut probe_id = state.next_probe;
                let next = match state.episode.as_mut() {
                    None => Next::Go(None),
                    Some(ep) if now < ep.resume_at => Next::Sleep(
                        (ep.resume_at - now).to_std().unwrap_or_default(),
                        ep.resume_at,
                    ),
                    Some(ep) if ep.probe.is_none() => {
                        probe_id += 1;
                        ep.probe = Some(probe_id);
                        Next::Go(Some(probe_id))
                    }
                    Some(_) => Next::WaitForProbe,
                };
                if let Next::Go(Some(id)) = next {
                    state.next_probe = id;
                    state.probes_total += 1;
                }
                next
            };
            match next {
                Next::Go(probe) => {
                    if probe.is_some() {
                        tracing::debug!("HaloPSA back-off: sending one probe request");
                    }
                    return Ok(Admission {
                        throttle: self,
                        probe,
                        finished: false,
                    });
                }
                Next::Sleep(_, resume_at) if resume_at > deadline => {
                    return Err(OverBudget { resume_at });
                }
                Next::Sleep(wait, _) => {
                    // Never spin on clock granularity.
                    self.sleeper.sleep(wait.max(Duration::from_millis(1))).await;
                }
                Next::WaitForProbe => {
                    // The probe's end (answer, failure or cancellation) always notifies.
                    let _ = changed.changed().await;
                }
            }
        }
    }

    fn record(&self, probe: Option<u64>, outcome: Outcome) {
        let now = self.clock.now();
        let mut state = self.lock();
        let is_current_probe = |ep: &Episode| probe.is_some() && ep.probe == probe;
        match outcome {
            Outcome::RateLimited {
                retry_after,
                message,
            } => {
                state.rate_limited_total += 1;
                state.last_retry_after = retry_after;
                if message.is_some() {
                    state.last_message = message;
                }
                match state.episode.as_mut() {
                    None => {
                        let mut delays = self.policy.delays();
                        let wait = delays.next_with_floor(retry_after);
                        tracing::info!(
                            ?wait,
                            ?retry_after,
                            "HaloPSA answered 429; backing off before one probe request"
                        );
                        state.episode = Some(Episode {
                            delays,
                            step: 1,
                            resume_at: now + to_chrono(wait),
                            probe: None,
                        });
                        state.episodes_total += 1;
                    }
                    Some(ep) if is_current_probe(ep) => {
                        let wait = ep.delays.next_with_floor(retry_after);
                        ep.step += 1;
                        ep.resume_at = now + to_chrono(wait);
                        ep.probe = None;
                        tracing::debug!(?wait, step = ep.step, "HaloPSA refused the probe (429)");
                    }
                    Some(ep) => {
                        // A request from before the episode (or a stale probe): no new step,
                        // but its Retry-After still holds.
                        if let Some(ra) = retry_after {
                            ep.resume_at = ep.resume_at.max(now + to_chrono(ra));
                        }
                    }
                }
            }
            Outcome::Answered => {
                if state.episode.as_ref().is_some_and(is_current_probe) {
                    let step = state.episode.as_ref().map(|e| e.step).unwrap_or(0);
                    tracing::info!(step, "HaloPSA accepted the probe; resuming all requests");
                    state.episode = None;
                }
            }
            Outcome::NoAnswer => match state.episode.as_mut() {
                Some(ep) if is_current_probe(ep) => ep.probe = None,
                _ => return,
            },
        }
        drop(state);
        self.notify();
    }

    /// The current state (monitoring).
    pub fn snapshot(&self) -> ThrottleState {
        let state = self.lock();
        let ep = state.episode.as_ref();
        ThrottleState {
            backing_off: ep.is_some(),
            step: ep.map(|e| e.step).unwrap_or(0),
            resume_at: ep.map(|e| e.resume_at),
            probe_in_flight: ep.is_some_and(|e| e.probe.is_some()),
            last_retry_after: state.last_retry_after,
            last_message: state.last_message.clone(),
            rate_limited_total: state.rate_limited_total,
            probes_total: state.probes_total,
            episodes_total: state.episodes_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_clock::{Clock, ManualClock};
    use std::future::Future;
    use std::pin::Pin;

    /// Advances the manual clock to the end of each requested wait (never past it when several
    /// callers wait for the same instant).
    #[derive(Debug)]
    struct ClockSleeper(Arc<ManualClock>);

    impl Sleeper for ClockSleeper {
        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            let clock = self.0.clone();
            let target = clock.now() + to_chrono(duration);
            Box::pin(async move {
                tokio::task::yield_now().await;
                let now = clock.now();
                if target > now {
                    clock.advance(target - now);
                }
            })
        }
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn throttle(clock: &Arc<ManualClock>) -> Throttle {
        Throttle::new(
            Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).without_jitter(),
            clock.clone(),
            Arc::new(ClockSleeper(clock.clone())),
        )
    }

    fn far() -> DateTime<Utc> {
        start() + chrono::Duration::days(1)
    }

    fn limited(retry_after: Option<u64>) -> Outcome {
        Outcome::RateLimited {
            retry_after: retry_after.map(Duration::from_secs),
            message: Some("Rate Limit Reached - 300 Requests per rolling 5 minute window".into()),
        }
    }

    #[tokio::test]
    async fn backs_off_doubling_with_one_probe_and_resumes_on_success() {
        let clock = ManualClock::frozen(start());
        let t = throttle(&clock);
        let a = t.admit(far()).await.unwrap();
        assert!(!a.is_probe());
        a.finish(limited(None));
        let s = t.snapshot();
        assert_eq!((s.backing_off, s.step), (true, 1));
        assert_eq!(s.resume_at, Some(start() + chrono::Duration::seconds(1)));
        // Probes at +1 s, +3 s, +7 s: 1, 2, 4 s apart.
        let mut probe_times = Vec::new();
        for _ in 0..3 {
            let p = t.admit(far()).await.unwrap();
            assert!(p.is_probe());
            probe_times.push((clock.now() - start()).num_seconds());
            p.finish(limited(None));
        }
        assert_eq!(probe_times, [1, 3, 7]);
        let p = t.admit(far()).await.unwrap();
        assert_eq!((clock.now() - start()).num_seconds(), 15);
        p.finish(Outcome::Answered);
        let s = t.snapshot();
        assert!(!s.backing_off);
        assert_eq!(
            (s.rate_limited_total, s.probes_total, s.episodes_total),
            (4, 4, 1)
        );
        // Open again: no waiting, no probe.
        let n = t.admit(far()).await.unwrap();
        assert!(!n.is_probe());
        assert_eq!((clock.now() - start()).num_seconds(), 15);
    }

    #[tokio::test]
    async fn retry_after_is_a_floor_and_a_deadline_fails_fast() {
        let clock = ManualClock::frozen(start());
        let t = throttle(&clock);
        t.admit(far()).await.unwrap().finish(limited(Some(30)));
        assert_eq!(
            t.snapshot().resume_at,
            Some(start() + chrono::Duration::seconds(30))
        );
        // A caller whose budget ends before the probe may go fails without waiting.
        let err = t
            .admit(start() + chrono::Duration::seconds(10))
            .await
            .err()
            .expect("over budget");
        assert_eq!(err.resume_at, start() + chrono::Duration::seconds(30));
        assert_eq!(clock.now(), start());
        // A 429 of an older request extends the wait to its Retry-After, without a new step.
        t.record(None, limited(Some(45)));
        let s = t.snapshot();
        assert_eq!(s.step, 1);
        assert_eq!(s.resume_at, Some(start() + chrono::Duration::seconds(45)));
    }

    #[tokio::test]
    async fn a_dropped_probe_hands_its_turn_on() {
        let clock = ManualClock::frozen(start());
        let t = throttle(&clock);
        t.admit(far()).await.unwrap().finish(limited(None));
        let probe = t.admit(far()).await.unwrap();
        assert!(probe.is_probe());
        assert!(t.snapshot().probe_in_flight);
        drop(probe); // its caller was cancelled
        assert!(!t.snapshot().probe_in_flight);
        let next = t.admit(far()).await.unwrap();
        assert!(next.is_probe(), "the next waiter probes");
        next.finish(Outcome::Answered);
        assert!(!t.snapshot().backing_off);
    }

    #[tokio::test]
    async fn waiters_wait_for_the_probe_and_a_cancelled_wait_ends_at_once() {
        let clock = ManualClock::frozen(start());
        let t = Arc::new(throttle(&clock));
        t.admit(far()).await.unwrap().finish(limited(None));
        let probe = t.admit(far()).await.unwrap();
        // Ten callers arrive while the probe is out: none is let through.
        let mut waiters = Vec::new();
        for _ in 0..10 {
            let t = t.clone();
            waiters.push(tokio::spawn(async move {
                let a = t.admit(far()).await.unwrap();
                let probe = a.is_probe();
                a.finish(Outcome::Answered);
                probe
            }));
        }
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert_eq!(t.snapshot().probes_total, 1);
        // A wait whose future is dropped ends at once (cancellation-safe).
        let cancelled = tokio::time::timeout(Duration::from_millis(10), t.admit(far())).await;
        assert!(cancelled.is_err());
        probe.finish(Outcome::Answered);
        for w in waiters {
            assert!(!w.await.unwrap(), "resumed, not probing");
        }
        assert_eq!(t.snapshot().probes_total, 1);
    }
}
