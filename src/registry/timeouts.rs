//! How long registry work may take, all derived from one setting,
//! `--registry-timeout` (env `KRUST_REGISTRY_TIMEOUT`): the budget of one
//! operation with its retries, the wait for a connection, the longest
//! silence of a registry in the middle of a request (a stall), and the wait
//! for a credential helper. A stall is silence, or a trickle: a body must
//! move [`LEAST_RATE`] over each stall window. A blob transfer that keeps
//! moving is never cut off; only a stall stops it. Also the watch that
//! tells a registry that stopped reading an upload from a producer of
//! streamed bytes that is simply slower than the network.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use tokio::time::Instant;

/// The setting, as messages name it.
pub const SETTING: &str = "--registry-timeout (env KRUST_REGISTRY_TIMEOUT)";

/// The budget when the setting is not given.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// The longest wait for a TCP connection (and its TLS handshake).
const CONNECT_AT_MOST: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    budget: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::new(DEFAULT_BUDGET)
    }
}

impl Timeouts {
    /// Limits for a budget of `budget` per operation (a second at least).
    pub fn new(budget: Duration) -> Timeouts {
        Timeouts {
            budget: budget.max(Duration::from_secs(1)),
        }
    }

    /// One operation (a manifest pulled, a blob uploaded…) with its retries:
    /// no retry starts after it, and only a blob transfer still moving may
    /// outlast it.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// A connection, TLS handshake included.
    pub fn connect(&self) -> Duration {
        self.budget.min(CONNECT_AT_MOST)
    }

    /// The longest a registry may stay silent in the middle of a request
    /// (an answer awaited, a body read or written): half the budget, so that
    /// a stalled request is tried once more within it.
    pub fn stall(&self) -> Duration {
        self.budget / 2
    }

    /// A credential helper's answer; less than the budget, so that a helper
    /// that hangs is named as the culprit rather than the registry.
    pub fn helper(&self) -> Duration {
        self.budget / 2
    }
}

/// The least a body must move to count as moving, in bytes a second,
/// judged over each stall window: a registry dripping a byte now and then
/// to keep a request alive is stalled. Any real link is far above it (a
/// 56k modem moves 7 KiB/s), so no honest upload or download is cut off.
pub const LEAST_RATE: u64 = 1024;

impl Timeouts {
    /// The bytes a body must move within each stall window.
    pub fn least_progress(&self) -> u64 {
        ((self.stall().as_secs_f64() * LEAST_RATE as f64) as u64).max(1)
    }
}

/// Whether one body, sent or received, keeps moving: it does while every
/// [`Timeouts::least_progress`] bytes come within a stall window of the
/// previous ones (or of its start).
#[derive(Debug)]
pub struct Pace {
    /// When the body last made enough progress, or started.
    since: Instant,
    /// Bytes moved since then.
    moved: u64,
    least: u64,
    stall: Duration,
}

impl Pace {
    pub fn new(timeouts: Timeouts) -> Pace {
        Pace {
            since: Instant::now(),
            moved: 0,
            least: timeouts.least_progress(),
            stall: timeouts.stall(),
        }
    }

    /// `bytes` moved.
    pub fn moved(&mut self, bytes: usize) {
        self.moved = self.moved.saturating_add(bytes as u64);
        if self.moved >= self.least {
            self.restart();
        }
    }

    /// A new stall window from now, owing nothing.
    pub fn restart(&mut self) {
        self.since = Instant::now();
        self.moved = 0;
    }

    /// When the body counts as stalled unless enough bytes move first.
    pub fn deadline(&self) -> Instant {
        self.since + self.stall
    }
}

/// The [`Pace`] of one request, shared by its body (which reports the bytes
/// it sends) and [`unless_stalled`] (which waits for the answer).
#[derive(Debug)]
pub struct Activity {
    pace: Mutex<Pace>,
    /// The body waits for our own producer, not for the registry.
    waiting_locally: AtomicBool,
}

