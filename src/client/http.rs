//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, just enough to talk to a
//! node's JSON API from the command line.
//!
//! Role: the client subcommands make a handful of requests per run, so one connection per
//! request (`Connection: close`) is simpler than pooling and costs nothing that matters. Only
//! plain `http://` is supported: the API listens on plain HTTP, and an operator reaching a node
//! over an untrusted network puts TLS in front of it.
//!
//! Invariants:
//! - Every request has a connect timeout and a read/write timeout, so the CLI never hangs on a
//!   wedged node.
//! - A response body is framed by `Transfer-Encoding: chunked` (which wins, as RFC 9112 says), or
//!   by `Content-Length`, or else by the server closing the connection; nothing larger than
//!   [`MAX_RESPONSE_BYTES`] is buffered, and the header block is bounded too.
//! - A non-2xx status is not an error at this layer: the caller turns the node's JSON error into
//!   a message that fits what it was doing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// Largest response body the client buffers (a block with its receipts fits comfortably).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest status line plus headers the client reads.
const MAX_HEAD_BYTES: u64 = 64 * 1024;
/// Default time to establish a TCP connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time any single read or write may block.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one node's API, e.g. `http://127.0.0.1:8080`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// The base URL as given, without trailing slashes; used in error messages.
    base: String,
    /// `host:port` to connect to and to send as `Host`.
    authority: String,
    /// Path prefix from the base URL (empty, or `/something` without trailing slash).
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
}

/// A parsed response. Header names are lowercase.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl HttpClient {
    /// A client for `base_url` (`http://host[:port][/prefix]`, trailing slash tolerated). Nothing
    /// is resolved or connected until the first request.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let trimmed = base_url.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                bail!("unsupported API URL {trimmed:?}: only http:// is supported, not {scheme}://")
            }
            None => bail!("invalid API URL {trimmed:?}: expected http://host:port"),
        };
        if rest.contains(['?', '#', '@']) {
            bail!("invalid API URL {trimmed:?}: no user info, query or fragment allowed");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("invalid API URL {trimmed:?}: no host");
        }
        let authority =
            with_port(authority).with_context(|| format!("invalid API URL {trimmed:?}"))?;
        let prefix = path.trim_end_matches('/').to_string();
        Ok(Self {
            base: trimmed.trim_end_matches('/').to_string(),
            authority,
            prefix,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
        })
    }

    /// Replaces the connect timeout and the per-read/write timeout.
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }

    /// The base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET path`; the body parsed as JSON (an empty body is `null`).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = self.request("GET", path, None)?;
        self.json(resp, "GET", path)
    }

    /// `GET path`; the status and the raw answer (for non-JSON endpoints such as /metrics).
    pub fn get_raw(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let resp = self.request("GET", path, None)?;
        Ok((resp.status, resp.body))
    }

    /// `POST path` with a JSON body; the answer parsed as JSON (an empty body is `null`).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let bytes = serde_json::to_vec(body).context("encoding the request body as JSON")?;
        let resp = self.request("POST", path, Some(("application/json", &bytes)))?;
        self.json(resp, "POST", path)
    }

    /// `POST path` with raw bytes; the status and the raw answer.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let resp = self.request("POST", path, Some((content_type, body)))?;
        Ok((resp.status, resp.body))
    }

    /// Parses a body as JSON. A non-JSON error page (from a proxy, say) is passed on as a JSON
    /// string so the caller can still report the status with some context; a non-JSON success
    /// is an error because no caller could use it.
    fn json(&self, resp: Response, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok((resp.status, Value::Null));
        }
        match serde_json::from_slice(&resp.body) {
            Ok(v) => Ok((resp.status, v)),
            Err(e) if (200..300).contains(&resp.status) => Err(anyhow!(
                "the node at {} answered {method} {path} with {} but the body is not JSON ({e}): {}",
                self.base,
                resp.status,
                snippet(&resp.body)
            )),
            Err(_) => Ok((resp.status, Value::String(snippet(&resp.body)))),
        }
    }

    fn target(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.prefix)
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> anyhow::Result<Response> {
        let target = self.target(path);
        let mut stream = self.connect()?;
        stream
            .set_read_timeout(Some(self.io_timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.io_timeout)))
            .with_context(|| format!("setting socket timeouts for {}", self.base))?;
        // Nagle would hold the body back behind the head for a round trip.
        let _ = stream.set_nodelay(true);

        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Accept: application/json\r\nUser-Agent: accumen-cli/{}\r\n",
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        head.push_str("\r\n");

        let written = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.map_or(&[][..], |(_, b)| b)))
            .and_then(|()| stream.flush());

        let read = read_response(BufReader::new(&stream));
        match (written, read) {
            (_, Ok(resp)) => Ok(resp),
            // The server may answer and close before taking the whole body (413, say): its answer
            // is more useful than our broken pipe, so the write error only counts when no answer
            // came.
            (Err(we), Err(_)) => Err(self.io_error(we, method, &target, "sending")),
            (Ok(()), Err(re)) => Err(match re.downcast::<io::Error>() {
                Ok(ioe) => self.io_error(ioe, method, &target, "reading the answer to"),
                Err(other) => other.context(format!(
                    "bad answer from the node at {} to {method} {target}",
                    self.base
                )),
            }),
        }
    }

    fn io_error(&self, e: io::Error, method: &str, target: &str, doing: &str) -> anyhow::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => anyhow!(
                "the node at {} did not answer {method} {target} within {}",
                self.base,
                humantime::format_duration(self.io_timeout)
            ),
            _ => anyhow!("{doing} {method} {target} at {}: {e}", self.base),
        }
    }

    /// Connects to the first address that accepts, so `localhost` works whichever of IPv4 and
    /// IPv6 the node listens on.
    fn connect(&self) -> anyhow::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = self
            .authority
            .to_socket_addrs()
            .map_err(|e| {
                anyhow!(
                    "cannot reach the node at {}: cannot resolve host: {e}",
                    self.base
                )
            })?
            .collect();
        let mut last: Option<io::Error> = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, self.connect_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let reason = match last {
            None => "the host name resolved to no address".to_string(),
            Some(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "connection refused (is it running?)".to_string()
                }
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                    "connection timed out after {}",
                    humantime::format_duration(self.connect_timeout)
                ),
                _ => e.to_string(),
            },
        };
        Err(anyhow!("cannot reach the node at {}: {reason}", self.base))
    }
}

