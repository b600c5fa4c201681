//! A registry that misbehaves on purpose, for the faults no real registry
//! will produce on demand: every answer is chosen by the test, as a map from
//! (method, path) to an [`Answer`] — a status, headers and a body, delivered
//! whole, truncated, stalled halfway, a byte at a time, or never. It can ask for Basic
//! credentials or Bearer tokens (its token endpoint answers whatever the
//! test wants), serves documents and blobs with a correct or a wrong
//! `Docker-Content-Digest`, and records every request it received, so that
//! tests can assert on what a client asked for (no `..` in a path, say).
//!
//! [`RogueBase`] builds a small but complete base image (one layer, a config,
//! a manifest, an index) whose documents a test edits before serving them.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::serve::{self, Head, Server};
use super::sha256_digest;

/// How an answer's bytes go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The head and the whole body, then the connection is closed.
    Whole,
    /// The `Content-Length` of the whole body, but only its first `sent`
    /// bytes, then the connection is closed: a truncated body.
    Truncated { sent: usize },
    /// The head and the first `sent` bytes of the body, then nothing more
    /// until the server stops.
    StallAfter(usize),
    /// The head, then the body one byte at a time, each after this pause:
    /// never silent for long, yet hardly moving.
    Trickle(Duration),
    /// The request is accepted (its body left unread) and never answered.
    Hang,
    /// The connection is closed without a byte of answer.
    Drop,
}

/// What the rogue registry answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delivery: Delivery,
}

impl Answer {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delivery: Delivery::Whole,
        }
    }

    /// A distribution-style error: `{"errors":[{"code","message"}]}`.
    pub fn error(status: u16, code: &str, message: &str) -> Answer {
        let body = json!({"errors": [{"code": code, "message": message}]});
        Answer::bytes(status, "application/json", body.to_string())
    }

    /// `status` with a body of `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            body: body.into(),
            ..Answer::status(status)
        }
        .header("Content-Type", content_type)
    }

    /// 200 with a JSON body.
    pub fn json(value: &Value) -> Answer {
        Answer::bytes(200, "application/json", value.to_string())
    }

    /// A request accepted and never answered.
    pub fn hang() -> Answer {
        Answer::status(200).delivered(Delivery::Hang)
    }

    /// A connection closed without an answer.
    pub fn drop_connection() -> Answer {
        Answer::status(200).delivered(Delivery::Drop)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Changes how the answer goes out.
    pub fn delivered(mut self, delivery: Delivery) -> Answer {
        self.delivery = delivery;
        self
    }

    /// The value of header `name`, if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        super::http::find_header(&self.headers, name)
    }
}

/// How the rogue registry wants clients to authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anyone may do anything.
    None,
    /// A request without an `Authorization` header gets a Basic challenge.
    Basic,
    /// A request without a Bearer token gets a challenge naming this
    /// server's `/token`, which answers the given answer.
    Bearer(Answer),
}

/// One request the rogue registry received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent, query included.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// A descriptor of something the rogue registry serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Served {
    /// As OCI descriptor JSON.
    pub fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

struct State {
    port: u16,
    routes: Mutex<HashMap<(String, String), Answer>>,
    fallback: Mutex<Answer>,
    auth: Mutex<Auth>,
    requests: Mutex<Vec<Request>>,
}

/// A running rogue registry on 127.0.0.1; dropping it stops it and ends
/// every hanging answer.
pub struct Rogue {
    server: Server,
    state: Arc<State>,
}

