//! A tiny HTTP/1.1 server on `std::net` for the test doubles that stand in
//! front of or beside the real registry (the token server, the fault proxy):
//! one thread per connection, one request per connection (every answer says
//! `Connection: close`), stopped when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The head of a request, and whatever body bytes came with it.
pub struct Head {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The request target, e.g. `/v2/x/blobs/uploads/?mount=…`.
    pub target: String,
    /// Header (name, value) pairs, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body bytes already read past the head.
    pub leftover: Vec<u8>,
}

impl Head {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::http::find_header(&self.headers, name)
    }

    /// `Content-Length`, 0 when absent (or the body is chunked).
    pub fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the body comes with chunked transfer encoding (a streamed
    /// upload), its length unknown until its end.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// Whether the request carries a body.
    pub fn has_body(&self) -> bool {
        self.is_chunked() || self.content_length() > 0
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    /// Every value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Vec<String> {
        let query = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        form_values(query, name)
    }

    /// The head as bytes to send on, with `Connection: close` in place of
    /// any connection header, for a body of `length` bytes (a chunked body
    /// is sent on whole, with its length).
    pub fn forwardable(&self, length: usize) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            if [
                "connection",
                "keep-alive",
                "proxy-connection",
                "transfer-encoding",
                "content-length",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if length > 0 || self.has_body() {
            out.push_str(&format!("Content-Length: {length}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Values of `name` in an `application/x-www-form-urlencoded` string.
pub fn form_values(text: &str, name: &str) -> Vec<String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
        .collect()
}

/// Decodes `%XX` escapes and `+` (as a space).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a request head (up to the blank line). `None` when the client
/// closed the connection without sending one.
pub fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Head>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        method,
        target,
        headers,
        leftover: buffer[end + 4..].to_vec(),
    }))
}

/// Reads the whole body of a request whose head was read.
pub fn read_body(stream: &mut TcpStream, head: &Head) -> std::io::Result<Vec<u8>> {
    if head.is_chunked() {
        return read_chunked(stream, head.leftover.clone());
    }
    let length = head.content_length() as usize;
    let mut body = head.leftover.clone();
    body.truncate(length);
    let mut rest = vec![0u8; length - body.len()];
    stream.read_exact(&mut rest)?;
    body.extend_from_slice(&rest);
    Ok(body)
}

/// Decodes a chunked body (`SIZE\r\nDATA\r\n`… up to a zero size and the
/// blank line after any trailers), starting with the bytes already read.
fn read_chunked(stream: &mut TcpStream, mut raw: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let cut_short =
        || std::io::Error::new(std::io::ErrorKind::InvalidData, "chunked body cut short");
    // Reads more of the body into `raw`; false at the end of the stream.
    let mut more = |raw: &mut Vec<u8>| -> std::io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let n = stream.read(&mut chunk)?;
        raw.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    let line_end = |raw: &[u8], at: usize| {
        raw[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|end| at + end)
    };
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let size_end = loop {
            if let Some(end) = line_end(&raw, at) {
                break end;
            }
            if !more(&mut raw)? {
                return Err(cut_short());
            }
        };
        let size_text = String::from_utf8_lossy(&raw[at..size_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        at = size_end + 2;
        if size == 0 {
            // Trailers (none expected) end with a blank line.
            while line_end(&raw, at).is_none() && more(&mut raw)? {}
            return Ok(body);
        }
        while raw.len() < at + size + 2 {
            if !more(&mut raw)? {
                return Err(cut_short());
            }
        }
        body.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

/// Writes a whole response and closes the connection.
pub fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A running server. Dropping it stops accepting and tells handlers (via
/// [`Server::stopping`]) to give up.
pub struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on a free 127.0.0.1 port and runs `handler` on a thread per
    /// connection; the handler gets the stop flag to poll while it waits.
    pub fn start<H>(handler: H) -> Server
    where
        H: Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server port");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                        let handler = handler.clone();
                        let flag = flag.clone();
                        std::thread::spawn(move || handler(stream, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
