//! HTTP/1.1 requests written byte for byte over a fresh TCP connection to 127.0.0.1, and the
//! response read back whole: for requests an HTTP client library would refuse or normalise
//! (two `Authorization` headers, bytes that are not visible ASCII, hundreds of headers, a body
//! of an exact size).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a request may take, connection to last byte.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A request to send: method, path (with any query), headers in order, body.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target, e.g. `/oauth/token?x=1`.
    pub path: String,
    /// Header names and raw values, sent in this order (repeats allowed).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body; `Content-Length` is added for it unless a header already sets it.
    pub body: Vec<u8>,
}

/// A response: status, headers (names lowercased) and body (de-chunked).
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawRequest {
    /// A `POST` to `path` with `body` and no headers yet.
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        RawRequest {
            method: "POST".into(),
            path: path.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header (a repeat adds a second line).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The bytes on the wire for host `addr`.
    pub fn to_bytes(&self, addr: &str) -> Vec<u8> {
        let mut out =
            format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let has = |wanted: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(wanted))
        };
        if !has("content-length") && !has("transfer-encoding") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends it to `addr` (`host:port`) and reads the whole response.
    pub async fn send(&self, addr: &str) -> std::io::Result<RawResponse> {
        let bytes = self.to_bytes(addr);
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await?;
            // The server may answer and close before reading everything (a header flood):
            // a failed write still leaves its answer to read.
            let written = stream.write_all(&bytes).await;
            let mut response = Vec::new();
            let read = stream.read_to_end(&mut response).await;
            match (written, read) {
                (_, Ok(_)) if !response.is_empty() => Ok(response),
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(()), Ok(_)) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed without an answer",
                )),
            }
        };
        let response = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 10 s")
            })??;
        parse_response(&response)
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

/// Parses an HTTP/1.1 response (status line, headers, body by length, chunks or close).
fn parse_response(bytes: &[u8]) -> std::io::Result<RawResponse> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("chunk size line"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| invalid("chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or_else(|| invalid("short chunk"))?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or_else(|| invalid("chunk end"))?;
    }
}
