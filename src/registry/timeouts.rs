//! How long registry work may take, all derived from one setting,
//! `--registry-timeout` (env `KRUST_REGISTRY_TIMEOUT`): the budget of one
//! operation with its retries, the wait for a connection, the longest
//! silence of a registry in the middle of a request (a stall), and the wait
//! for a credential helper. A blob transfer that keeps moving is never cut
//! off; only a stall stops it. Also the watch that tells a registry that
//! stopped reading an upload from a producer of streamed bytes that is
//! simply slower than the network.

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

/// When the bytes of one request last moved, for [`unless_stalled`].
#[derive(Debug)]
pub struct Activity {
    last: Mutex<Instant>,
    /// The body waits for our own producer, not for the registry.
    waiting_locally: AtomicBool,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            last: Mutex::new(Instant::now()),
            waiting_locally: AtomicBool::new(false),
        }
    }

    /// Bytes moved.
    pub fn moved(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the request body is waiting for bytes we have not produced
    /// yet; the registry is not silent then.
    pub fn waiting_locally(&self, waiting: bool) {
        if !waiting {
            self.moved();
        }
        self.waiting_locally.store(waiting, Ordering::Relaxed);
    }

    /// How long the registry has been silent.
    fn silent_for(&self) -> Duration {
        if self.waiting_locally.load(Ordering::Relaxed) {
            self.moved();
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// A request that stayed silent too long.
#[derive(Debug, PartialEq, Eq)]
pub struct Stalled;

/// Runs `request` to its end, unless `activity` sees nothing move for
/// `stall`.
pub async fn unless_stalled<T>(
    request: impl Future<Output = T>,
    activity: &Activity,
    stall: Duration,
) -> Result<T, Stalled> {
    tokio::pin!(request);
    loop {
        let silent = activity.silent_for();
        if silent >= stall {
            return Err(Stalled);
        }
        tokio::select! {
            done = &mut request => return Ok(done),
            () = tokio::time::sleep(stall - silent) => {}
        }
    }
}

/// Why the next chunk of a response body did not come.
#[derive(Debug)]
pub enum ChunkError {
    Stalled,
    Broken(reqwest::Error),
}

/// The next chunk of a response body, unless the registry stays silent for
/// `stall`.
pub async fn next_chunk(
    stream: &mut (impl Stream<Item = Result<Bytes, reqwest::Error>> + Unpin),
    stall: Duration,
) -> Result<Option<Bytes>, ChunkError> {
    match tokio::time::timeout(stall, stream.try_next()).await {
        Ok(chunk) => chunk.map_err(ChunkError::Broken),
        Err(_) => Err(ChunkError::Stalled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let stall = Duration::from_secs(5);
        let silent = Activity::new();
        let never = std::future::pending::<()>();
        assert_eq!(unless_stalled(never, &silent, stall).await, Err(Stalled));

        // A body that moves every 4 s for 20 s is not cut off at 5 s.
        let moving = Activity::new();
        let transfer = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                moving.moved();
            }
            "done"
        };
        assert_eq!(unless_stalled(transfer, &moving, stall).await, Ok("done"));

        // Waiting for our own producer is not the registry's silence.
        let local = Activity::new();
        local.waiting_locally(true);
        let slow_producer = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            local.waiting_locally(false);
            "sent"
        };
        assert_eq!(
            unless_stalled(slow_producer, &local, stall).await,
            Ok("sent")
        );
    }
}
