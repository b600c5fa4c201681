//! A fault-injecting HTTP proxy in front of a real registry: requests pass
//! through unchanged (with their `Host`, so the registry's `Location`s lead
//! back through the proxy) unless a [`Rule`] matches, in which case the
//! proxy answers with an error status, a 429 with `Retry-After`, a redirect,
//! drops the connection halfway through the request body, or holds the
//! request until the proxy stops. Everything it did is recorded.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::serve::{self, Head, Server};

/// What a rule does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a distribution-style error body; the
    /// request never reaches the registry.
    Status(u16),
    /// 429 with `Retry-After: SECONDS`.
    TooManyRequests(u64),
    /// Send the head and half the body on, then drop both connections.
    DropMidBody,
    /// Answer 301/307 with a relative `Location`: the same target plus
    /// `krust-redirected=1`.
    Redirect(u16),
    /// Hold the request, unanswered, until the proxy stops.
    Hang,
}

/// Which requests a rule applies to, and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The method, e.g. `PUT`.
    pub method: &'static str,
    /// A substring of the request target.
    pub target: &'static str,
    /// Only requests with a non-empty body (a monolithic upload, not the
    /// closing PUT of a chunked one).
    pub with_body: bool,
    /// Matching requests passed through before the rule starts acting.
    pub skip: usize,
    /// Matching requests it acts on, after the skipped ones.
    pub times: usize,
    /// What it does.
    pub fault: Fault,
}

impl Rule {
    /// A rule acting on the first `times` requests with `method` whose
    /// target contains `target`.
    pub fn new(method: &'static str, target: &'static str, fault: Fault) -> Rule {
        Rule {
            method,
            target,
            with_body: false,
            skip: 0,
            times: 1,
            fault,
        }
    }

    /// Only requests that carry a body.
    pub fn with_body(mut self) -> Rule {
        self.with_body = true;
        self
    }

    /// Let `n` matching requests through first.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    /// Act on `n` requests (`usize::MAX`: all).
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    fn matches(&self, head: &Head) -> bool {
        head.method == self.method
            && head.target.contains(self.target)
            && (!self.with_body || head.has_body())
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed to the registry, which answered this status.
    Forwarded(u16),
    /// Rule number `rule` acted with its fault.
    Injected { rule: usize, fault: Fault },
}

/// One request the proxy saw, once it was dealt with (a held request is
/// recorded when it starts being held).
#[derive(Debug, Clone)]
pub struct Event {
    /// Method.
    pub method: String,
    /// Request target, query included.
    pub target: String,
    /// What happened.
    pub outcome: Outcome,
}

struct State {
    upstream: String,
    rules: Vec<Rule>,
    seen: Mutex<Vec<usize>>,
    events: Mutex<Vec<Event>>,
}

/// A running proxy; dropping it stops it and releases held requests.
pub struct FaultProxy {
    server: Server,
    state: Arc<State>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`127.0.0.1:PORT`) applying `rules`
    /// (the first matching rule that still acts wins).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            seen: Mutex::new(vec![0; rules.len()]),
            rules,
            events: Mutex::new(Vec::new()),
        });
        let handler_state = state.clone();
        let server = Server::start(move |stream, stop: &AtomicBool| {
            handle(&handler_state, stream, stop);
        });
        FaultProxy { server, state }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.state.events.lock().expect("proxy log").clone()
    }

    /// How many times each rule acted.
    pub fn injected_per_rule(&self) -> Vec<usize> {
        let mut counts = vec![0; self.state.rules.len()];
        for event in self.events() {
            if let Outcome::Injected { rule, .. } = event.outcome {
                counts[rule] += 1;
            }
        }
        counts
    }

    /// Waits until `done` holds for the events, or panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.events()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy: gave up waiting for {what}; events: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The rule that acts on this request, if any (counting it as seen).
fn pick(state: &State, head: &Head) -> Option<(usize, Fault)> {
    let mut seen = state.seen.lock().expect("proxy rule counts");
    for (index, rule) in state.rules.iter().enumerate() {
        if !rule.matches(head) {
            continue;
        }
        let n = seen[index];
        seen[index] += 1;
        if n >= rule.skip && n - rule.skip < rule.times {
            return Some((index, rule.fault.clone()));
        }
    }
    None
}

fn record(state: &State, head: &Head, outcome: Outcome) {
    state.events.lock().expect("proxy log").push(Event {
        method: head.method.clone(),
        target: head.target.clone(),
        outcome,
    });
}

fn handle(state: &State, mut client: TcpStream, stop: &AtomicBool) {
    let Ok(Some(head)) = serve::read_head(&mut client) else {
        return;
    };
    let Some((rule, fault)) = pick(state, &head) else {
        if let Ok(status) = forward(state, &head, &mut client) {
            record(state, &head, Outcome::Forwarded(status));
        }
        return;
    };
    let injected = Outcome::Injected {
        rule,
        fault: fault.clone(),
    };
    match fault {
        Fault::Status(status) => {
            let _ = serve::read_body(&mut client, &head);
            record(state, &head, injected);
            let body = format!(
                r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected by the test proxy ({status})"}}]}}"#
            );
            let _ = serve::respond(
                &mut client,
                status,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
        }
        Fault::TooManyRequests(seconds) => {
            let _ = serve::read_body(&mut client, &head);
            record(state, &head, injected);
            let _ = serve::respond(
                &mut client,
                429,
                &[("Retry-After", &seconds.to_string())],
                b"slow down",
            );
        }
        Fault::Redirect(status) => {
            let _ = serve::read_body(&mut client, &head);
            record(state, &head, injected);
            let separator = if head.target.contains('?') { '&' } else { '?' };
            let location = format!("{}{separator}krust-redirected=1", head.target);
            let _ = serve::respond(&mut client, status, &[("Location", &location)], b"");
        }
        Fault::DropMidBody => {
            record(state, &head, injected);
            if let Ok(mut upstream) = TcpStream::connect(&state.upstream) {
                if let Ok(body) = serve::read_body(&mut client, &head) {
                    let _ = upstream.write_all(&head.forwardable(body.len()));
                    let _ = upstream.write_all(&body[..body.len() / 2]);
                }
                let _ = upstream.shutdown(Shutdown::Both);
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Hang => {
            record(state, &head, injected);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

/// Passes the request to the registry and its answer back; returns the
/// registry's status.
fn forward(state: &State, head: &Head, client: &mut TcpStream) -> std::io::Result<u16> {
    let body = serve::read_body(client, head)?;
    let mut upstream = TcpStream::connect(&state.upstream)?;
    upstream.write_all(&head.forwardable(body.len()))?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    client.write_all(&response)?;
    client.flush()?;
    let _ = client.shutdown(Shutdown::Write);
    let status = std::str::from_utf8(&response[..response.len().min(64)])
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok(status)
}
