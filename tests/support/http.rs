//! A tiny HTTP/1.0 client on `std::net::TcpStream`: enough to poll the registry's
//! `/v2/` endpoint and download blobs without adding an HTTP crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A complete HTTP response (HTTP/1.0: the body runs until the server closes).
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header (name, value) pairs, names as sent.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The first header named `name` (case-insensitive) among (name, value)
/// pairs.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Send `METHOD path` to `host:port` with optional extra headers and return the
/// whole response. Errors are `std::io::Error`s with the address in the message.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let with_context = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{method} http://{addr}{path}: {e}"))
    };
    let mut stream = TcpStream::connect(addr).map_err(with_context)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: krust-tests\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(with_context)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(with_context)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{method} http://{addr}{path}: malformed response: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

/// `GET path` shorthand for [`request`].
pub fn get(addr: &str, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[])
}

/// Split raw bytes into status line, headers and body.
fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}