/// Adds `:80` when the authority has no port, and checks the port is a number.
fn with_port(authority: &str) -> anyhow::Result<String> {
    // `[v6addr]:port` has colons inside the brackets; only a colon after `]` separates a port.
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| i + 1)
            .ok_or_else(|| anyhow!("unterminated IPv6 address"))?
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(host_end);
    if host.is_empty() || host == "[]" {
        bail!("no host");
    }
    match port.strip_prefix(':') {
        None if port.is_empty() => Ok(format!("{host}:80")),
        None => bail!("unexpected {port:?} after the host"),
        Some(p) => {
            p.parse::<u16>()
                .map_err(|_| anyhow!("port {p:?} is not a number from 0 to 65535"))?;
            Ok(authority.to_string())
        }
    }
}

/// The first few hundred bytes of a body, printable, for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    if body.len() > MAX {
        format!("{text}...")
    } else {
        text.to_string()
    }
}

/// Reads one final response (skipping `1xx` interim answers) from a connection the server will
/// close after it.
fn read_response<R: BufRead>(mut r: R) -> anyhow::Result<Response> {
    loop {
        let (status, headers) = read_head(&mut r)?;
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if status != 204 && status != 304 {
            resp.body = read_body(&mut r, &resp)?;
        }
        return Ok(resp);
    }
}

/// Reads one `\n`-terminated line of at most `limit` bytes, without its line ending; `None` at a
/// clean EOF.
fn read_line<R: BufRead>(r: &mut R, limit: u64) -> anyhow::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= limit {
            bail!("response line longer than {limit} bytes");
        }
        bail!("connection closed in the middle of the response head");
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map_err(|_| anyhow!("response head is not valid UTF-8"))
        .map(Some)
}

fn read_head<R: BufRead>(r: &mut R) -> anyhow::Result<(u16, Vec<(String, String)>)> {
    let mut budget = MAX_HEAD_BYTES;
    let status_line =
        read_line(r, budget)?.ok_or_else(|| anyhow!("the connection closed without an answer"))?;
    budget = budget.saturating_sub(status_line.len() as u64 + 2);
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!(
            "not an HTTP/1.x answer: {:?}",
            snippet(status_line.as_bytes())
        );
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| anyhow!("bad status line {:?}", snippet(status_line.as_bytes())))?;

    let mut headers = Vec::new();
    loop {
        if budget == 0 {
            bail!("response head larger than {MAX_HEAD_BYTES} bytes");
        }
        let line = read_line(r, budget)?
            .ok_or_else(|| anyhow!("connection closed in the middle of the response head"))?;
        budget = budget.saturating_sub(line.len() as u64 + 2);
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("bad header line {:?}", snippet(line.as_bytes())))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

fn read_body<R: BufRead>(r: &mut R, resp: &Response) -> anyhow::Result<Vec<u8>> {
    if let Some(te) = resp.header("transfer-encoding") {
        // Only a final `chunked` coding frames the body; any other coding runs to EOF.
        let last = te.rsplit(',').next().unwrap_or_default().trim();
        if last.eq_ignore_ascii_case("chunked") {
            return read_chunked(r);
        }
        return read_to_eof(r);
    }
    let lengths: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            bail!("conflicting Content-Length headers: {lengths:?}");
        }
        let len: u64 = first
            .parse()
            .map_err(|_| anyhow!("bad Content-Length {first:?}"))?;
        if len > MAX_RESPONSE_BYTES {
            bail!(
                "response body of {len} bytes is larger than the {MAX_RESPONSE_BYTES}-byte limit"
            );
        }
        let mut body = Vec::with_capacity(len as usize);
        let got = r.by_ref().take(len).read_to_end(&mut body)?;
        if (got as u64) < len {
            bail!("response body truncated: expected {len} bytes, got {got}");
        }
        return Ok(body);
    }
    read_to_eof(r)
}

fn read_to_eof<R: BufRead>(r: &mut R) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    r.by_ref()
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut body)?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        bail!("response body is larger than the {MAX_RESPONSE_BYTES}-byte limit");
    }
    Ok(body)
}

fn read_chunked<R: BufRead>(r: &mut R) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, 1024)?
            .ok_or_else(|| anyhow!("chunked body ended without its last chunk"))?;
        // Chunk extensions (`;name=value`) carry nothing we use.
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow!("bad chunk size line {:?}", snippet(line.as_bytes())))?;
        if size == 0 {
            // Trailers, up to the blank line; a server that just closes is tolerated.
            while let Some(t) = read_line(r, MAX_HEAD_BYTES)? {
                if t.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_RESPONSE_BYTES {
            bail!("response body is larger than the {MAX_RESPONSE_BYTES}-byte limit");
        }
        let before = body.len();
        let got = r.by_ref().take(size).read_to_end(&mut body)?;
        if (got as u64) < size {
            bail!(
                "chunked body truncated: chunk of {size} bytes ended after {}",
                body.len() - before
            );
        }
        match read_line(r, 2)? {
            Some(end) if end.is_empty() => {}
            _ => bail!("chunk of {size} bytes not followed by CRLF"),
        }
    }
}
