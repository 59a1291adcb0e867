//! The CLI's HTTP client for one node's JSON API: a thin layer over `reqwest`'s blocking client
//! (hyper 1 underneath, the same HTTP stack the follower and bridge use asynchronously).
//!
//! Role: the client subcommands (and the stress tool and the whole-node tests) make a handful of
//! requests per run; this layer adds what they share: one base URL with an optional path prefix,
//! JSON in and out (or binary transactions in, see [`HttpClient::submit_txs_binary`]), a bound
//! on what is buffered, and error messages that say which node did what. HTTP itself (framing,
//! chunked decoding, interim answers) is hyper's. `http://` and
//! `https://` (a node with `api.tls.*`, or a TLS proxy in front of one): https trusts the
//! system's roots, or with `--ca-cert FILE` / `ACCUMEN_CA_CERT` ([`trust_ca_file`]) only the CA
//! certificates of that file, as curl's `--cacert` does.
//!
//! Invariants:
//! - Every request has a connect timeout and an overall timeout, so the CLI never hangs on a
//!   wedged node.
//! - Nothing larger than [`MAX_RESPONSE_BYTES`] is buffered: an announced larger length is
//!   refused before reading, a streamed one once it passes the limit. (hyper bounds the head.)
//! - One connection per request (`Connection: close`, no pool, no redirects, no proxy): the
//!   request goes to exactly the node named, and nothing is left open between commands.
//! - A non-2xx status is not an error at this layer: the caller turns the node's JSON error into
//!   a message that fits what it was doing.
//! - TLS is rustls with the ring provider passed explicitly (stack-notes §2): building a client
//!   never depends on a process-wide provider, in the CLI, the stress tool or a test.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use accumen_actors::types::SignedTx;
use anyhow::{Context, anyhow, bail};
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{ACCEPT, CONNECTION, CONTENT_TYPE, USER_AGENT};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// Largest response body the client buffers (a block with its receipts fits comfortably).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Default time to establish a TCP connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a whole request (sending, waiting, reading the answer) may take.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest CA file read (a bundle of a few hundred certificates fits).
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// CA certificates trusted for https instead of the system's, for every client of this
/// process: the CLI sets it once from `--ca-cert` / `ACCUMEN_CA_CERT`.
static TRUSTED_CA: OnceLock<Arc<[CertificateDer<'static>]>> = OnceLock::new();

/// Trust only the CA certificates of the PEM file at `path` for https (set once per process;
/// a second call is refused).
pub fn trust_ca_file(path: &Path) -> anyhow::Result<()> {
    let certs = read_ca_file(path).context("--ca-cert")?;
    TRUSTED_CA
        .set(certs)
        .map_err(|_| anyhow!("the CA to trust is already set"))
}

/// The CA certificates of a PEM file of at most `MAX_CA_FILE_BYTES`; errors name the file.
fn read_ca_file(path: &Path) -> anyhow::Result<Arc<[CertificateDer<'static>]>> {
    let at = || path.display().to_string();
    let file = std::fs::File::open(path).with_context(at)?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .with_context(at)?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        bail!("{}: larger than {MAX_CA_FILE_BYTES} bytes", at());
    }
    parse_ca_pem(&pem).with_context(at)
}

/// PEM CA certificates, at least one.
fn parse_ca_pem(pem: &[u8]) -> anyhow::Result<Arc<[CertificateDer<'static>]>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        bail!("no PEM certificate (expected BEGIN CERTIFICATE)");
    }
    Ok(certs.into())
}

/// The TLS configuration for a reqwest client of `url`, for clients built outside this module
/// (the follower, `accumen backup`): ring explicitly; for https the CA certificates of
/// `ca_file` if given, else the process's CA ([`trust_ca_file`]), else the system's roots; for
/// plain http one that never loads the system's roots (whose absence, on a host without a CA
/// bundle, would otherwise fail even a plain-http client at build time).
pub fn tls_config_for(url: &str, ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let https = url
        .trim()
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    match ca_file {
        Some(path) if https => tls_config(true, Some(&read_ca_file(path)?)),
        _ => tls_config(https, TRUSTED_CA.get().map(|c| &c[..])),
    }
}