impl Activity {
    pub fn new(timeouts: Timeouts) -> Activity {
        Activity {
            pace: Mutex::new(Pace::new(timeouts)),
            waiting_locally: AtomicBool::new(false),
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `bytes` of the body were taken by the connection.
    pub fn moved(&self, bytes: usize) {
        self.pace().moved(bytes);
    }

    /// The whole body is sent: the answer gets a stall window of its own.
    pub fn body_sent(&self) {
        self.pace().restart();
    }

    /// Whether the request body is waiting for bytes we have not produced
    /// yet; the registry is not to blame for that time.
    pub fn waiting_locally(&self, waiting: bool) {
        let was_waiting = self.waiting_locally.swap(waiting, Ordering::Relaxed);
        if was_waiting && !waiting {
            self.pace().restart();
        }
    }

    /// When the request counts as stalled unless it moves first.
    fn deadline(&self) -> Instant {
        let mut pace = self.pace();
        if self.waiting_locally.load(Ordering::Relaxed) {
            pace.restart();
        }
        pace.deadline()
    }
}

/// A request that stayed silent, or nearly, too long.
#[derive(Debug, PartialEq, Eq)]
pub struct Stalled;

/// Runs `request` to its end, unless `activity` sees it stall.
pub async fn unless_stalled<T>(
    request: impl Future<Output = T>,
    activity: &Activity,
) -> Result<T, Stalled> {
    tokio::pin!(request);
    loop {
        let deadline = activity.deadline();
        if Instant::now() >= deadline {
            return Err(Stalled);
        }
        tokio::select! {
            done = &mut request => return Ok(done),
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Why the next chunk of a response body did not come.
#[derive(Debug)]
pub enum ChunkError {
    Stalled,
    Broken(reqwest::Error),
}

/// The next chunk of a response body, unless it stalls by `pace`.
pub async fn next_chunk(
    stream: &mut (impl Stream<Item = Result<Bytes, reqwest::Error>> + Unpin),
    pace: &mut Pace,
) -> Result<Option<Bytes>, ChunkError> {
    match tokio::time::timeout_at(pace.deadline(), stream.try_next()).await {
        Ok(Ok(Some(chunk))) => {
            pace.moved(chunk.len());
            Ok(Some(chunk))
        }
        Ok(Ok(None)) => Ok(None),
        Ok(Err(err)) => Err(ChunkError::Broken(err)),
        Err(_) => Err(ChunkError::Stalled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn limits_derive_from_the_budget() {
        let default = Timeouts::default();
        assert_eq!(default.budget(), Duration::from_secs(60));
        assert_eq!(default.connect(), Duration::from_secs(10));
        assert_eq!(default.stall(), Duration::from_secs(30));
        let short = Timeouts::new(Duration::from_secs(3));
        assert_eq!(short.connect(), Duration::from_secs(3));
        assert_eq!(short.stall(), Duration::from_millis(1500));
        assert!(short.helper() < short.budget());
        assert_eq!(
            Timeouts::new(Duration::ZERO).budget(),
            Duration::from_secs(1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_stops_a_request_and_progress_keeps_it_going() {
        let timeouts = Timeouts::new(Duration::from_secs(10));
        let silent = Activity::new(timeouts);
        let never = std::future::pending::<()>();
        assert_eq!(unless_stalled(never, &silent).await, Err(Stalled));

        // A body that moves 64 KiB every 4 s for 20 s is not cut off at 5 s.
        let moving = Activity::new(timeouts);
        let transfer = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                moving.moved(64 * 1024);
            }
            "done"
        };
        assert_eq!(unless_stalled(transfer, &moving).await, Ok("done"));

        // Once the body is sent, the answer gets a whole stall window.
        let sent = Activity::new(timeouts);
        let answer = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            sent.body_sent();
            tokio::time::sleep(Duration::from_secs(4)).await;
            "answered"
        };
        assert_eq!(unless_stalled(answer, &sent).await, Ok("answered"));

        // Waiting for our own producer is not the registry's silence.
        let local = Activity::new(timeouts);
        local.waiting_locally(true);
        let slow_producer = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            local.waiting_locally(false);
            "sent"
        };
        assert_eq!(unless_stalled(slow_producer, &local).await, Ok("sent"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_a_stall() {
        let timeouts = Timeouts::new(Duration::from_secs(10));
        assert_eq!(timeouts.least_progress(), 5 * 1024);
        // A byte every 4 s: never silent for 5 s, yet stalled at 5 s.
        let started = Instant::now();
        let trickle = Activity::new(timeouts);
        let dripping = async {
            loop {
                tokio::time::sleep(Duration::from_secs(4)).await;
                trickle.moved(1);
            }
        };
        assert_eq!(unless_stalled(dripping, &trickle).await, Err(Stalled));
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        // The same for a body read: 1 KiB/s and more goes on, less stops.
        let read = |every: Duration, bytes: usize| {
            let chunks = futures_util::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok::<_, reqwest::Error>(Bytes::from(vec![0; bytes])), ()))
            });
            async move {
                let mut chunks = Box::pin(chunks.take(60));
                let mut pace = Pace::new(timeouts);
                let mut got = 0;
                loop {
                    match next_chunk(&mut chunks, &mut pace).await {
                        Ok(Some(chunk)) => got += chunk.len(),
                        Ok(None) => return Ok(got),
                        Err(_) => return Err(got),
                    }
                }
            }
        };
        assert_eq!(read(Duration::from_millis(900), 1024).await, Ok(60 * 1024));
        assert_eq!(read(Duration::from_millis(1100), 1000).await, Err(4000));
        assert_eq!(read(Duration::from_millis(300), 1).await, Err(16));
    }
}
