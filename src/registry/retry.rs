//! Retries (SPEC §7): an operation that failed on a connection error, 408,
//! 429 or 5xx is run again, after the delay the registry asked for with
//! `Retry-After` or else an exponential backoff with jitter. The unit of a
//! retry is a whole operation (an upload restarts from a new session and
//! re-reads its file), never half a request.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::errors::RegistryError;
use crate::progress;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a registry asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(300),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1):
    /// the registry's `Retry-After` when given, else `base * 2^(attempt-1)`
    /// capped, then jittered to between half and all of it so that
    /// parallel transfers do not retry in lockstep.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self
            .base
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        backoff.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Runs `operation` until it succeeds, fails for good, or the attempts
    /// are spent. `what` names the operation in the "Retrying" line.
    pub async fn run<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(err) => match err.retry() {
                    Some(retry_after) if attempt < self.attempts => {
                        let delay = self.delay(attempt, retry_after);
                        progress::status(
                            "Retrying",
                            format!(
                                "{what} in {:.1}s (attempt {} of {}): {err}",
                                delay.as_secs_f64(),
                                attempt + 1,
                                self.attempts
                            ),
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    _ => {
                        return Err(RegistryError {
                            attempts: attempt,
                            ..err
                        });
                    }
                },
            }
        }
    }
}

/// The `Retry-After` of a response: delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::errors::status_for_test;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let policy = RetryPolicy::default();
        for attempt in 1..=10 {
            let full = policy
                .base
                .saturating_mul(1 << (attempt - 1))
                .min(policy.max_backoff);
            let delay = policy.delay(attempt, None);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_header_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(30);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(28) && wait <= Duration::from_secs(30));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    fn failure(code: u16) -> RegistryError {
        status_for_test(code, None)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let policy = RetryPolicy {
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        let result = policy
            .run("test", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(failure(503)),
                    1 => Err(failure(429)),
                    _ => Ok(42),
                }
            })
            .await;
        assert_eq!(result.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_and_spent_attempts_stop() {
        let policy = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        let err = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(failure(404))
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err.attempts, 1);

        let err = policy
            .run("test", || async { Err::<(), _>(failure(500)) })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 3);
        assert!(err.to_string().ends_with("(gave up after 3 attempts)"));
    }
}