/// The rustls client configuration: only `ca` if given, else the system's roots. A plain-http
/// client gets a configuration that trusts nothing, since it never makes a handshake (and
/// reading the system's roots would cost every CLI call).
fn tls_config(
    https: bool,
    ca: Option<&[CertificateDer<'static>]>,
) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let builder = rustls::ClientConfig::builder_with_provider(crate::api::tls::provider())
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?;
    let config = match (https, ca) {
        (true, Some(certs)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .context("not a usable CA certificate")?;
            }
            builder.with_root_certificates(roots)
        }
        (true, None) => builder
            .with_platform_verifier()
            .context("loading the system's CA certificates (or give --ca-cert FILE)")?,
        (false, _) => builder.with_root_certificates(rustls::RootCertStore::empty()),
    };
    Ok(config.with_no_client_auth())
}

/// A client for one node's API, e.g. `http://127.0.0.1:8080`.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// The base URL as given, without trailing slashes; used in error messages.
    base: String,
    /// The base URL with its path prefix ending in `/`, to join request paths to.
    url: Url,
    connect_timeout: Duration,
    io_timeout: Duration,
    client: Client,
    /// Sent as `Authorization: Bearer` (`--token`, `ACCUMEN_TOKEN`); never printed.
    token: Option<String>,
    /// The CA certificates trusted for https; `None`: the system's.
    ca: Option<Arc<[CertificateDer<'static>]>>,
}

