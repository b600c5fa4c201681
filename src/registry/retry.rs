//! Retries (SPEC §7): an operation that failed on a connection error, a
//! stall, 408, 429 or 5xx is run again, after the delay the registry asked
//! for with `Retry-After` or else an exponential backoff with jitter, as
//! long as its budget (`--registry-timeout`) lasts: no attempt starts, and
//! no backoff sleeps, past it. The unit of a retry is a whole operation (an
//! upload restarts from a new session and re-reads its file), never half a
//! request.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

use super::errors::{ErrorKind, RegistryError, Wait};
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
    /// The time one operation may take, its retries included.
    pub budget: Duration,
    /// Whether an attempt under way when the budget ends is stopped.
    pub stop_attempts: bool,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(300),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            budget: super::timeouts::DEFAULT_BUDGET,
            stop_attempts: true,
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

    /// The policy for a blob transfer: an attempt that keeps moving bytes
    /// (the transport stops one that stalls) may outlast the budget; no
    /// retry starts after it.
    pub fn for_transfer(self) -> RetryPolicy {
        RetryPolicy {
            stop_attempts: false,
            ..self
        }
    }

    /// Runs `operation` on `registry` until it succeeds, fails for good, or
    /// the attempts or the budget are spent; an attempt still running when
    /// the budget ends is stopped (unless this is a transfer's policy).
    /// `what` names the operation in messages.
    pub async fn run<T, F, Fut>(
        &self,
        registry: &str,
        what: &str,
        mut operation: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut attempt = 1;
        loop {
            let outcome = if self.stop_attempts {
                match tokio::time::timeout_at(deadline, operation()).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        return Err(RegistryError {
                            attempts: attempt,
                            ..RegistryError::new(
                                registry,
                                ErrorKind::TimedOut {
                                    request: what.to_string(),
                                    wait: Wait::Budget(self.budget),
                                },
                            )
                        });
                    }
                }
            } else {
                operation().await
            };
            let err = match outcome {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let Some(retry_after) = err.retry() else {
                return Err(RegistryError {
                    attempts: attempt,
                    ..err
                });
            };
            let delay = self.delay(attempt, retry_after);
            if attempt >= self.attempts {
                return Err(RegistryError {
                    attempts: attempt,
                    ..err
                });
            }
            if Instant::now() + delay >= deadline {
                return Err(RegistryError {
                    attempts: attempt,
                    out_of_time: Some(self.budget),
                    ..err
                });
            }
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
            .run("r", "test", || async {
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
            .run("r", "test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(failure(404))
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err.attempts, 1);

        let err = policy
            .run("r", "test", || async { Err::<(), _>(failure(500)) })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 3);
        assert!(err.to_string().ends_with("(gave up after 3 attempts)"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_and_no_backoff_past_the_budget() {
        let policy = RetryPolicy {
            budget: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        // A registry asking to come back in a minute: no sleep past the budget.
        let started = Instant::now();
        let err = policy
            .run("r", "test", || async {
                Err::<(), _>(status_for_test(429, Some(Duration::from_secs(60))))
            })
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(err.out_of_time, Some(Duration::from_secs(10)));
        assert!(err.to_string().contains("--registry-timeout"), "{err}");

        // Attempts that take 4 s each: the third is stopped at 10 s.
        let calls = AtomicU32::new(0);
        let err = policy
            .run("r", "GET /x", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(4)).await;
                Err::<(), _>(failure(503))
            })
            .await
            .unwrap_err();
        assert!(started.elapsed() <= Duration::from_secs(10));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(matches!(
            err.kind,
            ErrorKind::TimedOut {
                wait: Wait::Budget(_),
                ..
            }
        ));
        assert!(
            err.to_string().contains("GET /x did not finish within 10s"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_that_keeps_going_outlasts_the_budget() {
        let policy = RetryPolicy {
            budget: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let started = Instant::now();
        let policy = policy.for_transfer();
        let done = policy
            .run("r", "upload", || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(7)
            })
            .await;
        assert_eq!(done.unwrap(), 7);
        assert_eq!(started.elapsed(), Duration::from_secs(30));

        // ...but it is not tried again once the budget is spent.
        let calls = AtomicU32::new(0);
        let err = policy
            .run("r", "upload", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(12)).await;
                Err::<(), _>(failure(502))
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err.out_of_time, Some(Duration::from_secs(10)));
    }
}