impl Rogue {
    /// A registry that answers `GET /v2/` with 200 and everything else with
    /// 404 until routes are added.
    pub fn start() -> Rogue {
        let cell: Arc<Mutex<Option<Arc<State>>>> = Arc::new(Mutex::new(None));
        let handler_cell = cell.clone();
        let server = Server::start(move |stream, stop: &AtomicBool| {
            let state = handler_cell.lock().expect("rogue state").clone();
            if let Some(state) = state {
                handle(&state, stream, stop);
            }
        });
        let state = Arc::new(State {
            port: server.port(),
            routes: Mutex::new(HashMap::new()),
            fallback: Mutex::new(Answer::error(404, "NAME_UNKNOWN", "not here")),
            auth: Mutex::new(Auth::None),
            requests: Mutex::new(Vec::new()),
        });
        *cell.lock().expect("rogue state") = Some(state.clone());
        let rogue = Rogue { server, state };
        rogue.route("GET", "/v2/", Answer::json(&json!({})));
        rogue
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Answers `method path` (path without query) with `answer` from now on.
    /// A `HEAD` without a route of its own gets the head of the `GET`'s.
    pub fn route(&self, method: &str, path: &str, answer: Answer) {
        self.state
            .routes
            .lock()
            .expect("rogue routes")
            .insert((method.to_string(), path.to_string()), answer);
    }

    /// The answer to requests no route names (default: 404).
    pub fn fallback(&self, answer: Answer) {
        *self.state.fallback.lock().expect("rogue fallback") = answer;
    }

    /// How clients must authenticate from now on.
    pub fn auth(&self, auth: Auth) {
        *self.state.auth.lock().expect("rogue auth") = auth;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("rogue log").clone()
    }

    /// Serves `bytes` as blob `GET /v2/REPO/blobs/DIGEST`.
    pub fn blob(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Served {
        let served = served(media_type, bytes);
        self.route(
            "GET",
            &format!("/v2/{repo}/blobs/{}", served.digest),
            Answer::bytes(200, "application/octet-stream", bytes)
                .header("Docker-Content-Digest", &served.digest),
        );
        served
    }

    /// Serves a JSON document as a blob (a config).
    pub fn json_blob(&self, repo: &str, media_type: &str, value: &Value) -> Served {
        self.blob(repo, media_type, &json_bytes(value))
    }

    /// Serves a manifest or index by digest and, when given, by `tag`, with
    /// its media type (its `mediaType` field, else `application/json`) and
    /// its true `Docker-Content-Digest`.
    pub fn manifest(&self, repo: &str, tag: Option<&str>, value: &Value) -> Served {
        let bytes = json_bytes(value);
        let media_type = value
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("application/json");
        let served = served(media_type, &bytes);
        let answer = Answer::bytes(200, media_type, bytes.clone())
            .header("Docker-Content-Digest", &served.digest);
        self.route(
            "GET",
            &format!("/v2/{repo}/manifests/{}", served.digest),
            answer.clone(),
        );
        if let Some(tag) = tag {
            self.route("GET", &format!("/v2/{repo}/manifests/{tag}"), answer);
        }
        served
    }
}

/// The descriptor of `bytes`.
fn served(media_type: &str, bytes: &[u8]) -> Served {
    Served {
        media_type: media_type.to_string(),
        digest: sha256_digest(bytes),
        size: bytes.len() as u64,
    }
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise a JSON document")
}

fn handle(state: &State, mut stream: TcpStream, stop: &AtomicBool) {
    let Ok(Some(head)) = serve::read_head(&mut stream) else {
        return;
    };
    state.requests.lock().expect("rogue log").push(Request {
        method: head.method.clone(),
        target: head.target.clone(),
        headers: head.headers.clone(),
    });
    let answer = answer_for(state, &head);
    if answer.delivery == Delivery::Hang {
        // The body stays unread: an upload stalls once the socket is full.
        wait_for_stop(stop);
        return;
    }
    if head.has_body() {
        let _ = serve::read_body(&mut stream, &head);
    }
    let _ = send(&mut stream, &answer, head.method == "HEAD", stop);
}

/// The answer to a request: an authentication challenge when one is due,
/// else its route (a HEAD falling back to its GET's), else the fallback.
fn answer_for(state: &State, head: &Head) -> Answer {
    let auth = state.auth.lock().expect("rogue auth").clone();
    let authorization = head.header("authorization").unwrap_or("");
    match auth {
        Auth::None => {}
        Auth::Basic if !authorization.starts_with("Basic ") => {
            return Answer::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", r#"Basic realm="rogue""#);
        }
        Auth::Basic => {}
        Auth::Bearer(token) => {
            if head.path() == "/token" {
                return token;
            }
            if !authorization.starts_with("Bearer ") {
                let challenge = format!(
                    r#"Bearer realm="http://127.0.0.1:{}/token",service="rogue""#,
                    state.port
                );
                return Answer::error(401, "UNAUTHORIZED", "authentication required")
                    .header("WWW-Authenticate", &challenge);
            }
        }
    }
    let routes = state.routes.lock().expect("rogue routes");
    let key = |method: &str| (method.to_string(), head.path().to_string());
    routes
        .get(&key(&head.method))
        .or_else(|| {
            (head.method == "HEAD")
                .then(|| routes.get(&key("GET")))
                .flatten()
        })
        .cloned()
        .unwrap_or_else(|| state.fallback.lock().expect("rogue fallback").clone())
}

/// Writes `answer` as its delivery says (no body for a HEAD).
fn send(
    stream: &mut TcpStream,
    answer: &Answer,
    head_only: bool,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    if answer.delivery == Delivery::Drop {
        return stream.shutdown(std::net::Shutdown::Both);
    }
    let length = answer.body.len();
    let mut text = format!("HTTP/1.1 {} Rogue\r\n", answer.status);
    if answer.header_value("content-length").is_none() {
        text.push_str(&format!("Content-Length: {length}\r\n"));
    }
    text.push_str("Connection: close\r\n");
    for (name, value) in &answer.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())?;
    if !head_only {
        match answer.delivery {
            Delivery::StallAfter(sent) => {
                stream.write_all(&answer.body[..sent.min(answer.body.len())])?;
                stream.flush()?;
                wait_for_stop(stop);
                return Ok(());
            }
            Delivery::Truncated { sent } => {
                stream.write_all(&answer.body[..sent.min(answer.body.len())])?;
            }
            Delivery::Trickle(pause) => {
                for byte in &answer.body {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    stream.flush()?;
                    std::thread::sleep(pause);
                    stream.write_all(std::slice::from_ref(byte))?;
                }
            }
            _ => stream.write_all(&answer.body)?,
        }
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// Holds a connection open until the server stops.
fn wait_for_stop(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// OCI media types of the documents [`RogueBase`] serves.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A small base image for a rogue registry: one layer holding
/// `/etc/rogue-base`, a linux/amd64 config, its manifest and an index of it.
/// Tests change `config` and edit the manifest and index as they are
/// served ([`RogueBase::serve`]). Each one is unique (a nonce in its layer
/// and config), so that no cache of cargo-krust's has seen its documents.
pub struct RogueBase {
    /// The gzip layer.
    pub layer: Vec<u8>,
    /// The config document.
    pub config: Value,
    /// The index entry's `platform`.
    pub platform: Value,
}

/// Digests of a served [`RogueBase`].
#[derive(Debug, Clone)]
pub struct ServedBase {
    pub index: Served,
    pub manifest: Served,
    pub config: Served,
    pub layer: Served,
}

impl RogueBase {
    pub fn amd64() -> RogueBase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let nonce = format!("{}-{nanos}", super::unique_name("rogue"));
        let mut builder = tar::Builder::new(Vec::new());
        let contents = format!("rogue base {nonce}\n");
        let contents = contents.as_bytes();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        builder
            .append_data(&mut header, "etc/rogue-base", contents)
            .expect("append to the layer tar");
        let tar = builder.into_inner().expect("finish the layer tar");
        let diff_id = sha256_digest(&tar);
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&tar).expect("gzip the layer");
        RogueBase {
            layer: gzip.finish().expect("finish the gzip layer"),
            config: json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": ["PATH=/usr/bin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "krustRogueNonce": nonce,
            }),
            platform: json!({"architecture": "amd64", "os": "linux"}),
        }
    }

    /// Serves the base under `repo` with tag `tag` pointing at the index;
    /// `edit_manifest` and `edit_index` may change those documents first
    /// (their digests follow).
    pub fn serve(
        &self,
        rogue: &Rogue,
        repo: &str,
        tag: &str,
        edit_manifest: impl FnOnce(&mut Value),
        edit_index: impl FnOnce(&mut Value),
    ) -> ServedBase {
        let layer = rogue.blob(repo, OCI_LAYER, &self.layer);
        let config = rogue.json_blob(repo, OCI_CONFIG, &self.config);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        });
        edit_manifest(&mut manifest);
        let manifest = rogue.manifest(repo, None, &manifest);
        let mut entry = manifest.to_json();
        entry["platform"] = self.platform.clone();
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry],
        });
        edit_index(&mut index);
        let index = rogue.manifest(repo, Some(tag), &index);
        ServedBase {
            index,
            manifest,
            config,
            layer,
        }
    }
}