impl HttpClient {
    /// A client for `base_url` (`http[s]://host[:port][/prefix]`, trailing slash tolerated),
    /// trusting the process's CA ([`trust_ca_file`]) or the system's for https. Nothing is
    /// resolved or connected until the first request.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let trimmed = base_url.trim();
        match trimmed.split_once("://") {
            Some((scheme, _))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {}
            Some((scheme, _)) => {
                bail!(
                    "unsupported API URL {trimmed:?}: only http:// and https:// are supported, \
                     not {scheme}://"
                )
            }
            None => bail!("invalid API URL {trimmed:?}: expected http://host:port"),
        }
        let mut url =
            Url::parse(trimmed).with_context(|| format!("invalid API URL {trimmed:?}"))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || trimmed.contains('@')
        {
            bail!("invalid API URL {trimmed:?}: no user info, query or fragment allowed");
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("invalid API URL {trimmed:?}: no host");
        }
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/"));
        Self::build(
            trimmed.trim_end_matches('/').to_string(),
            url,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_IO_TIMEOUT,
            TRUSTED_CA.get().cloned(),
        )
    }

    fn build(
        base: String,
        url: Url,
        connect_timeout: Duration,
        io_timeout: Duration,
        ca: Option<Arc<[CertificateDer<'static>]>>,
    ) -> anyhow::Result<Self> {
        let tls = tls_config(url.scheme() == "https", ca.as_deref())?;
        let client = Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(connect_timeout)
            .timeout(io_timeout)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // Nagle would hold the body back behind the head for a round trip.
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base,
            url,
            connect_timeout,
            io_timeout,
            client,
            token: None,
            ca,
        })
    }

    /// Trusts only the CA certificates of `pem` for https (instead of the process's or the
    /// system's).
    pub fn with_ca_pem(self, pem: &[u8]) -> anyhow::Result<Self> {
        let ca = parse_ca_pem(pem)?;
        let token = self.token.clone();
        Ok(Self::build(
            self.base,
            self.url,
            self.connect_timeout,
            self.io_timeout,
            Some(ca),
        )?
        .with_token(token.as_deref()))
    }

    /// Replaces the connect timeout and the whole-request timeout.
    pub fn with_timeouts(self, connect: Duration, io: Duration) -> Self {
        let (base, url) = (self.base.clone(), self.url.clone());
        // Building a client only fails when the TLS backend or the resolver cannot start; this
        // one has neither beyond what `new` already built, so keep the old client if it does.
        let token = self.token.clone();
        match Self::build(base, url, connect, io, self.ca.clone()) {
            Ok(c) => c.with_token(token.as_deref()),
            Err(_) => self,
        }
    }

    /// Sends `token` as a bearer token with every request (`None`: no `Authorization`).
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// The base URL, without trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET path`; the body parsed as JSON (an empty body is `null`).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let (status, body) = self.request("GET", path, None)?;
        self.json(status, body, "GET", path)
    }

    /// `GET path`; the status and the raw answer (for non-JSON endpoints such as /metrics).
    pub fn get_raw(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request("GET", path, None)
    }

    /// `GET path` asking for the media type `accept` (e.g. the binary sync answer); the status,
    /// the answer's `Content-Type` (empty if none) and the raw answer.
    pub fn get_accepting(
        &self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        self.send("GET", path, None, accept)
    }

    /// `POST path` with a JSON body; the answer parsed as JSON (an empty body is `null`).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let bytes = serde_json::to_vec(body).context("encoding the request body as JSON")?;
        let (status, body) = self.request("POST", path, Some(("application/json", &bytes)))?;
        self.json(status, body, "POST", path)
    }

    /// `POST path` with raw bytes; the status and the raw answer.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request("POST", path, Some((content_type, body)))
    }

    /// `POST path` with raw bytes, asking for the media type `accept` (e.g. the binary batch
    /// answer); the status, the answer's `Content-Type` (empty if none) and the raw answer.
    pub fn post_accepting(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        accept: &str,
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        self.send("POST", path, Some((content_type, body)), accept)
    }

    /// `POST path` with a binary body (`application/octet-stream`); the answer parsed as JSON.
    pub fn post_binary(&self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Value)> {
        let (status, answer) = self.request(
            "POST",
            path,
            Some((crate::api::batch::BINARY_CONTENT_TYPE, body)),
        )?;
        self.json(status, answer, "POST", path)
    }

    /// `POST /v1/txs` with `txs` in the binary framing (RUNBOOK "Endpoints"): the same answer
    /// as the JSON batch, for a fraction of the bytes and of the node's parsing work.
    pub fn submit_txs_binary(&self, txs: &[SignedTx]) -> anyhow::Result<(u16, Value)> {
        let body = crate::api::batch::encode_binary(txs)?;
        self.post_binary("/v1/txs", &body)
    }

    /// Parses a body as JSON. A non-JSON error page (from a proxy, say) is passed on as a JSON
    /// string so the caller can still report the status with some context; a non-JSON success
    /// is an error because no caller could use it.
    fn json(
        &self,
        status: u16,
        body: Vec<u8>,
        method: &str,
        path: &str,
    ) -> anyhow::Result<(u16, Value)> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        match serde_json::from_slice(&body) {
            Ok(v) => Ok((status, v)),
            Err(e) if (200..300).contains(&status) => Err(anyhow!(
                "the node at {} answered {method} {path} with {status} but the body is not JSON \
                 ({e}): {}",
                self.base,
                snippet(&body)
            )),
            Err(_) => Ok((status, Value::String(snippet(&body)))),
        }
    }

    /// The path as sent: the base URL's prefix, then `path`.
    fn target(&self, path: &str) -> String {
        format!("{}{}", self.url.path(), path.trim_start_matches('/'))
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let (status, _, body) = self.send(method, path, body, "application/json")?;
        Ok((status, body))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        accept: &str,
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let target = self.target(path);
        // `./` keeps a path with a colon from reading as a scheme; a query string is kept.
        let url = self
            .url
            .join(&format!("./{}", path.trim_start_matches('/')))
            .with_context(|| format!("invalid request path {path:?}"))?;
        let mut req: RequestBuilder = match body {
            None => self.client.get(url),
            Some((content_type, bytes)) => self
                .client
                .post(url)
                .header(CONTENT_TYPE, content_type)
                .body(bytes.to_vec()),
        };
        req = req
            .header(CONNECTION, "close")
            .header(ACCEPT, accept)
            .header(
                USER_AGENT,
                concat!("accumen-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().map_err(|e| self.error(&e, method, &target))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if let Some(len) = resp.content_length()
            && len > MAX_RESPONSE_BYTES
        {
            bail!(
                "the node at {} answered {method} {target} with a body of {len} bytes, larger \
                 than the {MAX_RESPONSE_BYTES}-byte limit",
                self.base
            );
        }
        let mut buf = Vec::new();
        (&mut resp)
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.error(&e, method, &target))?;
        if buf.len() as u64 > MAX_RESPONSE_BYTES {
            bail!(
                "the node at {} answered {method} {target} with a body larger than the \
                 {MAX_RESPONSE_BYTES}-byte limit",
                self.base
            );
        }
        Ok((status, content_type, buf))
    }

    /// One message per kind of failure, naming the node and the request; the underlying cause
    /// (hyper's or the OS's words) follows where it adds something.
    fn error(
        &self,
        e: &(dyn std::error::Error + 'static),
        method: &str,
        target: &str,
    ) -> anyhow::Error {
        let chain = causes(e);
        let io_kind = chain.iter().find_map(|c| {
            c.downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                .filter(|k| *k != std::io::ErrorKind::Other)
        });
        let reqwest_err = chain
            .iter()
            .find_map(|c| c.downcast_ref::<reqwest::Error>());
        let hyper_err = chain.iter().find_map(|c| c.downcast_ref::<hyper::Error>());
        // A failed handshake: the certificate is not trusted, or the other side is not TLS.
        if let Some(tls_err) = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
            let hint = match tls_err {
                rustls::Error::InvalidCertificate(_) => {
                    " (trust the node's CA with --ca-cert FILE or ACCUMEN_CA_CERT)"
                }
                rustls::Error::InvalidMessage(_) => " (is its API plain http://?)",
                _ => "",
            };
            return anyhow!(
                "cannot reach the node at {}: TLS handshake failed: {tls_err}{hint}",
                self.base
            );
        }
        let detail = || {
            chain
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(": ")
        };
        if reqwest_err.is_some_and(reqwest::Error::is_connect) {
            let reason = match io_kind {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    "connection refused (is it running?)".to_string()
                }
                _ if reqwest_err.is_some_and(reqwest::Error::is_timeout)
                    || io_kind == Some(std::io::ErrorKind::TimedOut) =>
                {
                    format!(
                        "connection timed out after {}",
                        humantime::format_duration(self.connect_timeout)
                    )
                }
                _ => detail(),
            };
            return anyhow!("cannot reach the node at {}: {reason}", self.base);
        }
        if reqwest_err.is_some_and(reqwest::Error::is_timeout)
            || matches!(
                io_kind,
                Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
            )
        {
            return anyhow!(
                "the node at {} did not answer {method} {target} within {}",
                self.base,
                humantime::format_duration(self.io_timeout)
            );
        }
        let what = if hyper_err.is_some_and(hyper::Error::is_parse) {
            if self.url.scheme() == "http" {
                // A TLS listener answers a plain request with a TLS alert.
                "not an HTTP/1.x answer; if its API has TLS, use https://"
            } else {
                "not an HTTP/1.x answer"
            }
        } else if io_kind == Some(std::io::ErrorKind::UnexpectedEof)
            || hyper_err.is_some_and(hyper::Error::is_incomplete_message)
        {
            "the answer was truncated"
        } else {
            "the request failed"
        };
        anyhow!(
            "bad answer from the node at {} to {method} {target}: {what} ({})",
            self.base,
            detail()
        )
    }
}

/// `e` and its causes, outermost first. An `io::Error` wrapping another error (as a blocking
/// body read does) is followed into the error it wraps, which its `source()` would skip.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(c) = next {
        out.push(c);
        next = match c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
        if out.len() > 16 {
            break;
        }
    }
    out
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
